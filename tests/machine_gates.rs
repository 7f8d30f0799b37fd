//! Gates through the macro: fallback moves, decision records, repair.
#![allow(missing_docs)]

use std::sync::Arc;

use guiderail::prelude::*;
use guiderail::{DecidedBy, EventKind, EventLog, GateError, RunErrorKind};

#[derive(Debug, Default)]
pub struct Ticket {
    pub escalations: Vec<String>,
}

#[guiderail::machine(context = Ticket)]
#[derive(Debug, PartialEq)]
pub enum Triage {
    /// Read the ticket and decide.
    #[initial]
    #[gate(fallback = Escalate)]
    #[to(Reply, Escalate)]
    Classify,
    /// Answer the customer.
    #[to(Done)]
    Reply { draft: String },
    /// A human takes over.
    #[to(Done)]
    Escalate { reason: String },
    #[terminal]
    Done,
}

/// The same gate without a fallback.
#[guiderail::machine(context = ())]
#[derive(Debug)]
pub enum Strict {
    #[initial]
    #[gate]
    #[to(Done)]
    Decide,
    #[terminal]
    Done,
}

struct Agent;

#[guiderail::handlers]
impl triage::Handlers for Agent {
    async fn classify(
        &self,
        cx: &mut Cx<'_, Triage>,
    ) -> HandlerResult<Decision<triage::ClassifyNext>> {
        Ok(cx.decide("Ticket: my parcel is late").await?)
    }
    async fn reply(
        &self,
        _cx: &mut Cx<'_, Triage>,
        _draft: String,
    ) -> HandlerResult<triage::ReplyNext> {
        Ok(triage::ReplyNext::Done)
    }
    async fn escalate(
        &self,
        cx: &mut Cx<'_, Triage>,
        reason: String,
    ) -> HandlerResult<triage::EscalateNext> {
        cx.context_mut().escalations.push(reason);
        Ok(triage::EscalateNext::Done)
    }
}

struct StrictAgent;

#[guiderail::handlers]
impl strict::Handlers for StrictAgent {
    async fn decide(&self, cx: &mut Cx<'_, Strict>) -> HandlerResult<Decision<strict::DecideNext>> {
        Ok(cx.decide("go").await?)
    }
}

#[tokio::test]
async fn invalid_answers_take_the_declared_fallback_move() {
    let model = ScriptedModel::new()
        .then_raw("not json")
        .then_raw(r#"{"move": {"Done": {}}}"#) // an undeclared move
        .then_raw(r#"{"move": {"Reply": {}}}"#); // a missing field
    let events = Arc::new(EventLog::new());
    let runner = Runner::builder()
        .model(model)
        .subscriber(events.clone())
        .build();
    let outcome = runner
        .start(&Agent, Triage::start(), Ticket::default())
        .await
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(outcome.path, ["Classify", "Escalate", "Done"]);
    let reason = &outcome.context.escalations[0];
    assert!(
        reason.starts_with("no valid decision at `Classify`"),
        "{reason}"
    );
    assert!(reason.contains("3 attempts"), "{reason}");

    let decision = events
        .events()
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::Decision(d) => Some(d),
            _ => None,
        })
        .expect("a decision event");
    assert!(matches!(decision.decided_by, DecidedBy::Fallback { .. }));
    assert_eq!(decision.chosen, "Escalate");
    assert_eq!(decision.attempts.len(), 3);
    assert!(decision.attempts.iter().all(|a| a.error.is_some()));
    // The record keeps the conversation as last sent, repair requests included.
    let text = serde_json::to_string(&decision.messages).unwrap();
    assert!(text.contains("Ticket: my parcel is late"));
    assert!(text.contains("Your answer was rejected"));
}

#[tokio::test]
async fn a_model_error_also_takes_the_fallback() {
    let model = ScriptedModel::new().then_error(guiderail::llm::ModelError::Timeout(30_000));
    let runner = Runner::builder().model(model).build();
    let outcome = runner
        .start(&Agent, Triage::start(), Ticket::default())
        .await
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(outcome.path, ["Classify", "Escalate", "Done"]);
}

#[tokio::test]
async fn a_valid_answer_is_recorded_with_its_request() {
    let model = ScriptedModel::new().then(triage::ClassifyNext::Reply {
        draft: "It ships tomorrow.".into(),
    });
    let events = Arc::new(EventLog::new());
    let runner = Runner::builder()
        .model(model)
        .subscriber(events.clone())
        .build();
    let outcome = runner
        .start(&Agent, Triage::start(), Ticket::default())
        .await
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(outcome.path, ["Classify", "Reply", "Done"]);
    let decision = events
        .events()
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::Decision(d) => Some(d),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        decision.decided_by,
        DecidedBy::Model {
            model: "scripted".into()
        }
    );
    assert_eq!(decision.payload["draft"], "It ships tomorrow.");
    assert_eq!(decision.messages.len(), 2, "system and prompt");
}

#[tokio::test]
async fn without_a_fallback_the_run_fails_with_every_attempt() {
    let model = ScriptedModel::new()
        .then_raw("1")
        .then_raw("2")
        .then_raw("3");
    let runner = Runner::builder().model(model).max_repairs(2).build();
    let err = runner
        .start(&StrictAgent, Strict::start(), ())
        .await
        .unwrap_err();
    assert_eq!(err.state, "Decide");
    match err.kind {
        RunErrorKind::Gate(GateError::InvalidDecision { attempts, .. }) => {
            assert_eq!(attempts.len(), 3);
            assert_eq!(attempts[0].raw, "1");
        }
        other => panic!("expected InvalidDecision, got {other:?}"),
    }
}
