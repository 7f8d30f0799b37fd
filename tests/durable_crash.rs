//! Crash tests with real processes and a real SQLite file.
//!
//! `crashes_lose_nothing` starts this test binary again as a child process
//! (the `crash_child` test, which does nothing unless
//! `GUIDERAIL_CRASH_CHILD` is set). The child opens the store, prints
//! `ready`, and runs a group of durable runs concurrently: each is started,
//! resumed or signalled according to its latest checkpoint. The parent
//! SIGKILLs the child at a random moment (between and during checkpoints:
//! the store's writer thread is busy most of the time), starts it again,
//! and repeats a few times before letting it finish. Then, for every run:
//!
//! - it finished, in the same terminal state with the same context, path,
//!   step and decision counts as an uninterrupted in-memory run with the
//!   same deterministic model;
//! - its checkpoints are numbered 0, 1, 2, … with no gap, and each one's
//!   path extends the one before (no lost and no repeated transition);
//! - no decision that was recorded was asked for again: every process logs
//!   the step each run resumed from and every model call with its step,
//!   and no call is for a step at or below the resume point.
//!
//! The random seed is printed; set `GUIDERAIL_CRASH_SEED` to replay it.
#![allow(missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use guiderail::llm::{BoxFuture, Message, Model, ModelError, ModelRequest, ModelResponse};
use guiderail::prelude::*;
use guiderail::store::{RunStatus, SqliteStore, Store, StoreError};
use guiderail::{DecidedVia, RunId};

/// Runs per child process, and groups (one child lineage each).
const RUNS_PER_GROUP: u64 = 10;
const GROUPS: u64 = 24;
/// Kills per group before the child is let finish.
const KILLS: u32 = 4;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub seed: u64,
    pub items: Vec<u64>,
    pub reviews: u32,
    pub notes: Vec<String>,
}

/// The agent: a gate that picks work items or a review, bounded work, a
/// review that waits for a human on its first pass.
#[guiderail::machine(context = Ledger, max_steps = 60)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Agent {
    #[initial]
    #[to(Plan)]
    Start { seed: u64 },
    /// The model picks the next work item, or a review.
    #[gate]
    #[to(Work, Review)]
    Plan,
    #[max_visits(6)]
    #[to(Plan, Review)]
    Work { item: u64 },
    #[to(Approve, Finish)]
    Review,
    /// A human approves, or sends the agent back to planning.
    #[wait]
    #[to(Finish, Plan)]
    Approve,
    #[terminal]
    Finish { total: u64 },
}

fn mix(a: u64, b: u64) -> u64 {
    let mut x = a
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(b)
        .wrapping_add(0x632b_e59b_d9b4_e019);
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 29)
}

/// Somewhere between 0.2 and 1.5 ms, so kills land inside handlers too.
async fn busy(seed: u64, step: u64) {
    tokio::time::sleep(Duration::from_micros(200 + mix(seed, step) % 1300)).await;
}

/// The handlers; `log` is where journaled effects note each real run.
struct Handlers {
    log: Option<PathBuf>,
}

#[guiderail::handlers]
impl agent::Handlers for Handlers {
    async fn start(&self, cx: &mut Cx<'_, Agent>, seed: u64) -> HandlerResult<agent::StartNext> {
        cx.context_mut().seed = seed;
        cx.context_mut().notes.push(format!("start {seed}"));
        Ok(agent::StartNext::Plan)
    }

    async fn plan(&self, cx: &mut Cx<'_, Agent>) -> HandlerResult<Decision<agent::PlanNext>> {
        let l = cx.context();
        let prompt = format!(
            "run={} step={} seed={} items={} reviews={}",
            cx.run_id(),
            cx.step(),
            l.seed,
            l.items.len(),
            l.reviews
        );
        Ok(cx.decide(prompt).await?)
    }

