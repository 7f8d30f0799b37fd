//! A run's history: the events its checkpoints tell, exported as JSON Lines
//! and imported back.
//!
//! A durable run's checkpoints are its history: each one records the state
//! the run moved to, who picked the move, the gate's model exchange, what
//! the run had spent, and when. [`events`] turns them into the same
//! [`Event`]s a live subscriber receives (started, decision, transition,
//! bound hit, waiting, finished, failed), each followed by a
//! [`EventKind::CheckpointWritten`] event carrying the checkpoint itself.
//! [`export_jsonl`] writes them one a line; [`import_jsonl`] reads the
//! checkpoints back, so a run exported on one machine can be stored,
//! inspected and replayed ([`crate::Runner::replay`]) on another.

use std::borrow::Cow;
use std::io::{BufRead, Write};

use crate::event::{DecidedVia, EVENT_VERSION, Event, EventKind};
use crate::run_id::RunId;
use crate::store::{Checkpoint, RunStatus};

/// A history could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// Reading or writing failed.
    #[error("history: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not an event.
    #[error("history line {line}: not an event: {detail}")]
    Parse {
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// The events do not make one run's history: no checkpoint, several
    /// runs, or checkpoints missing or out of order.
    #[error("history line {line}: {detail}")]
    Inconsistent {
        /// The 1-based line number where it shows.
        line: usize,
        /// What is wrong.
        detail: String,
    },
}

fn event(cp: &Checkpoint, kind: EventKind) -> Event {
    Event {
        v: EVENT_VERSION,
        run_id: cp.run_id,
        machine: Cow::Owned(cp.machine.to_string()),
        at_ms: cp.at_ms,
        kind,
    }
}

/// The events a run's checkpoints (oldest first) tell, each checkpoint's
/// narrative events followed by its [`EventKind::CheckpointWritten`].
pub fn events(checkpoints: &[Checkpoint]) -> Vec<Event> {
    let mut out = Vec::with_capacity(checkpoints.len() * 3);
    let mut prev: Option<&Checkpoint> = None;
    for cp in checkpoints {
        let state = || Cow::Owned(cp.state_name.to_string());
        match prev {
            None => out.push(event(
                cp,
                EventKind::Started {
                    state: state(),
                    fingerprint: cp.fingerprint,
                },
            )),
            Some(p) => {
                if let Some(d) = &cp.decision {
                    out.push(event(cp, EventKind::Decision(d.clone())));
                }
                if let (Some(hit), None) = (&cp.spent.bound_hit, &p.spent.bound_hit) {
                    out.push(event(
                        cp,
                        EventKind::BoundHit {
                            hit: hit.clone(),
                            wrap_up: (cp.via == Some(DecidedVia::WrapUp)).then(state),
                        },
                    ));
                }
                if let Some(via) = cp.via {
                    out.push(event(
                        cp,
                        EventKind::Transition {
                            from: Cow::Owned(p.state_name.to_string()),
                            to: state(),
                            step: cp.spent.steps,
                            via,
                        },
                    ));
                }
            }
        }
        match cp.status {
            RunStatus::Running => {}
            RunStatus::Waiting => out.push(event(cp, EventKind::Waiting { state: state() })),
            RunStatus::Finished => out.push(event(
                cp,
                EventKind::Finished {
                    state: state(),
                    steps: cp.spent.steps,
                    usage: cp.spent.usage,
                },
            )),
            RunStatus::Failed => out.push(event(
                cp,
                EventKind::Failed {
                    state: state(),
                    step: cp.spent.steps,
                    error: cp.error.clone().unwrap_or_default(),
                },
            )),
        }
        out.push(event(
            cp,
            EventKind::CheckpointWritten {
                checkpoint: Box::new(cp.clone()),
            },
        ));
        prev = Some(cp);
    }
    out
}

/// Every state a run entered, in order, from its checkpoints (oldest
/// first): the state of checkpoint 0 and of every checkpoint written by a
/// transition. After compaction (only the last checkpoint left), the path
/// the last checkpoint keeps.
pub fn path(checkpoints: &[Checkpoint]) -> Vec<Cow<'static, str>> {
    match checkpoints.first() {
        Some(first) if first.seq == 0 => checkpoints
            .iter()
            .filter(|c| c.seq == 0 || c.via.is_some())
            .map(|c| c.state_name.clone())
            .collect(),
        _ => checkpoints
            .last()
            .map(|c| c.path.clone())
            .unwrap_or_default(),
    }
}

/// Writes a run's history (its checkpoints, oldest first) as JSON Lines,
/// one [`Event`] a line. Returns the number of lines written.
pub fn export_jsonl(
    checkpoints: &[Checkpoint],
    mut out: impl Write,
) -> Result<usize, HistoryError> {
    let events = events(checkpoints);
    for e in &events {
        serde_json::to_writer(&mut out, e).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(events.len())
}

/// Reads a history written by [`export_jsonl`] and returns its
/// checkpoints, oldest first, checked to be one run's, numbered from 0
/// without a gap. Blank lines are skipped; events other than checkpoints
/// are read (so a malformed one is reported) but not needed.
pub fn import_jsonl(input: impl BufRead) -> Result<Vec<Checkpoint>, HistoryError> {
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    let mut run: Option<RunId> = None;
    for (i, line) in input.lines().enumerate() {
        let line_no = i + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let e: Event = serde_json::from_str(&line).map_err(|e| HistoryError::Parse {
            line: line_no,
            detail: e.to_string(),
        })?;
        let inconsistent = |detail: String| HistoryError::Inconsistent {
            line: line_no,
            detail,
        };
        let this_run = *run.get_or_insert(e.run_id);
        if this_run != e.run_id {
            return Err(inconsistent(format!(
                "an event of run {}, but the history is of run {this_run}",
                e.run_id
            )));
        }
        if let EventKind::CheckpointWritten { checkpoint } = e.kind {
            let expected = checkpoints.len() as u64;
            if checkpoint.seq != expected {
                return Err(inconsistent(format!(
                    "checkpoint {} where checkpoint {expected} was expected",
                    checkpoint.seq
                )));
            }
            checkpoints.push(*checkpoint);
        }
    }
    if checkpoints.is_empty() {
        return Err(HistoryError::Inconsistent {
            line: 0,
            detail: "the history holds no checkpoint".into(),
        });
    }
    Ok(checkpoints)
}
