//! Durable runs: a checkpoint after every transition, resume after a
//! crash, signals delivered to stored runs.
//!
//! The run loop (`step.rs`) is expanded twice from one macro: for
//! in-memory runs without checkpoints, so [`Runner::start`] does no extra
//! work per step, and for durable runs with a [`StoreHook`] that writes one
//! [`Checkpoint`] per transition through the runner's [`Store`].
//!
//! # What a checkpoint means
//!
//! Checkpoint `n` says: after `n` writes, the run is in `state` with
//! `context`, and has spent `spent`. Its status is
//!
//! - `Running` when `state` still has to run: resuming runs its handler;
//! - `Waiting` when the run has entered a wait state: only a signal moves it;
//! - `Finished` when `state` is terminal; `Failed` after an error.
//!
//! A transition and the decision that picked it are one write, so a
//! recorded decision is never asked for again. A handler whose transition
//! was not written runs again on resume (at least once), with the same
//! [`crate::Cx::idempotency_key`]; [`crate::Cx::effect`] journals a side
//! effect's result so that a step that runs again does not repeat it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Ended, Env, Outcome, Runner, Suspended};
use crate::bounds::Usage;
use crate::context::{Cx, RunCore};
use crate::error::HandlerError;
use crate::error::{RunError, RunErrorKind};
use crate::event::{DecidedVia, EventKind};
use crate::gate::DecisionRecord;
use crate::graph::StateKind;
use crate::llm::BoxFuture;
use crate::machine::{Dispatch, Machine, Signal, Start};
use crate::path::Path;
use crate::run_id::RunId;
use crate::store::{Checkpoint, EffectKey, RunStatus, Spent, Store, StoreError, now_ms};

/// Durable-run settings of a runner.
#[derive(Debug, Default, Clone)]
pub(crate) struct DurableConfig {
    pub(crate) store: Option<Arc<dyn Store>>,
    pub(crate) allow_graph_change: bool,
}

/// A machine whose runs can be checkpointed: the machine enum (its states
/// with their payloads) serialises and deserialises.
///
/// Implemented for every such machine; you never implement it yourself.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be checkpointed: a durable run stores the machine's state",
    label = "needs `Serialize` and `Deserialize`",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to the machine enum `{Self}` (below `#[guiderail::machine]`) and to the types its states carry"
)]
pub trait DurableMachine: Machine + Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<M: Machine + Serialize + DeserializeOwned> DurableMachine for M {}

/// A context value that can be checkpointed.
///
/// Implemented for every `Serialize + DeserializeOwned` type; you never
/// implement it yourself.
#[diagnostic::on_unimplemented(
    message = "the context `{Self}` cannot be checkpointed: a durable run stores its context",
    label = "needs `Serialize` and `Deserialize`",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to `{Self}`"
)]
pub trait DurableContext: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<C: Serialize + DeserializeOwned> DurableContext for C {}

