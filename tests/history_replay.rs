//! A run's history: events told by its checkpoints, JSON Lines export and
//! import, offline replay that reproduces an unchanged machine exactly and
//! names the first difference after a change, and forks from a checkpoint.
#![allow(missing_docs)]

mod common {
    pub mod triage;
}

use std::sync::Arc;

use common::triage::{Agent, Ticket, Triage, triage};
use guiderail::history::{HistoryError, export_jsonl, import_jsonl};
use guiderail::store::{Checkpoint, MemoryStore, Parent, RunStatus, Store};
use guiderail::{DecidedVia, DurableError, Ended, EventKind, RunId, Runner, ScriptedModel};

fn ticket() -> Ticket {
    Ticket {
        text: "my parcel arrived broken".into(),
        log: Vec::new(),
    }
}

/// A run that refunds, waits for approval, gets a reply signal, and
/// finishes: gates, a wait and a signal in one history.
async fn recorded() -> (Arc<MemoryStore>, RunId, Vec<Checkpoint>) {
    let store = Arc::new(MemoryStore::new());
    let model = ScriptedModel::new().then(triage::ClassifyNext::IssueRefund { order_id: 7 });
    let runner = Runner::builder()
        .model(model)
        .shared_store(store.clone())
        .build();
    let agent = Agent::default();
    let ended = runner
        .start_durable(&agent, Triage::start(), ticket())
        .await
        .unwrap();
    let Ended::Waiting(waiting) = ended else {
        panic!("expected a wait: {ended:?}");
    };
    let id = waiting.run_id();
    let signal = triage::ApproveNext::Reply {
        draft: "refunded".into(),
    };
    let ended = runner.signal_run(&agent, id, signal).await.unwrap();
    assert!(matches!(ended, Ended::Finished(_)), "{ended:?}");
    let cps = store.checkpoints(id).await.unwrap();
    // The graph the run ran on is stored with it, once.
    let graph = cps[0]
        .graph
        .as_deref()
        .expect("checkpoint 0 holds the graph");
    assert_eq!(graph.machine, "Triage");
    assert_eq!(graph.mermaid, Triage::graph().mermaid);
    assert!(cps[1..].iter().all(|c| c.graph.is_none()));
    (store, id, cps)
}

#[tokio::test]
async fn history_tells_the_run_as_events() {
    let (store, id, cps) = recorded().await;
    let events = store.history(id).await.unwrap();
    let told: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Started { state, .. } => Some(format!("started {state}")),
            EventKind::Decision(d) => Some(format!("decision {} -> {}", d.gate, d.chosen)),
            EventKind::Transition { from, to, via, .. } => {
                Some(format!("{from} -> {to} by {via:?}"))
            }
            EventKind::Waiting { state } => Some(format!("waiting {state}")),
            EventKind::Finished { state, .. } => Some(format!("finished {state}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        [
            "started Intake",
            "Intake -> Classify by Code",
            "decision Classify -> IssueRefund",
            "Classify -> IssueRefund by Gate",
            "IssueRefund -> Approve by Code",
            "waiting Approve",
            "Approve -> Reply by Signal",
            "Reply -> Done by Code",
            "finished Done",
        ]
    );
    let written = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::CheckpointWritten { .. }))
        .count();
    assert_eq!(written, cps.len());
    // Stable, versioned field names.
    let json = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(json["v"], 1);
    assert_eq!(json["type"], "started");
    assert_eq!(json["run_id"], id.to_string());
    assert_eq!(json["machine"], "Triage");
}

#[tokio::test]
async fn export_and_import_round_trip() {
    let (_store, id, cps) = recorded().await;
    let mut out = Vec::new();
    let lines = export_jsonl(&cps, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), lines);
    assert!(text.lines().all(|l| l.starts_with("{\"v\":1,")), "{text}");
    assert_eq!(import_jsonl(text.as_bytes()).unwrap(), cps);

    // Imported into another store, the run reads back the same.
    let other = MemoryStore::new();
    other.create(&cps[0]).await.unwrap();
    for cp in &cps[1..] {
        if cp.via == Some(DecidedVia::Signal) {
            other.deliver_signal(cp).await.unwrap();
        } else {
            other.append(cp).await.unwrap();
        }
    }
    assert_eq!(other.latest(id).await.unwrap(), *cps.last().unwrap());

    // Bad input: one clear error with the line, nothing half-read.
    let broken = text.replacen("\"seq\":2", "\"seq\":9", 1);
    let err = import_jsonl(broken.as_bytes()).unwrap_err();
    assert!(
        matches!(err, HistoryError::Inconsistent { .. })
            && err.to_string().contains("checkpoint 9 where checkpoint 2"),
        "{err}"
    );
    let err = import_jsonl("{not json}\n".as_bytes()).unwrap_err();
    assert!(matches!(err, HistoryError::Parse { line: 1, .. }), "{err}");
    let err = import_jsonl("\n".as_bytes()).unwrap_err();
    assert!(err.to_string().contains("no checkpoint"), "{err}");
}

