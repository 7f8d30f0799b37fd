// Declared children whose input and output match the child machine.
pub struct Job {
    pub query: String,
}

#[guiderail::machine(context = Job)]
pub enum Lookup {
    #[initial]
    #[to(Found, Missing)]
    Search,
    #[terminal]
    Found(String),
    #[terminal]
    Missing,
}

#[guiderail::machine(context = ())]
pub enum Research {
    #[initial]
    #[to(Again, Done)]
    #[children(Lookup, input = Job, output = String)]
    Gather,
    #[to(Done)]
    #[children(Lookup, input = Job)]
    Again,
    #[terminal]
    Done,
}

fn main() {
    assert!(Research::MERMAID.contains("note right of Gather: children: Lookup"));
}
