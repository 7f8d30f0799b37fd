//! Durable runs on the SQLite store: transitions per second for one run
//! against raw SQLite writing the same checkpoint bytes (one transaction per
//! step, same `synchronous`), for 1,000 concurrent runs (group commit),
//! resume latency of a run with 1,000 checkpoints, and the store's size per
//! run before and after compaction. Both `synchronous=NORMAL` (the
//! default) and `FULL`.
//!
//! Run with: `cargo bench --bench durable` (prints a Markdown table;
//! `GUIDERAIL_BENCH_QUICK=1` for a smaller run).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use guiderail::RunId;
use guiderail::prelude::*;
use guiderail::store::{RunStatus, SqliteOptions, SqliteStore, Store, Synchronous};

/// A context of a realistic size: a ticket's text and a counter.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Work {
    text: String,
    n: u64,
    limit: u64,
    park: bool,
}

/// Counts to `limit`, one transition per count, then parks or finishes.
#[guiderail::machine(context = Work, max_steps = 1_000_000)]
#[derive(Debug, Serialize, Deserialize)]
pub enum Ticker {
    /// Begin.
    #[initial]
    #[to(Tick)]
    Start,
    /// Count one.
    #[to(Tick, Park, Done)]
    Tick,
    /// Wait (for the resume benchmark).
    #[wait]
    #[to(Done)]
    Park,
    /// Counted to the limit.
    #[terminal]
    Done,
}

struct H;

#[guiderail::handlers]
impl ticker::Handlers for H {
    async fn start(&self, _cx: &mut Cx<'_, Ticker>) -> HandlerResult<ticker::StartNext> {
        Ok(ticker::StartNext::Tick)
    }
    async fn tick(&self, cx: &mut Cx<'_, Ticker>) -> HandlerResult<ticker::TickNext> {
        let w = cx.context_mut();
        w.n += 1;
        Ok(if w.n < w.limit {
            ticker::TickNext::Tick
        } else if w.park {
            ticker::TickNext::Park
        } else {
            ticker::TickNext::Done
        })
    }
}

fn work(limit: u64, park: bool) -> Work {
    Work {
        text: "My parcel arrived broken and I would like my money back, please. ".repeat(3),
        n: 0,
        limit,
        park,
    }
}

fn open(path: &Path, sync: Synchronous) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open_with(path, SqliteOptions::new().synchronous(sync)).unwrap())
}

fn runner(store: &Arc<dyn Store>) -> Runner {
    Runner::builder().shared_store(store.clone()).build()
}

/// Sequential runs of `steps` transitions; returns checkpoints/s and the
/// run ids.
async fn single(store: &Arc<dyn Store>, runs: u64, steps: u64) -> (f64, Vec<RunId>) {
    let runner = runner(store);
    let mut ids = Vec::new();
    let t = Instant::now();
    let mut written = 0;
    for _ in 0..runs {
        let o = runner
            .start_durable(&H, Ticker::start(), work(steps, false))
            .await
            .unwrap()
            .finished()
            .unwrap();
        written += o.path.len() as u64; // checkpoints: one per state entered
        ids.push(o.run_id);
    }
    (written as f64 / t.elapsed().as_secs_f64(), ids)
}

/// The same checkpoint bytes written by plain rusqlite, one transaction
/// per checkpoint, on this thread. With `auto_checkpoint` SQLite copies the
/// WAL into the database file every 1,000 pages, in the commit that crosses
/// them (its default); without, it never does and the WAL only grows: a
/// ceiling with `synchronous=NORMAL`, not a way to run.
fn raw_baseline(
    path: &Path,
    sync: Synchronous,
    bodies: &[(String, u64, String)],
    auto_checkpoint: bool,
) -> f64 {
    let mut c = rusqlite::Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    if !auto_checkpoint {
        c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    }
    let level = match sync {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    c.pragma_update(None, "synchronous", level).unwrap();
    c.execute_batch(
        "CREATE TABLE checkpoints (run_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
         PRIMARY KEY (run_id, seq))",
    )
    .unwrap();
    let t = Instant::now();
    for (run, seq, body) in bodies {
        let tx = c.transaction().unwrap();
        tx.prepare_cached("INSERT INTO checkpoints (run_id, seq, body) VALUES (?1, ?2, ?3)")
            .unwrap()
            .execute(rusqlite::params![run, *seq as i64, body])
            .unwrap();
        tx.commit().unwrap();
    }
    bodies.len() as f64 / t.elapsed().as_secs_f64()
}

