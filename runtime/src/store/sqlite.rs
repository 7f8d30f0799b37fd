//! [`SqliteStore`]: checkpoints in one SQLite file.
//!
//! One dedicated thread owns the file's connection and does every read and
//! write; callers send it commands over a channel and await the answer, so
//! no tokio worker ever blocks on the disk. Checkpoints that arrive while a
//! transaction is being written are committed together in the next one
//! (group commit): a single run pays one transaction per transition, many
//! concurrent runs share them. Each checkpoint in a group is checked on its
//! own, and a refused one is left out without touching the others.
//!
//! Checkpoints are serialised to JSON by the caller (on its task) and
//! parsed back by the caller, so the writer thread only runs SQL.
//!
//! The schema is versioned in code ([`MIGRATIONS`]): a new file gets every
//! migration, an older one the missing ones, each in its own transaction
//! with its number recorded in `schema_version`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::{
    AppendKind, Checkpoint, EffectKey, RunStatus, RunSummary, Store, StoreError, check_append,
    check_first,
};
use crate::llm::BoxFuture;
use crate::run_id::RunId;
use serde_json::Value;

/// `PRAGMA application_id` of a guiderail store ("grl1"), so a SQLite file
/// of another program is recognised and left alone.
const APPLICATION_ID: i64 = 0x6772_6c31;

/// The schema, one migration per version (version = index + 1). Append new
/// versions; never edit a released one.
const MIGRATIONS: &[&str] = &[
    // 1: `runs`, one row per run, written when the run is created and when
    // its status changes (so listing by status is an index scan), and
    // `checkpoints`, every checkpoint: its header in columns, all of it as
    // JSON in `body`. A transition that keeps the status writes one
    // checkpoint row and nothing else.
    "CREATE TABLE runs (
        run_id      TEXT PRIMARY KEY NOT NULL,
        machine     TEXT NOT NULL,
        status      TEXT NOT NULL,
        created_ms  INTEGER NOT NULL,
        updated_ms  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX runs_by_status ON runs (status, run_id);
    CREATE TABLE checkpoints (
        run_id      TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        status      TEXT NOT NULL,
        state       TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        at_ms       INTEGER NOT NULL,
        body        TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE effects (
        run_id TEXT NOT NULL,
        step   INTEGER NOT NULL,
        name   TEXT NOT NULL,
        at_ms  INTEGER NOT NULL,
        result TEXT NOT NULL,
        PRIMARY KEY (run_id, step, name)
    );",
];

/// How hard SQLite works to keep a commit (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// `NORMAL`: in WAL mode a commit survives the process being killed at
    /// any point, but the last commits can be lost if the machine loses
    /// power. The default.
    #[default]
    Normal,
    /// `FULL`: every commit is flushed to the disk before it returns, so it
    /// also survives a power loss. Several times slower per transaction.
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// Options of a [`SqliteStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    synchronous: Synchronous,
    busy_timeout: Duration,
    max_batch: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            max_batch: 256,
        }
    }
}

impl SqliteOptions {
    /// Default options: `synchronous=NORMAL`, a 5 s busy timeout, at most
    /// 256 checkpoints per transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// The durability level (default [`Synchronous::Normal`]).
    #[must_use]
    pub fn synchronous(mut self, level: Synchronous) -> Self {
        self.synchronous = level;
        self
    }

    /// How long a write waits for another process's transaction on the
    /// same file before failing (default 5 s).
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The most checkpoints committed in one transaction (default 256;
    /// 1 turns group commit off).
    #[must_use]
    pub fn max_batch(mut self, checkpoints: usize) -> Self {
        self.max_batch = checkpoints.max(1);
        self
    }
}

/// A checkpoint store in one SQLite file (WAL mode), created with its
/// schema on first use.
///
/// Any number of processes may open the same file: each write is one
/// transaction, and a stale writer is refused (see the
/// [module docs](super)).
///
/// ```no_run
/// use guiderail_runtime::store::{SqliteOptions, SqliteStore, Synchronous};
///
/// let store = SqliteStore::open("runs.db")?;
/// let strict = SqliteStore::open_with(
///     "strict.db",
///     SqliteOptions::new().synchronous(Synchronous::Full),
/// )?;
/// # Ok::<(), guiderail_runtime::store::StoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    commands: mpsc::Sender<Command>,
}

