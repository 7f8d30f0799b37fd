//! Two machines written by hand, exactly the way `#[guiderail::machine]`
//! expands (see `macros/src/expand/*.rs`): a `Machine` impl with a static
//! `Graph`, a `Dispatch<H>` impl that is a `match` with a direct `.await`,
//! `Start` through `__private::start`, one move enum per state with `From`
//! into the machine enum, `GateMoves` with the spec cached in a `OnceLock`,
//! and `Signal` for the move enums of wait states.
//!
//! `Support` is the support-ticket agent (no `on_exhausted`: bounds end the
//! run with an error). `Guarded` is a small agent with
//! `on_exhausted = WrapUp`, whose wrap-up state carries the `BoundHit`.
//!
//! The handler sets (`Agent`, `Worker`) take faults by state name, so the
//! runner tests can make any handler sleep, hang, fail or panic.

#![allow(dead_code, missing_docs)]

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use guiderail_runtime::{
    __private, BoundHit, Cx, Decision, Dispatch, Edge, Graph, HandlerResult, Machine, Start,
    StateInfo, StateKind, Step, WorstCase,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

// ---------------------------------------------------------------------------
// Support: Intake → Classify (gate) → {Refund, Escalate, Reply}; Refund →
// AwaitApproval (wait) → {Done, Escalate}; Escalate → {Done, AwaitHandoff
// (wait) → Done}; Reply (max 3 visits) → {Classify, Done}.
// ---------------------------------------------------------------------------

/// What the support agent works on, and what the tests read back.
#[derive(Debug, Default)]
pub struct Ticket {
    /// The customer's message (goes into the gate's prompt).
    pub text: String,
    /// Moves `Classify` takes as overrides, in order; when empty it asks
    /// the model.
    pub plan: VecDeque<support::ClassifyNext>,
    /// `Reply` goes back to `Classify` (else to `Done`).
    pub reply_loops: bool,
    /// `Escalate` waits for a human handoff (else goes to `Done`).
    pub handoff: bool,
    /// `State@step#visits` for every handler that ran.
    pub log: Vec<String>,
    /// The refund the run prepared.
    pub refund: Option<Refund>,
    /// Why the run escalated.
    pub reason: Option<String>,
    /// Replies sent.
    pub drafts: Vec<String>,
}

impl Ticket {
    pub fn new(text: &str) -> Self {
        Ticket {
            text: text.to_owned(),
            ..Ticket::default()
        }
    }

    /// A ticket whose gate takes these moves (as overrides), in order.
    pub fn planned(moves: impl IntoIterator<Item = support::ClassifyNext>) -> Self {
        Ticket {
            text: "planned".into(),
            plan: moves.into_iter().collect(),
            ..Ticket::default()
        }
    }
}

/// A refund the model may decide to issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Refund {
    /// The order to refund.
    pub order_id: u64,
    /// How much, in cents.
    pub amount_cents: u64,
}

/// The support agent.
#[derive(Debug, PartialEq)]
pub enum Support {
    /// A ticket arrives.
    Intake,
    /// The model reads the ticket and picks what happens next.
    Classify,
    /// Refund an order (needs a human's approval).
    Refund(Refund),
    /// Hand the ticket to a human, saying why.
    Escalate { reason: String },
    /// Ask the customer for what is missing.
    Reply { draft: String },
    /// A human approves or rejects the refund.
    AwaitApproval,
    /// A human takes the escalated ticket over.
    AwaitHandoff,
    /// The ticket is closed.
    Done,
}

/// The moves and handlers of the `Support` machine (what the macro puts in
/// the generated module).
#[allow(unused_imports, clippy::enum_variant_names)]
pub mod support {
    use super::*;

    /// The moves out of `Support::Intake`: `Classify`.
    pub enum IntakeNext {
        Classify,
    }

    impl From<IntakeNext> for super::Support {
        #[inline]
        fn from(next: IntakeNext) -> Self {
            match next {
                IntakeNext::Classify => super::Support::Classify,
            }
        }
    }

