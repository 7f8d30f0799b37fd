#[guiderail::machine(context = ())]
enum Support {
    #[to(Done)]
    Intake,
    #[terminal]
    Done,
}

fn main() {}