/// One checkpoint, ready for SQL.
struct Row {
    run_id: RunId,
    id: String,
    seq: u64,
    status: RunStatus,
    state: String,
    machine: String,
    fingerprint: String,
    at_ms: u64,
    body: String,
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Command {
    Create(Row, Reply<()>),
    Append(AppendKind, Row, Reply<()>),
    Latest(RunId, Reply<Option<(u64, String)>>),
    All(RunId, Reply<Vec<(u64, String)>>),
    Runs(Option<RunStatus>, Reply<Vec<RunSummary>>),
    Compact(u64, Reply<u64>),
    Effect(EffectKey, Reply<Option<String>>),
    RecordEffect(EffectKey, String, Reply<String>),
}

impl Command {
    fn is_write(&self) -> bool {
        matches!(
            self,
            Command::Create(..) | Command::Append(..) | Command::RecordEffect(..)
        )
    }
}

impl SqliteStore {
    /// Opens (or creates) the store at `path` with default options.
    ///
    /// Blocks while the file is opened and its schema brought up to date.
    /// A file that is not a SQLite database, is damaged, or belongs to
    /// another program is refused with [`StoreError::NotADatabase`] and
    /// left as it was.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (or creates) the store at `path`.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let conn = open_connection(&path, &options)?;
        let (commands, rx) = mpsc::channel();
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name("guiderail-sqlite".into())
            .spawn(move || {
                Writer {
                    conn,
                    path: thread_path,
                    max_batch: options.max_batch,
                }
                .run(rx)
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the store's thread: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner { path, commands }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn call<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.inner.commands.send(make(tx));
        async move {
            sent.map_err(|_| stopped())?;
            rx.await.map_err(|_| stopped())?
        }
    }

    fn row(&self, c: &Checkpoint) -> Result<Row, StoreError> {
        let body = serde_json::to_string(c)
            .map_err(|e| StoreError::Backend(format!("cannot serialise checkpoint: {e}")))?;
        Ok(Row {
            run_id: c.run_id,
            id: c.run_id.to_string(),
            seq: c.seq,
            status: c.status,
            state: c.state_name.to_string(),
            machine: c.machine.to_string(),
            fingerprint: format!("{:016x}", c.fingerprint),
            at_ms: c.at_ms,
            body,
        })
    }

    fn write(
        &self,
        make: impl FnOnce(Row, Reply<()>) -> Command,
        c: &Checkpoint,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        match self.row(c) {
            Ok(row) => Box::pin(self.call(|reply| make(row, reply))),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the store's writer thread stopped".into())
}

fn parse(run_id: RunId, seq: u64, body: &str) -> Result<Checkpoint, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        run_id,
        seq,
        detail: e.to_string(),
    })
}

impl Store for SqliteStore {
    fn create<'a>(&'a self, first: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write(Command::Create, first)
    }

    fn append<'a>(&'a self, next: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write(
            |row, reply| Command::Append(AppendKind::Plain, row, reply),
            next,
        )
    }

    fn deliver_signal<'a>(&'a self, next: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write(
            |row, reply| Command::Append(AppendKind::Signal, row, reply),
            next,
        )
    }

    fn latest(&self, run_id: RunId) -> BoxFuture<'_, Result<Checkpoint, StoreError>> {
        let answer = self.call(|reply| Command::Latest(run_id, reply));
        Box::pin(async move {
            let (seq, body) = answer.await?.ok_or(StoreError::NotFound { run_id })?;
            parse(run_id, seq, &body)
        })
    }

    fn checkpoints(&self, run_id: RunId) -> BoxFuture<'_, Result<Vec<Checkpoint>, StoreError>> {
        let answer = self.call(|reply| Command::All(run_id, reply));
        Box::pin(async move {
            let rows = answer.await?;
            if rows.is_empty() {
                return Err(StoreError::NotFound { run_id });
            }
            rows.iter()
                .map(|(seq, body)| parse(run_id, *seq, body))
                .collect()
        })
    }

    fn runs(
        &self,
        status: Option<RunStatus>,
    ) -> BoxFuture<'_, Result<Vec<RunSummary>, StoreError>> {
        Box::pin(self.call(|reply| Command::Runs(status, reply)))
    }

    fn compact(&self, before_ms: u64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.call(|reply| Command::Compact(before_ms, reply)))
    }

    fn effect<'a>(
        &'a self,
        key: &'a EffectKey,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        let answer = self.call(|reply| Command::Effect(key.clone(), reply));
        Box::pin(async move {
            match answer.await? {
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
        let text = result.to_string();
        let answer = self.call(|reply| Command::RecordEffect(key.clone(), text, reply));
        Box::pin(async move { parse_effect(key, &answer.await?) })
    }
}

fn parse_effect(key: &EffectKey, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        run_id: key.run_id,
        seq: key.step,
        detail: format!(
            "the recorded result of effect `{}` at step {}: {e}",
            key.name, key.step
        ),
    })
}