#[tokio::test]
async fn replaying_an_unchanged_machine_reproduces_the_run() {
    let (_store, id, cps) = recorded().await;
    // No model and no store: everything comes from the record.
    let report = Runner::new()
        .replay::<Triage, _>(&Agent::default(), &cps)
        .await
        .unwrap();
    assert!(report.is_identical(), "{report}");
    assert_eq!(report.run_id, id);
    assert_eq!(report.compared, cps.len() as u64);
    let paths = |c: &[Checkpoint]| {
        c.iter()
            .map(|c| c.state_name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(paths(&report.replayed), paths(&cps));
}

#[tokio::test]
async fn replay_names_the_first_difference_after_a_change() {
    let (_store, _id, cps) = recorded().await;
    let changed = Agent {
        suffix: "!",
        ..Agent::default()
    };
    let report = Runner::new()
        .replay::<Triage, _>(&changed, &cps)
        .await
        .unwrap();
    let d = report.divergence.as_ref().expect("the contexts differ");
    // Checkpoint 1 is the first one after a handler ran.
    assert_eq!(d.seq, 1, "{report}");
    assert_eq!(d.recorded.as_ref().unwrap().state, "Classify");
    assert_eq!(d.replayed.as_ref().unwrap().state, "Classify");
    assert_eq!(d.context_diff, ["/log/0: \"Intake@1\" -> \"Intake@1!\""]);
    assert!(
        report.to_string().contains("differs at checkpoint 1"),
        "{report}"
    );

    let empty = Runner::new()
        .replay::<Triage, _>(&Agent::default(), &[])
        .await;
    assert!(
        matches!(empty, Err(DurableError::EmptyHistory)),
        "{empty:?}"
    );
}

#[tokio::test]
async fn a_fork_starts_from_a_checkpoint_with_another_move() {
    let (store, id, cps) = recorded().await;
    let classify = cps.iter().find(|c| c.state_name == "Classify").unwrap().seq;
    let runner = Runner::builder()
        .model(ScriptedModel::new())
        .shared_store(store.clone())
        .build();
    let escalate = Triage::Escalate {
        reason: "what if".into(),
    };
    let fork = runner
        .fork::<Triage>(id, classify, Some(escalate))
        .await
        .unwrap();
    let first = store.latest(fork).await.unwrap();
    assert_eq!(first.seq, 0);
    assert_eq!(
        first.parent,
        Some(Parent {
            run_id: id,
            seq: classify
        })
    );
    assert_eq!(first.state_name, "Escalate");
    let ended = runner
        .resume::<Triage, _>(&Agent::default(), fork)
        .await
        .unwrap();
    let Ended::Finished(outcome) = ended else {
        panic!("{ended:?}");
    };
    assert_eq!(outcome.terminal, Triage::Done);
    let last = store.latest(fork).await.unwrap();
    assert_eq!(
        last.parent,
        Some(Parent {
            run_id: id,
            seq: classify
        }),
        "kept to the end"
    );
    assert_eq!(last.status, RunStatus::Finished);
    // The original run is untouched.
    assert_eq!(store.checkpoints(id).await.unwrap(), cps);

    // A move the state does not declare, a checkpoint that is not there.
    let illegal = runner
        .fork::<Triage>(id, classify, Some(Triage::Approve))
        .await;
    assert!(
        matches!(illegal, Err(DurableError::IllegalFork { .. })),
        "{illegal:?}"
    );
    let missing = runner.fork::<Triage>(id, 99, None).await;
    assert!(
        matches!(missing, Err(DurableError::NoCheckpoint { seq: 99, .. })),
        "{missing:?}"
    );
    // A plain fork re-runs from the checkpoint.
    let again = runner.fork::<Triage>(id, 0, None).await.unwrap();
    assert_eq!(store.latest(again).await.unwrap().state_name, "Intake");
}
