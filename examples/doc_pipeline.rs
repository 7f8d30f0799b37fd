//! A document pipeline: prompt chaining over several documents. For each
//! document, a first gate routes it (summarise, extract fields, reject); a
//! second prompt then does the chosen work, and code checks what the model
//! extracted before filing it — a wrong invoice total sends the document
//! back for one more extraction, with the reason.
//!
//! Run with: `cargo run --example doc_pipeline`
//!
//! Each document is one run with its own budget (tokens and money, see
//! [`budget`]); the run's usage is printed beside its result. At the end the
//! example prints the machine's graph as a value (`DocPipeline::graph()`:
//! states, kinds, moves, the static worst case) and as Mermaid text.
//!
//! Offline by default: the gates are answered from
//! `examples/transcripts/doc_pipeline.jsonl`. With `OPENAI_API_KEY`,
//! `OPENAI_BASE_URL` or `ANTHROPIC_API_KEY` set, a real model decides
//! (`GUIDERAIL_RECORD=FILE` saves its answers as a new transcript).

use std::sync::Arc;

use guiderail::llm::Model;
use guiderail::prelude::*;

pub mod common;

pub use common::BoxError;

/// One document to process.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Doc {
    /// Its file name.
    pub name: String,
    /// Its text.
    pub text: String,
    /// Why earlier extractions were refused, for the next prompt.
    pub feedback: Vec<String>,
}

/// What the extraction step fills in: an invoice's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Invoice {
    /// Who sent it.
    pub vendor: String,
    /// Its number.
    pub number: String,
    /// Issue date, `YYYY-MM-DD`.
    pub date: String,
    /// Its lines.
    pub lines: Vec<Line>,
    /// The total it states, in cents.
    pub total_cents: u64,
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Line {
    /// What was bought.
    pub item: String,
    /// The line's amount, in cents.
    pub amount_cents: u64,
}

/// A summary of a document that is not an invoice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// A title of at most eight words.
    pub title: String,
    /// Two to four short points.
    pub points: Vec<String>,
}

/// The per-document pipeline.
#[guiderail::machine(context = Doc, max_steps = 8)]
#[derive(Debug, PartialEq)]
pub enum DocPipeline {
    /// The model reads the document and routes it.
    #[initial]
    #[gate]
    #[to(Summarise, Extract, Rejected)]
    Route,
    /// The model summarises the document (a second prompt, chained).
    #[gate]
    #[to(Summarised)]
    Summarise,
    /// The model fills the invoice's fields.
    #[gate]
    #[max_visits(2)]
    #[to(Check, Rejected)]
    Extract,
    /// Code checks the extracted invoice: the lines must add up to the
    /// total.
    #[to(Filed, Extract)]
    Check(Invoice),
    /// The invoice was filed.
    #[terminal]
    Filed(Invoice),
    /// The summary.
    #[terminal]
    Summarised(Summary),
    /// Not processed, and why (spam, unreadable, not a business document).
    #[terminal]
    Rejected {
        /// Why.
        reason: String,
    },
}

/// The handlers.
pub struct Pipeline;

#[guiderail::handlers]
impl doc_pipeline::Handlers for Pipeline {
    async fn route(
        &self,
        cx: &mut Cx<'_, DocPipeline>,
    ) -> HandlerResult<Decision<doc_pipeline::RouteNext>> {
        let doc = cx.context();
        let prompt = format!(
            "Route this document. Invoices go to Extract; memos, notes and reports go to \
             Summarise; spam, phishing and anything else is Rejected with a reason.\n\n\
             {}:\n{}",
            doc.name, doc.text
        );
        Ok(cx.decide(prompt).await?)
    }

    async fn summarise(
        &self,
        cx: &mut Cx<'_, DocPipeline>,
    ) -> HandlerResult<Decision<doc_pipeline::SummariseNext>> {
        let doc = cx.context();
        let prompt = format!(
            "Summarise this document for a busy reader: a title of at most eight words and \
             two to four short points.\n\n{}:\n{}",
            doc.name, doc.text
        );
        Ok(cx.decide(prompt).await?)
    }

    async fn extract(
        &self,
        cx: &mut Cx<'_, DocPipeline>,
    ) -> HandlerResult<Decision<doc_pipeline::ExtractNext>> {
        let doc = cx.context();
        let mut prompt = format!(
            "Extract the invoice's fields. Amounts are in cents. If it is not an invoice after \
             all, reject it.\n\n{}:\n{}",
            doc.name, doc.text
        );
        for f in &doc.feedback {
            prompt.push_str("\n\nYour previous extraction was refused: ");
            prompt.push_str(f);
        }
        Ok(cx.decide(prompt).await?)
    }

