//! Driving a run: the run loop inside a catch for panics, and what the run
//! ended with.

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;

use tracing::Instrument;

use super::durable::{DurableContext, DurableMachine, StoreHook};
use super::loop_parts::fail;
use super::run_loop::run_loop_durable;
use super::{Ended, Env, Outcome, Suspended};
use crate::context::RunCore;
use crate::error::{RunError, RunErrorKind};
use crate::machine::{Dispatch, Machine};
use crate::path::Path;

/// How the run loop stopped (`ended` puts the run's core back with it).
pub enum Stop<M> {
    /// At a wait state.
    Waiting(M),
    /// At a terminal state.
    Finished(M),
}

/// Runs `state` on until the run finishes, waits or fails.
///
/// Panics in handlers are caught once around the whole loop (a
/// `catch_unwind` per step would stop the step from being inlined into the
/// loop). The run's core lives here, outside the loop's future, so a panic
/// is reported with the step and state the core shows.
pub(crate) async fn drive<M, H>(
    env: &Env,
    handlers: &H,
    state: M,
    mut core: RunCore<M::Context>,
) -> Result<Ended<M>, RunError>
where
    M: Dispatch<H>,
    H: ?Sized + Sync,
{
    let span = tracing::info_span!("guiderail.run", run_id = %core.run_id, machine = M::NAME);
    let at = Start::of(&state, &core);
    let looped = Dispatch::<H>::__run(state, env, handlers, &mut core);
    let result = catching(looped).instrument(span).await;
    ended(env, result, core, at)
}

/// [`drive`] for a durable run: the same loop, with a checkpoint through
/// `hook` after every transition and when the run waits.
pub(crate) async fn drive_durable<M, H>(
    env: &Env,
    handlers: &H,
    state: M,
    mut core: RunCore<M::Context>,
    hook: &mut StoreHook,
) -> Result<Ended<M>, RunError>
where
    M: Dispatch<H> + DurableMachine,
    M::Context: DurableContext,
    H: ?Sized + Sync,
{
    let span = tracing::info_span!("guiderail.run", run_id = %core.run_id, machine = M::NAME);
    let at = Start::of(&state, &core);
    let looped = run_loop_durable(env, handlers, state, &mut core, hook);
    let result = catching(looped).instrument(span).await;
    ended(env, result, core, at)
}

/// Where a drive of the loop began: after a panic, the run is in the state
/// its path entered last since then, or still in this one.
struct Start {
    state: usize,
    path_len: usize,
}

impl Start {
    fn of<M: Machine>(state: &M, core: &RunCore<M::Context>) -> Self {
        Start {
            state: state.state_index(),
            path_len: core.path.len(),
        }
    }
}

/// The run's end, from how the loop stopped and the run's core.
#[expect(
    clippy::result_large_err,
    reason = "a run's error is built once, when the run ends"
)]
fn ended<M: Machine>(
    env: &Env,
    result: Result<Result<Stop<M>, RunError>, String>,
    mut core: RunCore<M::Context>,
    at: Start,
) -> Result<Ended<M>, RunError> {
    match result {
        Ok(Ok(Stop::Waiting(state))) => Ok(Ended::Waiting(Suspended { state, core })),
        Ok(Ok(Stop::Finished(terminal))) => {
            let path = Path::new(M::graph().states, std::mem::take(&mut core.path));
            let RunCore {
                run_id,
                context,
                steps,
                usage,
                decisions,
                bound_hit,
                ..
            } = core;
            Ok(Ended::Finished(Outcome {
                run_id,
                terminal,
                context,
                path,
                steps,
                decisions,
                usage,
                bound_hit,
            }))
        }
        Ok(Err(error)) => Err(error),
        Err(panic) => {
            let state = match core.path.get(at.path_len..) {
                Some([.., last]) => *last as usize,
                _ => at.state,
            };
            Err(fail::<M>(
                env,
                core.run_id,
                core.steps,
                core.usage,
                M::graph().states[state].name,
                RunErrorKind::Panicked(panic),
            ))
        }
    }
}

/// Polls `fut`, turning a panic inside it into an `Err` with its message.
async fn catching<F: Future>(fut: F) -> Result<F::Output, String> {
    let mut fut = pin!(fut);
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(p) => p.map(Ok),
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a handler panicked".to_owned());
                std::task::Poll::Ready(Err(msg))
            }
        },
    )
    .await
}