    /// The moves out of `Support::Classify`: `Refund`, `Escalate`, `Reply`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub enum ClassifyNext {
        /// Refund an order (needs a human's approval).
        Refund(Refund),
        /// Hand the ticket to a human, saying why.
        Escalate { reason: String },
        /// Ask the customer for what is missing.
        Reply { draft: String },
    }

    impl From<ClassifyNext> for super::Support {
        #[inline]
        fn from(next: ClassifyNext) -> Self {
            match next {
                ClassifyNext::Refund(p) => super::Support::Refund(p),
                ClassifyNext::Escalate { reason } => super::Support::Escalate { reason },
                ClassifyNext::Reply { draft } => super::Support::Reply { draft },
            }
        }
    }

    impl guiderail_runtime::GateMoves for ClassifyNext {
        const MACHINE: &'static str = "Support";
        const GATE: &'static str = "Classify";
        const GATE_DOC: &'static str = "The model reads the ticket and picks what happens next.";
        const MOVES: &'static [guiderail_runtime::MoveInfo] = &[
            guiderail_runtime::MoveInfo {
                name: "Refund",
                doc: "Refund an order (needs a human's approval).",
                shape: guiderail_runtime::MoveShape::Newtype,
            },
            guiderail_runtime::MoveInfo {
                name: "Escalate",
                doc: "Hand the ticket to a human, saying why.",
                shape: guiderail_runtime::MoveShape::Struct,
            },
            guiderail_runtime::MoveInfo {
                name: "Reply",
                doc: "Ask the customer for what is missing.",
                shape: guiderail_runtime::MoveShape::Struct,
            },
        ];

        fn spec() -> &'static __private::GateSpec {
            static SPEC: std::sync::OnceLock<__private::GateSpec> = std::sync::OnceLock::new();
            SPEC.get_or_init(__private::GateSpec::build::<ClassifyNext>)
        }
    }

    const _: () = __private::assert_gate_payload::<Refund>();
    const _: () = __private::assert_gate_payload::<String>();

    /// The moves out of `Support::Refund`: `AwaitApproval`.
    pub enum RefundNext {
        AwaitApproval,
    }

    impl From<RefundNext> for super::Support {
        #[inline]
        fn from(next: RefundNext) -> Self {
            match next {
                RefundNext::AwaitApproval => super::Support::AwaitApproval,
            }
        }
    }

    /// The moves out of `Support::Escalate`: `Done`, `AwaitHandoff`.
    pub enum EscalateNext {
        Done,
        AwaitHandoff,
    }

    impl From<EscalateNext> for super::Support {
        #[inline]
        fn from(next: EscalateNext) -> Self {
            match next {
                EscalateNext::Done => super::Support::Done,
                EscalateNext::AwaitHandoff => super::Support::AwaitHandoff,
            }
        }
    }

    /// The moves out of `Support::Reply`: `Classify`, `Done`.
    pub enum ReplyNext {
        Classify,
        Done,
    }

    impl From<ReplyNext> for super::Support {
        #[inline]
        fn from(next: ReplyNext) -> Self {
            match next {
                ReplyNext::Classify => super::Support::Classify,
                ReplyNext::Done => super::Support::Done,
            }
        }
    }

    /// The moves out of `Support::AwaitApproval`: `Done`, `Escalate`.
    #[derive(Debug)]
    pub enum AwaitApprovalNext {
        Done,
        Escalate { reason: String },
    }

    impl From<AwaitApprovalNext> for super::Support {
        #[inline]
        fn from(next: AwaitApprovalNext) -> Self {
            match next {
                AwaitApprovalNext::Done => super::Support::Done,
                AwaitApprovalNext::Escalate { reason } => super::Support::Escalate { reason },
            }
        }
    }

    impl guiderail_runtime::Signal<super::Support> for AwaitApprovalNext {
        const STATE: usize = 5;
        #[inline]
        fn into_state(self) -> super::Support {
            From::from(self)
        }
    }

    /// The moves out of `Support::AwaitHandoff`: `Done`.
    #[derive(Debug)]
    pub enum AwaitHandoffNext {
        Done,
    }

    impl From<AwaitHandoffNext> for super::Support {
        #[inline]
        fn from(next: AwaitHandoffNext) -> Self {
            match next {
                AwaitHandoffNext::Done => super::Support::Done,
            }
        }
    }

    impl guiderail_runtime::Signal<super::Support> for AwaitHandoffNext {
        const STATE: usize = 6;
        #[inline]
        fn into_state(self) -> super::Support {
            From::from(self)
        }
    }

    /// The handlers of `Support`: one method per state that runs code.
    pub trait Handlers: Send + Sync {
        fn intake(
            &self,
            cx: &mut Cx<'_, super::Support>,
        ) -> impl Future<Output = HandlerResult<IntakeNext>> + Send;
        fn classify(
            &self,
            cx: &mut Cx<'_, super::Support>,
        ) -> impl Future<Output = HandlerResult<Decision<ClassifyNext>>> + Send;
        fn refund(
            &self,
            cx: &mut Cx<'_, super::Support>,
            payload: Refund,
        ) -> impl Future<Output = HandlerResult<RefundNext>> + Send;
        fn escalate(
            &self,
            cx: &mut Cx<'_, super::Support>,
            reason: String,
        ) -> impl Future<Output = HandlerResult<EscalateNext>> + Send;
        fn reply(
            &self,
            cx: &mut Cx<'_, super::Support>,
            draft: String,
        ) -> impl Future<Output = HandlerResult<ReplyNext>> + Send;
    }
}