    async fn check(
        &self,
        cx: &mut Cx<'_, DocPipeline>,
        invoice: Invoice,
    ) -> HandlerResult<doc_pipeline::CheckNext> {
        let sum: u64 = invoice.lines.iter().map(|l| l.amount_cents).sum();
        if sum == invoice.total_cents {
            return Ok(doc_pipeline::CheckNext::Filed(invoice));
        }
        cx.context_mut().feedback.push(format!(
            "the lines add up to {sum} cents but the total you gave is {} cents; \
             read the amounts again",
            invoice.total_cents
        ));
        Ok(doc_pipeline::CheckNext::Extract)
    }
}

/// The documents the offline transcript processes, in order.
pub fn documents() -> Vec<Doc> {
    let doc = |name: &str, text: &str| Doc {
        name: name.into(),
        text: text.into(),
        feedback: Vec::new(),
    };
    vec![
        doc(
            "invoice-0412.txt",
            "Nordlicht Office Supplies GmbH - Invoice NL-0412 - 2026-03-02\n\
             Printer paper, 10 boxes ........ 189.90\n\
             Toner cartridges, 4 ............ 236.00\n\
             Total EUR 425.90",
        ),
        doc(
            "standup-notes.txt",
            "Weekly sync, 4 March. The billing migration moved to 18 March because the \
             payment provider's sandbox was down. Ana owns the rollback plan. Support asks for \
             a status page before the switch. Next sync moved to Thursday.",
        ),
        doc(
            "urgent-payment.eml",
            "Dear customer, your mailbox will be closed today. Confirm your password at \
             http://mail-verify.example.net within 2 hours to keep your account.",
        ),
        doc(
            "invoice-7781.txt",
            "Brightline Catering Ltd - Invoice 7781 - 2026-03-05\n\
             Lunch for 14, team offsite ....... 312.50\n\
             Coffee and pastries .............. 58.00\n\
             Room service charge .............. 25.00\n\
             Total EUR 395.50",
        ),
    ]
}

/// Each document's run budget: at most this many model tokens and this much
/// money (micro-USD). A document that needs more fails alone; the pipeline
/// goes on with the next.
pub fn budget() -> Bounds {
    Bounds::default().max_tokens(4_000).max_cost_micros(5_000)
}

/// Runs every document through the pipeline, one run each, in order.
pub async fn run(
    model: Arc<dyn Model>,
    docs: Vec<Doc>,
    bounds: Bounds,
) -> Vec<(String, Result<Outcome<DocPipeline>, RunError>)> {
    let runner = Runner::builder().shared_model(model).bounds(bounds).build();
    let mut results = Vec::new();
    for doc in docs {
        let name = doc.name.clone();
        let result = match runner.start(&Pipeline, DocPipeline::start(), doc).await {
            Ok(Ended::Finished(outcome)) => Ok(outcome),
            Ok(Ended::Waiting(_)) => unreachable!("`DocPipeline` has no #[wait] state"),
            Err(e) => Err(e),
        };
        results.push((name, result));
    }
    results
}

/// Prints the machine's graph from `DocPipeline::graph()`.
pub fn print_graph() {
    let graph = DocPipeline::graph();
    println!("graph of {}:", graph.name);
    for (i, s) in graph.states.iter().enumerate() {
        let moves: Vec<&str> = graph
            .moves_from(i)
            .map(|e| graph.states[e.to].name)
            .collect();
        // Struct payloads are shown as `{..}`: their source text is long.
        let payload = if s.payload.starts_with('{') {
            "{..}"
        } else {
            s.payload
        };
        println!(
            "  {:<10} {:<8} {:<9} -> {}",
            s.name,
            format!("{:?}", s.kind).to_lowercase(),
            payload,
            if moves.is_empty() {
                "(end)".to_owned()
            } else {
                moves.join(", ")
            }
        );
    }
    println!(
        "  worst case per document: {:?} steps, {:?} model decisions",
        graph.worst_case.steps, graph.worst_case.decisions
    );
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let session = common::Session::from_env("doc_pipeline")?;
    println!("model: {} ({})", session.model.name(), session.source);
    for (name, result) in run(session.model.clone(), documents(), budget()).await {
        match result {
            Ok(outcome) => {
                let what = match &outcome.terminal {
                    DocPipeline::Filed(inv) => format!(
                        "filed invoice {} from {}, {} lines, total {} cents",
                        inv.number,
                        inv.vendor,
                        inv.lines.len(),
                        inv.total_cents
                    ),
                    DocPipeline::Summarised(s) => {
                        format!("summary \"{}\": {}", s.title, s.points.join("; "))
                    }
                    DocPipeline::Rejected { reason } => format!("rejected: {reason}"),
                    other => format!("{other:?}"),
                };
                println!("{name}: {what}");
                println!("  path: {}; usage: {}", outcome.path, outcome.usage);
            }
            Err(e) => println!("{name}: failed: {e}"),
        }
    }
    if let Some(path) = session.save()? {
        println!("transcript saved to {}", path.display());
    }
    println!();
    print_graph();
    println!("\n{}", DocPipeline::MERMAID);
    Ok(())
}
