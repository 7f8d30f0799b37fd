#![forbid(unsafe_code)]
//! The `guiderail` command, as a library.
//!
//! The stock binary (`cargo install --path cli`) shows the durable runs of
//! any machine from its store alone: every run keeps the graph it ran on,
//! so `runs`, `show`, `graph`, `export`, `import` and `report` need no
//! machine code. Replaying a run needs the machine and its handlers, so
//! `replay` (and `graph --machine NAME`) work in a binary of your own that
//! registers them:
//!
//! ```no_run
//! # use guiderail_runtime as guiderail;
//! # fn demo<M, H>(handlers: H) -> std::process::ExitCode
//! # where
//! #     M: guiderail::Dispatch<H> + guiderail::DurableMachine,
//! #     M::Context: guiderail::DurableContext,
//! #     H: Send + Sync + 'static,
//! # {
//! // src/bin/guiderail.rs of your crate, with `M` your machine and
//! // `handlers` its handlers:
//! guiderail_cli::Cli::new()
//!     .machine::<M, H>(handlers)
//!     .run_from_env()
//! # }
//! ```
//!
//! Exit codes: 0 on success, 1 when a replay diverges from the record, 2 on
//! an error (printed as one line on stderr; nothing is written).

mod args;
mod graph;
mod report;
mod store;
mod text;

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use guiderail_runtime::store::{Checkpoint, RunStatus};
use guiderail_runtime::{
    Dispatch, DurableContext, DurableError, DurableMachine, Graph, GraphRecord, ReplayReport,
    RunId, Runner,
};

use args::{Action, Command, GraphFormat, StatusArg};

/// Exit code: the command did what was asked.
pub const EXIT_OK: u8 = 0;
/// Exit code: a replay left the recorded path.
pub const EXIT_DIVERGED: u8 = 1;
/// Exit code: the command failed (a missing database, an unknown run, a
/// corrupt record, bad arguments, …).
pub const EXIT_ERROR: u8 = 2;

/// The `guiderail` command, with the machines compiled into this binary.
///
/// [`Cli::new`] has none: that is the stock binary. Register yours with
/// [`Cli::machine`] to get `replay` and `graph --machine` for them.
#[derive(Default)]
pub struct Cli {
    machines: Vec<Box<dyn Registered>>,
    runner: Option<Runner>,
}

impl fmt::Debug for Cli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cli")
            .field(
                "machines",
                &self.machines.iter().map(|m| m.name()).collect::<Vec<_>>(),
            )
            .field("runner", &self.runner)
            .finish()
    }
}

impl Cli {
    /// The command with no machines registered.
    pub fn new() -> Self {
        Cli::default()
    }

    /// Registers machine `M` with its `handlers`: `replay` replays runs of
    /// `M` (runs whose machine name is `M::NAME`) with them, and
    /// `graph --machine NAME` prints `M`'s graph.
    pub fn machine<M, H>(mut self, handlers: H) -> Self
    where
        M: Dispatch<H> + DurableMachine,
        M::Context: DurableContext,
        H: Send + Sync + 'static,
    {
        self.machines.push(Box::new(Machine::<M, H> {
            handlers,
            _machine: std::marker::PhantomData,
        }));
        self
    }

    /// The runner replays run with (its bounds, repair limit and call
    /// options; its model, store and subscribers are not used: a replay
    /// answers from the record, in memory). Default: [`Runner::new`].
    pub fn runner(mut self, runner: Runner) -> Self {
        self.runner = Some(runner);
        self
    }

    /// Runs the command with the process's arguments, printing to stdout
    /// and stderr; returns the exit code for `main` to return.
    pub fn run_from_env(self) -> ExitCode {
        let stdout = io::stdout();
        let stderr = io::stderr();
        let code = self.run(std::env::args_os(), &mut stdout.lock(), &mut stderr.lock());
        ExitCode::from(code)
    }

