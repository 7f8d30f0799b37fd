//! `guiderail report`: one self-contained HTML page, checked as text and
//! rendered by headless Chromium into a screenshot that is not blank.
#![allow(missing_docs)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{fixture, ok, path_in};

#[tokio::test]
async fn report_is_one_self_contained_page() {
    let f = fixture().await;
    let db = f.db.to_str().unwrap();
    let html_path = path_in(f.dir.path(), "run.html");
    let out = ok(&[
        "report",
        &f.refunded.to_string(),
        "--db",
        db,
        "-o",
        &html_path,
    ]);
    assert!(out.is_empty(), "{out}");
    let html = std::fs::read_to_string(&html_path).unwrap();

    // Nothing is fetched: no scripts, links, or remote URLs, the SVG inline.
    for banned in ["<script", "<link", "src=", "@import", "url(http"] {
        assert!(!html.contains(banned), "the page contains {banned}");
    }
    assert!(
        !html.contains("<?xml"),
        "the SVG's XML declaration is left in"
    );
    assert!(html.contains("<svg") && html.contains("</svg>"));
    assert!(html.contains("class=\"state gate visited\" data-state=\"Classify\""));
    assert!(html.contains("class=\"move taken\" data-from=\"Approve\" data-to=\"Reply\""));

    // The timeline with the model exchange folded in <details>.
    assert!(
        html.contains("Classify &rarr; <b>IssueRefund</b>"),
        "{html}"
    );
    assert!(html.contains("model scripted (2 attempts)"), "{html}");
    assert!(
        html.contains(
            "<details><summary>model exchange at Classify: chose <b>IssueRefund</b> (2 attempts"
        ),
        "{html}"
    );
    assert!(html.contains("I think a refund is right"), "{html}");
    assert!(html.contains("rejected: "), "{html}");
    assert!(html.contains("Ticket: my parcel arrived broken"), "{html}");
    // The user's text is escaped.
    assert!(
        html.contains("refunded &lt;b&gt;in full&lt;/b&gt;"),
        "{html}"
    );
    assert!(html.contains("finished in Done"), "{html}");

    // Without -o, the page goes to stdout.
    let stdout = ok(&["report", &f.refunded.to_string(), "--db", db]);
    assert_eq!(stdout, html);

    screenshot_is_not_blank(Path::new(&html_path));

    // To look at them: GUIDERAIL_REPORT_DIR=/some/dir keeps a copy.
    if let Ok(keep) = std::env::var("GUIDERAIL_REPORT_DIR") {
        for name in ["run.html", "report.png"] {
            let from = f.dir.path().join(name);
            if from.exists() {
                std::fs::copy(&from, Path::new(&keep).join(name)).unwrap();
            }
        }
    }
}

/// Opens the page in headless Chromium and checks the screenshot shows
/// something: a PNG whose pixels vary. Without Chromium the check is
/// skipped with a message, except under CI, where it fails.
fn screenshot_is_not_blank(page: &Path) {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(chromium) = chromium else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "CI=true but Chromium is not installed: `apt-get install -y chromium`"
        );
        eprintln!(
            "NOTE: the report was NOT checked in a browser: Chromium is not installed \
             (`apt-get install -y chromium`)"
        );
        return;
    };
    let dir = page.parent().unwrap();
    let png_path = dir.join("report.png");
    let profile = dir.join("chromium-profile");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--screenshot={}", png_path.display()),
            "--window-size=1200,1600",
            &format!("file://{}", page.display()),
        ])
        .output()
        .unwrap();
    assert!(
        png_path.exists(),
        "no screenshot: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 1600));
    let pixels = &buf[..info.buffer_size()];
    let channels = info.color_type.samples();
    // Distinct colours, and how much of the page is not white.
    let mut colours = std::collections::HashSet::new();
    let mut inked = 0usize;
    for px in pixels.chunks(channels) {
        colours.insert(px.to_vec());
        if px.iter().take(3).any(|&c| c < 200) {
            inked += 1;
        }
    }
    let total = pixels.len() / channels;
    assert!(colours.len() > 50, "only {} colours", colours.len());
    assert!(
        inked * 100 > total,
        "the page is almost blank: {inked} of {total} pixels inked"
    );
    // The path colour (#1c64d8) shows: the graph was drawn.
    let blue = pixels.chunks(channels).any(|px| {
        px[0].abs_diff(0x1c) < 24 && px[1].abs_diff(0x64) < 24 && px[2].abs_diff(0xd8) < 24
    });
    assert!(blue, "the highlighted path is not in the screenshot");
}
