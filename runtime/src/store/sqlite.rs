//! [`SqliteStore`]: checkpoints in one SQLite file.
//!
//! One dedicated thread owns the file's connection and does the reads and
//! the writes of concurrent runs: callers send it commands over a channel
//! and await the answer. Checkpoints that arrive while a transaction is
//! being written are committed together in the next one (group commit), so
//! many concurrent runs share transactions. Each checkpoint in a group is
//! checked on its own, and a refused one is left out without touching the
//! others.
//!
//! With `synchronous=NORMAL` (the default), a write that finds the thread
//! idle, nothing queued and the thread's last group a single write (one run
//! writing, not many) is written on the caller's own thread instead: one
//! transaction that appends to the WAL in the page cache and does not wait
//! for the disk, without the two thread hand-offs (tens of microseconds
//! each, more than the transaction) that the thread would cost. It never
//! waits for a lock there: if another process is writing to the file, the
//! write goes to the thread, which waits. SQLite's automatic WAL checkpoint
//! (copying the log into the database file and syncing both, every 1,000
//! pages) would run in whichever commit crossed the threshold, on a
//! caller's thread; it is turned off, and a second thread with a connection
//! of its own runs it, mostly alongside the writes. With
//! `synchronous=FULL` every commit waits for the disk, so every write goes
//! through the thread.
//!
//! Checkpoints are serialised to JSON by the caller (on its task) and
//! parsed back by the caller, so the writer thread only runs SQL.
//!
//! The schema is versioned in code ([`MIGRATIONS`]): a new file gets every
//! migration, an older one the missing ones, each in its own transaction
//! with its number recorded in `schema_version`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, mpsc};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::{
    AppendKind, Checkpoint, EffectKey, RunStatus, RunSummary, Store, StoreError, check_append,
    check_first, parse, parse_effect,
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
    shared: Arc<Shared>,
}

