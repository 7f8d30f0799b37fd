//! A research agent: the classic "model plus tools in a loop", written as a
//! bounded machine. The `Think` gate's moves are typed tool calls
//! (`Search { query }`, `ReadPage { url }`, `Calculate { expression }`) and
//! the final `Answer { text, sources }`; each tool is a state that returns to
//! `Think`. The loop is a graph with a bound: `Think` may be entered at most
//! eight times, and the run has a token and a money budget.
//!
//! Run with: `cargo run --example research_agent` (with a real model
//! configured, `cargo run --example research_agent -- "your question"`: the
//! offline transcript answers only the default question).
//!
//! The tools are local and deterministic: a search over a small in-repo
//! knowledge base (`examples/data/research_corpus.md`) and a real
//! arithmetic evaluator (a recursive-descent parser for `+ - * /`,
//! parentheses and decimals). A tool's failure (an unknown page, an
//! expression that does not parse) is not a crash: it becomes an
//! observation the model reads at its next decision.
//!
//! Offline by default: the gate is answered from
//! `examples/transcripts/research_agent.jsonl`. With `OPENAI_API_KEY`,
//! `OPENAI_BASE_URL` or `ANTHROPIC_API_KEY` set, a real model decides
//! (`GUIDERAIL_RECORD=FILE` saves its answers as a new transcript).

use std::fmt::Write as _;
use std::sync::Arc;

use guiderail::llm::Model;
use guiderail::prelude::*;
use guiderail::{DecidedVia, Event, EventKind};

pub mod common;

pub use common::BoxError;

/// The knowledge base the tools search: pages separated by `---`, each
/// starting with `url:` and `title:` lines.
pub const CORPUS: &str = include_str!("data/research_corpus.md");

/// The question the offline transcript answers.
pub const DEFAULT_QUESTION: &str = "How much does a team of 12 pay per year on the Team plan \
     with annual billing, in EUR?";

/// What the agent knows: the question and everything its tools returned.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Research {
    /// The question to answer.
    pub question: String,
    /// One line per tool call: what was asked and what came back.
    pub observations: Vec<String>,
    /// The pages read so far.
    pub pages_read: Vec<String>,
}

/// The research agent. `max_steps` caps the whole run; `max_visits` on
/// `Think` caps the model's decisions.
#[guiderail::machine(context = Research, max_steps = 20)]
#[derive(Debug, PartialEq)]
pub enum ResearchAgent {
    /// The model reads the question and the observations so far and calls
    /// one tool, or answers.
    #[initial]
    #[gate]
    #[max_visits(8)]
    #[to(Search, ReadPage, Calculate, Answer)]
    Think,
    /// Search the knowledge base; returns the best matching pages' urls,
    /// titles and first lines.
    #[to(Think)]
    Search {
        /// Words to look for.
        query: String,
    },
    /// Read a whole page found by a search.
    #[to(Think)]
    ReadPage {
        /// The page's url, as a search returned it (e.g. `kb://pricing/plans`).
        url: String,
    },
    /// Evaluate an arithmetic expression: numbers with decimals, `+ - * /`
    /// and parentheses (no units, no percent signs).
    #[to(Think)]
    Calculate {
        /// The expression, e.g. `12 * 18.5`.
        expression: String,
    },
    /// The final answer, with the urls of the pages it rests on.
    #[terminal]
    Answer {
        /// The answer.
        text: String,
        /// The urls of the pages used.
        sources: Vec<String>,
    },
}

/// The tools.
pub struct Tools {
    pages: Vec<Page>,
}

/// One page of the knowledge base.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Its address, `kb://…`.
    pub url: String,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
}

impl Tools {
    /// The tools over [`CORPUS`].
    pub fn new() -> Self {
        Tools {
            pages: parse_corpus(CORPUS),
        }
    }

    /// The three pages sharing the most words with `query`, best first
    /// (ties in corpus order); pages sharing none are left out.
    pub fn search(&self, query: &str) -> Vec<&Page> {
        let words = tokens(query);
        let mut scored: Vec<(usize, usize, &Page)> = self
            .pages
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let text = tokens(&format!("{} {}", p.title, p.body));
                let score = words.iter().filter(|w| text.contains(w)).count();
                (score, i, p)
            })
            .filter(|(score, _, _)| *score > 0)
            .collect();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.into_iter().take(3).map(|(_, _, p)| p).collect()
    }

    /// The page at `url`.
    pub fn read(&self, url: &str) -> Option<&Page> {
        self.pages.iter().find(|p| p.url == url.trim())
    }
}

impl Default for Tools {
    fn default() -> Self {
        Tools::new()
    }
}

/// Lower-case words of three letters or more.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 3)
        .map(str::to_lowercase)
        .collect()
}

/// Splits the corpus into pages.
pub fn parse_corpus(text: &str) -> Vec<Page> {
    text.split("\n---\n")
        .filter_map(|chunk| {
            let chunk = chunk.trim();
            let mut lines = chunk.lines();
            let url = lines.next()?.strip_prefix("url:")?.trim().to_owned();
            let title = lines.next()?.strip_prefix("title:")?.trim().to_owned();
            let body = lines.collect::<Vec<_>>().join("\n").trim().to_owned();
            Some(Page { url, title, body })
        })
        .collect()
}

