//! Durable runs: where checkpoints are kept.
//!
//! A durable run writes one [`Checkpoint`] after every transition: the
//! state it moved to, the context, what it has spent, and (at gates) the
//! decision that picked the move. A [`Store`] keeps them, and a run
//! resumes from its latest one after a crash.
//!
//! Two stores come with the runtime:
//!
//! - [`MemoryStore`]: in memory, for tests; the same rules as the others.
//! - [`SqliteStore`] (feature `sqlite`, on by default): one SQLite file in
//!   WAL mode, shared by every process that opens it.
//! - `PgStore` (feature `postgres`): PostgreSQL, shared by processes on
//!   many machines, with the leases `Worker`s execute queued runs under.
//!
//! The trait is object safe (boxed futures, like [`crate::Model`]) so a
//! runner holds an `Arc<dyn Store>`, and a store over another database
//! implements the same eight methods.
//!
//! # The rules every store enforces
//!
//! - A run's checkpoints are numbered `0, 1, 2, …` with no gap: an append
//!   whose `seq` is not the latest plus one is refused with
//!   [`StoreError::Conflict`], so of two writers of one run only the first
//!   succeeds and the stale one learns it.
//! - Nothing follows a checkpoint whose status is
//!   [`Finished`](RunStatus::Finished) or [`Failed`](RunStatus::Failed)
//!   ([`StoreError::Closed`]).
//! - A [`Waiting`](RunStatus::Waiting) run moves on only through
//!   [`Store::deliver_signal`]; a signal for a run that is not waiting is
//!   [`StoreError::NotWaiting`].
//! - A refused write changes nothing.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bounds::{BoundHit, Usage};
use crate::event::DecidedVia;
use crate::gate::DecisionRecord;
use crate::llm::BoxFuture;
use crate::run_id::RunId;

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{FencedStore, Lease, Listener, PgOptions, PgStore};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};

/// Where a run stands, as of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The run's state still has to run (a plain state or a gate).
    Running,
    /// The run waits in a `#[wait]` state for a signal.
    Waiting,
    /// The run reached a terminal state.
    Finished,
    /// The run ended with an error.
    Failed,
}

impl RunStatus {
    /// The lowercase word stored for it (`running`, `waiting`, `finished`,
    /// `failed`).
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Finished => "finished",
            RunStatus::Failed => "failed",
        }
    }

    /// The status for its stored word.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunStatus::Running,
            "waiting" => RunStatus::Waiting,
            "finished" => RunStatus::Finished,
            "failed" => RunStatus::Failed,
            _ => return None,
        })
    }

    /// Whether nothing can follow (finished or failed).
    pub const fn is_closed(self) -> bool {
        matches!(self, RunStatus::Finished | RunStatus::Failed)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a run has spent so far: what its bounds are checked against when
/// it resumes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spent {
    /// Steps taken (entries into non-terminal states).
    pub steps: u64,
    /// Entries per state, by state name (states never entered are left out).
    pub visits: BTreeMap<Cow<'static, str>, u32>,
    /// Model usage.
    pub usage: Usage,
    /// Gate decisions.
    pub decisions: u64,
    /// The bound that moved the run to its wrap-up state, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_hit: Option<BoundHit>,
    /// While wrapping up: the step count the wrap-up may not pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_up_steps: Option<u64>,
}

/// One atomic record of a durable run: where it is and how it got there.
///
/// Checkpoint `0` is written when the run starts; each transition writes
/// the next. A checkpoint is written whole or not at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The run.
    pub run_id: RunId,
    /// The checkpoint's number in its run: 0, 1, 2, … without gaps.
    pub seq: u64,
    /// The machine's name.
    pub machine: Cow<'static, str>,
    /// The machine's graph fingerprint ([`crate::Graph::fingerprint`]) when
    /// this checkpoint was written.
    pub fingerprint: u64,
    /// The name of the state the run is in.
    pub state_name: Cow<'static, str>,
    /// The state with its payload, as serde writes the machine enum.
    pub state: Value,
    /// The context value.
    pub context: Value,
    /// What the run has spent.
    pub spent: Spent,
    /// Every state entered, in order, by name — in checkpoints where the
    /// run stops (waiting, finished, failed). Running checkpoints leave it
    /// empty, so storage grows linearly with a run's length: their path is
    /// the states of the checkpoints so far ([`crate::history::path`],
    /// [`Store::run_path`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<Cow<'static, str>>,
    /// Where the run stands.
    pub status: RunStatus,
    /// Who picked the move into `state`; `None` when this checkpoint is not
    /// a transition (the start, a suspension, a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<DecidedVia>,
    /// The gate decision that picked the move, for gate moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Box<DecisionRecord>>,
    /// The error that ended the run, for a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The machine's graph, in checkpoint 0 only: what the run ran on, for
    /// tools that show runs without the machine's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<Box<crate::GraphRecord>>,
    /// The run and checkpoint this run was forked from
    /// ([`crate::Runner::fork`]), kept in every checkpoint of the fork.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Parent>,
    /// When the run started, milliseconds since the Unix epoch (run
    /// deadlines count from it).
    pub started_at_ms: u64,
    /// When this checkpoint was written, milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl Checkpoint {
    /// The checkpoint that follows this one, marked failed with `error`:
    /// the same state, context and spending, since the failed step's
    /// changes were never checkpointed.
    pub fn failed(&self, error: impl Into<String>) -> Checkpoint {
        Checkpoint {
            seq: self.seq + 1,
            status: RunStatus::Failed,
            via: None,
            decision: None,
            error: Some(error.into()),
            graph: None,
            at_ms: now_ms(),
            ..self.clone()
        }
    }
}

