#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[to(Classify)]
    Intake,
    #[gate]
    #[to(Reply, Done)]
    Classify,
    #[to(Classify)]
    Reply,
    #[terminal]
    Done,
}

fn main() {}
