//! In-memory transition overhead: a generated machine on the runner versus a
//! hand-written `enum` + `match` async loop doing the same work.
//!
//! Also the cost of events: the runner with one subscriber attached (a
//! counter, so the figure is the cost of building and delivering events,
//! not of what a subscriber does with them).
//!
//! Run with: `cargo bench --bench transitions`

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use guiderail::Event;
use guiderail::prelude::*;

const STEPS: u64 = 10_000;

/// The work both loops do per step: a small update of the context.
#[derive(Default)]
pub struct Counter {
    n: u64,
    sum: u64,
}

#[inline(never)]
fn work(c: &mut Counter) {
    c.n += 1;
    c.sum = c.sum.wrapping_add(black_box(c.n).rotate_left(7));
}

/// Counts to `STEPS`, one transition per count.
#[guiderail::machine(context = Counter, max_steps = 1_000_000)]
pub enum Count {
    /// Begin.
    #[initial]
    #[to(Tick)]
    Start,
    /// Count one.
    #[to(Tick, Done)]
    Tick,
    /// Counted to `STEPS`.
    #[terminal]
    Done,
}

struct H;

#[guiderail::handlers]
impl count::Handlers for H {
    async fn start(&self, _cx: &mut Cx<'_, Count>) -> HandlerResult<count::StartNext> {
        Ok(count::StartNext::Tick)
    }
    async fn tick(&self, cx: &mut Cx<'_, Count>) -> HandlerResult<count::TickNext> {
        let c = cx.context_mut();
        work(c);
        Ok(if c.n >= STEPS {
            count::TickNext::Done
        } else {
            count::TickNext::Tick
        })
    }
}

/// The same machine written by hand: an enum, a `match`, and async fns.
mod by_hand {
    use super::{Counter, STEPS, work};

    pub enum State {
        Start,
        Tick,
        Done,
    }

    async fn start(_c: &mut Counter) -> Result<State, ()> {
        Ok(State::Tick)
    }

    async fn tick(c: &mut Counter) -> Result<State, ()> {
        work(c);
        Ok(if c.n >= STEPS {
            State::Done
        } else {
            State::Tick
        })
    }

    pub async fn run(mut c: Counter) -> Counter {
        let mut state = State::Start;
        loop {
            state = match state {
                State::Start => start(&mut c).await.unwrap(),
                State::Tick => tick(&mut c).await.unwrap(),
                State::Done => return c,
            };
        }
    }
}

fn transitions(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let runner = Runner::new();
    let mut group = c.benchmark_group("transitions");
    group.throughput(Throughput::Elements(STEPS));
    group.bench_function("guiderail_runner", |b| {
        b.iter(|| {
            rt.block_on(async {
                let out = runner
                    .start(&H, Count::start(), Counter::default())
                    .await
                    .unwrap()
                    .finished()
                    .unwrap();
                black_box(out.context.sum)
            })
        })
    });
    let counted = Arc::new(AtomicU64::new(0));
    let seen = counted.clone();
    let with_subscriber = Runner::builder()
        .subscriber(Arc::new(move |_: &Event| {
            seen.fetch_add(1, Ordering::Relaxed);
        }))
        .build();
    group.bench_function("guiderail_runner_one_subscriber", |b| {
        b.iter(|| {
            rt.block_on(async {
                let out = with_subscriber
                    .start(&H, Count::start(), Counter::default())
                    .await
                    .unwrap()
                    .finished()
                    .unwrap();
                black_box(out.context.sum)
            })
        })
    });
    assert!(
        counted.load(Ordering::Relaxed) > STEPS,
        "the subscriber saw the events"
    );
    group.bench_function("hand_written_match", |b| {
        b.iter(|| rt.block_on(async { black_box(by_hand::run(Counter::default()).await.sum) }))
    });
    group.finish();
}

criterion_group!(benches, transitions);
criterion_main!(benches);
