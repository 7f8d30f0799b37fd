//! Bounds on the hand-written machines: every one ends the run with a typed
//! `RunErrorKind::Bound` carrying the figures, the state and the step, or
//! (with `on_exhausted`) moves it to its wrap-up state. Time runs on tokio's
//! paused clock, so no test waits for real time.
#![allow(missing_docs)]

mod machines;

use std::sync::Arc;
use std::time::Duration;

use guiderail_runtime::llm::CallOptions;
use guiderail_runtime::{
    BoundHit, Bounds, EventKind, EventLog, GateError, RunError, RunErrorKind, Runner,
    ScriptedModel, Usage,
};
use machines::guarded::ThinkNext;
use machines::support::{AwaitApprovalNext, ClassifyNext};
use machines::{Agent, Faults, Guarded, Refund, Support, Ticket, Worker, WrapMode};

fn reply(draft: &str) -> ClassifyNext {
    ClassifyNext::Reply {
        draft: draft.into(),
    }
}

fn refund() -> ClassifyNext {
    ClassifyNext::Refund(Refund {
        order_id: 7,
        amount_cents: 500,
    })
}

/// A ticket whose gate always answers `Reply` (as an override) and whose
/// replies loop back: only a bound stops it.
fn looping(replies: usize) -> Ticket {
    let mut t = Ticket::planned((0..replies).map(|i| reply(&format!("r{i}"))));
    t.reply_loops = true;
    t
}

fn bound(err: &RunError) -> &BoundHit {
    match &err.kind {
        RunErrorKind::Bound(hit) => hit,
        other => panic!("expected a bound, got {other:?}"),
    }
}

fn sleeping(state: &'static str, secs: u64) -> Faults {
    Faults {
        sleep: vec![(state, Duration::from_secs(secs))],
        ..Faults::default()
    }
}

// ---------------------------------------------------------------------------
// Steps and visits
// ---------------------------------------------------------------------------

#[tokio::test]
async fn max_visits_ends_the_run() {
    let log = Arc::new(EventLog::new());
    let runner = Runner::builder().subscriber(log.clone()).build();
    let err = runner
        .start(&Agent::new(), Support::start(), looping(10))
        .await
        .unwrap_err();
    assert_eq!(
        bound(&err),
        &BoundHit::Visits {
            state: "Reply".into(),
            limit: 3
        }
    );
    // Intake, 3 × (Classify, Reply), Classify: 8 steps; the 4th Reply is
    // refused.
    assert_eq!((err.state, err.step), ("Reply", 8));
    assert_eq!(err.bound(), Some(bound(&err)));
    let events = log.events();
    let n = events.len();
    assert!(matches!(
        &events[n - 2].kind,
        EventKind::BoundHit {
            hit: BoundHit::Visits { limit: 3, .. },
            wrap_up: None
        }
    ));
    assert!(matches!(
        &events[n - 1].kind,
        EventKind::Failed { state, step: 8, .. } if state == "Reply"
    ));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::Entered { state, .. } if state == "Reply"))
            .count(),
        3
    );
}

#[tokio::test]
async fn the_machines_max_steps_applies_across_a_signal() {
    // Support declares max_steps = 10; the runner allows more.
    let runner = Runner::builder()
        .bounds(Bounds::default().max_steps(50))
        .build();
    let agent = Agent::new();
    let mut t = looping(3);
    t.plan.push_back(refund());
    let s = runner
        .start(&agent, Support::start(), t)
        .await
        .unwrap()
        .waiting()
        .unwrap();
    // Intake, 3 × (Classify, Reply), Classify, Refund, AwaitApproval.
    assert_eq!(s.steps(), 10);
    let err = runner
        .signal(
            &agent,
            s,
            AwaitApprovalNext::Escalate {
                reason: "no".into(),
            },
        )
        .await
        .unwrap_err();
    let guiderail_runtime::SignalError::Run(err) = err else {
        panic!("expected Run, got {err:?}");
    };
    assert_eq!(bound(&err), &BoundHit::Steps { limit: 10 });
    assert_eq!((err.state, err.step), ("Escalate", 10));
}

