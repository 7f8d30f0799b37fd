//! Gate decisions: parsing and validating a model's answer, and the OpenAI
//! provider's overhead over a bare HTTP POST of the same body.
//!
//! Run with: `cargo bench -p guiderail-runtime --bench decisions`

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::ClassifyNext;
use criterion::{Criterion, criterion_group, criterion_main};
use guiderail_runtime::llm::{Answer, Encoding, Model, OpenAi};
use guiderail_runtime::{GateMoves, decode_answer};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn parse(c: &mut Criterion) {
    let _ = ClassifyNext::spec(); // built once per gate, not per decision
    let text = Answer::Text {
        text: r#"{"move": {"Refund": {"order_id": 4417}}}"#.into(),
    };
    let tool = Answer::ToolCall {
        id: "call_1".into(),
        name: "Escalate".into(),
        arguments: r#"{"reason": "the customer asks for a manager"}"#.into(),
    };
    let mut group = c.benchmark_group("decision_parse");
    group.bench_function("structured_output", |b| {
        b.iter(|| black_box(decode_answer::<ClassifyNext>(black_box(&text)).unwrap()))
    });
    group.bench_function("tool_call", |b| {
        b.iter(|| black_box(decode_answer::<ClassifyNext>(black_box(&tool)).unwrap()))
    });
    group.finish();
}

fn provider_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(MockServer::start());
    let response = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant",
            "content": "{\"move\": {\"Refund\": {\"order_id\": 4417}}}"
        }}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132}
    });
    rt.block_on(
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(response))
            .mount(&server),
    );
    let base = format!("{}/v1", server.uri());
    let model = OpenAi::new("sk-bench")
        .with_base_url(base.clone())
        .with_model("gpt-4o-mini");
    let request = common::request(Encoding::StructuredOutput);
    let body = serde_json::to_vec(&model.request_body(&request)).unwrap();
    let bare = reqwest::Client::new();
    let url = format!("{base}/chat/completions");

    let mut group = c.benchmark_group("provider_call");
    group.bench_function("openai_encode_request", |b| {
        b.iter(|| black_box(serde_json::to_vec(&model.request_body(black_box(&request))).unwrap()))
    });
    group.bench_function("openai_provider", |b| {
        b.iter(|| rt.block_on(async { black_box(model.complete(&request).await.unwrap()) }))
    });
    group.bench_function("bare_reqwest_post", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = bare
                    .post(&url)
                    .bearer_auth("sk-bench")
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                black_box(r.bytes().await.unwrap())
            })
        })
    });
    group.finish();
}

criterion_group!(benches, parse, provider_overhead);
criterion_main!(benches);
