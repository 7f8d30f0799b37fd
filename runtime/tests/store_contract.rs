//! The rules every `Store` enforces (see `store/mod.rs`), checked against
//! `MemoryStore`, `SqliteStore` and `PgStore` (feature `postgres`, server
//! from `GUIDERAIL_TEST_POSTGRES`) with the same test bodies: sequence
//! numbers without gaps, stale writers refused, closed runs closed, waiting
//! runs moved on only by a signal, refused writes change nothing, listing
//! by status, compaction, and concurrent writers losing no update.

use std::sync::Arc;

use guiderail_runtime::store::{
    Checkpoint, EffectKey, MemoryStore, RunStatus, Spent, Store, StoreError,
};
use guiderail_runtime::{DecidedVia, RunId};
use serde_json::json;

/// Checkpoint `seq` of run `run` in `state` with `status`.
fn cp(run: u128, seq: u64, state: &'static str, status: RunStatus) -> Checkpoint {
    Checkpoint {
        run_id: RunId::from_u128(run),
        seq,
        machine: "Test".into(),
        fingerprint: 0xfeed,
        state_name: state.into(),
        state: json!({ state: { "n": seq } }),
        context: json!({ "log": vec![seq; seq as usize] }),
        spent: Spent {
            steps: seq,
            ..Spent::default()
        },
        path: vec![state.into(); seq as usize + 1],
        status,
        via: (seq > 0).then_some(DecidedVia::Code),
        decision: None,
        error: None,
        graph: None,
        parent: None,
        started_at_ms: 1,
        at_ms: 1_000 + seq,
    }
}

async fn create_and_read(store: Arc<dyn Store>) {
    let first = cp(1, 0, "Start", RunStatus::Running);
    store.create(&first).await.unwrap();
    assert_eq!(store.latest(first.run_id).await.unwrap(), first);
    let next = cp(1, 1, "Work", RunStatus::Running);
    store.append(&next).await.unwrap();
    assert_eq!(store.latest(first.run_id).await.unwrap(), next);
    assert_eq!(
        store.checkpoints(first.run_id).await.unwrap(),
        vec![first, next]
    );
}

async fn unknown_run_is_not_found(store: Arc<dyn Store>) {
    let id = RunId::from_u128(404);
    let not_found = StoreError::NotFound { run_id: id };
    assert_eq!(store.latest(id).await.unwrap_err(), not_found);
    assert_eq!(store.checkpoints(id).await.unwrap_err(), not_found);
    let next = cp(404, 1, "Work", RunStatus::Running);
    assert_eq!(store.append(&next).await.unwrap_err(), not_found);
    assert_eq!(store.deliver_signal(&next).await.unwrap_err(), not_found);
    assert!(store.runs(None).await.unwrap().is_empty());
}

