#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[to(Reply)]
    Intake,
    #[to(Done)]
    Reply { draft: impl ToString },
    #[terminal]
    Done,
}

fn main() {}
