//! [`PgStore`]: checkpoints in PostgreSQL, shared by many processes and
//! machines, with the leases [`crate::Worker`]s take runs under.
//!
//! Tables live in one schema (`guiderail` unless chosen otherwise), created
//! with its migrations on first use ([`MIGRATIONS`], versioned in code and
//! applied under an advisory lock, so processes starting together do not
//! race). `runs` holds one row per run with its latest header, its lease
//! and whether workers execute it (`queued`); `checkpoints` every
//! checkpoint as JSON; `effects` the journaled effects.
//!
//! Every write is one statement (one round trip, its own transaction): the
//! run's row is locked (`FOR UPDATE`), the append is checked against it
//! (sequence, status, lease) and made only if it passes, and the row's
//! values come back so a refused write is explained with the same errors
//! as the other stores ([`super::check_append`]).
//!
//! # Leases and fencing
//!
//! A worker claims a runnable run (`FOR UPDATE SKIP LOCKED`) and gets a
//! lease: a token from a sequence and an expiry on the server's clock. Every
//! checkpoint it writes carries the token ([`PgStore::fenced`]); the write
//! is refused with [`StoreError::Fenced`] unless that token is the run's
//! current lease and has not expired. A write without a token is refused
//! while any worker holds a live lease on the run, except a signal: no
//! worker advances a waiting run, so a signal is recorded even before the
//! worker that let the run wait has released it. Workers release a run's
//! lease when they are done with it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{
    AppendKind, Checkpoint, EffectKey, RunStatus, RunSummary, Store, StoreError, check_append,
    check_first, parse, parse_effect,
};
use crate::llm::BoxFuture;
use crate::run_id::RunId;

/// The schema, one migration per version (version = index + 1), run inside
/// the store's schema. Append new versions; never edit a released one.
const MIGRATIONS: &[&str] = &[
    // 1: runs with their latest header and lease, checkpoints, effects, the
    // lease token sequence, and a trigger that tells listening workers when
    // a queued run becomes runnable (submitted, signalled, released).
    "CREATE TABLE runs (
        run_id        TEXT PRIMARY KEY,
        machine       TEXT NOT NULL,
        status        TEXT NOT NULL,
        seq           BIGINT NOT NULL,
        state         TEXT NOT NULL,
        fingerprint   BIGINT NOT NULL,
        created_ms    BIGINT NOT NULL,
        updated_ms    BIGINT NOT NULL,
        queued        BOOLEAN NOT NULL DEFAULT false,
        lease_token   BIGINT,
        lease_owner   TEXT,
        lease_expires TIMESTAMPTZ
    );
    CREATE INDEX runs_by_status ON runs (status, run_id);
    CREATE INDEX runs_runnable ON runs (machine, updated_ms) WHERE queued AND status = 'running';
    CREATE TABLE checkpoints (
        run_id TEXT NOT NULL,
        seq    BIGINT NOT NULL,
        body   TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE effects (
        run_id TEXT NOT NULL,
        step   BIGINT NOT NULL,
        name   TEXT NOT NULL,
        at_ms  BIGINT NOT NULL,
        result TEXT NOT NULL,
        PRIMARY KEY (run_id, step, name)
    );
    CREATE SEQUENCE lease_tokens;
    CREATE FUNCTION notify_runnable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '.guiderail_runnable', NEW.machine);
        RETURN NULL;
    END $$;
    CREATE TRIGGER runs_runnable AFTER INSERT OR UPDATE ON runs FOR EACH ROW
        WHEN (NEW.queued AND NEW.status = 'running' AND NEW.lease_token IS NULL)
        EXECUTE FUNCTION notify_runnable();",
];

/// Options of a [`PgStore`].
#[derive(Clone)]
pub struct PgOptions {
    url: String,
    schema: String,
    max_connections: usize,
    application_name: Option<String>,
    migrate: bool,
}

impl fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password.
        f.debug_struct("PgOptions")
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("application_name", &self.application_name)
            .field("migrate", &self.migrate)
            .finish_non_exhaustive()
    }
}