async fn create_twice_is_refused(store: Arc<dyn Store>) {
    let first = cp(2, 0, "Start", RunStatus::Running);
    store.create(&first).await.unwrap();
    let mut other = first.clone();
    other.context = json!("different");
    assert_eq!(
        store.create(&other).await.unwrap_err(),
        StoreError::AlreadyExists {
            run_id: first.run_id
        }
    );
    assert_eq!(store.checkpoints(first.run_id).await.unwrap(), vec![first]);
    let late = cp(3, 2, "Start", RunStatus::Running);
    assert!(matches!(
        store.create(&late).await.unwrap_err(),
        StoreError::Conflict { attempted: 2, .. }
    ));
    assert!(matches!(
        store.latest(late.run_id).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
}

async fn stale_and_gapped_appends_are_refused(store: Arc<dyn Store>) {
    store
        .create(&cp(4, 0, "Start", RunStatus::Running))
        .await
        .unwrap();
    store
        .append(&cp(4, 1, "Work", RunStatus::Running))
        .await
        .unwrap();
    // A second writer that also read checkpoint 0 tries to write 1.
    let mut stale = cp(4, 1, "Other", RunStatus::Running);
    stale.context = json!("stale");
    assert_eq!(
        store.append(&stale).await.unwrap_err(),
        StoreError::Conflict {
            run_id: RunId::from_u128(4),
            attempted: 1,
            latest: 1
        }
    );
    assert!(matches!(
        store
            .append(&cp(4, 3, "Work", RunStatus::Running))
            .await
            .unwrap_err(),
        StoreError::Conflict {
            attempted: 3,
            latest: 1,
            ..
        }
    ));
    let all = store.checkpoints(RunId::from_u128(4)).await.unwrap();
    assert_eq!(all.iter().map(|c| c.seq).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(all[1].state_name, "Work");
}

async fn closed_runs_take_nothing(store: Arc<dyn Store>) {
    for (run, status) in [(5, RunStatus::Finished), (6, RunStatus::Failed)] {
        store
            .create(&cp(run, 0, "Start", RunStatus::Running))
            .await
            .unwrap();
        let mut end = cp(run, 1, "End", status);
        end.error = (status == RunStatus::Failed).then(|| "boom".to_owned());
        store.append(&end).await.unwrap();
        let run_id = RunId::from_u128(run);
        assert_eq!(
            store
                .append(&cp(run, 2, "End", RunStatus::Running))
                .await
                .unwrap_err(),
            StoreError::Closed { run_id, status }
        );
        assert_eq!(
            store
                .deliver_signal(&cp(run, 2, "End", RunStatus::Running))
                .await
                .unwrap_err(),
            StoreError::Closed { run_id, status }
        );
        assert_eq!(store.latest(run_id).await.unwrap(), end);
    }
}

async fn only_a_signal_moves_a_waiting_run(store: Arc<dyn Store>) {
    let run_id = RunId::from_u128(7);
    store
        .create(&cp(7, 0, "Start", RunStatus::Running))
        .await
        .unwrap();
    // A signal for a running run is refused.
    assert_eq!(
        store
            .deliver_signal(&cp(7, 1, "Go", RunStatus::Running))
            .await
            .unwrap_err(),
        StoreError::NotWaiting {
            run_id,
            status: RunStatus::Running,
            state: "Start".into()
        }
    );
    store
        .append(&cp(7, 1, "Approve", RunStatus::Waiting))
        .await
        .unwrap();
    // A plain append to a waiting run is refused.
    assert!(matches!(
        store
            .append(&cp(7, 2, "Go", RunStatus::Running))
            .await
            .unwrap_err(),
        StoreError::NotWaiting {
            status: RunStatus::Waiting,
            ..
        }
    ));
    assert_eq!(store.latest(run_id).await.unwrap().seq, 1);
    let mut signalled = cp(7, 2, "Go", RunStatus::Running);
    signalled.via = Some(DecidedVia::Signal);
    store.deliver_signal(&signalled).await.unwrap();
    // The same signal again (a second deliverer) is refused.
    assert!(store.deliver_signal(&signalled).await.is_err());
    assert_eq!(store.latest(run_id).await.unwrap(), signalled);
}

async fn runs_are_listed_by_status(store: Arc<dyn Store>) {
    for (run, status) in [
        (30, RunStatus::Running),
        (10, RunStatus::Waiting),
        (20, RunStatus::Finished),
        (40, RunStatus::Running),
    ] {
        store
            .create(&cp(run, 0, "Start", RunStatus::Running))
            .await
            .unwrap();
        if status != RunStatus::Running {
            store.append(&cp(run, 1, "Next", status)).await.unwrap();
        }
    }
    let ids = |list: Vec<guiderail_runtime::store::RunSummary>| {
        list.iter().map(|r| r.run_id.as_u128()).collect::<Vec<_>>()
    };
    assert_eq!(ids(store.runs(None).await.unwrap()), [10, 20, 30, 40]);
    assert_eq!(
        ids(store.runs(Some(RunStatus::Running)).await.unwrap()),
        [30, 40]
    );
    let waiting = store.runs(Some(RunStatus::Waiting)).await.unwrap();
    assert_eq!(waiting.len(), 1);
    let w = &waiting[0];
    assert_eq!(
        (w.machine.as_str(), w.fingerprint, w.seq, w.state.as_str()),
        ("Test", 0xfeed, 1, "Next")
    );
    assert!(
        store
            .runs(Some(RunStatus::Failed))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn compaction_keeps_the_last_checkpoint_of_closed_runs(store: Arc<dyn Store>) {
    for run in [50, 51] {
        store
            .create(&cp(run, 0, "Start", RunStatus::Running))
            .await
            .unwrap();
        for seq in 1..5 {
            store
                .append(&cp(run, seq, "Work", RunStatus::Running))
                .await
                .unwrap();
        }
    }
    store
        .append(&cp(50, 5, "Done", RunStatus::Finished))
        .await
        .unwrap();
    // Nothing is old enough yet.
    assert_eq!(store.compact(0).await.unwrap(), 0);
    assert_eq!(store.compact(u64::MAX).await.unwrap(), 5);
    let done = store.checkpoints(RunId::from_u128(50)).await.unwrap();
    assert_eq!(done, vec![cp(50, 5, "Done", RunStatus::Finished)]);
    assert_eq!(
        store.checkpoints(RunId::from_u128(51)).await.unwrap().len(),
        5
    );
    assert_eq!(store.compact(u64::MAX).await.unwrap(), 0);
}

async fn racing_writers_one_wins(store: Arc<dyn Store>) {
    store
        .create(&cp(60, 0, "Start", RunStatus::Running))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut c = cp(60, 1, "Work", RunStatus::Running);
                c.context = json!(i);
                store.append(&c).await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => assert!(matches!(e, StoreError::Conflict { .. }), "{e}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(
        store.checkpoints(RunId::from_u128(60)).await.unwrap().len(),
        2
    );
}

async fn concurrent_runs_lose_no_update(store: Arc<dyn Store>) {
    const RUNS: u128 = 100;
    const STEPS: u64 = 20;
    let tasks: Vec<_> = (0..RUNS)
        .map(|run| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create(&cp(1000 + run, 0, "Start", RunStatus::Running))
                    .await?;
                for seq in 1..=STEPS {
                    store
                        .append(&cp(1000 + run, seq, "Work", RunStatus::Running))
                        .await?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for run in 0..RUNS {
        let all = store
            .checkpoints(RunId::from_u128(1000 + run))
            .await
            .unwrap();
        let seqs: Vec<u64> = all.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, (0..=STEPS).collect::<Vec<_>>());
    }
    assert_eq!(
        store.runs(Some(RunStatus::Running)).await.unwrap().len(),
        RUNS as usize
    );
}

async fn effects_are_journaled_first_record_wins(store: Arc<dyn Store>) {
    let key = EffectKey {
        run_id: RunId::from_u128(70),
        step: 3,
        name: "charge".into(),
    };
    assert_eq!(store.effect(&key).await.unwrap(), None);
    let first = json!({"receipt": 1});
    assert_eq!(store.record_effect(&key, &first).await.unwrap(), first);
    // A second writer's result does not replace the first.
    let second = json!({"receipt": 2});
    assert_eq!(store.record_effect(&key, &second).await.unwrap(), first);
    assert_eq!(store.effect(&key).await.unwrap(), Some(first.clone()));
    // Another step or name is another effect.
    let other = EffectKey {
        step: 4,
        ..key.clone()
    };
    assert_eq!(store.effect(&other).await.unwrap(), None);

    // Compacting a closed run drops its journal.
    store
        .create(&cp(70, 0, "Start", RunStatus::Running))
        .await
        .unwrap();
    store
        .append(&cp(70, 1, "Done", RunStatus::Finished))
        .await
        .unwrap();
    store.compact(u64::MAX).await.unwrap();
    assert_eq!(store.effect(&key).await.unwrap(), None);
}

async fn run_path_is_the_states_entered(store: Arc<dyn Store>) {
    store
        .create(&cp(80, 0, "Start", RunStatus::Running))
        .await
        .unwrap();
    store
        .append(&cp(80, 1, "Work", RunStatus::Running))
        .await
        .unwrap();
    // Parking in `Work` is a checkpoint but no transition.
    let mut parked = cp(80, 2, "Work", RunStatus::Waiting);
    parked.via = None;
    store.append(&parked).await.unwrap();
    let entered: Vec<String> = store
        .run_path(RunId::from_u128(80))
        .await
        .unwrap()
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(entered, ["Start", "Work"]);
    assert_eq!(
        store.run_path(RunId::from_u128(81)).await.unwrap_err(),
        StoreError::NotFound {
            run_id: RunId::from_u128(81)
        }
    );
}

macro_rules! contract {
    ($store:ident, $make:expr) => {
        mod $store {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        #[allow(clippy::redundant_closure_call)]
                        let Some((store, _guard)) = ($make)(stringify!($name)).await else {
                            return;
                        };
                        super::$name(store).await;
                    }
                };
            }

            case!(create_and_read);
            case!(unknown_run_is_not_found);
            case!(create_twice_is_refused);
            case!(stale_and_gapped_appends_are_refused);
            case!(closed_runs_take_nothing);
            case!(only_a_signal_moves_a_waiting_run);
            case!(runs_are_listed_by_status);
            case!(compaction_keeps_the_last_checkpoint_of_closed_runs);
            case!(racing_writers_one_wins);
            case!(concurrent_runs_lose_no_update);
            case!(effects_are_journaled_first_record_wins);
            case!(run_path_is_the_states_entered);
        }
    };
}

/// What keeps a store's backing alive for the length of a test.
type Guard = Box<dyn std::any::Any + Send>;

contract!(memory, |_test: &'static str| async {
    Some((
        Arc::new(MemoryStore::new()) as Arc<dyn Store>,
        Box::new(()) as Guard,
    ))
});

contract!(sqlite, |_test: &'static str| async {
    let dir = tempfile::tempdir().unwrap();
    let store = guiderail_runtime::store::SqliteStore::open(dir.path().join("runs.db")).unwrap();
    Some((Arc::new(store) as Arc<dyn Store>, Box::new(dir) as Guard))
});

#[cfg(feature = "postgres")]
#[path = "common/pg.rs"]
mod pg;

#[cfg(feature = "postgres")]
contract!(postgres, |test: &'static str| async move {
    let (store, schema) = pg::store(test).await?;
    Some((Arc::new(store) as Arc<dyn Store>, Box::new(schema) as Guard))
});
