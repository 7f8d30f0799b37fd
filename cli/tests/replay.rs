//! Replay through the library: a binary of the user's own that registers
//! its machines gets `replay` and `graph --machine`.
#![allow(missing_docs)]

mod common;

use common::{Agent, Triage, fixture};
use guiderail_cli::{Cli, EXIT_DIVERGED, EXIT_ERROR, EXIT_OK};

fn run(cli: &Cli, args: &[&str]) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut all = vec!["guiderail"];
    all.extend_from_slice(args);
    let code = cli.run(all, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn replaying_with_the_same_handlers_reproduces_the_run() {
    let f = fixture().await;
    let db = f.db.to_str().unwrap().to_owned();
    let ids = [f.refunded, f.escalated, f.waiting, f.failed];
    // `Cli::run` blocks on its own runtime: call it off this one.
    let results = tokio::task::spawn_blocking(move || {
        // The runner the runs were recorded with (bounds, repairs).
        let cli = Cli::new()
            .machine::<Triage, _>(Agent::default())
            .runner(guiderail::Runner::builder().max_repairs(1).build());
        ids.map(|id| run(&cli, &["replay", &id.to_string(), "--db", &db]))
    })
    .await
    .unwrap();
    for ((code, out, err), id) in results.into_iter().zip(ids) {
        assert_eq!(code, EXIT_OK, "run {id}: {out}{err}");
        assert!(err.is_empty(), "{err}");
        assert!(
            out.contains(&format!(
                "run {id}: the replay took the recorded path exactly"
            )),
            "{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replaying_with_changed_handlers_reports_the_divergence() {
    let f = fixture().await;
    let db = f.db.to_str().unwrap().to_owned();
    let id = f.refunded;
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let changed = Cli::new().machine::<Triage, _>(Agent {
            suffix: "!",
            ..Agent::default()
        });
        run(&changed, &["replay", &id.to_string(), "--db", &db])
    })
    .await
    .unwrap();
    assert_eq!(code, EXIT_DIVERGED, "{out}{err}");
    assert!(
        out.contains(&format!("run {id}: the replay differs at checkpoint 1")),
        "{out}"
    );
    assert!(
        out.contains("context /log/0: \"Intake@1\" -> \"Intake@1!\""),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn registered_machines_have_graphs_and_unknown_ones_are_named() {
    let f = fixture().await;
    let db = f.db.to_str().unwrap().to_owned();
    let id = f.refunded;
    let (graph, svg, unknown, stock) = tokio::task::spawn_blocking(move || {
        let cli = Cli::new().machine::<Triage, _>(Agent::default());
        let graph = run(&cli, &["graph", "--machine", "Triage", "--format", "json"]);
        let svg = run(&cli, &["graph", "--machine", "Triage", "--format", "svg"]);
        let unknown = run(&cli, &["graph", "--machine", "Support"]);
        let stock = run(&Cli::new(), &["replay", &id.to_string(), "--db", &db]);
        (graph, svg, unknown, stock)
    })
    .await
    .unwrap();
    assert_eq!(graph.0, EXIT_OK, "{}", graph.2);
    let json: serde_json::Value = serde_json::from_str(&graph.1).unwrap();
    assert_eq!(json["machine"], "Triage");
    assert_eq!(json["mermaid"], Triage::graph().mermaid);
    // No run: nothing is highlighted.
    assert_eq!(svg.0, EXIT_OK, "{}", svg.2);
    assert!(
        !svg.1.contains("visited") && !svg.1.contains("taken"),
        "{}",
        svg.1
    );
    assert!(svg.1.contains("gate: Classify"), "{}", svg.1);

    assert_eq!(unknown.0, EXIT_ERROR);
    assert_eq!(
        unknown.2.trim_end(),
        "error: machine `Support` is not compiled into this `guiderail`; it has Triage"
    );
    assert_eq!(stock.0, EXIT_ERROR);
    assert!(
        stock.2.contains("no machines are compiled into this"),
        "{}",
        stock.2
    );
}