impl PgOptions {
    /// Options for the server at `url` (`postgres://user:pass@host:5432/db`
    /// or `host=… user=…`): schema `guiderail`, 16 connections, migrations
    /// run on connect.
    pub fn new(url: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            schema: "guiderail".into(),
            max_connections: 16,
            application_name: None,
            migrate: true,
        }
    }

    /// The schema the tables live in (default `guiderail`; created if
    /// missing). Several stores can share a database in separate schemas.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The most connections the store's pool opens (default 16).
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// The `application_name` the connections report to the server (shown
    /// in `pg_stat_activity`).
    #[must_use]
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }

    /// Whether [`PgStore::connect_with`] brings the schema up to date
    /// (default `true`). Turn it off where the database user may not
    /// create tables, and run [`PgStore::migrate`] from a deploy step.
    #[must_use]
    pub fn migrate_on_connect(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }
}

/// A checkpoint store in PostgreSQL (feature `postgres`): any number of
/// processes on any number of machines share its runs, and
/// [`crate::Worker`]s execute queued runs under leases.
///
/// ```no_run
/// # async fn f() -> Result<(), guiderail_runtime::store::StoreError> {
/// use guiderail_runtime::store::{PgOptions, PgStore};
///
/// let store = PgStore::connect("postgres://postgres@127.0.0.1:5432/postgres").await?;
/// let other = PgStore::connect_with(
///     PgOptions::new("postgres://postgres@127.0.0.1/app").schema("agents"),
/// )
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: tokio_postgres::Config,
    schema: String,
    channel: String,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

/// A worker's hold on a run: only checkpoints written with its token are
/// accepted, until it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The run.
    pub run_id: RunId,
    /// The lease's fencing token, unique in the store.
    pub token: u64,
}