/// A durable run could not start, resume or take a signal, or it failed.
///
/// Every variant names the run; none of them changed anything stored,
/// except [`DurableError::Run`], whose run is stored as failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DurableError {
    /// The runner has no store.
    #[error(
        "durable runs need a store: configure one with `Runner::builder().store(SqliteStore::open(path)?)`"
    )]
    NoStore,
    /// The store refused or failed (an unknown run id is
    /// [`StoreError::NotFound`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run ran and failed; it is stored as failed (unless the failure
    /// was the store's own, [`RunErrorKind::Store`]).
    #[error(transparent)]
    Run(Box<RunError>),
    /// The stored run belongs to another machine.
    #[error("run {run_id} is a run of `{stored}`, not of `{expected}`")]
    WrongMachine {
        /// The run.
        run_id: RunId,
        /// The stored machine name.
        stored: String,
        /// The machine it was resumed as.
        expected: &'static str,
    },
    /// The machine's graph changed since the run was stored.
    #[error(
        "run {run_id} was stored by another version of `{machine}` (graph fingerprint {stored:016x}, now {current:016x}); \
         resuming it could take moves the stored run never had. \
         Resume it with the old build, or opt in with `RunnerBuilder::allow_graph_change(true)`"
    )]
    GraphChanged {
        /// The run.
        run_id: RunId,
        /// The machine.
        machine: &'static str,
        /// The stored fingerprint.
        stored: u64,
        /// The current machine's fingerprint.
        current: u64,
    },
    /// The graph changed (and the caller opted in), but the stored state is
    /// not in the new graph.
    #[error("run {run_id} is in state `{state}`, which `{machine}` no longer has")]
    UnknownState {
        /// The run.
        run_id: RunId,
        /// The machine.
        machine: &'static str,
        /// The stored state.
        state: String,
    },
    /// A stored state or context no longer deserialises into its type.
    #[error(
        "run {run_id}: the {what} stored in checkpoint {seq} cannot be read as `{ty}`: {detail}"
    )]
    Decode {
        /// The run.
        run_id: RunId,
        /// The checkpoint.
        seq: u64,
        /// `"state"` or `"context"`.
        what: &'static str,
        /// The Rust type it was read as.
        ty: &'static str,
        /// What serde said.
        detail: String,
    },
    /// A signal for a run that is not waiting.
    #[error("run {run_id} is {status} in `{state}`, not waiting; the signal was not delivered")]
    NotWaiting {
        /// The run.
        run_id: RunId,
        /// Its status.
        status: RunStatus,
        /// Its state.
        state: String,
    },
    /// A signal for another wait state than the one the run waits in.
    #[error(
        "run {run_id} waits in `{actual}`, but the signal is for `{expected}`; the signal was not delivered"
    )]
    WrongState {
        /// The run.
        run_id: RunId,
        /// The wait state the signal belongs to.
        expected: &'static str,
        /// The state the run waits in.
        actual: String,
    },
    /// The run had already failed before this call.
    #[error("run {run_id} failed earlier, in `{state}`: {error}")]
    Failed {
        /// The run.
        run_id: RunId,
        /// The state it failed in.
        state: String,
        /// Its error, as stored.
        error: String,
    },
    /// A replay was given no checkpoints.
    #[error("the history to replay holds no checkpoint")]
    EmptyHistory,
    /// The run has no checkpoint with this number (never written, or
    /// compacted away).
    #[error("run {run_id} has no checkpoint {seq} (compacted, or never written)")]
    NoCheckpoint {
        /// The run.
        run_id: RunId,
        /// The checkpoint asked for.
        seq: u64,
    },
    /// A fork's first move is not one its state declares.
    #[error("run {run_id}: `{from}` has no move to `{to}`, so the fork cannot take it")]
    IllegalFork {
        /// The run forked.
        run_id: RunId,
        /// The checkpoint's state.
        from: String,
        /// The state asked for.
        to: &'static str,
    },
}

impl From<RunError> for DurableError {
    fn from(e: RunError) -> Self {
        DurableError::Run(Box::new(e))
    }
}

impl DurableError {
    /// The store's error, if the store refused or failed (also when it
    /// ended a run part way).
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            DurableError::Store(e) => Some(e),
            DurableError::Run(e) => match &e.kind {
                RunErrorKind::Store(e) => Some(e),
                _ => None,
            },
            _ => None,
        }
    }

    /// The run the error is about, if it is about one.
    pub fn run_id(&self) -> Option<RunId> {
        match self {
            DurableError::NoStore | DurableError::EmptyHistory => None,
            DurableError::Store(e) => e.run_id(),
            DurableError::Run(e) => Some(e.run_id),
            DurableError::WrongMachine { run_id, .. }
            | DurableError::GraphChanged { run_id, .. }
            | DurableError::UnknownState { run_id, .. }
            | DurableError::Decode { run_id, .. }
            | DurableError::NotWaiting { run_id, .. }
            | DurableError::WrongState { run_id, .. }
            | DurableError::Failed { run_id, .. }
            | DurableError::NoCheckpoint { run_id, .. }
            | DurableError::IllegalFork { run_id, .. } => Some(*run_id),
        }
    }
}

/// The checkpoint writer of a durable run: one checkpoint per call, the
/// last written one kept to mark the run failed from.
pub(crate) struct StoreHook {
    store: Arc<dyn Store>,
    last: Checkpoint,
}

impl StoreHook {
    /// Tells subscribers the latest checkpoint was written.
    pub(crate) fn written(&self, env: &Env, machine: &'static str) {
        env.emit(self.last.run_id, machine, || EventKind::CheckpointWritten {
            checkpoint: Box::new(self.last.clone()),
        });
    }

