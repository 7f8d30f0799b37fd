//! Typed errors. Every error that ends a run says which run, which state and
//! which step.

use std::error::Error as StdError;
use std::fmt;

use crate::bounds::BoundHit;
use crate::gate::GateError;
use crate::run_id::RunId;

/// The error a handler returns. Any `std::error::Error` converts into it
/// with `?`, like `anyhow::Error`.
///
/// ```
/// use guiderail_runtime::{HandlerError, HandlerResult};
///
/// fn parse(n: &str) -> HandlerResult<u64> {
///     let v: u64 = n.parse()?; // ParseIntError -> HandlerError
///     if v == 0 {
///         return Err(HandlerError::msg("zero is not an order id"));
///     }
///     Ok(v)
/// }
/// assert_eq!(parse("0").unwrap_err().to_string(), "zero is not an order id");
/// ```
pub struct HandlerError(Box<dyn StdError + Send + Sync + 'static>);

/// The result type of handlers.
pub type HandlerResult<T> = Result<T, HandlerError>;

impl HandlerError {
    /// An error with just a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        HandlerError(message.to_string().into())
    }

    /// The underlying error, if it is an `E`.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }

    /// Takes the underlying error out if it is an `E`.
    pub fn downcast<E: StdError + 'static>(self) -> Result<E, Self> {
        self.0.downcast::<E>().map(|b| *b).map_err(HandlerError)
    }

    /// The underlying error.
    pub fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.0
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for HandlerError {
    fn from(e: E) -> Self {
        HandlerError(Box::new(e))
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Why a run ended without reaching a terminal state.
#[derive(Debug, thiserror::Error)]
pub enum RunErrorKind {
    /// A bound was hit and the machine has no `on_exhausted` state (or the
    /// bound was hit again while wrapping up).
    #[error("bound hit: {0}")]
    Bound(BoundHit),
    /// A handler returned an error.
    #[error("handler failed: {0}")]
    Handler(HandlerError),
    /// A gate could not get a valid decision.
    #[error("gate failed: {0}")]
    Gate(GateError),
    /// A handler panicked. The panic was caught; the run is over.
    #[error("handler panicked: {0}")]
    Panicked(String),
    /// The task running the run was cancelled (aborted or its runtime shut down).
    #[error("run was cancelled")]
    Cancelled,
    /// A durable run's checkpoint could not be written (the run stays as
    /// its latest checkpoint left it, and can be resumed).
    #[error("checkpoint failed: {0}")]
    Store(Box<crate::store::StoreError>),
}

/// A run that ended in an error, with where it was.
#[derive(Debug, thiserror::Error)]
#[error("run {run_id} of `{machine}` failed in state `{state}` at step {step}: {kind}")]
pub struct RunError {
    /// The run.
    pub run_id: RunId,
    /// The machine's name.
    pub machine: &'static str,
    /// The state the run was in.
    pub state: &'static str,
    /// The step number (entries into non-terminal states so far).
    pub step: u64,
    /// Model usage of the run up to the error, the calls of a gate that
    /// failed included (zero for a run whose task was cancelled or
    /// panicked outside the runner).
    pub usage: crate::bounds::Usage,
    /// What went wrong.
    #[source]
    pub kind: RunErrorKind,
}

impl RunError {
    /// The bound that ended the run, if that is why it ended.
    pub fn bound(&self) -> Option<&BoundHit> {
        match &self.kind {
            RunErrorKind::Bound(hit) => Some(hit),
            RunErrorKind::Gate(GateError::Bound(hit)) => Some(hit),
            _ => None,
        }
    }
}
