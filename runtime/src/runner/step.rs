//! The run loop: bounds check → handler (with timeout) → events → next.

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::{Ended, Env, Outcome, Suspended};
use crate::bounds::{BoundHit, millis};
use crate::context::{Cx, RunCore};
use crate::error::{RunError, RunErrorKind};
use crate::event::{DecidedVia, EventKind};
use crate::gate::GateError;
use crate::graph::{Graph, StateKind};
use crate::machine::{Dispatch, Machine, Step};

/// Runs `state` on until the run finishes, waits or fails.
pub(crate) async fn drive<M, H>(
    env: &Env,
    handlers: &H,
    mut state: M,
    mut core: RunCore<M::Context>,
) -> Result<Ended<M>, RunError>
where
    M: Dispatch<H>,
    H: ?Sized + Sync,
{
    let graph = M::graph();
    let span = tracing::info_span!("guiderail.run", run_id = %core.run_id, machine = M::NAME);
    async move {
        loop {
            let idx = state.state_index();
            let info = &graph.states[idx];
            // Every entry into a non-terminal state is one step (for a wait
            // state, the signal that moves it on).
            if info.kind != StateKind::Terminal {
                if let Some(hit) = bound_hit(env, graph, &core, idx) {
                    state = exhausted::<M>(env, info.name, &mut core, hit)?;
                    continue;
                }
                core.visits[idx] += 1;
                core.steps += 1;
            }
            env.emit(core.run_id, M::NAME, || EventKind::Entered {
                state: info.name.into(),
                step: core.steps,
            });
            let limit = time_limit(env, &core, info.name);
            let step_span =
                tracing::debug_span!("guiderail.step", state = info.name, step = core.steps);
            let mut cx = Cx {
                run: &mut core,
                env,
                state: info,
            };
            let result = match limit {
                Some((limit, hit)) => {
                    match tokio::time::timeout(limit, catching(state.step(handlers, &mut cx)))
                        .instrument(step_span)
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => Ok(Step::Failed(hit.into())),
                    }
                }
                None => {
                    catching(state.step(handlers, &mut cx))
                        .instrument(step_span)
                        .await
                }
            };
            let step = match result {
                Ok(step) => step,
                Err(panic) => {
                    return Err(fail::<M>(
                        env,
                        &core,
                        info.name,
                        RunErrorKind::Panicked(panic),
                    ));
                }
            };
            match step {
                Step::Moved { next, decision } => {
                    let via = if let Some(record) = decision {
                        core.decisions += 1;
                        env.emit(core.run_id, M::NAME, || {
                            EventKind::Decision(Box::new(record))
                        });
                        DecidedVia::Gate
                    } else {
                        DecidedVia::Code
                    };
                    let to = next.state_name();
                    core.path.push(to);
                    env.emit(core.run_id, M::NAME, || EventKind::Transition {
                        from: info.name.into(),
                        to: to.into(),
                        step: core.steps,
                        via,
                    });
                    state = next;
                }
                Step::Failed(error) => {
                    let kind = classify(error);
                    match kind {
                        RunErrorKind::Bound(hit) | RunErrorKind::Gate(GateError::Bound(hit)) => {
                            state = exhausted::<M>(env, info.name, &mut core, hit)?;
                        }
                        kind => return Err(fail::<M>(env, &core, info.name, kind)),
                    }
                }
                Step::Wait(state) => {
                    env.emit(core.run_id, M::NAME, || EventKind::Waiting {
                        state: info.name.into(),
                    });
                    return Ok(Ended::Waiting(Suspended { state, core }));
                }
                Step::Terminal(terminal) => {
                    env.emit(core.run_id, M::NAME, || EventKind::Finished {
                        state: info.name.into(),
                        steps: core.steps,
                        usage: core.usage,
                    });
                    let RunCore {
                        run_id,
                        context,
                        steps,
                        path,
                        usage,
                        decisions,
                        bound_hit,
                        ..
                    } = core;
                    return Ok(Ended::Finished(Outcome {
                        run_id,
                        terminal,
                        context,
                        path,
                        steps,
                        decisions,
                        usage,
                        bound_hit,
                    }));
                }
            }
        }
    }
    .instrument(span)
    .await
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

