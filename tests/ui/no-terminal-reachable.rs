#[guiderail::machine(context = (), max_steps = 20)]
enum Support {
    #[initial]
    #[to(Classify, Done)]
    Intake,
    #[gate]
    #[to(Reply)]
    Classify,
    #[to(Classify)]
    Reply,
    #[terminal]
    Done,
}

fn main() {}