    /// Writes the checkpoint that the run is in `state` with `core`. Both
    /// are read before this returns; the future borrows only the hook, so
    /// the run's state and context need not be `Sync`.
    pub(crate) fn save<M>(
        &mut self,
        state: &M,
        core: &RunCore<M::Context>,
        status: RunStatus,
        via: Option<DecidedVia>,
        decision: Option<&DecisionRecord>,
    ) -> BoxFuture<'_, Result<(), StoreError>>
    where
        M: DurableMachine,
        M::Context: DurableContext,
    {
        let next = checkpoint(Some(&self.last), state, core, status, via, decision);
        Box::pin(async move {
            let next = next?;
            self.store.append(&next).await?;
            self.last = next;
            Ok(())
        })
    }
}

/// The status of a run that just moved to `state`.
pub(crate) fn status_after_move<M: Machine>(state: &M) -> RunStatus {
    match M::graph().states[state.state_index()].kind {
        StateKind::Terminal => RunStatus::Finished,
        _ => RunStatus::Running,
    }
}

/// Builds the checkpoint that follows `prev` (checkpoint 0 without one) of
/// a run in `state` with `core`; the run's start time and parent carry over.
fn checkpoint<M: DurableMachine>(
    prev: Option<&Checkpoint>,
    state: &M,
    core: &RunCore<M::Context>,
    status: RunStatus,
    via: Option<DecidedVia>,
    decision: Option<&DecisionRecord>,
) -> Result<Checkpoint, StoreError>
where
    M::Context: DurableContext,
{
    let graph = M::graph();
    let encode = |what: &str, e: serde_json::Error| StoreError::Encode {
        run_id: core.run_id,
        detail: format!("cannot serialise the {what}: {e}"),
    };
    let at_ms = now_ms();
    Ok(Checkpoint {
        run_id: core.run_id,
        seq: prev.map_or(0, |p| p.seq + 1),
        machine: M::NAME.into(),
        fingerprint: graph.fingerprint,
        state_name: state.state_name().into(),
        state: serde_json::to_value(state).map_err(|e| encode("state", e))?,
        context: serde_json::to_value(&core.context).map_err(|e| encode("context", e))?,
        spent: Spent {
            steps: core.steps,
            visits: graph
                .states
                .iter()
                .zip(core.visits.iter())
                .filter(|(_, n)| **n > 0)
                .map(|(s, n)| (s.name.into(), *n))
                .collect(),
            usage: core.usage,
            decisions: core.decisions,
            bound_hit: core.bound_hit.clone(),
            wrap_up_steps: core.wrap_up_steps,
        },
        // The whole path only where a run stops (waiting, finished,
        // failed): a running checkpoint's path is its predecessors' states
        // ([`crate::history::path`]), so a run's storage grows linearly.
        path: if status == RunStatus::Running {
            Vec::new()
        } else {
            core.path
                .iter()
                .map(|&i| graph.states[i as usize].name.into())
                .collect()
        },
        status,
        via,
        decision: decision.map(|d| Box::new(d.clone())),
        error: None,
        graph: prev
            .is_none()
            .then(|| Box::new(crate::GraphRecord::from(graph))),
        parent: prev.and_then(|p| p.parent),
        started_at_ms: prev.map_or(at_ms, |p| p.started_at_ms),
        at_ms,
    })
}

/// Awaits a checkpoint written from inside the run loop; a store failure
/// ends the run with [`RunErrorKind::Store`].
pub(crate) async fn saved<M: Machine>(
    env: &Env,
    pending: impl Future<Output = Result<(), StoreError>>,
    run_id: RunId,
    step: u64,
    usage: Usage,
    state: &'static str,
) -> Result<(), RunError> {
    match pending.await {
        Ok(()) => Ok(()),
        Err(e) => Err(super::loop_parts::fail::<M>(
            env,
            run_id,
            step,
            usage,
            state,
            RunErrorKind::Store(Box::new(e)),
        )),
    }
}

impl Runner {
    pub(super) fn require_store(&self) -> Result<Arc<dyn Store>, DurableError> {
        self.env.durable.store.clone().ok_or(DurableError::NoStore)
    }

