//! Events: every step of a run, as values a subscriber receives.

use std::borrow::Cow;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::bounds::{BoundHit, Usage};
use crate::gate::DecisionRecord;
use crate::run_id::RunId;
use crate::store::now_ms;

/// Who picked a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedVia {
    /// A plain state's handler.
    Code,
    /// A gate, by a model decision or a recorded override.
    Gate,
    /// A signal delivered to a waiting run.
    Signal,
    /// The runner, moving an exhausted run to its `on_exhausted` state.
    WrapUp,
}

/// What happened. New kinds may be added (`#[non_exhaustive]`: match with
/// a `_` arm); existing ones keep their fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The run started in its initial state.
    Started {
        /// The initial state.
        state: Cow<'static, str>,
        /// The machine's graph fingerprint ([`crate::Graph::fingerprint`]).
        #[serde(default)]
        fingerprint: u64,
    },
    /// A handler (or a gate's handler, model call included) returned.
    HandlerFinished {
        /// The state whose handler it was.
        state: Cow<'static, str>,
        /// The step.
        step: u64,
        /// How long it took, in microseconds.
        duration_us: u64,
    },
    /// The run entered a state.
    Entered {
        /// The state.
        state: Cow<'static, str>,
        /// Steps taken so far.
        step: u64,
        /// What the state carries, as JSON ([`crate::Machine::payload`]):
        /// absent when it carries nothing or its payload is not
        /// `Serialize`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<serde_json::Value>,
    },
    /// A gate decided.
    Decision(Box<DecisionRecord>),
    /// The run moved.
    Transition {
        /// From this state.
        from: Cow<'static, str>,
        /// To this state.
        to: Cow<'static, str>,
        /// Steps taken so far.
        step: u64,
        /// Who picked the move.
        via: DecidedVia,
    },
    /// A bound was hit.
    BoundHit {
        /// Which bound, with its figures.
        hit: BoundHit,
        /// The state the run moves to, if the machine wraps up.
        wrap_up: Option<Cow<'static, str>>,
    },
    /// The run suspended at a wait state.
    Waiting {
        /// The wait state.
        state: Cow<'static, str>,
    },
    /// The run reached a terminal state.
    Finished {
        /// The terminal state.
        state: Cow<'static, str>,
        /// Steps taken.
        steps: u64,
        /// Model usage of the whole run.
        usage: Usage,
    },
    /// The run ended with an error.
    Failed {
        /// The state it was in.
        state: Cow<'static, str>,
        /// Steps taken.
        step: u64,
        /// The error, as text.
        error: String,
    },
    /// A fan-out ([`crate::Cx::fan_out`]) joined its children (each child
    /// run's own events carry its run id).
    ChildrenJoined {
        /// The state whose handler fanned out.
        state: Cow<'static, str>,
        /// The step.
        step: u64,
        /// Every child, in input order, with how it ended.
        children: Vec<ChildEnd>,
    },
    /// A checkpoint of a durable run was written (in a run's history: the
    /// whole checkpoint, which is what [`crate::history::import_jsonl`]
    /// reads back).
    CheckpointWritten {
        /// The checkpoint.
        checkpoint: Box<crate::store::Checkpoint>,
    },
}

/// One child of a fan-out, as [`EventKind::ChildrenJoined`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildEnd {
    /// The child run.
    pub run_id: RunId,
    /// `finished`, `waiting`, `failed` or `cancelled`.
    pub ended: Cow<'static, str>,
}

/// The version of [`Event`]'s serialised form; it changes only when a
/// field is renamed or removed (new kinds and fields keep it).
pub const EVENT_VERSION: u16 = 1;

fn event_version() -> u16 {
    EVENT_VERSION
}

/// One event of one run.
///
/// Serialised with stable field names: `v` (the [`EVENT_VERSION`]),
/// `run_id`, `machine`, `at_ms`, `type` (the kind, in `snake_case`) and the
/// kind's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The format version ([`EVENT_VERSION`]).
    #[serde(default = "event_version")]
    pub v: u16,
    /// The run.
    pub run_id: RunId,
    /// The machine's name.
    pub machine: Cow<'static, str>,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    pub(crate) fn now(run_id: RunId, machine: &'static str, kind: EventKind) -> Self {
        Self::at(now_ms(), run_id, machine, kind)
    }

    pub(crate) fn at(at_ms: u64, run_id: RunId, machine: &'static str, kind: EventKind) -> Self {
        Event {
            v: EVENT_VERSION,
            run_id,
            machine: Cow::Borrowed(machine),
            at_ms,
            kind,
        }
    }
}

/// Receives events. Called inline on the run's task: keep it fast, and
/// hand slow work to a channel.
pub trait Subscriber: Send + Sync {
    /// One event.
    fn on_event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> Subscriber for F {
    fn on_event(&self, event: &Event) {
        self(event)
    }
}

/// A subscriber that keeps every event in memory (for tests and small tools).
#[derive(Debug, Default)]
pub struct EventLog {
    events: Mutex<Vec<Event>>,
}

impl EventLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Subscriber for EventLog {
    fn on_event(&self, event: &Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}