/// `runs` concurrent runs of `steps` transitions each; checkpoints/s.
async fn concurrent(store: &Arc<dyn Store>, runs: u64, steps: u64) -> f64 {
    let runner = runner(store);
    let t = Instant::now();
    let tasks: Vec<_> = (0..runs)
        .map(|_| {
            let runner = runner.clone();
            tokio::spawn(async move {
                let o = runner
                    .start_durable(&H, Ticker::start(), work(steps, false))
                    .await
                    .unwrap()
                    .finished()
                    .unwrap();
                o.path.len() as u64
            })
        })
        .collect();
    let mut written = 0;
    for task in tasks {
        written += task.await.unwrap();
    }
    written as f64 / t.elapsed().as_secs_f64()
}

/// Median time of `resume` for a parked run with `steps` checkpoints, each
/// time through a freshly opened store (a restarted process).
async fn resume_latency(path: &Path, steps: u64) -> (Duration, u64) {
    let id = {
        let store = open(path, Synchronous::Normal);
        let waiting = runner(&store)
            .start_durable(&H, Ticker::start(), work(steps, true))
            .await
            .unwrap()
            .waiting()
            .unwrap();
        waiting.run_id()
    };
    let mut times = Vec::new();
    let mut checkpoints = 0;
    for _ in 0..21 {
        let store = open(path, Synchronous::Normal);
        let runner = runner(&store);
        let t = Instant::now();
        let ended = runner.resume::<Ticker, _>(&H, id).await.unwrap();
        times.push(t.elapsed());
        assert!(ended.waiting().is_some());
        checkpoints = store.latest(id).await.unwrap().seq + 1;
    }
    times.sort();
    (times[times.len() / 2], checkpoints)
}

/// Median time of what `resume` reads before it runs a handler, for a run
/// that crashed while running with `checkpoints` checkpoints: the latest
/// checkpoint, and the path (running checkpoints leave it to their
/// predecessors), each time through a freshly opened store.
async fn crashed_resume_read(path: &Path, steps: u64) -> (Duration, usize) {
    let crashed = RunId::new();
    {
        let store = open(path, Synchronous::Normal);
        let parked = runner(&store)
            .start_durable(&H, Ticker::start(), work(steps, true))
            .await
            .unwrap()
            .waiting()
            .unwrap()
            .run_id();
        // The same run, stopped before it parked: every checkpoint running.
        let mut cps = store.checkpoints(parked).await.unwrap();
        cps.pop();
        for cp in &mut cps {
            cp.run_id = crashed;
        }
        store.create(&cps[0]).await.unwrap();
        for cp in &cps[1..] {
            store.append(cp).await.unwrap();
        }
    }
    let mut times = Vec::new();
    let mut entered = 0;
    for _ in 0..21 {
        let store = open(path, Synchronous::Normal);
        let t = Instant::now();
        let latest = store.latest(crashed).await.unwrap();
        assert_eq!(latest.status, RunStatus::Running);
        entered = store.run_path(crashed).await.unwrap().len();
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], entered)
}

