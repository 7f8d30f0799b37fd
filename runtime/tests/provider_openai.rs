//! The OpenAI provider over real HTTP against a local mock server that
//! answers with Chat Completions' real response shapes.

#![cfg(feature = "openai")]

mod common;

use std::time::{Duration, Instant};

use common::{ClassifyNext, request};
use guiderail_runtime::llm::{
    Answer, Encoding, FinishReason, HttpOptions, Message, Model, ModelError, OpenAi, RetryPolicy,
};
use guiderail_runtime::{GateMoves, decode_answer};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY: &str = "sk-test-0123456789abcdef";

fn model(server: &MockServer) -> OpenAi {
    OpenAi::new(KEY)
        .with_base_url(format!("{}/v1", server.uri()))
        .with_model("gpt-4o-mini")
        .with_retry(
            RetryPolicy::default()
                .base_delay(Duration::from_millis(20))
                .max_delay(Duration::from_millis(100)),
        )
}

/// A chat completion as OpenAI sends it.
fn completion(message: Value, finish_reason: &str) -> Value {
    json!({
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": {
            "prompt_tokens": 1117,
            "completion_tokens": 46,
            "total_tokens": 1163,
            "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 },
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
    })
}

fn text_message(content: &str) -> Value {
    json!({ "role": "assistant", "content": content, "refusal": null, "annotations": [] })
}

fn tool_message(name: &str, arguments: &str) -> Value {
    json!({
        "role": "assistant",
        "content": null,
        "tool_calls": [{
            "id": "call_FthC9qRpsL5kBpwwyw6c7j4k",
            "type": "function",
            "function": { "name": name, "arguments": arguments },
        }],
        "refusal": null,
        "annotations": [],
    })
}

fn openai_error(message: &str, kind: &str, code: &str) -> Value {
    json!({ "error": { "message": message, "type": kind, "param": null, "code": code } })
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

fn assert_no_key(error: &ModelError) {
    assert!(!format!("{error}").contains(KEY), "key in Display: {error}");
    assert!(
        !format!("{error:?}").contains(KEY),
        "key in Debug: {error:?}"
    );
}

#[tokio::test]
async fn structured_output_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            text_message(r#"{"move":{"Refund":{"order_id":42}}}"#),
            "stop",
        )))
        .expect(1)
        .mount(&server)
        .await;

    let response = model(&server)
        .complete(&request(Encoding::StructuredOutput))
        .await
        .unwrap();
    assert_eq!(response.finish, FinishReason::Stop);
    assert_eq!(response.model, "gpt-4o-mini-2024-07-18");
    assert_eq!(response.usage.input_tokens, 1117);
    assert_eq!(response.usage.output_tokens, 46);
    // gpt-4o-mini example price: $0.15 / $0.60 per million tokens:
    // 1117 × 0.15 + 46 × 0.60 = 195.15 micro-USD, rounded up.
    assert_eq!(response.usage.cost_micros, 196);
    assert_eq!(
        decode_answer::<ClassifyNext>(&response.answer),
        Ok(ClassifyNext::Refund { order_id: 42 })
    );

    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    let body: Value = sent[0].body_json().unwrap();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["temperature"], 0.0);
    // A custom base URL gets the widely supported `max_tokens`.
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1]["role"], "user");
    let format = &body["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["name"], "Classify");
    assert_eq!(format["json_schema"]["strict"], true);
    assert_eq!(
        format["json_schema"]["schema"],
        ClassifyNext::spec().output_schema
    );
    assert_eq!(
        format["json_schema"]["schema"]["additionalProperties"],
        false
    );
    assert!(body.get("tools").is_none());
    assert!(body.get("tool_choice").is_none());
}

