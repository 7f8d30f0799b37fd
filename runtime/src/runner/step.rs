//! The run loop: bounds check → handler (with timeout) → events → next.

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use super::durable::{DurableContext, DurableMachine, StoreHook, saved, status_after_move};
use super::{Ended, Env, Outcome, Suspended};
use crate::bounds::{BoundHit, millis};
use crate::context::{Cx, RunCore, StepClock};
use crate::error::{RunError, RunErrorKind};
use crate::event::{DecidedVia, EventKind};
use crate::gate::GateError;
use crate::graph::{Graph, StateInfo, StateKind};
use crate::machine::{Dispatch, Machine, Step};
use crate::path::Path;
use crate::run_id::RunId;
use crate::store::RunStatus;

/// How the loop stopped; [`ended`] puts the run's core back with it.
enum Stop<M> {
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
    let looped = run_loop(env, handlers, state, &mut core, ());
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
                M::graph().states[state].name,
                RunErrorKind::Panicked(panic),
            ))
        }
    }
}

/// No checkpoint: what `checkpoint!` is in the in-memory loop.
macro_rules! no_checkpoint {
    ($($ignored:tt)*) => {};
}

/// Writes a checkpoint of a durable run and waits for it; a store failure
/// ends the run with `RunErrorKind::Store`.
macro_rules! checkpoint {
    ($hook:ident, $env:ident, $state:expr, $core:expr, $status:expr, $via:expr, $decision:expr, $name:expr) => {
        let pending = $hook.save($state, $core, $status, $via, $decision);
        saved::<M>($env, pending, $core.run_id, $core.steps, $name).await?;
        $hook.written($env, M::NAME);
    };
}

