//! A machine embedded in an HTTP service (axum), its runs kept in SQLite:
//! expense claims that a manager and then finance approve.
//!
//! Run with: `cargo run --example axum_service`
//! (listens on `127.0.0.1:3000`, or `EXPENSES_ADDR`; runs are kept in
//! `./axum_service.db`, or `EXPENSES_DB`). Then:
//!
//! ```text
//! curl -s -XPOST localhost:3000/runs -H 'content-type: application/json' \
//!      -d '{"employee":"Ana","amount_cents":12900,"description":"Train to Lyon"}'
//! curl -s localhost:3000/runs/RUN_ID
//! curl -s -XPOST localhost:3000/runs/RUN_ID/signal -H 'content-type: application/json' \
//!      -d '{"FinanceReview":{"manager":"Bo"}}'
//! curl -s -XPOST localhost:3000/runs/RUN_ID/signal -H 'content-type: application/json' \
//!      -d '{"Paid":{"reference":"SEPA-1187"}}'
//! ```
//!
//! - `POST /runs` starts a durable run and answers `201` with its id once
//!   it waits (or has finished: claims over the limit are rejected at once).
//! - `GET /runs/{id}` answers its status, state, path, context, the moves
//!   it accepts now, and its history (one entry per checkpoint).
//! - `POST /runs/{id}/signal` delivers a move to a waiting run. The body
//!   names the move by its target state, as a gate's moves are written:
//!   `{"Rejected": {"reason": "no receipt"}}`. Invalid JSON is `400`; a body
//!   that is not a move of this machine is `422`; a move the run's current
//!   state does not have (finance's `Paid` while the manager has not
//!   approved), or a run that is not waiting, is `409` listing the moves it
//!   accepts. A refused signal changes nothing stored.
//!
//! No model is involved: the waits are decided by people over HTTP. The
//! service holds no run in memory between requests; any number of
//! processes can serve the same file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use guiderail::prelude::*;
use guiderail::store::{Checkpoint, RunStatus, SqliteStore, Store, StoreError};
use guiderail::{DurableError, RunId};
use serde_json::{Value, json};

/// Claims above this are rejected without review (cents).
pub const LIMIT_CENTS: u64 = 500_000;

/// An expense claim: what `POST /runs` takes, and the run's context.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// Who claims.
    pub employee: String,
    /// How much, in cents.
    pub amount_cents: u64,
    /// What for.
    pub description: String,
    /// What happened, in order (filled by the run).
    #[serde(default)]
    pub log: Vec<String>,
}

/// The approval flow of an expense claim.
#[guiderail::machine(context = Claim, max_steps = 10)]
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum Expense {
    /// The claim is checked against policy.
    #[initial]
    #[to(ManagerReview, Rejected)]
    Submitted,
    /// The employee's manager approves (naming themselves) or rejects.
    #[wait]
    #[to(FinanceReview, Rejected)]
    ManagerReview,
    /// Finance pays (with the payment's reference) or rejects.
    #[wait]
    #[to(Paid, Rejected)]
    FinanceReview {
        /// The manager who approved.
        manager: String,
    },
    /// The claim was paid.
    #[terminal]
    Paid {
        /// The payment's reference.
        reference: String,
    },
    /// The claim was rejected.
    #[terminal]
    Rejected {
        /// Why.
        reason: String,
    },
}

/// The handlers: only `Submitted` runs code; people move the waits on.
pub struct Policy;

#[guiderail::handlers]
impl expense::Handlers for Policy {
    async fn submitted(&self, cx: &mut Cx<'_, Expense>) -> HandlerResult<expense::SubmittedNext> {
        let claim = cx.context_mut();
        if claim.amount_cents == 0 {
            return Ok(expense::SubmittedNext::Rejected {
                reason: "the amount is zero".into(),
            });
        }
        if claim.amount_cents > LIMIT_CENTS {
            return Ok(expense::SubmittedNext::Rejected {
                reason: format!("over the limit of {} cents", LIMIT_CENTS),
            });
        }
        claim.log.push(format!(
            "{} claims {} cents for {:?}",
            claim.employee, claim.amount_cents, claim.description
        ));
        Ok(expense::SubmittedNext::ManagerReview)
    }
}

/// What the service shares between requests.
#[derive(Debug, Clone)]
pub struct AppState {
    runner: Arc<Runner>,
    store: Arc<dyn Store>,
}

/// The service's routes over `store`.
pub fn app(store: Arc<dyn Store>) -> Router {
    let runner = Runner::builder().shared_store(store.clone()).build();
    let state = AppState {
        runner: Arc::new(runner),
        store,
    };
    Router::new()
        .route("/runs", post(create_run))
        .route("/runs/{id}", get(show_run))
        .route("/runs/{id}/signal", post(signal_run))
        .with_state(state)
}