    /// Runs the command with `args` (the first is the program name),
    /// writing its output to `out` and errors to `err`; returns the exit
    /// code ([`EXIT_OK`], [`EXIT_DIVERGED`] or [`EXIT_ERROR`]).
    pub fn run<I, T>(&self, args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let command = match Command::try_parse_from(args) {
            Ok(c) => c,
            Err(e) => {
                let code = e.exit_code();
                let shown = e.render().to_string();
                if e.use_stderr() {
                    let _ = write!(err, "{shown}");
                } else {
                    let _ = write!(out, "{shown}");
                }
                return if code == 0 { EXIT_OK } else { EXIT_ERROR };
            }
        };
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                let _ = writeln!(err, "error: cannot start the async runtime: {e}");
                return EXIT_ERROR;
            }
        };
        let result = runtime.block_on(self.execute(command.action, out));
        match result {
            Ok(code) => {
                let _ = out.flush();
                code
            }
            Err(e) if e.0.is_empty() => EXIT_OK,
            Err(e) => {
                let _ = out.flush();
                let _ = writeln!(err, "error: {}", one_line(&e.0));
                EXIT_ERROR
            }
        }
    }

    async fn execute(&self, action: Action, out: &mut dyn Write) -> Result<u8, Error> {
        match action {
            Action::Runs { db, status } => {
                let store = store::open(&db, false, false).await?;
                let status = status.map(|s| match s {
                    StatusArg::Running => RunStatus::Running,
                    StatusArg::Waiting => RunStatus::Waiting,
                    StatusArg::Finished => RunStatus::Finished,
                    StatusArg::Failed => RunStatus::Failed,
                });
                let runs = store.runs(status).await?;
                let mut rows = Vec::with_capacity(runs.len());
                for r in runs {
                    let latest = store.latest(r.run_id).await?;
                    rows.push(latest);
                }
                let mut buf = io::BufWriter::new(out);
                text::runs_table(&rows, &mut buf)?;
                buf.flush()?;
            }
            Action::Show { run, db } => {
                let cps = load(&db, &run).await?;
                let children = children_of(&db, cps[0].run_id).await?;
                let mut buf = io::BufWriter::with_capacity(1 << 16, out);
                text::timeline(&cps, &mut buf)?;
                text::children(&children, &mut buf)?;
                buf.flush()?;
            }
            Action::Graph {
                run,
                db,
                schema,
                machine,
                format,
            } => {
                let (record, path) = match (machine, run) {
                    (Some(name), _) => {
                        let m = self.find(&name)?;
                        (GraphRecord::from(m.graph()), Vec::new())
                    }
                    (None, Some(run)) => {
                        let db = args::Db {
                            db: db.ok_or_else(|| {
                                Error::from("`graph RUN` needs the store: pass `--db FILE|URL`")
                            })?,
                            schema,
                        };
                        let cps = load(&db, &run).await?;
                        (graph_of(&cps)?, path_of(&cps))
                    }
                    (None, None) => return Err("give a run id or `--machine NAME`".into()),
                };
                let text = match format {
                    GraphFormat::Mermaid => record.mermaid.clone(),
                    GraphFormat::Dot => record.dot.clone(),
                    GraphFormat::Json => serde_json::to_string_pretty(&record)
                        .map_err(|e| Error(format!("cannot write the graph as JSON: {e}")))?,
                    GraphFormat::Svg => graph::svg(&record, &path),
                };
                out.write_all(text.as_bytes())?;
                if !text.ends_with('\n') {
                    out.write_all(b"\n")?;
                }
            }
            Action::Export { run, db } => {
                let cps = load(&db, &run).await?;
                let bar = progress(None, "writing events");
                let mut buf = io::BufWriter::with_capacity(1 << 16, out);
                let mut counting = CountLines {
                    inner: &mut buf,
                    bar: &bar,
                };
                guiderail_runtime::history::export_jsonl(&cps, &mut counting)
                    .map_err(|e| Error(e.to_string()))?;
                buf.flush()?;
                bar.finish_and_clear();
            }
            Action::Import { file, db, create } => {
                let cps = read_history(&file)?;
                check_importable(&cps)?;
                let store = store::open(&db, create, true).await?;
                let run_id = cps[0].run_id;
                match store.latest(run_id).await {
                    Ok(_) => {
                        return Err(Error(format!(
                            "run {run_id} is already in `{}`; nothing was imported",
                            store::shown(&db.db)
                        )));
                    }
                    Err(guiderail_runtime::store::StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                let bar = progress(Some(cps.len() as u64), "importing checkpoints");
                store.create(&cps[0]).await?;
                bar.inc(1);
                for cp in &cps[1..] {
                    let written = if cp.via == Some(guiderail_runtime::DecidedVia::Signal) {
                        store.deliver_signal(cp).await
                    } else {
                        store.append(cp).await
                    };
                    if let Err(e) = written {
                        return Err(Error(format!(
                            "importing run {run_id} stopped at checkpoint {}: {e}; the store holds its checkpoints 0 to {}",
                            cp.seq,
                            cp.seq - 1
                        )));
                    }
                    bar.inc(1);
                }
                bar.finish_and_clear();
                writeln!(
                    out,
                    "imported run {run_id} ({} checkpoints, {})",
                    cps.len(),
                    cps[cps.len() - 1].status
                )?;
            }
            Action::Report { run, db, output } => {
                let cps = load(&db, &run).await?;
                let graph = graph_of(&cps)?;
                let bar = progress(Some(cps.len() as u64), "rendering the report");
                let html = report::html(&cps, &graph, &path_of(&cps), &|n| bar.inc(n));
                bar.finish_and_clear();
                match output {
                    Some(path) => write_file(&path, html.as_bytes())?,
                    None => out.write_all(html.as_bytes())?,
                }
            }
            Action::Migrate { db } => {
                writeln!(out, "{}", store::migrate(&db).await?)?;
            }
            Action::Replay { run, db } => {
                if self.machines.is_empty() {
                    return Err(Error::from(
                        "no machines are compiled into this `guiderail`, so it cannot replay runs; \
                         build your own binary with `guiderail_cli::Cli::new().machine::<M, H>(handlers).run_from_env()`",
                    ));
                }
                let cps = load(&db, &run).await?;
                let name = cps[0].machine.to_string();
                let m = self.find(&name)?;
                let runner = self.runner.clone().unwrap_or_default();
                let report = m
                    .replay(&runner, &cps)
                    .await
                    .map_err(|e| Error(e.to_string()))?;
                writeln!(out, "{}", report.to_string().trim_end())?;
                if !report.is_identical() {
                    return Ok(EXIT_DIVERGED);
                }
            }
        }
        Ok(EXIT_OK)
    }

    fn find(&self, name: &str) -> Result<&dyn Registered, Error> {
        self.machines
            .iter()
            .find(|m| m.name() == name)
            .map(|m| &**m)
            .ok_or_else(|| {
                if self.machines.is_empty() {
                    Error(format!(
                        "machine `{name}` is not compiled into this `guiderail` (it has no machines); \
                         build your own binary with `guiderail_cli::Cli::new().machine::<M, H>(handlers)`"
                    ))
                } else {
                    let known: Vec<&str> = self.machines.iter().map(|m| m.name()).collect();
                    Error(format!(
                        "machine `{name}` is not compiled into this `guiderail`; it has {}",
                        known.join(", ")
                    ))
                }
            })
    }
}

/// A machine registered with [`Cli::machine`], behind an object-safe face.
trait Registered: Send + Sync {
    fn name(&self) -> &'static str;
    fn graph(&self) -> &'static Graph;
    fn replay<'a>(
        &'a self,
        runner: &'a Runner,
        recorded: &'a [Checkpoint],
    ) -> guiderail_runtime::llm::BoxFuture<'a, Result<ReplayReport, DurableError>>;
}

