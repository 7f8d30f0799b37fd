//! The traits that `#[guiderail::machine]` implements for a machine enum.
//!
//! They can be implemented by hand, too: `runtime/tests/hand_written.rs` runs
//! a machine without the macro, and that is what the macro's output is tested
//! against.

use std::future::Future;

use crate::HandlerError;
use crate::bounds::BoundHit;
use crate::context::Cx;
use crate::gate::DecisionRecord;
use crate::graph::Graph;

/// A state machine: an enum whose variants are its states.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a guiderail machine",
    note = "put `#[guiderail::machine(context = YourContext)]` on the enum whose variants are the states"
)]
pub trait Machine: Sized + Send + 'static {
    /// The value every handler of a run can read and change.
    type Context: Send + 'static;

    /// The machine's name (the enum's name).
    const NAME: &'static str;

    /// The machine's graph.
    fn graph() -> &'static Graph;

    /// The index in [`Graph::states`] of the state this value is in.
    fn state_index(&self) -> usize;

    /// The name of the state this value is in.
    fn state_name(&self) -> &'static str {
        Self::graph().states[self.state_index()].name
    }

    /// The state to move to when a bound is hit (`on_exhausted`), carrying
    /// the bound if the state's payload is a [`BoundHit`]. `None` when the
    /// machine declares none: the run then ends with the bound as its error.
    fn on_exhausted(hit: &BoundHit) -> Option<Self>;
}

/// What one step of a run produced.
#[derive(Debug)]
pub enum Step<M> {
    /// The handler returned a move.
    Moved {
        /// The state the run moves to.
        next: M,
        /// How a gate decided the move; `None` for plain states.
        decision: Option<Box<DecisionRecord>>,
    },
    /// The handler returned an error.
    Failed(HandlerError),
    /// The state is a `#[wait]` state: the run suspends here.
    Wait(M),
    /// The state is terminal: the run is finished.
    Terminal(M),
}

/// Runs one step of machine `Self` with handler set `H`.
///
/// Generated as a `match` on the state with a direct `.await` of the
/// handler, so a step allocates nothing.
#[diagnostic::on_unimplemented(
    message = "`{H}` does not handle the states of `{Self}`",
    note = "implement the machine's `Handlers` trait for `{H}`: `#[guiderail::handlers] impl <machine module>::Handlers for {H} {{ .. }}`"
)]
pub trait Dispatch<H: ?Sized>: Machine {
    /// Runs the handler of the current state.
    fn step<'a>(
        self,
        handlers: &'a H,
        cx: &'a mut Cx<'_, Self>,
    ) -> impl Future<Output = Step<Self>> + Send + 'a;
}

/// A value that moves a waiting run on: the move enum of a `#[wait]` state.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a signal for `{M}`",
    note = "a signal is the `…Next` enum of a `#[wait]` state, e.g. `support::AwaitApprovalNext::Done`"
)]
pub trait Signal<M: Machine>: Send + 'static {
    /// Index of the wait state this signal belongs to.
    const STATE: usize;
    /// The state the run moves to.
    fn into_state(self) -> M;
}

/// The initial state of a run, as built by the generated `Machine::start(..)`.
///
/// Only the generated constructor makes one, so a run can only begin in the
/// `#[initial]` state.
#[derive(Debug)]
pub struct Start<M>(pub(crate) M);

impl<M> Start<M> {
    #[doc(hidden)]
    pub fn __new(state: M) -> Self {
        Start(state)
    }

    /// The initial state.
    pub fn state(&self) -> &M {
        &self.0
    }
}