/// Where a forked run came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    /// The run it was forked from.
    pub run_id: RunId,
    /// The checkpoint of that run it started from.
    pub seq: u64,
}

/// One run as a store lists it: its latest checkpoint's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run.
    pub run_id: RunId,
    /// The machine's name.
    pub machine: String,
    /// The machine's graph fingerprint at the latest checkpoint.
    pub fingerprint: u64,
    /// Where the run stands.
    pub status: RunStatus,
    /// The latest checkpoint's number.
    pub seq: u64,
    /// The state the run is in.
    pub state: String,
    /// When the latest checkpoint was written, milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
}

/// A store could not do what was asked. A refused write changes nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No run with this id is stored.
    #[error("run {run_id} is not in the store")]
    NotFound {
        /// The run.
        run_id: RunId,
    },
    /// A run with this id is already stored.
    #[error("run {run_id} is already in the store")]
    AlreadyExists {
        /// The run.
        run_id: RunId,
    },
    /// The checkpoint is not the one that follows the latest: another
    /// writer moved the run on first (or the first checkpoint is not 0).
    #[error(
        "run {run_id}: checkpoint {attempted} does not follow the latest stored checkpoint {latest}; another writer moved the run on, nothing was written"
    )]
    Conflict {
        /// The run.
        run_id: RunId,
        /// The sequence number that was to be written.
        attempted: u64,
        /// The latest stored sequence number.
        latest: u64,
    },
    /// The run is finished or failed: nothing may follow.
    #[error("run {run_id} is {status}; nothing can be added to it")]
    Closed {
        /// The run.
        run_id: RunId,
        /// Its status.
        status: RunStatus,
    },
    /// A signal for a run that is not waiting, or a plain append to a run
    /// that waits (only a signal moves a waiting run on).
    #[error("run {run_id} is {status} in `{state}`, {}", if *status == RunStatus::Waiting { "so only a signal moves it on" } else { "not waiting, so a signal cannot be delivered" })]
    NotWaiting {
        /// The run.
        run_id: RunId,
        /// Its status.
        status: RunStatus,
        /// The state it is in.
        state: String,
    },
    /// A stored row could not be read back: its JSON is not a checkpoint.
    #[error("run {run_id}: stored checkpoint {seq} cannot be read: {detail}")]
    Corrupt {
        /// The run.
        run_id: RunId,
        /// The checkpoint.
        seq: u64,
        /// What is wrong.
        detail: String,
    },
    /// A state or context could not be serialised into a checkpoint (a map
    /// with non-string keys, a failing `Serialize` impl, …).
    #[error("run {run_id}: {detail}")]
    Encode {
        /// The run.
        run_id: RunId,
        /// What could not be serialised, and why.
        detail: String,
    },
    /// The store's file is not a guiderail database (not SQLite at all,
    /// truncated, or damaged).
    #[error("`{path}` is not a usable guiderail store: {detail}")]
    NotADatabase {
        /// The file.
        path: String,
        /// What the database engine said.
        detail: String,
    },
    /// The store's file was written by a newer guiderail (its schema
    /// version is above the one this build knows).
    #[error(
        "`{path}` has schema version {found}, but this build knows only up to {known}; upgrade guiderail"
    )]
    SchemaTooNew {
        /// The file.
        path: String,
        /// The file's schema version.
        found: u32,
        /// The newest version this build knows.
        known: u32,
    },
    /// The write did not carry the run's current lease: the writer's lease
    /// expired or another worker took the run over (`token` is the lease
    /// the write carried), or the write carried none while a worker holds
    /// the run. Nothing was written.
    #[error("run {run_id}: {}; nothing was written", match token {
        Some(t) => format!("lease {t} has expired or the run was taken over by another worker"),
        None => "a worker holds the run's lease, so only that worker may write it".to_owned(),
    })]
    Fenced {
        /// The run.
        run_id: RunId,
        /// The lease token the write carried.
        token: Option<u64>,
    },
    /// The store cannot do this (for example, queueing runs for workers
    /// needs the PostgreSQL store).
    #[error("this store cannot {operation}; {hint}")]
    Unsupported {
        /// What was asked.
        operation: &'static str,
        /// What to use instead.
        hint: &'static str,
    },
    /// The database failed (I/O, locking, a full disk, …).
    #[error("store error: {0}")]
    Backend(String),
}

