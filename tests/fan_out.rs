//! Fan-out and join: a state starts child runs with typed inputs, with a
//! concurrency limit, and gets a typed value per child; a failing child is
//! a value, not the end of its siblings; the first N win; children's
//! spending counts against the parent; durable children survive a crash
//! without running again once finished.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guiderail::prelude::*;
use guiderail::store::{MemoryStore, RunStatus, Store};
use guiderail::{Child, FanOut, RunId, Usage};

/// A child's job: look one thing up.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub query: String,
    pub delay_ms: u64,
    pub found: Option<String>,
}

/// Looks something up, then a model checks it.
#[guiderail::machine(context = Job, max_steps = 10)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Lookup {
    #[initial]
    #[to(Check)]
    Search,
    #[gate]
    #[to(Done)]
    Check,
    #[terminal]
    Done,
}

/// Counts running children (the most at once) and runs per query.
#[derive(Default)]
pub struct Searcher {
    running: AtomicUsize,
    most: AtomicUsize,
    runs: Mutex<HashMap<String, usize>>,
}

#[guiderail::handlers]
impl lookup::Handlers for Searcher {
    async fn search(&self, cx: &mut Cx<'_, Lookup>) -> HandlerResult<lookup::SearchNext> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let job = cx.context().clone();
        *self
            .runs
            .lock()
            .unwrap()
            .entry(job.query.clone())
            .or_default() += 1;
        tokio::time::sleep(Duration::from_millis(job.delay_ms)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        if job.query.starts_with("fail") {
            return Err(HandlerError::msg(format!("no results for {}", job.query)));
        }
        cx.context_mut().found = Some(job.query.to_uppercase());
        Ok(lookup::SearchNext::Check)
    }
    async fn check(&self, cx: &mut Cx<'_, Lookup>) -> HandlerResult<Decision<lookup::CheckNext>> {
        Ok(cx.decide("Is it right?").await?)
    }
}

/// The parent's context: what to look up, what was found.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub queries: Vec<(String, u64)>,
    pub concurrency: usize,
    pub first: Option<usize>,
    pub deadline_ms: Option<u64>,
    pub fail_fast: bool,
    pub durable: bool,
    pub found: Vec<Option<String>>,
    pub failed: Vec<usize>,
    pub cancelled: Vec<usize>,
    pub usage: Usage,
}

/// Plans, fans out to lookups, gathers.
#[guiderail::machine(context = Batch, max_steps = 10)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Research {
    #[initial]
    #[to(Gather)]
    Plan,
    /// Starts a `Lookup` per query (checked at compile time: `Lookup`
    /// starts with a `Job` and has a terminal state without payload).
    #[to(Done)]
    #[children(Lookup, input = Job, output = ())]
    Gather,
    #[terminal]
    Done,
}

pub struct Lead {
    searcher: Arc<Searcher>,
}

#[guiderail::handlers]
impl research::Handlers for Lead {
    async fn plan(&self, _cx: &mut Cx<'_, Research>) -> HandlerResult<research::PlanNext> {
        Ok(research::PlanNext::Gather)
    }
    async fn gather(&self, cx: &mut Cx<'_, Research>) -> HandlerResult<research::GatherNext> {
        let b = cx.context().clone();
        let inputs = b
            .queries
            .iter()
            .map(|(q, delay_ms)| {
                let job = Job {
                    query: q.clone(),
                    delay_ms: *delay_ms,
                    found: None,
                };
                (Lookup::start(), job)
            })
            .collect();
        let how = match b.first {
            Some(n) => FanOut::first(n),
            None => FanOut::all(),
        }
        .concurrency(b.concurrency);
        let how = match b.deadline_ms {
            Some(ms) => how.deadline(Duration::from_millis(ms)),
            None => how,
        }
        .fail_fast(b.fail_fast);
        let before = cx.usage();
        let children = if b.durable {
            cx.fan_out_durable(self.searcher.clone(), inputs, how)
                .await?
        } else {
            cx.fan_out(self.searcher.clone(), inputs, how).await?
        };
        let mut usage = cx.usage();
        usage.input_tokens -= before.input_tokens;
        let out = cx.context_mut();
        out.usage = usage;
        for (i, child) in children.into_iter().enumerate() {
            match child {
                Child::Finished(o) => out.found.push(o.context.found),
                Child::Failed { .. } => {
                    out.failed.push(i);
                    out.found.push(None);
                }
                Child::Cancelled(_) => {
                    out.cancelled.push(i);
                    out.found.push(None);
                }
                Child::Waiting(_) => unreachable!("lookups do not wait"),
            }
        }
        Ok(research::GatherNext::Done)
    }
}