    /// The store durable runs are kept in, if the runner has one.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.env.durable.store.as_ref()
    }

    /// Starts a durable run: like [`Runner::start`], but the run is created
    /// in the runner's store and checkpointed after every transition, so
    /// [`Runner::resume`] continues it after a crash.
    ///
    /// The machine enum and its context must implement `Serialize` and
    /// `Deserialize`.
    pub async fn start_durable<M, H>(
        &self,
        handlers: &H,
        start: Start<M>,
        context: M::Context,
    ) -> Result<Ended<M>, DurableError>
    where
        M: Dispatch<H> + DurableMachine,
        M::Context: DurableContext,
        H: ?Sized + Sync,
    {
        self.start_durable_with_id(RunId::new(), handlers, start, context)
            .await
    }

    /// [`Runner::start_durable`] with an id chosen by the caller, so a
    /// start that is retried after a crash does not create a second run:
    /// the retry fails with [`StoreError::AlreadyExists`], and
    /// [`Runner::resume`] continues the first.
    pub async fn start_durable_with_id<M, H>(
        &self,
        run_id: RunId,
        handlers: &H,
        start: Start<M>,
        context: M::Context,
    ) -> Result<Ended<M>, DurableError>
    where
        M: Dispatch<H> + DurableMachine,
        M::Context: DurableContext,
        H: ?Sized + Sync,
    {
        self.start_child(run_id, None, handlers, start, context)
            .await
    }

    /// [`Runner::start_durable_with_id`], for a child run of `parent` if
    /// there is one (recorded in its checkpoints).
    pub(crate) async fn start_child<M, H>(
        &self,
        run_id: RunId,
        parent: Option<crate::store::Parent>,
        handlers: &H,
        start: Start<M>,
        context: M::Context,
    ) -> Result<Ended<M>, DurableError>
    where
        M: Dispatch<H> + DurableMachine,
        M::Context: DurableContext,
        H: ?Sized + Sync,
    {
        let store = self.require_store()?;
        let (state, core, mut first) = self.first_checkpoint(run_id, start, context)?;
        first.parent = parent;
        store.create(&first).await?;
        self.env.emit(core.run_id, M::NAME, || EventKind::Started {
            state: state.state_name().into(),
            fingerprint: M::graph().fingerprint,
        });
        let mut hook = StoreHook { store, last: first };
        hook.written(&self.env, M::NAME);
        self.drive_durable(handlers, state, core, &mut hook).await
    }

    /// A new durable run's state, core and checkpoint 0.
    fn first_checkpoint<M>(
        &self,
        run_id: RunId,
        start: Start<M>,
        context: M::Context,
    ) -> Result<(M, RunCore<M::Context>, Checkpoint), DurableError>
    where
        M: DurableMachine,
        M::Context: DurableContext,
    {
        let mut core = self.new_core::<M>(context);
        core.run_id = run_id;
        core.durable = true;
        let state = start.0;
        core.path.push(state.state_index() as u32);
        let first = checkpoint(None, &state, &core, status_after_move(&state), None, None)?;
        Ok((state, core, first))
    }

    /// Continues a durable run from its latest checkpoint, until it
    /// finishes, waits or fails.
    ///
    /// - a running run continues with the handler of the state it is in:
    ///   a handler whose transition was not checkpointed runs again, and a
    ///   decision that was checkpointed is not asked for again;
    /// - a waiting run is returned as [`Ended::Waiting`] (deliver its
    ///   signal with [`Runner::signal_run`]);
    /// - a finished run is returned as [`Ended::Finished`], again;
    /// - a failed run is [`DurableError::Failed`].
    ///
    /// A run stored by a machine whose graph has changed since is refused
    /// ([`DurableError::GraphChanged`]) unless the runner was built with
    /// [`crate::RunnerBuilder::allow_graph_change`].
    pub async fn resume<M, H>(&self, handlers: &H, run_id: RunId) -> Result<Ended<M>, DurableError>
    where
        M: Dispatch<H> + DurableMachine,
        M::Context: DurableContext,
        H: ?Sized + Sync,
    {
        self.resume_in(self.require_store()?, handlers, run_id)
            .await
    }

    /// [`Runner::resume`] with checkpoints written through `store` (a
    /// worker's lease-fenced view of the runner's store).
    pub(crate) async fn resume_in<M, H>(
        &self,
        store: Arc<dyn Store>,
        handlers: &H,
        run_id: RunId,
    ) -> Result<Ended<M>, DurableError>
    where
        M: Dispatch<H> + DurableMachine,
        M::Context: DurableContext,
        H: ?Sized + Sync,
    {
        let mut latest = store.latest(run_id).await?;
        if latest.status == RunStatus::Running && latest.path.is_empty() {
            latest.path = store.run_path(run_id).await?;
        }
        if latest.status == RunStatus::Failed {
            return Err(DurableError::Failed {
                run_id,
                state: latest.state_name.into_owned(),
                error: latest.error.unwrap_or_default(),
            });
        }
        let (state, core) = self.restore::<M>(&latest)?;
        match latest.status {
            RunStatus::Waiting => Ok(Ended::Waiting(Suspended { state, core })),
            RunStatus::Finished => Ok(finished(state, core)),
            _ => {
                let mut hook = StoreHook {
                    store,
                    last: latest,
                };
                self.drive_durable(handlers, state, core, &mut hook).await
            }
        }
    }

    /// Delivers a signal to a stored, waiting run and runs it on until it
    /// finishes, waits again or fails. Works from any process that opens
    /// the same store.
    ///
    /// A run that is not waiting ([`DurableError::NotWaiting`]) or waits in
    /// another state than the signal is for ([`DurableError::WrongState`])
    /// is left unchanged. Of two signals delivered at once, one wins; the
    /// other gets [`StoreError::Conflict`] or [`StoreError::NotWaiting`].
    pub async fn signal_run<M, H, S>(
        &self,
        handlers: &H,
        run_id: RunId,
        signal: S,
    ) -> Result<Ended<M>, DurableError>
    where
        M: Dispatch<H> + DurableMachine,
        M::Context: DurableContext,
        H: ?Sized + Sync,
        S: Signal<M>,
    {
        let store = self.require_store()?;
        let (next, core, moved) = self.record_signal::<M, S>(&store, run_id, signal).await?;
        let mut hook = StoreHook { store, last: moved };
        hook.written(&self.env, M::NAME);
        self.drive_durable(handlers, next, core, &mut hook).await
    }

    /// Delivers a signal to a stored, waiting run without running it on:
    /// the run is `Running` in the store afterwards, and a
    /// worker (feature `postgres`; for runs started with [`Runner::submit`]) or
    /// [`Runner::resume`] continues it. The same checks as
    /// [`Runner::signal_run`]; a refused signal changes nothing.
    pub async fn deliver<M, S>(&self, run_id: RunId, signal: S) -> Result<(), DurableError>
    where
        M: DurableMachine,
        M::Context: DurableContext,
        S: Signal<M>,
    {
        let store = self.require_store()?;
        self.record_signal::<M, S>(&store, run_id, signal).await?;
        Ok(())
    }

    /// Checks and writes the checkpoint a signal moves a waiting run to;
    /// returns the new state, the run core and the checkpoint.
    async fn record_signal<M, S>(
        &self,
        store: &Arc<dyn Store>,
        run_id: RunId,
        signal: S,
    ) -> Result<(M, RunCore<M::Context>, Checkpoint), DurableError>
    where
        M: DurableMachine,
        M::Context: DurableContext,
        S: Signal<M>,
    {
        let latest = store.latest(run_id).await?;
        if latest.status != RunStatus::Waiting {
            return Err(DurableError::NotWaiting {
                run_id,
                status: latest.status,
                state: latest.state_name.into_owned(),
            });
        }
        let expected = M::graph().states[S::STATE].name;
        if latest.state_name != expected {
            return Err(DurableError::WrongState {
                run_id,
                expected,
                actual: latest.state_name.into_owned(),
            });
        }
        let (state, mut core) = self.restore::<M>(&latest)?;
        let next = signal.into_state();
        core.path.push(next.state_index() as u32);
        let moved = checkpoint(
            Some(&latest),
            &next,
            &core,
            status_after_move(&next),
            Some(DecidedVia::Signal),
            None,
        )?;
        store.deliver_signal(&moved).await?;
        self.env.emit(run_id, M::NAME, || EventKind::Transition {
            from: state.state_name().into(),
            to: next.state_name().into(),
            step: core.steps,
            via: DecidedVia::Signal,
        });
        Ok((next, core, moved))
    }

    /// Stores a new durable run queued for workers (feature `postgres`), without
    /// running it, and returns its id: any worker sharing the store claims
    /// it and runs it. Needs a store that queues runs (the PostgreSQL
    /// store; others refuse with [`StoreError::Unsupported`]). Await the
    /// result with [`Runner::wait_for`] or poll [`Runner::outcome`].
    pub async fn submit<M>(
        &self,
        start: Start<M>,
        context: M::Context,
    ) -> Result<RunId, DurableError>
    where
        M: DurableMachine,
        M::Context: DurableContext,
    {
        self.submit_with_id(RunId::new(), start, context).await
    }

    /// [`Runner::submit`] with an id chosen by the caller, so a retried
    /// submission cannot queue the run twice ([`StoreError::AlreadyExists`]).
    pub async fn submit_with_id<M>(
        &self,
        run_id: RunId,
        start: Start<M>,
        context: M::Context,
    ) -> Result<RunId, DurableError>
    where
        M: DurableMachine,
        M::Context: DurableContext,
    {
        let store = self.require_store()?;
        let (state, _, first) = self.first_checkpoint(run_id, start, context)?;
        store.submit(&first).await?;
        self.env.emit(run_id, M::NAME, || EventKind::Started {
            state: state.state_name().into(),
            fingerprint: M::graph().fingerprint,
        });
        Ok(run_id)
    }

    /// Where a stored run stands, read from its latest checkpoint without
    /// running anything: `None` while it still runs, otherwise finished,
    /// waiting, or [`DurableError::Failed`].
    pub async fn outcome<M>(&self, run_id: RunId) -> Result<Option<Ended<M>>, DurableError>
    where
        M: DurableMachine,
        M::Context: DurableContext,
    {
        let store = self.require_store()?;
        let latest = store.latest(run_id).await?;
        match latest.status {
            RunStatus::Running => Ok(None),
            RunStatus::Failed => Err(DurableError::Failed {
                run_id,
                state: latest.state_name.into_owned(),
                error: latest.error.unwrap_or_default(),
            }),
            RunStatus::Waiting => {
                let (state, core) = self.restore::<M>(&latest)?;
                Ok(Some(Ended::Waiting(Suspended { state, core })))
            }
            RunStatus::Finished => {
                let (state, core) = self.restore::<M>(&latest)?;
                Ok(Some(finished(state, core)))
            }
        }
    }

    /// Polls [`Runner::outcome`] every `poll` until the run no longer runs
    /// (finished, waiting or failed), for callers that submitted a run to
    /// workers and want its result.
    pub async fn wait_for<M>(&self, run_id: RunId, poll: Duration) -> Result<Ended<M>, DurableError>
    where
        M: DurableMachine,
        M::Context: DurableContext,
    {
        loop {
            if let Some(ended) = self.outcome::<M>(run_id).await? {
                return Ok(ended);
            }
            tokio::time::sleep(poll).await;
        }
    }

    async fn drive_durable<M, H>(
        &self,
        handlers: &H,
        state: M,
        core: RunCore<M::Context>,
        hook: &mut StoreHook,
    ) -> Result<Ended<M>, DurableError>
    where
        M: Dispatch<H> + DurableMachine,
        M::Context: DurableContext,
        H: ?Sized + Sync,
    {
        match super::step::drive_durable(&self.env, handlers, state, core, hook).await {
            Ok(ended) => Ok(ended),
            Err(e) if matches!(e.kind, RunErrorKind::Store(_)) => Err(e.into()),
            Err(e) => {
                let mut failed = hook.last.failed(e.kind.to_string());
                // What the failing step spent (a gate's calls) is not in
                // the checkpoint it started from.
                failed.spent.usage = e.usage;
                if failed.path.is_empty() {
                    failed.path = hook.store.run_path(failed.run_id).await.unwrap_or_default();
                }
                if let Err(store_error) = hook.store.append(&failed).await {
                    tracing::warn!(
                        run_id = %e.run_id,
                        "the run failed, and marking it failed in the store failed too: {store_error}"
                    );
                }
                Err(e.into())
            }
        }
    }

    /// The state and run core a checkpoint describes, for machine `M`.
    pub(super) fn restore<M>(
        &self,
        cp: &Checkpoint,
    ) -> Result<(M, RunCore<M::Context>), DurableError>
    where
        M: DurableMachine,
        M::Context: DurableContext,
    {
        let graph = M::graph();
        let run_id = cp.run_id;
        if cp.machine != M::NAME {
            return Err(DurableError::WrongMachine {
                run_id,
                stored: cp.machine.to_string(),
                expected: M::NAME,
            });
        }
        if cp.fingerprint != graph.fingerprint {
            if !self.env.durable.allow_graph_change {
                return Err(DurableError::GraphChanged {
                    run_id,
                    machine: M::NAME,
                    stored: cp.fingerprint,
                    current: graph.fingerprint,
                });
            }
            if graph.index_of(&cp.state_name).is_none() {
                return Err(DurableError::UnknownState {
                    run_id,
                    machine: M::NAME,
                    state: cp.state_name.to_string(),
                });
            }
        }
        let decode = |what, ty, e: serde_json::Error| DurableError::Decode {
            run_id,
            seq: cp.seq,
            what,
            ty,
            detail: e.to_string(),
        };
        let state = M::deserialize(&cp.state)
            .map_err(|e| decode("state", std::any::type_name::<M>(), e))?;
        if state.state_name() != cp.state_name {
            return Err(DurableError::Decode {
                run_id,
                seq: cp.seq,
                what: "state",
                ty: std::any::type_name::<M>(),
                detail: format!(
                    "the value is state `{}`, but the checkpoint says `{}`",
                    state.state_name(),
                    cp.state_name
                ),
            });
        }
        let context = M::Context::deserialize(&cp.context)
            .map_err(|e| decode("context", std::any::type_name::<M::Context>(), e))?;
        let mut core = self.new_core::<M>(context);
        core.run_id = run_id;
        core.durable = true;
        core.steps = cp.spent.steps;
        for (name, n) in &cp.spent.visits {
            if let Some(i) = graph.index_of(name) {
                core.visits[i] = *n;
            }
        }
        core.path = cp
            .path
            .iter()
            .filter_map(|name| graph.index_of(name).map(|i| i as u32))
            .collect();
        core.usage = cp.spent.usage;
        core.decisions = cp.spent.decisions;
        core.bound_hit = cp.spent.bound_hit.clone();
        core.wrap_up_steps = cp.spent.wrap_up_steps;
        let elapsed = Duration::from_millis(now_ms().saturating_sub(cp.started_at_ms));
        let now = tokio::time::Instant::now();
        core.started = now.checked_sub(elapsed).unwrap_or(now);
        Ok((state, core))
    }
}

