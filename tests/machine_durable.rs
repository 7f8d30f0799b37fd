//! Durable runs end to end through the facade: a checkpoint per
//! transition, resume after a crash (a run's task aborted mid-handler),
//! recorded decisions not asked again, handlers re-run at least once with
//! the same idempotency key, durable waits signalled by another runner,
//! signals and resumes that are refused without changing anything, graph
//! fingerprints, and the SQLite store across store instances.
#![allow(missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use guiderail::prelude::*;
use guiderail::store::{Checkpoint, MemoryStore, RunStatus, SqliteStore, Store, StoreError};
use guiderail::{DecidedVia, DurableError, RunErrorKind, RunId};
use tokio::sync::Notify;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub ticket: String,
    /// `State@step` for every handler run that was checkpointed.
    pub log: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Refund {
    pub order_id: u64,
    pub amount_cents: u64,
}

/// A refund flow with a gate, a bounded reply loop and two wait states.
#[guiderail::machine(context = Job, max_steps = 30)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Flow {
    #[initial]
    #[to(Decide)]
    Intake,
    /// The model picks a refund or a reply.
    #[gate]
    #[to(IssueRefund, Reply)]
    Decide,
    #[to(Approve)]
    IssueRefund(Refund),
    #[max_visits(3)]
    #[to(Decide, Handoff, Done)]
    Reply { draft: String },
    /// A human approves the refund.
    #[wait]
    #[to(Done, Reply)]
    Approve,
    /// A human takes over.
    #[wait]
    #[to(Done)]
    Handoff,
    #[terminal]
    Done,
}

/// Handlers that can hang once in a named state (the "crash" point: the
/// test aborts the run's task there), and remember every handler call with
/// its idempotency key.
#[derive(Default)]
struct Worker {
    hang_in: Mutex<Option<&'static str>>,
    reached: Notify,
    fail_in: Option<&'static str>,
    calls: Mutex<Vec<String>>,
    /// How often the payment effect really ran.
    payments: AtomicU32,
}

impl Worker {
    fn hanging_in(state: &'static str) -> Self {
        Worker {
            hang_in: Mutex::new(Some(state)),
            ..Worker::default()
        }
    }

