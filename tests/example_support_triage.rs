//! The main example, `examples/support_triage.rs`, is durable: interrupted
//! with Ctrl-C (SIGINT) or killed (SIGKILL) and started again on the same
//! database file, it resumes the unfinished run instead of starting over,
//! and ends exactly as an uninterrupted run does.
//!
//! The example's code is compiled into this test as a module. The
//! interrupting tests start this test binary again as a child process
//! running `example_in_process` with `SUPPORT_TRIAGE_CHILD` set, which runs
//! the example's `run` (the body of its `main`) against the file in
//! `SUPPORT_TRIAGE_DB`, and read its output line by line to interrupt it at
//! a chosen transition.
//!
//! The example's database outlives a build, so its machine's fingerprint
//! and its payload and context schemas are committed in
//! `tests/fingerprints.txt`: a change that would strand the runs stored in
//! someone's `support_triage.db` fails `example_fingerprints_are_committed`.
#![allow(missing_docs)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use guiderail::RunId;
use guiderail::store::{Checkpoint, RunStatus, RunSummary, SqliteStore, Store};

#[path = "../examples/support_triage.rs"]
#[allow(dead_code)]
mod support_triage;

use support_triage::{Options, Refund, Support, Ticket};

const CHILD: &str = "SUPPORT_TRIAGE_CHILD";
/// The path every run of the example takes with the bundled transcript.
const PATH: [&str; 7] = [
    "Intake",
    "Classify",
    "Reply",
    "Classify",
    "IssueRefund",
    "AwaitApproval",
    "Done",
];
/// How long a child may take to print a line.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The example's `run` in this process, on `db`.
fn run_example(db: &Path, step_delay: Duration) -> Vec<guiderail::Outcome<Support>> {
    let options = Options {
        db: db.to_owned(),
        step_delay,
    };
    runtime()
        .block_on(support_triage::run(&options))
        .unwrap_or_else(|e| panic!("the example failed on {}: {e}", db.display()))
}

/// What an uninterrupted run stores: its final context, and each
/// checkpoint's state and status.
struct Reference {
    context: Ticket,
    checkpoints: Vec<(String, RunStatus)>,
}

fn shape(checkpoints: &[Checkpoint]) -> Vec<(String, RunStatus)> {
    checkpoints
        .iter()
        .map(|c| (c.state_name.to_string(), c.status))
        .collect()
}

fn uninterrupted() -> Reference {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("reference.db");
    let outcomes = run_example(&db, Duration::ZERO);
    assert_eq!(outcomes.len(), 1);
    let outcome = outcomes.into_iter().next().expect("one outcome");
    let checkpoints = stored_checkpoints(&db, outcome.run_id);
    Reference {
        context: outcome.context,
        checkpoints: shape(&checkpoints),
    }
}

/// Runs stored by one version of the example resume with the next: its
/// machine's shape and the schemas of what a checkpoint stores of it are
/// those in the committed file.
#[test]
fn example_fingerprints_are_committed() {
    guiderail::testing::Fingerprints::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fingerprints.txt"
    ))
    .machine(Support::graph())
    .schema::<Refund>()
    .schema::<Ticket>()
    .assert();
}

/// Without `SUPPORT_TRIAGE_CHILD`: two uninterrupted invocations on one
/// file. The first starts a run and finishes it; with nothing left
/// unfinished, the second starts another. With it: the child process of the
/// tests below.
#[test]
fn example_in_process() {
    if let Some(db) = std::env::var_os(CHILD).map(PathBuf::from) {
        let ms: u64 = std::env::var("SUPPORT_TRIAGE_STEP_MS")
            .expect("the parent sets SUPPORT_TRIAGE_STEP_MS")
            .parse()
            .expect("milliseconds");
        run_example(&db, Duration::from_millis(ms));
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("support_triage.db");
    let first = run_example(&db, Duration::ZERO);
    let second = run_example(&db, Duration::ZERO);
    assert_eq!(first.len(), 1, "one run started");
    assert_eq!(second.len(), 1, "one more run started");
    for outcome in first.iter().chain(&second) {
        assert_eq!(outcome.path.to_vec(), PATH);
        assert_eq!(outcome.terminal, Support::Done);
        assert_eq!((outcome.steps, outcome.decisions), (6, 2));
        assert_eq!(
            outcome.context.notes,
            [
                "received: My parcel arrived broken, I want my money back.",
                "refund of 2500 cents for order 4417 prepared",
            ]
        );
    }
    assert_ne!(first[0].run_id, second[0].run_id);
    let runs = stored_runs(&db);
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.status == RunStatus::Finished));
}

