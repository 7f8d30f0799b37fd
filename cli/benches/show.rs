//! How long `guiderail show` takes on a run of 10,000 steps (the target is
//! under 1 s), end to end: the compiled binary opening the SQLite store,
//! reading the run's checkpoints and printing the timeline.
//!
//! `cargo bench -p guiderail-cli --bench show`. Under `cargo test` (no
//! `--bench` argument) it runs once on a 200-step run as a smoke test.
#![allow(missing_docs)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use guiderail::prelude::*;
use guiderail::store::{SqliteStore, Store};
use guiderail::{Bounds, Ended, Runner, ScriptedModel, Usage};

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Counter {
    pub done: u64,
    pub goal: u64,
}

/// Works in steps; every tenth step a model reviews and says go on or stop.
#[guiderail::machine(context = Counter, max_steps = 1_000_000)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Loop {
    #[initial]
    #[to(Work)]
    Begin,
    #[to(Work, Review)]
    Work,
    #[gate]
    #[to(Work, Finish)]
    Review,
    #[terminal]
    Finish,
}

struct H;

#[guiderail::handlers]
impl r#loop::Handlers for H {
    async fn begin(&self, _cx: &mut Cx<'_, Loop>) -> HandlerResult<r#loop::BeginNext> {
        Ok(r#loop::BeginNext::Work)
    }
    async fn work(&self, cx: &mut Cx<'_, Loop>) -> HandlerResult<r#loop::WorkNext> {
        let c = cx.context_mut();
        c.done += 1;
        Ok(if c.done % 9 == 0 {
            r#loop::WorkNext::Review
        } else {
            r#loop::WorkNext::Work
        })
    }
    async fn review(&self, cx: &mut Cx<'_, Loop>) -> HandlerResult<Decision<r#loop::ReviewNext>> {
        let prompt = format!(
            "{} of {} done; go on?",
            cx.context().done,
            cx.context().goal
        );
        Ok(cx.decide(prompt).await?)
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let steps: u64 = if bench { 10_000 } else { 200 };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("long.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let built = Instant::now();
    let id = rt.block_on(async {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).unwrap());
        // Reviews happen every 10 steps; the last one finishes.
        let reviews = steps / 10;
        let mut model = ScriptedModel::new();
        for _ in 1..reviews {
            model = model.then(r#loop::ReviewNext::Work);
        }
        model = model.then(r#loop::ReviewNext::Finish);
        let runner = Runner::builder()
            .model(model.with_usage(Usage {
                input_tokens: 200,
                output_tokens: 20,
                cost_micros: 90,
            }))
            .bounds(Bounds::default())
            .shared_store(store)
            .build();
        let goal = Counter {
            done: 0,
            goal: steps,
        };
        match runner.start_durable(&H, Loop::start(), goal).await.unwrap() {
            Ended::Finished(o) => {
                assert!(o.steps >= steps - 2, "{} steps", o.steps);
                o.run_id
            }
            other => panic!("{other:?}"),
        }
    });
    let db_size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "stored a run of {steps} steps in {:.2?} ({:.1} MB on disk)",
        built.elapsed(),
        db_size as f64 / 1e6
    );

    let show = || {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_guiderail"))
            .args(["show", &id.to_string(), "--db", db.to_str().unwrap()])
            .output()
            .unwrap();
        let took = t.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.len() > steps as usize * 40);
        took
    };
    let runs = if bench { 5 } else { 1 };
    let report = |what: &str| {
        let mut times: Vec<Duration> = (0..runs).map(|_| show()).collect();
        times.sort();
        println!(
            "guiderail show, {steps} steps, {what}: median {:.0} ms (min {:.0} ms, max {:.0} ms, {runs} runs; target < 1000 ms)",
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
        );
    };
    report("as stored");

    // And the HTML report of the same run.
    let html = dir.path().join("long.html");
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_guiderail"))
        .args([
            "report",
            &id.to_string(),
            "--db",
            db.to_str().unwrap(),
            "-o",
        ])
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "guiderail report, {steps} steps: {:.0} ms ({:.1} MB of HTML)",
        t.elapsed().as_secs_f64() * 1e3,
        std::fs::metadata(&html).unwrap().len() as f64 / 1e6
    );
}
