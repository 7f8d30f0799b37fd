#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[to(Classify, Done)]
    Intake,
    #[gate]
    Classify,
    #[terminal]
    Done,
}

fn main() {}
