#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[to(Done)]
    Intake,
    #[terminal]
    #[gate]
    Done,
}

fn main() {}
