//! The Mermaid graphs in `docs/examples.md` and in the README are generated
//! from the examples' machines: this test fails when the committed text
//! differs from `Machine::MERMAID`. To refresh the files after changing a
//! machine, run `GUIDERAIL_UPDATE_DOCS=1 cargo test --test example_docs`
//! and commit them.
#![allow(missing_docs)]
// Each example declares `mod common;`, so the four include it four times.
#![allow(clippy::duplicate_mod)]

use guiderail::Machine;

#[path = "../examples/approval_workflow.rs"]
#[allow(dead_code)]
mod approval_workflow;
#[path = "../examples/axum_service.rs"]
#[allow(dead_code)]
mod axum_service;
#[path = "../examples/doc_pipeline.rs"]
#[allow(dead_code)]
mod doc_pipeline;
#[path = "../examples/research_agent.rs"]
#[allow(dead_code)]
mod research_agent;
#[path = "../examples/support_triage.rs"]
#[allow(dead_code)]
mod support_triage;

/// The files that show the graphs.
const DOCS: [&str; 2] = [
    concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples.md"),
    concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"),
];
const UPDATE: &str = "GUIDERAIL_UPDATE_DOCS";

/// Every machine whose graph the guide shows: its name and Mermaid text.
fn machines() -> [(&'static str, &'static str); 5] {
    use approval_workflow::Approval;
    use axum_service::Expense;
    use doc_pipeline::DocPipeline;
    use research_agent::ResearchAgent;
    use support_triage::Support;
    [
        (Support::NAME, Support::MERMAID),
        (ResearchAgent::NAME, ResearchAgent::MERMAID),
        (Approval::NAME, Approval::MERMAID),
        (DocPipeline::NAME, DocPipeline::MERMAID),
        (Expense::NAME, Expense::MERMAID),
    ]
}

fn begin(name: &str) -> String {
    format!(
        "<!-- mermaid {name}: generated from {name}::MERMAID, refresh with {UPDATE}=1 cargo test --test example_docs -->"
    )
}

fn end(name: &str) -> String {
    format!("<!-- end mermaid {name} -->")
}

/// `text` with the block of machine `name` replaced by `mermaid`; `None`
/// when the markers are missing.
fn with_block(text: &str, name: &str, mermaid: &str) -> Option<String> {
    let (begin, end) = (begin(name), end(name));
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let block = format!("\n```mermaid\n{}\n```\n", mermaid.trim_end());
    Some(format!("{}{block}{}", &text[..start], &text[stop..]))
}

#[test]
fn the_guides_mermaid_graphs_are_generated_from_the_code() {
    for doc in DOCS {
        check(doc);
    }
}

fn check(doc: &str) {
    let committed = std::fs::read_to_string(doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
    let mut expected = committed.clone();
    for (name, mermaid) in machines() {
        expected = with_block(&expected, name, mermaid).unwrap_or_else(|| {
            panic!(
                "{doc} has no block for `{name}`: add the two lines\n{}\n{}\nwhere its graph goes, then run {UPDATE}=1 cargo test --test example_docs",
                begin(name),
                end(name)
            )
        });
    }
    if std::env::var_os(UPDATE).is_some() {
        if expected != committed {
            std::fs::write(doc, &expected).unwrap_or_else(|e| panic!("rewrite {doc}: {e}"));
        }
        return;
    }
    if expected != committed {
        let first = committed
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(expected.lines().count()));
        panic!(
            "{doc} differs from the examples' graphs from line {}:\n  committed: {:?}\n  generated: {:?}\nrun {UPDATE}=1 cargo test --test example_docs and commit the file",
            first + 1,
            committed.lines().nth(first).unwrap_or("(end of file)"),
            expected.lines().nth(first).unwrap_or("(end of file)"),
        );
    }
}

#[test]
fn a_changed_graph_is_detected() {
    let (name, mermaid) = machines()[0];
    let text = format!("intro\n{}\nstale\n{}\nrest\n", begin(name), end(name));
    let fresh = with_block(&text, name, mermaid).expect("the markers are found");
    assert!(fresh.contains(mermaid.trim_end()));
    assert!(!fresh.contains("stale"));
    assert!(fresh.ends_with(&format!("{}\nrest\n", end(name))));
    // Regenerating is idempotent.
    assert_eq!(with_block(&fresh, name, mermaid).as_deref(), Some(&*fresh));
    assert!(with_block("no markers", name, mermaid).is_none());
}
