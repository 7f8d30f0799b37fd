//! Workers sharing runs through PostgreSQL leases, in one process against
//! a real server (`GUIDERAIL_TEST_POSTGRES`; without it these tests say
//! they were not run, and fail under `CI=true`): runs submitted from
//! anywhere run exactly once, a signal requeues a waiting run, a stale
//! lease cannot write, a dead worker's runs are taken over, a worker cut
//! off from the database stops and its runs are taken over, and shutdown
//! hands runs back at once.
#![cfg(feature = "postgres")]
#![allow(missing_docs)]

#[path = "../runtime/tests/common/pg.rs"]
mod pg;
mod common {
    pub mod triage;
}

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::triage::{Agent, Ticket, Triage, assert_escalated_once, escalating, triage};
use guiderail::store::{PgStore, RunStatus, Store, StoreError};
use guiderail::{DurableError, Ended, RunId, Runner, Worker};
use tokio::net::{TcpListener, TcpStream};

const POLL: Duration = Duration::from_millis(20);

fn ticket(i: usize) -> Ticket {
    Ticket {
        text: format!("ticket {i}"),
        log: Vec::new(),
    }
}

/// A runner that only submits and reads (no model).
fn client(store: &PgStore) -> Runner {
    Runner::builder().store(store.clone()).build()
}

fn worker(store: &PgStore, agent: Agent, answers: usize) -> Worker {
    let runner = Runner::builder().model(escalating(answers)).build();
    Worker::new(runner, store.clone())
        .serve::<Triage, Agent>(Arc::new(agent))
        .poll_interval(Duration::from_millis(100))
}

