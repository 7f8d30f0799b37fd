//! `tracing` spans for runs, steps and model calls, with the OpenTelemetry GenAI
//! attribute names, seen by an ordinary tracing layer. (Alone in its test
//! binary: tracing's per-callsite interest is process-wide.)
#![allow(missing_docs)]

mod machines;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use guiderail_runtime::{Runner, ScriptedModel, Usage};
use machines::support::ClassifyNext;
use machines::{Agent, Support, Ticket};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A span's name and fields, as text.
type SpanText = (String, BTreeMap<String, String>);

/// Every span's name and fields.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<SpanText>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
}

struct Index(usize);

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut all = self.0.lock().unwrap();
        all.push((attrs.metadata().name().into(), fields));
        ctx.span(id)
            .unwrap()
            .extensions_mut()
            .insert(Index(all.len() - 1));
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).unwrap();
        let i = span.extensions().get::<Index>().unwrap().0;
        values.record(&mut Fields(&mut self.0.lock().unwrap()[i].1));
    }
}

#[test]
fn model_calls_are_spans_with_gen_ai_attributes() {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let usage = Usage {
        input_tokens: 120,
        output_tokens: 8,
        cost_micros: 42,
    };
    let model = ScriptedModel::new()
        .then(ClassifyNext::Escalate {
            reason: "legal".into(),
        })
        .with_usage(usage);
    let out = rt
        .block_on(Runner::builder().model(model).build().start(
            &Agent::new(),
            Support::start(),
            Ticket::new("t"),
        ))
        .unwrap()
        .finished()
        .unwrap();
    let spans = spans.0.lock().unwrap().clone();
    let run = spans
        .iter()
        .find(|(n, _)| n == "guiderail.run")
        .unwrap_or_else(|| panic!("a run span: {spans:?}"));
    assert_eq!(run.1["run_id"], out.run_id.to_string());
    assert_eq!(run.1["machine"], "Support");
    // A span per step that ran a handler, with the run's tokens and cost
    // so far.
    let steps: Vec<_> = spans
        .iter()
        .filter(|(n, _)| n == "guiderail.step")
        .collect();
    let seen: Vec<(&str, &str)> = steps
        .iter()
        .map(|(_, f)| (f["state"].as_str(), f["step"].as_str()))
        .collect();
    assert_eq!(
        seen,
        [("Intake", "1"), ("Classify", "2"), ("Escalate", "3")]
    );
    for (_, f) in &steps {
        assert_eq!(f["run_id"], out.run_id.to_string());
        assert_eq!(f["machine"], "Support");
    }
    assert_eq!(steps[0].1["guiderail.tokens"], "0");
    assert_eq!(steps[1].1["guiderail.tokens"], "128");
    assert_eq!(steps[2].1["guiderail.cost_micros"], "42");
    let calls: Vec<_> = spans.iter().filter(|(n, _)| n == "gen_ai.chat").collect();
    assert_eq!(calls.len(), 1, "one model call: {spans:?}");
    let f = &calls[0].1;
    for (key, value) in [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "guiderail"),
        ("gen_ai.request.model", "scripted"),
        ("gen_ai.response.model", "scripted"),
        ("gen_ai.usage.input_tokens", "120"),
        ("gen_ai.usage.output_tokens", "8"),
        ("gen_ai.response.finish_reasons", "[\"stop\"]"),
        ("guiderail.gate", "Classify"),
        ("guiderail.cost_micros", "42"),
    ] {
        assert_eq!(
            f.get(key).map(String::as_str),
            Some(value),
            "{key} in {f:?}"
        );
    }
}
