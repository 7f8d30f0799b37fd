//! The text output: the runs table, a run's timeline, and the small
//! formatters they share with the HTML report.

use std::io::{self, Write};

use guiderail_runtime::store::{Checkpoint, RunStatus};
use guiderail_runtime::{DecidedBy, DecidedVia};

/// `2026-11-25 10:59:09` (UTC) for milliseconds since the Unix epoch.
pub(crate) fn time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `850ms`, `12.3s`, `4m05s`, `2h13m`.
pub(crate) fn duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// `$0.001250` for millionths of a dollar.
pub(crate) fn cost(micros: u64) -> String {
    format!("${}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// Who picked the move into `cp`: `code`, `model NAME`, `override: why`,
/// `fallback: why`, `signal`, `wrap-up: bound`; `None` for checkpoints
/// that are not moves (the start, a suspension, a failure).
pub(crate) fn decided_by(cp: &Checkpoint) -> Option<String> {
    Some(match cp.via? {
        DecidedVia::Code => "code".to_owned(),
        DecidedVia::Signal => "signal".to_owned(),
        DecidedVia::WrapUp => match &cp.spent.bound_hit {
            Some(hit) => format!("wrap-up: {hit}"),
            None => "wrap-up".to_owned(),
        },
        DecidedVia::Gate => match cp.decision.as_deref() {
            None => "gate".to_owned(),
            Some(d) => {
                let who = match &d.decided_by {
                    DecidedBy::Model { model } => format!("model {model}"),
                    DecidedBy::Override { reason } => format!("override: {reason}"),
                    DecidedBy::Fallback { error } => format!("fallback: {error}"),
                };
                if d.attempts.len() > 1 {
                    format!("{who} ({} attempts)", d.attempts.len())
                } else {
                    who
                }
            }
        },
    })
}

/// How the run ended, or where it stands: `finished in Done`, `failed in
/// Classify: …`, `waiting in Approve for a signal`, `running in Reply`.
pub(crate) fn outcome(last: &Checkpoint) -> String {
    match last.status {
        RunStatus::Finished => format!("finished in {}", last.state_name),
        RunStatus::Failed => format!(
            "failed in {}: {}",
            last.state_name,
            last.error.as_deref().unwrap_or("(no error recorded)")
        ),
        RunStatus::Waiting => format!("waiting in {} for a signal", last.state_name),
        RunStatus::Running => format!("running in {}", last.state_name),
    }
}

/// A one-line header field list for a run: machine, status, steps,
/// tokens, cost, started, duration.
pub(crate) struct Summary {
    pub(crate) steps: u64,
    pub(crate) tokens: u64,
    pub(crate) cost: String,
    pub(crate) started: String,
    pub(crate) duration: String,
}

pub(crate) fn summary(last: &Checkpoint) -> Summary {
    Summary {
        steps: last.spent.steps,
        tokens: last.spent.usage.total_tokens(),
        cost: cost(last.spent.usage.cost_micros),
        started: time(last.started_at_ms),
        duration: duration(last.at_ms.saturating_sub(last.started_at_ms)),
    }
}

/// The runs table, one run (its latest checkpoint) a row.
pub(crate) fn runs_table(latest: &[Checkpoint], out: &mut impl Write) -> io::Result<()> {
    let rows: Vec<[String; 8]> = latest
        .iter()
        .map(|c| {
            let s = summary(c);
            [
                c.run_id.to_string(),
                c.machine.to_string(),
                c.status.to_string(),
                s.steps.to_string(),
                s.tokens.to_string(),
                s.cost,
                s.started,
                s.duration,
            ]
        })
        .collect();
    let header = [
        "RUN",
        "MACHINE",
        "STATUS",
        "STEPS",
        "TOKENS",
        "COST",
        "STARTED (UTC)",
        "DURATION",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let right = [false, false, false, true, true, true, false, true];
    let line = |cells: &[&str], out: &mut dyn Write| -> io::Result<()> {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if right[i] {
                s.extend(std::iter::repeat_n(' ', pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                if i + 1 < cells.len() {
                    s.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        writeln!(out, "{s}")
    };
    line(&header, out)?;
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(&cells, out)?;
    }
    if rows.is_empty() {
        writeln!(out, "(no runs)")?;
    }
    Ok(())
}

/// A run's timeline: a header, one row per checkpoint, and how it ended.
pub(crate) fn timeline(cps: &[Checkpoint], out: &mut impl Write) -> io::Result<()> {
    let (first, last) = (&cps[0], &cps[cps.len() - 1]);
    let s = summary(last);
    writeln!(out, "run      {}", first.run_id)?;
    writeln!(out, "machine  {}", first.machine)?;
    if let Some(p) = &first.parent {
        writeln!(
            out,
            "forked   from run {} at checkpoint {}",
            p.run_id, p.seq
        )?;
    }
    writeln!(
        out,
        "status   {}  ({} steps, {} tokens, {}, started {} UTC, took {})",
        last.status, s.steps, s.tokens, s.cost, s.started, s.duration
    )?;
    writeln!(out)?;

    // Column widths from the widest state name (the move column holds two).
    let widest = cps
        .iter()
        .map(|c| c.state_name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mv = (widest * 2 + 4).max(4);
    let by = cps
        .iter()
        .filter_map(decided_by)
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0)
        .max(10);
    writeln!(
        out,
        "{:>5}  {:>5}  {:<mv$}  {:<by$}  {:>8}  {:>7}",
        "SEQ", "STEP", "MOVE", "DECIDED BY", "TOOK", "TOKENS"
    )?;
    let mut prev: Option<&Checkpoint> = None;
    for cp in cps {
        let Row {
            step,
            who,
            took,
            tokens,
        } = row(prev, cp);
        let mv_text = match step {
            Move::Start(s) => format!("start in {s}"),
            Move::Moved(from, to) => format!("{from} -> {to}"),
            Move::Failed(s) => format!("failed in {s}"),
            Move::Waits(s) => format!("waits in {s}"),
            Move::In(s) => format!("in {s}"),
        };
        writeln!(
            out,
            "{:>5}  {:>5}  {:<mv$}  {:<by$}  {:>8}  {:>7}",
            cp.seq, cp.spent.steps, mv_text, who, took, tokens
        )?;
        prev = Some(cp);
    }
    writeln!(out)?;
    if let Some(hit) = &last.spent.bound_hit {
        writeln!(out, "bound    {hit}")?;
    }
    let label = if last.status.is_closed() {
        "ended"
    } else {
        "now"
    };
    writeln!(out, "{label:<8} {}", outcome(last))?;
    Ok(())
}

/// The child runs of a run (latest checkpoint and the parent's step that
/// started each), after its timeline; nothing when it has none.
pub(crate) fn children(children: &[(Checkpoint, u64)], out: &mut impl Write) -> io::Result<()> {
    if children.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "children ({})", children.len())?;
    for (c, step) in children {
        writeln!(
            out,
            "  {}  {}  {}  in {}  (started at step {step})",
            c.run_id, c.machine, c.status, c.state_name
        )?;
    }
    Ok(())
}

/// What a checkpoint did, for a timeline row.
pub(crate) enum Move<'a> {
    /// The run started in this state.
    Start(&'a str),
    /// A move from one state to another.
    Moved(&'a str, &'a str),
    /// The run failed in this state.
    Failed(&'a str),
    /// The run waits in this state.
    Waits(&'a str),
    /// Another checkpoint in this state.
    In(&'a str),
}

/// One timeline row: the move, who decided it, how long the step took and
/// the tokens it used (`-` where there is nothing to say).
pub(crate) struct Row<'a> {
    pub step: Move<'a>,
    pub who: String,
    pub took: String,
    pub tokens: String,
}

/// The timeline row of `cp`, which follows `prev` (`None` for checkpoint 0).
pub(crate) fn row<'a>(prev: Option<&'a Checkpoint>, cp: &'a Checkpoint) -> Row<'a> {
    let Some(p) = prev else {
        return Row {
            step: Move::Start(&cp.state_name),
            who: "-".to_owned(),
            took: "-".to_owned(),
            tokens: "-".to_owned(),
        };
    };
    let step = match (cp.via, cp.status) {
        (Some(_), _) => Move::Moved(&p.state_name, &cp.state_name),
        (None, RunStatus::Failed) => Move::Failed(&cp.state_name),
        (None, RunStatus::Waiting) => Move::Waits(&cp.state_name),
        (None, _) => Move::In(&cp.state_name),
    };
    let who = decided_by(cp).unwrap_or_else(|| match cp.status {
        RunStatus::Failed => "error".to_owned(),
        _ => "-".to_owned(),
    });
    let used = cp
        .spent
        .usage
        .total_tokens()
        .saturating_sub(p.spent.usage.total_tokens());
    Row {
        step,
        who,
        took: duration(cp.at_ms.saturating_sub(p.at_ms)),
        tokens: used.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(time(1_795_000_000_123), "2026-11-18 11:06:40");
    }

    #[test]
    fn durations_and_costs_read_well() {
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(12_340), "12.3s");
        assert_eq!(duration(245_000), "4m05s");
        assert_eq!(duration(7_980_000), "2h13m");
        assert_eq!(cost(1_250), "$0.001250");
        assert_eq!(cost(3_000_001), "$3.000001");
    }
}