fn file_size(path: &Path) -> u64 {
    let wal = path.with_extension("db-wal");
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

fn main() {
    let quick = std::env::var_os("GUIDERAIL_BENCH_QUICK").is_some();
    let (runs, steps) = if quick { (3, 200) } else { (10, 500) };
    let (many, many_steps) = if quick { (200, 10) } else { (1_000, 20) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    println!("| synchronous | measure | value |");
    println!("|---|---|---|");
    let memory: Arc<dyn Store> = Arc::new(guiderail::store::MemoryStore::new());
    let (in_memory, _) = rt.block_on(single(&memory, runs, steps));
    println!(
        "| - | one run on `MemoryStore`: durable transitions/s (runner + serde) | {in_memory:.0} |"
    );
    drop(memory);
    let rounds = if quick { 3 } else { 5 };
    for (name, sync) in [("NORMAL", Synchronous::Normal), ("FULL", Synchronous::Full)] {
        // Durable and raw alternate, `rounds` times, each in a fresh file;
        // the medians are reported (the machine is shared and noisy).
        let (mut durables, mut raws, mut mean_bytes) = (Vec::new(), Vec::new(), 0);
        let mut ceilings = Vec::new();
        let mut appends = Vec::new();
        for round in 0..rounds {
            let path = dir.path().join(format!("single-{name}-{round}.db"));
            let store = open(&path, sync);
            let (durable, ids) = rt.block_on(single(&store, runs, steps));
            let mut bodies = Vec::new();
            let mut checkpoints = Vec::new();
            for id in &ids {
                for cp in rt.block_on(store.checkpoints(*id)).unwrap() {
                    bodies.push((id.to_string(), cp.seq, serde_json::to_string(&cp).unwrap()));
                    checkpoints.push(cp);
                }
            }
            drop(store);
            // The same checkpoints through `Store::append` alone (no
            // runner): the store's share of the cost.
            let store = open(&dir.path().join(format!("append-{name}-{round}.db")), sync);
            let t = Instant::now();
            rt.block_on(async {
                for cp in &checkpoints {
                    if cp.seq == 0 {
                        store.create(cp).await.unwrap();
                    } else {
                        store.append(cp).await.unwrap();
                    }
                }
            });
            appends.push(checkpoints.len() as f64 / t.elapsed().as_secs_f64());
            drop(store);
            mean_bytes = bodies.iter().map(|b| b.2.len()).sum::<usize>() / bodies.len();
            let raw_path = dir.path().join(format!("raw-{name}-{round}.db"));
            raws.push(raw_baseline(&raw_path, sync, &bodies, true));
            if sync == Synchronous::Normal {
                let raw_path = dir.path().join(format!("raw-nockpt-{name}-{round}.db"));
                ceilings.push(raw_baseline(&raw_path, sync, &bodies, false));
            }
            durables.push(durable);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (durable, raw) = (median(&mut durables), median(&mut raws));
        let append = median(&mut appends);
        println!(
            "| {name} | one run: durable transitions/s ({runs} runs of {steps}, mean checkpoint {mean_bytes} B, median of {rounds}) | {durable:.0} |"
        );
        println!(
            "| {name} | raw SQLite, same bytes, one transaction each (median of {rounds}) | {raw:.0} |"
        );
        println!(
            "| {name} | `SqliteStore::append` alone, same checkpoints, one at a time (median of {rounds}) | {append:.0} |"
        );
        if !ceilings.is_empty() {
            // With FULL, every commit syncs a WAL file that only grows,
            // which is slower than syncing a reused one: no ceiling there.
            let ceiling = median(&mut ceilings);
            println!(
                "| {name} | raw SQLite, same bytes, WAL checkpoints off (a ceiling: the WAL only grows; median of {rounds}) | {ceiling:.0} |"
            );
        }
        println!("| {name} | ratio durable / raw | {:.2} |", durable / raw);

        let path = dir.path().join(format!("many-{name}.db"));
        let store = open(&path, sync);
        let c = rt.block_on(concurrent(&store, many, many_steps));
        println!(
            "| {name} | {many} concurrent runs of {many_steps}: durable transitions/s | {c:.0} ({:.1}x one run) |",
            c / durable
        );
        let finished = rt
            .block_on(store.runs(Some(RunStatus::Finished)))
            .unwrap()
            .len() as u64;
        let before = file_size(&path);
        let removed = rt.block_on(store.compact(u64::MAX)).unwrap();
        drop(store);
        std::thread::sleep(Duration::from_millis(200));
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("VACUUM").unwrap();
        drop(c);
        let after = file_size(&path);
        println!(
            "| {name} | store size per finished run ({} checkpoints each) | {} B; after compaction + VACUUM {} B ({removed} checkpoints removed) |",
            many_steps + 2,
            before / finished,
            after / finished
        );
    }
    let (latency, checkpoints) = rt.block_on(resume_latency(&dir.path().join("resume.db"), 1_000));
    println!(
        "| NORMAL | resume latency, run with {checkpoints} checkpoints (median of 21, store freshly opened) | {:.2} ms |",
        latency.as_secs_f64() * 1e3
    );
    let (read, entered) = rt.block_on(crashed_resume_read(&dir.path().join("crashed.db"), 1_000));
    println!(
        "| NORMAL | resume of a run that crashed while running, {entered} states entered: latest checkpoint + path read (median of 21, store freshly opened) | {:.2} ms |",
        read.as_secs_f64() * 1e3
    );
}
