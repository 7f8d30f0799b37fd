//! Replaying a recorded run offline, and forking a stored run from one of
//! its checkpoints.

use std::sync::Arc;

use serde_json::Value;

use super::durable::{DurableContext, DurableError, DurableMachine};
use super::{Ended, Runner};
use crate::event::DecidedVia;
use crate::llm::ScriptedModel;
use crate::machine::Dispatch;
use crate::run_id::RunId;
use crate::store::{Checkpoint, MemoryStore, Parent, RunStatus, Store, StoreError, now_ms};

/// One checkpoint as a replay compares it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepView {
    /// The state the run was in.
    pub state: String,
    /// The state with its payload.
    pub value: Value,
    /// Who picked the move into it.
    pub via: Option<DecidedVia>,
    /// Where the run stood.
    pub status: RunStatus,
    /// The error, for a failed run.
    pub error: Option<String>,
}

impl From<&Checkpoint> for StepView {
    fn from(cp: &Checkpoint) -> Self {
        StepView {
            state: cp.state_name.to_string(),
            value: cp.state.clone(),
            via: cp.via,
            status: cp.status,
            error: cp.error.clone(),
        }
    }
}

/// Where a replay first left the recorded run.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    /// The checkpoint number where the two differ.
    pub seq: u64,
    /// The recorded checkpoint (`None`: the recorded run had ended).
    pub recorded: Option<StepView>,
    /// The replayed checkpoint (`None`: the replay had ended).
    pub replayed: Option<StepView>,
    /// Where the contexts differ at that checkpoint, as JSON pointers with
    /// both values (`/notes/2: "a" -> "b"`); empty when only the state
    /// differs.
    pub context_diff: Vec<String>,
}

/// What [`Runner::replay`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayReport {
    /// The recorded run.
    pub run_id: RunId,
    /// The checkpoints compared (up to and including a divergence).
    pub compared: u64,
    /// The first difference, if there is one.
    pub divergence: Option<Divergence>,
    /// The replay's own checkpoints.
    pub replayed: Vec<Checkpoint>,
}

impl ReplayReport {
    /// Whether the replay took exactly the recorded path, with the same
    /// states, payloads, contexts and outcome.
    pub fn is_identical(&self) -> bool {
        self.divergence.is_none()
    }
}

impl std::fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(d) = &self.divergence else {
            return write!(
                f,
                "run {}: the replay took the recorded path exactly ({} checkpoints)",
                self.run_id, self.compared
            );
        };
        let show = |s: &Option<StepView>| match s {
            Some(s) => format!(
                "{} ({}{})",
                s.state,
                s.status,
                s.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            None => "nothing (the run had ended)".to_owned(),
        };
        writeln!(
            f,
            "run {}: the replay differs at checkpoint {}: recorded {}, replayed {}",
            self.run_id,
            d.seq,
            show(&d.recorded),
            show(&d.replayed)
        )?;
        for line in &d.context_diff {
            writeln!(f, "  context {line}")?;
        }
        Ok(())
    }
}

