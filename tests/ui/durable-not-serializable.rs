// A durable run stores the machine's state and its context: both must be
// `Serialize + Deserialize`. Here neither is.
use guiderail::prelude::*;
use guiderail::store::MemoryStore;

#[derive(Debug, Default)]
pub struct Notes {
    pub lines: Vec<String>,
}

#[guiderail::machine(context = Notes)]
#[derive(Debug)]
pub enum Draft {
    #[initial]
    #[to(Done)]
    Write,
    #[terminal]
    Done,
}

struct Writer;

#[guiderail::handlers]
impl draft::Handlers for Writer {
    async fn write(&self, _cx: &mut Cx<'_, Draft>) -> HandlerResult<draft::WriteNext> {
        Ok(draft::WriteNext::Done)
    }
}

fn main() {
    let runner = Runner::builder().store(MemoryStore::new()).build();
    let _ = runner.start_durable(&Writer, Draft::start(), Notes::default());
}