#[guiderail::handlers]
impl research_agent::Handlers for Tools {
    async fn think(
        &self,
        cx: &mut Cx<'_, ResearchAgent>,
    ) -> HandlerResult<Decision<research_agent::ThinkNext>> {
        let research = cx.context();
        let mut prompt = format!(
            "Question: {}\n\nAnswer it from the knowledge base only. Call one tool at a time: \
             search, read the pages that matter, and use Calculate for any arithmetic. \
             Answer when you are sure, citing the urls you read.\n\nObservations so far:\n",
            research.question
        );
        if research.observations.is_empty() {
            prompt.push_str("(none)\n");
        }
        for (i, o) in research.observations.iter().enumerate() {
            let _ = writeln!(prompt, "{}. {o}", i + 1);
        }
        Ok(cx.decide(prompt).await?)
    }

    async fn search(
        &self,
        cx: &mut Cx<'_, ResearchAgent>,
        query: String,
    ) -> HandlerResult<research_agent::SearchNext> {
        let hits = Tools::search(self, &query);
        let found = if hits.is_empty() {
            "no page matches".to_owned()
        } else {
            hits.iter()
                .map(|p| {
                    let first = p.body.lines().next().unwrap_or_default();
                    format!("{} ({}): {first}", p.url, p.title)
                })
                .collect::<Vec<_>>()
                .join(" | ")
        };
        cx.context_mut()
            .observations
            .push(format!("Search {query:?} -> {found}"));
        Ok(research_agent::SearchNext::Think)
    }

    async fn read_page(
        &self,
        cx: &mut Cx<'_, ResearchAgent>,
        url: String,
    ) -> HandlerResult<research_agent::ReadPageNext> {
        let observation = match self.read(&url) {
            Some(page) => {
                let research = cx.context_mut();
                if !research.pages_read.contains(&page.url) {
                    research.pages_read.push(page.url.clone());
                }
                format!("ReadPage {url} -> {}", page.body.replace('\n', " "))
            }
            None => format!("ReadPage {url} -> error: no such page; use a url a search returned"),
        };
        cx.context_mut().observations.push(observation);
        Ok(research_agent::ReadPageNext::Think)
    }

    async fn calculate(
        &self,
        cx: &mut Cx<'_, ResearchAgent>,
        expression: String,
    ) -> HandlerResult<research_agent::CalculateNext> {
        let result = match calc::evaluate(&expression) {
            Ok(value) => calc::format(value),
            Err(e) => format!("error: {e}"),
        };
        cx.context_mut()
            .observations
            .push(format!("Calculate {expression:?} -> {result}"));
        Ok(research_agent::CalculateNext::Think)
    }
}

/// The run's budget: model tokens and money (micro-USD), on top of the
/// machine's own step and visit limits.
pub fn budget() -> Bounds {
    Bounds::default().max_tokens(12_000).max_cost_micros(20_000)
}

/// Asks `question` with `model` under `bounds`, printing each tool call.
pub async fn run(
    model: Arc<dyn Model>,
    question: &str,
    bounds: Bounds,
) -> Result<Outcome<ResearchAgent>, RunError> {
    let runner = Runner::builder()
        .shared_model(model)
        .bounds(bounds)
        .subscriber(Arc::new(print_event))
        .build();
    let research = Research {
        question: question.to_owned(),
        ..Research::default()
    };
    let ended = runner
        .start(&Tools::new(), ResearchAgent::start(), research)
        .await?;
    let Some(outcome) = ended.finished() else {
        unreachable!("`ResearchAgent` has no #[wait] state, so a run finishes or fails")
    };
    Ok(outcome)
}

/// Prints every transition as it happens.
fn print_event(event: &Event) {
    if let EventKind::Transition { from, to, via, .. } = &event.kind {
        let by = if *via == DecidedVia::Gate {
            "model"
        } else {
            "code"
        };
        println!("  {from} -> {to} ({by})");
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_QUESTION.to_owned());
    if question != DEFAULT_QUESTION && !common::real_model_configured() {
        return Err(
            "offline, the recorded transcript answers only the default question; \
                    set OPENAI_API_KEY, OPENAI_BASE_URL or ANTHROPIC_API_KEY to ask your own"
                .into(),
        );
    }
    let session = common::Session::from_env("research_agent")?;
    println!("model: {} ({})", session.model.name(), session.source);
    println!("question: {question}");
    let outcome = run(session.model.clone(), &question, budget()).await?;
    if let Some(path) = session.save()? {
        println!("transcript saved to {}", path.display());
    }
    for o in &outcome.context.observations {
        println!("observed: {o}");
    }
    if let ResearchAgent::Answer { text, sources } = &outcome.terminal {
        println!("answer: {text}");
        println!("sources: {}", sources.join(", "));
    }
    println!("path: {}", outcome.path);
    println!(
        "model decisions: {} (at most {:?}); usage: {}",
        outcome.decisions,
        ResearchAgent::WORST_CASE.decisions,
        outcome.usage
    );
    println!("\n{}", ResearchAgent::MERMAID);
    Ok(())
}

