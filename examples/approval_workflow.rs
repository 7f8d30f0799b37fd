//! A refund request with a human in the loop: a model classifies the
//! request and drafts the refund, then the run waits — durably, in a SQLite
//! file, with no process running — until a person approves or rejects it.
//!
//! Run with two commands (the second from another process, any time later):
//!
//! ```text
//! cargo run --example approval_workflow -- start
//! cargo run --example approval_workflow -- approve RUN_ID [APPROVER]
//! cargo run --example approval_workflow -- reject RUN_ID [REASON]
//! cargo run --example approval_workflow -- status RUN_ID
//! ```
//!
//! `start` starts a run, prints its id and exits while the run waits in
//! `AwaitDecision`. `approve` and `reject` open the same file, deliver the
//! wait state's typed move (`approval::AwaitDecisionNext::Pay { approver }`
//! or `Decline { reason }`) with `Runner::signal_run`, and run it to its end.
//! Runs are kept in `./approval_workflow.db` (`APPROVAL_DB=PATH` picks
//! another file).
//!
//! Offline by default: the gate is answered from
//! `examples/transcripts/approval_workflow.jsonl`. With `OPENAI_API_KEY`,
//! `OPENAI_BASE_URL` or `ANTHROPIC_API_KEY` set, a real model decides
//! (`GUIDERAIL_RECORD=FILE` saves its answers as a new transcript).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use guiderail::llm::Model;
use guiderail::prelude::*;
use guiderail::store::{RunStatus, SqliteStore, Store};
use guiderail::{DurableError, RunId};

pub mod common;

pub use common::BoxError;

/// The database file when `APPROVAL_DB` names none.
pub const DEFAULT_DB: &str = "approval_workflow.db";

/// Refunds above this need no model to say no: policy caps them (cents).
pub const POLICY_LIMIT_CENTS: u64 = 50_000;

/// What the run works on: the customer's request and what was done.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The customer's message.
    pub message: String,
    /// The order it is about.
    pub order_id: u64,
    /// What the order cost, in cents.
    pub order_total_cents: u64,
    /// What happened, in order.
    pub log: Vec<String>,
}

/// The refund the model drafts for a person to approve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Proposal {
    /// The order to refund.
    pub order_id: u64,
    /// How much, in cents (at most the order's total).
    pub amount_cents: u64,
    /// Why, in one sentence, for the approver.
    pub rationale: String,
    /// The message to send the customer once approved.
    pub customer_reply: String,
}

/// The approval workflow. Deriving `Serialize` and `Deserialize` lets its
/// runs be checkpointed, and so wait with no process running.
#[guiderail::machine(context = Request, max_steps = 10)]
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum Approval {
    /// The model reads the request: draft a refund, or decline it as out
    /// of policy.
    #[initial]
    #[gate]
    #[to(Propose, Decline)]
    Classify,
    /// Check the draft against the order and policy; queue it for a person.
    #[to(AwaitDecision, Decline)]
    Propose(Proposal),
    /// A person approves (naming themselves) or rejects the refund.
    #[wait]
    #[to(Pay, Decline)]
    AwaitDecision,
    /// Pay the approved refund.
    #[to(Refunded)]
    Pay {
        /// Who approved it.
        approver: String,
    },
    /// Tell the customer no, and why.
    #[to(Closed)]
    Decline {
        /// Why the request is declined.
        reason: String,
    },
    /// The refund was paid.
    #[terminal]
    Refunded,
    /// The request was declined.
    #[terminal]
    Closed,
}

/// The handlers.
pub struct Workflow;

#[guiderail::handlers]
impl approval::Handlers for Workflow {
    async fn classify(
        &self,
        cx: &mut Cx<'_, Approval>,
    ) -> HandlerResult<Decision<approval::ClassifyNext>> {
        let r = cx.context();
        let prompt = format!(
            "A customer asks for a refund.\nOrder {} cost {} cents.\nMessage: {}\n\n\
             Policy: damaged or missing items are refunded in full; change of mind within \
             30 days is refunded less 10% restocking; anything else is declined. \
             Draft the refund for a person to approve, or decline it.",
            r.order_id, r.order_total_cents, r.message
        );
        Ok(cx.decide(prompt).await?)
    }

    async fn propose(
        &self,
        cx: &mut Cx<'_, Approval>,
        proposal: Proposal,
    ) -> HandlerResult<approval::ProposeNext> {
        let r = cx.context_mut();
        // The model drafts; code checks what must hold whatever it wrote.
        if proposal.order_id != r.order_id || proposal.amount_cents > r.order_total_cents {
            return Ok(approval::ProposeNext::Decline {
                reason: format!(
                    "the draft ({} cents for order {}) does not match the order",
                    proposal.amount_cents, proposal.order_id
                ),
            });
        }
        if proposal.amount_cents > POLICY_LIMIT_CENTS {
            return Ok(approval::ProposeNext::Decline {
                reason: "above the refund limit; handled by finance".into(),
            });
        }
        r.log.push(format!(
            "proposed: refund {} cents for order {} ({})",
            proposal.amount_cents, proposal.order_id, proposal.rationale
        ));
        r.log
            .push(format!("reply drafted: {}", proposal.customer_reply));
        Ok(approval::ProposeNext::AwaitDecision)
    }

    async fn pay(
        &self,
        cx: &mut Cx<'_, Approval>,
        approver: String,
    ) -> HandlerResult<approval::PayNext> {
        // A payment must not repeat when a step runs again after a crash:
        // its result is journaled under (run, step, "payment").
        let key = cx.idempotency_key();
        let reference: String = cx
            .effect("payment", || async move {
                Ok::<_, HandlerError>(format!("pay-{}", &key[..8]))
            })
            .await?;
        cx.context_mut()
            .log
            .push(format!("paid ({reference}), approved by {approver}"));
        Ok(approval::PayNext::Refunded)
    }

