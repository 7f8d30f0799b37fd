#![forbid(unsafe_code)]
//! The runtime of [guiderail](https://docs.rs/guiderail): machine traits,
//! the tokio runner, bounds, gates, models and events.
//!
//! Use it through the `guiderail` crate, whose `#[machine]` macro implements
//! these traits for an annotated enum. Everything here also works by hand:
//! `runtime/tests/hand_written.rs` runs a machine written without the macro.

mod bounds;
mod context;
mod error;
mod event;
mod event_bus;
mod fan_out;
mod gate;
mod graph;
mod graph_record;
pub mod history;
pub mod llm;
mod machine;
mod path;
mod run_id;
mod runner;
pub mod store;
pub mod testing;
#[cfg(feature = "postgres")]
mod worker;

#[doc(hidden)]
pub mod __private;

pub use bounds::{BoundHit, Bounds, Usage};
pub use context::Cx;
pub use error::{HandlerError, HandlerResult, RunError, RunErrorKind};
pub use event::{ChildEnd, DecidedVia, EVENT_VERSION, Event, EventKind, EventLog, Subscriber};
pub use event_bus::{EventBus, EventStream, Lagged};
pub use fan_out::{Child, ChildInput, ChildOutput, FanOut, child_id};
pub use gate::{
    Attempt, DecidedBy, Decision, DecisionRecord, FromGateFailure, GateError, GateFailure,
    GateMoves, GateSpec, MoveInfo, MoveShape, MoveSpec, decode_answer, encode_move,
};
pub use graph::{Edge, EdgeKind, Graph, StateInfo, StateKind, WorstCase};
pub use graph_record::{GraphRecord, StateRecord};
pub use llm::{Model, ReplayModel, ScriptedModel};
pub use machine::{Dispatch, Machine, Signal, Start, Step};
pub use path::Path;
pub use run_id::{ParseRunIdError, RunId};
pub use runner::{
    Divergence, DurableContext, DurableError, DurableMachine, Ended, Outcome, ReplayReport,
    RunHandle, Runner, RunnerBuilder, SignalError, StepView, Suspended,
};
#[cfg(feature = "postgres")]
pub use worker::{Worker, WorkerHandle, WorkerStats};
