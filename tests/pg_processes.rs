//! Several worker processes sharing runs through PostgreSQL
//! (`GUIDERAIL_TEST_POSTGRES`; without it this test says it was not run,
//! and fails under `CI=true`).
//!
//! Four worker processes execute 1,000 runs of the support-triage machine
//! with a scripted model and a random pause in every handler. Part way,
//! one worker is killed with SIGKILL and a fifth is started, and another is
//! frozen with SIGSTOP for longer than its leases last and then let go, so
//! it wakes up holding leases others have taken over. Every run must
//! finish exactly once: checkpoints numbered without a gap, the expected
//! path, every handler's transition applied once. The writes refused for a
//! stale lease are counted and reported.
//!
//! The test binary is its own worker: run with `--worker URL SCHEMA NAME`,
//! it serves runs until its standard input closes, then prints its figures.
//! (`harness = false`: the binary's `main` is the test.)
#![cfg(feature = "postgres")]
#![allow(missing_docs)]

#[path = "../runtime/tests/common/pg.rs"]
mod pg;
mod common {
    pub mod triage;
}

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::triage::{Agent, Ticket, Triage, assert_escalated_once, escalating};
use guiderail::store::{PgOptions, PgStore, RunStatus, Store};
use guiderail::{Runner, Worker};

const RUNS: usize = 1_000;
const LEASE: Duration = Duration::from_millis(1_500);
const NAME: &str = "pg_processes::four_workers_one_killed_one_frozen";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Some(i) = args.iter().position(|a| a == "--worker") {
        let [url, schema, name] = [&args[i + 1], &args[i + 2], &args[i + 3]];
        runtime.block_on(worker(url, schema, name));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("{NAME}: test");
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| NAME.contains(f.as_str())) {
        return;
    }
    let Some(url) = pg::url(NAME) else {
        return;
    };
    println!("running 1 test\ntest {NAME} ...");
    runtime.block_on(scenario(url));
    println!("test {NAME} ... ok");
}

/// A worker process: serves until standard input closes, then prints
/// `stats claimed=… finished=… fenced=… lost=…`.
async fn worker(url: &str, schema: &str, name: &str) {
    let store = PgStore::connect_with(
        PgOptions::new(url)
            .schema(schema)
            .max_connections(8)
            .migrate_on_connect(false),
    )
    .await
    .unwrap();
    let runner = Runner::builder().model(escalating(4 * RUNS)).build();
    let handle = Worker::new(runner, store)
        .serve::<Triage, Agent>(Arc::new(Agent::with_delay(40)))
        .name(name)
        .concurrency(8)
        .lease_ttl(LEASE)
        .poll_interval(Duration::from_millis(100))
        .start();
    tokio::task::spawn_blocking(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    })
    .await
    .unwrap();
    let s = handle.shutdown().await;
    println!(
        "stats claimed={} finished={} fenced={} lost={}",
        s.claimed, s.finished, s.fenced, s.lost
    );
}

struct Proc {
    name: String,
    child: Child,
}

fn spawn(url: &str, schema: &str, name: &str) -> Proc {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--worker", url, schema, name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    Proc {
        name: name.into(),
        child,
    }
}

/// Closes the worker's input and reads its figures.
fn finish(mut p: Proc) -> [u64; 4] {
    drop(p.child.stdin.take());
    let out = BufReader::new(p.child.stdout.take().unwrap());
    let line = out
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("stats "))
        .unwrap_or_else(|| panic!("worker {} printed no figures", p.name));
    assert!(
        p.child.wait().unwrap().success(),
        "worker {} failed",
        p.name
    );
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    let stats = [
        field("claimed"),
        field("finished"),
        field("fenced"),
        field("lost"),
    ];
    println!(
        "  {}: claimed {}, finished {}, stale writes refused {}, runs dropped {}",
        p.name, stats[0], stats[1], stats[2], stats[3]
    );
    stats
}

fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &p.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {}", p.name);
}

async fn finished(store: &PgStore) -> usize {
    store.runs(Some(RunStatus::Finished)).await.unwrap().len()
}

async fn wait_until(store: &PgStore, n: usize, limit: Duration) {
    let t = Instant::now();
    while finished(store).await < n {
        assert!(
            t.elapsed() < limit,
            "only {} of {n} runs finished after {limit:?}",
            finished(store).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scenario(url: String) {
    let schema = pg::Schema {
        url: url.clone(),
        name: pg::fresh_schema(),
    };
    let store = PgStore::connect_with(schema.options()).await.unwrap();
    let runner = Runner::builder().store(store.clone()).build();
    let mut ids = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let ticket = Ticket {
            text: format!("ticket {i}"),
            log: Vec::new(),
        };
        ids.push(runner.submit(Triage::start(), ticket).await.unwrap());
    }
    let started = Instant::now();
    let mut workers: Vec<Proc> = (0..4)
        .map(|i| spawn(&url, &schema.name, &format!("w{i}")))
        .collect();

    wait_until(&store, RUNS / 4, Duration::from_secs(120)).await;
    let killed = workers.remove(0);
    let mut killed = killed;
    killed.child.kill().unwrap(); // SIGKILL
    killed.child.wait().unwrap();
    println!(
        "  w0 killed with SIGKILL at {} finished runs",
        finished(&store).await
    );
    workers.push(spawn(&url, &schema.name, "w4"));

    wait_until(&store, RUNS / 2, Duration::from_secs(120)).await;
    let frozen = &workers[0];
    signal(frozen, "-STOP");
    tokio::time::sleep(LEASE * 2).await;
    signal(frozen, "-CONT");
    println!(
        "  {} frozen with SIGSTOP for {:?}, then continued",
        frozen.name,
        LEASE * 2
    );

    wait_until(&store, RUNS, Duration::from_secs(300)).await;
    let elapsed = started.elapsed();

    for &id in &ids {
        assert_escalated_once(&store, id).await;
    }
    assert_eq!(store.runs(None).await.unwrap().len(), RUNS);
    assert!(
        store
            .runs(Some(RunStatus::Failed))
            .await
            .unwrap()
            .is_empty()
    );

    let frozen_name = workers[0].name.clone();
    let (mut fenced, mut dropped, mut finished_here) = (0, 0, 0);
    for w in workers {
        let name = w.name.clone();
        let [_, done, refused, lost] = finish(w);
        fenced += refused;
        dropped += lost;
        finished_here += done;
        if name == frozen_name {
            assert!(
                refused + lost > 0,
                "the frozen worker woke up holding taken-over leases and must have noticed"
            );
        }
    }
    assert!(finished_here <= RUNS as u64);
    println!(
        "  {RUNS} runs finished exactly once in {elapsed:.1?}; stale-lease writes refused: {fenced}; \
         runs dropped on a lost lease before writing: {dropped}"
    );
    let _ = store.drop_schema().await;
    drop(schema);
}
