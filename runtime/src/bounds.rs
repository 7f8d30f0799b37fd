//! Limits on a run and what a run has spent.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits a runner enforces on every run, on top of the machine's own
/// `max_steps` and `max_visits`.
///
/// ```
/// use std::time::Duration;
/// use guiderail_runtime::Bounds;
///
/// let bounds = Bounds::default()
///     .max_steps(50)
///     .deadline(Duration::from_secs(120))
///     .handler_timeout(Duration::from_secs(30))
///     .max_tokens(20_000);
/// assert_eq!(bounds.steps(), Some(50));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bounds {
    max_steps: Option<u64>,
    deadline: Option<Duration>,
    handler_timeout: Option<Duration>,
    max_tokens: Option<u64>,
    max_cost_micros: Option<u64>,
}

impl Bounds {
    /// At most this many steps (entries into non-terminal states). The smaller of
    /// this and the machine's `max_steps` applies.
    #[must_use]
    pub fn max_steps(mut self, steps: u64) -> Self {
        self.max_steps = Some(steps);
        self
    }

    /// The whole run must finish within this time from its start.
    #[must_use]
    pub fn deadline(mut self, limit: Duration) -> Self {
        self.deadline = Some(limit);
        self
    }

    /// Each handler call must finish within this time.
    #[must_use]
    pub fn handler_timeout(mut self, limit: Duration) -> Self {
        self.handler_timeout = Some(limit);
        self
    }

    /// At most this many model tokens (input plus output) per run.
    #[must_use]
    pub fn max_tokens(mut self, tokens: u64) -> Self {
        self.max_tokens = Some(tokens);
        self
    }

    /// At most this much money per run, in millionths of a US dollar.
    #[must_use]
    pub fn max_cost_micros(mut self, micros: u64) -> Self {
        self.max_cost_micros = Some(micros);
        self
    }

    /// The step limit set here, if any.
    pub fn steps(&self) -> Option<u64> {
        self.max_steps
    }

    /// The run deadline set here, if any.
    pub fn run_deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// The per-handler timeout set here, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.handler_timeout
    }

    /// The token budget set here, if any.
    pub fn tokens(&self) -> Option<u64> {
        self.max_tokens
    }

    /// The money budget set here, in micro-dollars, if any.
    pub fn cost_micros(&self) -> Option<u64> {
        self.max_cost_micros
    }
}

/// Model usage of a run or of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Cost in millionths of a US dollar (0 when no price is known).
    pub cost_micros: u64,
}

impl Usage {
    /// Input plus output tokens (saturating at `u64::MAX`).
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// Adds `other` to `self`, saturating: the figures come from providers,
    /// and a nonsensical one must end the run at its budget, not overflow.
    pub fn add(&mut self, other: Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cost_micros = self.cost_micros.saturating_add(other.cost_micros);
    }
}

/// A limit a run reached. Ends the run with [`crate::RunErrorKind::Bound`],
/// or moves it to the machine's `on_exhausted` state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "bound", rename_all = "snake_case")]
pub enum BoundHit {
    /// The run took its allowed number of steps.
    #[error("step limit of {limit} reached")]
    Steps {
        /// The limit.
        limit: u64,
    },
    /// A state was entered more often than its `max_visits`.
    #[error("state `{state}` reached its limit of {limit} visits")]
    Visits {
        /// The state.
        state: String,
        /// Its `max_visits`.
        limit: u32,
    },
    /// The run passed its deadline.
    #[error("run deadline of {limit_ms} ms passed")]
    Deadline {
        /// The deadline, in milliseconds from the run's start.
        limit_ms: u64,
    },
    /// A handler did not finish in time.
    #[error("handler of `{state}` did not finish within {limit_ms} ms")]
    HandlerTimeout {
        /// The state whose handler timed out.
        state: String,
        /// The timeout in milliseconds.
        limit_ms: u64,
    },
    /// The run used up its token budget.
    #[error("token budget of {limit} reached ({used} used)")]
    Tokens {
        /// The budget.
        limit: u64,
        /// Tokens used so far.
        used: u64,
    },
    /// The run used up its money budget.
    #[error("cost budget of {limit_micros} micro-USD reached ({used_micros} used)")]
    Cost {
        /// The budget, in micro-dollars.
        limit_micros: u64,
        /// Spent so far, in micro-dollars.
        used_micros: u64,
    },
}

impl BoundHit {
    /// A short name of the bound (`steps`, `visits`, `deadline`, …).
    pub fn name(&self) -> &'static str {
        match self {
            BoundHit::Steps { .. } => "steps",
            BoundHit::Visits { .. } => "visits",
            BoundHit::Deadline { .. } => "deadline",
            BoundHit::HandlerTimeout { .. } => "handler_timeout",
            BoundHit::Tokens { .. } => "tokens",
            BoundHit::Cost { .. } => "cost",
        }
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in + {} out tokens, {} micro-USD",
            self.input_tokens, self.output_tokens, self.cost_micros
        )
    }
}
