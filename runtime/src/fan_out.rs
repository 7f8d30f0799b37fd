//! Fan-out and join: a handler starts child runs of a machine with typed
//! inputs, with a concurrency limit, and gets one typed value per child.
//!
//! Children run on the parent's runner configuration (model, subscribers,
//! store), each on its own task. In a durable run they are durable runs of
//! their own, stored with a link to their parent and with ids derived from
//! the parent's id, step and the child's index: when the parent's step runs
//! again after a crash, children that finished are not run again (their
//! stored outcome is taken), and children that were part way resume from
//! their last checkpoint.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::bounds::Bounds;
use crate::context::Cx;
use crate::error::HandlerError;
use crate::event::{ChildEnd, EventKind};
use crate::machine::{Dispatch, Machine, Start};
use crate::run_id::RunId;
use crate::runner::{DurableContext, DurableError, DurableMachine, Ended, Outcome, Runner};
use crate::store::Parent;

/// How a fan-out runs and joins its children.
#[derive(Debug, Clone)]
pub struct FanOut {
    concurrency: usize,
    first: Option<usize>,
    deadline: Option<Duration>,
    fail_fast: bool,
    child_bounds: Option<Bounds>,
}

impl Default for FanOut {
    fn default() -> Self {
        FanOut {
            concurrency: 8,
            first: None,
            deadline: None,
            fail_fast: false,
            child_bounds: None,
        }
    }
}

impl FanOut {
    /// Join every child, 8 at a time.
    pub fn all() -> Self {
        Self::default()
    }

    /// Join the first `n` children that finish; cancel the others.
    pub fn first(n: usize) -> Self {
        FanOut {
            first: Some(n),
            ..Self::default()
        }
    }

    /// How many children run at once (at least 1; default 8).
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Stop waiting after `deadline`: children still running are
    /// cancelled.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Cancel the other children when one fails (default: a failure is
    /// that child's value, and its siblings go on).
    #[must_use]
    pub fn fail_fast(mut self, yes: bool) -> Self {
        self.fail_fast = yes;
        self
    }

    /// The bounds each child runs under: its share of the parent's budget
    /// (default: the runner's bounds). Whatever children spend is added to
    /// the parent's usage when they are joined.
    #[must_use]
    pub fn child_bounds(mut self, bounds: Bounds) -> Self {
        self.child_bounds = Some(bounds);
        self
    }
}

/// What one child of a fan-out came to.
pub enum Child<C: Machine> {
    /// It reached a terminal state.
    Finished(Outcome<C>),
    /// It waits for a signal (deliver it to its run id).
    Waiting(RunId),
    /// It failed; its siblings were not affected (unless
    /// [`FanOut::fail_fast`]).
    Failed {
        /// The child run.
        run_id: RunId,
        /// What went wrong.
        error: String,
    },
    /// It was cancelled: [`FanOut::first`] had its results, the deadline
    /// passed, or a sibling failed with [`FanOut::fail_fast`].
    Cancelled(RunId),
}

impl<C: Machine> Child<C> {
    /// How child `run_id` ended, from its run's result.
    fn of(run_id: RunId, ended: Result<Ended<C>, String>) -> Self {
        match ended {
            Ok(Ended::Finished(o)) => Child::Finished(o),
            Ok(Ended::Waiting(_)) => Child::Waiting(run_id),
            Err(error) => Child::Failed { run_id, error },
        }
    }

    /// The child's run id.
    pub fn run_id(&self) -> RunId {
        match self {
            Child::Finished(o) => o.run_id,
            Child::Waiting(id) | Child::Failed { run_id: id, .. } | Child::Cancelled(id) => *id,
        }
    }

    /// The finished child's outcome, if it finished.
    pub fn finished(self) -> Option<Outcome<C>> {
        match self {
            Child::Finished(o) => Some(o),
            _ => None,
        }
    }
}

impl<C: Machine + std::fmt::Debug> std::fmt::Debug for Child<C>
where
    C::Context: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Child::Finished(o) => f.debug_tuple("Finished").field(o).finish(),
            Child::Waiting(id) => f.debug_tuple("Waiting").field(id).finish(),
            Child::Failed { run_id, error } => f
                .debug_struct("Failed")
                .field("run_id", run_id)
                .field("error", error)
                .finish(),
            Child::Cancelled(id) => f.debug_tuple("Cancelled").field(id).finish(),
        }
    }
}

