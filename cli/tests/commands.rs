//! The stock `guiderail` binary against a real SQLite store: `runs`,
//! `show`, `graph` in every format, `export` + `import`, and the errors.
#![allow(missing_docs)]

mod common;

use common::{fails, fixture, guiderail, ok, path_in};

#[tokio::test]
async fn runs_lists_every_run_with_its_figures() {
    let f = fixture().await;
    let db = f.db.to_str().unwrap();
    let table = ok(&["runs", "--db", db]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    for col in [
        "RUN", "MACHINE", "STATUS", "STEPS", "TOKENS", "COST", "STARTED", "DURATION",
    ] {
        assert!(lines[0].contains(col), "{table}");
    }
    let row = |id: guiderail::RunId| {
        *lines
            .iter()
            .find(|l| l.starts_with(&id.to_string()))
            .unwrap_or_else(|| panic!("run {id} missing:\n{table}"))
    };
    let refunded: Vec<&str> = row(f.refunded).split_whitespace().collect();
    // id, machine, status, steps, tokens, cost, date, time, duration
    assert_eq!(
        &refunded[1..6],
        ["Triage", "finished", "5", "300", "$0.000900"]
    );
    assert!(row(f.waiting).contains(" waiting "), "{table}");
    assert!(row(f.failed).contains(" failed "), "{table}");
    assert!(row(f.escalated).contains(" finished "), "{table}");

    let failed = ok(&["runs", "--db", db, "--status", "failed"]);
    assert_eq!(failed.lines().count(), 2, "{failed}");
    assert!(failed.contains(&f.failed.to_string()), "{failed}");
    let running = ok(&["runs", "--db", db, "--status", "running"]);
    assert!(running.contains("(no runs)"), "{running}");
}

#[tokio::test]
async fn show_prints_the_timeline_and_the_outcome() {
    let f = fixture().await;
    let db = f.db.to_str().unwrap();
    let out = ok(&["show", &f.refunded.to_string(), "--db", db]);
    assert!(out.contains(&format!("run      {}", f.refunded)), "{out}");
    assert!(out.contains("machine  Triage"), "{out}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let moves: Vec<String> = rows.iter().map(|r| r[2..5].join(" ")).collect();
    assert_eq!(
        moves,
        [
            "start in Intake",
            "Intake -> Classify",
            "Classify -> IssueRefund",
            "IssueRefund -> Approve",
            "waits in Approve",
            "Approve -> Reply",
            "Reply -> Done",
        ],
        "{out}"
    );
    // Who decided each move, and the tokens the gate used (two answers).
    let who: Vec<String> = rows.iter().map(|r| r[5..r.len() - 2].join(" ")).collect();
    assert_eq!(
        who,
        [
            "-",
            "code",
            "model scripted (2 attempts)",
            "code",
            "-",
            "signal",
            "code"
        ],
        "{out}"
    );
    assert_eq!(rows[2].last(), Some(&"300"), "{out}");
    assert!(
        rows[1].iter().rev().nth(1).unwrap().ends_with("ms"),
        "{out}"
    );
    assert!(out.contains("ended    finished in Done"), "{out}");

    let failed = ok(&["show", &f.failed.to_string(), "--db", db]);
    assert!(failed.contains("ended    failed in Classify: "), "{failed}");
    assert!(failed.contains("failed in Classify"), "{failed}");
    let waiting = ok(&["show", &f.waiting.to_string(), "--db", db]);
    assert!(
        waiting.contains("now      waiting in Approve for a signal"),
        "{waiting}"
    );
}

#[tokio::test]
async fn graph_prints_every_format() {
    let f = fixture().await;
    let db = f.db.to_str().unwrap();
    let id = f.refunded.to_string();

    let mermaid = ok(&["graph", &id, "--db", db, "--format", "mermaid"]);
    assert!(mermaid.starts_with("stateDiagram-v2"), "{mermaid}");
    assert!(mermaid.contains("Classify --> IssueRefund"), "{mermaid}");
    // Mermaid is the default.
    assert_eq!(ok(&["graph", &id, "--db", db]), mermaid);

    let dot = ok(&["graph", &id, "--db", db, "--format", "dot"]);
    assert!(dot.starts_with("digraph Triage"), "{dot}");

    let json: serde_json::Value =
        serde_json::from_str(&ok(&["graph", &id, "--db", db, "--format", "json"])).unwrap();
    assert_eq!(json["machine"], "Triage");
    assert_eq!(json["states"][1]["name"], "Classify");
    assert_eq!(json["states"][1]["kind"], "gate");
    assert_eq!(json["states"][5]["kind"], "wait");

    let svg = ok(&["graph", &id, "--db", db, "--format", "svg"]);
    assert!(
        svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
        "{svg}"
    );
    // Gates and waits are marked; the path's states and moves are blue.
    assert!(
        svg.contains("class=\"state gate visited\" data-state=\"Classify\""),
        "{svg}"
    );
    assert!(
        svg.contains("class=\"state wait visited\" data-state=\"Approve\""),
        "{svg}"
    );
    assert!(
        svg.contains("gate: Classify") && svg.contains("wait: Approve"),
        "{svg}"
    );
    assert!(
        svg.contains("class=\"state plain\" data-state=\"Escalate\""),
        "{svg}"
    );
    assert!(
        svg.contains("class=\"move taken\" data-from=\"Classify\" data-to=\"IssueRefund\""),
        "{svg}"
    );
    assert!(
        svg.contains("class=\"move\" data-from=\"Classify\" data-to=\"Escalate\""),
        "{svg}"
    );
    assert_eq!(svg.matches("class=\"move taken\"").count(), 5, "{svg}");
    assert!(svg.contains("#1c64d8"), "{svg}");

    // `--machine` needs a binary with machines compiled in.
    let err = fails(&["graph", "--machine", "Triage"]);
    assert!(err.contains("not compiled into this `guiderail`"), "{err}");
}

#[tokio::test]
async fn export_and_import_round_trip() {
    let f = fixture().await;
    let db = f.db.to_str().unwrap();
    let id = f.refunded.to_string();
    let jsonl = ok(&["export", &id, "--db", db]);
    assert!(jsonl.lines().count() > 6, "{jsonl}");
    assert!(jsonl.lines().all(|l| l.starts_with("{\"v\":1,")), "{jsonl}");
    let file = path_in(f.dir.path(), "run.jsonl");
    std::fs::write(&file, &jsonl).unwrap();

    // Into a new store (created on request), then identical on export.
    let other = path_in(f.dir.path(), "other.db");
    let err = fails(&["import", &file, "--db", &other]);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!std::path::Path::new(&other).exists());
    let said = ok(&["import", &file, "--db", &other, "--create"]);
    assert!(
        said.contains(&format!("imported run {id} (7 checkpoints, finished)")),
        "{said}"
    );
    assert_eq!(ok(&["export", &id, "--db", &other]), jsonl);
    assert_eq!(
        ok(&["show", &id, "--db", &other]),
        ok(&["show", &id, "--db", db])
    );

    // The run exists: refused, nothing changed.
    let err = fails(&["import", &file, "--db", db]);
    assert!(err.contains("already in"), "{err}");
    assert_eq!(ok(&["export", &id, "--db", db]), jsonl);

    // A waiting run imports too, and can still be signalled later.
    let waiting = ok(&["export", &f.waiting.to_string(), "--db", db]);
    let wfile = path_in(f.dir.path(), "waiting.jsonl");
    std::fs::write(&wfile, &waiting).unwrap();
    let said = ok(&["import", &wfile, "--db", &other]);
    assert!(said.contains("waiting"), "{said}");

    // A damaged history: one line, nothing imported.
    let broken = path_in(f.dir.path(), "broken.jsonl");
    std::fs::write(&broken, jsonl.replacen("\"seq\":2", "\"seq\":9", 1)).unwrap();
    let third = path_in(f.dir.path(), "third.db");
    let err = fails(&["import", &broken, "--db", &third, "--create"]);
    assert!(err.contains("checkpoint 9 where checkpoint 2"), "{err}");
    assert!(!std::path::Path::new(&third).exists());
}

#[tokio::test]
async fn errors_are_one_line_and_write_nothing() {
    let f = fixture().await;
    let db = f.db.to_str().unwrap();
    let dir = f.dir.path();

    // A missing database is not created.
    let missing = path_in(dir, "missing.db");
    let some_id = guiderail::RunId::new().to_string();
    for args in [
        vec!["runs", "--db", &missing],
        vec!["show", &some_id, "--db", &missing],
    ] {
        let err = fails(&args);
        assert!(err.contains("does not exist"), "{err}");
    }
    assert!(!std::path::Path::new(&missing).exists());
    // `migrate` is the command that creates one on purpose.
    let said = ok(&["migrate", "--db", &missing]);
    assert!(said.contains("up to date"), "{said}");
    assert!(ok(&["runs", "--db", &missing]).contains("(no runs)"));

    // An unknown run, and a string that is no run id.
    let unknown = guiderail::RunId::new().to_string();
    let err = fails(&["show", &unknown, "--db", db]);
    assert!(err.contains(&unknown) && err.contains("not in"), "{err}");
    let err = fails(&["export", "nonsense", "--db", db]);
    assert!(err.contains("`nonsense` is not a run id"), "{err}");
    assert_eq!(err.matches("nonsense").count(), 1, "{err}");

    // `report -o` is not created on an error.
    let html = path_in(dir, "run.html");
    let err = fails(&["report", &unknown, "--db", db, "-o", &html]);
    assert!(err.contains("not in"), "{err}");
    assert!(!std::path::Path::new(&html).exists());

    // A file that is not a database.
    let junk = path_in(dir, "junk.db");
    std::fs::write(&junk, "this is not SQLite, just text that is long enough").unwrap();
    let err = fails(&["runs", "--db", &junk]);
    assert!(err.contains("not a usable guiderail store"), "{err}");

    // A corrupt record: every command that reads it fails cleanly.
    let conn = rusqlite::Connection::open(&f.db).unwrap();
    let changed = conn
        .execute(
            "UPDATE checkpoints SET body = '{\"run_id\": 12' WHERE run_id = ?1 AND seq = 2",
            [f.escalated.to_string()],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let id = f.escalated.to_string();
    for cmd in ["show", "export", "graph", "report"] {
        let mut args = vec![cmd, id.as_str(), "--db", db];
        if cmd == "report" {
            args.extend(["-o", html.as_str()]);
        }
        let err = fails(&args);
        assert!(
            err.contains("stored checkpoint 2 cannot be read"),
            "{cmd}: {err}"
        );
    }
    assert!(!std::path::Path::new(&html).exists());

    // The stock binary has no machines to replay with, and says so.
    let err = fails(&["replay", &f.refunded.to_string(), "--db", db]);
    assert!(
        err.contains("no machines are compiled into this `guiderail`"),
        "{err}"
    );

    // Bad arguments: clap's usage message, exit code 2.
    let out = guiderail(&["graph", "--format", "png"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("png"));
}

#[tokio::test]
async fn progress_shows_only_on_a_terminal() {
    let f = fixture().await;
    let db = f.db.to_str().unwrap();
    let id = f.refunded.to_string();
    let html = path_in(f.dir.path(), "run.html");
    // Without a terminal (every other test): nothing on stderr, checked by
    // `ok`.
    ok(&["report", &id, "--db", db, "-o", &html]);
    // On one: `script` gives the command a pseudo-terminal.
    let has_script = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_script {
        eprintln!("NOTE: the progress bar was NOT checked: `script` (util-linux) is missing");
        return;
    }
    let command = format!(
        "{} report {id} --db {db} -o {html} >/dev/null",
        env!("CARGO_BIN_EXE_guiderail")
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(seen.contains("rendering the report"), "{seen:?}");
}
