#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[gate(fallback = Archive)]
    #[to(Reply, Done)]
    Classify,
    #[to(Archive, Done)]
    Reply,
    #[terminal]
    Archive,
    #[terminal]
    Done,
}

fn main() {}
