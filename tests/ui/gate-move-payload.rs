#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[to(Classify)]
    Intake,
    #[gate]
    #[to(IssueRefund, Done)]
    Classify,
    #[to(Done)]
    IssueRefund(u64, u64),
    #[terminal]
    Done,
}

fn main() {}
