//! A support-ticket agent: a model gate picks one of three typed actions, a
//! refund carries a typed payload, replies loop back at most three times,
//! and refunds wait for a human's approval.
//!
//! Run with: `cargo run --example support_triage`
//!
//! Offline by default: the gate is answered by a scripted model, so the run
//! is the same every time. It prints the path the run took, the model
//! exchanges, and the machine's graph as Mermaid.

use std::sync::Arc;

use guiderail::llm::Model;
use guiderail::prelude::*;
use guiderail::{EventKind, EventLog};

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

/// The offline model: the answers a model gave on this ticket, in order.
fn offline_model() -> ScriptedModel {
    ScriptedModel::new()
        .then(support::ClassifyNext::Reply {
            draft: "Could you send me your order number?".into(),
        })
        .then(support::ClassifyNext::IssueRefund(Refund {
            order_id: 4417,
            amount_cents: 2500,
        }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model: Arc<dyn Model> = Arc::new(offline_model());
    println!("model: {} (offline, scripted answers)", model.name());
    let events = Arc::new(EventLog::new());
    let runner = Runner::builder()
        .shared_model(model)
        .subscriber(events.clone())
        .build();
    let ticket = Ticket {
        text: "My parcel arrived broken, I want my money back.".into(),
        ..Ticket::default()
    };

    let ended = runner.start(&Agent, Support::start(), ticket).await?;
    let waiting = ended
        .waiting()
        .ok_or("expected the run to wait for approval")?;
    println!(
        "run {} waits in `{}` after {:?}",
        waiting.run_id(),
        waiting.state_name(),
        waiting.path()
    );

    // A human approves: the signal is the wait state's typed move.
    let outcome = runner
        .signal(&Agent, waiting, support::AwaitApprovalNext::Done)
        .await?
        .finished()
        .ok_or("expected the run to finish")?;

    println!("path: {}", outcome.path.join(" -> "));
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
    println!("\n{}", Support::MERMAID);
    Ok(())
}
