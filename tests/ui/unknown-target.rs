#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[to(Clasify)]
    Intake,
    #[gate]
    #[to(Done)]
    Classify,
    #[terminal]
    Done,
}

fn main() {}
