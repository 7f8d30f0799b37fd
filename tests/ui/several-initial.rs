#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[to(Reply)]
    Intake,
    #[initial]
    #[to(Done)]
    Reply,
    #[terminal]
    Done,
}

fn main() {}
