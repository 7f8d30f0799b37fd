//! A support-ticket agent: a model gate picks one of three typed actions, a
//! refund carries a typed payload, replies loop back at most three times,
//! and refunds wait for a human's approval.
//!
//! Run with: `cargo run --example support_triage`
//!
//! Durable by default: the run is checkpointed after every transition in
//! the SQLite file `./support_triage.db` (printed at start; another file
//! with `cargo run --example support_triage -- PATH` or
//! `SUPPORT_TRIAGE_DB=PATH`). Press Ctrl-C while it runs and start it
//! again: it resumes the unfinished run from its last checkpoint instead of
//! starting over, and a decision the model already made is not asked for
//! again. A run that waits for the human's approval gets it (the example
//! delivers the approval signal itself). When nothing is left unfinished, a
//! new run starts. Each handler pauses `SUPPORT_TRIAGE_STEP_MS` milliseconds
//! (default 300) as stand-in work, so there is time to press Ctrl-C.
//!
//! Offline by default: the gate is answered by a `ReplayModel` from the
//! transcript in `examples/transcripts/support_triage.jsonl`, so the run is
//! the same every time (a resumed run skips the answers its recorded
//! decisions used). With `OPENAI_API_KEY` (or `OPENAI_BASE_URL` pointing at
//! a local OpenAI-compatible server such as llama.cpp, vLLM or Ollama) or
//! `ANTHROPIC_API_KEY` set, a real model decides. Set
//! `GUIDERAIL_RECORD=FILE` to save the model's answers as a new transcript.
//!
//! It prints which model and database it uses, every transition as it
//! happens, the path the run took, the decisions, and the machine's graph
//! as Mermaid.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use guiderail::llm::{Anthropic, Model, OpenAi, RecordingModel, Transcript};
use guiderail::prelude::*;
use guiderail::store::{Checkpoint, RunStatus, SqliteStore, Store};
use guiderail::{DecidedBy, DecidedVia, Event, EventKind, ReplayModel, RunId};

const TRANSCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/transcripts/support_triage.jsonl"
);

/// The database file when neither an argument nor `SUPPORT_TRIAGE_DB` names
/// one: in the working directory.
pub const DEFAULT_DB: &str = "support_triage.db";

/// What the agent works on: the ticket and what it did.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Ticket {
    /// The customer's message.
    pub text: String,
    /// What the agent did, in order.
    pub notes: Vec<String>,
    /// Replies sent to the customer.
    pub replies: Vec<String>,
}

/// A refund the model may decide to issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Refund {
    /// The order to refund.
    pub order_id: u64,
    /// How much, in cents.
    pub amount_cents: u64,
}

/// The support agent. Deriving `Serialize` and `Deserialize` is what lets
/// its runs be checkpointed.
#[guiderail::machine(context = Ticket, max_steps = 20)]
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum Support {
    /// A ticket arrives.
    #[initial]
    #[to(Classify)]
    Intake,
    /// The model reads the ticket and picks one of three typed actions.
    #[gate]
    #[to(IssueRefund, Escalate, Reply)]
    Classify,
    /// Refund an order (needs a human's approval).
    #[to(AwaitApproval)]
    IssueRefund(Refund),
    /// Hand the ticket to a human, saying why.
    #[to(Done)]
    Escalate {
        /// Why a human must look at it.
        reason: String,
    },
    /// Ask the customer for what is missing.
    #[max_visits(3)]
    #[to(Classify, Done)]
    Reply {
        /// The message to send.
        draft: String,
    },
    /// A human approves or rejects the refund.
    #[wait]
    #[to(Done, Escalate)]
    AwaitApproval,
    /// The ticket is closed.
    #[terminal]
    Done,
}

/// The handlers: plain async functions, one per state that runs code.
pub struct Agent {
    /// Stand-in work at the start of every handler.
    pub step_delay: Duration,
}

impl Agent {
    async fn work(&self) {
        if !self.step_delay.is_zero() {
            tokio::time::sleep(self.step_delay).await;
        }
    }
}

#[guiderail::handlers]
impl support::Handlers for Agent {
    async fn intake(&self, cx: &mut Cx<'_, Support>) -> HandlerResult<support::IntakeNext> {
        self.work().await;
        let text = cx.context().text.clone();
        cx.context_mut().notes.push(format!("received: {text}"));
        Ok(support::IntakeNext::Classify)
    }

    async fn classify(
        &self,
        cx: &mut Cx<'_, Support>,
    ) -> HandlerResult<Decision<support::ClassifyNext>> {
        self.work().await;
        let ticket = cx.context();
        let prompt = format!(
            "Ticket: {}\nReplies so far: {:?}\nDecide what to do next.",
            ticket.text, ticket.replies
        );
        Ok(cx.decide(prompt).await?)
    }

