//! Running machines: [`Runner`], its builder, and what a run ends with.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::bounds::{BoundHit, Bounds, Usage};
use crate::context::RunCore;
use crate::error::{RunError, RunErrorKind};
use crate::event::{DecidedVia, Event, EventKind, Subscriber};
use crate::llm::{CallOptions, Encoding, Model};
use crate::machine::{Dispatch, Machine, Signal, Start};
use crate::path::Path;
use crate::run_id::RunId;

mod durable;
pub(crate) mod loop_parts;
mod replay;
pub(crate) mod run_loop;
pub(crate) mod step;

pub(crate) use durable::{saved, status_after_move};

pub use durable::{DurableContext, DurableError, DurableMachine};
pub use replay::{Divergence, ReplayReport, StepView};

/// Configuration shared by every run of a runner. (Public only as a name
/// for the run loop that `#[machine]` expands; its fields are the
/// runtime's.)
#[derive(Clone)]
pub struct Env {
    pub(crate) model: Option<Arc<dyn Model>>,
    pub(crate) call_options: CallOptions,
    pub(crate) max_repairs: u32,
    pub(crate) bounds: Bounds,
    pub(crate) subscribers: Vec<Arc<dyn Subscriber>>,
    pub(crate) durable: durable::DurableConfig,
    /// The runner's limit on child runs at once, over all fan-outs.
    pub(crate) children: Option<Arc<tokio::sync::Semaphore>>,
}

impl Env {
    /// Sends an event to every subscriber; builds it only if there is one.
    #[inline]
    pub(crate) fn emit(
        &self,
        run_id: RunId,
        machine: &'static str,
        kind: impl FnOnce() -> EventKind,
    ) {
        if !self.subscribers.is_empty() {
            self.send(Event::now(run_id, machine, kind()));
        }
    }

    /// [`Env::emit`] with the event's time given (one clock read shared by
    /// a step's events).
    pub(crate) fn emit_at(
        &self,
        at_ms: u64,
        run_id: RunId,
        machine: &'static str,
        kind: impl FnOnce() -> EventKind,
    ) {
        if !self.subscribers.is_empty() {
            self.send(Event::at(at_ms, run_id, machine, kind()));
        }
    }

    #[inline(never)]
    fn send(&self, event: Event) {
        for s in &self.subscribers {
            s.on_event(&event);
        }
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("model", &self.model)
            .field("call_options", &self.call_options)
            .field("max_repairs", &self.max_repairs)
            .field("bounds", &self.bounds)
            .field("subscribers", &self.subscribers.len())
            .field("durable", &self.durable)
            .finish()
    }
}

/// Runs machines on tokio. Cheap to clone; clones share configuration.
///
/// [`Runner::start`] runs in the caller's task; [`Runner::spawn`] gives the
/// run its own task.
#[derive(Clone, Debug)]
pub struct Runner {
    env: Arc<Env>,
}

impl Default for Runner {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a [`Runner`]: the one place configuration enters.
#[derive(Debug)]
pub struct RunnerBuilder {
    env: Env,
}

impl RunnerBuilder {
    /// The model that gates ask.
    #[must_use]
    pub fn model(self, model: impl Model + 'static) -> Self {
        self.shared_model(Arc::new(model))
    }

    /// The model that gates ask, shared with the caller (to read a
    /// [`crate::ScriptedModel`]'s requests afterwards, say).
    #[must_use]
    pub fn shared_model(mut self, model: Arc<dyn Model>) -> Self {
        self.env.model = Some(model);
        self
    }

    /// Limits for every run (default: none beyond the machine's own).
    #[must_use]
    pub fn bounds(mut self, bounds: Bounds) -> Self {
        self.env.bounds = bounds;
        self
    }

    /// How many times an invalid model answer is sent back for repair
    /// before the gate fails (default 2).
    #[must_use]
    pub fn max_repairs(mut self, repairs: u32) -> Self {
        self.env.max_repairs = repairs;
        self
    }

    /// Options for every model call (model name, temperature, …).
    #[must_use]
    pub fn call_options(mut self, options: CallOptions) -> Self {
        self.env.call_options = options;
        self
    }

