//! [`MemoryStore`]: checkpoints in memory, for tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::Value;

use super::{
    AppendKind, Checkpoint, EffectKey, RunStatus, RunSummary, Store, StoreError, check_append,
    check_first,
};
use crate::llm::BoxFuture;
use crate::run_id::RunId;

/// A store that keeps checkpoints in memory. It enforces the same rules as
/// [`super::SqliteStore`] (see the [module docs](super)), so tests of
/// durable behaviour can run without files; what it holds is gone when it
/// is dropped.
///
/// ```
/// use guiderail_runtime::store::{MemoryStore, RunStatus, Store};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// assert!(store.runs(Some(RunStatus::Running)).await.unwrap().is_empty());
/// # });
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    runs: Mutex<BTreeMap<RunId, Vec<Checkpoint>>>,
    effects: Mutex<BTreeMap<EffectKey, Value>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<RunId, Vec<Checkpoint>>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn effects(&self) -> std::sync::MutexGuard<'_, BTreeMap<EffectKey, Value>> {
        self.effects.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, kind: AppendKind, next: &Checkpoint) -> Result<(), StoreError> {
        let mut runs = self.lock();
        let run_id = next.run_id;
        let list = runs
            .get_mut(&run_id)
            .ok_or(StoreError::NotFound { run_id })?;
        let last = list.last().ok_or(StoreError::NotFound { run_id })?;
        let latest = (last.seq, last.status, &*last.state_name);
        check_append(kind, run_id, next.seq, latest)?;
        list.push(next.clone());
        Ok(())
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl Store for MemoryStore {
    fn create<'a>(&'a self, first: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        ready((|| {
            check_first(first.run_id, first.seq, first.status)?;
            let mut runs = self.lock();
            if runs.contains_key(&first.run_id) {
                return Err(StoreError::AlreadyExists {
                    run_id: first.run_id,
                });
            }
            runs.insert(first.run_id, vec![first.clone()]);
            Ok(())
        })())
    }

    fn append<'a>(&'a self, next: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        ready(self.push(AppendKind::Plain, next))
    }

    fn deliver_signal<'a>(&'a self, next: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        ready(self.push(AppendKind::Signal, next))
    }

    fn latest(&self, run_id: RunId) -> BoxFuture<'_, Result<Checkpoint, StoreError>> {
        ready(
            self.lock()
                .get(&run_id)
                .and_then(|l| l.last().cloned())
                .ok_or(StoreError::NotFound { run_id }),
        )
    }

    fn checkpoints(&self, run_id: RunId) -> BoxFuture<'_, Result<Vec<Checkpoint>, StoreError>> {
        ready(
            self.lock()
                .get(&run_id)
                .cloned()
                .ok_or(StoreError::NotFound { run_id }),
        )
    }

    fn runs(
        &self,
        status: Option<RunStatus>,
    ) -> BoxFuture<'_, Result<Vec<RunSummary>, StoreError>> {
        let runs = self.lock();
        let list = runs
            .values()
            .filter_map(|l| l.last())
            .filter(|c| status.is_none_or(|s| c.status == s))
            .map(|c| RunSummary {
                run_id: c.run_id,
                machine: c.machine.to_string(),
                fingerprint: c.fingerprint,
                status: c.status,
                seq: c.seq,
                state: c.state_name.to_string(),
                updated_at_ms: c.at_ms,
            })
            .collect();
        ready(Ok(list))
    }

    fn compact(&self, before_ms: u64) -> BoxFuture<'_, Result<u64, StoreError>> {
        let mut removed = 0;
        let mut compacted = Vec::new();
        for (run_id, list) in self.lock().iter_mut() {
            if let Some(last) = list.last()
                && last.status.is_closed()
                && last.at_ms < before_ms
            {
                compacted.push(*run_id);
                removed += list.len() as u64 - 1;
                list.drain(..list.len() - 1);
            }
        }
        self.effects()
            .retain(|key, _| !compacted.contains(&key.run_id));
        ready(Ok(removed))
    }

    fn effect<'a>(
        &'a self,
        key: &'a EffectKey,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        ready(Ok(self.effects().get(key).cloned()))
    }

    fn record_effect<'a>(
        &'a self,
        key: &'a EffectKey,
        result: &'a Value,
    ) -> BoxFuture<'a, Result<Value, StoreError>> {
        let mut effects = self.effects();
        let recorded = effects.entry(key.clone()).or_insert_with(|| result.clone());
        ready(Ok(recorded.clone()))
    }
}