/// The run loop, written once and expanded twice: `run_loop` for in-memory
/// runs, where `$save` is `no_checkpoint` and the loop has no `.await`
/// besides the handler's, and `run_loop_durable`, where it is
/// `checkpoint`. (A single loop generic over a hook whose calls a `const`
/// switches off still cost the in-memory loop 15-40%: the dead `.await`s
/// shape the future's layout.)
macro_rules! run_loop {
    (
        $(#[$attr:meta])* $name:ident, $hook:ty, $save:ident,
        durable: $durable:literal, [$($bounds:tt)*]
    ) => {
        $(#[$attr])*
        #[allow(unused_variables, clippy::unused_unit)]
        async fn $name<M, H>(
            env: &Env,
            handlers: &H,
            mut state: M,
            core: &mut RunCore<M::Context>,
            hook: $hook,
        ) -> Result<Stop<M>, RunError>
        where
            M: Dispatch<H>,
            H: ?Sized + Sync,
            $($bounds)*
        {
            // `M::graph()` is called where it is used rather than kept in a
            // local: a local would live in the run's future, while the call
            // inlines to the address of a `static`, so the per-state lookups
            // become constant loads.
            let mut limits = Limits::new(env, M::graph(), core.wrap_up_steps);
            if limits.events {
                core.clock = StepClock::start();
            }
            // One `Cx` for the whole loop, pointed at each step's state;
            // the run's counters are reached through it.
            let mut cx = Cx {
                run: core,
                env,
                state: &M::graph().states[state.state_index()],
            };
            loop {
                let idx = state.state_index();
                let info = &M::graph().states[idx];
                cx.state = info;
                // Every entry into a non-terminal state is one step (for a
                // wait state, the signal that moves it on).
                if info.kind != StateKind::Terminal {
                    if let Some(hit) = bound_hit(env, &limits, M::graph(), cx.run, idx) {
                        state = exhausted::<M>(env, info.name, cx.run, hit)?;
                        limits.wrap_up(cx.run.wrap_up_steps);
                        $save!(
                            hook,
                            env,
                            &state,
                            &*cx.run,
                            status_after_move(&state),
                            Some(DecidedVia::WrapUp),
                            None,
                            info.name
                        );
                        continue;
                    }
                    cx.run.visits[idx] += 1;
                    cx.run.steps += 1;
                }
                // Events, timeouts and per-step tracing spans share one
                // slower path, so the plain loop keeps a single `.await`
                // and one check.
                let step = if limits.guarded {
                    if limits.events {
                        entered(env, M::NAME, cx.run, info, &state, $durable);
                    }
                    let limit = if limits.timed {
                        time_limit(env, &*cx.run, info.name)
                    } else {
                        None
                    };
                    let span = if limits.traced
                        && matches!(info.kind, StateKind::Plain | StateKind::Gate)
                    {
                        step_span(M::NAME, cx.run.run_id, info.name, cx.run.steps)
                    } else {
                        tracing::Span::none()
                    };
                    let step = guarded(state.step(handlers, &mut cx), limit, span.clone()).await;
                    record_usage(&span, &cx.run.usage);
                    if limits.events {
                        // A durable run tells of its move once the
                        // checkpoint is written; an in-memory one now.
                        handler_returned(env, cx.run, info, &step, !$durable);
                    }
                    step
                } else {
                    state.step(handlers, &mut cx).await
                };
                match step {
                    Step::Moved { next, decision } => {
                        let to = next.state_index();
                        cx.run.path.push(to as u32);
                        let via = if decision.is_some() {
                            cx.run.decisions += 1;
                            DecidedVia::Gate
                        } else {
                            DecidedVia::Code
                        };
                        // The move and the decision that picked it are one
                        // checkpoint, written before anyone is told.
                        // (Arguments of `$save!` are only evaluated when it
                        // checkpoints: the in-memory loop pays for none.)
                        $save!(
                            hook,
                            env,
                            &next,
                            &*cx.run,
                            status_after_move(&next),
                            Some(via),
                            decision.as_deref(),
                            info.name
                        );
                        if $durable && limits.events {
                            let to = M::graph().states[to].name;
                            moved(env, M::NAME, cx.run, info.name, to, via, decision);
                        } else if let Some(record) = decision {
                            // Out of line: the drop of a record is large,
                            // and plain states never have one.
                            discard(record);
                        }
                        state = next;
                    }
                    Step::Failed(error) => {
                        let kind = classify(error);
                        match kind {
                            RunErrorKind::Bound(hit)
                            | RunErrorKind::Gate(GateError::Bound(hit)) => {
                                state = exhausted::<M>(env, info.name, cx.run, hit)?;
                                limits.wrap_up(cx.run.wrap_up_steps);
                                $save!(
                                    hook,
                                    env,
                                    &state,
                                    &*cx.run,
                                    status_after_move(&state),
                                    Some(DecidedVia::WrapUp),
                                    None,
                                    info.name
                                );
                            }
                            kind => {
                                return Err(fail::<M>(
                                    env,
                                    cx.run.run_id,
                                    cx.run.steps,
                                    info.name,
                                    kind,
                                ));
                            }
                        }
                    }
                    Step::Wait(state) => {
                        let waiting = RunStatus::Waiting;
                        $save!(hook, env, &state, &*cx.run, waiting, None, None, info.name);
                        if limits.events {
                            env.emit(cx.run.run_id, M::NAME, || EventKind::Waiting {
                                state: info.name.into(),
                            });
                        }
                        return Ok(Stop::Waiting(state));
                    }
                    Step::Terminal(terminal) => {
                        if limits.events {
                            let run = &*cx.run;
                            env.emit(run.run_id, M::NAME, || EventKind::Finished {
                                state: info.name.into(),
                                steps: run.steps,
                                usage: run.usage,
                            });
                        }
                        return Ok(Stop::Finished(terminal));
                    }
                }
            }
        }
    };
}

run_loop!(run_loop, (), no_checkpoint, durable: false, []);
run_loop!(
    run_loop_durable,
    &mut StoreHook,
    checkpoint,
    durable: true,
    [M: DurableMachine, M::Context: DurableContext,]
);

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
    // A journaled effect's store failure (`Cx::effect`) is the store's.
    let error = match error.downcast::<crate::store::StoreError>() {
        Ok(e) => return RunErrorKind::Store(Box::new(e)),
        Err(e) => e,
    };
    match error.downcast::<GateError>() {
        Ok(GateError::Bound(hit)) => RunErrorKind::Bound(hit),
        Ok(gate) => RunErrorKind::Gate(gate),
        Err(e) => RunErrorKind::Handler(e),
    }
}

/// The limits of one run, worked out once when it starts or resumes, so
/// the per-step check is two comparisons when only steps and visits apply.
struct Limits {
    /// The smaller of the machine's and the runner's `max_steps`; once
    /// the run wraps up, its wrap-up allowance instead.
    max_steps: u64,
    /// The run is wrapping up: only `max_steps` (its allowance) applies.
    wrapping: bool,
    /// A deadline, token or money budget is set.
    budgets: bool,
    /// A deadline or a handler timeout is set.
    timed: bool,
    /// There are event subscribers.
    events: bool,
    /// A tracing subscriber wants per-step spans.
    traced: bool,
    /// `timed`, `traced` or `events`: steps take the slower path.
    guarded: bool,
}

impl Limits {
    fn new(env: &Env, graph: &Graph, wrap_up_steps: Option<u64>) -> Self {
        let max_steps = match (graph.max_steps, env.bounds.steps()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(u64::MAX),
        };
        let b = &env.bounds;
        let mut limits = Limits {
            max_steps,
            wrapping: false,
            budgets: b.run_deadline().is_some()
                || b.tokens().is_some()
                || b.cost_micros().is_some(),
            timed: b.run_deadline().is_some() || b.timeout().is_some(),
            events: !env.subscribers.is_empty(),
            traced: tracing::enabled!(target: STEP_SPAN_TARGET, tracing::Level::INFO),
            guarded: false,
        };
        limits.guarded = limits.timed || limits.traced || limits.events;
        limits.wrap_up(wrap_up_steps);
        limits
    }

    /// Switches to the wrap-up allowance once the run has one.
    #[inline]
    fn wrap_up(&mut self, wrap_up_steps: Option<u64>) {
        if let Some(limit) = wrap_up_steps {
            self.max_steps = limit;
            self.wrapping = true;
        }
    }
}

/// The first bound the next step would break, if any.
#[inline]
fn bound_hit<C>(
    env: &Env,
    limits: &Limits,
    graph: &Graph,
    core: &RunCore<C>,
    idx: usize,
) -> Option<BoundHit> {
    if core.steps >= limits.max_steps {
        return Some(BoundHit::Steps {
            limit: limits.max_steps,
        });
    }
    if limits.wrapping {
        // Wrapping up: only the wrap-up allowance applies.
        return None;
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
    if limits.budgets {
        return budget_hit(env, core);
    }
    None
}

/// The deadline and the token and money budgets.
#[inline(never)]
fn budget_hit<C>(env: &Env, core: &RunCore<C>) -> Option<BoundHit> {
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
#[inline(never)]
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
            core.path.push(next.state_index() as u32);
            env.emit(core.run_id, M::NAME, || EventKind::Transition {
                from: from.into(),
                to: to.into(),
                step: core.steps,
                via: DecidedVia::WrapUp,
            });
            Ok(next)
        }
        None => Err(fail::<M>(
            env,
            core.run_id,
            core.steps,
            from,
            RunErrorKind::Bound(hit),
        )),
    }
}