/// Maps a database error on `path` to a store error.
fn db_error(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::NotADatabase {
            path: path.display().to_string(),
            detail: e.to_string(),
        },
        _ => StoreError::Backend(format!("{}: {e}", path.display())),
    }
}

fn open_connection(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let err = |e| db_error(path, e);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(err)?;
    conn.busy_timeout(options.busy_timeout).map_err(err)?;
    // Reading the header first: a file that is not a database fails here,
    // before anything is written to it.
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(err)?;
    if app_id != APPLICATION_ID && (app_id != 0 || tables != 0) {
        return Err(StoreError::NotADatabase {
            path: path.display().to_string(),
            detail: "a SQLite database of another program (its application_id is not guiderail's)"
                .into(),
        });
    }
    // A damaged file can still have a readable first page: check the page
    // count the header claims against the file's length.
    check_length(&conn, path)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "{}: cannot switch to WAL mode (journal mode is {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", options.synchronous.pragma())
        .map_err(err)?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// Refuses a file shorter than the pages its header counts (a truncated
/// copy, say), which SQLite itself only notices when it reads a missing page.
fn check_length(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let err = |e| db_error(path, e);
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(err)?;
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(err)?;
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let wal = path.with_extension(match path.extension() {
        Some(ext) => format!("{}-wal", ext.to_string_lossy()),
        None => "-wal".into(),
    });
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let expected = u64::try_from(pages * page_size).unwrap_or(0);
    // With a WAL file, pages may legitimately live there rather than in
    // the main file; SQLite's own reads then decide.
    if wal_len == 0 && len < expected {
        return Err(StoreError::NotADatabase {
            path: path.display().to_string(),
            detail: format!(
                "the file is truncated: its header counts {pages} pages of {page_size} bytes ({expected} bytes), but it has {len}"
            ),
        });
    }
    Ok(())
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let err = |e| db_error(path, e);
    let known = MIGRATIONS.len() as u32;
    loop {
        // `BEGIN IMMEDIATE` takes the write lock first: two processes
        // opening a new file at once must not both apply a migration.
        let tx = Transaction::immediate(conn).map_err(err)?;
        conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(err)?;
        let version: u32 = conn
            .query_row(
                "SELECT coalesce(max(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        if version > known {
            return Err(StoreError::SchemaTooNew {
                path: path.display().to_string(),
                found: version,
                known,
            });
        }
        if version == known {
            tx.commit().map_err(err)?;
            return Ok(());
        }
        conn.execute_batch(MIGRATIONS[version as usize])
            .map_err(err)?;
        conn.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [version + 1],
        )
        .map_err(err)?;
        if version == 0 {
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(err)?;
        }
        tx.commit().map_err(err)?;
    }
}

/// `BEGIN IMMEDIATE` on a shared connection reference.
struct Transaction<'c> {
    conn: &'c Connection,
    done: bool,
}

