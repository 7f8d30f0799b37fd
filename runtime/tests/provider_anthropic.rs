//! The Anthropic provider over real HTTP against a local mock server that
//! answers with the Messages API's real response shapes.

#![cfg(feature = "anthropic")]

mod common;

use std::time::{Duration, Instant};

use common::{ClassifyNext, request};
use guiderail_runtime::llm::{
    Answer, Anthropic, Encoding, FinishReason, Message, Model, ModelError, RetryPolicy,
};
use guiderail_runtime::{GateMoves, decode_answer};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY: &str = "sk-ant-api03-test-0123456789abcdef";

fn model(server: &MockServer) -> Anthropic {
    Anthropic::new(KEY)
        .with_base_url(server.uri())
        .with_model("claude-3-5-haiku-latest")
        .with_retry(
            RetryPolicy::default()
                .base_delay(Duration::from_millis(20))
                .max_delay(Duration::from_millis(100)),
        )
}

/// A message as the Messages API sends it.
fn message(content: Value, stop_reason: &str) -> Value {
    json!({
        "id": "msg_01Aq9w938a90dw8q",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {
            "input_tokens": 472,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 67,
            "service_tier": "standard",
        },
    })
}

fn tool_use(name: &str, input: Value) -> Value {
    json!([
        { "type": "text", "text": "I'll pick the move now." },
        { "type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": name, "input": input },
    ])
}

fn anthropic_error(kind: &str, message: &str) -> Value {
    json!({
        "type": "error",
        "error": { "type": kind, "message": message },
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    })
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
async fn tools_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(message(
            tool_use("Refund", json!({ "order_id": 42 })),
            "tool_use",
        )))
        .expect(1)
        .mount(&server)
        .await;

    let response = model(&server)
        .complete(&request(Encoding::Tools))
        .await
        .unwrap();
    assert_eq!(response.finish, FinishReason::ToolCalls);
    assert_eq!(response.model, "claude-3-5-haiku-20241022");
    assert_eq!(response.usage.input_tokens, 472);
    assert_eq!(response.usage.output_tokens, 67);
    // claude-3-5-haiku example price: $0.80 / $4 per million tokens:
    // 472 × 0.8 + 67 × 4 = 645.6 micro-USD, rounded up.
    assert_eq!(response.usage.cost_micros, 646);
    let Answer::ToolCall { id, name, .. } = &response.answer else {
        panic!("expected a tool call: {:?}", response.answer);
    };
    assert_eq!(id, "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(name, "Refund");
    assert_eq!(
        decode_answer::<ClassifyNext>(&response.answer),
        Ok(ClassifyNext::Refund { order_id: 42 })
    );

    let sent = requests(&server).await;
    let body: Value = sent[0].body_json().unwrap();
    assert_eq!(body["model"], "claude-3-5-haiku-latest");
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(body["tool_choice"], json!({ "type": "any" }));
    assert_eq!(body["system"], "You are the decision point `Classify`.");
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["content"][0]["type"], "text");
    let tools = body["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 3);
    for (tool, mv) in tools.iter().zip(&ClassifyNext::spec().moves) {
        assert_eq!(tool["name"], mv.name);
        assert_eq!(tool["description"], mv.doc);
        assert_eq!(tool["input_schema"], mv.tool_parameters);
        assert_eq!(tool["input_schema"]["type"], "object");
    }
    assert!(body.get("response_format").is_none());
}

#[tokio::test]
async fn structured_output_uses_forced_tools_too() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(message(
            tool_use("Escalate", json!({ "reason": "chargeback" })),
            "tool_use",
        )))
        .mount(&server)
        .await;
    let mut req = request(Encoding::StructuredOutput);
    req.options.max_output_tokens = None;
    let response = model(&server).complete(&req).await.unwrap();
    assert_eq!(
        decode_answer::<ClassifyNext>(&response.answer),
        Ok(ClassifyNext::Escalate {
            reason: "chargeback".into()
        })
    );
    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert_eq!(body["tool_choice"], json!({ "type": "any" }));
    assert_eq!(body["tools"].as_array().unwrap().len(), 3);
    // `max_tokens` is required: the default fills in.
    assert_eq!(body["max_tokens"], 1024);
}

#[tokio::test]
async fn unit_move_and_repair_conversation() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(message(tool_use("Done", json!({})), "tool_use")),
        )
        .mount(&server)
        .await;
    let mut req = request(Encoding::Tools);
    req.messages.push(Message::ToolCall {
        id: "toolu_1".into(),
        name: "Refund".into(),
        arguments: r#"{"order_id":-1}"#.into(),
    });
    req.messages.push(Message::ToolResult {
        id: "toolu_1".into(),
        content: "invalid payload for `Refund`: `order_id`: must be at least 0".into(),
        is_error: true,
    });
    let response = model(&server).complete(&req).await.unwrap();
    assert_eq!(
        decode_answer::<ClassifyNext>(&response.answer),
        Ok(ClassifyNext::Done)
    );
    let body: Value = requests(&server).await[0].body_json().unwrap();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(
        messages[1]["content"][0],
        json!({ "type": "tool_use", "id": "toolu_1", "name": "Refund", "input": { "order_id": -1 } })
    );
    assert_eq!(messages[2]["role"], "user");
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");
    assert_eq!(messages[2]["content"][0]["tool_use_id"], "toolu_1");
    assert_eq!(messages[2]["content"][0]["is_error"], true);
}