    async fn enter(&self, cx: &mut Cx<'_, Flow>) -> HandlerResult<()> {
        let state = cx.state().name;
        self.calls
            .lock()
            .unwrap()
            .push(format!("{state} {}", cx.idempotency_key()));
        let entry = format!("{state}@{}", cx.step());
        cx.context_mut().log.push(entry);
        if self.fail_in == Some(state) {
            return Err(HandlerError::msg(format!("{state} broke")));
        }
        let hang = {
            let mut h = self.hang_in.lock().unwrap();
            if *h == Some(state) { h.take() } else { None }
        };
        if hang.is_some() {
            self.reached.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[guiderail::handlers]
impl flow::Handlers for Worker {
    async fn intake(&self, cx: &mut Cx<'_, Flow>) -> HandlerResult<flow::IntakeNext> {
        self.enter(cx).await?;
        Ok(flow::IntakeNext::Decide)
    }

    async fn decide(&self, cx: &mut Cx<'_, Flow>) -> HandlerResult<Decision<flow::DecideNext>> {
        self.enter(cx).await?;
        let prompt = format!("Ticket: {}", cx.context().ticket);
        Ok(cx.decide(prompt).await?)
    }

    async fn issue_refund(
        &self,
        cx: &mut Cx<'_, Flow>,
        refund: Refund,
    ) -> HandlerResult<flow::IssueRefundNext> {
        // The payment: journaled, so a crash after it does not pay twice.
        let receipt: String = cx
            .effect("pay", || async {
                let n = self.payments.fetch_add(1, Ordering::SeqCst) + 1;
                Ok::<_, HandlerError>(format!("receipt-{n}"))
            })
            .await?;
        self.enter(cx).await?;
        cx.context_mut()
            .log
            .push(format!("refunded {} {receipt}", refund.amount_cents));
        Ok(flow::IssueRefundNext::Approve)
    }

    async fn reply(&self, cx: &mut Cx<'_, Flow>, draft: String) -> HandlerResult<flow::ReplyNext> {
        self.enter(cx).await?;
        Ok(if draft == "handoff" {
            flow::ReplyNext::Handoff
        } else {
            flow::ReplyNext::Done
        })
    }
}

fn refund_model() -> Arc<ScriptedModel> {
    Arc::new(
        ScriptedModel::new().then(flow::DecideNext::IssueRefund(Refund {
            order_id: 7,
            amount_cents: 2500,
        })),
    )
}

fn runner(store: &Arc<dyn Store>, model: &Arc<ScriptedModel>) -> Runner {
    Runner::builder()
        .shared_model(model.clone())
        .shared_store(store.clone())
        .build()
}

fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

fn job() -> Job {
    Job {
        ticket: "broken parcel".into(),
        log: Vec::new(),
    }
}

/// Starts a durable run on its own task and aborts the task once the
/// worker hangs: the process "crashed" inside that handler.
async fn crash_in(runner: &Runner, worker: &Arc<Worker>, id: RunId) {
    let task = tokio::spawn({
        let (runner, worker) = (runner.clone(), worker.clone());
        async move {
            runner
                .start_durable_with_id(id, &*worker, Flow::start(), job())
                .await
        }
    });
    worker.reached.notified().await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
}

fn statuses(cps: &[Checkpoint]) -> Vec<(u64, &str, RunStatus)> {
    cps.iter()
        .map(|c| (c.seq, &*c.state_name, c.status))
        .collect()
}

#[tokio::test]
async fn every_transition_is_one_checkpoint() {
    let store = memory();
    let model = refund_model();
    let runner = runner(&store, &model);
    let worker = Worker::default();
    let ended = runner
        .start_durable(&worker, Flow::start(), job())
        .await
        .unwrap();
    let waiting = ended.waiting().expect("waits for approval");
    let id = waiting.run_id();
    let cps = store.checkpoints(id).await.unwrap();
    use RunStatus::*;
    assert_eq!(
        statuses(&cps),
        [
            (0, "Intake", Running),
            (1, "Decide", Running),
            (2, "IssueRefund", Running),
            (3, "Approve", Running),
            (4, "Approve", Waiting),
        ]
    );
    let vias: Vec<_> = cps.iter().map(|c| c.via).collect();
    use DecidedVia::*;
    assert_eq!(vias, [None, Some(Code), Some(Gate), Some(Code), None]);
    // The gate's checkpoint carries the decision, with the conversation.
    let decision = cps[2].decision.as_ref().expect("decision recorded");
    assert_eq!(
        (decision.gate.as_str(), decision.chosen.as_str()),
        ("Decide", "IssueRefund")
    );
    assert!(!decision.messages.is_empty());
    assert_eq!(
        cps[2].state,
        serde_json::json!({"IssueRefund": {"order_id": 7, "amount_cents": 2500}})
    );
    assert!(
        cps.iter()
            .all(|c| c.machine == "Flow" && c.fingerprint == Flow::graph().fingerprint)
    );
    assert_eq!(cps[4].spent.steps, 4);
    assert_eq!(cps[4].spent.decisions, 1);
    assert_eq!(cps[4].path, ["Intake", "Decide", "IssueRefund", "Approve"]);
    assert_eq!(
        serde_json::from_value::<Job>(cps[4].context.clone())
            .unwrap()
            .log,
        [
            "Intake@1",
            "Decide@2",
            "IssueRefund@3",
            "refunded 2500 receipt-1"
        ]
    );

    // Another runner (another process, in effect) delivers the signal.
    let other = Runner::builder().shared_store(store.clone()).build();
    let outcome = other
        .signal_run(&worker, id, flow::ApproveNext::Done)
        .await
        .unwrap()
        .finished()
        .expect("finished");
    assert_eq!(outcome.terminal, Flow::Done);
    assert_eq!(
        outcome.path,
        ["Intake", "Decide", "IssueRefund", "Approve", "Done"]
    );
    assert_eq!((outcome.steps, outcome.decisions), (4, 1));
    let last = store.latest(id).await.unwrap();
    assert_eq!(
        (last.seq, last.status, last.via),
        (5, Finished, Some(Signal))
    );
    // Resuming a finished run gives the same outcome and writes nothing.
    let again = other
        .resume::<Flow, _>(&worker, id)
        .await
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(
        (again.terminal, again.context),
        (outcome.terminal, outcome.context)
    );
    assert_eq!(store.latest(id).await.unwrap().seq, 5);
}

#[tokio::test]
async fn resume_after_a_crash_reruns_the_handler_but_not_the_recorded_decision() {
    let store = memory();
    let model = refund_model();
    let runner = runner(&store, &model);
    let worker = Arc::new(Worker::hanging_in("IssueRefund"));
    let id = RunId::new();
    crash_in(&runner, &worker, id).await;
    // The decision was checkpointed with its move; the crashed handler's
    // changes to the context were not.
    let latest = store.latest(id).await.unwrap();
    assert_eq!(
        (latest.seq, &*latest.state_name, latest.status),
        (2, "IssueRefund", RunStatus::Running)
    );
    assert_eq!(model.requests().len(), 1);

    // A new runner resumes (the model has no answer left: asking it again
    // would fail the run).
    let resumed = runner.resume::<Flow, _>(&*worker, id).await.unwrap();
    let waiting = resumed.waiting().expect("waits for approval");
    assert_eq!(
        model.requests().len(),
        1,
        "the recorded decision was asked again"
    );
    assert_eq!(
        waiting.context().log,
        [
            "Intake@1",
            "Decide@2",
            "IssueRefund@3",
            "refunded 2500 receipt-1"
        ]
    );
    // The payment was journaled before the crash: it ran once.
    assert_eq!(worker.payments.load(Ordering::SeqCst), 1);
    // The handler ran twice, with the same idempotency key both times.
    let calls = worker.calls();
    let key = format!("{id}-3");
    assert_eq!(
        calls,
        [
            format!("Intake {id}-1"),
            format!("Decide {id}-2"),
            format!("IssueRefund {key}"),
            format!("IssueRefund {key}"),
        ]
    );
    let seqs: Vec<u64> = store
        .checkpoints(id)
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn a_crash_before_the_decision_was_recorded_asks_again() {
    let store = memory();
    // Two answers: the crash happens inside the gate's handler, before its
    // decision was checkpointed, so the resumed run asks again.
    let model = Arc::new(
        ScriptedModel::new()
            .then(flow::DecideNext::Reply {
                draft: "handoff".into(),
            })
            .then(flow::DecideNext::Reply {
                draft: "handoff".into(),
            }),
    );
    let runner = runner(&store, &model);
    let worker = Arc::new(Worker::hanging_in("Decide"));
    let id = RunId::new();
    crash_in(&runner, &worker, id).await;
    assert_eq!(model.requests().len(), 0);
    let ended = runner.resume::<Flow, _>(&*worker, id).await.unwrap();
    assert_eq!(ended.waiting().unwrap().state_name(), "Handoff");
    assert_eq!(model.requests().len(), 1);
}

#[tokio::test]
async fn signals_that_do_not_fit_change_nothing() {
    let store = memory();
    let model = refund_model();
    let runner = runner(&store, &model);
    let worker = Worker::default();
    let id = runner
        .start_durable(&worker, Flow::start(), job())
        .await
        .unwrap()
        .waiting()
        .unwrap()
        .run_id();
    let before = store.checkpoints(id).await.unwrap();

    // The run waits in `Approve`; a `Handoff` signal is for another state.
    let err = runner
        .signal_run(&worker, id, flow::HandoffNext::Done)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DurableError::WrongState { run_id, expected: "Handoff", actual } if *run_id == id && actual == "Approve"),
        "{err:?}"
    );
    assert!(err.to_string().contains(&id.to_string()));
    assert_eq!(store.checkpoints(id).await.unwrap(), before);

    // An unknown run.
    let unknown = RunId::new();
    let err = runner
        .signal_run(&worker, unknown, flow::ApproveNext::Done)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DurableError::Store(StoreError::NotFound { run_id }) if run_id == unknown)
    );

