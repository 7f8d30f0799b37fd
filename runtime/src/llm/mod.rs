//! Models: the one trait gates call, and the request and response types.
//!
//! Provider specifics (HTTP, headers, wire formats) live in their own
//! modules; this one knows none of them.
//!
//! # Providers
//!
//! Behind cargo features, both on by default:
//!
//! - `openai`: [`OpenAi`], Chat Completions (`POST {base}/chat/completions`),
//!   for OpenAI and any compatible server (vLLM, llama.cpp's server, Ollama).
//!   Environment: `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_MODEL`.
//! - `anthropic`: [`Anthropic`], Messages (`POST {base}/v1/messages`).
//!   Environment: `ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`,
//!   `ANTHROPIC_MODEL`.
//!
//! Both share one transport ([`HttpOptions`], [`RetryPolicy`]): a pooled
//! reqwest client (rustls) per provider value, connect and request
//! timeouts, retries with exponential backoff and full jitter on connect
//! errors, 408, 429, 5xx and overload answers, honouring `Retry-After`,
//! capped in attempts and in total time. API keys are held in a
//! [`SecretString`] and never appear in `Debug` output, errors, events or
//! logs. Token usage is priced with a [`Pricing`] table.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::bounds::Usage;
use crate::gate::GateSpec;

#[cfg(feature = "anthropic")]
mod anthropic;
#[cfg(any(feature = "openai", feature = "anthropic"))]
mod http;
#[cfg(feature = "openai")]
mod openai;
mod pricing;
mod replay;
mod scripted;

#[cfg(feature = "anthropic")]
pub use anthropic::Anthropic;
#[cfg(any(feature = "openai", feature = "anthropic"))]
pub use http::{HttpOptions, RetryPolicy, SecretString};
#[cfg(feature = "openai")]
pub use openai::{MaxTokensField, OpenAi};
pub use pricing::{ModelPrice, Pricing};
pub use replay::{Exchange, RecordingModel, ReplayModel, Transcript, TranscriptError};
pub use scripted::{Scripted, ScriptedModel};

/// A boxed, `Send` future: what [`Model::complete`] returns, so models can be
/// used as `Arc<dyn Model>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a gate's moves are offered to the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// One JSON Schema for the whole answer: `{"move": {"<Move>": payload}}`.
    #[default]
    StructuredOutput,
    /// One tool per move; the model must call exactly one.
    Tools,
}

/// One message of a conversation with a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    /// Instructions.
    System {
        /// The text.
        content: String,
    },
    /// The user's (or the handler's) prompt, or a repair request.
    User {
        /// The text.
        content: String,
    },
    /// An earlier answer of the model.
    Assistant {
        /// The text.
        content: String,
    },
    /// An earlier tool call of the model.
    ToolCall {
        /// The provider's id of the call.
        id: String,
        /// The tool (move) name.
        name: String,
        /// The arguments as the model wrote them.
        arguments: String,
    },
    /// The answer to a tool call (for gates: why the call was rejected).
    ToolResult {
        /// The id of the call this answers.
        id: String,
        /// The text.
        content: String,
        /// Whether the call failed.
        is_error: bool,
    },
}

/// Per-call options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallOptions {
    /// Model name; `None` uses the provider's default.
    pub model: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Most output tokens.
    pub max_output_tokens: Option<u32>,
    /// How the moves are offered.
    pub encoding: Encoding,
}

/// What a gate sends to a model.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    /// The gate: its moves, schema and tools.
    pub gate: &'static GateSpec,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Options.
    pub options: CallOptions,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// It finished its answer.
    Stop,
    /// It called a tool.
    ToolCalls,
    /// It ran out of output tokens: the answer is cut off.
    Length,
    /// The provider filtered the answer.
    ContentFilter,
    /// Something else, as the provider said it.
    Other(String),
}

/// The model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Answer {
    /// Text (for structured output: the JSON).
    Text {
        /// The text.
        text: String,
    },
    /// A tool call.
    ToolCall {
        /// The provider's id of the call.
        id: String,
        /// The tool (move) name.
        name: String,
        /// The arguments as the model wrote them (JSON text).
        arguments: String,
    },
    /// The model refused to answer.
    Refusal {
        /// The refusal text.
        message: String,
    },
}

impl Answer {
    /// The answer as raw text, the way it is recorded in attempts.
    pub fn raw(&self) -> String {
        match self {
            Answer::Text { text } => text.clone(),
            Answer::ToolCall {
                name, arguments, ..
            } => format!("{name}({arguments})"),
            Answer::Refusal { message } => format!("refusal: {message}"),
        }
    }
}

/// What a model returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResponse {
    /// The answer.
    pub answer: Answer,
    /// Tokens and cost of this call.
    pub usage: Usage,
    /// Why it stopped.
    pub finish: FinishReason,
    /// The model that answered, as the provider named it.
    pub model: String,
}

/// A model call that failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The provider answered with an error status.
    #[error("provider returned HTTP {status}: {message}")]
    Http {
        /// The status code.
        status: u16,
        /// The provider's error message.
        message: String,
    },
    /// The request could not be sent or the answer not received.
    #[error("transport error: {0}")]
    Transport(String),
    /// The call took too long.
    #[error("model call timed out after {0} ms")]
    Timeout(u64),
    /// The provider's answer could not be understood.
    #[error("unexpected answer from provider: {0}")]
    Protocol(String),
    /// A scripted or replay model has no answer left.
    #[error("no scripted answer left for gate `{0}`")]
    Exhausted(String),
    /// The provider rejected the credentials (HTTP 401 or 403). Not retried.
    #[error("provider rejected the credentials (HTTP {status}): {message}")]
    Unauthorized {
        /// The status code.
        status: u16,
        /// The provider's error message (with any key redacted).
        message: String,
    },
    /// Every attempt failed with a retryable error, or the retry time ran
    /// out.
    #[error("model call failed after {attempts} attempts; last error: {last}")]
    RetriesExhausted {
        /// How many requests were sent.
        attempts: u32,
        /// The last failure.
        last: Box<ModelError>,
    },
    /// The model is not configured (no API key, a bad URL, …).
    #[error("model configuration error: {0}")]
    Config(String),
}

impl ModelError {
    /// The failure behind retries: `last` of [`ModelError::RetriesExhausted`],
    /// else the error itself.
    pub fn root(&self) -> &ModelError {
        match self {
            ModelError::RetriesExhausted { last, .. } => last.root(),
            other => other,
        }
    }

    /// The HTTP status the provider answered with, if any.
    pub fn status(&self) -> Option<u16> {
        match self.root() {
            ModelError::Http { status, .. } | ModelError::Unauthorized { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}

/// A language model that gates can ask.
///
/// Implemented by the HTTP providers and by [`ScriptedModel`]; implement it
/// for anything else that answers a [`ModelRequest`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a model",
    note = "use `ScriptedModel` in tests, or implement `guiderail::Model` for your client"
)]
pub trait Model: Send + Sync + fmt::Debug {
    /// A short name for events (`"scripted"`, `"openai:gpt-4o-mini"`).
    fn name(&self) -> String;

    /// Sends one request.
    fn complete<'a>(
        &'a self,
        request: &'a ModelRequest,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>>;
}

impl<M: Model + ?Sized> Model for std::sync::Arc<M> {
    fn name(&self) -> String {
        (**self).name()
    }

    fn complete<'a>(
        &'a self,
        request: &'a ModelRequest,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        (**self).complete(request)
    }
}