static SUPPORT_GRAPH: Graph = Graph {
    name: "Support",
    states: &[
        StateInfo {
            name: "Intake",
            kind: StateKind::Plain,
            payload: "",
            doc: "A ticket arrives.",
            max_visits: None,
            initial: true,
        },
        StateInfo {
            name: "Classify",
            kind: StateKind::Gate,
            payload: "",
            doc: "The model reads the ticket and picks what happens next.",
            max_visits: None,
            initial: false,
        },
        StateInfo {
            name: "Refund",
            kind: StateKind::Plain,
            payload: "(Refund)",
            doc: "Refund an order (needs a human's approval).",
            max_visits: None,
            initial: false,
        },
        StateInfo {
            name: "Escalate",
            kind: StateKind::Plain,
            payload: "{ reason : String }",
            doc: "Hand the ticket to a human, saying why.",
            max_visits: None,
            initial: false,
        },
        StateInfo {
            name: "Reply",
            kind: StateKind::Plain,
            payload: "{ draft : String }",
            doc: "Ask the customer for what is missing.",
            max_visits: Some(3),
            initial: false,
        },
        StateInfo {
            name: "AwaitApproval",
            kind: StateKind::Wait,
            payload: "",
            doc: "A human approves or rejects the refund.",
            max_visits: None,
            initial: false,
        },
        StateInfo {
            name: "AwaitHandoff",
            kind: StateKind::Wait,
            payload: "",
            doc: "A human takes the escalated ticket over.",
            max_visits: None,
            initial: false,
        },
        StateInfo {
            name: "Done",
            kind: StateKind::Terminal,
            payload: "",
            doc: "The ticket is closed.",
            max_visits: None,
            initial: false,
        },
    ],
    edges: &[
        Edge {
            from: 0,
            to: 1,
            kind: StateKind::Plain,
        },
        Edge {
            from: 1,
            to: 2,
            kind: StateKind::Gate,
        },
        Edge {
            from: 1,
            to: 3,
            kind: StateKind::Gate,
        },
        Edge {
            from: 1,
            to: 4,
            kind: StateKind::Gate,
        },
        Edge {
            from: 2,
            to: 5,
            kind: StateKind::Plain,
        },
        Edge {
            from: 3,
            to: 7,
            kind: StateKind::Plain,
        },
        Edge {
            from: 3,
            to: 6,
            kind: StateKind::Plain,
        },
        Edge {
            from: 4,
            to: 1,
            kind: StateKind::Plain,
        },
        Edge {
            from: 4,
            to: 7,
            kind: StateKind::Plain,
        },
        Edge {
            from: 5,
            to: 7,
            kind: StateKind::Wait,
        },
        Edge {
            from: 5,
            to: 3,
            kind: StateKind::Wait,
        },
        Edge {
            from: 6,
            to: 7,
            kind: StateKind::Wait,
        },
    ],
    initial: 0,
    // Below the worst case (12) on purpose, so the machine's own step limit
    // can be reached: Intake, 3 × (Classify, Reply), Classify, Refund,
    // AwaitApproval is 10 steps, and the signal that follows is refused.
    max_steps: Some(10),
    on_exhausted: None,
    worst_case: WorstCase {
        steps: Some(10),
        decisions: Some(4),
    },
    // Any constant: hand-written graphs are not fingerprinted.
    fingerprint: 0x5355_5050_4f52_5401,
    shape: "",
    mermaid: "stateDiagram-v2\n    state \"Classify (gate)\" as Classify\n    state \"Reply (max 3 visits)\" as Reply\n    state \"AwaitApproval (wait)\" as AwaitApproval\n    state \"AwaitHandoff (wait)\" as AwaitHandoff\n    [*] --> Intake\n    Intake --> Classify\n    Classify --> Refund: model\n    Classify --> Escalate: model\n    Classify --> Reply: model\n    Refund --> AwaitApproval\n    Escalate --> Done\n    Escalate --> AwaitHandoff\n    Reply --> Classify\n    Reply --> Done\n    AwaitApproval --> Done: signal\n    AwaitApproval --> Escalate: signal\n    AwaitHandoff --> Done: signal\n    Done --> [*]\n",
    dot: "digraph Support {\n    Intake -> Classify;\n    Classify -> Refund [label=\"model\"];\n    Classify -> Escalate [label=\"model\"];\n    Classify -> Reply [label=\"model\"];\n    Refund -> AwaitApproval;\n    Escalate -> Done;\n    Escalate -> AwaitHandoff;\n    Reply -> Classify;\n    Reply -> Done;\n    AwaitApproval -> Done [label=\"signal\", style=dashed];\n    AwaitApproval -> Escalate [label=\"signal\", style=dashed];\n    AwaitHandoff -> Done [label=\"signal\", style=dashed];\n}\n",
};

