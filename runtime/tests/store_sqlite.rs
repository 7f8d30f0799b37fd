//! `SqliteStore` on real files: created on first use with its schema
//! version, reopened by a second store (another process's view), and bad
//! input refused with a typed error that names the file or the run, with
//! the file left byte for byte as it was.

use std::path::Path;

use guiderail_runtime::RunId;
use guiderail_runtime::store::{
    Checkpoint, RunStatus, Spent, SqliteOptions, SqliteStore, Store, StoreError, Synchronous,
};
use serde_json::json;

fn cp(run: u128, seq: u64, status: RunStatus) -> Checkpoint {
    Checkpoint {
        run_id: RunId::from_u128(run),
        seq,
        machine: "Test".into(),
        fingerprint: 0xfeed,
        state_name: "Work".into(),
        state: json!("Work"),
        context: json!({ "seq": seq }),
        spent: Spent::default(),
        path: vec!["Work".into()],
        status,
        via: None,
        decision: None,
        error: None,
        graph: None,
        parent: None,
        started_at_ms: 1,
        at_ms: 2,
    }
}

/// A store at `path` holding run 1 with checkpoints 0..=2, closed again
/// (its WAL folded into the file).
async fn filled(path: &Path) {
    let store = SqliteStore::open(path).unwrap();
    store.create(&cp(1, 0, RunStatus::Running)).await.unwrap();
    store.append(&cp(1, 1, RunStatus::Running)).await.unwrap();
    store.append(&cp(1, 2, RunStatus::Running)).await.unwrap();
    drop(store);
    wait_closed(path);
}

/// The writer thread closes its connection after the last handle is
/// dropped; wait until the WAL file is gone (SQLite removes it on close).
fn wait_closed(path: &Path) {
    let wal = path.with_extension("db-wal");
    for _ in 0..500 {
        if !wal.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{} still open", path.display());
}

fn conn(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[tokio::test]
async fn created_on_first_use_with_schema_version_and_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    assert!(!path.exists());
    filled(&path).await;
    let c = conn(&path);
    let versions: Vec<u32> = c
        .prepare("SELECT version FROM schema_version ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, [1]);
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(c);
    // Reopening applies no migration twice and keeps the data.
    let store = SqliteStore::open(&path).unwrap();
    let all = store.checkpoints(RunId::from_u128(1)).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2], cp(1, 2, RunStatus::Running));
}

#[tokio::test]
async fn full_synchronous_works_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.db");
    let store =
        SqliteStore::open_with(&path, SqliteOptions::new().synchronous(Synchronous::Full)).unwrap();
    store.create(&cp(9, 0, RunStatus::Running)).await.unwrap();
    store.append(&cp(9, 1, RunStatus::Finished)).await.unwrap();
    assert_eq!(store.latest(RunId::from_u128(9)).await.unwrap().seq, 1);
}

#[tokio::test]
async fn two_stores_on_one_file_refuse_the_stale_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = SqliteStore::open(&path).unwrap();
    let b = SqliteStore::open(&path).unwrap();
    a.create(&cp(3, 0, RunStatus::Running)).await.unwrap();
    // `b` sees what `a` wrote.
    assert_eq!(b.latest(RunId::from_u128(3)).await.unwrap().seq, 0);
    a.append(&cp(3, 1, RunStatus::Running)).await.unwrap();
    let err = b.append(&cp(3, 1, RunStatus::Running)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                attempted: 1,
                latest: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(b.checkpoints(RunId::from_u128(3)).await.unwrap().len(), 2);
}

/// Opens `path`, expects `NotADatabase` naming it, and checks the file is
/// unchanged and no store files were left beside it.
fn refused_untouched(path: &Path) -> String {
    let before = std::fs::read(path).unwrap();
    let err = SqliteStore::open(path).unwrap_err();
    let StoreError::NotADatabase {
        path: named,
        detail,
    } = &err
    else {
        panic!("expected NotADatabase, got {err:?}");
    };
    assert_eq!(named, &path.display().to_string());
    assert!(err.to_string().contains(&path.display().to_string()));
    assert_eq!(std::fs::read(path).unwrap(), before, "the file was changed");
    detail.clone()
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(&path, "these are my notes, not a database\n".repeat(200)).unwrap();
    let detail = refused_untouched(&path);
    assert!(detail.contains("not a database"), "{detail}");
}

#[tokio::test]
async fn a_truncated_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    filled(&path).await;
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 4096 * 2, "{len}");
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let detail = refused_untouched(&path);
    assert!(
        detail.contains("truncated") || detail.contains("malformed"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_file_cut_inside_its_header_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    filled(&path).await;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(50).unwrap();
    drop(file);
    refused_untouched(&path);
}

#[test]
fn a_database_of_another_program_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let c = conn(&path);
    c.execute_batch("CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('ada');")
        .unwrap();
    drop(c);
    let detail = refused_untouched(&path);
    assert!(detail.contains("another program"), "{detail}");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    filled(&path).await;
    conn(&path)
        .execute("INSERT INTO schema_version (version) VALUES (99)", [])
        .unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                known: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_row_whose_json_no_longer_parses_is_a_typed_error_naming_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    filled(&path).await;
    let run = RunId::from_u128(1);
    conn(&path)
        .execute(
            "UPDATE checkpoints SET body = '{\"run_id\": 12' WHERE run_id = ?1 AND seq = 2",
            [run.to_string()],
        )
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    let err = store.latest(run).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { run_id, seq: 2, .. } if *run_id == run),
        "{err:?}"
    );
    assert!(err.to_string().contains(&run.to_string()), "{err}");
    assert!(matches!(
        store.checkpoints(run).await.unwrap_err(),
        StoreError::Corrupt { seq: 2, .. }
    ));
    // A checkpoint that is JSON but not a checkpoint is refused the same way.
    drop(store);
    wait_closed(&path);
    conn(&path)
        .execute(
            "UPDATE checkpoints SET body = '{\"hello\": 1}' WHERE run_id = ?1 AND seq = 2",
            [run.to_string()],
        )
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert!(matches!(
        store.latest(run).await.unwrap_err(),
        StoreError::Corrupt { seq: 2, .. }
    ));
    // Nothing else was changed, and the run still refuses a stale append.
    assert_eq!(
        store.runs(None).await.unwrap()[0].seq,
        2,
        "the run's header is as it was"
    );
    assert!(store.append(&cp(1, 2, RunStatus::Running)).await.is_err());
}

#[tokio::test]
async fn an_unknown_run_id_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("runs.db")).unwrap();
    let id: RunId = "0123456789abcdef0123456789abcdef".parse().unwrap();
    let err = store.latest(id).await.unwrap_err();
    assert_eq!(err, StoreError::NotFound { run_id: id });
    assert_eq!(
        err.to_string(),
        "run 0123456789abcdef0123456789abcdef is not in the store"
    );
}

#[test]
fn a_missing_directory_is_a_backend_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/runs.db");
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(err.to_string().contains("runs.db"), "{err}");
}
