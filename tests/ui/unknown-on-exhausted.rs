#[guiderail::machine(context = (), max_steps = 20, on_exhausted = Wrapup)]
enum Support {
    #[initial]
    #[to(Done)]
    Intake,
    #[to(Done)]
    WrapUp,
    #[terminal]
    Done,
}

fn main() {}