impl StoreError {
    /// The run the error is about, if it is about one.
    pub fn run_id(&self) -> Option<RunId> {
        match self {
            StoreError::NotFound { run_id }
            | StoreError::AlreadyExists { run_id }
            | StoreError::Conflict { run_id, .. }
            | StoreError::Closed { run_id, .. }
            | StoreError::NotWaiting { run_id, .. }
            | StoreError::Corrupt { run_id, .. }
            | StoreError::Encode { run_id, .. }
            | StoreError::Fenced { run_id, .. } => Some(*run_id),
            _ => None,
        }
    }
}

/// Keeps the checkpoints of durable runs.
///
/// Every method is one atomic operation. See the [module docs](self) for
/// the rules every implementation enforces; `runtime/tests/store_*.rs`
/// check them against each store.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a checkpoint store",
    note = "use `SqliteStore::open(path)` or `MemoryStore::new()`, or implement `guiderail::store::Store`"
)]
pub trait Store: Send + Sync + fmt::Debug {
    /// Stores a new run with its first checkpoint (`seq` 0).
    ///
    /// [`StoreError::AlreadyExists`] if the run id is taken.
    fn create<'a>(&'a self, first: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Stores a new run like [`Store::create`], queued for workers
    /// (`Worker`, feature `postgres`) to claim and run.
    ///
    /// Only stores that workers can share implement it; the default is
    /// [`StoreError::Unsupported`].
    fn submit<'a>(&'a self, first: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        let _ = first;
        Box::pin(std::future::ready(Err(StoreError::Unsupported {
            operation: "queue runs for workers",
            hint: "use the PostgreSQL store (feature `postgres`, `PgStore`)",
        })))
    }

    /// Appends the checkpoint that follows the run's latest, atomically:
    /// `next.seq` must be the latest `seq` plus one
    /// ([`StoreError::Conflict`] otherwise), the run must not be closed
    /// ([`StoreError::Closed`]) or waiting ([`StoreError::NotWaiting`]).
    ///
    /// A checkpoint whose status is `Finished` or `Failed` marks the run
    /// finished or failed.
    fn append<'a>(&'a self, next: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Records a signal for a waiting run: appends `next` (the state the
    /// signal moves the run to) like [`Store::append`], but only if the
    /// latest checkpoint is `next.seq - 1` and its status is
    /// [`RunStatus::Waiting`] ([`StoreError::NotWaiting`] otherwise).
    fn deliver_signal<'a>(&'a self, next: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The run's latest checkpoint.
    fn latest(&self, run_id: RunId) -> BoxFuture<'_, Result<Checkpoint, StoreError>>;

    /// All of the run's checkpoints, oldest first.
    fn checkpoints(&self, run_id: RunId) -> BoxFuture<'_, Result<Vec<Checkpoint>, StoreError>>;

    /// Every state the run has entered, in order (see
    /// [`crate::history::path`]): what a resumed run continues its path
    /// from.
    fn run_path(&self, run_id: RunId) -> BoxFuture<'_, Result<Vec<Cow<'static, str>>, StoreError>> {
        Box::pin(async move { Ok(crate::history::path(&self.checkpoints(run_id).await?)) })
    }

    /// The run's history as events, oldest first: what its checkpoints
    /// tell (see [`crate::history::events`]). Compacted runs keep only
    /// what their last checkpoint tells.
    fn history(&self, run_id: RunId) -> BoxFuture<'_, Result<Vec<crate::Event>, StoreError>> {
        Box::pin(async move { Ok(crate::history::events(&self.checkpoints(run_id).await?)) })
    }

    /// The runs whose latest status is `status` (all runs for `None`),
    /// ordered by run id.
    fn runs(&self, status: Option<RunStatus>)
    -> BoxFuture<'_, Result<Vec<RunSummary>, StoreError>>;

    /// Keeps only the latest checkpoint of each finished or failed run
    /// whose latest checkpoint is older than `before_ms` (milliseconds since
    /// the Unix epoch; `u64::MAX` for all), and drops those runs' effect
    /// journals. Returns how many checkpoints were removed. Running and
    /// waiting runs are never touched.
    fn compact(&self, before_ms: u64) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// The recorded result of the journaled effect `key`, if there is one
    /// (see [`crate::Cx::effect`]).
    fn effect<'a>(&'a self, key: &'a EffectKey)
    -> BoxFuture<'a, Result<Option<Value>, StoreError>>;

    /// Records the result of the journaled effect `key` and returns the
    /// recorded result: `result`, or the one recorded first if another
    /// writer recorded one already (the first record wins).
    fn record_effect<'a>(
        &'a self,
        key: &'a EffectKey,
        result: &'a Value,
    ) -> BoxFuture<'a, Result<Value, StoreError>>;
}

