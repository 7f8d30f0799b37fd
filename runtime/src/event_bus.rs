//! [`EventBus`]: events as async streams, per runner and per run, for any
//! number of readers, without ever slowing runs down.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::event::{Event, Subscriber};
use crate::run_id::RunId;

/// A [`Subscriber`] that broadcasts every event to any number of async
/// readers ([`EventBus::subscribe`], [`EventBus::subscribe_run`]).
///
/// Sending never waits: each reader has the bus's capacity of events
/// buffered, and a reader that falls further behind loses the oldest and is
/// told how many with [`Lagged::Lagged`] on its next read. A run never
/// blocks on a slow reader.
///
/// ```
/// # use std::sync::Arc;
/// # use guiderail_runtime::{EventBus, Runner};
/// let bus = EventBus::new(1024);
/// let runner = Runner::builder().subscriber(bus.clone()).build();
/// let mut all = bus.subscribe();
/// // tokio::spawn(async move { while let Ok(event) = all.recv().await { … } });
/// # drop((runner, all));
/// ```
#[derive(Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
}

impl EventBus {
    /// A bus that buffers up to `capacity` events per reader (at least 1).
    pub fn new(capacity: usize) -> Arc<Self> {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Arc::new(EventBus { tx })
    }

    /// Every event of every run, from now on.
    pub fn subscribe(&self) -> EventStream {
        EventStream {
            rx: self.tx.subscribe(),
            run: None,
        }
    }

    /// The events of one run, from now on.
    pub fn subscribe_run(&self, run_id: RunId) -> EventStream {
        EventStream {
            rx: self.tx.subscribe(),
            run: Some(run_id),
        }
    }
}

impl Subscriber for EventBus {
    fn on_event(&self, event: &Event) {
        // No reader: nothing to do (and no clone).
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(Arc::new(event.clone()));
        }
    }
}

/// Why [`EventStream::recv`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Lagged {
    /// The reader fell behind and this many events were dropped for it;
    /// reading goes on with the oldest event still buffered.
    #[error("the reader fell behind: {0} events were dropped")]
    Lagged(u64),
    /// The bus is gone (every runner holding it was dropped).
    #[error("the event bus is closed")]
    Closed,
}

/// One reader of an [`EventBus`].
#[derive(Debug)]
pub struct EventStream {
    rx: broadcast::Receiver<Arc<Event>>,
    run: Option<RunId>,
}

impl EventStream {
    /// The next event (of this stream's run, if it has one).
    pub async fn recv(&mut self) -> Result<Arc<Event>, Lagged> {
        loop {
            match self.rx.recv().await {
                Ok(e) if self.run.is_none_or(|r| r == e.run_id) => return Ok(e),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => return Err(Lagged::Lagged(n)),
                Err(broadcast::error::RecvError::Closed) => return Err(Lagged::Closed),
            }
        }
    }
}
