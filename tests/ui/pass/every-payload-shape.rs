use guiderail::prelude::*;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Refund {
    pub order_id: u64,
    pub amount_cents: u64,
}

/// Every payload shape, as a plain move and as a gate move.
#[guiderail::machine(context = ())]
pub enum Shapes {
    #[initial]
    #[to(Pair)]
    Intake,
    /// A plain state may carry a tuple of any length.
    #[to(Classify)]
    Pair(u64, String),
    /// A gate's moves: unit, single-field tuple, struct.
    #[gate]
    #[to(Escalate, IssueRefund, Reply, Done)]
    Classify,
    #[to(Done)]
    Escalate,
    #[to(Done)]
    IssueRefund(Refund),
    #[to(Done)]
    Reply { draft: String, tone: Option<String> },
    #[terminal]
    Done,
}

fn main() {}
