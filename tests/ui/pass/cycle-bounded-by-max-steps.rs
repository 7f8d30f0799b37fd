#[guiderail::machine(context = (), max_steps = 12)]
enum Support {
    #[initial]
    #[to(Classify)]
    Intake,
    #[gate]
    #[to(Reply, Done)]
    Classify,
    #[to(Classify, Done)]
    Reply,
    #[terminal]
    Done,
}

fn main() {
    let worst = Support::graph().worst_case;
    assert_eq!(worst.steps, Some(12));
    assert!(worst.decisions <= worst.steps);
}