    /// How gates offer their moves (default: structured output).
    #[must_use]
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.env.call_options.encoding = encoding;
        self
    }

    /// Adds an event subscriber.
    #[must_use]
    pub fn subscriber(mut self, subscriber: Arc<dyn Subscriber>) -> Self {
        self.env.subscribers.push(subscriber);
        self
    }

    /// The store that durable runs ([`Runner::start_durable`],
    /// [`Runner::resume`], [`Runner::signal_run`]) are checkpointed in.
    /// Runs started with [`Runner::start`] are never stored.
    #[must_use]
    pub fn store(self, store: impl crate::store::Store + 'static) -> Self {
        self.shared_store(Arc::new(store))
    }

    /// The store for durable runs, shared with the caller.
    #[must_use]
    pub fn shared_store(mut self, store: Arc<dyn crate::store::Store>) -> Self {
        self.env.durable.store = Some(store);
        self
    }

    /// Lets [`Runner::resume`] and [`Runner::signal_run`] continue runs
    /// stored by another version of the machine (a different graph
    /// fingerprint), as long as the state a run is in still exists; its
    /// payload must still deserialise. Off by default: such runs are
    /// refused with [`DurableError::GraphChanged`].
    #[must_use]
    pub fn allow_graph_change(mut self, allow: bool) -> Self {
        self.env.durable.allow_graph_change = allow;
        self
    }

    /// The most child runs ([`crate::Cx::fan_out`]) this runner runs at
    /// once, over all its runs' fan-outs together (default: no limit beyond
    /// each fan-out's own). Nested fan-outs count at every level, so with
    /// children that fan out themselves, leave room for their children.
    #[must_use]
    pub fn max_children(mut self, n: usize) -> Self {
        self.env.children = Some(Arc::new(tokio::sync::Semaphore::new(n.max(1))));
        self
    }

    /// The runner.
    pub fn build(self) -> Runner {
        Runner {
            env: Arc::new(self.env),
        }
    }
}

/// A run that reached a terminal state.
pub struct Outcome<M: Machine> {
    /// The run.
    pub run_id: RunId,
    /// The terminal state, with its payload.
    pub terminal: M,
    /// The context value at the end.
    pub context: M::Context,
    /// Every state entered, in order, the initial and terminal included.
    pub path: Path,
    /// Steps: entries into non-terminal states.
    pub steps: u64,
    /// Gate decisions.
    pub decisions: u64,
    /// Model usage.
    pub usage: Usage,
    /// The bound that moved the run to its wrap-up state, if one did.
    pub bound_hit: Option<BoundHit>,
}

/// A run suspended at a `#[wait]` state. It holds no task and no lock:
/// keep it wherever you like and deliver its signal with [`Runner::signal`].
pub struct Suspended<M: Machine> {
    pub(crate) state: M,
    pub(crate) core: RunCore<M::Context>,
}

impl<M: Machine> Suspended<M> {
    /// The run.
    pub fn run_id(&self) -> RunId {
        self.core.run_id
    }

    /// The wait state.
    pub fn state(&self) -> &M {
        &self.state
    }

    /// The wait state's name.
    pub fn state_name(&self) -> &'static str {
        self.state.state_name()
    }

    /// The context value.
    pub fn context(&self) -> &M::Context {
        &self.core.context
    }

    /// Every state entered so far.
    pub fn path(&self) -> Path {
        Path::new(M::graph().states, self.core.path.clone())
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.core.steps
    }
}

impl<M: Machine> fmt::Debug for Suspended<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Suspended")
            .field("run_id", &self.core.run_id)
            .field("state", &self.state_name())
            .field("steps", &self.core.steps)
            .finish_non_exhaustive()
    }
}

/// How a run stopped without an error.
pub enum Ended<M: Machine> {
    /// It reached a terminal state.
    Finished(Outcome<M>),
    /// It is waiting for a signal.
    Waiting(Suspended<M>),
}

