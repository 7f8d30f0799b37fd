//! The HTML report: one self-contained page (inline CSS and SVG, no
//! scripts, nothing fetched) with the run's summary, its graph with the
//! path highlighted, and its timeline with every model exchange in a
//! `<details>` element.

use std::fmt::Write as _;

use guiderail_runtime::llm::Message;
use guiderail_runtime::store::{Checkpoint, RunStatus};
use guiderail_runtime::{DecisionRecord, GraphRecord};

use crate::graph::{GATE_FILL, PATH_COLOR, TERMINAL_FILL, WAIT_FILL, inline_svg};
use crate::text::{self, Move};

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// The page. `tick(n)` is called as rows are rendered (progress).
pub(crate) fn html(
    cps: &[Checkpoint],
    graph: &GraphRecord,
    path: &[String],
    tick: &dyn Fn(u64),
) -> String {
    let (first, last) = (&cps[0], &cps[cps.len() - 1]);
    let s = text::summary(last);
    let mut h = String::with_capacity(4096 + cps.len() * 400);
    let title = format!("{} run {}", first.machine, first.run_id);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{}</style>\n</head>\n<body>\n",
        esc(&title),
        css()
    );
    let _ = write!(
        h,
        "<header><h1>{}</h1><p class=\"run-id\">run <code>{}</code></p>\n<dl class=\"summary\">\
         <div><dt>status</dt><dd class=\"status {}\">{}</dd></div>\
         <div><dt>steps</dt><dd>{}</dd></div>\
         <div><dt>tokens</dt><dd>{}</dd></div>\
         <div><dt>cost</dt><dd>{}</dd></div>\
         <div><dt>started (UTC)</dt><dd>{}</dd></div>\
         <div><dt>duration</dt><dd>{}</dd></div></dl>\n",
        esc(&first.machine),
        first.run_id,
        last.status,
        last.status,
        s.steps,
        s.tokens,
        esc(&s.cost),
        esc(&s.started),
        esc(&s.duration)
    );
    if let Some(p) = &first.parent {
        let _ = writeln!(
            h,
            "<p>Forked from run <code>{}</code> at checkpoint {}.</p>",
            p.run_id, p.seq
        );
    }
    let _ = writeln!(
        h,
        "<p class=\"outcome {}\" id=\"outcome\">{}</p></header>",
        last.status,
        esc(&text::outcome(last))
    );

    // The graph.
    let _ = write!(
        h,
        "<section id=\"graph\"><h2>Graph</h2>\n<p class=\"legend\">\
         <span class=\"key path\">the run's path</span>\
         <span class=\"key gate\">gate: a model decides</span>\
         <span class=\"key wait\">wait: a signal decides</span>\
         <span class=\"key terminal\">terminal</span></p>\n<div class=\"svg\">{}</div></section>\n",
        inline_svg(graph, path)
    );

    // The timeline.
    h.push_str(
        "<section id=\"timeline\"><h2>Timeline</h2>\n<table>\n<thead><tr><th>seq</th><th>step</th>\
         <th>move</th><th>decided by</th><th>took</th><th>tokens</th></tr></thead>\n<tbody>\n",
    );
    let mut prev: Option<&Checkpoint> = None;
    for (i, cp) in cps.iter().enumerate() {
        row(&mut h, prev, cp);
        prev = Some(cp);
        if i % 256 == 255 {
            tick(256);
        }
    }
    tick((cps.len() % 256) as u64);
    h.push_str("</tbody>\n</table></section>\n");

    // Where it ended.
    let _ = write!(
        h,
        "<section id=\"end\"><h2>End</h2><p>{}</p>",
        esc(&text::outcome(last))
    );
    if let Some(hit) = &last.spent.bound_hit {
        let _ = write!(h, "<p>Bound hit: {}</p>", esc(&hit.to_string()));
    }
    let _ = writeln!(
        h,
        "<details><summary>context at the end</summary><pre>{}</pre></details>\
         <details><summary>state at the end</summary><pre>{}</pre></details></section>",
        esc(&pretty(&last.context)),
        esc(&pretty(&last.state))
    );
    h.push_str(
        "<footer>Written by <code>guiderail report</code>; this page loads nothing from the network.</footer>\n</body>\n</html>\n",
    );
    h
}