#[tokio::test]
async fn the_runners_max_steps_applies_when_smaller() {
    let runner = Runner::builder()
        .bounds(Bounds::default().max_steps(4))
        .build();
    let err = runner
        .start(&Agent::new(), Support::start(), looping(10))
        .await
        .unwrap_err();
    assert_eq!(bound(&err), &BoundHit::Steps { limit: 4 });
    // Intake 1, Classify 2, Reply 3, Classify 4; the next Reply is refused.
    assert_eq!((err.state, err.step), ("Reply", 4));
    assert_eq!(
        err.to_string(),
        format!(
            "run {} of `Support` failed in state `Reply` at step 4: bound hit: step limit of 4 reached",
            err.run_id
        )
    );
}

#[tokio::test]
async fn a_run_within_its_bounds_is_not_stopped() {
    // Exactly at the limits: 3 Reply visits, 10 steps.
    let runner = Runner::builder()
        .bounds(Bounds::default().max_steps(10))
        .build();
    let agent = Agent::new();
    let mut t = looping(3);
    t.plan.push_back(refund());
    let s = runner
        .start(&agent, Support::start(), t)
        .await
        .unwrap()
        .waiting()
        .unwrap();
    // A signal into a terminal state takes no step.
    let out = runner
        .signal(&agent, s, AwaitApprovalNext::Done)
        .await
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(out.steps, 10);
    assert_eq!(out.path.len(), 11);
}