struct Machine<M, H> {
    handlers: H,
    _machine: std::marker::PhantomData<fn() -> M>,
}

impl<M, H> Registered for Machine<M, H>
where
    M: Dispatch<H> + DurableMachine,
    M::Context: DurableContext,
    H: Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        M::NAME
    }

    fn graph(&self) -> &'static Graph {
        M::graph()
    }

    fn replay<'a>(
        &'a self,
        runner: &'a Runner,
        recorded: &'a [Checkpoint],
    ) -> guiderail_runtime::llm::BoxFuture<'a, Result<ReplayReport, DurableError>> {
        Box::pin(async move { runner.replay::<M, H>(&self.handlers, recorded).await })
    }
}

/// A failure, shown as one line.
#[derive(Debug)]
struct Error(String);

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error(s.to_owned())
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            // `guiderail show RUN | head`: the reader has what it wanted.
            return Error(String::new());
        }
        Error(format!("cannot write the output: {e}"))
    }
}

impl From<guiderail_runtime::store::StoreError> for Error {
    fn from(e: guiderail_runtime::store::StoreError) -> Self {
        Error(e.to_string())
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn parse_run(run: &str) -> Result<RunId, Error> {
    run.trim()
        .parse()
        .map_err(|e: guiderail_runtime::ParseRunIdError| Error(e.to_string()))
}

/// Opens the store and reads the run's checkpoints.
async fn load(db: &args::Db, run: &str) -> Result<Vec<Checkpoint>, Error> {
    let run_id = parse_run(run)?;
    let store = store::open(db, false, false).await?;
    let cps = store.checkpoints(run_id).await?;
    if cps.is_empty() {
        return Err(Error(format!(
            "run {run_id} is not in `{}`",
            store::shown(&db.db)
        )));
    }
    Ok(cps)
}

/// The child runs of `parent` (started by its fan-outs), oldest first, with
/// the parent's step that started each.
async fn children_of(db: &args::Db, parent: RunId) -> Result<Vec<(Checkpoint, u64)>, Error> {
    let store = store::open(db, false, false).await?;
    let mut out = Vec::new();
    for run in store.runs(None).await? {
        if run.run_id == parent {
            continue;
        }
        let latest = store.latest(run.run_id).await?;
        if let Some(p) = latest.parent.filter(|p| p.run_id == parent) {
            out.push((latest, p.seq));
        }
    }
    out.sort_by_key(|(c, step)| (*step, c.started_at_ms));
    Ok(out)
}

/// The graph stored with the run (checkpoint 0).
fn graph_of(cps: &[Checkpoint]) -> Result<GraphRecord, Error> {
    cps[0].graph.as_deref().cloned().ok_or_else(|| {
        Error(format!(
            "run {} has no stored graph (it was written by a guiderail without graph records); \
             use `graph --machine {}` in a binary that registers the machine",
            cps[0].run_id, cps[0].machine
        ))
    })
}

/// Every state the run entered, in order.
fn path_of(cps: &[Checkpoint]) -> Vec<String> {
    guiderail_runtime::history::path(cps)
        .into_iter()
        .map(String::from)
        .collect()
}

fn read_history(file: &std::path::Path) -> Result<Vec<Checkpoint>, Error> {
    let shown = file.display();
    let result = if file.as_os_str() == "-" {
        guiderail_runtime::history::import_jsonl(io::stdin().lock())
    } else {
        let f =
            std::fs::File::open(file).map_err(|e| Error(format!("cannot read `{shown}`: {e}")))?;
        guiderail_runtime::history::import_jsonl(io::BufReader::new(f))
    };
    result.map_err(|e| Error(format!("`{shown}`: {e}")))
}

/// Refuses a history a store would refuse part-way, so an import is
/// written whole or not at all.
fn check_importable(cps: &[Checkpoint]) -> Result<(), Error> {
    use guiderail_runtime::DecidedVia;
    if cps[0].status == RunStatus::Failed && cps.len() > 1 {
        return Err("the history's first checkpoint is failed but more follow".into());
    }
    for pair in cps.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        let problem = if prev.status.is_closed() {
            Some(format!(
                "follows checkpoint {} which is {}",
                prev.seq, prev.status
            ))
        } else if prev.status == RunStatus::Waiting && next.via != Some(DecidedVia::Signal) {
            Some(format!(
                "follows a waiting checkpoint ({}) but was not a signal",
                prev.seq
            ))
        } else if prev.status != RunStatus::Waiting && next.via == Some(DecidedVia::Signal) {
            Some(format!(
                "is a signal but checkpoint {} was not waiting",
                prev.seq
            ))
        } else if next.machine != prev.machine {
            Some("belongs to another machine".to_owned())
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(Error(format!(
                "run {}: checkpoint {} {p}; nothing was imported",
                next.run_id, next.seq
            )));
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` whole or not at all (a temporary file renamed
/// into place).
fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), Error> {
    let shown = path.display();
    let name = path
        .file_name()
        .ok_or_else(|| Error(format!("`{shown}` is not a file name")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".guiderail-tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error(format!("cannot write `{shown}`: {e}")));
    }
    Ok(())
}

/// A progress bar on stderr when stderr is a terminal, hidden otherwise.
fn progress(len: Option<u64>, what: &'static str) -> indicatif::ProgressBar {
    if !io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n).with_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        ),
        None => indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg}: {pos}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(what);
    bar
}

/// Counts the lines written through it on a progress bar.
struct CountLines<'a, W: Write> {
    inner: W,
    bar: &'a indicatif::ProgressBar,
}

impl<W: Write> Write for CountLines<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let lines = buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        if lines > 0 {
            self.bar.inc(lines);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
