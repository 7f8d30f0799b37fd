//! [`Worker`]: executes queued durable runs from a [`PgStore`], on any
//! number of processes and machines, one worker per run at a time.
//!
//! A worker claims runnable runs (`FOR UPDATE SKIP LOCKED`), each under a
//! lease with an expiry; it renews all its leases in one statement every
//! third of the lease time (the heartbeat), and writes every checkpoint
//! fenced by the lease's token, so a worker that lost its lease cannot
//! advance the run any more: its write is refused
//! ([`StoreError::Fenced`]) and counted in [`WorkerStats::fenced`].
//!
//! When renewing fails (the database is unreachable), the worker keeps its
//! runs only until the leases it last renewed would expire, then drops them
//! ([`WorkerStats::lost`]); another worker takes them over once the leases
//! have expired on the server.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::llm::BoxFuture;
use crate::machine::Dispatch;
use crate::run_id::RunId;
use crate::runner::{DurableContext, DurableError, DurableMachine, Ended, Runner};
use crate::store::{Lease, PgStore, Store, StoreError};

/// Runs one claimed run of one machine to its end (or its next wait).
type Execute =
    Arc<dyn Fn(Runner, Arc<dyn Store>, RunId) -> BoxFuture<'static, RunEnd> + Send + Sync>;

/// How a claimed run ended on this worker.
enum RunEnd {
    Finished,
    Waiting,
    Failed,
    Error(DurableError),
}

/// Executes queued runs of the machines it serves, from a [`PgStore`].
///
/// ```no_run
/// # use std::sync::Arc;
/// # use guiderail_runtime::{Runner, Worker};
/// # use guiderail_runtime::store::PgStore;
/// # async fn f<M, H>(handlers: Arc<H>) -> Result<(), Box<dyn std::error::Error>>
/// # where
/// #     M: guiderail_runtime::Dispatch<H> + guiderail_runtime::DurableMachine + Send + 'static,
/// #     M::Context: guiderail_runtime::DurableContext + Send,
/// #     H: Send + Sync + 'static,
/// # {
/// let store = PgStore::connect("postgres://postgres@127.0.0.1/postgres").await?;
/// let runner = Runner::builder().shared_store(Arc::new(store.clone())).build();
/// let worker = Worker::new(runner, store)
///     .serve::<M, H>(handlers)
///     .concurrency(16)
///     .start();
/// // … until the process is asked to stop:
/// let report = worker.shutdown().await;
/// println!("{report:?}");
/// # Ok(()) }
/// ```
pub struct Worker {
    runner: Runner,
    store: PgStore,
    machines: Vec<(&'static str, Execute)>,
    name: String,
    concurrency: usize,
    lease_ttl: Duration,
    poll_interval: Duration,
    shutdown_grace: Duration,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .field(
                "machines",
                &self.machines.iter().map(|m| m.0).collect::<Vec<_>>(),
            )
            .field("concurrency", &self.concurrency)
            .field("lease_ttl", &self.lease_ttl)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker that runs claimed runs with `runner`'s model, bounds and
    /// subscribers, keeping them in `store` (journaled effects too). Serve
    /// at least one machine ([`Worker::serve`]) before starting it.
    ///
    /// Defaults: 8 runs at a time, 30 s leases, a poll every second when no
    /// notification arrives, 30 s for runs in hand to finish at shutdown.
    pub fn new(runner: Runner, store: PgStore) -> Self {
        let runner = runner.with_store(Arc::new(store.clone()));
        Worker {
            runner,
            store,
            machines: Vec::new(),
            name: format!("worker-{}", std::process::id()),
            concurrency: 8,
            lease_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
        }
    }

    /// Executes runs of machine `M` with `handlers`.
    #[must_use]
    pub fn serve<M, H>(mut self, handlers: Arc<H>) -> Self
    where
        M: Dispatch<H> + DurableMachine + Send + 'static,
        M::Context: DurableContext + Send,
        H: Send + Sync + 'static,
    {
        let execute: Execute = Arc::new(move |runner: Runner, store, run_id| {
            let handlers = handlers.clone();
            Box::pin(async move {
                match runner.resume_in::<M, H>(store, &*handlers, run_id).await {
                    Ok(Ended::Finished(_)) => RunEnd::Finished,
                    Ok(Ended::Waiting(_)) => RunEnd::Waiting,
                    // The run itself failed, and is stored as failed.
                    Err(e @ DurableError::Run(_)) if e.store_error().is_none() => RunEnd::Failed,
                    Err(e) => RunEnd::Error(e),
                }
            })
        });
        self.machines.push((M::NAME, execute));
        self
    }

    /// The worker's name, recorded as the owner of its leases (default
    /// `worker-<pid>`); a random suffix keeps two workers of one name apart.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How many runs the worker executes at once (default 8).
    #[must_use]
    pub fn concurrency(mut self, runs: usize) -> Self {
        self.concurrency = runs.max(1);
        self
    }

    /// How long a lease lasts without renewal (default 30 s): how long a
    /// dead worker's runs wait before another worker takes them over.
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(300));
        self
    }

    /// How often the worker looks for runs when no notification arrives
    /// (default 1 s): the longest a run left by a dead worker waits after
    /// its lease expired.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How long [`WorkerHandle::shutdown`] lets runs in hand go on before
    /// it stops them and gives their leases back (default 30 s).
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Starts the worker on its own task.
    pub fn start(self) -> WorkerHandle {
        let stats = Arc::new(Counters::default());
        let (stop, stopped) = watch::channel(false);
        let owner = format!("{}-{:08x}", self.name, RunId::new().as_u128() as u32);
        let join = tokio::spawn(Loop::new(self, owner, stats.clone()).run(stopped));
        WorkerHandle { stats, stop, join }
    }
}