/// A refused request: a status and a JSON body `{"error": …, …}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: json!({ "error": message.into() }),
        }
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.body[key] = value;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl From<DurableError> for ApiError {
    fn from(e: DurableError) -> Self {
        let status = match &e {
            DurableError::Store(StoreError::NotFound { .. }) => StatusCode::NOT_FOUND,
            DurableError::NotWaiting { .. }
            | DurableError::WrongState { .. }
            | DurableError::Store(StoreError::NotWaiting { .. } | StoreError::Conflict { .. }) => {
                StatusCode::CONFLICT
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        DurableError::Store(e).into()
    }
}

/// Parses a JSON body: `400` when it is not JSON, `422` when it is JSON of
/// the wrong shape.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("not {what}: {e}"))
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}"))
        }
    })
}

fn parse_id(id: &str) -> Result<RunId, ApiError> {
    id.parse()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad run id {id:?}: {e}")))
}

/// The moves a run in state `state_name` accepts, by target state name.
fn allowed_moves(state_name: &str) -> Vec<&'static str> {
    let graph = Expense::graph();
    let Some(from) = graph.index_of(state_name) else {
        return Vec::new();
    };
    graph
        .moves_from(from)
        .map(|e| graph.states[e.to].name)
        .collect()
}

/// A run as the API shows it, from its checkpoints.
fn run_view(checkpoints: &[Checkpoint]) -> Value {
    let Some(latest) = checkpoints.last() else {
        return Value::Null;
    };
    let history: Vec<Value> = checkpoints
        .iter()
        .map(|c| {
            json!({
                "seq": c.seq,
                "state": c.state_name,
                "status": c.status.to_string(),
                "via": c.via,
                "at_ms": c.at_ms,
            })
        })
        .collect();
    let accepts = if latest.status == RunStatus::Waiting {
        allowed_moves(&latest.state_name)
    } else {
        Vec::new()
    };
    json!({
        "id": latest.run_id.to_string(),
        "machine": latest.machine,
        "status": latest.status.to_string(),
        "state": latest.state_name,
        "payload": latest.state,
        "path": latest.path,
        "context": latest.context,
        "accepts": accepts,
        "history": history,
    })
}

async fn create_run(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let claim: Claim = parse_body(&body, "a claim")?;
    if !claim.log.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`log` is written by the run, not by the caller",
        ));
    }
    let ended = app
        .runner
        .start_durable(&Policy, Expense::start(), claim)
        .await?;
    let run_id = match &ended {
        Ended::Waiting(w) => w.run_id(),
        Ended::Finished(o) => o.run_id,
    };
    let view = run_view(&app.store.checkpoints(run_id).await?);
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

async fn show_run(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let run_id = parse_id(&id)?;
    let checkpoints = app.store.checkpoints(run_id).await?;
    if checkpoints.is_empty() {
        return Err(StoreError::NotFound { run_id }.into());
    }
    Ok(axum::Json(run_view(&checkpoints)))
}

async fn signal_run(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let run_id = parse_id(&id)?;
    // A move is written as the state it leads to, with its payload: the
    // machine enum's own serde form.
    let target: Expense = parse_body(&body, "a move of `Expense`")?;
    let latest = app.store.latest(run_id).await?;
    let accepts = allowed_moves(&latest.state_name);
    if latest.status != RunStatus::Waiting {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "run {run_id} is {} in `{}`, not waiting; nothing was changed",
                latest.status, latest.state_name
            ),
        )
        .with("accepts", json!([])));
    }
    let move_name = target.state_name();
    let refused = || {
        ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "`{}` is not a move out of `{}`; it accepts {}; nothing was changed",
                move_name,
                latest.state_name,
                accepts.join(", ")
            ),
        )
        .with("accepts", json!(accepts))
    };
    let runner = &app.runner;
    // The typed signal for the state the run waits in. The runner checks
    // again (another request may have moved the run since `latest`).
    let ended = match (latest.state_name.as_ref(), target) {
        ("ManagerReview", Expense::FinanceReview { manager }) => {
            let signal = expense::ManagerReviewNext::FinanceReview { manager };
            runner.signal_run(&Policy, run_id, signal).await?
        }
        ("ManagerReview", Expense::Rejected { reason }) => {
            let signal = expense::ManagerReviewNext::Rejected { reason };
            runner.signal_run(&Policy, run_id, signal).await?
        }
        ("FinanceReview", Expense::Paid { reference }) => {
            let signal = expense::FinanceReviewNext::Paid { reference };
            runner.signal_run(&Policy, run_id, signal).await?
        }
        ("FinanceReview", Expense::Rejected { reason }) => {
            let signal = expense::FinanceReviewNext::Rejected { reason };
            runner.signal_run(&Policy, run_id, signal).await?
        }
        _ => return Err(refused()),
    };
    let run_id = match &ended {
        Ended::Waiting(w) => w.run_id(),
        Ended::Finished(o) => o.run_id,
    };
    Ok(axum::Json(run_view(&app.store.checkpoints(run_id).await?)))
}

/// Serves `app` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = std::env::var_os("EXPENSES_DB")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("axum_service.db"), PathBuf::from);
    let addr: SocketAddr = std::env::var("EXPENSES_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db)?);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("store: {}", db.display());
    println!("listening on http://{}", listener.local_addr()?);
    println!("{}", Expense::MERMAID);
    serve(listener, app(store)).await?;
    Ok(())
}