#[tokio::test]
async fn tools_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            tool_message("Escalate", r#"{"reason":"legal threat"}"#),
            "tool_calls",
        )))
        .mount(&server)
        .await;

    let response = model(&server)
        .complete(&request(Encoding::Tools))
        .await
        .unwrap();
    assert_eq!(response.finish, FinishReason::ToolCalls);
    let Answer::ToolCall { id, name, .. } = &response.answer else {
        panic!("expected a tool call: {:?}", response.answer);
    };
    assert_eq!(id, "call_FthC9qRpsL5kBpwwyw6c7j4k");
    assert_eq!(name, "Escalate");
    assert_eq!(
        decode_answer::<ClassifyNext>(&response.answer),
        Ok(ClassifyNext::Escalate {
            reason: "legal threat".into()
        })
    );

    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert_eq!(body["tool_choice"], "required");
    assert_eq!(body["parallel_tool_calls"], false);
    assert!(body.get("response_format").is_none());
    let tools = body["tools"].as_array().unwrap();
    let names: Vec<&str> = tools
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Refund", "Escalate", "Done"]);
    for (tool, mv) in tools.iter().zip(&ClassifyNext::spec().moves) {
        assert_eq!(tool["type"], "function");
        assert_eq!(tool["function"]["strict"], true);
        assert_eq!(tool["function"]["description"], mv.doc);
        assert_eq!(tool["function"]["parameters"], mv.tool_parameters);
    }
}

#[tokio::test]
async fn openai_url_uses_max_completion_tokens_and_request_model() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(completion(text_message(r#"{"move":{"Done":{}}}"#), "stop")),
        )
        .mount(&server)
        .await;
    let mut req = request(Encoding::StructuredOutput);
    req.options.model = Some("gpt-4.1-mini".into());
    let m = model(&server)
        .with_max_tokens_field(guiderail_runtime::llm::MaxTokensField::MaxCompletionTokens);
    let response = m.complete(&req).await.unwrap();
    assert_eq!(
        decode_answer::<ClassifyNext>(&response.answer),
        Ok(ClassifyNext::Done)
    );
    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert_eq!(body["model"], "gpt-4.1-mini");
    assert_eq!(body["max_completion_tokens"], 256);
    assert!(body.get("max_tokens").is_none());
}

#[tokio::test]
async fn conversation_with_tool_call_and_result() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(completion(tool_message("Done", "{}"), "tool_calls")),
        )
        .mount(&server)
        .await;
    let mut req = request(Encoding::Tools);
    req.messages.push(Message::ToolCall {
        id: "call_1".into(),
        name: "Cancel".into(),
        arguments: "{}".into(),
    });
    req.messages.push(Message::ToolResult {
        id: "call_1".into(),
        content: "`Cancel` is not an allowed move here".into(),
        is_error: true,
    });
    let response = model(&server).complete(&req).await.unwrap();
    assert_eq!(
        decode_answer::<ClassifyNext>(&response.answer),
        Ok(ClassifyNext::Done)
    );
    let body: Value = requests(&server).await[0].body_json().unwrap();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[2]["role"], "assistant");
    assert_eq!(messages[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(messages[2]["tool_calls"][0]["type"], "function");
    assert_eq!(messages[2]["tool_calls"][0]["function"]["name"], "Cancel");
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(messages[3]["tool_call_id"], "call_1");
}

#[tokio::test]
async fn refusal_is_typed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            json!({ "role": "assistant", "content": null, "refusal": "I'm sorry, I cannot help with that." }),
            "stop",
        )))
        .mount(&server)
        .await;
    let response = model(&server)
        .complete(&request(Encoding::StructuredOutput))
        .await
        .unwrap();
    assert_eq!(
        response.answer,
        Answer::Refusal {
            message: "I'm sorry, I cannot help with that.".into()
        }
    );
}

