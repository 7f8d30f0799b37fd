//! Generated code must not depend on the user's scope: shadow the prelude.
#![allow(dead_code, non_camel_case_types)]

use guiderail::prelude::*;

type Result = ();
type Option = ();
type Box = ();
type Vec = ();
struct Send;
struct Sync;
struct Future;
struct From;
struct Into;
mod core {}
mod std {}

#[guiderail::machine(context = u32, max_steps = 10)]
enum Shadowed {
    #[initial]
    #[gate]
    #[to(Work, Done)]
    Start,
    #[to(Start, Wait)]
    Work { amount: u32 },
    #[wait]
    #[to(Done)]
    Wait,
    #[terminal]
    Done,
}

struct H;

#[guiderail::handlers]
impl shadowed::Handlers for H {
    async fn start(&self, cx: &mut Cx<'_, Shadowed>) -> HandlerResult<Decision<shadowed::StartNext>> {
        ::core::result::Result::Ok(cx.decide("go").await?)
    }
    async fn work(&self, _cx: &mut Cx<'_, Shadowed>, amount: u32) -> HandlerResult<shadowed::WorkNext> {
        let _ = amount;
        ::core::result::Result::Ok(shadowed::WorkNext::Wait)
    }
}

fn main() {
    let _ = Shadowed::MERMAID;
}
