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

/// The first gate decision a run recorded.
fn first_decision(events: &EventLog) -> Box<guiderail::DecisionRecord> {
    events
        .events()
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::Decision(d) => Some(d),
            _ => None,
        })
        .expect("a decision event")
}

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

    let decision = first_decision(&events);
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
    let decision = first_decision(&events);
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

/// A wrap-up state that is itself a gate.
#[guiderail::machine(context = (), on_exhausted = Summarize)]
#[derive(Debug, PartialEq)]
pub enum Budgeted {
    #[initial]
    #[gate]
    #[max_visits(5)]
    #[to(Think, Done)]
    Think,
    /// Sum up what was found when the budget runs out.
    #[gate]
    #[to(Done)]
    Summarize(BoundHit),
    #[terminal]
    Done,
}

struct BudgetAgent;

#[guiderail::handlers]
impl budgeted::Handlers for BudgetAgent {
    async fn think(
        &self,
        cx: &mut Cx<'_, Budgeted>,
    ) -> HandlerResult<Decision<budgeted::ThinkNext>> {
        Ok(cx.decide("think").await?)
    }
    async fn summarize(
        &self,
        cx: &mut Cx<'_, Budgeted>,
        _payload: BoundHit,
    ) -> HandlerResult<Decision<budgeted::SummarizeNext>> {
        Ok(cx.decide("sum up").await?)
    }
}

#[tokio::test]
async fn a_wrap_up_gate_still_asks_the_model_after_the_budget_is_spent() {
    let usage = guiderail::Usage {
        input_tokens: 80,
        output_tokens: 20,
        cost_micros: 0,
    };
    let model = ScriptedModel::new()
        .then(budgeted::ThinkNext::Think)
        .then(budgeted::SummarizeNext::Done)
        .with_usage(usage);
    let runner = Runner::builder()
        .model(model)
        .bounds(Bounds::default().max_tokens(100))
        .build();
    let outcome = runner
        .start(&BudgetAgent, Budgeted::start(), ())
        .await
        .unwrap()
        .finished()
        .unwrap();
    // The first decision spends the whole budget; entering `Think` again
    // hits it, and the wrap-up gate still gets its answer.
    assert_eq!(outcome.path, ["Think", "Think", "Summarize", "Done"]);
    assert!(matches!(
        outcome.bound_hit,
        Some(BoundHit::Tokens {
            limit: 100,
            used: 100
        })
    ));
    assert_eq!(outcome.decisions, 2);
    assert_eq!(outcome.usage.total_tokens(), 200);
}

#[derive(Debug, Default, Serialize)]
pub struct Order {
    pub order_id: u64,
}

/// A gate with its own repair limit.
#[guiderail::machine(context = Order)]
#[derive(Debug)]
pub enum Patient {
    #[initial]
    #[gate(max_repairs = 4)]
    #[to(Done)]
    Decide,
    #[terminal]
    Done,
}

struct PatientAgent;

#[guiderail::handlers]
impl patient::Handlers for PatientAgent {
    async fn decide(
        &self,
        cx: &mut Cx<'_, Patient>,
    ) -> HandlerResult<Decision<patient::DecideNext>> {
        Ok(cx.decide_with_context("Is the order done?").await?)
    }
}

#[tokio::test]
async fn a_gate_repair_limit_overrides_the_runner_and_the_prompt_carries_the_context() {
    // Four bad answers, then a good one: the runner allows 0 repairs, the
    // gate 4.
    let model = Arc::new(
        ScriptedModel::new()
            .then_raw("a")
            .then_raw("b")
            .then_raw("c")
            .then_raw("d")
            .then(patient::DecideNext::Done),
    );
    let runner = Runner::builder()
        .shared_model(model.clone())
        .max_repairs(0)
        .build();
    let outcome = runner
        .start(&PatientAgent, Patient::start(), Order { order_id: 4417 })
        .await
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(outcome.path, ["Decide", "Done"]);
    let requests = model.requests();
    assert_eq!(requests.len(), 5);
    let first = serde_json::to_string(&requests[0].messages).unwrap();
    assert!(first.contains("Is the order done?"), "{first}");
    assert!(first.contains("\\\"order_id\\\": 4417"), "{first}");
}