async fn finished(runner: &Runner, run_id: RunId) {
    let ended = tokio::time::timeout(
        Duration::from_secs(30),
        runner.wait_for::<Triage>(run_id, POLL),
    )
    .await
    .unwrap_or_else(|_| panic!("run {run_id} did not finish in 30 s"))
    .unwrap();
    assert!(
        matches!(ended, Ended::Finished(_)),
        "run {run_id}: {ended:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_runs_finish_exactly_once_across_workers() {
    let Some((store, _schema)) = pg::store("submitted_runs_finish_exactly_once").await else {
        return;
    };
    let a = worker(&store, Agent::with_delay(5), 100)
        .concurrency(4)
        .start();
    let b = worker(&store, Agent::with_delay(5), 100)
        .concurrency(4)
        .start();
    let runner = client(&store);
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(runner.submit(Triage::start(), ticket(i)).await.unwrap());
    }
    for &id in &ids {
        finished(&runner, id).await;
        assert_escalated_once(&store, id).await;
    }
    let (a, b) = (a.shutdown().await, b.shutdown().await);
    assert_eq!(a.finished + b.finished, 40, "{a:?} {b:?}");
    assert_eq!(
        a.claimed + b.claimed,
        40,
        "no run claimed twice: {a:?} {b:?}"
    );
    assert_eq!(a.fenced + b.fenced + a.lost + b.lost, 0);
    assert!(
        store
            .runs(Some(RunStatus::Running))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_requeues_a_waiting_run() {
    let Some((store, _schema)) = pg::store("a_signal_requeues_a_waiting_run").await else {
        return;
    };
    let model =
        guiderail::ScriptedModel::new().then(triage::ClassifyNext::IssueRefund { order_id: 7 });
    let w = Worker::new(Runner::builder().model(model).build(), store.clone())
        .serve::<Triage, Agent>(Arc::new(Agent::default()))
        .start();
    let runner = client(&store);
    let id = runner.submit(Triage::start(), ticket(1)).await.unwrap();
    let ended = runner.wait_for::<Triage>(id, POLL).await.unwrap();
    let Ended::Waiting(waiting) = ended else {
        panic!("expected the run to wait for approval: {ended:?}");
    };
    assert_eq!(waiting.state_name(), "Approve");
    let seq = store.latest(id).await.unwrap().seq;
    let approve = triage::ApproveNext::Reply {
        draft: "refunded".into(),
    };
    runner.deliver::<Triage, _>(id, approve).await.unwrap();
    let ended = runner.wait_for::<Triage>(id, POLL).await.unwrap();
    let Ended::Finished(outcome) = ended else {
        panic!("expected the signalled run to finish: {ended:?}");
    };
    assert_eq!(outcome.terminal, Triage::Done);
    // The signal's checkpoint, then the worker ran `Reply` to `Done`.
    let latest = store.latest(id).await.unwrap();
    assert_eq!(latest.seq, seq + 2);
    assert_eq!(latest.path.last().map(|s| &**s), Some("Done"));
    let log: Ticket = serde_json::from_value(latest.context).unwrap();
    assert_eq!(log.log.last().map(|s| &s[..]), Some("Reply@5"));
    let again = runner
        .deliver::<Triage, _>(id, triage::ApproveNext::Done)
        .await;
    assert!(
        matches!(again, Err(DurableError::NotWaiting { .. })),
        "{again:?}"
    );
    let stats = w.shutdown().await;
    assert_eq!((stats.waiting, stats.finished), (1, 1), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lease_cannot_write() {
    let Some((store, _schema)) = pg::store("a_stale_lease_cannot_write").await else {
        return;
    };
    let id = client(&store)
        .submit(Triage::start(), ticket(1))
        .await
        .unwrap();
    let ttl = Duration::from_millis(300);
    let claim = || store.claim(&["Triage"], "test", 1, ttl, &[]);
    let (first, _) = claim().await.unwrap().pop().expect("the run is claimable");
    assert!(
        claim().await.unwrap().is_empty(),
        "a live lease is not claimed twice"
    );
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let (second, _) = claim()
        .await
        .unwrap()
        .pop()
        .expect("an expired lease is claimable");
    assert_ne!(first.token, second.token);

    let latest = store.latest(id).await.unwrap();
    let mut next = latest.clone();
    next.seq += 1;
    next.at_ms += 1;
    let stale = store.fenced(first).append(&next).await.unwrap_err();
    assert_eq!(
        stale,
        StoreError::Fenced {
            run_id: id,
            token: Some(first.token)
        }
    );
    assert!(stale.to_string().contains("taken over"), "{stale}");
    let unleased = store.append(&next).await.unwrap_err();
    assert_eq!(
        unleased,
        StoreError::Fenced {
            run_id: id,
            token: None
        }
    );
    assert_eq!(
        store.latest(id).await.unwrap(),
        latest,
        "refused writes change nothing"
    );
    assert!(store.renew(&[first.token], ttl).await.unwrap().is_empty());
    store.fenced(second).append(&next).await.unwrap();
    assert_eq!(store.latest(id).await.unwrap().seq, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_runs_are_taken_over() {
    let Some((store, _schema)) = pg::store("a_dead_workers_runs_are_taken_over").await else {
        return;
    };
    let ttl = Duration::from_millis(800);
    // The first worker hangs in `Escalate`, then dies there.
    let hanging = Agent::hanging_in("Escalate", Duration::from_secs(3600));
    let dead = worker(&store, hanging, 10).lease_ttl(ttl).start();
    let runner = client(&store);
    let id = runner.submit(Triage::start(), ticket(1)).await.unwrap();
    while store.latest(id).await.unwrap().state_name != "Escalate" {
        tokio::time::sleep(POLL).await;
    }
    dead.abort();
    let taker = worker(&store, Agent::default(), 10).lease_ttl(ttl).start();
    finished(&runner, id).await;
    assert_escalated_once(&store, id).await;
    let stats = taker.shutdown().await;
    assert_eq!((stats.claimed, stats.finished), (1, 1), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_runs_back_at_once() {
    let Some((store, _schema)) = pg::store("shutdown_hands_runs_back_at_once").await else {
        return;
    };
    // Leases long enough that only a release lets another worker in.
    let ttl = Duration::from_secs(60);
    let slow = Agent::hanging_in("Escalate", Duration::from_secs(3600));
    let first = worker(&store, slow, 10)
        .lease_ttl(ttl)
        .shutdown_grace(Duration::from_millis(100))
        .start();
    let runner = client(&store);
    let id = runner.submit(Triage::start(), ticket(1)).await.unwrap();
    while store.latest(id).await.unwrap().state_name != "Escalate" {
        tokio::time::sleep(POLL).await;
    }
    let stats = first.shutdown().await;
    assert_eq!(stats.released, 1, "{stats:?}");
    let second = worker(&store, Agent::default(), 10).lease_ttl(ttl).start();
    finished(&runner, id).await;
    assert_escalated_once(&store, id).await;
    second.shutdown().await;
}

/// A TCP proxy to the database that can be cut: every connection through
/// it is closed and new ones are refused, as in a network partition.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    links: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn to(target: (String, u16)) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let links = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, l) = (cut.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                l.lock().unwrap().push(link.abort_handle());
            }
        });
        Proxy { port, cut, links }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cut_off_from_the_database_stops_and_its_runs_are_taken_over() {
    let Some((store, schema)) = pg::store("a_worker_cut_off_from_the_database").await else {
        return;
    };
    let config: tokio_postgres::Config = schema.url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        other => panic!("the partition test needs a TCP server URL, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let proxy = Proxy::to((host, port)).await;
    let user = config.get_user().unwrap_or("postgres");
    let db = config.get_dbname().unwrap_or(user);
    let via_proxy = format!("postgres://{user}@127.0.0.1:{}/{db}", proxy.port);
    let app = format!("{}_cut", schema.name);
    let cut_off = PgStore::connect_with(
        guiderail::store::PgOptions::new(via_proxy)
            .schema(&schema.name)
            .application_name(&app),
    )
    .await
    .unwrap();

    let ttl = Duration::from_millis(900);
    let slow = Agent::hanging_in("Escalate", Duration::from_secs(2));
    let doomed = worker(&cut_off, slow, 10)
        .lease_ttl(ttl)
        .concurrency(4)
        .start();
    let runner = client(&store);
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(runner.submit(Triage::start(), ticket(i)).await.unwrap());
    }
    for &id in &ids {
        while store.latest(id).await.unwrap().state_name != "Escalate" {
            tokio::time::sleep(POLL).await;
        }
    }
    // The partition: the worker's sessions are terminated on the server
    // and it cannot connect again.
    proxy.cut();
    let (admin, conn) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap();

    let taker = worker(&store, Agent::default(), 10).lease_ttl(ttl).start();
    for &id in &ids {
        finished(&runner, id).await;
        assert_escalated_once(&store, id).await;
    }
    // The cut-off worker noticed it could not renew and dropped its runs
    // instead of advancing them.
    let cut_stats = doomed.stats();
    assert_eq!(cut_stats.lost, 4, "{cut_stats:?}");
    assert_eq!(cut_stats.finished, 0, "{cut_stats:?}");
    let taken = taker.shutdown().await;
    assert_eq!(taken.finished, 4, "{taken:?}");
    doomed.abort();
}