#[tokio::test]
async fn rate_limit_honours_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(openai_error(
                    "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3, Requested 1.",
                    "requests",
                    "rate_limit_exceeded",
                )),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(completion(text_message(r#"{"move":{"Done":{}}}"#), "stop")),
        )
        .mount(&server)
        .await;
    let started = Instant::now();
    let response = model(&server)
        .complete(&request(Encoding::StructuredOutput))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(
        decode_answer::<ClassifyNext>(&response.answer),
        Ok(ClassifyNext::Done)
    );
    assert_eq!(requests(&server).await.len(), 2);
    // The backoff alone would be at most 20 ms: the 1 s came from Retry-After.
    assert!(
        waited >= Duration::from_millis(900),
        "waited only {waited:?}"
    );
}

#[tokio::test]
async fn server_error_then_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_json(openai_error(
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            "internal_error",
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            tool_message("Refund", r#"{"order_id":7}"#),
            "tool_calls",
        )))
        .mount(&server)
        .await;
    let response = model(&server)
        .complete(&request(Encoding::Tools))
        .await
        .unwrap();
    assert_eq!(
        decode_answer::<ClassifyNext>(&response.answer),
        Ok(ClassifyNext::Refund { order_id: 7 })
    );
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn retries_are_capped() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_json(openai_error(
            "The engine is currently overloaded, please try again later.",
            "server_error",
            "overloaded",
        )))
        .mount(&server)
        .await;
    let m = model(&server).with_retry(
        RetryPolicy::default()
            .max_attempts(3)
            .base_delay(Duration::from_millis(10)),
    );
    let error = m
        .complete(&request(Encoding::StructuredOutput))
        .await
        .unwrap_err();
    let ModelError::RetriesExhausted { attempts, last } = &error else {
        panic!("expected RetriesExhausted, got {error:?}");
    };
    assert_eq!(*attempts, 3);
    assert_eq!(
        **last,
        ModelError::Http {
            status: 503,
            message: "The engine is currently overloaded, please try again later.".into()
        }
    );
    assert_eq!(error.status(), Some(503));
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn retry_after_beyond_total_time_gives_up_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30"))
        .mount(&server)
        .await;
    let m = model(&server).with_retry(RetryPolicy::default().max_elapsed(Duration::from_secs(5)));
    let started = Instant::now();
    let error = m
        .complete(&request(Encoding::StructuredOutput))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(error.status(), Some(429));
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn stalled_response_hits_the_request_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(5))
                .set_body_json(completion(text_message("{}"), "stop")),
        )
        .mount(&server)
        .await;
    let m = model(&server).with_timeouts(Duration::from_secs(1), Duration::from_millis(300));
    let started = Instant::now();
    let error = m
        .complete(&request(Encoding::StructuredOutput))
        .await
        .unwrap_err();
    assert_eq!(error, ModelError::Timeout(300));
    assert!(started.elapsed() < Duration::from_secs(3));
    // Timeouts are not retried by default.
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn stalled_response_retried_when_asked() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let m = model(&server).with_http_options(
        HttpOptions::default()
            .request_timeout(Duration::from_millis(200))
            .retry(
                RetryPolicy::default()
                    .max_attempts(2)
                    .base_delay(Duration::from_millis(10))
                    .retry_timeouts(true),
            ),
    );
    let error = m
        .complete(&request(Encoding::StructuredOutput))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ModelError::RetriesExhausted { attempts: 2, last } if **last == ModelError::Timeout(200)),
        "{error:?}"
    );
}

#[tokio::test]
async fn truncated_content_is_length_and_does_not_decode() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            text_message(r#"{"move":{"Refund":{"order_"#),
            "length",
        )))
        .mount(&server)
        .await;
    let response = model(&server)
        .complete(&request(Encoding::StructuredOutput))
        .await
        .unwrap();
    assert_eq!(response.finish, FinishReason::Length);
    let error = decode_answer::<ClassifyNext>(&response.answer).unwrap_err();
    assert!(error.contains("not valid JSON"), "{error}");
}

#[tokio::test]
async fn truncated_response_body_is_a_protocol_error() {
    let server = MockServer::start().await;
    let body = completion(text_message(r#"{"move":{"Done":{}}}"#), "stop").to_string();
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .set_body_string(&body[..body.len() / 2]),
        )
        .mount(&server)
        .await;
    let error = model(&server)
        .complete(&request(Encoding::StructuredOutput))
        .await
        .unwrap_err();
    assert!(matches!(error, ModelError::Protocol(_)), "{error:?}");
    // Not retried: the server answered.
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn undeclared_move_and_extra_fields_never_decode() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            tool_message("DeleteAllOrders", r#"{"confirm":true}"#),
            "tool_calls",
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            text_message(r#"{"move":{"Refund":{"order_id":1,"amount_cents":999999}}}"#),
            "stop",
        )))
        .mount(&server)
        .await;
    let m = model(&server);
    let answer = m.complete(&request(Encoding::Tools)).await.unwrap().answer;
    let error = decode_answer::<ClassifyNext>(&answer).unwrap_err();
    assert!(error.contains("not an allowed move"), "{error}");
    let answer = m
        .complete(&request(Encoding::StructuredOutput))
        .await
        .unwrap()
        .answer;
    let error = decode_answer::<ClassifyNext>(&answer).unwrap_err();
    assert!(error.contains("unexpected field `amount_cents`"), "{error}");
}

