//! `examples/approval_workflow.rs` offline: `start` leaves a run waiting in
//! the SQLite file and exits; `approve` / `reject`, from another process,
//! deliver the decision and finish it.
//!
//! The two-process tests start this test binary again as the child process
//! running `cli_child` with `APPROVAL_CHILD_ARGS` set, which runs the
//! example's command line (the body of its `main`) on the file in
//! `APPROVAL_DB`.
#![allow(missing_docs)]

use std::path::Path;
use std::process::Command;

use guiderail::DurableError;
use guiderail::store::{RunStatus, SqliteStore, Store};

#[path = "../examples/approval_workflow.rs"]
#[allow(dead_code)]
mod approval_workflow;

use approval_workflow::{Approval, Verdict};

const CHILD: &str = "APPROVAL_CHILD_ARGS";

fn offline() -> std::sync::Arc<dyn guiderail::Model> {
    approval_workflow::common::offline_model("approval_workflow")
        .expect("the transcript loads")
        .0
}

/// The child process: the example's command line, arguments separated by
/// newlines in `APPROVAL_CHILD_ARGS`.
#[tokio::test]
async fn cli_child() {
    let Some(args) = std::env::var_os(CHILD) else {
        // Run as a test of its own: the usage error of an unknown command.
        let dir = tempfile::tempdir().expect("a temp dir");
        let err = approval_workflow::cli(&["frobnicate".into()], &dir.path().join("a.db"))
            .await
            .expect_err("an unknown command");
        assert!(
            err.to_string()
                .starts_with("usage: approval_workflow start"),
            "{err}"
        );
        return;
    };
    let args: Vec<String> = args.to_string_lossy().lines().map(str::to_owned).collect();
    let db = std::env::var_os("APPROVAL_DB").expect("the parent sets APPROVAL_DB");
    approval_workflow::cli(&args, Path::new(&db))
        .await
        .expect("the command succeeds");
}

/// Runs the example's command line in a new process; its stdout.
fn invoke(db: &Path, args: &[&str]) -> String {
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "cli_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, args.join("\n"))
        .env("APPROVAL_DB", db)
        // Offline: the replayed transcript, whatever the environment.
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("ANTHROPIC_API_KEY")
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The run id `start` printed.
fn printed_run_id(out: &str) -> String {
    out.lines()
        .find_map(|l| {
            l.strip_prefix("run ")?
                .strip_suffix(" waits in AwaitDecision")
        })
        .unwrap_or_else(|| panic!("`start` prints the run id:\n{out}"))
        .to_owned()
}

async fn latest_status(db: &Path, run_id: &str) -> (RunStatus, String, Vec<String>) {
    let store = SqliteStore::open(db).expect("open the store");
    let latest = store
        .latest(run_id.parse().expect("a run id"))
        .await
        .expect("the run is stored");
    (
        latest.status,
        latest.state_name.into_owned(),
        latest.path.iter().map(|s| s.to_string()).collect(),
    )
}

#[tokio::test]
async fn start_exits_waiting_and_approve_from_another_process_pays() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("approval.db");

    let out = invoke(&db, &["start"]);
    let run_id = printed_run_id(&out);
    assert!(
        out.contains("proposed: refund 7999 cents for order 88231"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "approve: cargo run --example approval_workflow -- approve {run_id}"
        )),
        "{out}"
    );
    // The first process has exited; the run waits in the file.
    assert_eq!(
        latest_status(&db, &run_id).await,
        (
            RunStatus::Waiting,
            "AwaitDecision".into(),
            vec!["Classify".into(), "Propose".into(), "AwaitDecision".into()]
        )
    );

    let status = invoke(&db, &["status", &run_id]);
    assert!(status.contains("waiting in AwaitDecision"), "{status}");

    let out = invoke(&db, &["approve", &run_id, "Dana Ruiz"]);
    assert!(out.contains("approved by Dana Ruiz"), "{out}");
    assert!(
        out.contains(&format!(
            "run {run_id} finished in Refunded: Classify -> Propose -> AwaitDecision -> Pay -> Refunded"
        )),
        "{out}"
    );
    assert_eq!(latest_status(&db, &run_id).await.0, RunStatus::Finished);
}

#[tokio::test]
async fn reject_from_another_process_declines() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("approval.db");
    let run_id = printed_run_id(&invoke(&db, &["start"]));
    let out = invoke(&db, &["reject", &run_id, "photo", "shows", "no", "damage"]);
    assert!(out.contains("declined: photo shows no damage"), "{out}");
    assert!(
        out.contains(
            "finished in Closed: Classify -> Propose -> AwaitDecision -> Decline -> Closed"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn a_second_decision_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("approval.db");
    let (run_id, ended) =
        approval_workflow::start(&db, offline(), approval_workflow::sample_request())
            .await
            .expect("the run starts");
    assert!(matches!(ended, guiderail::Ended::Waiting(_)));

    let outcome = approval_workflow::decide(
        &db,
        run_id,
        Verdict::Approve {
            approver: "Dana".into(),
        },
    )
    .await
    .expect("approved");
    assert_eq!(outcome.terminal, Approval::Refunded);
    assert_eq!(outcome.decisions, 1);
    let paid: Vec<&String> = outcome
        .context
        .log
        .iter()
        .filter(|l| l.starts_with("paid (pay-"))
        .collect();
    assert_eq!(paid.len(), 1, "{:?}", outcome.context.log);

    let store = SqliteStore::open(&db).expect("open");
    let before = store.checkpoints(run_id).await.expect("checkpoints");
    let err = approval_workflow::decide(
        &db,
        run_id,
        Verdict::Reject {
            reason: "too late".into(),
        },
    )
    .await
    .expect_err("the run no longer waits");
    assert!(matches!(err, DurableError::NotWaiting { .. }), "{err}");
    assert_eq!(
        store.checkpoints(run_id).await.expect("checkpoints"),
        before
    );
}