pub(super) fn fail<M: Machine>(
    env: &Env,
    run_id: RunId,
    step: u64,
    state: &'static str,
    kind: RunErrorKind,
) -> RunError {
    let error = RunError {
        run_id,
        machine: M::NAME,
        state,
        step,
        kind,
    };
    env.emit(run_id, M::NAME, || EventKind::Failed {
        state: state.into(),
        step,
        error: error.kind.to_string(),
    });
    error
}

/// Tells subscribers the run entered `info` (out of line: the loop
/// without subscribers stays as small as it was). The step's clock starts
/// where the previous step's handler ended, or now with `restamp` (a
/// durable run, which wrote a checkpoint in between).
#[cold]
#[inline(never)]
fn entered<M: Machine>(
    env: &Env,
    machine: &'static str,
    run: &mut RunCore<M::Context>,
    info: &StateInfo,
    state: &M,
    restamp: bool,
) {
    if restamp {
        run.clock.lap();
    }
    env.emit_at(run.clock.mark_ms(), run.run_id, machine, || {
        EventKind::Entered {
            state: info.name.into(),
            step: run.steps,
            payload: state.payload(),
        }
    });
}

/// Drops `value` out of line.
#[cold]
#[inline(never)]
fn discard<T>(value: T) {
    drop(value);
}