/// A machine whose child runs start with context `I`: its own context type
/// (implemented by `#[machine]`). `#[children(C, input = I)]` on a state
/// checks it.
#[diagnostic::on_unimplemented(
    message = "child machine `{Self}` does not start with `{I}`: a child run starts with its machine's context",
    label = "this machine's context is not `{I}`",
    note = "make `input = ` the context type of `{Self}` (its `#[machine(context = ..)]`), or fan out to another machine"
)]
pub trait ChildInput<I> {}

/// A machine with a terminal state whose payload is `O` (`()` for a
/// terminal state without payload): implemented by `#[machine]`.
/// `#[children(C, input = I, output = O)]` on a state checks it.
#[diagnostic::on_unimplemented(
    message = "no terminal state of child machine `{Self}` carries `{O}`",
    label = "`{Self}` has no terminal state with payload `{O}`",
    note = "make `output = ` the payload type of one of `{Self}`'s terminal states, or leave `output` out"
)]
pub trait ChildOutput<O> {}

/// The id of child `index` of the fan-out at `step` of run `parent`: the
/// same every time that step runs.
pub fn child_id(parent: RunId, step: u64, index: usize) -> RunId {
    // FNV-1a over the three, spread over 128 bits.
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in parent
        .as_u128()
        .to_le_bytes()
        .into_iter()
        .chain(step.to_le_bytes())
        .chain((index as u64).to_le_bytes())
    {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    RunId::from_u128(h)
}

impl<M: Machine> Cx<'_, M> {
    /// Runs one child run of machine `C` per input, at most
    /// [`FanOut::concurrency`] at a time, and returns one [`Child`] per
    /// input, in input order. In-memory children; see
    /// [`Cx::fan_out_durable`] for children that survive a crash.
    ///
    /// What the children spend is added to this run's usage, so the
    /// parent's token and money budgets count it. Dropping the parent (a
    /// cancelled or aborted run) cancels its children.
    pub async fn fan_out<C, H>(
        &mut self,
        handlers: Arc<H>,
        inputs: Vec<(Start<C>, C::Context)>,
        how: FanOut,
    ) -> Result<Vec<Child<C>>, HandlerError>
    where
        C: Dispatch<H> + Send + 'static,
        C::Context: Send,
        H: ?Sized + Send + Sync + 'static,
    {
        let runner = self.child_runner(&how);
        let ids: Vec<RunId> = inputs.iter().map(|_| RunId::new()).collect();
        let children = self
            .join(inputs, ids, &how, move |id, (start, context)| {
                let runner = runner.clone();
                let handlers = handlers.clone();
                async move {
                    let ended = runner.start_with_id(id, &*handlers, start, context).await;
                    Child::of(id, ended.map_err(|e| e.kind.to_string()))
                }
            })
            .await;
        Ok(children)
    }

    /// [`Cx::fan_out`] with durable children, for a durable parent: each
    /// child is a durable run in the runner's store, linked to this run
    /// ([`crate::store::Checkpoint::parent`]), with an id derived from this
    /// run, this step and its index ([`child_id`]). When this step runs
    /// again after a crash, children that finished are not run again (their
    /// stored outcome is returned), and children part way resume.
    pub async fn fan_out_durable<C, H>(
        &mut self,
        handlers: Arc<H>,
        inputs: Vec<(Start<C>, C::Context)>,
        how: FanOut,
    ) -> Result<Vec<Child<C>>, HandlerError>
    where
        C: Dispatch<H> + DurableMachine + Send + 'static,
        C::Context: DurableContext + Send,
        H: ?Sized + Send + Sync + 'static,
    {
        if self.env.durable.store.is_none() {
            return Err(HandlerError::msg(
                "fan_out_durable needs a runner with a store (Runner::builder().store(..))",
            ));
        }
        let parent = Parent {
            run_id: self.run.run_id,
            seq: self.run.steps,
        };
        let runner = self.child_runner(&how);
        let ids: Vec<RunId> = (0..inputs.len())
            .map(|index| child_id(parent.run_id, parent.seq, index))
            .collect();
        let children = self
            .join(inputs, ids, &how, move |id, (start, context)| {
                let runner = runner.clone();
                let handlers = handlers.clone();
                async move {
                    let ended = match runner
                        .start_child::<C, H>(id, Some(parent), &*handlers, start, context)
                        .await
                    {
                        Err(DurableError::Store(crate::store::StoreError::AlreadyExists {
                            ..
                        })) => runner.resume::<C, H>(&*handlers, id).await,
                        other => other,
                    };
                    Child::of(id, ended.map_err(|e| e.to_string()))
                }
            })
            .await;
        Ok(children)
    }

    fn child_runner(&self, how: &FanOut) -> Runner {
        let mut env = self.env.clone();
        if let Some(bounds) = &how.child_bounds {
            env.bounds = bounds.clone();
        }
        Runner::from_env(env)
    }

    /// Runs the children under this runner's limit and joins them, then
    /// counts what they spent.
    async fn join<I, C, F, Fut>(
        &mut self,
        inputs: Vec<I>,
        ids: Vec<RunId>,
        how: &FanOut,
        run: F,
    ) -> Vec<Child<C>>
    where
        I: Send + 'static,
        C: Machine + Send + 'static,
        C::Context: Send,
        F: Fn(RunId, I) -> Fut,
        Fut: Future<Output = Child<C>> + Send + 'static,
    {
        let limit = self.env.children.clone();
        let children = join(inputs, ids, how, limit, run).await;
        self.spent(children)
    }

    /// Adds what the finished children spent to this run's usage, and tells
    /// subscribers how each child ended.
    fn spent<C: Machine>(&mut self, children: Vec<Child<C>>) -> Vec<Child<C>> {
        for child in &children {
            if let Child::Finished(o) = child {
                self.run.usage.add(o.usage);
            }
        }
        self.env
            .emit(self.run.run_id, M::NAME, || EventKind::ChildrenJoined {
                state: self.state().name.into(),
                step: self.run.steps,
                children: children
                    .iter()
                    .map(|c| ChildEnd {
                        run_id: c.run_id(),
                        ended: match c {
                            Child::Finished(_) => "finished",
                            Child::Waiting(_) => "waiting",
                            Child::Failed { .. } => "failed",
                            Child::Cancelled(_) => "cancelled",
                        }
                        .into(),
                    })
                    .collect(),
            });
        children
    }
}

