//! A model that answers from a script: for tests and offline examples.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::{
    Answer, BoxFuture, Encoding, FinishReason, Model, ModelError, ModelRequest, ModelResponse,
};
use crate::bounds::Usage;
use crate::gate::{DecidedBy, DecisionRecord, GateMoves, encode_move};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// A typed move of a gate, rendered in whatever encoding the request
    /// uses. Asked at another gate, the model answers with an error.
    Move {
        /// The gate the move belongs to.
        gate: Cow<'static, str>,
        /// The move name.
        name: Cow<'static, str>,
        /// The payload as JSON.
        payload: Value,
    },
    /// Raw text, as a model might write it (valid or not).
    Raw(String),
    /// A whole response.
    Response(ModelResponse),
    /// A failed call.
    Error(ModelError),
}

/// A model that answers from a queue, in order, and remembers every request
/// so tests can assert what was asked.
///
/// Script typed moves with [`ScriptedModel::then`]: renaming a move then
/// breaks the test's build instead of silently passing.
///
/// ```text
/// let model = ScriptedModel::new()
///     .then(support::ClassifyNext::Escalate { reason: "legal".into() })
///     .then_raw("not json"); // the next gate gets a bad answer
/// ```
#[derive(Debug, Default)]
pub struct ScriptedModel {
    queue: Mutex<VecDeque<Scripted>>,
    requests: Mutex<Vec<ModelRequest>>,
    usage: Usage,
}

impl ScriptedModel {
    /// An empty script.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers the next request with this typed move.
    #[must_use]
    pub fn then<N: GateMoves>(self, next: N) -> Self {
        let (name, payload) = encode_move(&next);
        self.push(Scripted::Move {
            gate: Cow::Borrowed(N::GATE),
            name: Cow::Borrowed(name),
            payload,
        })
    }

    /// Answers the next request of `record`'s gate as the recorded
    /// decision went: a model's decision with its chosen move, a fallback
    /// with the rejected answers again (so the gate falls back again). An
    /// override asks no model, so it adds nothing.
    #[must_use]
    pub fn then_recorded(self, record: &DecisionRecord) -> Self {
        match &record.decided_by {
            DecidedBy::Model { .. } => self.push(Scripted::Move {
                gate: Cow::Owned(record.gate.clone()),
                name: Cow::Owned(record.chosen.clone()),
                payload: record.payload.clone(),
            }),
            DecidedBy::Fallback { .. } => record
                .attempts
                .iter()
                .fold(self, |m, a| m.then_raw(a.raw.clone())),
            DecidedBy::Override { .. } => self,
        }
    }

    /// Answers the next request with this raw text.
    #[must_use]
    pub fn then_raw(self, text: impl Into<String>) -> Self {
        self.push(Scripted::Raw(text.into()))
    }

    /// Answers the next request with this error.
    #[must_use]
    pub fn then_error(self, error: ModelError) -> Self {
        self.push(Scripted::Error(error))
    }

    /// Answers the next request with this whole response.
    #[must_use]
    pub fn then_response(self, response: ModelResponse) -> Self {
        self.push(Scripted::Response(response))
    }

    /// Reports this usage for every answer (default: none).
    #[must_use]
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }

    fn push(self, s: Scripted) -> Self {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(s);
        self
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<ModelRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many answers are left.
    pub fn remaining(&self) -> usize {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn answer(&self, request: &ModelRequest) -> Result<ModelResponse, ModelError> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request.clone());
        let next = self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        let gate = request.gate.gate;
        let answer = match next {
            None => return Err(ModelError::Exhausted(gate.to_owned())),
            Some(Scripted::Error(e)) => return Err(e),
            Some(Scripted::Response(r)) => return Ok(r),
            Some(Scripted::Raw(text)) => Answer::Text { text },
            Some(Scripted::Move {
                gate: for_gate,
                name,
                payload,
            }) => {
                if for_gate != gate {
                    return Err(ModelError::Protocol(format!(
                        "the script's next answer is a move of gate `{for_gate}`, but gate `{gate}` asked"
                    )));
                }
                render(request, &name, payload)
            }
        };
        let finish = match answer {
            Answer::ToolCall { .. } => FinishReason::ToolCalls,
            _ => FinishReason::Stop,
        };
        Ok(ModelResponse {
            answer,
            usage: self.usage,
            finish,
            model: "scripted".into(),
        })
    }
}

/// Writes a move the way a model would in the request's encoding.
fn render(request: &ModelRequest, name: &str, payload: Value) -> Answer {
    match request.options.encoding {
        Encoding::StructuredOutput => Answer::Text {
            text: json!({ "move": { name: payload } }).to_string(),
        },
        Encoding::Tools => {
            let wrapped = request.gate.find(name).is_some_and(|m| m.wrapped);
            let args = if wrapped {
                json!({ "value": payload })
            } else {
                payload
            };
            Answer::ToolCall {
                id: format!("call_{}", name.to_lowercase()),
                name: name.to_owned(),
                arguments: args.to_string(),
            }
        }
    }
}

impl Model for ScriptedModel {
    fn name(&self) -> String {
        "scripted".into()
    }

    fn complete<'a>(
        &'a self,
        request: &'a ModelRequest,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(async move { self.answer(request) })
    }
}
