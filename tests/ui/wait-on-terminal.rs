#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[to(Done)]
    Intake,
    #[wait]
    #[terminal]
    Done,
}

fn main() {}