/// The example as a child process, on `db`.
struct Example {
    child: Child,
    lines: mpsc::Receiver<String>,
    output: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Example {
    fn spawn(db: &Path, step_ms: u64) -> Example {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                "example_in_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, db)
            .env("SUPPORT_TRIAGE_STEP_MS", step_ms.to_string())
            // Offline: the replayed transcript, whatever the environment.
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("GUIDERAIL_RECORD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the example");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Example {
            child,
            lines,
            output: Vec::new(),
            stderr,
        }
    }

    /// Reads output until a line that starts with `wanted` (trimmed).
    fn wait_for(&mut self, wanted: &str) {
        loop {
            match self.lines.recv_timeout(LINE_TIMEOUT) {
                Ok(line) => {
                    let found = line.trim().starts_with(wanted);
                    self.output.push(line);
                    if found {
                        return;
                    }
                }
                Err(e) => panic!(
                    "the example never printed {wanted:?} ({e}); it printed:\n{}",
                    self.output.join("\n")
                ),
            }
        }
    }

    /// Waits for the process to end; its exit status and whole output.
    fn finish(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().expect("wait for the example");
        self.output.extend(self.lines.try_iter());
        // The reader thread ends at EOF; collect what it still sends.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.output.push(line);
        }
        let stderr = self.stderr.join().unwrap_or_default();
        let mut text = self.output.join("\n");
        if !status.success() {
            text.push_str("\n--- stderr ---\n");
            text.push_str(&stderr);
        }
        (status, text)
    }
}

fn stored_runs(db: &Path) -> Vec<RunSummary> {
    runtime().block_on(async {
        let store = SqliteStore::open(db).expect("open the store");
        store.runs(None).await.expect("list the runs")
    })
}

fn stored_checkpoints(db: &Path, run_id: RunId) -> Vec<Checkpoint> {
    runtime().block_on(async {
        let store = SqliteStore::open(db).expect("open the store");
        store
            .checkpoints(run_id)
            .await
            .expect("read the checkpoints")
    })
}

/// The printed line of the transition that ends step `step`.
fn step_line(step: usize) -> String {
    let by = match PATH[step - 1] {
        "Classify" => "the model",
        "AwaitApproval" => "a signal",
        _ => "code",
    };
    format!(
        "step {step}: {} -> {} (by {by})",
        PATH[step - 1],
        PATH[step]
    )
}

