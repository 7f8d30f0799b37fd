//! A PostgreSQL store in a schema of its own, for tests against a real
//! server: `GUIDERAIL_TEST_POSTGRES` names the server (for example
//! `postgres://postgres@127.0.0.1:5432/postgres`). Without it the tests
//! say they were not run, except under `CI=true`, where they fail.

#![allow(dead_code)]

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

use guiderail_runtime::store::{PgOptions, PgStore};

/// The server's URL, or `None` (after saying so) when the tests are not to
/// run.
pub fn url(test: &str) -> Option<String> {
    match std::env::var("GUIDERAIL_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "{test}: GUIDERAIL_TEST_POSTGRES is not set under CI=true; .ci/run sets it once a \
             PostgreSQL server answers"
        ),
        _ => {
            // Straight to stderr, past the harness's capture.
            let _ = std::io::stderr().write_all(
                format!(
                    "{test}: not run (set GUIDERAIL_TEST_POSTGRES=postgres://user@host:5432/db)\n"
                )
                .as_bytes(),
            );
            None
        }
    }
}

/// A schema name no other test uses.
pub fn fresh_schema() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "gr_test_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Drops its schema when dropped (also when the test panics).
pub struct Schema {
    pub url: String,
    pub name: String,
}

impl Schema {
    pub fn options(&self) -> PgOptions {
        PgOptions::new(&self.url)
            .schema(&self.name)
            .max_connections(8)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let options = PgOptions::new(&self.url)
            .schema(&self.name)
            .migrate_on_connect(false);
        // A runtime of its own: the test's may be gone or busy.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(store) = PgStore::connect_with(options).await {
                    let _ = store.drop_schema().await;
                }
            });
        })
        .join();
    }
}

/// A fresh store in its own schema, or `None` when the tests are not run.
pub async fn store(test: &str) -> Option<(PgStore, Schema)> {
    let url = url(test)?;
    let schema = Schema {
        url,
        name: fresh_schema(),
    };
    let store = PgStore::connect_with(schema.options())
        .await
        .unwrap_or_else(|e| panic!("{test}: cannot open the PostgreSQL store: {e}"));
    Some((store, schema))
}