#[tokio::test]
async fn a_step_limit_of_zero_refuses_the_first_step() {
    let runner = Runner::builder()
        .bounds(Bounds::default().max_steps(0))
        .build();
    let err = runner
        .start(&Agent::new(), Support::start(), looping(1))
        .await
        .unwrap_err();
    assert_eq!(bound(&err), &BoundHit::Steps { limit: 0 });
    assert_eq!((err.state, err.step), ("Intake", 0));
    // With a wrap-up state, the run goes straight there.
    let out = runner
        .start(&Worker::default(), Guarded::start(), Default::default())
        .await
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(out.path, ["Start", "WrapUp", "Finish"]);
    assert_eq!(out.steps, 1);
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_handler_that_overruns_the_deadline_ends_the_run() {
    let runner = Runner::builder()
        .bounds(Bounds::default().deadline(Duration::from_secs(5)))
        .build();
    let t0 = tokio::time::Instant::now();
    let err = runner
        .start(
            &Agent::with(sleeping("Refund", 3600)),
            Support::start(),
            Ticket::planned([refund()]),
        )
        .await
        .unwrap_err();
    assert_eq!(bound(&err), &BoundHit::Deadline { limit_ms: 5000 });
    assert_eq!((err.state, err.step), ("Refund", 3));
    // Stopped at the deadline, not after the handler's hour.
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_counts_the_time_of_earlier_steps() {
    // Each Reply takes 2 s; with a 5 s deadline the third one is cut off
    // 1 s in. The deadline is for the whole run, not per step.
    let runner = Runner::builder()
        .bounds(Bounds::default().deadline(Duration::from_secs(5)))
        .build();
    let t0 = tokio::time::Instant::now();
    let err = runner
        .start(
            &Agent::with(sleeping("Reply", 2)),
            Support::start(),
            looping(10),
        )
        .await
        .unwrap_err();
    assert_eq!(bound(&err), &BoundHit::Deadline { limit_ms: 5000 });
    // Intake 1, Classify 2, Reply 3, Classify 4, Reply 5, Classify 6, Reply 7.
    assert_eq!((err.state, err.step), ("Reply", 7));
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_passed_between_handlers_stops_the_next_step() {
    // Reply takes exactly the deadline: it finishes (a handler is polled
    // before its timer), and the next step is refused before its handler
    // runs.
    let log = Arc::new(EventLog::new());
    let runner = Runner::builder()
        .bounds(Bounds::default().deadline(Duration::from_secs(2)))
        .subscriber(log.clone())
        .build();
    let err = runner
        .start(
            &Agent::with(sleeping("Reply", 2)),
            Support::start(),
            looping(10),
        )
        .await
        .unwrap_err();
    assert_eq!(bound(&err), &BoundHit::Deadline { limit_ms: 2000 });
    assert_eq!((err.state, err.step), ("Classify", 3));
    // Classify was moved to, never entered.
    let entered: Vec<_> = log
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Entered { state, .. } => Some(state),
            _ => None,
        })
        .collect();
    assert_eq!(entered, ["Intake", "Classify", "Reply"]);
}

#[tokio::test(start_paused = true)]
async fn a_slow_handler_hits_the_handler_timeout() {
    let runner = Runner::builder()
        .bounds(
            Bounds::default()
                .handler_timeout(Duration::from_millis(1500))
                .deadline(Duration::from_secs(60)),
        )
        .build();
    let t0 = tokio::time::Instant::now();
    let err = runner
        .start(
            &Agent::with(sleeping("Escalate", 10)),
            Support::start(),
            Ticket::planned([ClassifyNext::Escalate {
                reason: "slow".into(),
            }]),
        )
        .await
        .unwrap_err();
    assert_eq!(
        bound(&err),
        &BoundHit::HandlerTimeout {
            state: "Escalate".into(),
            limit_ms: 1500
        }
    );
    assert_eq!((err.state, err.step), ("Escalate", 3));
    assert_eq!(t0.elapsed(), Duration::from_millis(1500));
}

#[tokio::test(start_paused = true)]
async fn the_earlier_of_timeout_and_deadline_wins() {
    // 4 s timeout per handler, 5 s for the run: the second 3 s Reply is cut
    // by the deadline (at 5 s), not by its own timeout (at 7 s).
    let runner = Runner::builder()
        .bounds(
            Bounds::default()
                .handler_timeout(Duration::from_secs(4))
                .deadline(Duration::from_secs(5)),
        )
        .build();
    let err = runner
        .start(
            &Agent::with(sleeping("Reply", 3)),
            Support::start(),
            looping(10),
        )
        .await
        .unwrap_err();
    assert_eq!(bound(&err), &BoundHit::Deadline { limit_ms: 5000 });
    assert_eq!((err.state, err.step), ("Reply", 5));
}

#[tokio::test(start_paused = true)]
async fn handlers_within_their_timeout_are_not_stopped() {
    let runner = Runner::builder()
        .bounds(
            Bounds::default()
                .handler_timeout(Duration::from_secs(3))
                .deadline(Duration::from_secs(60)),
        )
        .build();
    let out = runner
        .start(
            &Agent::with(sleeping("Reply", 2)),
            Support::start(),
            looping(10),
        )
        .await
        .unwrap_err();
    // Three 2 s replies pass; the 4th visit is what stops the run.
    assert!(matches!(bound(&out), BoundHit::Visits { .. }), "{out}");
}

#[tokio::test(start_paused = true)]
async fn huge_time_limits_neither_panic_nor_stop_the_run() {
    let runner = Runner::builder()
        .bounds(
            Bounds::default()
                .deadline(Duration::MAX)
                .handler_timeout(Duration::MAX),
        )
        .build();
    let err = runner
        .start(
            &Agent::with(sleeping("Reply", 3600)),
            Support::start(),
            looping(10),
        )
        .await
        .unwrap_err();
    assert!(matches!(bound(&err), BoundHit::Visits { .. }), "{err}");
}

// ---------------------------------------------------------------------------
// Tokens and money
// ---------------------------------------------------------------------------

fn per_call(tokens: u64, cost_micros: u64) -> Usage {
    Usage {
        input_tokens: tokens * 3 / 4,
        output_tokens: tokens - tokens * 3 / 4,
        cost_micros,
    }
}

#[tokio::test]
async fn the_token_budget_ends_the_run() {
    let model = Arc::new(
        ScriptedModel::new()
            .with_usage(per_call(100, 0))
            .then(reply("a"))
            .then(reply("b"))
            .then(reply("c")),
    );
    let runner = Runner::builder()
        .shared_model(model.clone())
        .bounds(Bounds::default().max_tokens(150))
        .build();
    let mut t = Ticket::new("help");
    t.reply_loops = true;
    let err = runner
        .start(&Agent::new(), Support::start(), t)
        .await
        .unwrap_err();
    // Classify (100), Reply, Classify (200): the next step is refused.
    assert_eq!(
        bound(&err),
        &BoundHit::Tokens {
            limit: 150,
            used: 200
        }
    );
    assert_eq!((err.state, err.step), ("Reply", 4));
    assert_eq!(model.requests().len(), 2);
}

#[tokio::test]
async fn a_call_that_could_overrun_the_token_budget_is_not_made() {
    let model = Arc::new(
        ScriptedModel::new()
            .with_usage(per_call(100, 0))
            .then(reply("a"))
            .then(reply("b")),
    );
    let runner = Runner::builder()
        .shared_model(model.clone())
        .call_options(CallOptions {
            max_output_tokens: Some(100),
            ..CallOptions::default()
        })
        .bounds(Bounds::default().max_tokens(150))
        .build();
    let mut t = Ticket::new("help");
    t.reply_loops = true;
    let err = runner
        .start(&Agent::new(), Support::start(), t)
        .await
        .unwrap_err();
    // The second Classify would need up to 100 more tokens: refused before
    // the call, at the gate.
    assert_eq!(
        bound(&err),
        &BoundHit::Tokens {
            limit: 150,
            used: 100
        }
    );
    assert_eq!((err.state, err.step), ("Classify", 4));
    assert_eq!(model.requests().len(), 1);
}

#[tokio::test]
async fn the_cost_budget_ends_the_run() {
    let model = Arc::new(
        ScriptedModel::new()
            .with_usage(per_call(10, 500))
            .then(reply("a"))
            .then(reply("b"))
            .then(reply("c")),
    );
    let runner = Runner::builder()
        .shared_model(model.clone())
        .bounds(Bounds::default().max_cost_micros(800))
        .build();
    let mut t = Ticket::new("help");
    t.reply_loops = true;
    let err = runner
        .start(&Agent::new(), Support::start(), t)
        .await
        .unwrap_err();
    assert_eq!(
        bound(&err),
        &BoundHit::Cost {
            limit_micros: 800,
            used_micros: 1000
        }
    );
    assert_eq!((err.state, err.step), ("Reply", 4));
    assert_eq!(model.requests().len(), 2);
}

#[tokio::test]
async fn a_spent_cost_budget_stops_the_gate_before_it_calls() {
    // The first call spends the whole budget; Reply is a plain state so the
    // check before it stops the run: max_tokens only, and Reply does not
    // loop, so the gate check is what a second gate would hit.
    let model = Arc::new(
        ScriptedModel::new()
            .with_usage(per_call(10, 800))
            .then(reply("a")),
    );
    let runner = Runner::builder()
        .shared_model(model.clone())
        .bounds(Bounds::default().max_cost_micros(800))
        .build();
    let err = runner
        .start(&Agent::new(), Support::start(), Ticket::new("help"))
        .await
        .unwrap_err();
    assert_eq!(
        bound(&err),
        &BoundHit::Cost {
            limit_micros: 800,
            used_micros: 800
        }
    );
    assert_eq!((err.state, err.step), ("Reply", 2));
}

// ---------------------------------------------------------------------------
// Wrap-up (`on_exhausted`)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_visit_bound_moves_the_run_to_its_wrap_up_state() {
    let log = Arc::new(EventLog::new());
    let runner = Runner::builder().subscriber(log.clone()).build();
    let out = runner
        .start(&Worker::default(), Guarded::start(), Default::default())
        .await
        .unwrap()
        .finished()
        .unwrap();
    let hit = BoundHit::Visits {
        state: "Work".into(),
        limit: 3,
    };
    assert_eq!(out.bound_hit.as_ref(), Some(&hit));
    assert_eq!(out.terminal, Guarded::Finish);
    assert_eq!(
        out.path,
        [
            "Start", "Think", "Work", "Think", "Work", "Think", "Work", "Think", "Work", "WrapUp",
            "Finish"
        ]
    );
    assert_eq!(out.steps, 9);
    assert_eq!(out.decisions, 4);
    assert_eq!(out.context.work, [1, 2, 3]);
    assert_eq!(out.context.wrap_payload.as_ref(), Some(&hit));
    assert_eq!(out.context.wrap_seen.as_ref(), Some(&hit));
    assert_eq!(out.context.entries.last().unwrap(), "WrapUp@9#1");

    let kinds: Vec<_> = log.events().into_iter().map(|e| e.kind).collect();
    let at = kinds
        .iter()
        .position(|k| matches!(k, EventKind::BoundHit { .. }))
        .unwrap();
    assert_eq!(
        kinds[at],
        EventKind::BoundHit {
            hit: hit.clone(),
            wrap_up: Some("WrapUp".into())
        }
    );
    assert_eq!(
        kinds[at + 1],
        EventKind::Transition {
            from: "Work".into(),
            to: "WrapUp".into(),
            step: 8,
            via: guiderail_runtime::DecidedVia::WrapUp,
        }
    );
    assert_eq!(
        kinds[at + 2],
        EventKind::Entered {
            state: "WrapUp".into(),
            step: 9,
            payload: None,
        }
    );
    assert!(matches!(
        kinds.last().unwrap(),
        EventKind::Finished { state, steps: 9, .. } if state == "Finish"
    ));
    assert!(!kinds.iter().any(|k| matches!(k, EventKind::Failed { .. })));
}