#[tokio::test]
async fn max_tokens_is_length_and_refusal_is_typed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(message(
            json!([{ "type": "text", "text": "Let me think about which move" }]),
            "max_tokens",
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(message(json!([]), "refusal")))
        .mount(&server)
        .await;
    let m = model(&server);
    let response = m.complete(&request(Encoding::Tools)).await.unwrap();
    assert_eq!(response.finish, FinishReason::Length);
    assert!(decode_answer::<ClassifyNext>(&response.answer).is_err());
    let response = m.complete(&request(Encoding::Tools)).await.unwrap();
    assert!(
        matches!(response.answer, Answer::Refusal { .. }),
        "{:?}",
        response.answer
    );
}

#[tokio::test]
async fn rate_limit_honours_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(anthropic_error(
                    "rate_limit_error",
                    "This request would exceed the rate limit for your organization.",
                )),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(message(tool_use("Done", json!({})), "tool_use")),
        )
        .mount(&server)
        .await;
    let started = Instant::now();
    let response = model(&server)
        .complete(&request(Encoding::Tools))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(
        decode_answer::<ClassifyNext>(&response.answer),
        Ok(ClassifyNext::Done)
    );
    assert_eq!(requests(&server).await.len(), 2);
    assert!(
        waited >= Duration::from_millis(900),
        "waited only {waited:?}"
    );
}

#[tokio::test]
async fn overloaded_529_then_500_then_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(529)
                .set_body_json(anthropic_error("overloaded_error", "Overloaded")),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(anthropic_error("api_error", "Internal server error")),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(message(
            tool_use("Refund", json!({ "order_id": 9 })),
            "tool_use",
        )))
        .mount(&server)
        .await;
    let response = model(&server)
        .complete(&request(Encoding::Tools))
        .await
        .unwrap();
    assert_eq!(
        decode_answer::<ClassifyNext>(&response.answer),
        Ok(ClassifyNext::Refund { order_id: 9 })
    );
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn stalled_response_hits_the_request_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(5))
                .set_body_json(message(tool_use("Done", json!({})), "tool_use")),
        )
        .mount(&server)
        .await;
    let m = model(&server).with_timeouts(Duration::from_secs(1), Duration::from_millis(300));
    let started = Instant::now();
    let error = m.complete(&request(Encoding::Tools)).await.unwrap_err();
    assert_eq!(error, ModelError::Timeout(300));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn truncated_json_never_decodes() {
    let server = MockServer::start().await;
    let body = message(tool_use("Done", json!({})), "tool_use").to_string();
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .set_body_string(&body[..body.len() - 20]),
        )
        .mount(&server)
        .await;
    let error = model(&server)
        .complete(&request(Encoding::Tools))
        .await
        .unwrap_err();
    assert!(matches!(error, ModelError::Protocol(_)), "{error:?}");
    // A tool call whose arguments were cut off (as relayed text).
    let cut = Answer::ToolCall {
        id: "toolu_1".into(),
        name: "Refund".into(),
        arguments: r#"{"order_id": 4"#.into(),
    };
    assert!(decode_answer::<ClassifyNext>(&cut).is_err());
}

#[tokio::test]
async fn unauthorized_is_typed_not_retried_and_redacted() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(anthropic_error(
            "authentication_error",
            &format!("invalid x-api-key: {KEY}"),
        )))
        .mount(&server)
        .await;
    let error = model(&server)
        .complete(&request(Encoding::Tools))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        ModelError::Unauthorized {
            status: 401,
            message: "invalid x-api-key: ***".into()
        }
    );
    assert_no_key(&error);
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn bad_request_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(anthropic_error(
            "invalid_request_error",
            "tools.0.input_schema: JSON schema is invalid",
        )))
        .mount(&server)
        .await;
    let error = model(&server)
        .complete(&request(Encoding::Tools))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        ModelError::Http {
            status: 400,
            message: "tools.0.input_schema: JSON schema is invalid".into()
        }
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[test]
fn key_never_in_debug() {
    let m = Anthropic::new(KEY);
    let debug = format!("{m:?} {m:#?}");
    assert!(!debug.contains(KEY), "{debug}");
    assert!(debug.contains("***"));
    assert_eq!(m.name(), "anthropic:claude-haiku-4-5");
    let body = m.request_body(&request(Encoding::Tools)).to_string();
    assert!(!body.contains(KEY));
}
