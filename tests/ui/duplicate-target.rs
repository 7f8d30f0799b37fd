#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[to(Classify, Done, Classify)]
    Intake,
    #[to(Done)]
    Classify,
    #[terminal]
    Done,
}

fn main() {}
