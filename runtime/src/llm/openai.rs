//! OpenAI-compatible Chat Completions: OpenAI, vLLM, llama.cpp's server,
//! Ollama and anything else that serves `POST {base}/chat/completions`.

use std::fmt;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::http::{Transport, secret_header, tool_description, var};
use super::{
    Answer, BoxFuture, Encoding, FinishReason, HttpOptions, Message, Model, ModelError,
    ModelRequest, ModelResponse, Pricing, RetryPolicy, SecretString,
};
use crate::bounds::Usage;

/// OpenAI's API.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// The model used when neither the request nor `OPENAI_MODEL` names one.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

/// Which request field carries [`CallOptions::max_output_tokens`](super::CallOptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensField {
    /// `max_completion_tokens`: what OpenAI's current models take (the
    /// default for OpenAI's own URL).
    MaxCompletionTokens,
    /// `max_tokens`: the older name, which compatible servers (llama.cpp,
    /// vLLM, Ollama) read (the default for any other URL).
    MaxTokens,
}

/// A model behind an OpenAI-compatible Chat Completions API.
///
/// - [`Encoding::StructuredOutput`] sends the gate's schema as
///   `response_format: {type: "json_schema", json_schema: {name, strict,
///   schema}}`; the answer is the message content.
/// - [`Encoding::Tools`] sends one function tool per move (`strict` too),
///   with `tool_choice: "required"` and `parallel_tool_calls: false`; the
///   answer is the first tool call.
///
/// `strict` is `true` unless the gate's schema falls outside the strict
/// subset ([`GateSpec::strict`](crate::GateSpec)). A `refusal` comes back as
/// [`Answer::Refusal`]; `finish_reason: "length"` as [`FinishReason::Length`].
///
/// ```no_run
/// use guiderail_runtime::llm::{OpenAi, RetryPolicy};
///
/// // OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_MODEL
/// let model = OpenAi::from_env()?;
/// // or in code, e.g. a local llama.cpp server (no key):
/// let local = OpenAi::compatible("http://127.0.0.1:8080/v1")
///     .with_model("tiny")
///     .with_retry(RetryPolicy::none());
/// # Ok::<(), guiderail_runtime::llm::ModelError>(())
/// ```
#[derive(Clone)]
pub struct OpenAi {
    base_url: String,
    api_key: Option<SecretString>,
    model: String,
    max_tokens_field: Option<MaxTokensField>,
    pricing: Pricing,
    transport: Transport,
}

impl fmt::Debug for OpenAi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAi")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key)
            .field("http", &self.transport.options)
            .finish()
    }
}

impl OpenAi {
    /// OpenAI's API with this key and the default model.
    pub fn new(api_key: impl Into<SecretString>) -> Self {
        OpenAi {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: Some(api_key.into()),
            model: DEFAULT_MODEL.to_owned(),
            max_tokens_field: None,
            pricing: Pricing::default(),
            transport: Transport::new("openai"),
        }
    }

    /// A compatible server at `base_url` (up to and including `/v1`), with
    /// no key; add one with [`OpenAi::with_api_key`] if the server wants it.
    pub fn compatible(base_url: impl Into<String>) -> Self {
        OpenAi {
            api_key: None,
            ..OpenAi::new("").with_base_url(base_url)
        }
    }