fn finished<M: Machine>(terminal: M, core: RunCore<M::Context>) -> Ended<M> {
    Ended::Finished(Outcome {
        run_id: core.run_id,
        terminal,
        context: core.context,
        path: Path::new(M::graph().states, core.path),
        steps: core.steps,
        decisions: core.decisions,
        usage: core.usage,
        bound_hit: core.bound_hit,
    })
}

impl<M: Machine> Cx<'_, M> {
    /// Runs a side effect once per step of a durable run, even when the
    /// step runs again after a crash: the effect's result is journaled in
    /// the store under (run id, step, `name`), and a step that runs again
    /// gets the journaled result back instead of running `effect` again.
    ///
    /// Use it for what must not happen twice and whose result the handler
    /// needs: charging a card, sending a message, creating a ticket in
    /// another system. A crash between the effect's end and its journal
    /// entry still repeats it, so pass [`Cx::idempotency_key`] to services
    /// that accept one. An effect that fails is not journaled (the next
    /// attempt runs it again). Names must be unique within a handler.
    ///
    /// Runs that are not durable ([`Runner::start`]) run `effect` every
    /// time.
    ///
    /// ```text
    /// let receipt: Receipt = cx
    ///     .effect("charge", || payments.charge(order, cx_key))
    ///     .await?;
    /// ```
    pub async fn effect<T, E, F, Fut>(&mut self, name: &str, effect: F) -> Result<T, HandlerError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<HandlerError>,
    {
        let store = match &self.env.durable.store {
            Some(store) if self.run.durable => store.clone(),
            _ => return effect().await.map_err(Into::into),
        };
        let key = EffectKey {
            run_id: self.run.run_id,
            step: self.run.steps,
            name: name.to_owned(),
        };
        let decode = |key: &EffectKey, value| {
            serde_json::from_value(value).map_err(|e| {
                HandlerError::msg(format!(
                    "run {}: the journaled result of effect `{}` at step {} cannot be read: {e}",
                    key.run_id, key.name, key.step
                ))
            })
        };
        if let Some(recorded) = store.effect(&key).await? {
            return decode(&key, recorded);
        }
        let value = effect().await.map_err(Into::into)?;
        let json = serde_json::to_value(&value)?;
        let recorded = store.record_effect(&key, &json).await?;
        if recorded == json {
            Ok(value)
        } else {
            // Another writer of this run journaled first: its result counts.
            decode(&key, recorded)
        }
    }
}
