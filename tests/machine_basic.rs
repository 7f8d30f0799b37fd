//! The macro and the runner end to end through the facade.
#![allow(missing_docs)]

use guiderail::prelude::*;

#[derive(Debug, Default)]
pub struct Ticket {
    pub text: String,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Refund {
    pub order_id: u64,
    pub amount_cents: u64,
}

/// A support-ticket agent.
#[guiderail::machine(context = Ticket, max_steps = 20)]
#[derive(Debug, PartialEq)]
pub enum Support {
    /// The ticket arrives.
    #[initial]
    #[to(Classify)]
    Intake,
    /// The model reads the ticket and picks one of three typed actions.
    #[gate]
    #[to(IssueRefund, Escalate, Reply)]
    Classify,
    /// Pay the money back.
    #[to(AwaitApproval)]
    IssueRefund(Refund),
    /// Hand over to a human.
    #[to(Done)]
    Escalate { reason: String },
    #[max_visits(3)]
    #[to(Classify, Done)]
    Reply { draft: String },
    #[wait]
    #[to(Done, Escalate)]
    AwaitApproval,
    #[terminal]
    Done,
}

struct Agent;

#[guiderail::handlers]
impl support::Handlers for Agent {
    async fn intake(&self, cx: &mut Cx<'_, Support>) -> HandlerResult<support::IntakeNext> {
        cx.context_mut().notes.push("intake".into());
        Ok(support::IntakeNext::Classify)
    }

    async fn classify(
        &self,
        cx: &mut Cx<'_, Support>,
    ) -> HandlerResult<Decision<support::ClassifyNext>> {
        let text = cx.context().text.clone();
        Ok(cx.decide(format!("Ticket: {text}")).await?)
    }

    async fn issue_refund(
        &self,
        cx: &mut Cx<'_, Support>,
        payload: Refund,
    ) -> HandlerResult<support::IssueRefundNext> {
        cx.context_mut()
            .notes
            .push(format!("refund {}", payload.order_id));
        Ok(support::IssueRefundNext::AwaitApproval)
    }

    async fn escalate(
        &self,
        cx: &mut Cx<'_, Support>,
        reason: String,
    ) -> HandlerResult<support::EscalateNext> {
        cx.context_mut().notes.push(reason);
        Ok(support::EscalateNext::Done)
    }

    async fn reply(
        &self,
        _cx: &mut Cx<'_, Support>,
        _draft: String,
    ) -> HandlerResult<support::ReplyNext> {
        Ok(support::ReplyNext::Done)
    }
}

#[tokio::test]
async fn refund_path_waits_then_finishes() {
    let model = ScriptedModel::new().then(support::ClassifyNext::IssueRefund(Refund {
        order_id: 7,
        amount_cents: 1200,
    }));
    let runner = Runner::builder().model(model).build();
    let ended = runner
        .start(&Agent, Support::start(), Ticket::default())
        .await
        .unwrap();
    let waiting = ended.waiting().expect("waits for approval");
    assert_eq!(waiting.state_name(), "AwaitApproval");
    let outcome = runner
        .signal(&Agent, waiting, support::AwaitApprovalNext::Done)
        .await
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(outcome.terminal, Support::Done);
    assert_eq!(
        outcome.path,
        ["Intake", "Classify", "IssueRefund", "AwaitApproval", "Done"]
    );
    assert_eq!(outcome.context.notes, ["intake", "refund 7"]);
    assert!(Support::MERMAID.contains("Classify --> IssueRefund: model"));
}

/// A machine whose struct payload fields carry docs and attributes.
#[guiderail::machine(context = ())]
pub enum Documented {
    #[initial]
    #[to(Pair)]
    Start {
        /// Why the run starts.
        #[allow(unused)]
        reason: String,
        /// How many.
        count: Vec<u32>,
    },
    #[to(Done)]
    Pair(u64, String),
    #[terminal]
    Done,
}

#[test]
fn the_graph_shows_payloads_without_field_docs() {
    let g = Documented::graph();
    let payload = |name| g.state(name).unwrap().payload;
    assert_eq!(payload("Start"), "{ reason : String, count : Vec < u32 > }");
    assert_eq!(payload("Pair"), "(u64, String)");
    assert_eq!(payload("Done"), "");
    assert!(!g.mermaid.contains("doc"), "{}", g.mermaid);
}