impl<M: Machine + fmt::Debug> fmt::Debug for Outcome<M>
where
    M::Context: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outcome")
            .field("run_id", &self.run_id)
            .field("terminal", &self.terminal)
            .field("context", &self.context)
            .field("path", &self.path)
            .field("steps", &self.steps)
            .field("decisions", &self.decisions)
            .field("usage", &self.usage)
            .field("bound_hit", &self.bound_hit)
            .finish()
    }
}

impl<M: Machine + fmt::Debug> fmt::Debug for Ended<M>
where
    M::Context: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Finished(o) => f.debug_tuple("Finished").field(o).finish(),
            Ended::Waiting(s) => f.debug_tuple("Waiting").field(s).finish(),
        }
    }
}

impl<M: Machine> Ended<M> {
    /// The outcome, if the run finished.
    pub fn finished(self) -> Option<Outcome<M>> {
        match self {
            Ended::Finished(o) => Some(o),
            Ended::Waiting(_) => None,
        }
    }

    /// The suspended run, if it is waiting.
    pub fn waiting(self) -> Option<Suspended<M>> {
        match self {
            Ended::Waiting(s) => Some(s),
            Ended::Finished(_) => None,
        }
    }
}

/// A signal could not be delivered, or the resumed run failed.
pub enum SignalError<M: Machine> {
    /// The run waits in another state than the signal is for. The run is
    /// handed back unchanged.
    WrongState {
        /// The wait state the signal belongs to.
        expected: &'static str,
        /// The state the run is in.
        actual: &'static str,
        /// The run, unchanged.
        suspended: Suspended<M>,
    },
    /// The signal was delivered and the run then failed.
    Run(RunError),
}

impl<M: Machine> fmt::Debug for SignalError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalError::WrongState {
                expected, actual, ..
            } => f
                .debug_struct("WrongState")
                .field("expected", expected)
                .field("actual", actual)
                .finish_non_exhaustive(),
            SignalError::Run(e) => f.debug_tuple("Run").field(e).finish(),
        }
    }
}

impl<M: Machine> fmt::Display for SignalError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalError::WrongState {
                expected,
                actual,
                suspended,
            } => write!(
                f,
                "run {} waits in `{actual}`, but the signal is for `{expected}`; nothing was changed",
                suspended.run_id()
            ),
            SignalError::Run(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<M: Machine> std::error::Error for SignalError<M> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SignalError::Run(e) => Some(e),
            SignalError::WrongState { .. } => None,
        }
    }
}

impl Runner {
    /// A runner with no model and no limits beyond the machines' own.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts configuring a runner.
    pub fn builder() -> RunnerBuilder {
        RunnerBuilder {
            env: Env {
                model: None,
                call_options: CallOptions::default(),
                max_repairs: 2,
                bounds: Bounds::default(),
                subscribers: Vec::new(),
                durable: durable::DurableConfig::default(),
                children: None,
            },
        }
    }

