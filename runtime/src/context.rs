//! What a handler sees of its run: [`Cx`].

use crate::bounds::{BoundHit, Usage};
use crate::gate::{self, Decision, GateError, GateMoves};
use crate::graph::StateInfo;
use crate::machine::Machine;
use crate::run_id::RunId;
use crate::runner::Env;

/// Everything a run carries between steps. Small on purpose: a suspended
/// run is this plus its state. (Public only as a name for the run loop that
/// `#[machine]` expands; its fields are the runtime's.)
#[derive(Debug)]
pub struct RunCore<C> {
    pub(crate) run_id: RunId,
    pub(crate) context: C,
    pub(crate) steps: u64,
    pub(crate) visits: Box<[u32]>,
    /// Indices of the states entered, in order (4 bytes a step).
    pub(crate) path: Vec<u32>,
    pub(crate) usage: Usage,
    pub(crate) decisions: u64,
    pub(crate) bound_hit: Option<BoundHit>,
    /// When the run started, on tokio's clock: the same clock as the
    /// handler timeouts, so a paused test clock moves both.
    pub(crate) started: tokio::time::Instant,
    pub(crate) wrap_up_steps: Option<u64>,
    /// Checkpointed in the runner's store: `Cx::effect` journals.
    pub(crate) durable: bool,
}

/// The handle a handler gets: the run's context value, where the run is,
/// and (at gates) the model.
///
/// ```text
/// async fn reply(&self, cx: &mut Cx<'_, Support>, draft: String) -> HandlerResult<ReplyNext> {
///     cx.context_mut().notes.push(draft);
///     Ok(ReplyNext::Done)
/// }
/// ```
pub struct Cx<'r, M: Machine> {
    pub(crate) run: &'r mut RunCore<M::Context>,
    pub(crate) env: &'r Env,
    /// The index of the step's state in the machine's graph.
    pub(crate) state: usize,
}

impl<M: Machine> Cx<'_, M> {
    /// The run's context value.
    pub fn context(&self) -> &M::Context {
        &self.run.context
    }

    /// The run's context value, to change.
    pub fn context_mut(&mut self) -> &mut M::Context {
        &mut self.run.context
    }

    /// The run's id.
    pub fn run_id(&self) -> RunId {
        self.run.run_id
    }

    /// The number of this step (1 for the first state of a run).
    pub fn step(&self) -> u64 {
        self.run.steps
    }

    /// The state this handler runs for.
    pub fn state(&self) -> &'static StateInfo {
        &M::graph().states[self.state]
    }

    /// How often this state has been entered in this run, this time included.
    pub fn visits(&self) -> u32 {
        self.run.visits[self.state]
    }

    /// The bound that moved the run to its `on_exhausted` state, if one did.
    pub fn bound_hit(&self) -> Option<&BoundHit> {
        self.run.bound_hit.as_ref()
    }

    /// Model usage of the run so far.
    pub fn usage(&self) -> Usage {
        self.run.usage
    }

    /// A key that is the same every time this step runs (run id and step),
    /// for making side effects idempotent.
    pub fn idempotency_key(&self) -> String {
        format!("{}-{}", self.run.run_id, self.run.steps)
    }

    /// Asks the runner's model to pick this gate's move.
    ///
    /// Sends `prompt` with the gate's moves (as a JSON Schema or as tools),
    /// parses the answer into the gate's move enum, and feeds an invalid
    /// answer back for repair up to the runner's repair limit. Token and
    /// money budgets are checked before and after each call.
    pub async fn decide<N: GateMoves>(
        &mut self,
        prompt: impl Into<String>,
    ) -> Result<Decision<N>, GateError> {
        let wrapping_up = self.run.wrap_up_steps.is_some();
        gate::decide::<N>(self.env, &mut self.run.usage, wrapping_up, prompt.into()).await
    }

    /// Like [`Cx::decide`], with the run's context value appended to the
    /// prompt as JSON, for gates whose decision depends on all of it.
    pub async fn decide_with_context<N: GateMoves>(
        &mut self,
        prompt: impl Into<String>,
    ) -> Result<Decision<N>, GateError>
    where
        M::Context: serde::Serialize,
    {
        let context = serde_json::to_string_pretty(&self.run.context)
            .unwrap_or_else(|e| format!("(the context could not be written as JSON: {e})"));
        let prompt = format!("{}\n\nContext (JSON):\n{context}", prompt.into());
        self.decide(prompt).await
    }
}
