//! Spawning and joining in-memory children: a parent state fans out to
//! 10,000 children of a one-step machine (concurrency 10,000 and 64) and
//! joins them all; reported per child.
//!
//! Run with: `cargo bench --bench fan_out` (prints a Markdown table).
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use guiderail::prelude::*;
use guiderail::{Child, FanOut};

/// A child: one step.
#[guiderail::machine(context = u64)]
pub enum Leaf {
    #[initial]
    #[to(Done)]
    Work,
    #[terminal]
    Done,
}

pub struct LeafAgent;

#[guiderail::handlers]
impl leaf::Handlers for LeafAgent {
    async fn work(&self, cx: &mut Cx<'_, Leaf>) -> HandlerResult<leaf::WorkNext> {
        *cx.context_mut() += 1;
        Ok(leaf::WorkNext::Done)
    }
}

/// The parent: fans out `n` leaves `concurrency` at a time.
#[guiderail::machine(context = (u64, usize, u64))]
pub enum Root {
    #[initial]
    #[to(Done)]
    Spread,
    #[terminal]
    Done,
}

pub struct RootAgent;

#[guiderail::handlers]
impl root::Handlers for RootAgent {
    async fn spread(&self, cx: &mut Cx<'_, Root>) -> HandlerResult<root::SpreadNext> {
        let (n, concurrency, _) = *cx.context();
        let inputs = (0..n).map(|i| (Leaf::start(), i)).collect();
        let children = cx
            .fan_out(
                Arc::new(LeafAgent),
                inputs,
                FanOut::all().concurrency(concurrency),
            )
            .await?;
        let sum = children
            .into_iter()
            .filter_map(Child::finished)
            .map(|o| o.context)
            .sum();
        cx.context_mut().2 = sum;
        Ok(root::SpreadNext::Done)
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let runner = Runner::new();
    let n: u64 = 10_000;
    println!("| children at once | time for {n} children | per child |");
    println!("|---:|---:|---:|");
    for concurrency in [n as usize, 64] {
        let mut times: Vec<Duration> = (0..7)
            .map(|_| {
                let t = Instant::now();
                let out = rt
                    .block_on(runner.start(&RootAgent, Root::start(), (n, concurrency, 0)))
                    .unwrap()
                    .finished()
                    .unwrap();
                assert_eq!(out.context.2, n * (n + 1) / 2, "every child joined");
                t.elapsed()
            })
            .collect();
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "| {concurrency} | {:.1} ms | {:.2} µs |",
            median.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e6 / n as f64
        );
    }
}
