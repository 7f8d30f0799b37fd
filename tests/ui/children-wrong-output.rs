// A state's declared child output must be a terminal payload of the child.
pub struct Job {
    pub query: String,
}

#[guiderail::machine(context = Job)]
pub enum Lookup {
    #[initial]
    #[to(Found)]
    Search,
    #[terminal]
    Found(String),
}

#[guiderail::machine(context = ())]
pub enum Research {
    #[initial]
    #[to(Done)]
    #[children(Lookup, input = Job, output = u64)]
    Gather,
    #[terminal]
    Done,
}

fn main() {}
