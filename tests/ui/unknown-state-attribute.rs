#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[to(Done)]
    Intake,
    #[termnal]
    Done,
}

fn main() {}