/// Sorts a handler error into the runner's own kinds (bounds and gate
/// failures travel through `?` as `HandlerError`s).
fn classify(error: crate::HandlerError) -> RunErrorKind {
    let error = match error.downcast::<BoundHit>() {
        Ok(hit) => return RunErrorKind::Bound(hit),
        Err(e) => e,
    };
    match error.downcast::<GateError>() {
        Ok(GateError::Bound(hit)) => RunErrorKind::Bound(hit),
        Ok(gate) => RunErrorKind::Gate(gate),
        Err(e) => RunErrorKind::Handler(e),
    }
}

/// The first bound the next handler call would break, if any.
fn bound_hit<C>(env: &Env, graph: &Graph, core: &RunCore<C>, idx: usize) -> Option<BoundHit> {
    if let Some(limit) = core.wrap_up_steps {
        // Wrapping up: only the wrap-up allowance applies.
        return (core.steps >= limit).then_some(BoundHit::Steps { limit });
    }
    let max_steps = match (graph.max_steps, env.bounds.steps()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(limit) = max_steps
        && core.steps >= limit
    {
        return Some(BoundHit::Steps { limit });
    }
    let info = &graph.states[idx];
    if let Some(limit) = info.max_visits
        && core.visits[idx] >= limit
    {
        return Some(BoundHit::Visits {
            state: info.name.to_owned(),
            limit,
        });
    }
    if let Some(deadline) = env.bounds.run_deadline()
        && core.started.elapsed() >= deadline
    {
        return Some(BoundHit::Deadline {
            limit_ms: millis(deadline),
        });
    }
    if let Some(limit) = env.bounds.tokens()
        && core.usage.total_tokens() >= limit
    {
        return Some(BoundHit::Tokens {
            limit,
            used: core.usage.total_tokens(),
        });
    }
    if let Some(limit) = env.bounds.cost_micros()
        && core.usage.cost_micros >= limit
    {
        return Some(BoundHit::Cost {
            limit_micros: limit,
            used_micros: core.usage.cost_micros,
        });
    }
    None
}

/// How long the next handler may take, and which bound a timeout is.
fn time_limit<C>(env: &Env, core: &RunCore<C>, state: &str) -> Option<(Duration, BoundHit)> {
    let per_handler = env.bounds.timeout().map(|t| {
        (
            t,
            BoundHit::HandlerTimeout {
                state: state.to_owned(),
                limit_ms: millis(t),
            },
        )
    });
    let deadline = if core.wrap_up_steps.is_some() {
        None
    } else {
        env.bounds.run_deadline().map(|d| {
            let left = d.saturating_sub(Instant::now().saturating_duration_since(core.started));
            (
                left,
                BoundHit::Deadline {
                    limit_ms: millis(d),
                },
            )
        })
    };
    match (per_handler, deadline) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// A bound was hit: move to the wrap-up state, or end the run.
fn exhausted<M: Machine>(
    env: &Env,
    from: &'static str,
    core: &mut RunCore<M::Context>,
    hit: BoundHit,
) -> Result<M, RunError> {
    let graph = M::graph();
    let wrap = if core.wrap_up_steps.is_none() {
        M::on_exhausted(&hit)
    } else {
        None
    };
    env.emit(core.run_id, M::NAME, || EventKind::BoundHit {
        hit: hit.clone(),
        wrap_up: wrap.as_ref().map(|w| w.state_name().into()),
    });
    tracing::warn!(run_id = %core.run_id, state = from, bound = hit.name(), "bound hit: {hit}");
    match wrap {
        Some(next) => {
            core.wrap_up_steps = Some(core.steps + graph.states.len() as u64);
            core.bound_hit = Some(hit);
            let to = next.state_name();
            core.path.push(to);
            env.emit(core.run_id, M::NAME, || EventKind::Transition {
                from: from.into(),
                to: to.into(),
                step: core.steps,
                via: DecidedVia::WrapUp,
            });
            Ok(next)
        }
        None => Err(fail::<M>(env, core, from, RunErrorKind::Bound(hit))),
    }
}

fn fail<M: Machine>(
    env: &Env,
    core: &RunCore<M::Context>,
    state: &'static str,
    kind: RunErrorKind,
) -> RunError {
    let error = RunError {
        run_id: core.run_id,
        machine: M::NAME,
        state,
        step: core.steps,
        kind,
    };
    env.emit(core.run_id, M::NAME, || EventKind::Failed {
        state: state.into(),
        step: core.steps,
        error: error.kind.to_string(),
    });
    error
}