/// Runs `run` for every input (with its child's run id), `how.concurrency`
/// at a time, and joins them as `how` says; results in input order.
async fn join<I, C, F, Fut>(
    inputs: Vec<I>,
    ids: Vec<RunId>,
    how: &FanOut,
    runner_limit: Option<Arc<Semaphore>>,
    run: F,
) -> Vec<Child<C>>
where
    I: Send + 'static,
    C: Machine + Send + 'static,
    C::Context: Send,
    F: Fn(RunId, I) -> Fut,
    Fut: Future<Output = Child<C>> + Send + 'static,
{
    let n = inputs.len();
    let permits = Arc::new(Semaphore::new(how.concurrency));
    let mut tasks = JoinSet::new();
    for (index, input) in inputs.into_iter().enumerate() {
        let child = run(ids[index], input);
        let permits = permits.clone();
        let runner_limit = runner_limit.clone();
        tasks.spawn(async move {
            // The semaphores are never closed. The fan-out's permit first,
            // so one fan-out cannot take the runner's every permit.
            let _permit = permits.acquire_owned().await;
            let _runner_permit = match runner_limit {
                Some(limit) => Some(limit.acquire_owned().await),
                None => None,
            };
            (index, child.await)
        });
    }
    let mut results: Vec<Option<Child<C>>> = (0..n).map(|_| None).collect();
    let wanted = how.first.unwrap_or(n).min(n);
    let mut finished = 0;
    let collect = async {
        while let Some(joined) = tasks.join_next().await {
            let Ok((index, child)) = joined else { continue };
            let failed = matches!(child, Child::Failed { .. });
            if matches!(child, Child::Finished(_)) {
                finished += 1;
            }
            results[index] = Some(child);
            if finished >= wanted || (failed && how.fail_fast) {
                break;
            }
        }
    };
    match how.deadline {
        Some(d) => {
            let _ = tokio::time::timeout(d, collect).await;
        }
        None => collect.await,
    }
    tasks.abort_all();
    results
        .into_iter()
        .zip(ids)
        .map(|(r, id)| r.unwrap_or(Child::Cancelled(id)))
        .collect()
}