/// What the writer thread and the callers that write inline share.
#[derive(Debug)]
struct Shared {
    /// The connection. The writer thread holds it while it works; a caller
    /// that finds it free and nothing queued writes on its own thread.
    db: Arc<Mutex<Db>>,
    /// Commands sent to the writer thread and not yet done.
    queued: AtomicUsize,
    /// Whether writes may run on the caller's thread (`synchronous=NORMAL`,
    /// where a commit does not wait for the disk).
    inline: bool,
    /// In inline mode, SQLite's automatic WAL checkpoints are off (they
    /// would run in whichever commit crosses the threshold, on a caller's
    /// thread, with two `fsync`s); a thread of their own runs them on a
    /// connection of its own, alongside the writes.
    wal: Arc<WalCount>,
    wal_checkpoints: Option<mpsc::Sender<()>>,
    /// How many writes the writer thread's last transaction held: more
    /// than one means runs are writing concurrently, and they commit more
    /// per transaction through the thread than one by one inline.
    last_batch: AtomicUsize,
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

/// A write: each is checked on its own inside a group's transaction.
enum WriteOp {
    Create(Row),
    Append(AppendKind, Row),
    RecordEffect(EffectKey, String),
}

/// What a write answers: an effect's recorded result, nothing for the rest.
type WriteResult = Result<Option<String>, StoreError>;

enum Command {
    Write(WriteOp, Reply<Option<String>>),
    Latest(RunId, Reply<Option<(u64, String)>>),
    All(RunId, Reply<Vec<(u64, String)>>),
    /// The states of checkpoint 0 and of the transitions, in order.
    Path(RunId, Reply<Vec<(u64, String)>>),
    Runs(Option<RunStatus>, Reply<Vec<RunSummary>>),
    Compact(u64, Reply<u64>),
    Effect(EffectKey, Reply<Option<String>>),
}

/// WAL pages written between two WAL checkpoints in inline mode, as
/// SQLite's automatic checkpoint does by default.
const PAGES_PER_WAL_CHECKPOINT: usize = 1000;

/// About how many WAL pages a transaction of `ops` writes, rounded up:
/// the rows' bytes in 4 KiB pages, a page of B-tree per row and two per
/// commit. (Measured: a commit of one 2.4 KB checkpoint writes 4 pages, one
/// of 200 checkpoints of different runs about 210, which this counts as
/// 322, so WAL checkpoints come no later than SQLite's own would. Counting
/// exactly needs SQLite's WAL hook, a rusqlite feature this crate does not
/// enable.)
fn pages(ops: &[WriteOp]) -> usize {
    let bytes: usize = ops.iter().map(WriteOp::len).sum();
    2 + ops.len() + bytes.div_ceil(4096)
}

impl WriteOp {
    /// The bytes it stores.
    fn len(&self) -> usize {
        match self {
            WriteOp::Create(row) | WriteOp::Append(_, row) => row.body.len() + 64,
            WriteOp::RecordEffect(key, text) => key.name.len() + text.len() + 64,
        }
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
        let inline = options.synchronous == Synchronous::Normal;
        if inline {
            // The checkpoint thread runs them instead (see `Shared`).
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(|e| db_error(&path, e))?;
        }
        let db = Arc::new(Mutex::new(Db {
            conn,
            path: path.clone(),
            busy_timeout: options.busy_timeout,
        }));
        let wal = Arc::new(WalCount::default());
        let wal_checkpoints = if inline {
            let checkpointer = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| db_error(&path, e))?;
            checkpointer
                .busy_timeout(options.busy_timeout)
                .map_err(|e| db_error(&path, e))?;
            let (tx, rx) = mpsc::channel();
            let (count, writer) = (wal.clone(), db.clone());
            std::thread::Builder::new()
                .name("guiderail-sqlite-wal".into())
                .spawn(move || checkpoint_thread(&checkpointer, &writer, &count, &rx))
                .map_err(|e| {
                    StoreError::Backend(format!("cannot start the store's thread: {e}"))
                })?;
            Some(tx)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            db,
            queued: AtomicUsize::new(0),
            inline,
            wal,
            wal_checkpoints,
            last_batch: AtomicUsize::new(0),
        });
        let (commands, rx) = mpsc::channel();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("guiderail-sqlite".into())
            .spawn(move || writer_thread(&thread_shared, &rx, options.max_batch))
            .map_err(|e| StoreError::Backend(format!("cannot start the store's thread: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                commands,
                shared,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn send(&self, command: Command) -> Result<(), StoreError> {
        self.inner.shared.queued.fetch_add(1, Ordering::SeqCst);
        self.inner.commands.send(command).map_err(|_| {
            self.inner.shared.queued.fetch_sub(1, Ordering::SeqCst);
            stopped()
        })
    }

    fn call<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.send(make(tx));
        async move {
            sent?;
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

    /// Writes `op`: on this thread when the writer thread is idle, nothing
    /// is queued and the thread's last group was a single write (inline
    /// mode), so that a lone run pays no thread hand-off; otherwise through
    /// the writer thread, which commits what has queued up together.
    fn write(
        &self,
        op: WriteOp,
    ) -> impl std::future::Future<Output = WriteResult> + Send + 'static {
        let shared = &self.inner.shared;
        let mut done = None;
        if shared.inline
            && shared.queued.load(Ordering::SeqCst) == 0
            && shared.last_batch.load(Ordering::Relaxed) <= 1
        {
            let db = match shared.db.try_lock() {
                Ok(db) => Some(db),
                Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            if let Some(mut db) = db {
                let written = pages(std::slice::from_ref(&op));
                // `None`: another process holds the write lock; wait for it
                // on the writer thread, not here.
                done = db.write_inline(&op);
                drop(db);
                if done.is_some() {
                    shared.wrote(written);
                }
            }
        }
        let queued = match done {
            Some(_) => None,
            None => Some(self.call(|reply| Command::Write(op, reply))),
        };
        async move {
            match (done, queued) {
                (Some(result), _) => result,
                (None, Some(queued)) => queued.await,
                (None, None) => unreachable!("written inline or queued"),
            }
        }
    }

    fn write_checkpoint(
        &self,
        make: impl FnOnce(Row) -> WriteOp,
        c: &Checkpoint,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        match self.row(c) {
            Ok(row) => {
                let written = self.write(make(row));
                Box::pin(async move { written.await.map(|_| ()) })
            }
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}

impl Shared {
    /// Counts the WAL pages of a commit, and asks for a WAL checkpoint
    /// when one is due.
    fn wrote(&self, pages: usize) {
        let Some(checkpoints) = &self.wal_checkpoints else {
            return;
        };
        let total = self.wal.pages.fetch_add(pages, Ordering::SeqCst) + pages;
        if total >= PAGES_PER_WAL_CHECKPOINT
            && !self.wal.due.swap(true, Ordering::SeqCst)
            && checkpoints.send(()).is_err()
        {
            // The next commit asks again.
            self.wal.due.store(false, Ordering::SeqCst);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the store's writer thread stopped".into())
}

impl Store for SqliteStore {
    fn create<'a>(&'a self, first: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write_checkpoint(WriteOp::Create, first)
    }

    fn append<'a>(&'a self, next: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write_checkpoint(|row| WriteOp::Append(AppendKind::Plain, row), next)
    }

    fn deliver_signal<'a>(&'a self, next: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write_checkpoint(|row| WriteOp::Append(AppendKind::Signal, row), next)
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

    fn run_path(&self, run_id: RunId) -> BoxFuture<'_, Result<Vec<Cow<'static, str>>, StoreError>> {
        let answer = self.call(|reply| Command::Path(run_id, reply));
        Box::pin(async move {
            let rows = answer.await?;
            match rows.first() {
                Some((0, _)) => Ok(rows.into_iter().map(|(_, s)| Cow::Owned(s)).collect()),
                // Compacted (checkpoint 0 is gone): the last one keeps the
                // path. Not stored: `latest` says so.
                _ => Ok(self.latest(run_id).await?.path),
            }
        })
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
        let answer = self.write(WriteOp::RecordEffect(key.clone(), text));
        Box::pin(async move { parse_effect(key, &answer.await?.unwrap_or_default()) })
    }
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

/// The connection, with what its writes need.
#[derive(Debug)]
struct Db {
    conn: Connection,
    path: PathBuf,
    busy_timeout: Duration,
}

/// The writer thread: takes commands in order; writes that have queued up
/// are committed in one transaction (group commit), up to `max_batch`.
fn writer_thread(shared: &Shared, rx: &mpsc::Receiver<Command>, max_batch: usize) {
    let mut next = None;
    loop {
        let Some(cmd) = next.take().or_else(|| rx.recv().ok()) else {
            return;
        };
        let (op, reply) = match cmd {
            Command::Write(op, reply) => (op, reply),
            read => {
                shared.lock().read(read);
                shared.queued.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
        };
        let mut ops = vec![op];
        let mut replies = vec![reply];
        while ops.len() < max_batch {
            match rx.try_recv() {
                Ok(Command::Write(op, reply)) => {
                    ops.push(op);
                    replies.push(reply);
                }
                Ok(other) => {
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let n = ops.len();
        shared.last_batch.store(n, Ordering::Relaxed);
        let mut db = shared.lock();
        let results = db.write(&ops);
        shared.wrote(pages(&ops));
        drop(db);
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
        shared.queued.fetch_sub(n, Ordering::SeqCst);
    }
}

/// WAL pages written since the last WAL checkpoint (about), and whether
/// one is asked for.
#[derive(Debug, Default)]
struct WalCount {
    pages: AtomicUsize,
    due: AtomicBool,
}

/// Copies the WAL into the database file whenever asked (SQLite's
/// automatic checkpoint, moved off the writers' path), in two passes: the
/// first runs alongside writes (a PASSIVE checkpoint never waits for
/// them) and copies nearly everything; the second, with this store's
/// writes held back, copies what was written meanwhile. Only a log copied
/// completely with no write in between starts over from its beginning, so
/// without the second pass the WAL file would grow for as long as runs
/// keep writing.
fn checkpoint_thread(
    conn: &Connection,
    writer: &Mutex<Db>,
    count: &WalCount,
    rx: &mpsc::Receiver<()>,
) {
    let checkpoint = || conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    while rx.recv().is_ok() {
        count.pages.store(0, Ordering::SeqCst);
        count.due.store(false, Ordering::SeqCst);
        let done = checkpoint().and_then(|()| {
            let _writes_held = writer.lock().unwrap_or_else(|e| e.into_inner());
            checkpoint()
        });
        if let Err(e) = done {
            let db = writer.lock().unwrap_or_else(|e| e.into_inner());
            tracing::warn!(path = %db.path.display(), "WAL checkpoint failed: {e}");
        }
    }
}

impl Db {
    fn err(&self, e: rusqlite::Error) -> StoreError {
        db_error(&self.path, e)
    }

    /// Writes a group in one transaction; each write is checked on its
    /// own, and a refused one is left out.
    fn write(&mut self, ops: &[WriteOp]) -> Vec<WriteResult> {
        let mut results = Vec::with_capacity(ops.len());
        let outcome = (|| -> rusqlite::Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            for op in ops {
                results.push(apply(&tx, op)?);
            }
            tx.commit()
        })();
        if let Err(e) = outcome {
            let e = self.err(e);
            results = vec![Err(e); ops.len()];
        }
        results
    }

    /// Writes `op` alone, on the caller's thread, without waiting for
    /// another process's write lock: `None` when that lock is taken.
    fn write_inline(&mut self, op: &WriteOp) -> Option<WriteResult> {
        let _ = self.conn.busy_timeout(Duration::ZERO);
        let began = self
            .conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]));
        let result = match began {
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {
                let _ = self.conn.busy_timeout(self.busy_timeout);
                return None;
            }
            Err(e) => Err(self.err(e)),
            Ok(_) => {
                let applied = apply(&self.conn, op).and_then(|result| {
                    self.conn
                        .prepare_cached("COMMIT")
                        .and_then(|mut s| s.execute([]))
                        .map(|_| result)
                });
                match applied {
                    Ok(result) => result,
                    Err(e) => {
                        let _ = self.conn.execute_batch("ROLLBACK");
                        Err(self.err(e))
                    }
                }
            }
        };
        let _ = self.conn.busy_timeout(self.busy_timeout);
        Some(result)
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
            Command::Path(run_id, reply) => {
                // The state column, not the bodies: a transition's body has
                // a `via`, checkpoint 0 is the start.
                let r = self
                    .conn
                    .prepare_cached(
                        "SELECT seq, state FROM checkpoints WHERE run_id = ?1
                           AND (seq = 0 OR json_extract(body, '$.via') IS NOT NULL) ORDER BY seq",
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
            Command::Write(..) => {
                unreachable!("handled by the writer thread")
            }
        }
    }
}

/// One write inside a transaction. `Ok(Err(_))`: refused, nothing written;
/// `Err(_)`: the database failed (the transaction is rolled back).
fn apply(tx: &Connection, op: &WriteOp) -> rusqlite::Result<WriteResult> {
    Ok(match op {
        WriteOp::Create(row) => create(tx, row)?.map(|()| None),
        WriteOp::Append(kind, row) => append(tx, *kind, row)?.map(|()| None),
        WriteOp::RecordEffect(key, text) => Ok(Some(record_effect(tx, key, text)?)),
    })
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
    // Checkpoints are numbered without gaps, so `seq - 1` is the latest
    // exactly when it exists and `seq` does not: two lookups by key. (A
    // query for the latest, `ORDER BY seq DESC LIMIT 1` or `max(seq)`, is
    // planned again by SQLite every time it is bound to another run id,
    // since the bundled SQLite has STAT4; that cost more than the rest of
    // the transaction's statements together.) Anything else takes the slow
    // path, which finds the latest and says why the append is refused.
    let previous = match row.seq.checked_sub(1) {
        Some(previous) => checkpoint_header(tx, &row.id, previous)?,
        None => None,
    };
    let Some((status, state)) = previous else {
        return refused(tx, kind, row);
    };
    if checkpoint_header(tx, &row.id, row.seq)?.is_some() {
        return refused(tx, kind, row);
    }
    let Some(status) = RunStatus::parse(&status) else {
        return Ok(Err(StoreError::Corrupt {
            run_id: row.run_id,
            seq: row.seq - 1,
            detail: format!("unknown run status `{status}`"),
        }));
    };
    if let Err(e) = check_append(kind, row.run_id, row.seq, (row.seq - 1, status, &state)) {
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

/// The status and state of checkpoint `seq` of a run, if it is stored.
fn checkpoint_header(
    tx: &Connection,
    id: &str,
    seq: u64,
) -> rusqlite::Result<Option<(String, String)>> {
    tx.prepare_cached("SELECT status, state FROM checkpoints WHERE run_id = ?1 AND seq = ?2")?
        .query_row(params![id, seq as i64], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// Why an append that does not follow the latest checkpoint is refused.
fn refused(
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
    Ok(
        match check_append(kind, row.run_id, row.seq, (seq, status, &state)) {
            Err(e) => Err(e),
            // Only a gap in the stored numbers gets here.
            Ok(()) => Err(StoreError::Corrupt {
                run_id: row.run_id,
                seq,
                detail: format!(
                    "checkpoint {} is missing although {seq} is stored",
                    row.seq - 1
                ),
            }),
        },
    )
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

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::time::Instant;

    use serde_json::json;

    use super::*;

    fn cp(run: u128, seq: u64, context: &str) -> Checkpoint {
        serde_json::from_value(json!({
            "run_id": RunId::from_u128(run).to_string(),
            "seq": seq,
            "machine": "Test",
            "fingerprint": 1,
            "state_name": "Work",
            "state": "Work",
            "context": context,
            "spent": crate::store::Spent::default(),
            "path": ["Work"],
            "status": "running",
            "started_at_ms": 1,
            "at_ms": 2,
        }))
        .expect("a checkpoint")
    }

    /// While another process holds the file's write lock, a write does not
    /// wait on the caller's thread (which may be a tokio worker): it is
    /// handed to the writer thread, which waits for the lock.
    #[tokio::test(flavor = "current_thread")]
    async fn a_locked_file_is_waited_for_on_the_writer_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked.db");
        let store = SqliteStore::open(&path).unwrap();
        store.create(&cp(1, 0, "a")).await.unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let called = Instant::now();
        let next = cp(1, 1, "b");
        let mut pending = pin!(store.append(&next));
        assert!(
            called.elapsed() < Duration::from_secs(1),
            "the caller waited for the lock: {:?}",
            called.elapsed()
        );
        let early = tokio::time::timeout(Duration::from_millis(200), &mut pending).await;
        assert!(early.is_err(), "written while another writer held the lock");
        other.execute_batch("COMMIT").unwrap();
        pending.await.unwrap();
        assert_eq!(store.latest(RunId::from_u128(1)).await.unwrap().seq, 1);
    }

    /// Writes on the caller's thread leave WAL checkpoints to the store's
    /// checkpoint thread: the WAL stays small, and everything is stored.
    #[tokio::test(flavor = "current_thread")]
    async fn inline_writes_keep_the_wal_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let store = SqliteStore::open(&path).unwrap();
        let context = "x".repeat(3000);
        let n = 3000;
        store.create(&cp(7, 0, &context)).await.unwrap();
        for seq in 1..n {
            store.append(&cp(7, seq, &context)).await.unwrap();
        }
        // About 4 pages a commit: 12,000 pages (47 MB) went through the WAL.
        let wal = std::fs::metadata(path.with_extension("db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(
            wal < 16 << 20,
            "the WAL grew to {wal} bytes: it is not being checkpointed"
        );
        let stored = store.checkpoints(RunId::from_u128(7)).await.unwrap();
        assert_eq!(stored.len() as u64, n);
        assert!(stored.iter().enumerate().all(|(i, c)| c.seq == i as u64));
    }

    /// Many runs writing at once through one store: every checkpoint is
    /// stored once, in order, whether it was written inline or grouped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_runs_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("many.db")).unwrap();
        let tasks: Vec<_> = (0..200u128)
            .map(|run| {
                let store = store.clone();
                tokio::spawn(async move {
                    store.create(&cp(run, 0, "c")).await.unwrap();
                    for seq in 1..10 {
                        store.append(&cp(run, seq, "c")).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let runs = store.runs(None).await.unwrap();
        assert_eq!(runs.len(), 200);
        assert!(runs.iter().all(|r| r.seq == 9));
    }
}
