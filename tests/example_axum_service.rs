//! `examples/axum_service.rs`: the service on 127.0.0.1 (a free port) over
//! a SQLite file, driven over HTTP with reqwest: start a run, read it,
//! deliver the manager's and finance's moves, and have bad requests refused
//! with a 4xx and a JSON message while nothing stored changes.
#![allow(missing_docs)]

use std::sync::Arc;

use guiderail::store::{SqliteStore, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[path = "../examples/axum_service.rs"]
#[allow(dead_code)]
mod axum_service;

struct Service {
    base: String,
    http: reqwest::Client,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn service() -> Service {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("expenses.db")).expect("open the store"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(axum_service::serve(
        listener,
        axum_service::app(store.clone()),
    ));
    Service {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        store,
        _dir: dir,
    }
}

impl Service {
    async fn post(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("the service answers");
        let status = response.status();
        (status, response.json().await.expect("a JSON body"))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("the service answers");
        let status = response.status();
        (status, response.json().await.expect("a JSON body"))
    }

    async fn start(&self) -> String {
        let (status, run) = self
            .post(
                "/runs",
                r#"{"employee":"Ana","amount_cents":12900,"description":"Train to Lyon"}"#,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{run}");
        run["id"].as_str().expect("an id").to_owned()
    }

    async fn checkpoints(&self, id: &str) -> usize {
        self.store
            .checkpoints(id.parse().expect("a run id"))
            .await
            .expect("checkpoints")
            .len()
    }
}

#[tokio::test]
async fn a_claim_goes_through_both_reviews_over_http() {
    let s = service().await;
    let id = s.start().await;

    let (status, run) = s.get(&format!("/runs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(run["status"], "waiting");
    assert_eq!(run["state"], "ManagerReview");
    assert_eq!(run["path"], json!(["Submitted", "ManagerReview"]));
    assert_eq!(run["accepts"], json!(["FinanceReview", "Rejected"]));
    assert_eq!(run["context"]["employee"], "Ana");
    assert_eq!(
        run["context"]["log"],
        json!(["Ana claims 12900 cents for \"Train to Lyon\""])
    );
    let states: Vec<&str> = run["history"]
        .as_array()
        .expect("a history")
        .iter()
        .map(|c| c["state"].as_str().expect("a state"))
        .collect();
    assert_eq!(states.first(), Some(&"Submitted"));
    assert_eq!(states.last(), Some(&"ManagerReview"));

    let (status, run) = s
        .post(
            &format!("/runs/{id}/signal"),
            r#"{"FinanceReview":{"manager":"Bo"}}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["state"], "FinanceReview");
    assert_eq!(run["payload"], json!({"FinanceReview": {"manager": "Bo"}}));
    assert_eq!(run["accepts"], json!(["Paid", "Rejected"]));

    let (status, run) = s
        .post(
            &format!("/runs/{id}/signal"),
            r#"{"Paid":{"reference":"SEPA-1187"}}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["status"], "finished");
    assert_eq!(
        run["path"],
        json!(["Submitted", "ManagerReview", "FinanceReview", "Paid"])
    );
    assert_eq!(run["payload"], json!({"Paid": {"reference": "SEPA-1187"}}));
    let last = run["history"].as_array().and_then(|h| h.last()).cloned();
    assert_eq!(last.map(|c| c["via"].clone()), Some(json!("signal")));
}

#[tokio::test]
async fn a_claim_over_the_limit_is_rejected_at_once() {
    let s = service().await;
    let (status, run) = s
        .post(
            "/runs",
            r#"{"employee":"Ana","amount_cents":900000,"description":"A car"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert_eq!(run["status"], "finished");
    assert_eq!(run["path"], json!(["Submitted", "Rejected"]));
    assert_eq!(
        run["payload"],
        json!({"Rejected": {"reason": "over the limit of 500000 cents"}})
    );
}

#[tokio::test]
async fn bad_requests_get_a_4xx_with_a_message_and_change_nothing() {
    let s = service().await;
    let id = s.start().await;
    let before = s.checkpoints(&id).await;
    let signal = format!("/runs/{id}/signal");

    // Not JSON.
    let (status, body) = s.post(&signal, "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .expect("a message")
            .starts_with("invalid JSON: "),
        "{body}"
    );

    // JSON, but no move of this machine.
    let (status, body) = s.post(&signal, r#"{"Approve":{}}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = body["error"].as_str().expect("a message");
    assert!(
        message.starts_with("not a move of `Expense`: unknown variant `Approve`"),
        "{message}"
    );

    // A move with a wrong field.
    let (status, body) = s.post(&signal, r#"{"Rejected":{"why":"x"}}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // A move of the machine, but not one the manager's review has.
    let (status, body) = s.post(&signal, r#"{"Paid":{"reference":"SEPA-1"}}"#).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["error"],
        "`Paid` is not a move out of `ManagerReview`; it accepts FinanceReview, Rejected; nothing was changed"
    );
    assert_eq!(body["accepts"], json!(["FinanceReview", "Rejected"]));

    // A bad and an unknown run id.
    let (status, body) = s.get("/runs/nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let unknown = guiderail::RunId::new();
    let (status, body) = s.get(&format!("/runs/{unknown}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], format!("run {unknown} is not in the store"));

    // A bad claim.
    let (status, body) = s.post("/runs", r#"{"employee":"Ana"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]
            .as_str()
            .expect("a message")
            .contains("missing field"),
        "{body}"
    );

    assert_eq!(s.checkpoints(&id).await, before, "nothing was stored");
    let (_, run) = s.get(&format!("/runs/{id}")).await;
    assert_eq!(run["state"], "ManagerReview");
    assert_eq!(run["status"], "waiting");

    // Once finished, a run takes no more signals.
    let (status, _) = s
        .post(&signal, r#"{"Rejected":{"reason":"no receipt"}}"#)
        .await;
    assert_eq!(status, StatusCode::OK);
    let after = s.checkpoints(&id).await;
    let (status, body) = s
        .post(&signal, r#"{"FinanceReview":{"manager":"Bo"}}"#)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["error"],
        format!("run {id} is finished in `Rejected`, not waiting; nothing was changed")
    );
    assert_eq!(s.checkpoints(&id).await, after);
}