    async fn issue_refund(
        &self,
        cx: &mut Cx<'_, Support>,
        payload: Refund,
    ) -> HandlerResult<support::IssueRefundNext> {
        self.work().await;
        cx.context_mut().notes.push(format!(
            "refund of {} cents for order {} prepared",
            payload.amount_cents, payload.order_id
        ));
        Ok(support::IssueRefundNext::AwaitApproval)
    }

    async fn escalate(
        &self,
        cx: &mut Cx<'_, Support>,
        reason: String,
    ) -> HandlerResult<support::EscalateNext> {
        self.work().await;
        cx.context_mut().notes.push(format!("escalated: {reason}"));
        Ok(support::EscalateNext::Done)
    }

    async fn reply(
        &self,
        cx: &mut Cx<'_, Support>,
        draft: String,
    ) -> HandlerResult<support::ReplyNext> {
        self.work().await;
        let ticket = cx.context_mut();
        ticket.replies.push(draft);
        // The customer answers with the order number.
        ticket
            .text
            .push_str(" -- customer: it's order 4417, 25.00 EUR");
        Ok(support::ReplyNext::Classify)
    }
}

/// Any error, for `main`.
pub type BoxError = Box<dyn std::error::Error>;

/// Settings of one invocation.
#[derive(Debug, Clone)]
pub struct Options {
    /// The SQLite file runs are checkpointed in.
    pub db: PathBuf,
    /// Stand-in work per handler.
    pub step_delay: Duration,
}

impl Options {
    /// From the command line (`[DB_PATH]`) and the environment
    /// (`SUPPORT_TRIAGE_DB`, `SUPPORT_TRIAGE_STEP_MS`).
    pub fn from_env() -> Result<Self, BoxError> {
        let arg = std::env::args_os().nth(1);
        if arg
            .as_ref()
            .is_some_and(|a| a.to_string_lossy().starts_with('-'))
        {
            return Err(format!(
                "usage: support_triage [DB_PATH] (default ./{DEFAULT_DB}, or SUPPORT_TRIAGE_DB)"
            )
            .into());
        }
        let db = arg
            .or_else(|| std::env::var_os("SUPPORT_TRIAGE_DB").filter(|v| !v.is_empty()))
            .map_or_else(|| PathBuf::from(DEFAULT_DB), PathBuf::from);
        let step_ms = match std::env::var("SUPPORT_TRIAGE_STEP_MS") {
            Ok(v) => v
                .parse()
                .map_err(|e| format!("SUPPORT_TRIAGE_STEP_MS={v:?}: {e}"))?,
            Err(_) => 300,
        };
        Ok(Options {
            db,
            step_delay: Duration::from_millis(step_ms),
        })
    }
}

/// A real model when its environment variables are set, else the replayed
/// transcript without its first `answered` answers (those of decisions a
/// resumed run has already recorded).
fn pick_model(answered: usize) -> Result<(Arc<dyn Model>, String), BoxError> {
    let env = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if env("OPENAI_API_KEY") || env("OPENAI_BASE_URL") {
        return Ok((
            Arc::new(OpenAi::from_env()?),
            "OpenAI-compatible API".into(),
        ));
    }
    if env("ANTHROPIC_API_KEY") {
        return Ok((Arc::new(Anthropic::from_env()?), "Anthropic API".into()));
    }
    let mut transcript = Transcript::load(TRANSCRIPT)?;
    let skip = answered.min(transcript.exchanges.len());
    transcript.exchanges.drain(..skip);
    let source = match skip {
        0 => "offline: replaying examples/transcripts/support_triage.jsonl".to_owned(),
        n => format!(
            "offline: replaying examples/transcripts/support_triage.jsonl after the {n} answer(s) already recorded"
        ),
    };
    Ok((Arc::new(ReplayModel::new(transcript)), source))
}

/// How many model answers a run's recorded decisions hold.
fn recorded_answers(checkpoints: &[Checkpoint]) -> usize {
    checkpoints
        .iter()
        .filter_map(|c| c.decision.as_deref())
        .filter(|d| matches!(d.decided_by, DecidedBy::Model { .. }))
        .map(|d| d.attempts.len())
        .sum()
}

/// Prints every transition as it happens.
fn print_event(event: &Event) {
    match &event.kind {
        EventKind::Transition {
            from,
            to,
            step,
            via,
        } => {
            let by = match via {
                DecidedVia::Code => "code",
                DecidedVia::Gate => "the model",
                DecidedVia::Signal => "a signal",
                DecidedVia::WrapUp => "the wrap-up",
            };
            println!("  step {step}: {from} -> {to} (by {by})");
        }
        EventKind::Waiting { state } => println!("  waiting in {state}"),
        _ => {}
    }
}