/// A small arithmetic evaluator: `+ - * /`, unary minus, parentheses and
/// decimal numbers, by recursive descent over
///
/// ```text
/// expr   = term (("+" | "-") term)*
/// term   = factor (("*" | "/") factor)*
/// factor = ("-" | "+") factor | number | "(" expr ")"
/// ```
pub mod calc {
    use std::fmt;

    /// Why an expression has no value.
    #[derive(Debug, Clone, PartialEq)]
    pub enum CalcError {
        /// A character that is not part of the grammar, at a byte offset.
        Unexpected {
            /// The character.
            found: char,
            /// Where.
            at: usize,
        },
        /// The expression ended where a number or `(` was expected.
        UnexpectedEnd,
        /// A `(` without its `)`.
        Unclosed {
            /// Where the `(` is.
            at: usize,
        },
        /// A number that does not parse (`1.2.3`).
        BadNumber {
            /// The text.
            text: String,
        },
        /// Division by zero.
        DivisionByZero,
    }

    impl fmt::Display for CalcError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                CalcError::Unexpected { found, at } => write!(
                    f,
                    "unexpected `{found}` at position {at}; use numbers, + - * / and parentheses"
                ),
                CalcError::UnexpectedEnd => f.write_str("the expression ends too early"),
                CalcError::Unclosed { at } => {
                    write!(f, "the `(` at position {at} is never closed")
                }
                CalcError::BadNumber { text } => write!(f, "`{text}` is not a number"),
                CalcError::DivisionByZero => f.write_str("division by zero"),
            }
        }
    }

    impl std::error::Error for CalcError {}

    /// The value of `expression`.
    pub fn evaluate(expression: &str) -> Result<f64, CalcError> {
        let mut p = Parser {
            text: expression,
            pos: 0,
        };
        let value = p.expr()?;
        p.skip_space();
        match p.peek() {
            None => Ok(value),
            Some(c) => Err(CalcError::Unexpected {
                found: c,
                at: p.pos,
            }),
        }
    }

    /// A value as the tool reports it: at most six decimals, no trailing
    /// zeros.
    pub fn format(value: f64) -> String {
        let text = format!("{value:.6}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        if text == "-0" {
            "0".into()
        } else {
            text.into()
        }
    }

    struct Parser<'a> {
        text: &'a str,
        pos: usize,
    }

    impl Parser<'_> {
        fn peek(&self) -> Option<char> {
            self.text[self.pos..].chars().next()
        }

        fn skip_space(&mut self) {
            while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
                self.pos += c.len_utf8();
            }
        }

        /// The next non-space character, consumed if it is one of `ops`.
        fn eat(&mut self, ops: &[char]) -> Option<char> {
            self.skip_space();
            let c = self.peek().filter(|c| ops.contains(c))?;
            self.pos += c.len_utf8();
            Some(c)
        }

        fn expr(&mut self) -> Result<f64, CalcError> {
            let mut value = self.term()?;
            while let Some(op) = self.eat(&['+', '-']) {
                let rhs = self.term()?;
                value = if op == '+' { value + rhs } else { value - rhs };
            }
            Ok(value)
        }

        fn term(&mut self) -> Result<f64, CalcError> {
            let mut value = self.factor()?;
            while let Some(op) = self.eat(&['*', '/']) {
                let rhs = self.factor()?;
                value = if op == '*' {
                    value * rhs
                } else if rhs == 0.0 {
                    return Err(CalcError::DivisionByZero);
                } else {
                    value / rhs
                };
            }
            Ok(value)
        }

        fn factor(&mut self) -> Result<f64, CalcError> {
            if let Some(sign) = self.eat(&['-', '+']) {
                let value = self.factor()?;
                return Ok(if sign == '-' { -value } else { value });
            }
            self.skip_space();
            match self.peek() {
                None => Err(CalcError::UnexpectedEnd),
                Some('(') => {
                    let open = self.pos;
                    self.pos += 1;
                    let value = self.expr()?;
                    if self.eat(&[')']).is_none() {
                        return Err(match self.peek() {
                            None => CalcError::Unclosed { at: open },
                            Some(c) => CalcError::Unexpected {
                                found: c,
                                at: self.pos,
                            },
                        });
                    }
                    Ok(value)
                }
                Some(c) if c.is_ascii_digit() || c == '.' => {
                    let start = self.pos;
                    while let Some(c) = self.peek().filter(|c| c.is_ascii_digit() || *c == '.') {
                        self.pos += c.len_utf8();
                    }
                    let text = &self.text[start..self.pos];
                    text.parse().map_err(|_| CalcError::BadNumber {
                        text: text.to_owned(),
                    })
                }
                Some(c) => Err(CalcError::Unexpected {
                    found: c,
                    at: self.pos,
                }),
            }
        }
    }
}