    // The right signal, then the same signal again: the run is no longer
    // waiting.
    runner
        .signal_run(&worker, id, flow::ApproveNext::Done)
        .await
        .unwrap();
    let after = store.checkpoints(id).await.unwrap();
    let err = runner
        .signal_run(&worker, id, flow::ApproveNext::Done)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DurableError::NotWaiting { status: RunStatus::Finished, state, .. } if state == "Done"),
        "{err:?}"
    );
    assert_eq!(store.checkpoints(id).await.unwrap(), after);
}

#[tokio::test]
async fn a_failed_run_is_stored_failed_and_stays_failed() {
    let store = memory();
    let model = refund_model();
    let runner = runner(&store, &model);
    let worker = Worker {
        fail_in: Some("IssueRefund"),
        ..Worker::default()
    };
    let err = runner
        .start_durable(&worker, Flow::start(), job())
        .await
        .unwrap_err();
    let DurableError::Run(run_error) = &err else {
        panic!("{err:?}")
    };
    assert!(matches!(run_error.kind, RunErrorKind::Handler(_)));
    let id = run_error.run_id;
    let last = store.latest(id).await.unwrap();
    assert_eq!((last.seq, last.status), (3, RunStatus::Failed));
    assert_eq!(last.state_name, "IssueRefund");
    assert_eq!(
        last.error.as_deref(),
        Some("handler failed: IssueRefund broke")
    );
    let err = runner.resume::<Flow, _>(&worker, id).await.unwrap_err();
    assert!(
        matches!(&err, DurableError::Failed { state, error, .. } if state == "IssueRefund" && error.contains("broke")),
        "{err:?}"
    );
    assert_eq!(store.latest(id).await.unwrap(), last);
}

