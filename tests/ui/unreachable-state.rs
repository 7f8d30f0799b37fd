#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[to(Done)]
    Intake,
    #[to(Done)]
    Escalate,
    #[terminal]
    Done,
}

fn main() {}