/// A run this invocation works on: a new one, or one found unfinished in
/// the store.
enum Work {
    New,
    Unfinished(RunId),
}

/// Opens the store, resumes the unfinished runs of `Support` in it (or
/// starts a new run when there are none) and runs them to the end. Returns
/// the finished runs' outcomes.
pub async fn run(options: &Options) -> Result<Vec<Outcome<Support>>, BoxError> {
    let store = Arc::new(SqliteStore::open(&options.db)?);
    let shown = std::path::absolute(&options.db).unwrap_or_else(|_| options.db.clone());
    println!(
        "store: {} (Ctrl-C and run again to resume; delete the file to start afresh)",
        shown.display()
    );
    let mut work = Vec::new();
    for status in [RunStatus::Running, RunStatus::Waiting] {
        for summary in store.runs(Some(status)).await? {
            if summary.machine == Support::NAME {
                work.push(Work::Unfinished(summary.run_id));
            }
        }
    }
    if work.is_empty() {
        work.push(Work::New);
    }
    let agent = Agent {
        step_delay: options.step_delay,
    };
    let mut outcomes = Vec::new();
    for item in work {
        let run = drive(&store, &agent, item);
        let outcome = tokio::select! {
            outcome = run => outcome?,
            _ = tokio::signal::ctrl_c() => {
                println!(
                    "\ninterrupted: everything up to the last transition is stored in {}; \
                     run the same command again to resume",
                    shown.display()
                );
                std::process::exit(130);
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Starts or resumes one run and takes it to its end, delivering the
/// human's approval when it waits.
async fn drive(
    store: &Arc<SqliteStore>,
    agent: &Agent,
    work: Work,
) -> Result<Outcome<Support>, BoxError> {
    let answered = match &work {
        Work::New => 0,
        Work::Unfinished(id) => recorded_answers(&store.checkpoints(*id).await?),
    };
    let (model, source) = pick_model(answered)?;
    println!("model: {} ({source})", model.name());
    let record = std::env::var_os("GUIDERAIL_RECORD");
    let recorder = record
        .as_ref()
        .map(|_| Arc::new(RecordingModel::new(model.clone())));
    let gate_model: Arc<dyn Model> = match &recorder {
        Some(r) => r.clone(),
        None => model,
    };
    let runner = Runner::builder()
        .shared_model(gate_model)
        .shared_store(store.clone())
        .subscriber(Arc::new(print_event))
        .build();

    let mut ended = match work {
        Work::New => {
            let run_id = RunId::new();
            println!("starting run {run_id}");
            let ticket = Ticket {
                text: "My parcel arrived broken, I want my money back.".into(),
                ..Ticket::default()
            };
            runner
                .start_durable_with_id(run_id, agent, Support::start(), ticket)
                .await?
        }
        Work::Unfinished(run_id) => {
            let latest = store.latest(run_id).await?;
            println!(
                "resuming run {run_id} from checkpoint {} ({}, in {} after {})",
                latest.seq,
                latest.status,
                latest.state_name,
                latest.path.join(" -> ")
            );
            runner.resume(agent, run_id).await?
        }
    };
    let outcome = loop {
        match ended {
            Ended::Finished(outcome) => break outcome,
            Ended::Waiting(waiting) => {
                let run_id = waiting.run_id();
                println!(
                    "run {run_id} waits in `{}`; a human approves (in a service: \
                     `runner.signal_run(&agent, run_id, support::AwaitApprovalNext::Done)` \
                     from any process that opens the store)",
                    waiting.state_name()
                );
                // The signal is the wait state's typed move.
                ended = runner
                    .signal_run(agent, run_id, support::AwaitApprovalNext::Done)
                    .await?;
            }
        }
    };

    println!("run {} finished", outcome.run_id);
    println!("path: {}", outcome.path);
    println!(
        "steps: {}, model decisions: {}",
        outcome.steps, outcome.decisions
    );
    for note in &outcome.context.notes {
        println!("note: {note}");
    }
    for checkpoint in store.checkpoints(outcome.run_id).await? {
        if let Some(d) = &checkpoint.decision {
            println!(
                "decision at {} (checkpoint {}): {} {}",
                d.gate, checkpoint.seq, d.chosen, d.payload
            );
        }
    }
    if let (Some(path), Some(recorder)) = (record, recorder) {
        recorder.transcript().save(&path)?;
        println!("transcript saved to {}", path.to_string_lossy());
    }
    Ok(outcome)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = Options::from_env()?;
    run(&options).await?;
    let worst = Support::WORST_CASE;
    println!(
        "worst case: {:?} steps, {:?} decisions",
        worst.steps, worst.decisions
    );
    println!("\n{}", Support::MERMAID);
    Ok(())
}
