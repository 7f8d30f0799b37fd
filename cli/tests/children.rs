//! `guiderail show` lists a run's children (durable child runs started by
//! `cx.fan_out_durable`) under its timeline.
#![allow(missing_docs)]

mod common;

use std::sync::Arc;

use common::ok;
use guiderail::prelude::*;
use guiderail::store::SqliteStore;
use guiderail::{Child, FanOut};

#[guiderail::machine(context = String)]
#[derive(Debug, Serialize, Deserialize)]
pub enum Lookup {
    #[initial]
    #[to(Done)]
    Search,
    #[terminal]
    Done,
}

pub struct Searcher;

#[guiderail::handlers]
impl lookup::Handlers for Searcher {
    async fn search(&self, cx: &mut Cx<'_, Lookup>) -> HandlerResult<lookup::SearchNext> {
        let found = cx.context().to_uppercase();
        *cx.context_mut() = found;
        Ok(lookup::SearchNext::Done)
    }
}

#[guiderail::machine(context = Vec<String>)]
#[derive(Debug, Serialize, Deserialize)]
pub enum Research {
    #[initial]
    #[to(Done)]
    #[children(Lookup, input = String, output = ())]
    Gather,
    #[terminal]
    Done,
}

pub struct Lead;

#[guiderail::handlers]
impl research::Handlers for Lead {
    async fn gather(&self, cx: &mut Cx<'_, Research>) -> HandlerResult<research::GatherNext> {
        let inputs = ["a", "b"].map(|q| (Lookup::start(), q.to_owned())).into();
        let children = cx
            .fan_out_durable(Arc::new(Searcher), inputs, FanOut::all())
            .await?;
        let found = children
            .into_iter()
            .filter_map(Child::finished)
            .map(|o| o.context)
            .collect();
        *cx.context_mut() = found;
        Ok(research::GatherNext::Done)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_lists_the_children() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let runner = Runner::builder()
        .store(SqliteStore::open(&db).unwrap())
        .build();
    let parent = runner
        .start_durable(&Lead, Research::start(), Vec::new())
        .await
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(parent.context, ["A", "B"]);
    let db = db.to_str().unwrap();
    let shown = ok(&["show", &parent.run_id.to_string(), "--db", db]);
    assert!(shown.contains("children (2)"), "{shown}");
    for i in 0..2 {
        let child = guiderail::child_id(parent.run_id, 1, i);
        let line = shown
            .lines()
            .find(|l| l.contains(&child.to_string()))
            .unwrap_or_else(|| panic!("child {i} not listed:\n{shown}"));
        assert!(
            line.contains("Lookup  finished  in Done  (started at step 1)"),
            "{line}"
        );
    }
    // A child's own timeline lists no children.
    let child = guiderail::child_id(parent.run_id, 1, 0).to_string();
    assert!(!ok(&["show", &child, "--db", db]).contains("children"));
}