fn row(h: &mut String, prev: Option<&Checkpoint>, cp: &Checkpoint) {
    let text::Row {
        step,
        who,
        took,
        tokens,
    } = text::row(prev, cp);
    let mv = match step {
        Move::Start(s) => format!("start in <b>{}</b>", esc(s)),
        Move::Moved(from, to) => format!("{} &rarr; <b>{}</b>", esc(from), esc(to)),
        Move::Failed(s) => format!("failed in <b>{}</b>", esc(s)),
        Move::Waits(s) => format!("waits in <b>{}</b>", esc(s)),
        Move::In(s) => format!("in <b>{}</b>", esc(s)),
    };
    let who = esc(&who);
    let class = match (cp.via, cp.status) {
        (_, RunStatus::Failed) => "failed",
        (Some(guiderail_runtime::DecidedVia::Gate), _) => "gate",
        (Some(guiderail_runtime::DecidedVia::Signal), _) => "signal",
        (_, RunStatus::Waiting) => "wait",
        _ => "",
    };
    // The state's payload, if it has one (serde writes `{"Name": payload}`).
    let mv = match &cp.state {
        serde_json::Value::Object(m) if !m.is_empty() => format!(
            "{mv}<details class=\"payload\"><summary>payload</summary><pre>{}</pre></details>",
            esc(&pretty(m.values().next().unwrap_or(&cp.state)))
        ),
        _ => mv,
    };
    let _ = writeln!(
        h,
        "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{mv}</td><td>{who}</td><td>{took}</td><td>{tokens}</td></tr>",
        cp.seq, cp.spent.steps
    );
    if let Some(d) = cp.decision.as_deref() {
        h.push_str("<tr class=\"exchange\"><td></td><td colspan=\"5\">");
        exchange(h, d);
        h.push_str("</td></tr>\n");
    }
    if let Some(e) = &cp.error {
        let _ = writeln!(
            h,
            "<tr class=\"error\"><td></td><td colspan=\"5\"><pre>{}</pre></td></tr>",
            esc(e)
        );
    }
}

/// A gate's model exchange, folded.
fn exchange(h: &mut String, d: &DecisionRecord) {
    let _ = write!(
        h,
        "<details><summary>model exchange at {}: chose <b>{}</b> ({} attempt{}, {} tokens, {})</summary>",
        esc(&d.gate),
        esc(&d.chosen),
        d.attempts.len(),
        if d.attempts.len() == 1 { "" } else { "s" },
        d.usage.total_tokens(),
        text::duration(d.latency_ms)
    );
    if !d.messages.is_empty() {
        h.push_str("<h4>messages</h4><ol class=\"messages\">");
        for m in &d.messages {
            let (role, body) = match m {
                Message::System { content } => ("system", content.clone()),
                Message::User { content } => ("user", content.clone()),
                Message::Assistant { content } => ("assistant", content.clone()),
                Message::ToolCall {
                    name, arguments, ..
                } => ("tool call", format!("{name}({arguments})")),
                Message::ToolResult {
                    content, is_error, ..
                } => (
                    if *is_error {
                        "tool error"
                    } else {
                        "tool result"
                    },
                    content.clone(),
                ),
            };
            let _ = write!(
                h,
                "<li><span class=\"role\">{role}</span><pre>{}</pre></li>",
                esc(&body)
            );
        }
        h.push_str("</ol>");
    }
    if !d.attempts.is_empty() {
        h.push_str("<h4>answers</h4><ol class=\"attempts\">");
        for a in &d.attempts {
            let _ = write!(h, "<li><pre>{}</pre>", esc(&a.raw));
            match &a.error {
                Some(e) => {
                    let _ = write!(h, "<p class=\"rejected\">rejected: {}</p>", esc(e));
                }
                None => h.push_str("<p class=\"accepted\">accepted</p>"),
            }
            h.push_str("</li>");
        }
        h.push_str("</ol>");
    }
    let _ = write!(
        h,
        "<h4>move</h4><pre>{} {}</pre></details>",
        esc(&d.chosen),
        esc(&pretty(&d.payload))
    );
}

fn css() -> String {
    format!(
        "body{{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1100px;padding:0 16px;color:#1d2127;background:#fff}}\
h1{{margin:0 0 4px}}h2{{border-bottom:1px solid #dde1e6;padding-bottom:4px;margin-top:28px}}\
code,pre{{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}}\
pre{{background:#f5f6f8;padding:8px;white-space:pre-wrap;word-break:break-word;margin:4px 0}}\
.summary{{display:flex;flex-wrap:wrap;gap:8px 28px;margin:12px 0}}.summary dt{{color:#5b6270;font-size:12px}}.summary dd{{margin:0;font-weight:600}}\
.status.finished,.outcome.finished{{color:#1b7f37}}.status.failed,.outcome.failed{{color:#c0262d}}.status.waiting,.outcome.waiting{{color:#1c64d8}}\
.outcome{{font-weight:600}}\
.svg{{overflow:auto;border:1px solid #dde1e6;padding:8px;text-align:center}}.svg svg{{max-width:100%;height:auto}}\
.legend .key{{display:inline-block;margin-right:16px;padding:2px 8px;border:1px solid #8a9099}}\
.legend .path{{border:3px solid {PATH_COLOR}}}.legend .gate{{background:{GATE_FILL}}}.legend .wait{{background:{WAIT_FILL}}}.legend .terminal{{background:{TERMINAL_FILL}}}\
table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:4px 8px;border-bottom:1px solid #eceef1;vertical-align:top}}\
th{{background:#f0f2f5}}tr.gate td:nth-child(4){{background:{GATE_FILL}}}tr.signal td:nth-child(4),tr.wait td:nth-child(3){{background:{WAIT_FILL}}}\
tr.failed td,tr.error td{{color:#c0262d}}tr.exchange td{{border-bottom:1px solid #dde1e6}}\
details summary{{cursor:pointer;color:#1c64d8}}details h4{{margin:8px 0 2px}}.role{{font-size:12px;color:#5b6270}}\
.rejected{{color:#c0262d;margin:0}}.accepted{{color:#1b7f37;margin:0}}\
footer{{margin-top:32px;color:#5b6270;font-size:12px}}"
    )
}
