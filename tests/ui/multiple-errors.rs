// Three unknown targets: all three are reported in one build, with a
// suggestion where one is likely.
#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[to(Clasify)]
    Intake,
    #[gate]
    #[to(Refund, Escalate, Archive)]
    Classify,
    #[to(Done)]
    IssueRefund,
    #[to(Done)]
    Escalate,
    #[terminal]
    Done,
}

fn main() {}