impl Machine for Support {
    type Context = Ticket;
    const NAME: &'static str = "Support";

    fn graph() -> &'static Graph {
        &SUPPORT_GRAPH
    }

    #[inline]
    fn state_index(&self) -> usize {
        match self {
            Support::Intake => 0,
            Support::Classify => 1,
            Support::Refund { .. } => 2,
            Support::Escalate { .. } => 3,
            Support::Reply { .. } => 4,
            Support::AwaitApproval => 5,
            Support::AwaitHandoff => 6,
            Support::Done => 7,
        }
    }

    fn on_exhausted(_hit: &BoundHit) -> Option<Self> {
        None
    }
}

impl<H: support::Handlers + ?Sized> Dispatch<H> for Support {
    // The form the macro emits (it is `#[automatically_derived]` there).
    #[allow(clippy::manual_async_fn)]
    fn step<'a>(
        self,
        handlers: &'a H,
        cx: &'a mut Cx<'_, Self>,
    ) -> impl Future<Output = Step<Self>> + Send + 'a {
        async move {
            match self {
                Support::Intake => __private::moved(handlers.intake(cx).await),
                Support::Classify => __private::decided(handlers.classify(cx).await),
                Support::Refund(p0) => __private::moved(handlers.refund(cx, p0).await),
                Support::Escalate { reason } => {
                    __private::moved(handlers.escalate(cx, reason).await)
                }
                Support::Reply { draft } => __private::moved(handlers.reply(cx, draft).await),
                state @ Support::AwaitApproval => Step::Wait(state),
                state @ Support::AwaitHandoff => Step::Wait(state),
                state @ Support::Done => Step::Terminal(state),
            }
        }
    }
}

