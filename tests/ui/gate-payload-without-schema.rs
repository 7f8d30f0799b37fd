use guiderail::prelude::*;

/// Has serde but no `JsonSchema`: a model cannot be asked to fill it.
#[derive(Serialize, Deserialize)]
pub struct Refund {
    pub order_id: u64,
}

#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[gate]
    #[to(IssueRefund, Done)]
    Classify,
    #[to(Done)]
    IssueRefund(Refund),
    #[terminal]
    Done,
}

fn main() {}