    async fn work(&self, cx: &mut Cx<'_, Agent>, item: u64) -> HandlerResult<agent::WorkNext> {
        let (seed, step, run) = (cx.context().seed, cx.step(), cx.run_id());
        // A journaled effect: it runs again only if a kill lands before its
        // journal entry (while it runs, or just after).
        let tag: u64 = cx
            .effect("tag", || async {
                if let Some(log) = &self.log {
                    append(
                        log,
                        &format!("effect {} {run} {step}\n", std::process::id()),
                    );
                }
                busy(seed, step + 2000).await;
                Ok::<_, HandlerError>(mix(seed, step) % 7)
            })
            .await?;
        busy(seed, step).await;
        let l = cx.context_mut();
        l.items.push(item + tag);
        l.notes.push(format!("work {item} at {step}"));
        Ok(if mix(seed, step) % 4 == 0 {
            agent::WorkNext::Review
        } else {
            agent::WorkNext::Plan
        })
    }

    async fn review(&self, cx: &mut Cx<'_, Agent>) -> HandlerResult<agent::ReviewNext> {
        let (seed, step) = (cx.context().seed, cx.step());
        busy(seed, step).await;
        let l = cx.context_mut();
        l.reviews += 1;
        Ok(if l.reviews % 2 == 1 {
            agent::ReviewNext::Approve
        } else {
            agent::ReviewNext::Finish {
                total: l.items.iter().sum(),
            }
        })
    }
}

/// The human's answer at `Approve`, from the stored context.
fn approval(l: &Ledger) -> agent::ApproveNext {
    if l.seed % 3 == 0 {
        agent::ApproveNext::Finish {
            total: 10 * l.items.iter().sum::<u64>(),
        }
    } else {
        agent::ApproveNext::Plan
    }
}

/// A model whose answer is a function of the prompt (so every process
/// answers the same), logging each call to a file when given one.
#[derive(Debug)]
struct Deterministic {
    log: Option<PathBuf>,
}

fn field(prompt: &str, key: &str) -> u64 {
    prompt
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {prompt:?}"))
}

impl Model for Deterministic {
    fn name(&self) -> String {
        "deterministic".into()
    }

    fn complete<'a>(
        &'a self,
        request: &'a ModelRequest,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(async move {
            let prompt = request
                .messages
                .iter()
                .rev()
                .find_map(|m| match m {
                    Message::User { content } => Some(content.as_str()),
                    _ => None,
                })
                .expect("a prompt");
            let run = prompt
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("run="))
                .expect("run id");
            let (step, seed) = (field(prompt, "step"), field(prompt, "seed"));
            let (items, reviews) = (field(prompt, "items"), field(prompt, "reviews"));
            if let Some(log) = &self.log {
                append(log, &format!("call {} {run} {step}\n", std::process::id()));
            }
            busy(seed, step + 1000).await;
            let h = mix(seed, step);
            let next = if items < 5 && (h % 5 != 0 || reviews > 0 && items < 2) {
                agent::PlanNext::Work { item: h % 100 }
            } else {
                agent::PlanNext::Review
            };
            ScriptedModel::new().then(next).complete(request).await
        })
    }
}

/// Appends one line with one `write` call (whole or not at all when the
/// process is killed).
fn append(path: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(line.as_bytes()).unwrap();
}

fn run_id(index: u64) -> RunId {
    RunId::from_u128((0xc4a5_u128 << 64) | u128::from(index))
}

