#[guiderail::machine(context = ())]
enum Hello {
    #[initial]
    #[to(Done)]
    Start,
    #[terminal]
    Done,
}

fn main() {
    let worst = Hello::graph().worst_case;
    assert_eq!(worst.steps, Some(1));
    assert_eq!(worst.decisions, Some(0));
}
