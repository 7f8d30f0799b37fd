#![allow(missing_docs)]
//! Durable runs on PostgreSQL with workers: transitions per second with 1,
//! 4 and 16 workers (each running 4 runs at a time) against a bare SQL
//! baseline that writes the same rows (a checkpoint row and the run's row,
//! one autocommit statement per transition, from as many connections as the
//! workers run runs), and claim latency: from a run's submission to its
//! first handler starting on an idle worker.
//!
//! Run with: `cargo bench --bench postgres --features postgres` against the
//! server in `GUIDERAIL_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); prints a Markdown table.
//! Works in a schema of its own and drops it afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use guiderail::prelude::*;
use guiderail::store::{PgOptions, PgStore, RunStatus, Store};
use guiderail::{RunId, Worker};
use tokio::sync::mpsc;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Work {
    text: String,
    n: u64,
    limit: u64,
}

/// Counts to `limit`, one transition per count.
#[guiderail::machine(context = Work, max_steps = 1_000_000)]
#[derive(Debug, Serialize, Deserialize)]
pub enum Ticker {
    #[initial]
    #[to(Tick)]
    Start,
    #[to(Tick, Done)]
    Tick,
    #[terminal]
    Done,
}

/// Tells the claim-latency probe when a run's first handler starts.
struct H {
    started: Option<mpsc::UnboundedSender<Instant>>,
}

#[guiderail::handlers]
impl ticker::Handlers for H {
    async fn start(&self, _cx: &mut Cx<'_, Ticker>) -> HandlerResult<ticker::StartNext> {
        if let Some(tx) = &self.started {
            let _ = tx.send(Instant::now());
        }
        Ok(ticker::StartNext::Tick)
    }
    async fn tick(&self, cx: &mut Cx<'_, Ticker>) -> HandlerResult<ticker::TickNext> {
        let w = cx.context_mut();
        w.n += 1;
        Ok(if w.n < w.limit {
            ticker::TickNext::Tick
        } else {
            ticker::TickNext::Done
        })
    }
}

fn work(limit: u64) -> Work {
    Work {
        text: "My parcel arrived broken and I would like my money back, please. ".repeat(3),
        n: 0,
        limit,
    }
}

const PER_WORKER: usize = 4;

async fn store(url: &str, schema: &str, connections: usize) -> PgStore {
    PgStore::connect_with(
        PgOptions::new(url)
            .schema(schema)
            .max_connections(connections),
    )
    .await
    .unwrap()
}