/// The child process: drives runs `first..first + count` to the end.
async fn child(db: &Path, log: &Path, first: u64, count: u64) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(db).unwrap());
    let runner = Runner::builder()
        .model(Deterministic {
            log: Some(log.to_path_buf()),
        })
        .shared_store(store.clone())
        .build();
    println!("ready");
    std::io::stdout().flush().unwrap();
    let pid = std::process::id();
    let handlers = Arc::new(Handlers {
        log: Some(log.to_path_buf()),
    });
    let tasks: Vec<_> = (first..first + count)
        .map(|index| {
            let (runner, store, log) = (runner.clone(), store.clone(), log.to_path_buf());
            let handlers = handlers.clone();
            tokio::spawn(async move {
                let id = run_id(index);
                loop {
                    let ended = match store.latest(id).await {
                        Err(StoreError::NotFound { .. }) => {
                            append(&log, &format!("resume {pid} {id} 0\n"));
                            let ledger = Ledger::default();
                            runner
                                .start_durable_with_id(id, &*handlers, Agent::start(index), ledger)
                                .await
                        }
                        Err(e) => panic!("{e}"),
                        Ok(cp) => {
                            append(&log, &format!("resume {pid} {id} {}\n", cp.spent.steps));
                            match cp.status {
                                RunStatus::Running => {
                                    runner.resume::<Agent, _>(&*handlers, id).await
                                }
                                RunStatus::Waiting => {
                                    let ledger: Ledger =
                                        serde_json::from_value(cp.context).unwrap();
                                    runner.signal_run(&*handlers, id, approval(&ledger)).await
                                }
                                RunStatus::Finished => return,
                                RunStatus::Failed => panic!("run {id} failed: {:?}", cp.error),
                            }
                        }
                    };
                    match ended.unwrap_or_else(|e| panic!("{e}")) {
                        Ended::Finished(_) => return,
                        Ended::Waiting(_) => continue,
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn crash_child() {
    let Ok(spec) = std::env::var("GUIDERAIL_CRASH_CHILD") else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let [db, log, first, count] = parts[..] else {
        panic!("bad GUIDERAIL_CRASH_CHILD: {spec}")
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(child(
            Path::new(db),
            Path::new(log),
            first.parse().unwrap(),
            count.parse().unwrap(),
        ));
}

/// xorshift64*, seeded from the clock unless `GUIDERAIL_CRASH_SEED` is set.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// What an uninterrupted run ends with.
struct Expected {
    terminal: Agent,
    context: Ledger,
    path: Vec<String>,
    steps: u64,
    decisions: u64,
}

async fn uninterrupted(index: u64) -> Expected {
    let runner = Runner::builder().model(Deterministic { log: None }).build();
    let mut ended = runner
        .start(
            &Handlers { log: None },
            Agent::start(index),
            Ledger::default(),
        )
        .await
        .unwrap();
    let o = loop {
        match ended {
            Ended::Finished(o) => break o,
            Ended::Waiting(w) => {
                let signal = approval(w.context());
                ended = runner
                    .signal(&Handlers { log: None }, w, signal)
                    .await
                    .unwrap();
            }
        }
    };
    Expected {
        terminal: o.terminal,
        context: o.context,
        path: o.path.names().map(str::to_owned).collect(),
        steps: o.steps,
        decisions: o.decisions,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_lose_nothing() {
    let seed = std::env::var("GUIDERAIL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("GUIDERAIL_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let log = dir.path().join("calls.log");
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();

    // How many kills each run was started and unfinished at.
    let mut interrupted: HashMap<RunId, u32> = HashMap::new();
    let mut children = 0;
    let verify_store = SqliteStore::open(&db).unwrap();
    for group in 0..GROUPS {
        let first = group * RUNS_PER_GROUP;
        let spec = format!(
            "{}|{}|{first}|{RUNS_PER_GROUP}",
            db.display(),
            log.display()
        );
        for attempt in 0..=KILLS {
            let mut child = Command::new(&exe)
                .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
                .env("GUIDERAIL_CRASH_CHILD", &spec)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            children += 1;
            let mut out = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            while !line.trim_end().ends_with("ready") {
                line.clear();
                assert!(
                    out.read_line(&mut line).unwrap() > 0,
                    "child exited before it was ready"
                );
            }
            if attempt == KILLS {
                let status = child.wait().unwrap();
                assert!(status.success(), "the last child of group {group} failed");
                break;
            }
            // Early kills are common (most runs are unfinished), late ones
            // catch the last transitions.
            let delay = if attempt == 0 {
                2_000 + rng.below(8_000)
            } else {
                rng.below(40_000)
            };
            std::thread::sleep(Duration::from_micros(delay));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            drop(out);
            let runs = verify_store.runs(None).await.unwrap();
            for i in first..first + RUNS_PER_GROUP {
                let id = run_id(i);
                // Started and not finished: the kill cut it.
                let cut = runs
                    .iter()
                    .any(|r| r.run_id == id && r.status != RunStatus::Finished);
                if cut {
                    *interrupted.entry(id).or_default() += 1;
                }
            }
        }
    }
    let total = GROUPS * RUNS_PER_GROUP;

    // Every run finished exactly as an uninterrupted run does.
    let mut transitions = 0;
    for index in 0..total {
        let id = run_id(index);
        let expected = uninterrupted(index).await;
        let cps = verify_store.checkpoints(id).await.unwrap();
        let last = cps.last().unwrap();
        assert_eq!(last.status, RunStatus::Finished, "run {index}");
        let terminal: Agent = serde_json::from_value(last.state.clone()).unwrap();
        let context: Ledger = serde_json::from_value(last.context.clone()).unwrap();
        assert_eq!(terminal, expected.terminal, "run {index}");
        assert_eq!(context, expected.context, "run {index}");
        assert_eq!(last.path, expected.path, "run {index}");
        assert_eq!(
            (last.spent.steps, last.spent.decisions),
            (expected.steps, expected.decisions),
            "run {index}"
        );
        // The path up to each checkpoint: one state longer after each
        // transition, the same otherwise; where a checkpoint keeps its path
        // (the run stops there), it is that path.
        let paths: Vec<_> = (1..=cps.len())
            .map(|k| guiderail::history::path(&cps[..k]))
            .collect();
        for (n, (a, b)) in cps.iter().zip(cps.iter().skip(1)).enumerate() {
            assert_eq!(a.seq, n as u64, "run {index}: checkpoints not contiguous");
            assert_eq!(b.seq, a.seq + 1, "run {index}: checkpoints not contiguous");
            let (pa, pb) = (&paths[n], &paths[n + 1]);
            let grew = pb.len() - pa.len();
            assert!(
                pb.starts_with(pa) && grew <= 1,
                "run {index}: checkpoint {} does not extend {}",
                b.seq,
                a.seq
            );
            assert_eq!(grew == 1, b.via.is_some(), "run {index}: seq {}", b.seq);
            if !b.path.is_empty() {
                assert_eq!(&b.path, pb, "run {index}: seq {}", b.seq);
            }
        }
        let gates = cps
            .iter()
            .filter(|c| c.via == Some(DecidedVia::Gate))
            .count();
        assert_eq!(gates as u64, expected.decisions, "run {index}");
        transitions += cps.len();
    }

    // No recorded decision was asked again.
    let mut resumed_at: HashMap<(String, String), u64> = HashMap::new();
    let mut calls: BTreeMap<(String, u64), u32> = BTreeMap::new();
    let mut reasked_unrecorded = 0;
    let mut effects: BTreeMap<(String, u64), u32> = BTreeMap::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f[..] {
            ["resume", pid, run, steps] => {
                resumed_at.insert((pid.into(), run.into()), steps.parse().unwrap());
            }
            ["call", pid, run, step] => {
                let step: u64 = step.parse().unwrap();
                let from = resumed_at[&(pid.to_owned(), run.to_owned())];
                assert!(
                    step > from,
                    "run {run}: process {pid} asked for the decision of step {step}, recorded before it resumed at step {from}"
                );
                let n = calls.entry((run.to_owned(), step)).or_default();
                *n += 1;
                if *n > 1 {
                    reasked_unrecorded += 1;
                }
            }
            ["effect", _pid, run, step] => {
                *effects
                    .entry((run.to_owned(), step.parse().unwrap()))
                    .or_default() += 1;
            }
            _ => {} // a line cut by a kill
        }
    }
    let interrupted_runs = interrupted.len();
    let kills_seen: u32 = interrupted.values().sum();
    // A kill cuts at most one effect per run before its journal entry;
    // every other effect ran exactly once.
    let repeated_effects: u32 = effects.values().map(|n| n - 1).sum();
    assert!(
        repeated_effects <= kills_seen,
        "{repeated_effects} effects ran again, more than the {kills_seen} interruptions"
    );
    println!(
        "{total} runs, {children} child processes, {} kills; {interrupted_runs} runs interrupted at least once ({kills_seen} interruptions); \
         {transitions} checkpoints; {} model calls for {} decisions ({reasked_unrecorded} asked again because the crash came before they were recorded); \
         {} journaled effects, {repeated_effects} run again; {:.1} s",
        GROUPS * u64::from(KILLS),
        calls.values().sum::<u32>(),
        calls.len(),
        effects.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        interrupted_runs >= 200,
        "only {interrupted_runs} runs were interrupted by a kill"
    );
}
