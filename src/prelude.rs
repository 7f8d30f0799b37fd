//! `use guiderail::prelude::*;` brings in what a machine and its handlers
//! need: the macro, the runner, the handler context and results, and the
//! serde/schemars derives for payload types.

pub use crate::{handlers, machine};
pub use guiderail_runtime::{
    BoundHit, Bounds, Cx, Decision, Ended, HandlerError, HandlerResult, Machine, Outcome, RunError,
    Runner, ScriptedModel, Suspended,
};
pub use schemars::JsonSchema;
pub use serde::{Deserialize, Serialize};
