//! Anthropic Messages: `POST {base}/v1/messages`.

use std::fmt;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::http::{Transport, secret_header, tool_description, var};
use super::{
    Answer, BoxFuture, FinishReason, HttpOptions, Message, Model, ModelError, ModelRequest,
    ModelResponse, Pricing, RetryPolicy, SecretString,
};
use crate::bounds::Usage;

/// Anthropic's API.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The model used when neither the request nor `ANTHROPIC_MODEL` names one.
pub const DEFAULT_MODEL: &str = "claude-haiku-4-5";
/// The `anthropic-version` header sent.
pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` when the request sets no limit (the API requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// A Claude model behind Anthropic's Messages API.
///
/// Both encodings use forced tool use: one tool per move (its
/// `input_schema` is the move's parameters, its description the move's doc
/// comment) and `tool_choice: {type: "any"}`, so the model must call exactly
/// one move's tool. The Messages API has no `json_schema` response format
/// in its stable version, so [`Encoding::StructuredOutput`](super::Encoding)
/// is served the same way; the answer is an [`Answer::ToolCall`] either
/// way, which the gate decodes alike.
///
/// System messages go to the top-level `system`; tool calls and results
/// become `tool_use` / `tool_result` content blocks. `stop_reason:
/// "max_tokens"` is [`FinishReason::Length`]; `"refusal"` an
/// [`Answer::Refusal`].
///
/// ```no_run
/// use guiderail_runtime::llm::Anthropic;
///
/// // ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, ANTHROPIC_MODEL
/// let model = Anthropic::from_env()?.with_max_tokens(512);
/// # Ok::<(), guiderail_runtime::llm::ModelError>(())
/// ```
#[derive(Clone)]
pub struct Anthropic {
    base_url: String,
    api_key: Option<SecretString>,
    model: String,
    max_tokens: u32,
    pricing: Pricing,
    transport: Transport,
}

impl fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Anthropic")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key)
            .field("max_tokens", &self.max_tokens)
            .field("http", &self.transport.options)
            .finish()
    }
}

impl Anthropic {
    /// Anthropic's API with this key and the default model.
    pub fn new(api_key: impl Into<SecretString>) -> Self {
        Anthropic {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: Some(api_key.into()),
            model: DEFAULT_MODEL.to_owned(),
            max_tokens: DEFAULT_MAX_TOKENS,
            pricing: Pricing::default(),
            transport: Transport::new("anthropic"),
        }
    }

    /// A compatible server at `base_url` (without `/v1`), with no key.
    pub fn compatible(base_url: impl Into<String>) -> Self {
        Anthropic {
            api_key: None,
            ..Anthropic::new("").with_base_url(base_url)
        }
    }

    /// Configured from the process environment: `ANTHROPIC_API_KEY`,
    /// `ANTHROPIC_BASE_URL` (default `https://api.anthropic.com`) and
    /// `ANTHROPIC_MODEL` (default `claude-haiku-4-5`). The key may be
    /// missing only when a base URL is set.
    pub fn from_env() -> Result<Self, ModelError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`Anthropic::from_env`], reading variables through `lookup`.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ModelError> {
        let key = var(&lookup, "ANTHROPIC_API_KEY");
        let base = var(&lookup, "ANTHROPIC_BASE_URL");
        let mut model = match (key, &base) {
            (Some(key), _) => Anthropic::new(key),
            (None, Some(_)) => Anthropic::compatible(DEFAULT_BASE_URL),
            (None, None) => {
                return Err(ModelError::Config(
                    "ANTHROPIC_API_KEY is not set (or set ANTHROPIC_BASE_URL to use a \
                     compatible server without a key)"
                        .into(),
                ));
            }
        };
        if let Some(base) = base {
            model = model.with_base_url(base);
        }
        if let Some(name) = var(&lookup, "ANTHROPIC_MODEL") {
            model = model.with_model(name);
        }
        Ok(model)
    }

    /// Sets the base URL (without `/v1`).
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into().trim_end_matches('/').to_owned();
        self
    }

    /// Sets `max_tokens` for requests that set no
    /// `CallOptions::max_output_tokens` (default 1024).
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens.max(1);
        self
    }

    super::http::provider_settings!();

    /// The request body for `request` (without secrets).
    pub fn request_body(&self, request: &ModelRequest) -> Value {
        serde_json::to_value(self.body(request)).unwrap_or(Value::Null)
    }

    /// The request body, borrowing the gate's cached tool schemas:
    /// serialised straight to bytes, with no copy of a schema per call.
    fn body<'a>(&'a self, request: &'a ModelRequest) -> Body<'a> {
        let spec = request.gate;
        let options = &request.options;
        let (system, messages) = messages(&request.messages);
        Body {
            model: options.model.as_deref().unwrap_or(&self.model),
            max_tokens: options.max_output_tokens.unwrap_or(self.max_tokens),
            system: (!system.is_empty()).then_some(system),
            messages,
            tools: spec
                .moves
                .iter()
                .map(|m| Tool {
                    name: m.name,
                    description: tool_description(m.name, m.doc),
                    input_schema: &m.tool_parameters,
                })
                .collect(),
            tool_choice: ToolChoice { kind: "any" },
            temperature: options.temperature,
        }
    }

    fn headers(&self) -> Result<HeaderMap, ModelError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        if let Some(key) = &self.api_key {
            headers.insert("x-api-key", secret_header(key.expose())?);
        }
        Ok(headers)
    }

    async fn call(&self, request: &ModelRequest) -> Result<ModelResponse, ModelError> {
        let body = serde_json::to_vec(&self.body(request))
            .map_err(|e| ModelError::Protocol(format!("cannot encode the request: {e}")))?;
        let url = format!("{}/v1/messages", self.base_url);
        let answer = self
            .transport
            .post(&url, self.headers()?, body, self.api_key.as_ref())
            .await?;
        let fallback = request.options.model.as_deref().unwrap_or(&self.model);
        parse_response(&answer, fallback, &self.pricing)
    }
}