    /// This runner with its durable runs kept in `store` instead.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn with_store(&self, store: Arc<dyn crate::store::Store>) -> Runner {
        let mut env = (*self.env).clone();
        env.durable.store = Some(store);
        Runner::from_env(env)
    }

    /// The limits this runner enforces.
    pub fn bounds(&self) -> &Bounds {
        &self.env.bounds
    }

    /// Runs a machine from its initial state in the current task, until it
    /// finishes, waits or fails.
    pub async fn start<M, H>(
        &self,
        handlers: &H,
        start: Start<M>,
        context: M::Context,
    ) -> Result<Ended<M>, RunError>
    where
        M: Dispatch<H>,
        H: ?Sized + Sync,
    {
        let core = self.new_core::<M>(context);
        self.begin(handlers, start.0, core).await
    }

    /// A runner over `env`.
    pub(crate) fn from_env(env: Env) -> Runner {
        Runner { env: Arc::new(env) }
    }

    /// [`Runner::start`] with the run id given.
    pub(crate) async fn start_with_id<M, H>(
        &self,
        run_id: RunId,
        handlers: &H,
        start: Start<M>,
        context: M::Context,
    ) -> Result<Ended<M>, RunError>
    where
        M: Dispatch<H>,
        H: ?Sized + Sync,
    {
        let mut core = self.new_core::<M>(context);
        core.run_id = run_id;
        self.begin(handlers, start.0, core).await
    }

    /// Runs a machine from its initial state on its own tokio task.
    pub fn spawn<M, H>(
        &self,
        handlers: Arc<H>,
        start: Start<M>,
        context: M::Context,
    ) -> RunHandle<M>
    where
        M: Dispatch<H>,
        H: ?Sized + Send + Sync + 'static,
    {
        let core = self.new_core::<M>(context);
        let run_id = core.run_id;
        let runner = self.clone();
        let join = tokio::spawn(async move { runner.begin(&*handlers, start.0, core).await });
        RunHandle { run_id, join }
    }

    /// Delivers a signal to a waiting run and runs it on until it finishes,
    /// waits again or fails.
    ///
    /// The signal is the move enum of a `#[wait]` state; if the run waits in
    /// another state, it is handed back unchanged in
    /// [`SignalError::WrongState`].
    pub async fn signal<M, H, S>(
        &self,
        handlers: &H,
        suspended: Suspended<M>,
        signal: S,
    ) -> Result<Ended<M>, SignalError<M>>
    where
        M: Dispatch<H>,
        H: ?Sized + Sync,
        S: Signal<M>,
    {
        let graph = M::graph();
        let actual = suspended.state.state_index();
        if actual != S::STATE {
            return Err(SignalError::WrongState {
                expected: graph.states[S::STATE].name,
                actual: graph.states[actual].name,
                suspended,
            });
        }
        let Suspended { state, mut core } = suspended;
        let next = signal.into_state();
        let (from, to) = (state.state_name(), next.state_name());
        core.path.push(next.state_index() as u32);
        self.env
            .emit(core.run_id, M::NAME, || EventKind::Transition {
                from: from.into(),
                to: to.into(),
                step: core.steps,
                via: DecidedVia::Signal,
            });
        step::drive(&self.env, handlers, next, core)
            .await
            .map_err(SignalError::Run)
    }

    fn new_core<M: Machine>(&self, context: M::Context) -> RunCore<M::Context> {
        let graph = M::graph();
        RunCore {
            run_id: RunId::new(),
            context,
            steps: 0,
            visits: vec![0; graph.states.len()].into_boxed_slice(),
            path: Vec::new(),
            usage: Usage::default(),
            decisions: 0,
            bound_hit: None,
            started: tokio::time::Instant::now(),
            wrap_up_steps: None,
            durable: false,
        }
    }

    async fn begin<M, H>(
        &self,
        handlers: &H,
        state: M,
        mut core: RunCore<M::Context>,
    ) -> Result<Ended<M>, RunError>
    where
        M: Dispatch<H>,
        H: ?Sized + Sync,
    {
        core.path.push(state.state_index() as u32);
        self.env.emit(core.run_id, M::NAME, || EventKind::Started {
            state: state.state_name().into(),
            fingerprint: M::graph().fingerprint,
        });
        step::drive(&self.env, handlers, state, core).await
    }
}

/// A run on its own task. Await it for the result.
pub struct RunHandle<M: Machine> {
    run_id: RunId,
    join: tokio::task::JoinHandle<Result<Ended<M>, RunError>>,
}

impl<M: Machine> fmt::Debug for RunHandle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunHandle")
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

impl<M: Machine> RunHandle<M> {
    /// The run.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// Cancels the run. Awaiting the handle then gives
    /// [`RunErrorKind::Cancelled`].
    pub fn abort(&self) {
        self.join.abort();
    }
}

impl<M: Machine> Future for RunHandle<M> {
    type Output = Result<Ended<M>, RunError>;

    #[expect(
        clippy::result_large_err,
        reason = "a run's error is built once, when the run ends"
    )]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let run_id = self.run_id;
        Pin::new(&mut self.join).poll(cx).map(|r| match r {
            Ok(result) => result,
            Err(e) => Err(RunError {
                run_id,
                machine: M::NAME,
                state: "",
                step: 0,
                usage: Usage::default(),
                kind: if e.is_panic() {
                    RunErrorKind::Panicked("the run's task panicked".into())
                } else {
                    RunErrorKind::Cancelled
                },
            }),
        })
    }
}