#[tokio::test]
async fn a_step_bound_moves_the_run_to_its_wrap_up_state() {
    let runner = Runner::builder()
        .bounds(Bounds::default().max_steps(3))
        .build();
    let out = runner
        .start(&Worker::default(), Guarded::start(), Default::default())
        .await
        .unwrap()
        .finished()
        .unwrap();
    let hit = BoundHit::Steps { limit: 3 };
    assert_eq!(out.bound_hit.as_ref(), Some(&hit));
    assert_eq!(
        out.path,
        ["Start", "Think", "Work", "Think", "WrapUp", "Finish"]
    );
    assert_eq!(out.steps, 4);
    assert_eq!(out.context.wrap_seen.as_ref(), Some(&hit));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_moves_the_run_to_its_wrap_up_state() {
    let runner = Runner::builder()
        .bounds(Bounds::default().deadline(Duration::from_secs(3)))
        .build();
    let worker = Worker {
        // WrapUp is slow too: the deadline no longer applies there.
        faults: Faults {
            sleep: vec![
                ("Work", Duration::from_secs(2)),
                ("WrapUp", Duration::from_secs(10)),
            ],
            ..Faults::default()
        },
        ..Worker::default()
    };
    let t0 = tokio::time::Instant::now();
    let out = runner
        .start(&worker, Guarded::start(), Default::default())
        .await
        .unwrap()
        .finished()
        .unwrap();
    let hit = BoundHit::Deadline { limit_ms: 3000 };
    assert_eq!(out.bound_hit.as_ref(), Some(&hit));
    assert_eq!(
        out.path,
        [
            "Start", "Think", "Work", "Think", "Work", "WrapUp", "Finish"
        ]
    );
    // Work 1 finished; Work 2 was cut off, so only one was recorded.
    assert_eq!(out.context.work, [1]);
    assert_eq!(out.context.wrap_payload.as_ref(), Some(&hit));
    assert_eq!(t0.elapsed(), Duration::from_secs(13));
}

#[tokio::test]
async fn a_token_bound_at_a_gate_moves_the_run_to_its_wrap_up_state() {
    let model = Arc::new(
        ScriptedModel::new()
            .with_usage(per_call(100, 0))
            .then(ThinkNext::Work { n: 10 })
            .then(ThinkNext::Work { n: 20 }),
    );
    let runner = Runner::builder()
        .shared_model(model.clone())
        .call_options(CallOptions {
            max_output_tokens: Some(100),
            ..CallOptions::default()
        })
        .bounds(Bounds::default().max_tokens(250))
        .build();
    let worker = Worker {
        ask_model: true,
        ..Worker::default()
    };
    let out = runner
        .start(&worker, Guarded::start(), Default::default())
        .await
        .unwrap()
        .finished()
        .unwrap();
    // Two calls (200 tokens); the third could need 100 more: refused at the
    // gate, and the run wraps up instead of failing.
    let hit = BoundHit::Tokens {
        limit: 250,
        used: 200,
    };
    assert_eq!(out.bound_hit.as_ref(), Some(&hit));
    assert_eq!(
        out.path,
        [
            "Start", "Think", "Work", "Think", "Work", "Think", "WrapUp", "Finish"
        ]
    );
    assert_eq!(out.context.work, [10, 20]);
    assert_eq!(out.decisions, 2);
    assert_eq!(out.usage.total_tokens(), 200);
    assert_eq!(model.requests().len(), 2);
}

#[tokio::test]
async fn a_second_bound_during_wrap_up_ends_the_run() {
    let log = Arc::new(EventLog::new());
    let runner = Runner::builder().subscriber(log.clone()).build();
    let worker = Worker {
        wrap: WrapMode::Loop,
        ..Worker::default()
    };
    let err = runner
        .start(&worker, Guarded::start(), Default::default())
        .await
        .unwrap_err();
    // The visit bound hit at step 8; wrap-up may take one step per state
    // (5) more: WrapUp runs at steps 9..=13 and the 6th entry is refused.
    assert_eq!(bound(&err), &BoundHit::Steps { limit: 13 });
    assert_eq!((err.state, err.step), ("WrapUp", 13));
    let hits: Vec<_> = log
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::BoundHit { hit, wrap_up } => Some((hit.name(), wrap_up)),
            _ => None,
        })
        .collect();
    assert_eq!(hits, [("visits", Some("WrapUp".into())), ("steps", None)]);
    assert!(matches!(
        log.events().last().unwrap().kind,
        EventKind::Failed { step: 13, .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_handler_timeout_during_wrap_up_ends_the_run() {
    let runner = Runner::builder()
        .bounds(Bounds::default().handler_timeout(Duration::from_secs(1)))
        .build();
    let worker = Worker {
        faults: Faults {
            sleep: vec![("WrapUp", Duration::from_secs(5))],
            ..Faults::default()
        },
        ..Worker::default()
    };
    let err = runner
        .start(&worker, Guarded::start(), Default::default())
        .await
        .unwrap_err();
    assert_eq!(
        bound(&err),
        &BoundHit::HandlerTimeout {
            state: "WrapUp".into(),
            limit_ms: 1000
        }
    );
    assert_eq!((err.state, err.step), ("WrapUp", 9));
}

#[tokio::test]
async fn a_spent_token_budget_wraps_up_before_the_next_step() {
    // Think spends the whole budget; the check before the next step (Work,
    // a plain state) moves the run to WrapUp, and the model is not asked
    // again.
    let model = Arc::new(
        ScriptedModel::new()
            .with_usage(per_call(100, 0))
            .then(ThinkNext::Work { n: 1 })
            .then(ThinkNext::Finish),
    );
    let runner = Runner::builder()
        .shared_model(model.clone())
        .bounds(Bounds::default().max_tokens(100))
        .build();
    let worker = Worker {
        ask_model: true,
        ..Worker::default()
    };
    let out = runner
        .start(&worker, Guarded::start(), Default::default())
        .await
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(
        out.bound_hit,
        Some(BoundHit::Tokens {
            limit: 100,
            used: 100
        })
    );
    // Work was moved to, but not entered.
    assert_eq!(out.path, ["Start", "Think", "Work", "WrapUp", "Finish"]);
    assert!(out.context.work.is_empty());
    assert_eq!(out.steps, 3);
    assert_eq!(model.requests().len(), 1);
}

#[tokio::test]
async fn without_a_bound_the_wrap_up_state_is_not_used() {
    let model = ScriptedModel::new()
        .then(ThinkNext::Work { n: 5 })
        .then(ThinkNext::Finish);
    let runner = Runner::builder().model(model).build();
    let worker = Worker {
        ask_model: true,
        ..Worker::default()
    };
    let out = runner
        .start(&worker, Guarded::start(), Default::default())
        .await
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(out.bound_hit, None);
    assert_eq!(out.path, ["Start", "Think", "Work", "Think", "Finish"]);
    assert_eq!(out.context.wrap_seen, None);
}

#[tokio::test]
async fn a_model_error_is_not_a_bound() {
    // Only bounds wrap up: a failing gate still fails the run.
    let runner = Runner::builder().model(ScriptedModel::new()).build();
    let worker = Worker {
        ask_model: true,
        ..Worker::default()
    };
    let err = runner
        .start(&worker, Guarded::start(), Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err.kind, RunErrorKind::Gate(GateError::Model { gate, .. }) if gate == "Think"),
        "{err:?}"
    );
    assert_eq!((err.state, err.step), ("Think", 2));
}

#[tokio::test]
async fn absurd_usage_from_a_model_is_a_bound_not_an_overflow() {
    // A provider reporting nonsense token counts must not overflow the
    // accounting (a panic in debug builds, a wrapped-around budget check in
    // release): the run ends with the token bound.
    for max_output in [None, Some(100)] {
        let model = ScriptedModel::new()
            .with_usage(Usage {
                input_tokens: u64::MAX - 1,
                output_tokens: 10,
                cost_micros: u64::MAX,
            })
            .then(reply("a"))
            .then(reply("b"));
        let runner = Runner::builder()
            .model(model)
            .call_options(CallOptions {
                max_output_tokens: max_output,
                ..CallOptions::default()
            })
            .bounds(Bounds::default().max_tokens(1000).max_cost_micros(1000))
            .build();
        let mut t = Ticket::new("help");
        t.reply_loops = true;
        let err = runner
            .start(&Agent::new(), Support::start(), t)
            .await
            .unwrap_err();
        assert_eq!(
            bound(&err),
            &BoundHit::Tokens {
                limit: 1000,
                used: u64::MAX
            },
            "{max_output:?}"
        );
        assert_eq!((err.state, err.step), ("Reply", 2));
    }
}