/// Starts the example on a fresh file, interrupts it after `after` (a
/// printed line) with `interrupt`, checks the run is stored unfinished,
/// starts the example again and checks that it resumed the same run and
/// ended as an uninterrupted run does.
fn interrupt_and_resume(after: &str, interrupt: impl FnOnce(&mut Child), reference: &Reference) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("support_triage.db");

    let mut first = Example::spawn(&db, 200);
    first.wait_for(after);
    interrupt(&mut first.child);
    let (status, first_out) = first.finish();
    assert!(
        !status.success(),
        "the interrupted example exited with {status}:\n{first_out}"
    );
    assert!(
        first_out.contains(&format!("store: {}", db.display())),
        "the database path is printed at start:\n{first_out}"
    );

    let runs = stored_runs(&db);
    assert_eq!(runs.len(), 1, "one run is stored: {runs:?}");
    let run = &runs[0];
    assert_eq!(
        run.status,
        RunStatus::Running,
        "interrupted after {after:?}"
    );
    let interrupted_at = run.seq;
    let before = stored_checkpoints(&db, run.run_id);
    let stored_path = &before.last().expect("a checkpoint").path;
    assert_eq!(
        stored_path.iter().map(|s| &**s).collect::<Vec<_>>(),
        PATH[..stored_path.len()],
        "the stored path is a prefix of the run's path"
    );

    let second = Example::spawn(&db, 0);
    let (status, out) = second.finish();
    assert!(status.success(), "the resumed example failed:\n{out}");
    assert!(
        out.contains(&format!(
            "resuming run {} from checkpoint {interrupted_at} (running",
            run.run_id
        )),
        "the second invocation resumes the stored run:\n{out}"
    );
    assert!(
        !out.contains("starting run"),
        "the second invocation starts no new run:\n{out}"
    );
    assert!(
        out.contains(&format!("run {} finished", run.run_id)),
        "{out}"
    );
    assert!(
        out.contains(&format!("path: {}", PATH.join(" -> "))),
        "{out}"
    );

    let runs = stored_runs(&db);
    assert_eq!(runs.len(), 1, "still one run: {runs:?}");
    assert_eq!(runs[0].status, RunStatus::Finished);
    let checkpoints = stored_checkpoints(&db, run.run_id);
    let seqs: Vec<u64> = checkpoints.iter().map(|c| c.seq).collect();
    let expected: Vec<u64> = (0..reference.checkpoints.len() as u64).collect();
    assert_eq!(
        seqs, expected,
        "contiguous checkpoints, as many as an uninterrupted run's"
    );
    assert_eq!(
        shape(&checkpoints),
        reference.checkpoints,
        "the same states and statuses as an uninterrupted run"
    );
    // What the first process stored is unchanged.
    assert_eq!(checkpoints[..before.len()], before[..]);
    let last = checkpoints.last().expect("a checkpoint");
    assert_eq!(last.path.iter().map(|s| &**s).collect::<Vec<_>>(), PATH);
    let context: Ticket = serde_json::from_value(last.context.clone()).expect("a ticket");
    assert_eq!(
        context, reference.context,
        "the same context as an uninterrupted run"
    );
    // Two decisions, each recorded once, and the model was asked exactly
    // twice over both processes: the replayed transcript has two answers,
    // and a third request would have failed the run.
    let decisions: Vec<(u64, &str)> = checkpoints
        .iter()
        .filter_map(|c| Some((c.seq, c.decision.as_deref()?.chosen.as_str())))
        .collect();
    assert_eq!(decisions, [(2, "Reply"), (4, "IssueRefund")]);

    // Nothing is left unfinished: a third invocation starts a new run.
    let third = Example::spawn(&db, 0);
    let (status, out) = third.finish();
    assert!(status.success(), "{out}");
    assert!(out.contains("starting run"), "{out}");
    assert!(!out.contains("resuming run"), "{out}");
    let runs = stored_runs(&db);
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.status == RunStatus::Finished));
}

/// Ctrl-C (SIGINT to the process) after the model's first decision: the
/// example says where the run is stored and exits with 130; run again, it
/// resumes the run.
#[cfg(unix)]
#[test]
fn ctrl_c_then_rerun_resumes_the_run() {
    let reference = uninterrupted();
    let sigint = |child: &mut Child| {
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("run kill -INT");
        assert!(status.success(), "kill -INT failed");
        let status = child.wait().expect("wait for the example");
        assert_eq!(
            status.code(),
            Some(130),
            "the example exits with 130 on Ctrl-C"
        );
    };
    interrupt_and_resume(&step_line(2), sigint, &reference);
}

/// SIGKILL at every step that has work after it: right after the intake,
/// after each decision, after the reply. Every time the rerun resumes and
/// ends the same.
#[test]
fn killed_at_any_step_the_rerun_resumes() {
    let reference = uninterrupted();
    let kill = |child: &mut Child| child.kill().expect("kill the example");
    for step in 1..=4 {
        interrupt_and_resume(&step_line(step), kill, &reference);
    }
}

/// Replaying the example's stored run with its own handlers reproduces it
/// exactly; exported and imported back, the history replays the same.
#[test]
fn the_examples_run_replays_exactly() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("support_triage.db");
    let outcome = run_example(&db, Duration::ZERO).remove(0);
    let recorded = stored_checkpoints(&db, outcome.run_id);
    let agent = support_triage::Agent {
        step_delay: Duration::ZERO,
    };
    let runner = guiderail::Runner::new();
    let rt = runtime();
    let report = rt
        .block_on(runner.replay::<Support, _>(&agent, &recorded))
        .expect("the replay runs");
    assert!(report.is_identical(), "{report}");
    assert_eq!(report.compared, recorded.len() as u64);
    assert_eq!(
        report.replayed.last().map(|c| c.path.clone()),
        recorded.last().map(|c| c.path.clone())
    );

    let mut jsonl = Vec::new();
    guiderail::history::export_jsonl(&recorded, &mut jsonl).expect("export");
    let imported = guiderail::history::import_jsonl(&jsonl[..]).expect("import");
    assert_eq!(imported, recorded);
    let again = rt
        .block_on(runner.replay::<Support, _>(&agent, &imported))
        .expect("the replay runs");
    assert!(again.is_identical(), "{again}");
}