    /// Configured from the process environment: `OPENAI_API_KEY`,
    /// `OPENAI_BASE_URL` (default `https://api.openai.com/v1`) and
    /// `OPENAI_MODEL` (default `gpt-4o-mini`). The key may be missing only
    /// when a base URL is set (local servers).
    pub fn from_env() -> Result<Self, ModelError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`OpenAi::from_env`], reading variables through `lookup`.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ModelError> {
        let key = var(&lookup, "OPENAI_API_KEY");
        let base = var(&lookup, "OPENAI_BASE_URL");
        let mut model = match (key, &base) {
            (Some(key), _) => OpenAi::new(key),
            (None, Some(_)) => OpenAi::compatible(DEFAULT_BASE_URL),
            (None, None) => {
                return Err(ModelError::Config(
                    "OPENAI_API_KEY is not set (or set OPENAI_BASE_URL to use a local \
                     OpenAI-compatible server without a key)"
                        .into(),
                ));
            }
        };
        if let Some(base) = base {
            model = model.with_base_url(base);
        }
        if let Some(name) = var(&lookup, "OPENAI_MODEL") {
            model = model.with_model(name);
        }
        Ok(model)
    }

    /// Sets the base URL (up to and including `/v1`).
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into().trim_end_matches('/').to_owned();
        self
    }

    /// Sets the field that carries the output token limit.
    #[must_use]
    pub fn with_max_tokens_field(mut self, field: MaxTokensField) -> Self {
        self.max_tokens_field = Some(field);
        self
    }

    super::http::provider_settings!();

    /// The request body for `request` (without secrets).
    pub fn request_body(&self, request: &ModelRequest) -> Value {
        serde_json::to_value(self.body(request)).unwrap_or(Value::Null)
    }

    /// The request body, borrowing the gate's cached schemas: serialised
    /// straight to bytes, with no copy of the schema per call.
    fn body<'a>(&'a self, request: &'a ModelRequest) -> Body<'a> {
        let spec = request.gate;
        let options = &request.options;
        let (mut max_tokens, mut max_completion_tokens) = (None, None);
        if let Some(max) = options.max_output_tokens {
            let field = self
                .max_tokens_field
                .unwrap_or(if self.base_url == DEFAULT_BASE_URL {
                    MaxTokensField::MaxCompletionTokens
                } else {
                    MaxTokensField::MaxTokens
                });
            match field {
                MaxTokensField::MaxCompletionTokens => max_completion_tokens = Some(max),
                MaxTokensField::MaxTokens => max_tokens = Some(max),
            }
        }
        let mut body = Body {
            model: options.model.as_deref().unwrap_or(&self.model),
            messages: messages(&request.messages),
            temperature: options.temperature,
            max_tokens,
            max_completion_tokens,
            response_format: None,
            tools: None,
            tool_choice: None,
            parallel_tool_calls: None,
        };
        match options.encoding {
            Encoding::StructuredOutput => {
                body.response_format = Some(ResponseFormat {
                    kind: "json_schema",
                    json_schema: JsonSchemaFormat {
                        name: schema_name(spec.gate),
                        description: (!spec.doc.is_empty()).then_some(spec.doc),
                        strict: spec.strict,
                        schema: &spec.output_schema,
                    },
                });
            }
            Encoding::Tools => {
                body.tools = Some(
                    spec.moves
                        .iter()
                        .map(|m| Tool {
                            kind: "function",
                            function: Function {
                                name: m.name,
                                description: tool_description(m.name, m.doc),
                                parameters: &m.tool_parameters,
                                strict: spec.strict,
                            },
                        })
                        .collect(),
                );
                body.tool_choice = Some("required");
                body.parallel_tool_calls = Some(false);
            }
        }
        body
    }

    fn headers(&self) -> Result<HeaderMap, ModelError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &self.api_key {
            headers.insert(
                AUTHORIZATION,
                secret_header(&format!("Bearer {}", key.expose()))?,
            );
        }
        Ok(headers)
    }

    async fn call(&self, request: &ModelRequest) -> Result<ModelResponse, ModelError> {
        let body = serde_json::to_vec(&self.body(request))
            .map_err(|e| ModelError::Protocol(format!("cannot encode the request: {e}")))?;
        let url = format!("{}/chat/completions", self.base_url);
        let answer = self
            .transport
            .post(&url, self.headers()?, body, self.api_key.as_ref())
            .await?;
        let fallback = request.options.model.as_deref().unwrap_or(&self.model);
        parse_response(&answer, fallback, &self.pricing)
    }
}

impl Model for OpenAi {
    fn name(&self) -> String {
        format!("openai:{}", self.model)
    }

    fn complete<'a>(
        &'a self,
        request: &'a ModelRequest,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(self.call(request))
    }
}

/// A `json_schema` name: `[a-zA-Z0-9_-]{1,64}`.
/// A Chat Completions request body.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<Tool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
}

#[derive(Serialize)]
struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    json_schema: JsonSchemaFormat<'a>,
}

#[derive(Serialize)]
struct JsonSchemaFormat<'a> {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    strict: bool,
    schema: &'a Value,
}

#[derive(Serialize)]
struct Tool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    description: String,
    parameters: &'a Value,
    strict: bool,
}

fn schema_name(gate: &str) -> String {
    let name: String = gate
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() { "gate".into() } else { name }
}

