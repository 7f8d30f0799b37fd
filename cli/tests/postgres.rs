//! `--db postgres://…`: a run imported into PostgreSQL reads back exactly
//! as from SQLite. Needs a server in `GUIDERAIL_TEST_POSTGRES`; without it
//! the test says it was not run (and fails under `CI=true`).
#![cfg(feature = "postgres")]
#![allow(missing_docs)]

mod common;

use common::{fails, fixture, ok, path_in};
use guiderail::store::{PgOptions, PgStore};

#[tokio::test]
async fn a_run_imported_into_postgres_reads_back_the_same() {
    let Ok(url) = std::env::var("GUIDERAIL_TEST_POSTGRES") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "GUIDERAIL_TEST_POSTGRES is not set under CI=true"
        );
        eprintln!(
            "NOTE: the PostgreSQL test of `guiderail` was NOT run \
             (set GUIDERAIL_TEST_POSTGRES=postgres://user@host:5432/db)"
        );
        return;
    };
    let schema = format!("cli_test_{}", guiderail::RunId::new());
    let f = fixture().await;
    let db = f.db.to_str().unwrap();
    let id = f.refunded.to_string();
    let jsonl = ok(&["export", &id, "--db", db]);
    let file = path_in(f.dir.path(), "run.jsonl");
    std::fs::write(&file, &jsonl).unwrap();

    let pg = |cmd: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        args.extend([
            "--db".into(),
            url.clone(),
            "--schema".into(),
            schema.clone(),
        ]);
        args
    };
    let run = |args: Vec<String>| ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let fail = |args: Vec<String>| fails(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // An explicit migration creates the schema; a second one changes nothing.
    let said = run(pg(&["migrate"]));
    assert!(
        said.contains(&format!("schema `{schema}`")) && said.contains("version 1"),
        "{said}"
    );
    assert!(run(pg(&["migrate"])).contains("version 1"));
    assert!(run(pg(&["runs"])).contains("(no runs)"));

    let said = run(pg(&["import", &file]));
    assert!(said.contains(&format!("imported run {id}")), "{said}");
    let table = run(pg(&["runs"]));
    assert!(table.contains(&id) && table.contains("finished"), "{table}");
    assert_eq!(run(pg(&["show", &id])), ok(&["show", &id, "--db", db]));
    assert_eq!(run(pg(&["export", &id])), jsonl);
    assert_eq!(
        run(pg(&["graph", &id, "--format", "svg"])),
        ok(&["graph", &id, "--db", db, "--format", "svg"])
    );
    let err = fail(pg(&["import", &file]));
    assert!(err.contains("already in"), "{err}");
    // The password never shows in a message.
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(user, _)| user.split_once(':'))
        .map(|(_, password)| password.to_owned());
    if let Some(password) = password {
        assert!(!err.contains(&password), "{err}");
    }
    let unknown = guiderail::RunId::new().to_string();
    let err = fail(pg(&["show", &unknown]));
    assert!(err.contains("not in"), "{err}");

    let store = PgStore::connect_with(PgOptions::new(url.as_str()).schema(schema.as_str()))
        .await
        .unwrap();
    store.drop_schema().await.unwrap();
}