impl PgStore {
    /// Connects to the server at `url` with default [`PgOptions`], and
    /// brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(PgOptions::new(url)).await
    }

    /// Connects with `options`.
    pub async fn connect_with(options: PgOptions) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = options
            .url
            .parse()
            .map_err(|e| StoreError::Backend(format!("bad PostgreSQL URL: {e}")))?;
        if !valid_schema_name(&options.schema) {
            return Err(StoreError::Backend(format!(
                "schema name `{}` is not a plain identifier (letters, digits, `_`)",
                options.schema
            )));
        }
        config.options(format!("-c search_path={}", options.schema));
        if let Some(name) = &options.application_name {
            config.application_name(name);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections)
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot build the connection pool: {e}")))?;
        let store = PgStore {
            inner: Arc::new(Inner {
                pool,
                config,
                channel: format!("{}.guiderail_runnable", options.schema),
                schema: options.schema,
            }),
        };
        if options.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// The schema the store's tables are in.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// Creates the schema and applies the migrations it lacks, each in its
    /// own transaction with its version recorded in `schema_version`, and
    /// returns the schema version. Safe to run from several processes at once; a database written by a
    /// newer guiderail is refused with [`StoreError::SchemaTooNew`].
    pub async fn migrate(&self) -> Result<u32, StoreError> {
        let mut client = self.client().await?;
        let schema = &self.inner.schema;
        let tx = client.transaction().await.map_err(backend)?;
        // One lock per schema for the whole migration.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('guiderail.migrate.' || $1::text))",
            &[schema],
        )
        .await
        .map_err(backend)?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.schema_version (
                 version    INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             );"
        ))
        .await
        .map_err(backend)?;
        let found: i32 = tx
            .query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {schema}.schema_version"),
                &[],
            )
            .await
            .map_err(backend)?
            .get(0);
        let known = MIGRATIONS.len() as u32;
        let found = found as u32;
        if found > known {
            return Err(StoreError::SchemaTooNew {
                path: format!("schema `{schema}`"),
                found,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.batch_execute(&format!("SET LOCAL search_path = {schema}; {sql}"))
                .await
                .map_err(|e| {
                    StoreError::Backend(format!("migration {} failed: {}", i + 1, detail(&e)))
                })?;
            tx.execute(
                &format!("INSERT INTO {schema}.schema_version (version) VALUES ($1)"),
                &[&(i as i32 + 1)],
            )
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(known)
    }

    /// Drops the store's schema with everything in it. For tests and for
    /// tearing down a deployment; there is no undo.
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                self.inner.schema
            ))
            .await
            .map_err(backend)
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Backend(format!("cannot get a PostgreSQL connection: {e}")))
    }

    async fn insert(&self, first: &Checkpoint, queued: bool) -> Result<(), StoreError> {
        check_first(first.run_id, first.seq, first.status)?;
        let body = encode(first)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let id = first.run_id.to_string();
        let insert_run = tx
            .prepare_cached(
                "INSERT INTO runs (run_id, machine, status, seq, state, fingerprint, created_ms, updated_ms, queued)
                 VALUES ($1, $2, $3, 0, $4, $5, $6, $6, $7)",
            )
            .await
            .map_err(backend)?;
        let inserted = tx
            .execute(
                &insert_run,
                &[
                    &id,
                    &first.machine.as_ref(),
                    &first.status.as_str(),
                    &first.state_name.as_ref(),
                    &(first.fingerprint as i64),
                    &(first.at_ms as i64),
                    &queued,
                ],
            )
            .await;
        match inserted {
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return Err(StoreError::AlreadyExists {
                    run_id: first.run_id,
                });
            }
            other => other.map_err(backend)?,
        };
        let insert_cp = tx
            .prepare_cached("INSERT INTO checkpoints (run_id, seq, body) VALUES ($1, 0, $2)")
            .await
            .map_err(backend)?;
        tx.execute(&insert_cp, &[&id, &body])
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    /// Appends `next` under `kind`'s rules, carrying `lease` (or none).
    async fn write(
        &self,
        kind: AppendKind,
        next: &Checkpoint,
        lease: Option<u64>,
    ) -> Result<(), StoreError> {
        let body = encode(next)?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "WITH cur AS (
                     SELECT seq, status, state, lease_token,
                            coalesce(lease_expires > clock_timestamp(), false) AS leased
                     FROM runs WHERE run_id = $1 FOR UPDATE
                 ), ok AS (
                     SELECT 1 FROM cur
                     WHERE cur.seq = $2::bigint - 1 AND cur.status = $3::text
                       AND CASE WHEN $3::text = 'waiting' THEN true
                                WHEN $4::bigint IS NULL THEN NOT cur.leased
                                ELSE cur.leased AND cur.lease_token = $4::bigint END
                 ), ins AS (
                     INSERT INTO checkpoints (run_id, seq, body) SELECT $1, $2, $5 FROM ok
                     RETURNING 1
                 ), upd AS (
                     UPDATE runs SET seq = $2, status = $6, state = $7, fingerprint = $8,
                         updated_ms = $9
                     WHERE run_id = $1 AND EXISTS (SELECT 1 FROM ok)
                     RETURNING 1
                 )
                 SELECT seq, status, state, EXISTS (SELECT 1 FROM ins) FROM cur",
            )
            .await
            .map_err(backend)?;
        let required = match kind {
            AppendKind::Plain => RunStatus::Running,
            AppendKind::Signal => RunStatus::Waiting,
        };
        let row = client
            .query_opt(
                &stmt,
                &[
                    &next.run_id.to_string(),
                    &(next.seq as i64),
                    &required.as_str(),
                    &lease.map(|t| t as i64),
                    &body,
                    &next.status.as_str(),
                    &next.state_name.as_ref(),
                    &(next.fingerprint as i64),
                    &(next.at_ms as i64),
                ],
            )
            .await
            .map_err(backend)?
            .ok_or(StoreError::NotFound {
                run_id: next.run_id,
            })?;
        if row.get::<_, bool>(3) {
            return Ok(());
        }
        let (seq, status, state): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
        let status = parse_status(next.run_id, seq, &status)?;
        check_append(kind, next.run_id, next.seq, (seq as u64, status, &state))?;
        // The sequence and status allow the write: the lease did not.
        Err(StoreError::Fenced {
            run_id: next.run_id,
            token: lease,
        })
    }

    /// A view of the store whose checkpoint writes carry `lease`: they are
    /// refused with [`StoreError::Fenced`] once the lease has expired or
    /// another worker holds the run.
    pub fn fenced(&self, lease: Lease) -> FencedStore {
        FencedStore {
            store: self.clone(),
            lease,
        }
    }

    /// Claims up to `n` runnable runs of `machines` for `owner` for `ttl`:
    /// queued runs that are running and hold no live lease (new, signalled,
    /// released, or left by a worker whose lease expired), oldest first,
    /// leaving out `skip`. Returns each lease with its run's machine.
    pub async fn claim(
        &self,
        machines: &[&str],
        owner: &str,
        n: usize,
        ttl: Duration,
        skip: &[RunId],
    ) -> Result<Vec<(Lease, String)>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE runs SET lease_token = nextval('lease_tokens'), lease_owner = $3,
                     lease_expires = clock_timestamp() + $4::bigint * interval '1 millisecond'
                 WHERE run_id IN (
                     SELECT run_id FROM runs
                     WHERE queued AND status = 'running' AND machine = ANY($1)
                       AND (lease_expires IS NULL OR lease_expires <= clock_timestamp())
                       AND NOT run_id = ANY($5)
                     ORDER BY updated_ms
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                 RETURNING run_id, lease_token, machine",
            )
            .await
            .map_err(backend)?;
        let skip: Vec<String> = skip.iter().map(RunId::to_string).collect();
        let rows = client
            .query(
                &stmt,
                &[&machines, &(n as i64), &owner, &millis(ttl), &skip],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let id: String = row.get(0);
                let token: i64 = row.get(1);
                let lease = Lease {
                    run_id: id.parse().map_err(|e| {
                        StoreError::Backend(format!("stored run id `{id}` is not a run id: {e}"))
                    })?,
                    token: token as u64,
                };
                Ok((lease, row.get(2)))
            })
            .collect()
    }

    /// Extends the live leases among `tokens` to `ttl` from now, and
    /// returns the tokens that were extended: a token left out has expired
    /// or was taken over, and its run must not be advanced any more.
    pub async fn renew(&self, tokens: &[u64], ttl: Duration) -> Result<Vec<u64>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE runs SET lease_expires = clock_timestamp() + $2::bigint * interval '1 millisecond'
                 WHERE lease_token = ANY($1) AND lease_expires > clock_timestamp()
                 RETURNING lease_token",
            )
            .await
            .map_err(backend)?;
        let tokens: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        let rows = client
            .query(&stmt, &[&tokens, &millis(ttl)])
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
    }

    /// Gives a lease back: the run (if still running) is runnable again at
    /// once, for any worker. Returns whether the lease was still held.
    pub async fn release(&self, lease: Lease) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE runs SET lease_token = NULL, lease_owner = NULL, lease_expires = NULL
                 WHERE run_id = $1 AND lease_token = $2",
            )
            .await
            .map_err(backend)?;
        let n = client
            .execute(&stmt, &[&lease.run_id.to_string(), &(lease.token as i64)])
            .await
            .map_err(backend)?;
        Ok(n == 1)
    }

    /// Listens for runs becoming runnable. The returned listener's
    /// [`Listener::wait`] returns when one may have (or after its timeout).
    pub async fn listen(&self) -> Result<Listener, StoreError> {
        let (client, mut connection) = self.inner.config.connect(NoTls).await.map_err(|e| {
            StoreError::Backend(format!("cannot connect to listen: {}", detail(&e)))
        })?;
        let notify = Arc::new(tokio::sync::Notify::new());
        let wake = notify.clone();
        let task = tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => wake.notify_one(),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            // The connection is gone: wake the waiter so it polls.
            wake.notify_one();
        });
        client
            .batch_execute(&format!("LISTEN \"{}\"", self.inner.channel))
            .await
            .map_err(backend)?;
        Ok(Listener {
            _client: client,
            notify,
            task,
        })
    }
}

