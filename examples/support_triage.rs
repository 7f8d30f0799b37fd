//! A support-ticket agent: a model gate picks one of three typed actions, a
//! refund carries a typed payload, replies loop back at most three times,
//! and refunds wait for a human's approval.
//!
//! Run with: `cargo run --example support_triage`
//!
//! Offline by default: the gate is answered by a `ReplayModel` from the
//! transcript in `examples/transcripts/support_triage.jsonl`, so the run is
//! the same every time. With `OPENAI_API_KEY` (or `OPENAI_BASE_URL` pointing
//! at a local OpenAI-compatible server such as llama.cpp, vLLM or Ollama) or
//! `ANTHROPIC_API_KEY` set, a real model decides. Set `GUIDERAIL_RECORD=FILE`
//! to save the model's answers as a new transcript.
//!
//! It prints which model it uses, the path the run took, the decisions, and
//! the machine's graph as Mermaid.

use std::sync::Arc;

use guiderail::llm::{Anthropic, Model, OpenAi, RecordingModel};
use guiderail::prelude::*;
use guiderail::{EventKind, EventLog, ReplayModel};

const TRANSCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/transcripts/support_triage.jsonl"
);

/// What the agent works on: the ticket and what it did.
#[derive(Debug, Default)]
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

/// The support agent.
#[guiderail::machine(context = Ticket, max_steps = 20)]
#[derive(Debug)]
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
struct Agent;

#[guiderail::handlers]
impl support::Handlers for Agent {
    async fn intake(&self, cx: &mut Cx<'_, Support>) -> HandlerResult<support::IntakeNext> {
        let text = cx.context().text.clone();
        cx.context_mut().notes.push(format!("received: {text}"));
        Ok(support::IntakeNext::Classify)
    }

    async fn classify(
        &self,
        cx: &mut Cx<'_, Support>,
    ) -> HandlerResult<Decision<support::ClassifyNext>> {
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
        cx.context_mut().notes.push(format!("escalated: {reason}"));
        Ok(support::EscalateNext::Done)
    }

    async fn reply(
        &self,
        cx: &mut Cx<'_, Support>,
        draft: String,
    ) -> HandlerResult<support::ReplyNext> {
        let ticket = cx.context_mut();
        ticket.replies.push(draft);
        // The customer answers with the order number.
        ticket
            .text
            .push_str(" -- customer: it's order 4417, 25.00 EUR");
        Ok(support::ReplyNext::Classify)
    }
}

type BoxError = Box<dyn std::error::Error>;

/// A real model when its environment variables are set, else the replayed
/// transcript.
fn pick_model() -> Result<(Arc<dyn Model>, &'static str), BoxError> {
    let env = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if env("OPENAI_API_KEY") || env("OPENAI_BASE_URL") {
        return Ok((Arc::new(OpenAi::from_env()?), "OpenAI-compatible API"));
    }
    if env("ANTHROPIC_API_KEY") {
        return Ok((Arc::new(Anthropic::from_env()?), "Anthropic API"));
    }
    Ok((
        Arc::new(ReplayModel::load(TRANSCRIPT)?),
        "offline: replaying examples/transcripts/support_triage.jsonl",
    ))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (model, source) = pick_model()?;
    println!("model: {} ({source})", model.name());
    let record = std::env::var_os("GUIDERAIL_RECORD");
    let recorder = record
        .as_ref()
        .map(|_| Arc::new(RecordingModel::new(model.clone())));
    let gate_model: Arc<dyn Model> = match &recorder {
        Some(r) => r.clone(),
        None => model,
    };
    let events = Arc::new(EventLog::new());
    let runner = Runner::builder()
        .shared_model(gate_model)
        .subscriber(events.clone())
        .build();
    let ticket = Ticket {
        text: "My parcel arrived broken, I want my money back.".into(),
        ..Ticket::default()
    };

    let mut ended = runner.start(&Agent, Support::start(), ticket).await?;
    let outcome = loop {
        match ended {
            Ended::Finished(outcome) => break outcome,
            Ended::Waiting(waiting) => {
                println!(
                    "run {} waits in `{}` after {}",
                    waiting.run_id(),
                    waiting.state_name(),
                    waiting.path()
                );
                // A human approves: the signal is the wait state's typed move.
                ended = runner
                    .signal(&Agent, waiting, support::AwaitApprovalNext::Done)
                    .await?;
            }
        }
    };

    println!("path: {}", outcome.path);
    println!(
        "steps: {}, model decisions: {}",
        outcome.steps, outcome.decisions
    );
    for note in &outcome.context.notes {
        println!("note: {note}");
    }
    for event in events.events() {
        if let EventKind::Decision(d) = &event.kind {
            println!("decision at {}: {} {}", d.gate, d.chosen, d.payload);
        }
    }
    let worst = Support::WORST_CASE;
    println!(
        "worst case: {:?} steps, {:?} decisions",
        worst.steps, worst.decisions
    );
    if let (Some(path), Some(recorder)) = (record, recorder) {
        recorder.transcript().save(&path)?;
        println!("transcript saved to {}", path.to_string_lossy());
    }
    println!("\n{}", Support::MERMAID);
    Ok(())
}