/// A handler returned: times it, and tells subscribers of a failure or,
/// with `moves`, of the move (a durable run tells of its move once the
/// checkpoint is written, with [`moved`]).
#[cold]
#[inline(never)]
fn handler_returned<M: Machine>(
    env: &Env,
    run: &mut RunCore<M::Context>,
    info: &StateInfo,
    step: &Step<M>,
    moves: bool,
) {
    match step {
        Step::Wait(_) | Step::Terminal(_) => {}
        Step::Failed(_) => {
            run.clock.lap();
            handler_finished(env, M::NAME, run, info.name);
        }
        Step::Moved { next, decision } => {
            run.clock.lap();
            if moves {
                let via = if decision.is_some() {
                    DecidedVia::Gate
                } else {
                    DecidedVia::Code
                };
                let to = next.state_name();
                moved(env, M::NAME, run, info.name, to, via, decision.clone());
            }
        }
    }
}

/// Tells subscribers how long the handler of `state` took (the last lap
/// of the run's clock).
fn handler_finished<C>(env: &Env, machine: &'static str, run: &RunCore<C>, state: &'static str) {
    env.emit_at(run.clock.mark_ms(), run.run_id, machine, || {
        EventKind::HandlerFinished {
            state: state.into(),
            step: run.steps,
            duration_us: run.clock.lap_us(),
        }
    });
}

/// Tells subscribers how a gate decided (made inside the handler, so
/// first), that the handler finished, and that the run moved.
#[cold]
#[inline(never)]
fn moved<C>(
    env: &Env,
    machine: &'static str,
    run: &RunCore<C>,
    from: &'static str,
    to: &'static str,
    via: DecidedVia,
    decision: Option<Box<crate::gate::DecisionRecord>>,
) {
    let at_ms = run.clock.mark_ms();
    if let Some(record) = decision {
        env.emit_at(at_ms, run.run_id, machine, || EventKind::Decision(record));
    }
    handler_finished(env, machine, run, from);
    env.emit_at(at_ms, run.run_id, machine, || EventKind::Transition {
        from: from.into(),
        to: to.into(),
        step: run.steps,
        via,
    });
}

/// The target of the per-step spans.
const STEP_SPAN_TARGET: &str = "guiderail::step";

/// A span for one step: run, machine, state and step now, the run's tokens
/// and cost once the handler returns.
#[cold]
#[inline(never)]
fn step_span(
    machine: &'static str,
    run_id: RunId,
    state: &'static str,
    step: u64,
) -> tracing::Span {
    tracing::info_span!(
        target: STEP_SPAN_TARGET,
        "guiderail.step",
        run_id = %run_id,
        machine,
        state,
        step,
        guiderail.tokens = tracing::field::Empty,
        guiderail.cost_micros = tracing::field::Empty,
    )
}

fn record_usage(span: &tracing::Span, usage: &crate::bounds::Usage) {
    if !span.is_disabled() {
        span.record("guiderail.tokens", usage.total_tokens());
        span.record("guiderail.cost_micros", usage.cost_micros);
    }
}

/// A step with its time limit and inside its span.
async fn guarded<M>(
    step: impl Future<Output = Step<M>>,
    limit: Option<(Duration, BoundHit)>,
    span: tracing::Span,
) -> Step<M> {
    let step = step.instrument(span);
    match limit {
        Some((limit, hit)) => match tokio::time::timeout(limit, step).await {
            Ok(step) => step,
            Err(_) => Step::Failed(hit.into()),
        },
        None => step.await,
    }
}