impl<'c> Transaction<'c> {
    fn immediate(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(Transaction { conn, done: false })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        self.done = true;
        self.conn.execute_batch("COMMIT")
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// The thread that owns the connection.
struct Writer {
    conn: Connection,
    path: PathBuf,
    max_batch: usize,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        let mut next = None;
        loop {
            let Some(cmd) = next.take().or_else(|| rx.recv().ok()) else {
                return;
            };
            if !cmd.is_write() {
                self.read(cmd);
                continue;
            }
            let mut batch = vec![cmd];
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(c) if c.is_write() => batch.push(c),
                    Ok(c) => {
                        next = Some(c);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.write(batch);
        }
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        db_error(&self.path, e)
    }

    /// Writes a group of checkpoints in one transaction; each is checked
    /// on its own, and a refused one is left out.
    fn write(&mut self, batch: Vec<Command>) {
        // `Some(text)`: an effect's recorded result.
        let mut results: Vec<Result<Option<String>, StoreError>> = Vec::with_capacity(batch.len());
        let outcome = (|| -> rusqlite::Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            for cmd in &batch {
                results.push(match cmd {
                    Command::Create(row, _) => create(&tx, row)?.map(|()| None),
                    Command::Append(kind, row, _) => append(&tx, *kind, row)?.map(|()| None),
                    Command::RecordEffect(key, text, _) => Ok(Some(record_effect(&tx, key, text)?)),
                    _ => unreachable!("reads are not batched"),
                });
            }
            tx.commit()
        })();
        if let Err(e) = outcome {
            let e = self.err(e);
            results = vec![Err(e); batch.len()];
        }
        for (cmd, result) in batch.into_iter().zip(results) {
            match cmd {
                Command::Create(_, reply) | Command::Append(_, _, reply) => {
                    let _ = reply.send(result.map(|_| ()));
                }
                Command::RecordEffect(_, _, reply) => {
                    let _ = reply.send(result.map(Option::unwrap_or_default));
                }
                _ => {}
            }
        }
    }

    fn read(&mut self, cmd: Command) {
        match cmd {
            Command::Latest(run_id, reply) => {
                let r = self
                    .conn
                    .prepare_cached(
                        "SELECT seq, body FROM checkpoints WHERE run_id = ?1 ORDER BY seq DESC LIMIT 1",
                    )
                    .and_then(|mut s| {
                        s.query_row([run_id.to_string()], |r| {
                            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
                        })
                        .optional()
                    });
                let _ = reply.send(r.map_err(|e| self.err(e)));
            }
            Command::All(run_id, reply) => {
                let r = self
                    .conn
                    .prepare_cached(
                        "SELECT seq, body FROM checkpoints WHERE run_id = ?1 ORDER BY seq",
                    )
                    .and_then(|mut s| {
                        s.query_map([run_id.to_string()], |r| {
                            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
                        })?
                        .collect()
                    });
                let _ = reply.send(r.map_err(|e| self.err(e)));
            }
            Command::Runs(status, reply) => {
                let r = runs(&self.conn, status);
                let _ = reply.send(r.map_err(|e| self.err(e)).and_then(|r| r));
            }
            Command::Compact(before_ms, reply) => {
                let r = compact(&mut self.conn, before_ms);
                let _ = reply.send(r.map_err(|e| self.err(e)));
            }
            Command::Effect(key, reply) => {
                let r = self
                    .conn
                    .prepare_cached(
                        "SELECT result FROM effects WHERE run_id = ?1 AND step = ?2 AND name = ?3",
                    )
                    .and_then(|mut s| {
                        s.query_row(
                            params![key.run_id.to_string(), key.step as i64, key.name],
                            |r| r.get::<_, String>(0),
                        )
                        .optional()
                    });
                let _ = reply.send(r.map_err(|e| self.err(e)));
            }
            Command::Create(..) | Command::Append(..) | Command::RecordEffect(..) => {
                unreachable!("writes are batched")
            }
        }
    }
}

/// The checks and writes of one new run. `Ok(Err(_))`: refused, nothing
/// written; `Err(_)`: the database failed.
fn create(tx: &Connection, row: &Row) -> rusqlite::Result<Result<(), StoreError>> {
    if let Err(e) = check_first(row.run_id, row.seq, row.status) {
        return Ok(Err(e));
    }
    let inserted = tx
        .prepare_cached(
            "INSERT INTO runs (run_id, machine, status, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (run_id) DO NOTHING",
        )?
        .execute(params![
            row.id,
            row.machine,
            row.status.as_str(),
            row.at_ms as i64
        ])?;
    if inserted == 0 {
        return Ok(Err(StoreError::AlreadyExists { run_id: row.run_id }));
    }
    insert_checkpoint(tx, row)?;
    Ok(Ok(()))
}

fn append(
    tx: &Connection,
    kind: AppendKind,
    row: &Row,
) -> rusqlite::Result<Result<(), StoreError>> {
    let latest = tx
        .prepare_cached(
            "SELECT seq, status, state FROM checkpoints WHERE run_id = ?1 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([&row.id], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .optional()?;
    let Some((seq, status, state)) = latest else {
        return Ok(Err(StoreError::NotFound { run_id: row.run_id }));
    };
    let Some(status) = RunStatus::parse(&status) else {
        return Ok(Err(StoreError::Corrupt {
            run_id: row.run_id,
            seq,
            detail: format!("unknown run status `{status}`"),
        }));
    };
    if let Err(e) = check_append(kind, row.run_id, row.seq, (seq, status, &state)) {
        return Ok(Err(e));
    }
    // `runs` only changes with the status, which most transitions keep.
    if status != row.status {
        tx.prepare_cached("UPDATE runs SET status = ?2, updated_ms = ?3 WHERE run_id = ?1")?
            .execute(params![row.id, row.status.as_str(), row.at_ms as i64])?;
    }
    insert_checkpoint(tx, row)?;
    Ok(Ok(()))
}

/// Records an effect's result unless one is recorded; returns the
/// recorded one.
fn record_effect(tx: &Connection, key: &EffectKey, text: &str) -> rusqlite::Result<String> {
    let id = key.run_id.to_string();
    tx.prepare_cached(
        "INSERT INTO effects (run_id, step, name, at_ms, result) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (run_id, step, name) DO NOTHING",
    )?
    .execute(params![
        id,
        key.step as i64,
        key.name,
        super::now_ms() as i64,
        text
    ])?;
    tx.prepare_cached("SELECT result FROM effects WHERE run_id = ?1 AND step = ?2 AND name = ?3")?
        .query_row(params![id, key.step as i64, key.name], |r| r.get(0))
}

fn insert_checkpoint(tx: &Connection, row: &Row) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO checkpoints (run_id, seq, status, state, fingerprint, at_ms, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        row.id,
        row.seq as i64,
        row.status.as_str(),
        row.state,
        row.fingerprint,
        row.at_ms as i64,
        row.body
    ])?;
    Ok(())
}

