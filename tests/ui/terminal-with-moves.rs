#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[to(Done)]
    Intake,
    #[terminal]
    #[to(Intake)]
    Done,
}

fn main() {}
