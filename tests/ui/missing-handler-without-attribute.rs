use guiderail::prelude::*;

#[guiderail::machine(context = ())]
enum Flow {
    #[initial]
    #[to(Work)]
    Start,
    #[to(Done)]
    Work,
    #[terminal]
    Done,
}

struct H;

impl flow::Handlers for H {
    async fn start(&self, _cx: &mut Cx<'_, Flow>) -> HandlerResult<flow::StartNext> {
        Ok(flow::StartNext::Work)
    }
}

fn main() {}
