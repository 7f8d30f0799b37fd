// Only a state with a handler can start child runs.
#[guiderail::machine(context = ())]
pub enum Lookup {
    #[initial]
    #[to(Done)]
    Search,
    #[terminal]
    Done,
}

#[guiderail::machine(context = ())]
pub enum Research {
    #[initial]
    #[to(Done)]
    Gather,
    #[terminal]
    #[children(Lookup, input = ())]
    Done,
}

fn main() {}
