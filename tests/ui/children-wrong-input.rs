// A state's declared child input must be the child machine's context.
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
    #[children(Lookup, input = String, output = String)]
    Gather,
    #[terminal]
    Done,
}

fn main() {}