/// Notifications that queued runs became runnable (see [`PgStore::listen`]).
#[derive(Debug)]
pub struct Listener {
    _client: tokio_postgres::Client,
    notify: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Returns when a run may have become runnable, or after `timeout`.
    pub async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.notify.notified()).await;
    }

    /// Whether the listening connection is still up.
    pub fn is_alive(&self) -> bool {
        !self.task.is_finished()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A [`PgStore`] whose checkpoint writes carry a lease (see
/// [`PgStore::fenced`]). Reads and effects go to the store unchanged.
#[derive(Debug, Clone)]
pub struct FencedStore {
    store: PgStore,
    lease: Lease,
}

impl FencedStore {
    /// The lease the writes carry.
    pub fn lease(&self) -> Lease {
        self.lease
    }
}

impl Store for FencedStore {
    fn create<'a>(&'a self, first: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        self.store.create(first)
    }
    fn append<'a>(&'a self, next: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(
            self.store
                .write(AppendKind::Plain, next, Some(self.lease.token)),
        )
    }
    fn deliver_signal<'a>(&'a self, next: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(
            self.store
                .write(AppendKind::Signal, next, Some(self.lease.token)),
        )
    }
    fn latest(&self, run_id: RunId) -> BoxFuture<'_, Result<Checkpoint, StoreError>> {
        self.store.latest(run_id)
    }
    fn checkpoints(&self, run_id: RunId) -> BoxFuture<'_, Result<Vec<Checkpoint>, StoreError>> {
        self.store.checkpoints(run_id)
    }
    fn runs(
        &self,
        status: Option<RunStatus>,
    ) -> BoxFuture<'_, Result<Vec<RunSummary>, StoreError>> {
        self.store.runs(status)
    }
    fn compact(&self, before_ms: u64) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.store.compact(before_ms)
    }
    fn effect<'a>(
        &'a self,
        key: &'a EffectKey,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        self.store.effect(key)
    }
    fn record_effect<'a>(
        &'a self,
        key: &'a EffectKey,
        result: &'a Value,
    ) -> BoxFuture<'a, Result<Value, StoreError>> {
        self.store.record_effect(key, result)
    }
}

