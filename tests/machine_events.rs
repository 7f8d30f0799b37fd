//! The events of a generated machine's run: what `Entered` carries and how
//! the handlers are timed.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use guiderail::prelude::*;
use guiderail::{Event, EventKind, EventLog};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    pub order_id: u64,
    pub amount_cents: u64,
}

/// Not `Serialize`: a state carrying it has no payload in its events.
#[derive(Debug)]
pub struct Opaque(pub u8);

/// One state for each shape of payload.
#[guiderail::machine(context = (), max_steps = 20)]
#[derive(Debug)]
pub enum Shapes {
    #[initial]
    #[to(One)]
    Start,
    /// Takes 20 ms.
    #[to(Pair)]
    One(Refund),
    #[to(Named)]
    Pair(u32, String),
    #[to(Hidden)]
    Named { r#type: String, count: u8 },
    #[to(Done)]
    Hidden(Opaque),
    #[terminal]
    Done,
}

struct H;

#[guiderail::handlers]
impl shapes::Handlers for H {
    async fn start(&self, _cx: &mut Cx<'_, Shapes>) -> HandlerResult<shapes::StartNext> {
        Ok(shapes::StartNext::One(Refund {
            order_id: 42,
            amount_cents: 1999,
        }))
    }
    async fn one(&self, _cx: &mut Cx<'_, Shapes>, _r: Refund) -> HandlerResult<shapes::OneNext> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(shapes::OneNext::Pair(7, "seven".into()))
    }
    async fn pair(
        &self,
        _cx: &mut Cx<'_, Shapes>,
        _n: u32,
        _s: String,
    ) -> HandlerResult<shapes::PairNext> {
        Ok(shapes::PairNext::Named {
            r#type: "kind".into(),
            count: 2,
        })
    }
    async fn named(
        &self,
        _cx: &mut Cx<'_, Shapes>,
        _type: String,
        _count: u8,
    ) -> HandlerResult<shapes::NamedNext> {
        Ok(shapes::NamedNext::Hidden(Opaque(1)))
    }
    async fn hidden(
        &self,
        _cx: &mut Cx<'_, Shapes>,
        o: Opaque,
    ) -> HandlerResult<shapes::HiddenNext> {
        assert_eq!(o.0, 1);
        Ok(shapes::HiddenNext::Done)
    }
}

async fn run_logged() -> Vec<Event> {
    let log = Arc::new(EventLog::new());
    let runner = Runner::builder().subscriber(log.clone()).build();
    runner
        .start(&H, Shapes::start(), ())
        .await
        .expect("runs")
        .finished()
        .expect("finished");
    log.events()
}

#[tokio::test]
async fn entered_events_carry_the_states_payload() {
    let events = run_logged().await;
    let entered: Vec<(String, Option<serde_json::Value>)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Entered { state, payload, .. } => Some((state.to_string(), payload.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        entered,
        [
            ("Start".to_owned(), None),
            (
                "One".to_owned(),
                Some(json!({"order_id": 42, "amount_cents": 1999}))
            ),
            ("Pair".to_owned(), Some(json!([7, "seven"]))),
            (
                "Named".to_owned(),
                Some(json!({"type": "kind", "count": 2}))
            ),
            // `Opaque` is not `Serialize`: the machine still compiles, and
            // its state has no payload in events.
            ("Hidden".to_owned(), None),
            ("Done".to_owned(), None),
        ]
    );
}

#[tokio::test]
async fn payloads_survive_serialisation_and_old_events_still_read() {
    let events = run_logged().await;
    let one = events
        .iter()
        .find(|e| matches!(&e.kind, EventKind::Entered { state, .. } if state == "One"))
        .expect("entered One");
    let text = serde_json::to_string(one).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value["payload"],
        json!({"order_id": 42, "amount_cents": 1999})
    );
    let back: Event = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, one);
    // An `Entered` written before events had payloads reads as `None`.
    let old = r#"{"v":1,"run_id":"18eb4cc41f104b85d12ac61307f086d2","machine":"Shapes","at_ms":5,"type":"entered","state":"Start","step":0}"#;
    let old: Event = serde_json::from_str(old).unwrap();
    assert!(matches!(old.kind, EventKind::Entered { payload: None, .. }));
}

#[tokio::test]
async fn a_handler_is_timed_from_its_entry_to_its_move() {
    let events = run_logged().await;
    let at = |pred: &dyn Fn(&EventKind) -> bool| {
        events
            .iter()
            .find(|e| pred(&e.kind))
            .map(|e| (e.at_ms, e.kind.clone()))
            .expect("event")
    };
    let (entered_ms, _) = at(&|k| matches!(k, EventKind::Entered { state, .. } if state == "One"));
    let (finished_ms, finished) =
        at(&|k| matches!(k, EventKind::HandlerFinished { state, .. } if state == "One"));
    let EventKind::HandlerFinished { duration_us, .. } = finished else {
        unreachable!()
    };
    assert!(duration_us >= 20_000, "slept 20 ms, timed {duration_us} µs");
    assert!(duration_us < 10_000_000, "timed {duration_us} µs");
    // Both stamps come from one clock: 20 ms apart, to the millisecond.
    assert!(
        finished_ms >= entered_ms + 19,
        "entered at {entered_ms}, finished at {finished_ms}"
    );
    // Stamps never go back.
    assert!(events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
}
