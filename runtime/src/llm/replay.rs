//! Recording a model's answers, and answering from a recording.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{BoxFuture, Model, ModelError, ModelRequest, ModelResponse};

/// One model call: which gate asked and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// The gate that asked.
    pub gate: String,
    /// The model's response.
    pub response: ModelResponse,
}

/// A run's model calls in order, stored as JSON Lines (one [`Exchange`] a
/// line) so it can be checked into a repository and diffed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// The calls, in order.
    pub exchanges: Vec<Exchange>,
}

/// A transcript file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    /// Reading or writing the file failed.
    #[error("transcript {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// A line is not an exchange.
    #[error("transcript {path}, line {line}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        source: serde_json::Error,
    },
}

impl Transcript {
    /// Reads a JSON Lines transcript.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TranscriptError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let io = |source| TranscriptError::Io {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut exchanges = Vec::new();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(io)?;
            if line.trim().is_empty() {
                continue;
            }
            let exchange =
                serde_json::from_str(&line).map_err(|source| TranscriptError::Parse {
                    path: shown.clone(),
                    line: i + 1,
                    source,
                })?;
            exchanges.push(exchange);
        }
        Ok(Transcript { exchanges })
    }

    /// Writes the transcript as JSON Lines, replacing the file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), TranscriptError> {
        let path = path.as_ref();
        let io = |source| TranscriptError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut out = Vec::new();
        for e in &self.exchanges {
            serde_json::to_writer(&mut out, e).map_err(|e| io(e.into()))?;
            out.push(b'\n');
        }
        let tmp = path.with_extension("jsonl.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&out).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// Wraps a model and keeps every exchange, to save as a [`Transcript`].
#[derive(Debug)]
pub struct RecordingModel<M> {
    inner: M,
    log: Arc<Mutex<Vec<Exchange>>>,
}

impl<M: Model> RecordingModel<M> {
    /// Records what `inner` answers.
    pub fn new(inner: M) -> Self {
        RecordingModel {
            inner,
            log: Arc::default(),
        }
    }

    /// What was recorded so far.
    pub fn transcript(&self) -> Transcript {
        Transcript {
            exchanges: self.log.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

impl<M: Model> Model for RecordingModel<M> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn complete<'a>(
        &'a self,
        request: &'a ModelRequest,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(async move {
            let response = self.inner.complete(request).await?;
            self.log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Exchange {
                    gate: request.gate.gate.to_owned(),
                    response: response.clone(),
                });
            Ok(response)
        })
    }
}

/// Answers from a [`Transcript`], in order: re-runs a recorded run offline
/// and deterministically. A request from another gate than the recording's
/// next one is an error (the run has diverged from the recording).
#[derive(Debug)]
pub struct ReplayModel {
    name: String,
    queue: Mutex<VecDeque<Exchange>>,
}

impl ReplayModel {
    /// Replays `transcript`.
    pub fn new(transcript: Transcript) -> Self {
        ReplayModel {
            name: "replay".into(),
            queue: Mutex::new(transcript.exchanges.into()),
        }
    }

    /// Replays the transcript in `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TranscriptError> {
        Transcript::load(path).map(Self::new)
    }

    /// How many recorded answers are left.
    pub fn remaining(&self) -> usize {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Model for ReplayModel {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn complete<'a>(
        &'a self,
        request: &'a ModelRequest,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        let gate = request.gate.gate;
        let next = self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        let result = match next {
            None => Err(ModelError::Exhausted(gate.to_owned())),
            Some(e) if e.gate != gate => Err(ModelError::Protocol(format!(
                "the run diverged from the recording: gate `{gate}` asked, but the next recorded answer is for gate `{}`",
                e.gate
            ))),
            Some(e) => Ok(e.response),
        };
        Box::pin(async move { result })
    }
}
