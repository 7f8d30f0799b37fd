#[guiderail::machine(context = (), max_step = 20)]
enum Support {
    #[initial]
    #[to(Reply, Done)]
    Intake,
    #[to(Intake, Done)]
    Reply,
    #[terminal]
    Done,
}

fn main() {}