impl Runner {
    /// Replays a recorded run (its checkpoints, oldest first: from
    /// [`Store::checkpoints`] or [`crate::history::import_jsonl`]) with
    /// `handlers`, offline: every gate is answered from the recorded
    /// decisions, signals are delivered as recorded, and the replay runs
    /// in memory (the runner's store is not touched, its subscribers see
    /// nothing). Returns the first checkpoint where the replay's state,
    /// payload, context or outcome differs from the record, if any.
    ///
    /// An unchanged machine with deterministic handlers reproduces the
    /// record exactly; after a change, the report says where the new code
    /// goes elsewhere. A changed graph is allowed (that is what replay is
    /// for) as long as the recorded start state still exists.
    pub async fn replay<M, H>(
        &self,
        handlers: &H,
        recorded: &[Checkpoint],
    ) -> Result<ReplayReport, DurableError>
    where
        M: Dispatch<H> + DurableMachine,
        M::Context: DurableContext,
        H: ?Sized + Sync,
    {
        let first = recorded.first().ok_or(DurableError::EmptyHistory)?;
        let run_id = first.run_id;
        let model = recorded
            .iter()
            .filter_map(|cp| cp.decision.as_deref())
            .fold(ScriptedModel::new(), ScriptedModel::then_recorded);
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut env = (*self.env).clone();
        env.model = Some(Arc::new(model));
        env.subscribers.clear();
        env.durable.store = Some(store.clone());
        env.durable.allow_graph_change = true;
        let replayer = Runner { env: Arc::new(env) };

        let now = now_ms();
        let start = Checkpoint {
            status: first.status,
            started_at_ms: now,
            at_ms: now,
            ..first.clone()
        };
        store.create(&start).await?;
        loop {
            match replayer
                .resume_in::<M, H>(store.clone(), handlers, run_id)
                .await
            {
                Ok(Ended::Waiting(_)) => {
                    let latest = store.latest(run_id).await?;
                    let next = usize::try_from(latest.seq + 1)
                        .ok()
                        .and_then(|i| recorded.get(i));
                    match next {
                        Some(signal) if signal.via == Some(DecidedVia::Signal) => {
                            store.deliver_signal(&signalled(&latest, signal)).await?;
                        }
                        _ => break,
                    }
                }
                Ok(Ended::Finished(_)) => break,
                // A failed run is stored as failed: compared below.
                Err(DurableError::Run(e)) if !matches!(e.kind, crate::RunErrorKind::Store(_)) => {
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        let replayed = store.checkpoints(run_id).await?;
        let (compared, divergence) = compare(recorded, &replayed);
        Ok(ReplayReport {
            run_id,
            compared,
            divergence,
            replayed,
        })
    }

    /// Starts a new run from checkpoint `seq` of stored run `run_id` (time
    /// travel): the new run begins in that checkpoint's state with its
    /// context and spending, records its parent ([`Checkpoint::parent`]),
    /// and is stored but not run — [`Runner::resume`] (or a worker, for a
    /// queued store) runs it. Returns the new run's id.
    ///
    /// With `instead`, the fork takes that state as its first move from the
    /// checkpoint's state instead (the move must be one the checkpoint's
    /// state declares, [`DurableError::IllegalFork`] otherwise): "what if
    /// the model had escalated here".
    pub async fn fork<M>(
        &self,
        run_id: RunId,
        seq: u64,
        instead: Option<M>,
    ) -> Result<RunId, DurableError>
    where
        M: DurableMachine,
        M::Context: DurableContext,
    {
        let store = self.require_store()?;
        let all = store.checkpoints(run_id).await?;
        let at = all
            .iter()
            .position(|c| c.seq == seq)
            .ok_or(DurableError::NoCheckpoint { run_id, seq })?;
        let mut from = all[at].clone();
        if from.path.is_empty() {
            from.path = crate::history::path(&all[..=at]);
        }
        // Decode it as `M`: a fork of another machine's run is refused.
        self.restore::<M>(&from)?;
        let new_id = RunId::new();
        let now = now_ms();
        let mut first = Checkpoint {
            run_id: new_id,
            seq: 0,
            via: None,
            decision: None,
            error: None,
            status: if from.status == RunStatus::Failed {
                RunStatus::Running
            } else {
                from.status
            },
            graph: Some(Box::new(crate::GraphRecord::from(M::graph()))),
            parent: Some(Parent { run_id, seq }),
            started_at_ms: now,
            at_ms: now,
            ..from.clone()
        };
        if let Some(state) = instead {
            let graph = M::graph();
            let to = state.state_name();
            let legal = graph.edges.iter().any(|e| {
                graph.states[e.from].name == from.state_name && graph.states[e.to].name == to
            });
            if !legal {
                return Err(DurableError::IllegalFork {
                    run_id,
                    from: from.state_name.to_string(),
                    to,
                });
            }
            first.state = serde_json::to_value(&state).map_err(|e| StoreError::Encode {
                run_id: new_id,
                detail: format!("cannot serialise the state: {e}"),
            })?;
            first.state_name = to.into();
            first.path.push(to.into());
            first.status = super::durable::status_after_move(&state);
        }
        store.create(&first).await?;
        Ok(new_id)
    }
}

/// The checkpoint a recorded signal moved a run waiting at `latest` to.
fn signalled(latest: &Checkpoint, recorded: &Checkpoint) -> Checkpoint {
    let mut path = latest.path.clone();
    path.push(recorded.state_name.clone());
    Checkpoint {
        seq: latest.seq + 1,
        state_name: recorded.state_name.clone(),
        state: recorded.state.clone(),
        path,
        status: recorded.status,
        via: Some(DecidedVia::Signal),
        decision: None,
        error: None,
        graph: None,
        at_ms: now_ms(),
        ..latest.clone()
    }
}

/// The number of checkpoints compared and the first divergence.
fn compare(recorded: &[Checkpoint], replayed: &[Checkpoint]) -> (u64, Option<Divergence>) {
    let n = recorded.len().max(replayed.len());
    for i in 0..n {
        let (r, p) = (recorded.get(i), replayed.get(i));
        let same = match (r, p) {
            (Some(r), Some(p)) => {
                r.state_name == p.state_name
                    && r.state == p.state
                    && r.status == p.status
                    && r.via == p.via
                    && r.context == p.context
            }
            _ => false,
        };
        if !same {
            let context_diff = match (r, p) {
                (Some(r), Some(p)) => {
                    let mut out = Vec::new();
                    diff(&r.context, &p.context, &mut String::new(), &mut out);
                    out
                }
                _ => Vec::new(),
            };
            return (
                i as u64 + 1,
                Some(Divergence {
                    seq: i as u64,
                    recorded: r.map(StepView::from),
                    replayed: p.map(StepView::from),
                    context_diff,
                }),
            );
        }
    }
    (n as u64, None)
}

/// Appends where `a` and `b` differ, as JSON pointers under `at`.
fn diff(a: &Value, b: &Value, at: &mut String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let len = at.len();
                at.push('/');
                at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                diff(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    at,
                    out,
                );
                at.truncate(len);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                diff(
                    x.get(i).unwrap_or(&Value::Null),
                    y.get(i).unwrap_or(&Value::Null),
                    at,
                    out,
                );
                at.truncate(len);
            }
        }
        _ if a != b => {
            let shown = if at.is_empty() { "/" } else { at.as_str() };
            out.push(format!("{shown}: {a} -> {b}"));
        }
        _ => {}
    }
}