#[tokio::test]
async fn unauthorized_is_typed_not_retried_and_redacted() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(openai_error(
            &format!(
                "Incorrect API key provided: {KEY}. You can find your API key at https://platform.openai.com/account/api-keys."
            ),
            "invalid_request_error",
            "invalid_api_key",
        )))
        .mount(&server)
        .await;
    let m = model(&server);
    let error = m
        .complete(&request(Encoding::StructuredOutput))
        .await
        .unwrap_err();
    let ModelError::Unauthorized { status, message } = &error else {
        panic!("expected Unauthorized, got {error:?}");
    };
    assert_eq!(*status, 401);
    assert!(
        message.starts_with("Incorrect API key provided: ***."),
        "{message}"
    );
    assert_no_key(&error);
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    for status in [400u16, 403, 404] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(openai_error(
                "Invalid schema for response_format 'Classify'",
                "invalid_request_error",
                "invalid_value",
            )))
            .mount(&server)
            .await;
        let error = model(&server)
            .complete(&request(Encoding::StructuredOutput))
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(status));
        assert!(
            format!("{error}").contains("Invalid schema for response_format"),
            "{error}"
        );
        assert_no_key(&error);
        assert_eq!(requests(&server).await.len(), 1, "status {status}");
    }
}

#[tokio::test]
async fn connection_refused_is_retried_then_typed() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let m = OpenAi::new(KEY)
        .with_base_url(format!("http://127.0.0.1:{port}/v1"))
        .with_retry(
            RetryPolicy::default()
                .max_attempts(2)
                .base_delay(Duration::from_millis(10)),
        );
    let error = m
        .complete(&request(Encoding::StructuredOutput))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ModelError::RetriesExhausted { attempts: 2, last } if matches!(**last, ModelError::Transport(_))),
        "{error:?}"
    );
    assert_no_key(&error);
}

#[test]
fn key_never_in_debug() {
    let m = OpenAi::new(KEY);
    let debug = format!("{m:?}");
    assert!(!debug.contains(KEY), "{debug}");
    assert!(debug.contains("***"), "{debug}");
    assert_eq!(m.name(), "openai:gpt-4o-mini");
    let m = OpenAi::from_vars(|name| match name {
        "OPENAI_API_KEY" => Some(KEY.to_owned()),
        "OPENAI_MODEL" => Some("gpt-4.1-mini".to_owned()),
        _ => None,
    })
    .unwrap();
    assert!(!format!("{m:?}").contains(KEY));
    assert!(!format!("{m:#?}").contains(KEY));
    // The request body carries no key either.
    let body = m.request_body(&request(Encoding::Tools)).to_string();
    assert!(!body.contains(KEY));
}

/// Collects every tracing event and span field as text.
mod capture {
    use std::fmt::{self, Write};
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    #[derive(Clone, Default)]
    pub struct Logs(pub Arc<Mutex<String>>);

    struct Fields<'a>(&'a mut String);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            let _ = write!(self.0, "{}={value:?} ", field.name());
        }
    }

    impl Subscriber for Logs {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &Attributes<'_>) -> Id {
            span.record(&mut Fields(&mut self.0.lock().unwrap()));
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, values: &Record<'_>) {
            values.record(&mut Fields(&mut self.0.lock().unwrap()));
        }
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut logs = self.0.lock().unwrap();
            logs.push_str(event.metadata().target());
            logs.push(' ');
            event.record(&mut Fields(&mut logs));
            logs.push('\n');
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}

#[tokio::test]
async fn logs_never_contain_the_key() {
    let logs = capture::Logs::default();
    let _guard = tracing::subscriber::set_default(logs.clone());
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_json(openai_error(
            &format!("upstream failed for key {KEY}"),
            "server_error",
            "internal_error",
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(openai_error(
            &format!("Incorrect API key provided: {KEY}."),
            "invalid_request_error",
            "invalid_api_key",
        )))
        .mount(&server)
        .await;
    let error = model(&server)
        .complete(&request(Encoding::Tools))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert_no_key(&error);
    let logs = logs.0.lock().unwrap().clone();
    assert!(logs.contains("retrying"), "{logs}");
    assert!(logs.contains("upstream failed for key ***"), "{logs}");
    assert!(!logs.contains(KEY), "{logs}");
}