/// A running [`Worker`].
#[derive(Debug)]
pub struct WorkerHandle {
    stats: Arc<Counters>,
    stop: watch::Sender<bool>,
    join: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    /// What the worker has done so far.
    pub fn stats(&self) -> WorkerStats {
        self.stats.snapshot()
    }

    /// Stops the worker at once, as if its process died: its runs stop
    /// where they are and keep their leases, so other workers take them
    /// over only when the leases expire. For tests of crash behaviour;
    /// use [`WorkerHandle::shutdown`] to stop a worker.
    pub fn abort(self) {
        self.join.abort();
    }

    /// Stops claiming runs, lets the runs in hand go on for the shutdown
    /// grace, then stops the rest and gives their leases back so other
    /// workers take them at once. Returns the final figures.
    pub async fn shutdown(self) -> WorkerStats {
        let _ = self.stop.send(true);
        let _ = self.join.await;
        self.stats.snapshot()
    }
}

/// What a worker has done, counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Runs claimed.
    pub claimed: u64,
    /// Runs that finished here.
    pub finished: u64,
    /// Runs that reached a wait state here (and were let go).
    pub waiting: u64,
    /// Runs that failed here (stored as failed).
    pub failed: u64,
    /// Checkpoint writes the store refused because this worker's lease had
    /// expired or been taken over.
    pub fenced: u64,
    /// Runs dropped because their lease could not be renewed in time.
    pub lost: u64,
    /// Runs given back at shutdown, or after an error that another worker
    /// may not have (a store failure, a graph this build does not know).
    pub released: u64,
}

#[derive(Debug, Default)]
struct Counters {
    claimed: AtomicU64,
    finished: AtomicU64,
    waiting: AtomicU64,
    failed: AtomicU64,
    fenced: AtomicU64,
    lost: AtomicU64,
    released: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> WorkerStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WorkerStats {
            claimed: get(&self.claimed),
            finished: get(&self.finished),
            waiting: get(&self.waiting),
            failed: get(&self.failed),
            fenced: get(&self.fenced),
            lost: get(&self.lost),
            released: get(&self.released),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// A run in hand.
struct Held {
    lease: Lease,
    /// When the lease expires at the latest, on this machine's clock.
    deadline: Instant,
    abort: AbortHandle,
}

struct Loop {
    worker: Worker,
    owner: String,
    stats: Arc<Counters>,
    held: HashMap<u64, Held>,
    tasks: JoinSet<(u64, RunEnd)>,
    /// Runs this build cannot run (another machine version): left to
    /// other workers.
    skipped: HashSet<RunId>,
}

impl Loop {
    fn new(worker: Worker, owner: String, stats: Arc<Counters>) -> Self {
        Loop {
            worker,
            owner,
            stats,
            held: HashMap::new(),
            tasks: JoinSet::new(),
            skipped: HashSet::new(),
        }
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let listener = match self.worker.store.listen().await {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!(worker = %self.owner, "cannot listen for new runs, polling only: {e}");
                None
            }
        };
        let ttl = self.worker.lease_ttl;
        let mut heartbeat = tokio::time::interval(ttl / 3);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut draining: Option<Instant> = None;
        loop {
            if draining.is_none() {
                self.claim().await;
            } else if self.held.is_empty() {
                break;
            }
            let grace_over = async {
                match draining {
                    Some(until) => tokio::time::sleep_until(until).await,
                    None => std::future::pending().await,
                }
            };
            let wake = async {
                match &listener {
                    Some(l) if l.is_alive() => l.wait(self.worker.poll_interval).await,
                    _ => tokio::time::sleep(self.worker.poll_interval).await,
                }
            };
            tokio::select! {
                changed = stop.changed(), if draining.is_none() => {
                    let _ = changed;
                    draining = Some(Instant::now() + self.worker.shutdown_grace);
                }
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Ok((token, end)) = joined {
                        self.ended(token, end).await;
                    }
                }
                _ = heartbeat.tick() => self.renew().await,
                () = grace_over => {
                    self.release_all().await;
                    break;
                }
                () = wake => {}
            }
        }
        self.tasks.shutdown().await;
    }