impl Support {
    /// Starts a run in the initial state `Intake`.
    #[must_use]
    pub fn start() -> Start<Support> {
        __private::start(Support::Intake)
    }
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

/// The error a handler fails with when told to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub state: &'static str,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the handler of `{}` broke on purpose", self.state)
    }
}

impl std::error::Error for Broken {}

/// What a handler does before its work, by state name.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Sleep (on tokio's clock) this long in these states.
    pub sleep: Vec<(&'static str, Duration)>,
    /// Return `Broken` in this state.
    pub fail_in: Option<&'static str>,
    /// Panic in this state.
    pub panic_in: Option<&'static str>,
    /// Never finish in this state (after notifying `hung`).
    pub hang_in: Option<&'static str>,
    /// Notified when a handler starts hanging.
    pub hung: Arc<Notify>,
    /// Yield to the scheduler once in every handler.
    pub yield_each: bool,
}

impl Faults {
    pub async fn enter(&self, state: &'static str) -> HandlerResult<()> {
        if self.yield_each {
            tokio::task::yield_now().await;
        }
        for (s, d) in &self.sleep {
            if *s == state {
                tokio::time::sleep(*d).await;
            }
        }
        if self.hang_in == Some(state) {
            self.hung.notify_one();
            std::future::pending::<()>().await;
        }
        if self.panic_in == Some(state) {
            panic!("the handler of `{state}` panicked on purpose");
        }
        if self.fail_in == Some(state) {
            return Err(Broken { state }.into());
        }
        Ok(())
    }
}

fn note<M: Machine>(cx: &Cx<'_, M>) -> String {
    format!("{}@{}#{}", cx.state().name, cx.step(), cx.visits())
}

// ---------------------------------------------------------------------------
// Agent: the handlers of `Support`.
// ---------------------------------------------------------------------------

/// The handlers of `Support`, with injectable faults.
#[derive(Debug, Default, Clone)]
pub struct Agent {
    pub faults: Faults,
}

impl Agent {
    pub fn new() -> Self {
        Agent::default()
    }

    pub fn with(faults: Faults) -> Self {
        Agent { faults }
    }
}

impl support::Handlers for Agent {
    async fn intake(&self, cx: &mut Cx<'_, Support>) -> HandlerResult<support::IntakeNext> {
        self.faults.enter("Intake").await?;
        let n = note(cx);
        cx.context_mut().log.push(n);
        Ok(support::IntakeNext::Classify)
    }

    async fn classify(
        &self,
        cx: &mut Cx<'_, Support>,
    ) -> HandlerResult<Decision<support::ClassifyNext>> {
        self.faults.enter("Classify").await?;
        let n = note(cx);
        cx.context_mut().log.push(n);
        if let Some(next) = cx.context_mut().plan.pop_front() {
            return Ok(Decision::overridden(next, "planned by the test"));
        }
        let prompt = format!("Ticket: {}\nDecide what to do next.", cx.context().text);
        Ok(cx.decide(prompt).await?)
    }

    async fn refund(
        &self,
        cx: &mut Cx<'_, Support>,
        payload: Refund,
    ) -> HandlerResult<support::RefundNext> {
        self.faults.enter("Refund").await?;
        let n = note(cx);
        let ticket = cx.context_mut();
        ticket.log.push(n);
        ticket.refund = Some(payload);
        Ok(support::RefundNext::AwaitApproval)
    }

    async fn escalate(
        &self,
        cx: &mut Cx<'_, Support>,
        reason: String,
    ) -> HandlerResult<support::EscalateNext> {
        self.faults.enter("Escalate").await?;
        let n = note(cx);
        let ticket = cx.context_mut();
        ticket.log.push(n);
        ticket.reason = Some(reason);
        Ok(if ticket.handoff {
            support::EscalateNext::AwaitHandoff
        } else {
            support::EscalateNext::Done
        })
    }