impl Model for Anthropic {
    fn name(&self) -> String {
        format!("anthropic:{}", self.model)
    }

    fn complete<'a>(
        &'a self,
        request: &'a ModelRequest,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(self.call(request))
    }
}

/// The system text and the turns, consecutive blocks of one role merged
/// into one turn (the API wants user and assistant to alternate).
/// A Messages API request body.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<Value>,
    tools: Vec<Tool<'a>>,
    tool_choice: ToolChoice,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
}

#[derive(Serialize)]
struct Tool<'a> {
    name: &'a str,
    description: String,
    input_schema: &'a Value,
}

#[derive(Serialize)]
struct ToolChoice {
    #[serde(rename = "type")]
    kind: &'static str,
}

fn messages(messages: &[Message]) -> (String, Vec<Value>) {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut push = |role: &'static str, block: Value| match turns.last_mut() {
        Some((r, blocks)) if *r == role => blocks.push(block),
        _ => turns.push((role, vec![block])),
    };
    for m in messages {
        match m {
            Message::System { content } => system.push(content.as_str()),
            Message::User { content } => push("user", json!({ "type": "text", "text": content })),
            Message::Assistant { content } => {
                push("assistant", json!({ "type": "text", "text": content }));
            }
            Message::ToolCall {
                id,
                name,
                arguments,
            } => {
                let input = match serde_json::from_str::<Value>(arguments) {
                    Ok(Value::Object(o)) => Value::Object(o),
                    // `input` must be an object; keep what the model wrote.
                    _ => json!({ "raw": arguments }),
                };
                push(
                    "assistant",
                    json!({ "type": "tool_use", "id": id, "name": name, "input": input }),
                );
            }
            Message::ToolResult {
                id,
                content,
                is_error,
            } => push(
                "user",
                json!({
                    "type": "tool_result",
                    "tool_use_id": id,
                    "content": content,
                    "is_error": is_error,
                }),
            ),
        }
    }
    let turns = turns
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect();
    (system.join("\n\n"), turns)
}

#[derive(Deserialize)]
struct MessagesResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<MessagesUsage>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Value>,
}

#[derive(Deserialize, Default)]
struct MessagesUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

fn parse_response(
    body: &[u8],
    fallback_model: &str,
    pricing: &Pricing,
) -> Result<ModelResponse, ModelError> {
    let response: MessagesResponse = serde_json::from_slice(body).map_err(|e| {
        ModelError::Protocol(format!(
            "the message is not valid JSON of the expected shape ({e})"
        ))
    })?;
    let stop = response.stop_reason.as_deref();
    let finish = match stop {
        Some("end_turn" | "stop_sequence") | None => FinishReason::Stop,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("max_tokens") => FinishReason::Length,
        Some(other) => FinishReason::Other(other.to_owned()),
    };
    let text: String = response
        .content
        .iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text.as_deref())
        .collect::<Vec<_>>()
        .join("");
    let tool_use = response.content.into_iter().find(|b| b.kind == "tool_use");
    let answer = if stop == Some("refusal") {
        Answer::Refusal {
            message: if text.is_empty() {
                "the model declined to answer".to_owned()
            } else {
                text
            },
        }
    } else if let Some(call) = tool_use {
        let input = call.input.unwrap_or_else(|| Value::Object(Map::new()));
        Answer::ToolCall {
            id: call.id.unwrap_or_default(),
            name: call.name.unwrap_or_default(),
            arguments: input.to_string(),
        }
    } else {
        Answer::Text { text }
    };
    let model = response
        .model
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| fallback_model.to_owned());
    let usage = response.usage.unwrap_or_default();
    // Cached prompt tokens count as input (priced at the input rate).
    let input = usage.input_tokens
        + usage.cache_creation_input_tokens.unwrap_or(0)
        + usage.cache_read_input_tokens.unwrap_or(0);
    Ok(ModelResponse {
        answer,
        usage: Usage {
            input_tokens: input,
            output_tokens: usage.output_tokens,
            cost_micros: pricing.cost_micros(&model, input, usage.output_tokens),
        },
        finish,
        model,
    })
}

#[cfg(test)]
mod tests {
    use super::{Anthropic, messages};
    use crate::llm::Message;

    #[test]
    fn env() {
        let none = |_: &str| None;
        assert!(Anthropic::from_vars(none).is_err());
        let m = Anthropic::from_vars(|n: &str| {
            (n == "ANTHROPIC_API_KEY").then(|| "sk-ant-secret".to_owned())
        })
        .unwrap();
        assert_eq!(m.base_url(), "https://api.anthropic.com");
        assert!(!format!("{m:?}").contains("sk-ant-secret"));
    }

    #[test]
    fn turns_alternate() {
        let (system, turns) = messages(&[
            Message::System {
                content: "rules".into(),
            },
            Message::User {
                content: "hi".into(),
            },
            Message::ToolCall {
                id: "t1".into(),
                name: "Done".into(),
                arguments: "{}".into(),
            },
            Message::ToolResult {
                id: "t1".into(),
                content: "rejected".into(),
                is_error: true,
            },
            Message::User {
                content: "again".into(),
            },
        ]);
        assert_eq!(system, "rules");
        let roles: Vec<&str> = turns.iter().map(|t| t["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(turns[2]["content"][0]["type"], "tool_result");
        assert_eq!(turns[2]["content"][1]["type"], "text");
    }
}