/// `runs` runs of `steps` transitions executed by `workers` workers;
/// returns checkpoints/s and the run ids.
async fn with_workers(
    url: &str,
    schema: &str,
    workers: usize,
    runs: usize,
    steps: u64,
) -> (f64, Vec<RunId>) {
    let client = store(url, schema, 4).await;
    let runner = Runner::builder().store(client.clone()).build();
    let mut ids = Vec::new();
    for _ in 0..runs {
        ids.push(runner.submit(Ticker::start(), work(steps)).await.unwrap());
    }
    let t = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..workers {
        let s = store(url, schema, PER_WORKER + 1).await;
        handles.push(
            Worker::new(Runner::new(), s)
                .serve::<Ticker, H>(Arc::new(H { started: None }))
                .concurrency(PER_WORKER)
                .poll_interval(Duration::from_millis(50))
                .start(),
        );
    }
    loop {
        let left = client.runs(Some(RunStatus::Running)).await.unwrap().len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = t.elapsed();
    for h in handles {
        h.shutdown().await;
    }
    let mut written = 0;
    for &id in &ids {
        written += client.latest(id).await.unwrap().seq; // checkpoints after the first
    }
    (written as f64 / elapsed.as_secs_f64(), ids)
}

/// The same rows written by bare SQL: for every checkpoint after the
/// first, one statement inserting its row and updating the run's row, from
/// `connections` connections at once.
async fn baseline(
    url: &str,
    schema: &str,
    connections: usize,
    bodies: Vec<(String, i64, String)>,
) -> f64 {
    let (admin, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute(&format!(
            "CREATE TABLE {schema}.raw_runs (run_id TEXT PRIMARY KEY, seq BIGINT NOT NULL, updated_ms BIGINT NOT NULL);
             CREATE TABLE {schema}.raw_checkpoints (run_id TEXT, seq BIGINT, body TEXT NOT NULL, PRIMARY KEY (run_id, seq));
             INSERT INTO {schema}.raw_runs SELECT DISTINCT run_id, 0, 0 FROM {schema}.checkpoints;"
        ))
        .await
        .unwrap();
    let n = bodies.len();
    let chunks: Vec<Vec<_>> = {
        let mut by_run: std::collections::BTreeMap<String, Vec<(String, i64, String)>> =
            Default::default();
        for b in bodies {
            by_run.entry(b.0.clone()).or_default().push(b);
        }
        let mut chunks: Vec<Vec<_>> = (0..connections).map(|_| Vec::new()).collect();
        for (i, (_, rows)) in by_run.into_iter().enumerate() {
            chunks[i % connections].extend(rows);
        }
        chunks
    };
    let t = Instant::now();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|rows| {
            let url = url.to_owned();
            let schema = schema.to_owned();
            tokio::spawn(async move {
                let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                let stmt = c
                    .prepare(&format!(
                        "WITH ins AS (INSERT INTO {schema}.raw_checkpoints (run_id, seq, body) VALUES ($1, $2, $3))
                         UPDATE {schema}.raw_runs SET seq = $2, updated_ms = $2 WHERE run_id = $1"
                    ))
                    .await
                    .unwrap();
                for (run, seq, body) in rows {
                    c.execute(&stmt, &[&run, &seq, &body]).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

async fn bodies(store: &PgStore, ids: &[RunId]) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    for &id in ids {
        for cp in store.checkpoints(id).await.unwrap().into_iter().skip(1) {
            out.push((
                format!("raw-{id}"),
                cp.seq as i64,
                serde_json::to_string(&cp).unwrap(),
            ));
        }
    }
    out
}

/// Claim latency on an idle worker: submission to the first handler.
async fn claim_latency(url: &str, schema: &str, samples: usize) -> Vec<Duration> {
    let s = store(url, schema, 4).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let worker = Worker::new(Runner::new(), s.clone())
        .serve::<Ticker, H>(Arc::new(H { started: Some(tx) }))
        .concurrency(4)
        .start();
    let runner = Runner::builder().store(s.clone()).build();
    tokio::time::sleep(Duration::from_millis(300)).await; // listening
    let mut out = Vec::new();
    for _ in 0..samples {
        tokio::time::sleep(Duration::from_millis(20)).await; // idle again
        let t = Instant::now();
        runner.submit(Ticker::start(), work(1)).await.unwrap();
        let started = rx.recv().await.unwrap();
        out.push(started - t);
    }
    worker.shutdown().await;
    out.sort();
    out
}

fn main() {
    let url = std::env::var("GUIDERAIL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let quick = std::env::var("GUIDERAIL_BENCH_QUICK").is_ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let schema = format!("gr_bench_{}", std::process::id());
        let (runs, steps) = if quick { (32, 10) } else { (64, 50) };
        println!("| workers (x{PER_WORKER} runs each) | guiderail transitions/s | bare SQL, same rows, same connections | ratio |");
        println!("|---|---|---|---|");
        for workers in [1, 4, 16] {
            let sch = format!("{schema}_{workers}");
            let (rate, ids) = with_workers(&url, &sch, workers, runs, steps).await;
            let s = store(&url, &sch, 4).await;
            let rows = bodies(&s, &ids).await;
            let base = baseline(&url, &sch, workers * PER_WORKER, rows).await;
            println!("| {workers} | {rate:.0} | {base:.0} | {:.2} |", rate / base);
            s.drop_schema().await.unwrap();
        }
        let sch = format!("{schema}_claim");
        let lat = claim_latency(&url, &sch, if quick { 20 } else { 100 }).await;
        let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
        println!(
            "\nclaim latency, idle worker ({} samples): median {:.1?}, p95 {:.1?}, max {:.1?}",
            lat.len(),
            pct(0.5),
            pct(0.95),
            lat[lat.len() - 1]
        );
        store(&url, &sch, 1).await.drop_schema().await.unwrap();
    });
}