/// The conversation in Chat Completions form: consecutive tool calls share
/// one assistant message.
fn messages(messages: &[Message]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(messages.len());
    for m in messages {
        match m {
            Message::System { content } => {
                out.push(json!({ "role": "system", "content": content }))
            }
            Message::User { content } => out.push(json!({ "role": "user", "content": content })),
            Message::Assistant { content } => {
                out.push(json!({ "role": "assistant", "content": content }));
            }
            Message::ToolCall {
                id,
                name,
                arguments,
            } => {
                let call = json!({
                    "id": id,
                    "type": "function",
                    "function": { "name": name, "arguments": arguments },
                });
                let merged = out.last_mut().and_then(|last| {
                    (last["role"] == "assistant")
                        .then(|| last.get_mut("tool_calls"))
                        .flatten()
                        .and_then(Value::as_array_mut)
                });
                match merged {
                    Some(calls) => calls.push(call),
                    None => out.push(json!({
                        "role": "assistant",
                        "content": null,
                        "tool_calls": [call],
                    })),
                }
            }
            Message::ToolResult { id, content, .. } => out.push(json!({
                "role": "tool",
                "tool_call_id": id,
                "content": content,
            })),
        }
    }
    out
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChatMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChatMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
}

#[derive(Deserialize)]
struct ToolCall {
    #[serde(default)]
    id: Option<String>,
    function: FunctionCall,
}

#[derive(Deserialize)]
struct FunctionCall {
    name: String,
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Deserialize, Default)]
struct ChatUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

fn parse_response(
    body: &[u8],
    fallback_model: &str,
    pricing: &Pricing,
) -> Result<ModelResponse, ModelError> {
    let response: ChatResponse = serde_json::from_slice(body).map_err(|e| {
        ModelError::Protocol(format!(
            "the chat completion is not valid JSON of the expected shape ({e})"
        ))
    })?;
    let choice = response
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ModelError::Protocol("the chat completion has no choices".into()))?;
    let finish = match choice.finish_reason.as_deref() {
        Some("stop") | None => FinishReason::Stop,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        Some("length") => FinishReason::Length,
        Some("content_filter") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
    };
    let message = choice.message;
    let call = message
        .tool_calls
        .and_then(|calls| calls.into_iter().next());
    let answer = if let Some(refusal) = message.refusal.filter(|r| !r.is_empty()) {
        Answer::Refusal { message: refusal }
    } else if let Some(call) = call {
        let arguments = match call.function.arguments {
            None | Some(Value::Null) => "{}".to_owned(),
            Some(Value::String(s)) if s.trim().is_empty() => "{}".to_owned(),
            Some(Value::String(s)) => s,
            // Some servers send the arguments as an object.
            Some(other) => other.to_string(),
        };
        Answer::ToolCall {
            id: call.id.unwrap_or_default(),
            name: call.function.name,
            arguments,
        }
    } else {
        Answer::Text {
            text: message.content.unwrap_or_default(),
        }
    };
    let model = response
        .model
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| fallback_model.to_owned());
    let usage = response.usage.unwrap_or_default();
    Ok(ModelResponse {
        answer,
        usage: Usage {
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
            cost_micros: pricing.cost_micros(&model, usage.prompt_tokens, usage.completion_tokens),
        },
        finish,
        model,
    })
}

#[cfg(test)]
mod tests {
    use super::{OpenAi, schema_name};

    #[test]
    fn env() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(OpenAi::from_vars(vars(&[])).is_err());
        let m = OpenAi::from_vars(vars(&[("OPENAI_API_KEY", "sk-secret-1234")])).unwrap();
        assert_eq!(m.base_url(), "https://api.openai.com/v1");
        assert_eq!(m.model(), "gpt-4o-mini");
        assert!(!format!("{m:?}").contains("sk-secret"));
        let m = OpenAi::from_vars(vars(&[
            ("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1/"),
            ("OPENAI_MODEL", "tiny"),
        ]))
        .unwrap();
        assert_eq!(m.base_url(), "http://127.0.0.1:8080/v1");
        assert_eq!(m.model(), "tiny");
        assert!(m.api_key.is_none());
    }

    #[test]
    fn schema_names() {
        assert_eq!(schema_name("Classify"), "Classify");
        assert_eq!(schema_name("a.b c"), "a_b_c");
        assert_eq!(schema_name(""), "gate");
    }
}