fn model(answers: usize) -> ScriptedModel {
    (0..answers)
        .fold(ScriptedModel::new(), |m, _| m.then(lookup::CheckNext::Done))
        .with_usage(Usage {
            input_tokens: 10,
            output_tokens: 1,
            cost_micros: 0,
        })
}

fn batch(queries: impl IntoIterator<Item = (String, u64)>, concurrency: usize) -> Batch {
    Batch {
        queries: queries.into_iter().collect(),
        concurrency,
        ..Batch::default()
    }
}

async fn run(runner: &Runner, lead: &Lead, batch: Batch) -> Batch {
    let ended = runner.start(lead, Research::start(), batch).await.unwrap();
    ended.finished().expect("the parent finishes").context
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_children_eight_at_a_time() {
    let searcher = Arc::new(Searcher::default());
    let lead = Lead {
        searcher: searcher.clone(),
    };
    let runner = Runner::builder().model(model(100)).build();
    let queries = (0..100).map(|i| (format!("q{i}"), (i % 5) as u64));
    let out = run(&runner, &lead, batch(queries, 8)).await;
    let expected: Vec<Option<String>> = (0..100).map(|i| Some(format!("Q{i}"))).collect();
    assert_eq!(out.found, expected, "every result, in input order");
    assert!(out.failed.is_empty() && out.cancelled.is_empty());
    let most = searcher.most.load(Ordering::SeqCst);
    assert!(
        (2..=8).contains(&most),
        "at most 8 at once, and in parallel: {most}"
    );
    // The children's model calls count against the parent.
    assert_eq!(out.usage.input_tokens, 100 * 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_child_is_a_value_and_its_siblings_finish() {
    let lead = Lead {
        searcher: Arc::new(Searcher::default()),
    };
    let queries = ["a", "fail-b", "c", "d", "e"].map(|q| (q.to_owned(), 1));
    let log = Arc::new(guiderail::EventLog::new());
    let runner = Runner::builder()
        .model(model(4))
        .subscriber(log.clone())
        .build();
    let out = run(&runner, &lead, batch(queries, 2)).await;
    assert_eq!(out.failed, [1]);
    // The parent's events say how each child ended.
    let joined: Vec<_> = log
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            guiderail::EventKind::ChildrenJoined {
                state, children, ..
            } => Some((state, children)),
            _ => None,
        })
        .collect();
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].0, "Gather");
    let ended: Vec<&str> = joined[0].1.iter().map(|c| &*c.ended).collect();
    assert_eq!(
        ended,
        ["finished", "failed", "finished", "finished", "finished"]
    );
    assert_eq!(
        out.found,
        [
            Some("A".into()),
            None,
            Some("C".into()),
            Some("D".into()),
            Some("E".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_n_win_and_the_rest_are_cancelled() {
    let lead = Lead {
        searcher: Arc::new(Searcher::default()),
    };
    let runner = Runner::builder().model(model(10)).build();
    // Three quick ones, five that would take a minute.
    let queries = (0..8).map(|i| (format!("q{i}"), if i % 3 == 0 { 1 } else { 60_000 }));
    let mut b = batch(queries, 8);
    b.first = Some(3);
    let out = tokio::time::timeout(Duration::from_secs(20), run(&runner, &lead, b))
        .await
        .expect("the slow children were cancelled, not awaited");
    assert_eq!(out.cancelled, [1, 2, 4, 5, 7]);
    assert_eq!(out.found.iter().filter(|f| f.is_some()).count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_children_survive_a_crash_and_finished_ones_do_not_run_again() {
    let store = Arc::new(MemoryStore::new());
    let searcher = Arc::new(Searcher::default());
    let lead = Arc::new(Lead {
        searcher: searcher.clone(),
    });
    let runner = Runner::builder()
        .model(model(40))
        .shared_store(store.clone())
        .build();
    // Quick children first, slow ones last: the crash comes between.
    let queries: Vec<(String, u64)> = (0..20)
        .map(|i| (format!("q{i}"), if i < 10 { 1 } else { 300 }))
        .collect();
    let mut b = batch(queries, 4);
    b.durable = true;
    let parent = RunId::new();
    let first = {
        let (runner, lead, b) = (runner.clone(), lead.clone(), b.clone());
        tokio::spawn(async move {
            runner
                .start_durable_with_id(parent, &*lead, Research::start(), b)
                .await
        })
    };
    // Crash once some children have finished.
    loop {
        let done = store.runs(Some(RunStatus::Finished)).await.unwrap().len();
        if done >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.abort();
    let _ = first.await;
    // Aborting is cooperative: a child in the middle of a poll on the other
    // worker ends that poll (perhaps writing its last checkpoint) before
    // it stops. A few milliseconds cover that; a child that was not
    // cancelled would still finish later (the slow ones take 300 ms).
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The parent's crash took its children with it: none finishes later.
    let at_crash = store.runs(Some(RunStatus::Finished)).await.unwrap().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        store.runs(Some(RunStatus::Finished)).await.unwrap().len(),
        at_crash,
        "children stopped with their parent"
    );
    let finished_before: Vec<RunId> = store
        .runs(Some(RunStatus::Finished))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert!(finished_before.len() < 20, "the crash came part way");

    let ended = runner.resume::<Research, _>(&*lead, parent).await.unwrap();
    let out = ended.finished().expect("the parent finishes").context;
    let expected: Vec<Option<String>> = (0..20).map(|i| Some(format!("Q{i}"))).collect();
    assert_eq!(out.found, expected);

    // Every child is a stored run linked to the parent's step; the ones
    // that had finished ran their handler once.
    let gather_step = 2;
    let runs = searcher.runs.lock().unwrap().clone();
    for i in 0..20 {
        let id = guiderail::child_id(parent, gather_step, i);
        let cps = store.checkpoints(id).await.unwrap();
        assert_eq!(cps[0].parent.map(|p| p.run_id), Some(parent), "child {i}");
        assert_eq!(cps.last().unwrap().status, RunStatus::Finished, "child {i}");
        if finished_before.contains(&id) {
            assert_eq!(
                runs[&format!("q{i}")],
                1,
                "child {i} finished before the crash"
            );
        }
    }
}

#[test]
fn the_graph_shows_the_children() {
    assert!(
        Research::MERMAID.contains("note right of Gather: children: Lookup"),
        "{}",
        Research::MERMAID
    );
    let nested = Research::mermaid_with_children();
    assert!(nested.starts_with(Research::MERMAID), "{nested}");
    assert!(
        nested.ends_with(
            "    state Gather {\n        [*] --> Lookup_Search\n        Lookup_Search --> Lookup_Check\n        Lookup_Check --> Lookup_Done\n        Lookup_Done --> [*]\n    }\n"
        ),
        "{nested}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_cancels_the_children_still_running() {
    let lead = Lead {
        searcher: Arc::new(Searcher::default()),
    };
    let runner = Runner::builder().model(model(4)).build();
    let queries = [1, 60_000, 1, 60_000].map(|ms| ("q".to_owned(), ms));
    let mut b = batch(queries, 4);
    b.deadline_ms = Some(300);
    let out = tokio::time::timeout(Duration::from_secs(20), run(&runner, &lead, b))
        .await
        .expect("the deadline ended the wait");
    assert_eq!(out.cancelled, [1, 3]);
    assert_eq!(out.found, [Some("Q".into()), None, Some("Q".into()), None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runners_limit_spans_every_fan_out() {
    let searcher = Arc::new(Searcher::default());
    let lead = Arc::new(Lead {
        searcher: searcher.clone(),
    });
    let runner = Runner::builder().model(model(20)).max_children(3).build();
    // Two parents at once, each allowing 8 children at a time.
    let parents: Vec<_> = (0..2)
        .map(|p| {
            let (runner, lead) = (runner.clone(), lead.clone());
            let queries = (0..10).map(move |i| (format!("p{p}q{i}"), 5));
            let b = batch(queries, 8);
            tokio::spawn(async move { run(&runner, &lead, b).await })
        })
        .collect();
    for parent in parents {
        let out = parent.await.unwrap();
        assert_eq!(out.found.iter().filter(|f| f.is_some()).count(), 10);
    }
    let most = searcher.most.load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&most),
        "at most 3 children at once: {most}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_cancels_the_siblings() {
    let lead = Lead {
        searcher: Arc::new(Searcher::default()),
    };
    let runner = Runner::builder().model(model(4)).build();
    // One quick failure; the others would take a minute.
    let queries =
        [("fail-now", 1), ("slow", 60_000), ("slower", 60_000)].map(|(q, ms)| (q.to_owned(), ms));
    let mut b = batch(queries, 3);
    b.fail_fast = true;
    let out = tokio::time::timeout(Duration::from_secs(20), run(&runner, &lead, b))
        .await
        .expect("the failure cancelled the slow siblings");
    assert_eq!(out.failed, [0]);
    assert_eq!(out.cancelled, [1, 2]);
}