/// Stores a copy of run `id`'s latest checkpoint as a new run, changed by
/// `edit`, and returns the new run's id.
async fn stored_copy(
    store: &Arc<dyn Store>,
    id: RunId,
    edit: impl FnOnce(&mut Checkpoint),
) -> RunId {
    let mut cp = store.latest(id).await.unwrap();
    cp.run_id = RunId::new();
    cp.seq = 0;
    edit(&mut cp);
    store.create(&cp).await.unwrap();
    cp.run_id
}

#[tokio::test]
async fn a_changed_graph_is_refused_unless_allowed() {
    let store = memory();
    let model = refund_model();
    let worker = Arc::new(Worker::hanging_in("IssueRefund"));
    let id = RunId::new();
    crash_in(&runner(&store, &model), &worker, id).await;
    let old = stored_copy(&store, id, |c| c.fingerprint ^= 1).await;

    let err = runner(&store, &model)
        .resume::<Flow, _>(&*worker, old)
        .await
        .unwrap_err();
    let DurableError::GraphChanged {
        run_id,
        stored,
        current,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (*run_id, *current, *stored),
        (
            old,
            Flow::graph().fingerprint,
            Flow::graph().fingerprint ^ 1
        )
    );
    assert!(err.to_string().contains("allow_graph_change"), "{err}");
    assert_eq!(store.checkpoints(old).await.unwrap().len(), 1);

    let allowing = Runner::builder()
        .shared_model(model.clone())
        .shared_store(store.clone())
        .allow_graph_change(true)
        .build();
    let ended = allowing.resume::<Flow, _>(&*worker, old).await.unwrap();
    assert_eq!(ended.waiting().unwrap().state_name(), "Approve");
    // Later checkpoints carry the new fingerprint.
    assert_eq!(
        store.latest(old).await.unwrap().fingerprint,
        Flow::graph().fingerprint
    );

    // A state the new graph does not have is refused even when allowed.
    let gone = stored_copy(&store, id, |c| {
        c.fingerprint ^= 1;
        c.state_name = "Vanished".into();
        c.state = serde_json::json!("Vanished");
    })
    .await;
    let err = allowing
        .resume::<Flow, _>(&*worker, gone)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DurableError::UnknownState { state, .. } if state == "Vanished"),
        "{err:?}"
    );
}