    async fn reply(
        &self,
        cx: &mut Cx<'_, Support>,
        draft: String,
    ) -> HandlerResult<support::ReplyNext> {
        self.faults.enter("Reply").await?;
        let n = note(cx);
        let ticket = cx.context_mut();
        ticket.log.push(n);
        ticket.drafts.push(draft);
        Ok(if ticket.reply_loops {
            support::ReplyNext::Classify
        } else {
            support::ReplyNext::Done
        })
    }
}

// ---------------------------------------------------------------------------
// Guarded: Start → Think (gate) → {Work { n } (max 3 visits) → {Think,
// Finish}, Finish}; `on_exhausted = WrapUp`, WrapUp(BoundHit) → {WrapUp,
// Finish}.
// ---------------------------------------------------------------------------

/// What `Guarded` records.
#[derive(Debug, Default)]
pub struct Log {
    /// `State@step#visits` for every handler that ran.
    pub entries: Vec<String>,
    /// The `n` of every `Work` entered.
    pub work: Vec<u32>,
    /// The payload `WrapUp` was entered with.
    pub wrap_payload: Option<BoundHit>,
    /// What `cx.bound_hit()` said in `WrapUp`.
    pub wrap_seen: Option<BoundHit>,
}

/// An agent that wraps up when a bound is hit.
#[derive(Debug, PartialEq)]
pub enum Guarded {
    /// The run begins.
    Start,
    /// The model picks: more work, or finish.
    Think,
    /// One unit of work.
    Work { n: u32 },
    /// A bound was hit: finish gracefully.
    WrapUp(BoundHit),
    /// The end.
    Finish,
}

#[allow(unused_imports, clippy::enum_variant_names)]
pub mod guarded {
    use super::*;

    /// The moves out of `Guarded::Start`: `Think`.
    pub enum StartNext {
        Think,
    }

    impl From<StartNext> for super::Guarded {
        #[inline]
        fn from(next: StartNext) -> Self {
            match next {
                StartNext::Think => super::Guarded::Think,
            }
        }
    }

    /// The moves out of `Guarded::Think`: `Work`, `Finish`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub enum ThinkNext {
        /// One unit of work.
        Work { n: u32 },
        /// The end.
        Finish,
    }

    impl From<ThinkNext> for super::Guarded {
        #[inline]
        fn from(next: ThinkNext) -> Self {
            match next {
                ThinkNext::Work { n } => super::Guarded::Work { n },
                ThinkNext::Finish => super::Guarded::Finish,
            }
        }
    }

    impl guiderail_runtime::GateMoves for ThinkNext {
        const MACHINE: &'static str = "Guarded";
        const GATE: &'static str = "Think";
        const GATE_DOC: &'static str = "The model picks: more work, or finish.";
        const MOVES: &'static [guiderail_runtime::MoveInfo] = &[
            guiderail_runtime::MoveInfo {
                name: "Work",
                doc: "One unit of work.",
                shape: guiderail_runtime::MoveShape::Struct,
            },
            guiderail_runtime::MoveInfo {
                name: "Finish",
                doc: "The end.",
                shape: guiderail_runtime::MoveShape::Unit,
            },
        ];

        fn spec() -> &'static __private::GateSpec {
            static SPEC: std::sync::OnceLock<__private::GateSpec> = std::sync::OnceLock::new();
            SPEC.get_or_init(__private::GateSpec::build::<ThinkNext>)
        }
    }

    const _: () = __private::assert_gate_payload::<u32>();

    /// The moves out of `Guarded::Work`: `Think`, `Finish`.
    pub enum WorkNext {
        Think,
        Finish,
    }

    impl From<WorkNext> for super::Guarded {
        #[inline]
        fn from(next: WorkNext) -> Self {
            match next {
                WorkNext::Think => super::Guarded::Think,
                WorkNext::Finish => super::Guarded::Finish,
            }
        }
    }

    /// The moves out of `Guarded::WrapUp`: `WrapUp`, `Finish`.
    pub enum WrapUpNext {
        WrapUp(BoundHit),
        Finish,
    }

    impl From<WrapUpNext> for super::Guarded {
        #[inline]
        fn from(next: WrapUpNext) -> Self {
            match next {
                WrapUpNext::WrapUp(p) => super::Guarded::WrapUp(p),
                WrapUpNext::Finish => super::Guarded::Finish,
            }
        }
    }

    /// The handlers of `Guarded`.
    pub trait Handlers: Send + Sync {
        fn start(
            &self,
            cx: &mut Cx<'_, super::Guarded>,
        ) -> impl Future<Output = HandlerResult<StartNext>> + Send;
        fn think(
            &self,
            cx: &mut Cx<'_, super::Guarded>,
        ) -> impl Future<Output = HandlerResult<Decision<ThinkNext>>> + Send;
        fn work(
            &self,
            cx: &mut Cx<'_, super::Guarded>,
            n: u32,
        ) -> impl Future<Output = HandlerResult<WorkNext>> + Send;
        fn wrap_up(
            &self,
            cx: &mut Cx<'_, super::Guarded>,
            payload: BoundHit,
        ) -> impl Future<Output = HandlerResult<WrapUpNext>> + Send;
    }
}

