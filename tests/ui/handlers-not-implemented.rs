use guiderail::prelude::*;

#[guiderail::machine(context = ())]
enum Flow {
    #[initial]
    #[to(Done)]
    Start,
    #[terminal]
    Done,
}

/// Has no `impl flow::Handlers`.
struct NotHandlers;

#[tokio::main]
async fn main() {
    let _ = Runner::new().start(&NotHandlers, Flow::start(), ()).await;
}