#[tokio::test]
async fn stored_values_that_no_longer_deserialise_are_typed_errors() {
    let store = memory();
    let model = refund_model();
    let worker = Arc::new(Worker::hanging_in("IssueRefund"));
    let id = RunId::new();
    crash_in(&runner(&store, &model), &worker, id).await;
    let runner = runner(&store, &model);

    let bad_state = stored_copy(&store, id, |c| {
        c.state = serde_json::json!({"IssueRefund": {"order_id": "seven"}});
    })
    .await;
    let err = runner
        .resume::<Flow, _>(&*worker, bad_state)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DurableError::Decode { run_id, seq: 0, what: "state", .. } if *run_id == bad_state),
        "{err:?}"
    );
    assert!(err.to_string().contains(&bad_state.to_string()), "{err}");

    let bad_context = stored_copy(&store, id, |c| c.context = serde_json::json!([1, 2])).await;
    let err = runner
        .resume::<Flow, _>(&*worker, bad_context)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            DurableError::Decode {
                what: "context",
                ..
            }
        ),
        "{err:?}"
    );

    let other_machine = stored_copy(&store, id, |c| c.machine = "Billing".into()).await;
    let err = runner
        .resume::<Flow, _>(&*worker, other_machine)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DurableError::WrongMachine { stored, .. } if stored == "Billing"),
        "{err:?}"
    );

    for run in [bad_state, bad_context, other_machine] {
        assert_eq!(
            store.checkpoints(run).await.unwrap().len(),
            1,
            "nothing was written"
        );
    }
    let err = runner
        .resume::<Flow, _>(&*worker, RunId::new())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        DurableError::Store(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn durable_calls_without_a_store_say_how_to_configure_one() {
    let err = Runner::new()
        .start_durable(&Worker::default(), Flow::start(), job())
        .await
        .unwrap_err();
    assert!(matches!(err, DurableError::NoStore));
    assert!(
        err.to_string().contains("Runner::builder().store("),
        "{err}"
    );
}

#[tokio::test]
async fn a_start_retried_with_the_same_id_creates_no_second_run() {
    let store = memory();
    let model = refund_model();
    let runner = runner(&store, &model);
    let worker = Worker::default();
    let id = RunId::new();
    runner
        .start_durable_with_id(id, &worker, Flow::start(), job())
        .await
        .unwrap();
    let err = runner
        .start_durable_with_id(id, &worker, Flow::start(), job())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DurableError::Store(StoreError::AlreadyExists { run_id }) if run_id == id)
    );
    assert_eq!(store.runs(None).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_store_resumes_across_store_instances() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    let model = refund_model();
    let worker = Arc::new(Worker::hanging_in("IssueRefund"));
    let id = RunId::new();
    {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
        crash_in(&runner(&store, &model), &worker, id).await;
    }
    // A new store on the same file: what a restarted process sees.
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let runner = runner(&store, &model);
    let waiting = runner.resume::<Flow, _>(&*worker, id).await.unwrap();
    assert_eq!(waiting.waiting().unwrap().state_name(), "Approve");
    assert_eq!(
        store.runs(Some(RunStatus::Waiting)).await.unwrap()[0].run_id,
        id
    );
    drop(runner);
    let store2: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let outcome = Runner::builder()
        .shared_store(store2.clone())
        .build()
        .signal_run(&*worker, id, flow::ApproveNext::Done)
        .await
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(outcome.terminal, Flow::Done);
    assert_eq!(model.requests().len(), 1);
    let seqs: Vec<u64> = store
        .checkpoints(id)
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4, 5]);
}

/// Visit limits and step counts carry over a resume: the reply loop is
/// bounded by its `max_visits` however often the run was interrupted.
#[tokio::test]
async fn bounds_count_across_resumes() {
    let store = memory();
    let model = Arc::new((0..5).fold(ScriptedModel::new(), |m, _| {
        m.then(flow::DecideNext::Reply {
            draft: "again".into(),
        })
    }));
    struct Looper(Worker);
    #[guiderail::handlers]
    impl flow::Handlers for Looper {
        async fn intake(&self, cx: &mut Cx<'_, Flow>) -> HandlerResult<flow::IntakeNext> {
            flow::Handlers::intake(&self.0, cx).await
        }
        async fn decide(&self, cx: &mut Cx<'_, Flow>) -> HandlerResult<Decision<flow::DecideNext>> {
            flow::Handlers::decide(&self.0, cx).await
        }
        async fn issue_refund(
            &self,
            cx: &mut Cx<'_, Flow>,
            r: Refund,
        ) -> HandlerResult<flow::IssueRefundNext> {
            flow::Handlers::issue_refund(&self.0, cx, r).await
        }
        async fn reply(
            &self,
            cx: &mut Cx<'_, Flow>,
            _draft: String,
        ) -> HandlerResult<flow::ReplyNext> {
            if cx.visits() == 2 && *self.0.hang_in.lock().unwrap() == Some("Reply") {
                self.0.enter(cx).await?;
            }
            Ok(flow::ReplyNext::Decide)
        }
    }
    let looper = Arc::new(Looper(Worker::hanging_in("Reply")));
    let runner = runner(&store, &model);
    let id = RunId::new();
    // Crash in the second visit of `Reply`.
    let task = tokio::spawn({
        let (runner, looper) = (runner.clone(), looper.clone());
        async move {
            runner
                .start_durable_with_id(id, &*looper, Flow::start(), job())
                .await
        }
    });
    looper.0.reached.notified().await;
    task.abort();
    let _ = task.await;
    assert_eq!(
        store.latest(id).await.unwrap().spent.visits.get("Reply"),
        Some(&1)
    );
    let err = runner.resume::<Flow, _>(&*looper, id).await.unwrap_err();
    let DurableError::Run(e) = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(&e.kind, RunErrorKind::Bound(BoundHit::Visits { state, limit: 3 }) if state == "Reply"),
        "{err:?}"
    );
    assert_eq!(store.latest(id).await.unwrap().status, RunStatus::Failed);
}