fn runs(
    conn: &Connection,
    status: Option<RunStatus>,
) -> rusqlite::Result<Result<Vec<RunSummary>, StoreError>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.run_id, r.machine, c.fingerprint, r.status, c.seq, c.state, c.at_ms
         FROM runs r JOIN checkpoints c ON c.run_id = r.run_id
          AND c.seq = (SELECT max(seq) FROM checkpoints WHERE run_id = r.run_id)
         WHERE ?1 IS NULL OR r.status = ?1 ORDER BY r.run_id",
    )?;
    let rows = stmt
        .query_map([status.map(RunStatus::as_str)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)? as u64,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)? as u64,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, machine, fingerprint, st, seq, state, updated) in rows {
        let corrupt = |run_id, detail: String| StoreError::Corrupt {
            run_id,
            seq,
            detail,
        };
        let Ok(run_id) = id.parse::<RunId>() else {
            return Ok(Err(corrupt(
                RunId::from_u128(0),
                format!("bad run id `{id}`"),
            )));
        };
        let Some(status) = RunStatus::parse(&st) else {
            return Ok(Err(corrupt(run_id, format!("unknown run status `{st}`"))));
        };
        let Ok(fingerprint) = u64::from_str_radix(&fingerprint, 16) else {
            return Ok(Err(corrupt(
                run_id,
                format!("bad fingerprint `{fingerprint}`"),
            )));
        };
        out.push(RunSummary {
            run_id,
            machine,
            fingerprint,
            status,
            seq,
            state,
            updated_at_ms: updated,
        });
    }
    Ok(Ok(out))
}

fn compact(conn: &mut Connection, before_ms: u64) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let before = i64::try_from(before_ms).unwrap_or(i64::MAX);
    let removed = tx.execute(
        "DELETE FROM checkpoints WHERE run_id IN
           (SELECT run_id FROM runs WHERE status IN ('finished', 'failed') AND updated_ms < ?1)
         AND seq < (SELECT max(seq) FROM checkpoints AS c WHERE c.run_id = checkpoints.run_id)",
        [before],
    )?;
    tx.execute(
        "DELETE FROM effects WHERE run_id IN
           (SELECT run_id FROM runs WHERE status IN ('finished', 'failed') AND updated_ms < ?1)",
        [before],
    )?;
    tx.commit()?;
    Ok(removed as u64)
}
