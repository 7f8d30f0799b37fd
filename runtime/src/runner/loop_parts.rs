//! What the run loop (`__run_loop!`) calls: the run's limits, the bound
//! checks and counters, the events and the per-step spans. Public only
//! through `__private::run`, for the loop that `#[machine]` expands.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use super::Env;
use crate::bounds::{BoundHit, Usage, millis};
use crate::context::{Cx, RunCore};
use crate::error::{RunError, RunErrorKind};
use crate::event::{DecidedVia, EventKind};
use crate::gate::GateError;
use crate::graph::{StateInfo, StateKind};
use crate::machine::{Machine, Step};
use crate::run_id::RunId;

/// Sorts a handler error into the runner's own kinds (bounds and gate
/// failures travel through `?` as `HandlerError`s): a bound that was hit,
/// which a wrap-up state may take over, or the run's error.
pub fn classify(error: crate::HandlerError) -> Result<BoundHit, RunErrorKind> {
    let error = match error.downcast::<BoundHit>() {
        Ok(hit) => return Ok(hit),
        Err(e) => e,
    };
    // A journaled effect's store failure (`Cx::effect`) is the store's.
    let error = match error.downcast::<crate::store::StoreError>() {
        Ok(e) => return Err(RunErrorKind::Store(Box::new(e))),
        Err(e) => e,
    };
    match error.downcast::<GateError>() {
        Ok(GateError::Bound(hit)) => Ok(hit),
        Ok(gate) => Err(RunErrorKind::Gate(gate)),
        Err(e) => Err(RunErrorKind::Handler(e)),
    }
}

/// The limits of one run, worked out once when it starts or resumes, so
/// the per-step check is two comparisons when only steps and visits apply.
pub struct Limits {
    /// The smaller of the machine's and the runner's `max_steps`; once
    /// the run wraps up, its wrap-up allowance instead.
    max_steps: u64,
    /// The run is wrapping up: only `max_steps` (its allowance) applies.
    wrapping: bool,
    /// A deadline, token or money budget is set (and the run is not
    /// wrapping up).
    budgets: bool,
    /// A deadline or a handler timeout is set.
    timed: bool,
    /// There are event subscribers.
    pub events: bool,
    /// A tracing subscriber wants per-step spans.
    traced: bool,
    /// `timed`, `traced` or `events`: steps take the slower path.
    pub guarded: bool,
    /// Stamps the step events.
    pub clock: StepClock,
}

impl Limits {
    /// The limits of a run of `M` starting or resuming with `core`; the
    /// event clock starts now.
    pub fn new<M: Machine>(env: &Env, core: &RunCore<M::Context>) -> Self {
        let graph = M::graph();
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
            clock: StepClock::start(),
        };
        limits.guarded = limits.timed || limits.traced || limits.events;
        limits.wrap_up_at(core.wrap_up_steps);
        limits
    }

    /// Switches to the wrap-up allowance once the run has one.
    #[inline]
    pub fn wrap_up<M: Machine>(&mut self, cx: &Cx<'_, M>) {
        self.wrap_up_at(cx.run.wrap_up_steps);
    }

    fn wrap_up_at(&mut self, wrap_up_steps: Option<u64>) {
        if let Some(limit) = wrap_up_steps {
            self.max_steps = limit;
            self.wrapping = true;
            self.budgets = false;
        }
    }
}

/// The loop's `Cx`, at the run's first state.
#[inline]
pub fn cx<'r, M: Machine>(core: &'r mut RunCore<M::Context>, env: &'r Env, state: &M) -> Cx<'r, M> {
    Cx {
        run: core,
        env,
        state: state.state_index(),
    }
}

/// Points `cx` at the state of index `idx`.
#[inline(always)]
pub fn at<M: Machine>(cx: &mut Cx<'_, M>, idx: usize) {
    cx.state = idx;
}

/// Counts a step in the state of index `idx`.
#[inline(always)]
pub fn count_step<M: Machine>(cx: &mut Cx<'_, M>, idx: usize) {
    cx.run.steps += 1;
    cx.run.visits[idx] += 1;
}

/// Records the move to `next` in the path (and the decision, if a gate
/// made it); how it was decided.
#[inline(always)]
pub fn moved_to<M: Machine>(cx: &mut Cx<'_, M>, next: &M, decided: bool) -> DecidedVia {
    cx.run.path.push(next.state_index() as u32);
    if decided {
        cx.run.decisions += 1;
    }
    via(decided)
}