    async fn claim(&mut self) {
        let free = self.worker.concurrency.saturating_sub(self.held.len());
        if free == 0 {
            return;
        }
        let names: Vec<&str> = self.worker.machines.iter().map(|m| m.0).collect();
        let skipped: Vec<RunId> = self.skipped.iter().copied().collect();
        let asked = Instant::now();
        let leases = match self
            .worker
            .store
            .claim(&names, &self.owner, free, self.worker.lease_ttl, &skipped)
            .await
        {
            Ok(leases) => leases,
            Err(e) => {
                tracing::warn!(worker = %self.owner, "claiming runs failed: {e}");
                return;
            }
        };
        for (lease, machine) in leases {
            bump(&self.stats.claimed);
            let Some((_, execute)) = self.worker.machines.iter().find(|m| m.0 == machine) else {
                continue;
            };
            let fenced: Arc<dyn Store> = Arc::new(self.worker.store.fenced(lease));
            let run = execute(self.worker.runner.clone(), fenced, lease.run_id);
            let token = lease.token;
            let abort = self.tasks.spawn(async move { (token, run.await) });
            self.held.insert(
                token,
                Held {
                    lease,
                    deadline: asked + self.worker.lease_ttl,
                    abort,
                },
            );
        }
    }

    async fn ended(&mut self, token: u64, end: RunEnd) {
        let Some(held) = self.held.remove(&token) else {
            return;
        };
        let counter = match end {
            RunEnd::Finished => &self.stats.finished,
            RunEnd::Waiting => &self.stats.waiting,
            RunEnd::Failed => &self.stats.failed,
            RunEnd::Error(e) => {
                if let Some(StoreError::Fenced { .. }) = e.store_error() {
                    bump(&self.stats.fenced);
                    return;
                }
                tracing::warn!(worker = %self.owner, run_id = %held.lease.run_id, "run stopped: {e}");
                if !matches!(e, DurableError::Store(_) | DurableError::Run(_)) {
                    // Not a failure of the run or the database: this build
                    // cannot run it (its graph changed, its state does not
                    // decode). Leave it to other workers.
                    self.skipped.insert(held.lease.run_id);
                }
                if self.worker.store.release(held.lease).await.unwrap_or(false) {
                    bump(&self.stats.released);
                }
                return;
            }
        };
        bump(counter);
        // Done with it: a signalled run is runnable again at once. A failed
        // release leaves the lease to expire.
        if let Err(e) = self.worker.store.release(held.lease).await {
            tracing::warn!(worker = %self.owner, run_id = %held.lease.run_id, "releasing the lease failed: {e}");
        }
    }

    async fn renew(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let tokens: Vec<u64> = self.held.keys().copied().collect();
        let asked = Instant::now();
        match self
            .worker
            .store
            .renew(&tokens, self.worker.lease_ttl)
            .await
        {
            Ok(renewed) => {
                let renewed: HashSet<u64> = renewed.into_iter().collect();
                for token in tokens {
                    if renewed.contains(&token) {
                        if let Some(held) = self.held.get_mut(&token) {
                            held.deadline = asked + self.worker.lease_ttl;
                        }
                    } else {
                        self.drop_run(token, "its lease expired or was taken over");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(worker = %self.owner, "renewing leases failed: {e}");
                // Keep each run only while its last lease surely holds.
                let margin = self.worker.lease_ttl / 6;
                let now = Instant::now();
                let expiring: Vec<u64> = self
                    .held
                    .iter()
                    .filter(|(_, h)| h.deadline.saturating_duration_since(now) <= margin)
                    .map(|(t, _)| *t)
                    .collect();
                for token in expiring {
                    self.drop_run(token, "its lease could not be renewed in time");
                }
            }
        }
    }

    fn drop_run(&mut self, token: u64, why: &str) {
        if let Some(held) = self.held.remove(&token) {
            held.abort.abort();
            bump(&self.stats.lost);
            tracing::warn!(worker = %self.owner, run_id = %held.lease.run_id, "run dropped: {why}");
        }
    }

    async fn release_all(&mut self) {
        self.tasks.abort_all();
        for (_, held) in std::mem::take(&mut self.held) {
            if self.worker.store.release(held.lease).await.unwrap_or(false) {
                bump(&self.stats.released);
            }
        }
    }
}
