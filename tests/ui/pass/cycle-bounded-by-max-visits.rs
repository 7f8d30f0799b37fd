#[guiderail::machine(context = ())]
enum Support {
    #[initial]
    #[to(Classify)]
    Intake,
    #[gate]
    #[to(Reply, Done)]
    Classify,
    #[max_visits(3)]
    #[to(Classify, Done)]
    Reply,
    #[terminal]
    Done,
}

fn main() {
    // Intake, then (Classify, Reply) three times, then Classify.
    let worst = Support::graph().worst_case;
    assert_eq!(worst.steps, Some(8));
    assert_eq!(worst.decisions, Some(4));
}
