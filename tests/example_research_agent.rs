//! `examples/research_agent.rs` offline: the replayed transcript drives the
//! tool loop to the right answer, the evaluator works on its own, and the
//! loop's bounds (visits of `Think`, tokens, money) end runaway runs.
#![allow(missing_docs)]

use guiderail::{BoundHit, RunErrorKind, ScriptedModel};

#[path = "../examples/research_agent.rs"]
#[allow(dead_code)]
mod research_agent;

use research_agent::calc::{self, CalcError};
use research_agent::{ResearchAgent, Tools, research_agent as moves};

fn offline() -> std::sync::Arc<dyn guiderail::Model> {
    research_agent::common::offline_model("research_agent")
        .expect("the transcript loads")
        .0
}

#[tokio::test]
async fn offline_run_searches_reads_calculates_and_answers() {
    let outcome = research_agent::run(
        offline(),
        research_agent::DEFAULT_QUESTION,
        research_agent::budget(),
    )
    .await
    .expect("the run finishes");
    assert_eq!(
        outcome.path.to_vec(),
        [
            "Think",
            "Search",
            "Think",
            "ReadPage",
            "Think",
            "Calculate",
            "Think",
            "Calculate",
            "Think",
            "Answer"
        ]
    );
    assert_eq!(outcome.decisions, 5);
    let ResearchAgent::Answer { text, sources } = &outcome.terminal else {
        panic!("ends in Answer, not {:?}", outcome.terminal)
    };
    assert!(text.contains("2264.40 EUR"), "{text}");
    assert_eq!(sources, &["kb://pricing/plans"]);
    let observations = &outcome.context.observations;
    assert_eq!(observations.len(), 4);
    assert!(
        observations[0].starts_with("Search \"Team plan price per seat annual billing\" -> kb://pricing/plans (Plans and prices)"),
        "{}",
        observations[0]
    );
    assert!(
        observations[1].contains("Team 18.50 EUR"),
        "{}",
        observations[1]
    );
    // The model's first expression does not parse: the evaluator's error is
    // an observation, and the model corrects itself.
    assert!(
        observations[2].ends_with(
            "-> error: unexpected `%` at position 25; use numbers, + - * / and parentheses"
        ),
        "{}",
        observations[2]
    );
    assert!(
        observations[3].ends_with("-> 2264.4"),
        "{}",
        observations[3]
    );
    assert_eq!(outcome.context.pages_read, ["kb://pricing/plans"]);
    // The transcript's usage is counted against the budget.
    assert_eq!(outcome.usage.total_tokens(), 4475);
    assert_eq!(outcome.usage.cost_micros, 6460);
}

#[tokio::test]
async fn a_model_that_never_answers_is_stopped_at_thinks_visit_limit() {
    let mut model = ScriptedModel::new();
    for i in 0..10 {
        model = model.then(moves::ThinkNext::Search {
            query: format!("plans {i}"),
        });
    }
    let runner = guiderail::Runner::builder().model(model).build();
    let err = runner
        .start(
            &Tools::new(),
            ResearchAgent::start(),
            research_agent::Research::default(),
        )
        .await
        .expect_err("the loop is bounded");
    assert!(
        matches!(
            &err.kind,
            RunErrorKind::Bound(BoundHit::Visits { state, limit: 8 }) if state == "Think"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn token_and_money_budgets_end_the_run() {
    let tokens = research_agent::run(
        offline(),
        research_agent::DEFAULT_QUESTION,
        guiderail::Bounds::default().max_tokens(2_000),
    )
    .await
    .expect_err("2,000 tokens are not enough");
    assert!(
        matches!(
            tokens.kind,
            RunErrorKind::Bound(BoundHit::Tokens { limit: 2_000, .. })
        ),
        "{tokens}"
    );
    // The third answer takes the run past 2,000 tokens (2,381): the run
    // stops before the tool it asked for runs.
    assert_eq!(tokens.state, "Calculate");

    let money = research_agent::run(
        offline(),
        research_agent::DEFAULT_QUESTION,
        guiderail::Bounds::default().max_cost_micros(3_000),
    )
    .await
    .expect_err("3,000 micro-USD are not enough");
    assert!(
        matches!(
            money.kind,
            RunErrorKind::Bound(BoundHit::Cost {
                limit_micros: 3_000,
                ..
            })
        ),
        "{money}"
    );
}

#[test]
fn the_worst_case_is_known_before_the_run() {
    let worst = ResearchAgent::WORST_CASE;
    assert_eq!(worst.decisions, Some(8));
    assert!(worst.steps.is_some_and(|s| s <= 20), "{worst:?}");
}

#[test]
fn search_ranks_pages_by_shared_words() {
    let tools = Tools::new();
    let hits: Vec<&str> = tools
        .search("discount for charities")
        .iter()
        .map(|p| p.url.as_str())
        .collect();
    assert_eq!(hits[0], "kb://pricing/discounts");
    assert!(tools.search("zebra").is_empty());
    assert_eq!(
        tools.read("kb://handbook/travel").map(|p| p.title.as_str()),
        Some("Travel policy")
    );
    assert!(tools.read("kb://nowhere").is_none());
}

#[test]
fn the_evaluator_follows_precedence_and_reports_errors() {
    assert_eq!(calc::evaluate("1 + 2 * 3"), Ok(7.0));
    assert_eq!(calc::evaluate("(1 + 2) * 3"), Ok(9.0));
    assert_eq!(calc::evaluate("10 - 4 - 3"), Ok(3.0));
    assert_eq!(calc::evaluate("8 / 4 / 2"), Ok(1.0));
    assert_eq!(calc::evaluate("-2.5 * -(1 + 1)"), Ok(5.0));
    assert_eq!(calc::evaluate(" .5 + 0.25 "), Ok(0.75));
    assert_eq!(calc::evaluate("1 / 0"), Err(CalcError::DivisionByZero));
    assert_eq!(calc::evaluate("(1 + 2"), Err(CalcError::Unclosed { at: 0 }));
    assert_eq!(calc::evaluate("1 +"), Err(CalcError::UnexpectedEnd));
    assert_eq!(
        calc::evaluate("2 x 3"),
        Err(CalcError::Unexpected { found: 'x', at: 2 })
    );
    assert_eq!(
        calc::evaluate("1.2.3"),
        Err(CalcError::BadNumber {
            text: "1.2.3".into()
        })
    );
    assert_eq!(calc::format(2264.4000000001), "2264.4");
    assert_eq!(calc::format(-0.0), "0");
    assert_eq!(calc::format(3.0), "3");
}
