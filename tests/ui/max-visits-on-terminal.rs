#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[to(Done)]
    Intake,
    #[terminal]
    #[max_visits(2)]
    Done,
}

fn main() {}