static GUARDED_GRAPH: Graph = Graph {
    name: "Guarded",
    states: &[
        StateInfo {
            name: "Start",
            kind: StateKind::Plain,
            payload: "",
            doc: "The run begins.",
            max_visits: None,
            initial: true,
        },
        StateInfo {
            name: "Think",
            kind: StateKind::Gate,
            payload: "",
            doc: "The model picks: more work, or finish.",
            max_visits: None,
            initial: false,
        },
        StateInfo {
            name: "Work",
            kind: StateKind::Plain,
            payload: "{ n : u32 }",
            doc: "One unit of work.",
            max_visits: Some(3),
            initial: false,
        },
        StateInfo {
            name: "WrapUp",
            kind: StateKind::Plain,
            payload: "(BoundHit)",
            doc: "A bound was hit: finish gracefully.",
            max_visits: None,
            initial: false,
        },
        StateInfo {
            name: "Finish",
            kind: StateKind::Terminal,
            payload: "",
            doc: "The end.",
            max_visits: None,
            initial: false,
        },
    ],
    edges: &[
        Edge {
            from: 0,
            to: 1,
            kind: StateKind::Plain,
        },
        Edge {
            from: 1,
            to: 2,
            kind: StateKind::Gate,
        },
        Edge {
            from: 1,
            to: 4,
            kind: StateKind::Gate,
        },
        Edge {
            from: 2,
            to: 1,
            kind: StateKind::Plain,
        },
        Edge {
            from: 2,
            to: 4,
            kind: StateKind::Plain,
        },
        Edge {
            from: 3,
            to: 3,
            kind: StateKind::Plain,
        },
        Edge {
            from: 3,
            to: 4,
            kind: StateKind::Plain,
        },
    ],
    initial: 0,
    max_steps: Some(12),
    on_exhausted: Some(3),
    worst_case: WorstCase {
        steps: Some(13),
        decisions: Some(4),
    },
    fingerprint: 0x4755_4152_4445_4401,
    shape: "",
    mermaid: "stateDiagram-v2\n    state \"Think (gate)\" as Think\n    state \"Work (max 3 visits)\" as Work\n    [*] --> Start\n    Start --> Think\n    Think --> Work: model\n    Think --> Finish: model\n    Work --> Think\n    Work --> Finish\n    WrapUp --> WrapUp\n    WrapUp --> Finish\n    Finish --> [*]\n    note left of WrapUp: on_exhausted\n",
    dot: "digraph Guarded {\n    Start -> Think;\n    Think -> Work [label=\"model\"];\n    Think -> Finish [label=\"model\"];\n    Work -> Think;\n    Work -> Finish;\n    WrapUp -> WrapUp;\n    WrapUp -> Finish;\n}\n",
};

