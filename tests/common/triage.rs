//! The support-triage machine of the example, for the PostgreSQL worker
//! tests: a gate picks a refund (which waits for approval), an escalation
//! or a reply. Handlers pause a random few milliseconds, can hang in one
//! state, and log `State@step` into the context, so a transition applied
//! twice would show.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use guiderail::RunId;
use guiderail::prelude::*;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub text: String,
    /// `State@step` for every handler run that was checkpointed.
    pub log: Vec<String>,
}

/// A support agent.
#[guiderail::machine(context = Ticket, max_steps = 20)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Triage {
    #[initial]
    #[to(Classify)]
    Intake,
    /// Refund, escalate or reply.
    #[gate]
    #[to(IssueRefund, Escalate, Reply)]
    Classify,
    #[to(Approve)]
    IssueRefund { order_id: u64 },
    #[to(Done)]
    Escalate { reason: String },
    #[max_visits(3)]
    #[to(Classify, Done)]
    Reply { draft: String },
    /// A human approves the refund (and a reply goes out) or closes it.
    #[wait]
    #[to(Reply, Done)]
    Approve,
    #[terminal]
    Done,
}

/// Handlers with a random pause of up to `max_delay_ms` in every state,
/// and an optional state to hang in for `hang` (a slow step).
#[derive(Debug, Default)]
pub struct Agent {
    pub max_delay_ms: u64,
    pub hang_in: Option<&'static str>,
    pub hang: Duration,
    /// Handler calls, re-runs included.
    pub calls: AtomicU64,
    /// Appended to every log entry (a changed handler, for replay tests).
    pub suffix: &'static str,
}

impl Agent {
    pub fn with_delay(max_delay_ms: u64) -> Self {
        Agent {
            max_delay_ms,
            ..Agent::default()
        }
    }

    pub fn hanging_in(state: &'static str, hang: Duration) -> Self {
        Agent {
            hang_in: Some(state),
            hang,
            ..Agent::default()
        }
    }

    async fn work(&self, cx: &mut Cx<'_, Triage>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let state = cx.state().name;
        if self.hang_in == Some(state) {
            tokio::time::sleep(self.hang).await;
        }
        if self.max_delay_ms > 0 {
            let r = RunId::new().as_u128() as u64 % (self.max_delay_ms + 1);
            tokio::time::sleep(Duration::from_millis(r)).await;
        }
        let entry = format!("{state}@{}{}", cx.step(), self.suffix);
        cx.context_mut().log.push(entry);
    }
}

#[guiderail::handlers]
impl triage::Handlers for Agent {
    async fn intake(&self, cx: &mut Cx<'_, Triage>) -> HandlerResult<triage::IntakeNext> {
        self.work(cx).await;
        Ok(triage::IntakeNext::Classify)
    }
    async fn classify(
        &self,
        cx: &mut Cx<'_, Triage>,
    ) -> HandlerResult<Decision<triage::ClassifyNext>> {
        self.work(cx).await;
        let prompt = format!("Ticket: {}", cx.context().text);
        Ok(cx.decide(prompt).await?)
    }
    async fn issue_refund(
        &self,
        cx: &mut Cx<'_, Triage>,
        _order_id: u64,
    ) -> HandlerResult<triage::IssueRefundNext> {
        self.work(cx).await;
        Ok(triage::IssueRefundNext::Approve)
    }
    async fn escalate(
        &self,
        cx: &mut Cx<'_, Triage>,
        _reason: String,
    ) -> HandlerResult<triage::EscalateNext> {
        self.work(cx).await;
        Ok(triage::EscalateNext::Done)
    }
    async fn reply(
        &self,
        cx: &mut Cx<'_, Triage>,
        _draft: String,
    ) -> HandlerResult<triage::ReplyNext> {
        self.work(cx).await;
        Ok(triage::ReplyNext::Done)
    }
}

/// A scripted model that escalates `n` times.
pub fn escalating(n: usize) -> ScriptedModel {
    (0..n).fold(ScriptedModel::new(), |m, _| {
        m.then(triage::ClassifyNext::Escalate {
            reason: "legal".into(),
        })
    })
}

/// The path of an escalated run.
pub const ESCALATED: [&str; 4] = ["Intake", "Classify", "Escalate", "Done"];

/// Checks a finished run's stored history: checkpoints `0..=n` without a
/// gap, the escalation path, one log entry per handler step, in order.
pub async fn assert_escalated_once(store: &dyn guiderail::store::Store, run_id: RunId) {
    let cps = store.checkpoints(run_id).await.unwrap();
    let seqs: Vec<u64> = cps.iter().map(|c| c.seq).collect();
    assert_eq!(
        seqs,
        (0..cps.len() as u64).collect::<Vec<_>>(),
        "run {run_id}"
    );
    let last = cps.last().unwrap();
    assert_eq!(
        last.status,
        guiderail::store::RunStatus::Finished,
        "run {run_id}"
    );
    assert_eq!(last.path, ESCALATED, "run {run_id}");
    let ticket: Ticket = serde_json::from_value(last.context.clone()).unwrap();
    assert_eq!(
        ticket.log,
        ["Intake@1", "Classify@2", "Escalate@3"],
        "run {run_id}: every handler's transition applied exactly once"
    );
}
