//! A small support machine and a SQLite store with a few of its durable
//! runs, for the `guiderail` command's tests.

#![allow(dead_code, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use guiderail::store::{SqliteStore, Store};
use guiderail::{Ended, RunId, Runner, ScriptedModel, Usage};

// The support machine of the library's own tests.
#[path = "../../../tests/common/triage.rs"]
mod machine;
pub use machine::{Agent, Ticket, Triage, triage};

/// The runs stored by [`fixture`].
#[derive(Debug)]
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    /// Refund (after one rejected answer), wait, signal, reply, done.
    pub refunded: RunId,
    /// Escalated and done.
    pub escalated: RunId,
    /// Refund, then waiting for approval.
    pub waiting: RunId,
    /// The model never gave a valid answer: failed at the gate.
    pub failed: RunId,
}

fn ticket(text: &str) -> Ticket {
    Ticket {
        text: text.into(),
        log: Vec::new(),
    }
}

fn usage() -> Usage {
    Usage {
        input_tokens: 120,
        output_tokens: 30,
        cost_micros: 450,
    }
}

fn runner(store: &std::sync::Arc<dyn Store>, model: ScriptedModel) -> Runner {
    Runner::builder()
        .model(model.with_usage(usage()))
        .max_repairs(1)
        .shared_store(store.clone())
        .build()
}

/// A fresh SQLite store with four runs of [`Triage`].
pub async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(SqliteStore::open(&db).unwrap());
    let agent = Agent::default();

    // Refunded: one rejected answer, then a refund; waits; a signal replies.
    let model = ScriptedModel::new()
        .then_raw("I think a refund is right")
        .then(triage::ClassifyNext::IssueRefund { order_id: 7 });
    let r = runner(&store, model);
    let ended = r
        .start_durable(&agent, Triage::start(), ticket("my parcel arrived broken"))
        .await
        .unwrap();
    let Ended::Waiting(w) = ended else {
        panic!("expected a wait: {ended:?}");
    };
    let refunded = w.run_id();
    let ended = r
        .signal_run(
            &agent,
            refunded,
            triage::ApproveNext::Reply {
                draft: "refunded <b>in full</b>".into(),
            },
        )
        .await
        .unwrap();
    assert!(matches!(ended, Ended::Finished(_)), "{ended:?}");

    // Escalated.
    let model = ScriptedModel::new().then(triage::ClassifyNext::Escalate {
        reason: "legal".into(),
    });
    let ended = runner(&store, model)
        .start_durable(&agent, Triage::start(), ticket("I will sue"))
        .await
        .unwrap();
    let Ended::Finished(done) = ended else {
        panic!("expected the end: {ended:?}");
    };
    let escalated = done.run_id;

    // Waiting.
    let model = ScriptedModel::new().then(triage::ClassifyNext::IssueRefund { order_id: 9 });
    let ended = runner(&store, model)
        .start_durable(&agent, Triage::start(), ticket("wrong size"))
        .await
        .unwrap();
    let Ended::Waiting(w) = ended else {
        panic!("expected a wait: {ended:?}");
    };
    let waiting = w.run_id();

    // Failed: two answers that are not moves, one repair allowed.
    let model = ScriptedModel::new()
        .then_raw("no idea")
        .then_raw("still no idea");
    let failed = runner(&store, model)
        .start_durable(&agent, Triage::start(), ticket("???"))
        .await
        .unwrap_err();
    let failed_id = latest_failed(&store).await;
    let _ = failed;

    Fixture {
        dir,
        db,
        refunded,
        escalated,
        waiting,
        failed: failed_id,
    }
}

async fn latest_failed(store: &std::sync::Arc<dyn Store>) -> RunId {
    let failed = store
        .runs(Some(guiderail::store::RunStatus::Failed))
        .await
        .unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    failed[0].run_id
}

/// Runs the compiled `guiderail` with `args`, with no terminal and CI
/// colours off.
pub fn guiderail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guiderail"))
        .args(args)
        .env_remove("GUIDERAIL_DB")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Stdout of a run that must succeed.
pub fn ok(args: &[&str]) -> String {
    let out = guiderail(args);
    assert!(
        out.status.success(),
        "guiderail {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // No progress bar or chatter without a terminal.
    assert!(
        out.stderr.is_empty(),
        "guiderail {args:?} wrote to stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Stderr of a run that must fail with exit code 2, checked to be one line.
pub fn fails(args: &[&str]) -> String {
    let out = guiderail(args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "guiderail {args:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// A path inside the fixture's directory, as a string.
pub fn path_in(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}