#[tokio::test]
async fn effects_of_in_memory_runs_run_every_time() {
    let model = Arc::new(
        ScriptedModel::new()
            .then(flow::DecideNext::IssueRefund(Refund {
                order_id: 1,
                amount_cents: 1,
            }))
            .then(flow::DecideNext::IssueRefund(Refund {
                order_id: 1,
                amount_cents: 1,
            })),
    );
    // A store is configured, but `start` runs are never stored.
    let runner = runner(&memory(), &model);
    let worker = Worker::default();
    for n in 1..=2 {
        let waiting = runner
            .start(&worker, Flow::start(), job())
            .await
            .unwrap()
            .waiting()
            .unwrap();
        assert_eq!(
            waiting.context().log.last().unwrap(),
            &format!("refunded 1 receipt-{n}")
        );
    }
    assert_eq!(worker.payments.load(Ordering::SeqCst), 2);
}

/// A durable run tells of each step in order, its move only once the
/// checkpoint is written, and its `Entered` events carry the payload as the
/// in-memory loop's do.
#[tokio::test]
async fn a_durable_runs_events_follow_its_checkpoints() {
    let store = memory();
    let model = refund_model();
    let log = Arc::new(guiderail::EventLog::new());
    let runner = Runner::builder()
        .shared_model(model.clone())
        .shared_store(store.clone())
        .subscriber(log.clone())
        .build();
    let ended = runner
        .start_durable(&Worker::default(), Flow::start(), job())
        .await
        .unwrap();
    assert!(ended.waiting().is_some(), "waits for approval");
    use guiderail::EventKind as K;
    let seen: Vec<String> = log
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            K::Entered {
                state,
                step,
                payload,
            } => Some(format!(
                "Entered {state} {step} {}",
                payload.as_ref().map_or("-".into(), |p| p.to_string())
            )),
            K::CheckpointWritten { checkpoint } => Some(format!("Checkpoint {}", checkpoint.seq)),
            K::Decision(_) => Some("Decision".into()),
            K::HandlerFinished { state, .. } => Some(format!("Finished {state}")),
            K::Transition { from, to, via, .. } => Some(format!("{from} -> {to} {via:?}")),
            K::Waiting { state } => Some(format!("Waiting {state}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        seen,
        [
            "Checkpoint 0",
            "Entered Intake 1 -",
            "Checkpoint 1",
            "Finished Intake",
            "Intake -> Decide Code",
            "Entered Decide 2 -",
            "Checkpoint 2",
            "Decision",
            "Finished Decide",
            "Decide -> IssueRefund Gate",
            r#"Entered IssueRefund 3 {"amount_cents":2500,"order_id":7}"#,
            "Checkpoint 3",
            "Finished IssueRefund",
            "IssueRefund -> Approve Code",
            "Entered Approve 4 -",
            "Checkpoint 4",
            "Waiting Approve",
        ]
    );
}

/// A run that fails at a gate keeps what the gate's calls spent: in its
/// error and in the failed checkpoint, so a budget counts them.
#[tokio::test]
async fn a_gate_that_fails_leaves_its_spending_in_the_error_and_the_store() {
    let store = memory();
    let per_call = guiderail::Usage {
        input_tokens: 100,
        output_tokens: 7,
        cost_micros: 30,
    };
    // Three answers that name no move: the first try and two repairs.
    let model = Arc::new(
        ScriptedModel::new()
            .with_usage(per_call)
            .then_raw("no idea")
            .then_raw("still no idea")
            .then_raw("none"),
    );
    let runner = runner(&store, &model);
    let err = runner
        .start_durable(&Worker::default(), Flow::start(), job())
        .await
        .expect_err("the gate fails");
    let DurableError::Run(e) = &err else {
        panic!("{err:?}")
    };
    assert!(matches!(&e.kind, RunErrorKind::Gate(_)), "{:?}", e.kind);
    assert_eq!((e.state, model.requests().len()), ("Decide", 3));
    let spent = guiderail::Usage {
        input_tokens: 300,
        output_tokens: 21,
        cost_micros: 90,
    };
    assert_eq!(e.usage, spent);
    let latest = store.latest(e.run_id).await.unwrap();
    assert_eq!(latest.status, RunStatus::Failed);
    assert_eq!(latest.spent.usage, spent);
}