    async fn decline(
        &self,
        cx: &mut Cx<'_, Approval>,
        reason: String,
    ) -> HandlerResult<approval::DeclineNext> {
        cx.context_mut().log.push(format!("declined: {reason}"));
        Ok(approval::DeclineNext::Closed)
    }
}

/// The request the offline transcript answers.
pub fn sample_request() -> Request {
    Request {
        message: "The blender I ordered arrived with a cracked jug. Can I get my money back?"
            .into(),
        order_id: 88_231,
        order_total_cents: 7_999,
        log: Vec::new(),
    }
}

/// The database file: `APPROVAL_DB`, else [`DEFAULT_DB`].
pub fn db_from_env() -> PathBuf {
    std::env::var_os("APPROVAL_DB")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_DB), PathBuf::from)
}

fn runner(db: &Path, model: Option<Arc<dyn Model>>) -> Result<Runner, BoxError> {
    let mut builder = Runner::builder().store(SqliteStore::open(db)?);
    if let Some(model) = model {
        builder = builder.shared_model(model);
    }
    Ok(builder.build())
}

/// Starts a durable run on `db` and returns its id once it waits for a
/// person (or its outcome's terminal state, when the model declined).
pub async fn start(
    db: &Path,
    model: Arc<dyn Model>,
    request: Request,
) -> Result<(RunId, Ended<Approval>), BoxError> {
    let runner = runner(db, Some(model))?;
    let ended = runner
        .start_durable(&Workflow, Approval::start(), request)
        .await?;
    let run_id = match &ended {
        Ended::Waiting(w) => w.run_id(),
        Ended::Finished(o) => o.run_id,
    };
    Ok((run_id, ended))
}

/// A person's decision on a waiting run.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Pay the refund.
    Approve {
        /// Who approves.
        approver: String,
    },
    /// Decline it.
    Reject {
        /// Why.
        reason: String,
    },
}

/// Delivers `verdict` to the waiting run `run_id` on `db` and runs it to
/// its end. A run that is not waiting (already decided, say) is refused and
/// left unchanged ([`DurableError::NotWaiting`]).
pub async fn decide(
    db: &Path,
    run_id: RunId,
    verdict: Verdict,
) -> Result<Outcome<Approval>, DurableError> {
    let runner = Runner::builder().store(SqliteStore::open(db)?).build();
    let signal = match verdict {
        Verdict::Approve { approver } => approval::AwaitDecisionNext::Pay { approver },
        Verdict::Reject { reason } => approval::AwaitDecisionNext::Decline { reason },
    };
    let ended = runner.signal_run(&Workflow, run_id, signal).await?;
    let Some(outcome) = ended.finished() else {
        unreachable!("after the decision every path ends without waiting again")
    };
    Ok(outcome)
}

/// The command line: `start`, `approve RUN_ID [APPROVER]`,
/// `reject RUN_ID [REASON]`, `status RUN_ID`. Prints what happened.
pub async fn cli(args: &[String], db: &Path) -> Result<(), BoxError> {
    let usage = "usage: approval_workflow start | approve RUN_ID [APPROVER] | \
                 reject RUN_ID [REASON] | status RUN_ID";
    let run_id = |i: usize| -> Result<RunId, BoxError> {
        let text = args.get(i).ok_or(usage)?;
        text.parse::<RunId>()
            .map_err(|e| format!("{text:?} is not a run id: {e}").into())
    };
    match args.first().map(String::as_str) {
        Some("start") => {
            let session = common::Session::from_env("approval_workflow")?;
            println!("model: {} ({})", session.model.name(), session.source);
            println!("store: {}", db.display());
            let (run_id, ended) = start(db, session.model.clone(), sample_request()).await?;
            if let Some(path) = session.save()? {
                println!("transcript saved to {}", path.display());
            }
            match ended {
                Ended::Waiting(w) => {
                    for line in &w.context().log {
                        println!("  {line}");
                    }
                    println!("run {run_id} waits in {}", w.state_name());
                    println!("approve: cargo run --example approval_workflow -- approve {run_id}");
                    println!("reject:  cargo run --example approval_workflow -- reject {run_id}");
                }
                Ended::Finished(o) => print_outcome(&o),
            }
        }
        Some(verb @ ("approve" | "reject")) => {
            let run_id = run_id(1)?;
            let rest = args[2..].join(" ");
            let verdict = if verb == "approve" {
                Verdict::Approve {
                    approver: if rest.is_empty() {
                        "a manager".into()
                    } else {
                        rest
                    },
                }
            } else {
                Verdict::Reject {
                    reason: if rest.is_empty() {
                        "not covered by the refund policy".into()
                    } else {
                        rest
                    },
                }
            };
            let outcome = decide(db, run_id, verdict).await?;
            print_outcome(&outcome);
        }
        Some("status") => {
            let run_id = run_id(1)?;
            let store = SqliteStore::open(db)?;
            let latest = store.latest(run_id).await?;
            println!(
                "run {run_id}: {} in {} after {}",
                latest.status,
                latest.state_name,
                latest.path.join(" -> ")
            );
            if latest.status == RunStatus::Waiting {
                println!("waiting for: approve or reject");
            }
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}

fn print_outcome(outcome: &Outcome<Approval>) {
    for line in &outcome.context.log {
        println!("  {line}");
    }
    println!(
        "run {} finished in {:?}: {}",
        outcome.run_id, outcome.terminal, outcome.path
    );
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match cli(&args, &db_from_env()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
