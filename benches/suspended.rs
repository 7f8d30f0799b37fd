//! Memory of suspended runs: 10,000 runs each waiting at a `#[wait]` state.
//!
//! Run with: `cargo bench --bench suspended`
//!
//! Prints the heap bytes held per suspended run (counted by a global
//! allocator) and the resident-set growth per run (from /proc/self/statm).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use guiderail::prelude::*;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts bytes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A request that waits for approval.
#[guiderail::machine(context = u64)]
pub enum Approval {
    /// The request is made.
    #[initial]
    #[to(Wait)]
    Submit,
    /// A human decides.
    #[wait]
    #[to(Done)]
    Wait,
    /// Decided.
    #[terminal]
    Done,
}

struct H;

#[guiderail::handlers]
impl approval::Handlers for H {
    async fn submit(&self, _cx: &mut Cx<'_, Approval>) -> HandlerResult<approval::SubmitNext> {
        Ok(approval::SubmitNext::Wait)
    }
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() {
    const RUNS: usize = 10_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let runner = Runner::new();
    let mut parked: Vec<Suspended<Approval>> = Vec::with_capacity(RUNS);
    let heap_before = LIVE.load(Ordering::Relaxed);
    let rss_before = rss_bytes();
    rt.block_on(async {
        for i in 0..RUNS {
            let ended = runner.start(&H, Approval::start(), i as u64).await.unwrap();
            parked.push(ended.waiting().unwrap());
        }
    });
    let heap_after = LIVE.load(Ordering::Relaxed);
    let rss_after = rss_bytes();
    let inline = std::mem::size_of::<Suspended<Approval>>();
    let heap_per_run = (heap_after - heap_before) as f64 / RUNS as f64;
    println!("suspended runs: {RUNS}");
    println!("size_of::<Suspended<Approval>>(): {inline} bytes (context u64 included)");
    println!("heap per suspended run beyond its Suspended value: {heap_per_run:.0} bytes");
    println!(
        "total per suspended run: {:.0} bytes",
        inline as f64 + heap_per_run
    );
    if let (Some(a), Some(b)) = (rss_before, rss_after) {
        println!(
            "resident-set growth per run: {:.0} bytes",
            (b.saturating_sub(a)) as f64 / RUNS as f64
        );
    }
    // Resume them all, so the measurement is of live, resumable runs.
    rt.block_on(async {
        for s in parked.drain(..) {
            let done = runner
                .signal(&H, s, approval::WaitNext::Done)
                .await
                .unwrap();
            assert!(done.finished().is_some());
        }
    });
    println!("all {RUNS} runs resumed and finished");
}