impl Store for PgStore {
    fn create<'a>(&'a self, first: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.insert(first, false))
    }

    /// Stores a new run queued for [`crate::Worker`]s: a worker claims
    /// it, runs it, and takes it again after a signal.
    fn submit<'a>(&'a self, first: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.insert(first, true))
    }

    fn append<'a>(&'a self, next: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.write(AppendKind::Plain, next, None))
    }

    fn deliver_signal<'a>(&'a self, next: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.write(AppendKind::Signal, next, None))
    }

    fn latest(&self, run_id: RunId) -> BoxFuture<'_, Result<Checkpoint, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT c.seq, c.body FROM runs r
                     JOIN checkpoints c ON c.run_id = r.run_id AND c.seq = r.seq
                     WHERE r.run_id = $1",
                )
                .await
                .map_err(backend)?;
            let row = client
                .query_opt(&stmt, &[&run_id.to_string()])
                .await
                .map_err(backend)?
                .ok_or(StoreError::NotFound { run_id })?;
            parse(run_id, row.get::<_, i64>(0) as u64, row.get(1))
        })
    }

    fn checkpoints(&self, run_id: RunId) -> BoxFuture<'_, Result<Vec<Checkpoint>, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached("SELECT seq, body FROM checkpoints WHERE run_id = $1 ORDER BY seq")
                .await
                .map_err(backend)?;
            let rows = client
                .query(&stmt, &[&run_id.to_string()])
                .await
                .map_err(backend)?;
            if rows.is_empty() {
                return Err(StoreError::NotFound { run_id });
            }
            rows.iter()
                .map(|row| parse(run_id, row.get::<_, i64>(0) as u64, row.get(1)))
                .collect()
        })
    }

    fn runs(
        &self,
        status: Option<RunStatus>,
    ) -> BoxFuture<'_, Result<Vec<RunSummary>, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT run_id, machine, fingerprint, status, seq, state, updated_ms FROM runs
                     WHERE $1::text IS NULL OR status = $1 ORDER BY run_id",
                )
                .await
                .map_err(backend)?;
            let rows = client
                .query(&stmt, &[&status.map(RunStatus::as_str)])
                .await
                .map_err(backend)?;
            rows.iter()
                .map(|row| {
                    let id: String = row.get(0);
                    let run_id: RunId = id.parse().map_err(|e| {
                        StoreError::Backend(format!("stored run id `{id}` is not a run id: {e}"))
                    })?;
                    let seq: i64 = row.get(4);
                    Ok(RunSummary {
                        run_id,
                        machine: row.get(1),
                        fingerprint: row.get::<_, i64>(2) as u64,
                        status: parse_status(run_id, seq, row.get(3))?,
                        seq: seq as u64,
                        state: row.get(5),
                        updated_at_ms: row.get::<_, i64>(6) as u64,
                    })
                })
                .collect()
        })
    }

    fn compact(&self, before_ms: u64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(backend)?;
            let before = i64::try_from(before_ms).unwrap_or(i64::MAX);
            let removed = tx
                .execute(
                    "DELETE FROM checkpoints c USING runs r
                     WHERE c.run_id = r.run_id AND r.status IN ('finished', 'failed')
                       AND r.updated_ms < $1 AND c.seq < r.seq",
                    &[&before],
                )
                .await
                .map_err(backend)?;
            tx.execute(
                "DELETE FROM effects e USING runs r
                 WHERE e.run_id = r.run_id AND r.status IN ('finished', 'failed')
                   AND r.updated_ms < $1",
                &[&before],
            )
            .await
            .map_err(backend)?;
            tx.commit().await.map_err(backend)?;
            Ok(removed)
        })
    }

    fn effect<'a>(
        &'a self,
        key: &'a EffectKey,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            match select_effect(&client, key).await? {
                Some(text) => Ok(Some(parse_effect(key, &text)?)),
                None => Ok(None),
            }
        })
    }

    fn record_effect<'a>(
        &'a self,
        key: &'a EffectKey,
        result: &'a Value,
    ) -> BoxFuture<'a, Result<Value, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO effects (run_id, step, name, at_ms, result) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(backend)?;
            client
                .execute(
                    &stmt,
                    &[
                        &key.run_id.to_string(),
                        &(key.step as i64),
                        &key.name,
                        &(super::now_ms() as i64),
                        &result.to_string(),
                    ],
                )
                .await
                .map_err(backend)?;
            // Whichever record is there now is the first one.
            let text = select_effect(&client, key).await?.ok_or_else(|| {
                StoreError::Backend(format!(
                    "run {}: effect `{}` at step {} vanished after being recorded",
                    key.run_id, key.name, key.step
                ))
            })?;
            parse_effect(key, &text)
        })
    }
}

async fn select_effect(
    client: &deadpool_postgres::Client,
    key: &EffectKey,
) -> Result<Option<String>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT result FROM effects WHERE run_id = $1 AND step = $2 AND name = $3")
        .await
        .map_err(backend)?;
    let row = client
        .query_opt(
            &stmt,
            &[&key.run_id.to_string(), &(key.step as i64), &key.name],
        )
        .await
        .map_err(backend)?;
    Ok(row.map(|r| r.get(0)))
}

fn encode(c: &Checkpoint) -> Result<String, StoreError> {
    serde_json::to_string(c).map_err(|e| StoreError::Encode {
        run_id: c.run_id,
        detail: format!("cannot serialise checkpoint {}: {e}", c.seq),
    })
}

fn parse_status(run_id: RunId, seq: i64, s: &str) -> Result<RunStatus, StoreError> {
    RunStatus::parse(s).ok_or_else(|| StoreError::Corrupt {
        run_id,
        seq: seq as u64,
        detail: format!("unknown status `{s}`"),
    })
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn valid_schema_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 50
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The server's message for `e`, with its detail and hint when it has them.
fn detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            s
        }
        None => e.to_string(),
    }
}

fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(format!("PostgreSQL: {}", detail(&e)))
}
