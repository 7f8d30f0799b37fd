//! `examples/doc_pipeline.rs` offline: four documents, each routed by the
//! model and processed along its own path, with the invoice whose total the
//! model misread sent back once by the code check; and the per-run budget.
#![allow(missing_docs)]

use guiderail::{BoundHit, RunErrorKind};

#[path = "../examples/doc_pipeline.rs"]
#[allow(dead_code)]
mod doc_pipeline;

use doc_pipeline::{DocPipeline, Invoice, Summary};

fn offline() -> std::sync::Arc<dyn guiderail::Model> {
    doc_pipeline::common::offline_model("doc_pipeline")
        .expect("the transcript loads")
        .0
}

#[tokio::test]
async fn offline_run_routes_each_document_along_its_path() {
    let results =
        doc_pipeline::run(offline(), doc_pipeline::documents(), doc_pipeline::budget()).await;
    let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "invoice-0412.txt",
            "standup-notes.txt",
            "urgent-payment.eml",
            "invoice-7781.txt"
        ]
    );
    let outcomes: Vec<_> = results
        .into_iter()
        .map(|(name, r)| r.unwrap_or_else(|e| panic!("{name} failed: {e}")))
        .collect();

    assert_eq!(
        outcomes[0].path.to_vec(),
        ["Route", "Extract", "Check", "Filed"]
    );
    let DocPipeline::Filed(Invoice {
        vendor,
        number,
        lines,
        total_cents,
        ..
    }) = &outcomes[0].terminal
    else {
        panic!("filed, not {:?}", outcomes[0].terminal)
    };
    assert_eq!(
        (vendor.as_str(), number.as_str(), lines.len(), *total_cents),
        ("Nordlicht Office Supplies GmbH", "NL-0412", 2, 42_590)
    );

    assert_eq!(
        outcomes[1].path.to_vec(),
        ["Route", "Summarise", "Summarised"]
    );
    let DocPipeline::Summarised(Summary { title, points }) = &outcomes[1].terminal else {
        panic!("summarised, not {:?}", outcomes[1].terminal)
    };
    assert_eq!(title, "Billing migration moved to 18 March");
    assert_eq!(points.len(), 4);

    assert_eq!(outcomes[2].path.to_vec(), ["Route", "Rejected"]);
    assert!(
        matches!(&outcomes[2].terminal, DocPipeline::Rejected { reason } if reason.starts_with("Phishing")),
        "{:?}",
        outcomes[2].terminal
    );

    // The first extraction's total does not match its lines: the check
    // sends the document back with the reason, and the second one files.
    assert_eq!(
        outcomes[3].path.to_vec(),
        ["Route", "Extract", "Check", "Extract", "Check", "Filed"]
    );
    assert_eq!(
        outcomes[3].context.feedback,
        [
            "the lines add up to 39550 cents but the total you gave is 35950 cents; read the amounts again"
        ]
    );
    assert!(
        matches!(&outcomes[3].terminal, DocPipeline::Filed(inv) if inv.total_cents == 39_550),
        "{:?}",
        outcomes[3].terminal
    );

    let decisions: Vec<u64> = outcomes.iter().map(|o| o.decisions).collect();
    assert_eq!(decisions, [2, 2, 1, 3]);
    // Each run's usage is its own: the budget is per document.
    let costs: Vec<u64> = outcomes.iter().map(|o| o.usage.cost_micros).collect();
    assert_eq!(costs, [1_850, 1_690, 640, 3_260]);
}

#[tokio::test]
async fn a_document_over_its_budget_fails_alone() {
    // 2,000 micro-USD per document: the last invoice needs 3,260.
    let results = doc_pipeline::run(
        offline(),
        doc_pipeline::documents(),
        guiderail::Bounds::default().max_cost_micros(2_000),
    )
    .await;
    for (name, result) in &results[..3] {
        assert!(result.is_ok(), "{name} fits its budget");
    }
    let (name, last) = &results[3];
    let err = last
        .as_ref()
        .err()
        .unwrap_or_else(|| panic!("{name} is over budget"));
    assert!(
        matches!(
            err.kind,
            RunErrorKind::Bound(BoundHit::Cost {
                limit_micros: 2_000,
                ..
            })
        ),
        "{err}"
    );
}

#[test]
fn the_graph_is_exported() {
    let graph = DocPipeline::graph();
    let names: Vec<&str> = graph.states.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "Route",
            "Summarise",
            "Extract",
            "Check",
            "Filed",
            "Summarised",
            "Rejected"
        ]
    );
    assert_eq!(graph.worst_case.steps, Some(5));
    assert_eq!(graph.worst_case.decisions, Some(4));
    assert!(DocPipeline::MERMAID.contains("Check --> Extract"));
    assert!(
        DocPipeline::DOT.starts_with("digraph"),
        "{}",
        DocPipeline::DOT
    );
}