impl Machine for Guarded {
    type Context = Log;
    const NAME: &'static str = "Guarded";

    fn graph() -> &'static Graph {
        &GUARDED_GRAPH
    }

    #[inline]
    fn state_index(&self) -> usize {
        match self {
            Guarded::Start => 0,
            Guarded::Think => 1,
            Guarded::Work { .. } => 2,
            Guarded::WrapUp { .. } => 3,
            Guarded::Finish => 4,
        }
    }

    fn on_exhausted(hit: &BoundHit) -> Option<Self> {
        Some(Guarded::WrapUp(hit.clone()))
    }
}

impl<H: guarded::Handlers + ?Sized> Dispatch<H> for Guarded {
    // The form the macro emits (it is `#[automatically_derived]` there).
    #[allow(clippy::manual_async_fn)]
    fn step<'a>(
        self,
        handlers: &'a H,
        cx: &'a mut Cx<'_, Self>,
    ) -> impl Future<Output = Step<Self>> + Send + 'a {
        async move {
            match self {
                Guarded::Start => __private::moved(handlers.start(cx).await),
                Guarded::Think => __private::decided(handlers.think(cx).await),
                Guarded::Work { n } => __private::moved(handlers.work(cx, n).await),
                Guarded::WrapUp(p0) => __private::moved(handlers.wrap_up(cx, p0).await),
                state @ Guarded::Finish => Step::Terminal(state),
            }
        }
    }
}

impl Guarded {
    /// Starts a run in the initial state `Start`.
    #[must_use]
    pub fn start() -> Start<Guarded> {
        __private::start(Guarded::Start)
    }
}

/// What `WrapUp` does.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum WrapMode {
    /// Go to `Finish`.
    #[default]
    Finish,
    /// Go to `WrapUp` again, for ever (the wrap-up allowance stops it).
    Loop,
}

/// The handlers of `Guarded`.
#[derive(Debug, Default, Clone)]
pub struct Worker {
    /// `Think` asks the model; else it overrides with `Work { n: visits }`.
    pub ask_model: bool,
    pub wrap: WrapMode,
    pub faults: Faults,
}

impl guarded::Handlers for Worker {
    async fn start(&self, cx: &mut Cx<'_, Guarded>) -> HandlerResult<guarded::StartNext> {
        self.faults.enter("Start").await?;
        let n = note(cx);
        cx.context_mut().entries.push(n);
        Ok(guarded::StartNext::Think)
    }

    async fn think(&self, cx: &mut Cx<'_, Guarded>) -> HandlerResult<Decision<guarded::ThinkNext>> {
        self.faults.enter("Think").await?;
        let n = note(cx);
        cx.context_mut().entries.push(n);
        if self.ask_model {
            Ok(cx.decide("More work, or finish?").await?)
        } else {
            let n = cx.visits();
            Ok(Decision::overridden(
                guarded::ThinkNext::Work { n },
                "always more work",
            ))
        }
    }

    async fn work(&self, cx: &mut Cx<'_, Guarded>, n: u32) -> HandlerResult<guarded::WorkNext> {
        self.faults.enter("Work").await?;
        let note = note(cx);
        let log = cx.context_mut();
        log.entries.push(note);
        log.work.push(n);
        Ok(guarded::WorkNext::Think)
    }

    async fn wrap_up(
        &self,
        cx: &mut Cx<'_, Guarded>,
        payload: BoundHit,
    ) -> HandlerResult<guarded::WrapUpNext> {
        self.faults.enter("WrapUp").await?;
        let note = note(cx);
        let seen = cx.bound_hit().cloned();
        let log = cx.context_mut();
        log.entries.push(note);
        log.wrap_seen = seen;
        log.wrap_payload = Some(payload.clone());
        Ok(match self.wrap {
            WrapMode::Finish => guarded::WrapUpNext::Finish,
            WrapMode::Loop => guarded::WrapUpNext::WrapUp(payload),
        })
    }
}
