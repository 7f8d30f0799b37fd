//! A whole machine whose gate is decided by a real model server: llama.cpp's
//! `llama-server` with the tiny deterministic fixture model, through the
//! OpenAI provider (both encodings) and the Anthropic provider.
//!
//! Set `GUIDERAIL_FIXTURE_URL` (printed by `.ci/fixture.sh start`). Without
//! it the tests say they were not run, except under `CI=true`, where they
//! fail.
#![allow(missing_docs)]

use std::io::Write;
use std::sync::Arc;

use guiderail::llm::{Anthropic, Encoding, Model, OpenAi};
use guiderail::prelude::*;
use guiderail::{DecidedBy, EventKind, EventLog};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Refund {
    pub order_id: u64,
    pub amount_cents: u64,
}

#[guiderail::machine(context = Vec<String>, max_steps = 10)]
#[derive(Debug)]
pub enum Support {
    #[initial]
    #[to(Classify)]
    Intake,
    /// Read the ticket and pick the next step.
    #[gate]
    #[to(IssueRefund, Escalate, Done)]
    Classify,
    /// Refund the order.
    #[to(Done)]
    IssueRefund(Refund),
    /// Hand over to a human.
    #[to(Done)]
    Escalate { reason: String },
    /// Nothing to do.
    #[terminal]
    Done,
}

struct Agent;

#[guiderail::handlers]
impl support::Handlers for Agent {
    async fn intake(&self, _cx: &mut Cx<'_, Support>) -> HandlerResult<support::IntakeNext> {
        Ok(support::IntakeNext::Classify)
    }
    async fn classify(
        &self,
        cx: &mut Cx<'_, Support>,
    ) -> HandlerResult<Decision<support::ClassifyNext>> {
        Ok(cx
            .decide("Ticket: my parcel (order 4417) arrived broken.")
            .await?)
    }
    async fn issue_refund(
        &self,
        cx: &mut Cx<'_, Support>,
        payload: Refund,
    ) -> HandlerResult<support::IssueRefundNext> {
        cx.context_mut()
            .push(format!("refund {}", payload.order_id));
        Ok(support::IssueRefundNext::Done)
    }
    async fn escalate(
        &self,
        cx: &mut Cx<'_, Support>,
        reason: String,
    ) -> HandlerResult<support::EscalateNext> {
        cx.context_mut().push(format!("escalate {reason}"));
        Ok(support::EscalateNext::Done)
    }
}

fn fixture_url() -> Option<String> {
    match std::env::var("GUIDERAIL_FIXTURE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_owned()),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "fixture_machine: GUIDERAIL_FIXTURE_URL is not set under CI=true; run `.ci/fixture.sh start`"
            )
        }
        _ => {
            let _ = std::io::stderr()
                .write_all(b"fixture_machine: not run (set GUIDERAIL_FIXTURE_URL, see README)\n");
            None
        }
    }
}

/// Runs the machine with `model` and checks the run took a declared move
/// that the model decided.
async fn run_with(model: Arc<dyn Model>, encoding: Encoding) {
    let events = Arc::new(EventLog::new());
    let runner = Runner::builder()
        .shared_model(model)
        .encoding(encoding)
        .subscriber(events.clone())
        .build();
    let outcome = runner
        .start(&Agent, Support::start(), Vec::new())
        .await
        .expect("the run finishes")
        .finished()
        .expect("no wait state on this path");
    let path = outcome.path.to_vec();
    assert_eq!(path[..2], ["Intake", "Classify"]);
    assert!(
        matches!(path[2], "IssueRefund" | "Escalate" | "Done"),
        "{path:?}"
    );
    assert_eq!(*path.last().unwrap(), "Done");
    assert_eq!(outcome.decisions, 1);
    let decision = events
        .events()
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::Decision(d) => Some(d),
            _ => None,
        })
        .expect("a decision event");
    assert!(
        matches!(decision.decided_by, DecidedBy::Model { .. }),
        "{decision:?}"
    );
    assert_eq!(decision.chosen, path[2]);
    assert!(outcome.usage.input_tokens > 0, "usage is counted");
}

#[tokio::test]
async fn openai_structured_output_decides_a_real_gate() {
    let Some(url) = fixture_url() else { return };
    let model = OpenAi::compatible(format!("{url}/v1")).with_model("tiny-fixture");
    run_with(Arc::new(model), Encoding::StructuredOutput).await;
}

#[tokio::test]
async fn openai_tools_decide_a_real_gate() {
    let Some(url) = fixture_url() else { return };
    let model = OpenAi::compatible(format!("{url}/v1")).with_model("tiny-fixture");
    run_with(Arc::new(model), Encoding::Tools).await;
}

#[tokio::test]
async fn anthropic_tools_decide_a_real_gate() {
    let Some(url) = fixture_url() else { return };
    let model = Anthropic::compatible(url).with_model("tiny-fixture");
    run_with(Arc::new(model), Encoding::Tools).await;
}
