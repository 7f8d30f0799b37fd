//! The event bus: every event of a runner or of one run as an async
//! stream; a slow reader lags (and is told so) instead of slowing runs.
#![allow(missing_docs)]

mod machines;

use std::sync::Arc;

use guiderail_runtime::{EventBus, EventKind, Lagged, Runner, ScriptedModel};
use machines::support::ClassifyNext;
use machines::{Agent, Support, Ticket};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_bus_streams_runs_and_lags_slow_readers() {
    let bus = EventBus::new(4);
    let model = Arc::new((0..2).fold(ScriptedModel::new(), |m, _| {
        m.then(ClassifyNext::Escalate {
            reason: "legal".into(),
        })
    }));
    let runner = Runner::builder()
        .shared_model(model)
        .subscriber(bus.clone())
        .build();
    // A reader of one run, and one that never reads while runs go on.
    let first = runner.spawn(Arc::new(Agent::new()), Support::start(), Ticket::new("a"));
    let mut one = bus.subscribe_run(first.run_id());
    let mut slow = bus.subscribe();
    let reader = tokio::spawn(async move {
        let mut kinds = Vec::new();
        loop {
            match one.recv().await {
                Ok(e) => {
                    let done = matches!(e.kind, EventKind::Finished { .. });
                    kinds.push(e.run_id);
                    if done {
                        return kinds;
                    }
                }
                Err(Lagged::Lagged(_)) => {}
                Err(Lagged::Closed) => return kinds,
            }
        }
    });
    let a = first.await.unwrap().finished().unwrap();
    // The reader ends at run a's `Finished` (it may have lagged before it,
    // but nothing follows it yet).
    let seen = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
        .await
        .expect("the run reader saw run a finish")
        .unwrap();
    assert!(
        !seen.is_empty() && seen.iter().all(|r| *r == a.run_id),
        "only run a: {seen:?}"
    );
    let b = runner
        .start(&Agent::new(), Support::start(), Ticket::new("b"))
        .await
        .unwrap()
        .finished()
        .unwrap();
    // Both runs finished although `slow` read nothing; it learns it lagged.
    assert_ne!(a.run_id, b.run_id);
    match slow.recv().await {
        Err(Lagged::Lagged(n)) => assert!(n > 0),
        other => panic!("expected the slow reader to have lagged: {other:?}"),
    }
    // After the lag it reads on, in order, up to the end of run b.
    let mut last = None;
    while let Ok(e) = tokio::time::timeout(std::time::Duration::from_millis(50), slow.recv())
        .await
        .unwrap_or(Err(Lagged::Closed))
    {
        last = Some(e);
    }
    let last = last.expect("events after the lag");
    assert_eq!(last.run_id, b.run_id);
    assert!(matches!(last.kind, EventKind::Finished { .. }));
}
