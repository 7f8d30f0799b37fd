//! A machine whose module name is a keyword (`Loop` -> `r#loop`) and a
//! state whose handler name is one (`Match` -> `r#match`).
use guiderail::prelude::*;

#[guiderail::machine(context = ())]
enum Loop {
    #[initial]
    #[to(Done)]
    Match,
    #[terminal]
    Done,
}

struct H;

#[guiderail::handlers]
impl r#loop::Handlers for H {
    async fn r#match(&self, _cx: &mut Cx<'_, Loop>) -> HandlerResult<r#loop::MatchNext> {
        Ok(r#loop::MatchNext::Done)
    }
}

fn main() {}