/// Which journaled effect: the step of a run that ran it, and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EffectKey {
    /// The run.
    pub run_id: RunId,
    /// The step (as [`crate::Cx::step`]): the same when a step runs again
    /// after a crash.
    pub step: u64,
    /// The name the handler gave the effect.
    pub name: String,
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn create<'a>(&'a self, first: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).create(first)
    }
    fn submit<'a>(&'a self, first: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).submit(first)
    }
    fn append<'a>(&'a self, next: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).append(next)
    }
    fn deliver_signal<'a>(&'a self, next: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).deliver_signal(next)
    }
    fn latest(&self, run_id: RunId) -> BoxFuture<'_, Result<Checkpoint, StoreError>> {
        (**self).latest(run_id)
    }
    fn checkpoints(&self, run_id: RunId) -> BoxFuture<'_, Result<Vec<Checkpoint>, StoreError>> {
        (**self).checkpoints(run_id)
    }
    fn runs(
        &self,
        status: Option<RunStatus>,
    ) -> BoxFuture<'_, Result<Vec<RunSummary>, StoreError>> {
        (**self).runs(status)
    }
    fn run_path(&self, run_id: RunId) -> BoxFuture<'_, Result<Vec<Cow<'static, str>>, StoreError>> {
        (**self).run_path(run_id)
    }
    fn compact(&self, before_ms: u64) -> BoxFuture<'_, Result<u64, StoreError>> {
        (**self).compact(before_ms)
    }
    fn effect<'a>(
        &'a self,
        key: &'a EffectKey,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        (**self).effect(key)
    }
    fn record_effect<'a>(
        &'a self,
        key: &'a EffectKey,
        result: &'a Value,
    ) -> BoxFuture<'a, Result<Value, StoreError>> {
        (**self).record_effect(key, result)
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// How an append is checked against the run's latest checkpoint; shared by
/// the stores so they refuse the same things with the same errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendKind {
    /// [`Store::append`].
    Plain,
    /// [`Store::deliver_signal`].
    Signal,
}

/// Checks that checkpoint `next_seq` of `run_id` may follow a latest
/// checkpoint with `seq`, `status` and `state`.
pub(crate) fn check_append(
    kind: AppendKind,
    run_id: RunId,
    next_seq: u64,
    (seq, status, state): (u64, RunStatus, &str),
) -> Result<(), StoreError> {
    if status.is_closed() {
        return Err(StoreError::Closed { run_id, status });
    }
    if next_seq != seq + 1 {
        return Err(StoreError::Conflict {
            run_id,
            attempted: next_seq,
            latest: seq,
        });
    }
    match (kind, status) {
        (AppendKind::Plain, RunStatus::Waiting) | (AppendKind::Signal, RunStatus::Running) => {
            Err(StoreError::NotWaiting {
                run_id,
                status,
                state: state.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

/// Reads a stored checkpoint's JSON; a row that is not one is
/// [`StoreError::Corrupt`].
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn parse(run_id: RunId, seq: u64, body: &str) -> Result<Checkpoint, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        run_id,
        seq,
        detail: e.to_string(),
    })
}

/// Reads a journaled effect's stored result.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn parse_effect(key: &EffectKey, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        run_id: key.run_id,
        seq: key.step,
        detail: format!(
            "the recorded result of effect `{}` at step {}: {e}",
            key.name, key.step
        ),
    })
}

/// Checks the first checkpoint of `run_id`.
pub(crate) fn check_first(run_id: RunId, seq: u64, status: RunStatus) -> Result<(), StoreError> {
    if seq != 0 {
        return Err(StoreError::Conflict {
            run_id,
            attempted: seq,
            latest: 0,
        });
    }
    if status == RunStatus::Failed {
        return Err(StoreError::Closed { run_id, status });
    }
    Ok(())
}
