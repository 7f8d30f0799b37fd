use guiderail::prelude::*;

#[guiderail::machine(context = ())]
enum Flow {
    #[initial]
    #[to(Check)]
    Start(u64),
    #[gate]
    #[to(Approve, Done)]
    Check,
    #[wait]
    #[to(Done)]
    Approve,
    #[terminal]
    Done,
}

struct H;

#[guiderail::handlers]
impl flow::Handlers for H {
    async fn start(&self, _cx: &mut Cx<'_, Flow>, _payload: u64) -> HandlerResult<flow::StartNext> {
        Ok(flow::StartNext::Check)
    }
    async fn check(&self, cx: &mut Cx<'_, Flow>) -> HandlerResult<Decision<flow::CheckNext>> {
        Ok(cx.decide("approve?").await?)
    }
    async fn approve(&self, _cx: &mut Cx<'_, Flow>) -> HandlerResult<flow::ApproveNext> {
        Ok(flow::ApproveNext::Done)
    }
}

fn main() {}
