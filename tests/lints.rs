//! A full machine (every state kind, every payload shape, wrap-up) expanded
//! under strict lints: generated code must not add warnings to a user's
//! crate. rustc's lints are checked by `cargo test`, clippy's by
//! `cargo clippy --all-targets -- -D warnings` (CI).
#![deny(
    missing_docs,
    unused_qualifications,
    unused_imports,
    unreachable_pub,
    rust_2018_idioms,
    trivial_casts,
    unused_lifetimes,
    clippy::all,
    clippy::pedantic
)]

use guiderail::prelude::*;

/// A refund.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Refund {
    /// The order.
    pub order_id: u64,
}

/// Every kind of state and payload.
#[guiderail::machine(context = Vec<String>, max_steps = 50, on_exhausted = GaveUp)]
#[derive(Debug, PartialEq)]
pub enum Strict {
    /// Start with a ticket number.
    #[initial]
    #[to(Classify)]
    Intake(u64),
    /// A model decides.
    #[gate]
    #[to(IssueRefund, Escalate, Reply)]
    Classify,
    /// Pay back.
    #[to(Approve)]
    IssueRefund(Refund),
    /// A human takes over.
    #[to(Done)]
    Escalate {
        /// Why.
        reason: String,
    },
    /// Ask the customer.
    #[max_visits(2)]
    #[to(Classify, Done)]
    Reply {
        /// The text.
        draft: String,
        /// How urgent, 0 to 3.
        urgency: u8,
    },
    /// A human approves.
    #[wait]
    #[to(Done)]
    Approve,
    /// Bounds were hit.
    #[to(Done)]
    GaveUp(BoundHit),
    /// The end.
    #[terminal]
    Done,
}

struct Agent;

#[guiderail::handlers]
impl strict::Handlers for Agent {
    async fn intake(
        &self,
        cx: &mut Cx<'_, Strict>,
        payload: u64,
    ) -> HandlerResult<strict::IntakeNext> {
        cx.context_mut().push(payload.to_string());
        Ok(strict::IntakeNext::Classify)
    }
    async fn classify(
        &self,
        cx: &mut Cx<'_, Strict>,
    ) -> HandlerResult<Decision<strict::ClassifyNext>> {
        Ok(cx.decide("decide").await?)
    }
    async fn issue_refund(
        &self,
        _cx: &mut Cx<'_, Strict>,
        _payload: Refund,
    ) -> HandlerResult<strict::IssueRefundNext> {
        Ok(strict::IssueRefundNext::Approve)
    }
    async fn escalate(
        &self,
        _cx: &mut Cx<'_, Strict>,
        _reason: String,
    ) -> HandlerResult<strict::EscalateNext> {
        Ok(strict::EscalateNext::Done)
    }
    async fn reply(
        &self,
        _cx: &mut Cx<'_, Strict>,
        _draft: String,
        _urgency: u8,
    ) -> HandlerResult<strict::ReplyNext> {
        Ok(strict::ReplyNext::Classify)
    }
    async fn gave_up(
        &self,
        cx: &mut Cx<'_, Strict>,
        payload: BoundHit,
    ) -> HandlerResult<strict::GaveUpNext> {
        cx.context_mut().push(payload.to_string());
        Ok(strict::GaveUpNext::Done)
    }
}

#[tokio::test]
async fn strict_machine_runs_and_wraps_up() {
    // Reply twice; the third move to `Reply` hits its visit limit on entry
    // and the run moves to `GaveUp` instead of running `reply` again.
    let draft = || strict::ClassifyNext::Reply {
        draft: "more?".into(),
        urgency: 1,
    };
    let model = ScriptedModel::new()
        .then(draft())
        .then(draft())
        .then(draft());
    let runner = Runner::builder().model(model).build();
    let outcome = runner
        .start(&Agent, Strict::start(7), Vec::new())
        .await
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(outcome.terminal, Strict::Done);
    assert_eq!(
        outcome.path,
        [
            "Intake", "Classify", "Reply", "Classify", "Reply", "Classify", "Reply", "GaveUp",
            "Done"
        ]
    );
    assert!(matches!(
        outcome.bound_hit,
        Some(BoundHit::Visits { limit: 2, .. })
    ));
    assert_eq!(
        outcome.context[1],
        "state `Reply` reached its limit of 2 visits"
    );
}