/// How a move was decided: by a gate, or by the handler's code.
#[inline(always)]
fn via(decided: bool) -> DecidedVia {
    if decided {
        DecidedVia::Gate
    } else {
        DecidedVia::Code
    }
}

/// The first bound the next step, in `info` (of index `idx`), would break.
#[inline(always)]
pub fn bound_hit<M: Machine>(
    env: &Env,
    limits: &Limits,
    cx: &Cx<'_, M>,
    info: &StateInfo,
    idx: usize,
) -> Option<BoundHit> {
    let core = &*cx.run;
    if core.steps >= limits.max_steps {
        return Some(BoundHit::Steps {
            limit: limits.max_steps,
        });
    }
    // Wrapping up, only the wrap-up allowance applies (`wrap_up` turns
    // the budgets off).
    if let Some(limit) = info.max_visits
        && !limits.wrapping
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

/// How long the handler of `info` may take, and which bound a timeout is.
#[inline]
pub fn time_limit<M: Machine>(
    env: &Env,
    limits: &Limits,
    cx: &Cx<'_, M>,
    info: &StateInfo,
) -> Option<(Duration, BoundHit)> {
    if limits.timed {
        handler_time_limit(env, cx.run, info.name)
    } else {
        None
    }
}

#[inline(never)]
fn handler_time_limit<C>(
    env: &Env,
    core: &RunCore<C>,
    state: &str,
) -> Option<(Duration, BoundHit)> {
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

/// A bound was hit in state `from`: move to the wrap-up state, or end the
/// run (the error boxed: it is large, and this is the loop's cold path).
#[cold]
#[inline(never)]
pub fn exhausted<M: Machine>(
    env: &Env,
    from: &'static str,
    cx: &mut Cx<'_, M>,
    hit: BoundHit,
) -> Result<M, Box<RunError>> {
    let core = &mut *cx.run;
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
        None => Err(Box::new(fail::<M>(
            env,
            core.run_id,
            core.steps,
            core.usage,
            from,
            RunErrorKind::Bound(hit),
        ))),
    }
}

/// The run failed in `state` with `kind`: its error, told to subscribers.
#[cold]
#[inline(never)]
pub fn failed<M: Machine>(
    env: &Env,
    cx: &Cx<'_, M>,
    state: &'static str,
    kind: RunErrorKind,
) -> RunError {
    fail::<M>(env, cx.run.run_id, cx.run.steps, cx.run.usage, state, kind)
}

pub(super) fn fail<M: Machine>(
    env: &Env,
    run_id: RunId,
    step: u64,
    usage: Usage,
    state: &'static str,
    kind: RunErrorKind,
) -> RunError {
    let error = RunError {
        run_id,
        machine: M::NAME,
        state,
        step,
        usage,
        kind,
    };
    env.emit(run_id, M::NAME, || EventKind::Failed {
        state: state.into(),
        step,
        error: error.kind.to_string(),
    });
    error
}

/// Tells subscribers the run waits in `state`.
#[cold]
#[inline(never)]
pub fn waiting<M: Machine>(env: &Env, cx: &Cx<'_, M>, state: &'static str) {
    env.emit(cx.run.run_id, M::NAME, || EventKind::Waiting {
        state: state.into(),
    });
}

/// Tells subscribers the run finished in `state`.
#[cold]
#[inline(never)]
pub fn finished<M: Machine>(env: &Env, cx: &Cx<'_, M>, state: &'static str) {
    let run = &*cx.run;
    env.emit(run.run_id, M::NAME, || EventKind::Finished {
        state: state.into(),
        steps: run.steps,
        usage: run.usage,
    });
}

/// Tells subscribers the run entered `info` (out of line: the loop
/// without subscribers stays as small as it was). The step's clock starts
/// where the previous step's handler ended, or now with `restamp` (a
/// durable run, which wrote a checkpoint in between).
#[cold]
#[inline(never)]
pub fn entered<M: Machine>(
    env: &Env,
    cx: &Cx<'_, M>,
    clock: &mut StepClock,
    info: &StateInfo,
    state: &M,
    restamp: bool,
) {
    let run = &*cx.run;
    if restamp {
        clock.lap();
    }
    env.emit_at(clock.mark_ms(), run.run_id, M::NAME, || {
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
pub fn discard<T>(value: T) {
    drop(value);
}

/// A handler returned: times it, and tells subscribers of a failure or,
/// with `moves`, of the move (a durable run tells of its move once the
/// checkpoint is written, with [`moved`]).
#[cold]
#[inline(never)]
pub fn handler_returned<M: Machine>(
    env: &Env,
    cx: &Cx<'_, M>,
    clock: &mut StepClock,
    info: &StateInfo,
    step: &Step<M>,
    moves: bool,
) {
    match step {
        Step::Wait(_) | Step::Terminal(_) => {}
        Step::Failed(_) => {
            clock.lap();
            handler_finished(env, M::NAME, cx.run, clock, info.name);
        }
        Step::Moved { next, decision } => {
            clock.lap();
            if moves {
                let via = via(decision.is_some());
                moved(env, cx, clock, info.name, next, via, decision.clone());
            }
        }
    }
}

/// Tells subscribers how long the handler of `state` took (the last lap
/// of the run's clock).
fn handler_finished<C>(
    env: &Env,
    machine: &'static str,
    run: &RunCore<C>,
    clock: &StepClock,
    state: &'static str,
) {
    env.emit_at(clock.mark_ms(), run.run_id, machine, || {
        EventKind::HandlerFinished {
            state: state.into(),
            step: run.steps,
            duration_us: clock.lap_us(),
        }
    });
}

/// Tells subscribers how a gate decided (made inside the handler, so
/// first), that the handler finished, and that the run moved from `from`
/// to `next`.
#[cold]
#[inline(never)]
pub fn moved<M: Machine>(
    env: &Env,
    cx: &Cx<'_, M>,
    clock: &StepClock,
    from: &'static str,
    next: &M,
    via: DecidedVia,
    decision: Option<Box<crate::gate::DecisionRecord>>,
) {
    let run = &*cx.run;
    let at_ms = clock.mark_ms();
    if let Some(record) = decision {
        env.emit_at(at_ms, run.run_id, M::NAME, || EventKind::Decision(record));
    }
    handler_finished(env, M::NAME, run, clock, from);
    env.emit_at(at_ms, run.run_id, M::NAME, || EventKind::Transition {
        from: from.into(),
        to: next.state_name().into(),
        step: run.steps,
        via,
    });
}

/// The target of the per-step spans.
const STEP_SPAN_TARGET: &str = "guiderail::step";

/// A span for the step in `info`, if a tracing subscriber wants them:
/// run, machine, state and step now, the run's tokens and cost once the
/// handler returns.
#[inline]
pub fn step_span<M: Machine>(limits: &Limits, cx: &Cx<'_, M>, info: &StateInfo) -> tracing::Span {
    if limits.traced && matches!(info.kind, StateKind::Plain | StateKind::Gate) {
        new_step_span(M::NAME, cx.run.run_id, info.name, cx.run.steps)
    } else {
        tracing::Span::none()
    }
}

#[cold]
#[inline(never)]
fn new_step_span(
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

/// Puts the run's tokens and cost on its step's span.
pub fn record_usage<M: Machine>(span: &tracing::Span, cx: &Cx<'_, M>) {
    if !span.is_disabled() {
        let usage = &cx.run.usage;
        span.record("guiderail.tokens", usage.total_tokens());
        span.record("guiderail.cost_micros", usage.cost_micros);
    }
}

/// A step with its time limit and inside its span.
pub async fn guarded<M>(
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

/// The clock of a run's step events: one monotonic read a step (when a
/// handler returns), turned into wall-clock time from a base taken when
/// the loop starts (a run starts or resumes). It lives with the loop's
/// [`Limits`], not in the run's core, so a suspended run does not carry it.
#[derive(Debug, Clone, Copy)]
pub struct StepClock {
    base: std::time::Instant,
    /// Wall-clock time at `base`, in milliseconds since the Unix epoch.
    base_ms: u64,
    /// The last lap's end, in nanoseconds since `base`.
    mark_ns: u64,
    /// The last lap's length, in nanoseconds.
    lap_ns: u64,
}

impl StepClock {
    /// A clock whose mark is now.
    fn start() -> Self {
        StepClock {
            base: std::time::Instant::now(),
            base_ms: crate::store::now_ms(),
            mark_ns: 0,
            lap_ns: 0,
        }
    }

    /// Ends a lap now (the time since the previous mark).
    fn lap(&mut self) {
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.lap_ns = now.saturating_sub(self.mark_ns);
        self.mark_ns = now;
    }

    /// The last lap's length, in microseconds.
    fn lap_us(&self) -> u64 {
        self.lap_ns / 1_000
    }

    /// The mark, in milliseconds since the Unix epoch.
    fn mark_ms(&self) -> u64 {
        self.base_ms.saturating_add(self.mark_ns / 1_000_000)
    }
}
