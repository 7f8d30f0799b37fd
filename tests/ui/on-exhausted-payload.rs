use guiderail::prelude::*;

#[guiderail::machine(context = (), max_steps = 20, on_exhausted = WrapUp)]
enum Support {
    #[initial]
    #[to(Done)]
    Intake,
    #[to(Done)]
    WrapUp(BoundHit, String),
    #[terminal]
    Done,
}

fn main() {}
