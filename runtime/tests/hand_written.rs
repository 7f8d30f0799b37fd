//! The runner driving a machine written by hand (no macro; see
//! `machines/mod.rs`): happy paths, waits and signals, handler errors and
//! panics, the event stream, and many concurrent runs.
#![allow(missing_docs)]

mod machines;

use std::sync::Arc;
use std::time::Duration;

use guiderail_runtime::llm::Message;
use guiderail_runtime::{
    BoundHit, Bounds, DecidedBy, DecidedVia, Ended, EventKind, EventLog, GateError, Machine,
    RunErrorKind, Runner, ScriptedModel, SignalError, Usage,
};
use machines::support::{AwaitApprovalNext, AwaitHandoffNext, ClassifyNext};
use machines::{Agent, Broken, Faults, Guarded, Refund, Support, Ticket, Worker};

fn escalate(reason: &str) -> ClassifyNext {
    ClassifyNext::Escalate {
        reason: reason.into(),
    }
}

fn reply(draft: &str) -> ClassifyNext {
    ClassifyNext::Reply {
        draft: draft.into(),
    }
}

fn refund() -> ClassifyNext {
    ClassifyNext::Refund(Refund {
        order_id: 42,
        amount_cents: 1999,
    })
}

/// The event kinds of a log, as short strings, so a sequence can be
/// compared in one `assert_eq!`.
fn kinds(log: &EventLog) -> Vec<String> {
    log.events()
        .iter()
        // Timings: checked on their own (`handlers_are_timed`).
        .filter(|e| !matches!(e.kind, EventKind::HandlerFinished { .. }))
        .map(|e| match &e.kind {
            EventKind::Started { state, .. } => format!("Started {state}"),
            EventKind::Entered { state, step, .. } => format!("Entered {state} {step}"),
            EventKind::Decision(r) => format!("Decision {}->{}", r.gate, r.chosen),
            EventKind::Transition {
                from,
                to,
                step,
                via,
                ..
            } => format!("Transition {from}->{to} {step} {via:?}"),
            EventKind::BoundHit { hit, wrap_up } => format!("BoundHit {} {wrap_up:?}", hit.name()),
            EventKind::Waiting { state } => format!("Waiting {state}"),
            EventKind::Finished { state, steps, .. } => format!("Finished {state} {steps}"),
            EventKind::Failed { state, step, .. } => format!("Failed {state} {step}"),
            EventKind::CheckpointWritten { checkpoint } => format!("Checkpoint {}", checkpoint.seq),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn graph_and_start_are_what_the_macro_would_emit() {
    let g = Support::graph();
    assert_eq!(g.name, "Support");
    assert_eq!(g.states.len(), 8);
    assert_eq!(g.states[g.initial].name, "Intake");
    assert_eq!(Support::start().state(), &Support::Intake);
    for (i, s) in g.states.iter().enumerate() {
        assert_eq!(g.index_of(s.name), Some(i));
    }
    // Every move a move enum can make is a declared edge.
    let edge = |from: &str, to: &str| {
        let (f, t) = (g.index_of(from).unwrap(), g.index_of(to).unwrap());
        g.moves_from(f).any(|e| e.to == t)
    };
    for (from, to) in [
        ("Intake", "Classify"),
        ("Classify", "Refund"),
        ("Classify", "Escalate"),
        ("Classify", "Reply"),
        ("Refund", "AwaitApproval"),
        ("Escalate", "Done"),
        ("Escalate", "AwaitHandoff"),
        ("Reply", "Classify"),
        ("Reply", "Done"),
        ("AwaitApproval", "Done"),
        ("AwaitApproval", "Escalate"),
        ("AwaitHandoff", "Done"),
    ] {
        assert!(edge(from, to), "{from} -> {to}");
    }
    assert_eq!(g.edges.len(), 12);
    let gate = <ClassifyNext as guiderail_runtime::GateMoves>::spec();
    assert_eq!(gate.move_names(), "`Refund`, `Escalate`, `Reply`");
}

// ---------------------------------------------------------------------------
// Happy paths
// ---------------------------------------------------------------------------

#[tokio::test]
async fn happy_path_with_overrides() {
    let runner = Runner::new();
    let ticket = Ticket::planned([escalate("legal threat")]);
    let ended = runner
        .start(&Agent::new(), Support::start(), ticket)
        .await
        .unwrap();
    let out = ended.finished().expect("finished");
    assert_eq!(out.path, ["Intake", "Classify", "Escalate", "Done"]);
    assert_eq!(out.path.indices(), &[0, 1, 3, 7]);
    assert_eq!(
        out.path.to_string(),
        "Intake -> Classify -> Escalate -> Done"
    );
    assert_eq!(out.terminal, Support::Done);
    assert_eq!(out.steps, 3);
    assert_eq!(out.decisions, 1);
    assert_eq!(out.usage, Usage::default());
    assert_eq!(out.bound_hit, None);
    assert_eq!(out.context.reason.as_deref(), Some("legal threat"));
    assert_eq!(
        out.context.log,
        ["Intake@1#1", "Classify@2#1", "Escalate@3#1"]
    );
    assert!(out.context.plan.is_empty());
}

#[tokio::test]
async fn happy_path_decided_by_the_model() {
    let usage = Usage {
        input_tokens: 120,
        output_tokens: 30,
        cost_micros: 45,
    };
    let model = Arc::new(
        ScriptedModel::new()
            .with_usage(usage)
            .then(reply("which order?"))
            .then(reply("and the amount?"))
            .then(escalate("needs a human")),
    );
    let runner = Runner::builder().shared_model(model.clone()).build();
    let mut ticket = Ticket::new("my order arrived broken");
    ticket.reply_loops = true;
    let out = runner
        .start(&Agent::new(), Support::start(), ticket)
        .await
        .unwrap()
        .finished()
        .expect("finished");
    assert_eq!(
        out.path,
        [
            "Intake", "Classify", "Reply", "Classify", "Reply", "Classify", "Escalate", "Done"
        ]
    );
    assert_eq!(out.steps, 7);
    assert_eq!(out.decisions, 3);
    assert_eq!(
        out.usage,
        Usage {
            input_tokens: 360,
            output_tokens: 90,
            cost_micros: 135
        }
    );
    assert_eq!(out.context.drafts, ["which order?", "and the amount?"]);
    assert_eq!(
        out.context.log,
        [
            "Intake@1#1",
            "Classify@2#1",
            "Reply@3#1",
            "Classify@4#2",
            "Reply@5#2",
            "Classify@6#3",
            "Escalate@7#1"
        ]
    );
    let requests = model.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(model.remaining(), 0);
    for r in &requests {
        assert_eq!(r.gate.gate, "Classify");
        assert!(
            matches!(&r.messages[0], Message::System { content } if content.contains("`Classify`"))
        );
        assert_eq!(
            r.messages[1],
            Message::User {
                content: "Ticket: my order arrived broken\nDecide what to do next.".into()
            }
        );
    }
}

#[tokio::test]
async fn handlers_are_timed() {
    let model = ScriptedModel::new().then(escalate("needs a human"));
    let log = Arc::new(EventLog::new());
    let runner = Runner::builder()
        .model(model)
        .subscriber(log.clone())
        .build();
    runner
        .start(&Agent::new(), Support::start(), Ticket::new("t"))
        .await
        .unwrap()
        .finished()
        .expect("finished");
    let events = log.events();
    // One timing per handler that ran, right after it entered its state,
    // with the step it ran at.
    let timed: Vec<(String, u64)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::HandlerFinished { state, step, .. } => Some((state.to_string(), *step)),
            _ => None,
        })
        .collect();
    assert_eq!(
        timed,
        [
            ("Intake".to_owned(), 1),
            ("Classify".to_owned(), 2),
            ("Escalate".to_owned(), 3)
        ]
    );
    // Each timing follows its state's entry (a gate's decision, made inside
    // the handler, comes between) and comes before the move it returned.
    let mut entered = None;
    for (i, e) in events.iter().enumerate() {
        match &e.kind {
            EventKind::Entered { state, .. } => entered = Some(state.clone()),
            EventKind::HandlerFinished { state, .. } => {
                assert_eq!(entered.as_ref(), Some(state), "{:?}", e.kind);
                assert!(
                    matches!(&events[i + 1].kind, EventKind::Transition { from, .. } if from == state),
                    "{:?} after {:?}",
                    events[i + 1].kind,
                    e.kind
                );
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------
// Waits
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_wait_state_suspends_and_its_signal_resumes() {
    let runner = Runner::new();
    let agent = Agent::new();
    let ended = runner
        .start(&agent, Support::start(), Ticket::planned([refund()]))
        .await
        .unwrap();
    let suspended = match ended {
        Ended::Waiting(s) => s,
        Ended::Finished(o) => panic!("finished early: {:?}", o.path),
    };
    assert_eq!(suspended.state_name(), "AwaitApproval");
    assert_eq!(suspended.state(), &Support::AwaitApproval);
    assert_eq!(suspended.steps(), 4);
    assert_eq!(
        suspended.path(),
        ["Intake", "Classify", "Refund", "AwaitApproval"]
    );
    assert_eq!(
        suspended.context().refund,
        Some(Refund {
            order_id: 42,
            amount_cents: 1999
        })
    );
    let run_id = suspended.run_id();

    let out = runner
        .signal(&agent, suspended, AwaitApprovalNext::Done)
        .await
        .unwrap()
        .finished()
        .expect("finished");
    assert_eq!(out.run_id, run_id);
    assert_eq!(
        out.path,
        ["Intake", "Classify", "Refund", "AwaitApproval", "Done"]
    );
    assert_eq!(out.terminal, Support::Done);
    assert_eq!(out.steps, 4);
    assert_eq!(out.decisions, 1);
}

#[tokio::test]
async fn a_signal_for_another_wait_state_hands_the_run_back_unchanged() {
    let runner = Runner::new();
    let agent = Agent::new();
    let suspended = runner
        .start(&agent, Support::start(), Ticket::planned([refund()]))
        .await
        .unwrap()
        .waiting()
        .expect("waiting");
    let (run_id, steps, path) = (suspended.run_id(), suspended.steps(), suspended.path());

    let err = runner
        .signal(&agent, suspended, AwaitHandoffNext::Done)
        .await
        .unwrap_err();
    let text = err.to_string();
    let SignalError::WrongState {
        expected,
        actual,
        suspended,
    } = err
    else {
        panic!("expected WrongState, got {err:?}");
    };
    assert_eq!(expected, "AwaitHandoff");
    assert_eq!(actual, "AwaitApproval");
    assert!(text.contains("waits in `AwaitApproval`"), "{text}");
    assert_eq!(suspended.run_id(), run_id);
    assert_eq!(suspended.steps(), steps);
    assert_eq!(suspended.path(), path);
    assert_eq!(suspended.state(), &Support::AwaitApproval);
    assert!(suspended.context().refund.is_some());

    // The right signal still works, and leads through a second wait.
    let waiting = runner
        .signal(
            &agent,
            suspended,
            AwaitApprovalNext::Escalate {
                reason: "refund rejected".into(),
            },
        )
        .await
        .unwrap();
    // `handoff` is off: Escalate goes straight to Done.
    let out = waiting.finished().expect("finished");
    assert_eq!(
        out.path,
        [
            "Intake",
            "Classify",
            "Refund",
            "AwaitApproval",
            "Escalate",
            "Done"
        ]
    );
    assert_eq!(out.steps, 5);
    assert_eq!(out.context.reason.as_deref(), Some("refund rejected"));
    assert_eq!(out.context.log.last().unwrap(), "Escalate@5#1");
}

#[tokio::test]
async fn two_waits_in_one_run() {
    let runner = Runner::new();
    let agent = Agent::new();
    let mut ticket = Ticket::planned([escalate("angry")]);
    ticket.handoff = true;
    let s = runner
        .start(&agent, Support::start(), ticket)
        .await
        .unwrap()
        .waiting()
        .expect("waits for the handoff");
    assert_eq!(s.state_name(), "AwaitHandoff");
    // The approval signal is refused here, the handoff signal accepted.
    let s = match runner.signal(&agent, s, AwaitApprovalNext::Done).await {
        Err(SignalError::WrongState {
            expected,
            actual,
            suspended,
        }) => {
            assert_eq!((expected, actual), ("AwaitApproval", "AwaitHandoff"));
            suspended
        }
        other => panic!("expected WrongState, got {other:?}"),
    };
    let out = runner
        .signal(&agent, s, AwaitHandoffNext::Done)
        .await
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(
        out.path,
        ["Intake", "Classify", "Escalate", "AwaitHandoff", "Done"]
    );
    assert_eq!(out.steps, 4);
}

#[tokio::test]
async fn a_resumed_run_that_fails_reports_it_through_signal_error() {
    let runner = Runner::new();
    let agent = Agent::with(Faults {
        fail_in: Some("Escalate"),
        ..Faults::default()
    });
    let s = runner
        .start(&agent, Support::start(), Ticket::planned([refund()]))
        .await
        .unwrap()
        .waiting()
        .unwrap();
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
    let SignalError::Run(err) = err else {
        panic!("expected Run, got {err:?}");
    };
    assert_eq!((err.state, err.step), ("Escalate", 5));
    assert!(matches!(err.kind, RunErrorKind::Handler(_)));
}

// ---------------------------------------------------------------------------
// Handler errors and panics
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_handler_error_is_typed_with_state_and_step() {
    let runner = Runner::new();
    let agent = Agent::with(Faults {
        fail_in: Some("Refund"),
        ..Faults::default()
    });
    let err = runner
        .start(&agent, Support::start(), Ticket::planned([refund()]))
        .await
        .unwrap_err();
    assert_eq!(err.machine, "Support");
    assert_eq!(err.state, "Refund");
    assert_eq!(err.step, 3);
    assert_eq!(err.bound(), None);
    let RunErrorKind::Handler(e) = &err.kind else {
        panic!("expected Handler, got {:?}", err.kind);
    };
    assert_eq!(
        e.downcast_ref::<Broken>(),
        Some(&Broken { state: "Refund" })
    );
    assert!(
        err.to_string()
            .contains("of `Support` failed in state `Refund` at step 3: handler failed: the handler of `Refund` broke on purpose"),
        "{err}"
    );
}

#[tokio::test]
async fn a_panicking_handler_ends_the_run_and_the_runner_stays_usable() {
    let log = Arc::new(EventLog::new());
    let runner = Runner::builder().subscriber(log.clone()).build();
    let agent = Agent::with(Faults {
        panic_in: Some("Reply"),
        ..Faults::default()
    });
    let err = runner
        .start(&agent, Support::start(), Ticket::planned([reply("hi")]))
        .await
        .unwrap_err();
    let RunErrorKind::Panicked(msg) = &err.kind else {
        panic!("expected Panicked, got {:?}", err.kind);
    };
    assert!(
        msg.contains("the handler of `Reply` panicked on purpose"),
        "{msg}"
    );
    assert_eq!((err.state, err.step), ("Reply", 3));
    assert_eq!(
        kinds(&log).last().map(String::as_str),
        Some("Failed Reply 3")
    );

    // The same runner, the same handlers: other runs are fine.
    for _ in 0..3 {
        let out = runner
            .start(&agent, Support::start(), Ticket::planned([escalate("x")]))
            .await
            .unwrap()
            .finished()
            .unwrap();
        assert_eq!(out.path, ["Intake", "Classify", "Escalate", "Done"]);
    }
    // And on a spawned task, too.
    let err = runner
        .spawn(
            Arc::new(agent.clone()),
            Support::start(),
            Ticket::planned([reply("hi")]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err.kind, RunErrorKind::Panicked(_)));
    assert_eq!((err.state, err.step), ("Reply", 3));
}

#[tokio::test]
async fn a_gate_without_a_model_fails_with_no_model() {
    let runner = Runner::new();
    let err = runner
        .start(&Agent::new(), Support::start(), Ticket::new("hello"))
        .await
        .unwrap_err();
    assert_eq!((err.state, err.step), ("Classify", 2));
    match &err.kind {
        RunErrorKind::Gate(GateError::NoModel { gate }) => assert_eq!(gate, "Classify"),
        other => panic!("expected NoModel, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

#[tokio::test]
async fn events_of_a_run_with_a_wait() {
    let log = Arc::new(EventLog::new());
    let model = ScriptedModel::new().then(refund());
    let runner = Runner::builder()
        .model(model)
        .subscriber(log.clone())
        .build();
    let agent = Agent::new();
    let s = runner
        .start(&agent, Support::start(), Ticket::new("refund please"))
        .await
        .unwrap()
        .waiting()
        .unwrap();
    assert_eq!(
        kinds(&log),
        [
            "Started Intake",
            "Entered Intake 1",
            "Transition Intake->Classify 1 Code",
            "Entered Classify 2",
            "Decision Classify->Refund",
            "Transition Classify->Refund 2 Gate",
            "Entered Refund 3",
            "Transition Refund->AwaitApproval 3 Code",
            "Entered AwaitApproval 4",
            "Waiting AwaitApproval",
        ]
    );
    runner
        .signal(&agent, s, AwaitApprovalNext::Done)
        .await
        .unwrap()
        .finished()
        .unwrap();
    let all = kinds(&log);
    assert_eq!(
        all[10..],
        [
            "Transition AwaitApproval->Done 4 Signal",
            "Entered Done 4",
            "Finished Done 4",
        ]
    );
    let events = log.events();
    let run_id = events[0].run_id;
    assert!(
        events
            .iter()
            .all(|e| e.run_id == run_id && e.machine == "Support")
    );
    let decision = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Decision(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        decision.decided_by,
        DecidedBy::Model {
            model: "scripted".into()
        }
    );
    assert_eq!(
        decision.payload,
        serde_json::json!({ "order_id": 42, "amount_cents": 1999 })
    );
    assert_eq!(decision.attempts.len(), 1);
    // Events are serde values.
    let json = serde_json::to_string(&events).unwrap();
    let back: Vec<guiderail_runtime::Event> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, events);
}

#[tokio::test]
async fn events_of_a_run_ended_by_a_bound() {
    let log = Arc::new(EventLog::new());
    let runner = Runner::builder()
        .bounds(Bounds::default().max_steps(2))
        .subscriber(log.clone())
        .build();
    let err = runner
        .start(
            &Agent::new(),
            Support::start(),
            Ticket::planned([escalate("x")]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.bound(), Some(&BoundHit::Steps { limit: 2 }));
    assert_eq!(
        kinds(&log),
        [
            "Started Intake",
            "Entered Intake 1",
            "Transition Intake->Classify 1 Code",
            "Entered Classify 2",
            "Decision Classify->Escalate",
            "Transition Classify->Escalate 2 Gate",
            "BoundHit steps None",
            "Failed Escalate 2",
        ]
    );
    let last = log.events().pop().unwrap();
    let EventKind::Failed { error, .. } = last.kind else {
        unreachable!()
    };
    assert_eq!(error, "bound hit: step limit of 2 reached");
}

#[tokio::test]
async fn events_of_a_run_that_wraps_up() {
    let log = Arc::new(EventLog::new());
    let runner = Runner::builder()
        .bounds(Bounds::default().max_steps(3))
        .subscriber(log.clone())
        .build();
    let out = runner
        .start(&Worker::default(), Guarded::start(), Default::default())
        .await
        .unwrap()
        .finished()
        .unwrap();
    assert_eq!(out.bound_hit, Some(BoundHit::Steps { limit: 3 }));
    assert_eq!(
        kinds(&log),
        [
            "Started Start",
            "Entered Start 1",
            "Transition Start->Think 1 Code",
            "Entered Think 2",
            "Decision Think->Work",
            "Transition Think->Work 2 Gate",
            "Entered Work 3",
            "Transition Work->Think 3 Code",
            "BoundHit steps Some(\"WrapUp\")",
            "Transition Think->WrapUp 3 WrapUp",
            "Entered WrapUp 4",
            "Transition WrapUp->Finish 4 Code",
            "Entered Finish 4",
            "Finished Finish 4",
        ]
    );
}

#[tokio::test]
async fn an_override_is_recorded_as_such() {
    let log = Arc::new(EventLog::new());
    let runner = Runner::builder().subscriber(log.clone()).build();
    runner
        .start(
            &Agent::new(),
            Support::start(),
            Ticket::planned([escalate("vip")]),
        )
        .await
        .unwrap();
    let records: Vec<_> = log
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Decision(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(
        r.decided_by,
        DecidedBy::Override {
            reason: "planned by the test".into()
        }
    );
    assert_eq!(
        (r.gate.as_str(), r.chosen.as_str()),
        ("Classify", "Escalate")
    );
    assert_eq!(r.payload, serde_json::json!({ "reason": "vip" }));
    assert!(r.messages.is_empty() && r.attempts.is_empty());
    // A gate transition, whoever decided.
    assert!(kinds(&log).contains(&"Transition Classify->Escalate 2 Gate".to_owned()));
}

#[tokio::test]
async fn events_of_a_failed_run() {
    let log = Arc::new(EventLog::new());
    let runner = Runner::builder().subscriber(log.clone()).build();
    let agent = Agent::with(Faults {
        fail_in: Some("Escalate"),
        ..Faults::default()
    });
    runner
        .start(&agent, Support::start(), Ticket::planned([escalate("x")]))
        .await
        .unwrap_err();
    assert_eq!(
        kinds(&log),
        [
            "Started Intake",
            "Entered Intake 1",
            "Transition Intake->Classify 1 Code",
            "Entered Classify 2",
            "Decision Classify->Escalate",
            "Transition Classify->Escalate 2 Gate",
            "Entered Escalate 3",
            "Failed Escalate 3",
        ]
    );
    let last = log.events().pop().unwrap();
    let EventKind::Failed { error, .. } = last.kind else {
        unreachable!()
    };
    assert_eq!(
        error,
        "handler failed: the handler of `Escalate` broke on purpose"
    );
}

#[tokio::test]
async fn no_events_without_subscribers_and_a_closure_subscriber_works() {
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    let runner = Runner::builder()
        .subscriber(Arc::new(move |_: &guiderail_runtime::Event| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }))
        .build();
    runner
        .start(
            &Agent::new(),
            Support::start(),
            Ticket::planned([escalate("x")]),
        )
        .await
        .unwrap();
    // Started, 4 × Entered, 3 × HandlerFinished, Decision, 3 × Transition,
    // Finished.
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 13);
}

// ---------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_spawned_runs_all_finish_with_their_own_paths() {
    let log = Arc::new(EventLog::new());
    let runner = Runner::builder().subscriber(log.clone()).build();
    let agent = Arc::new(Agent::with(Faults {
        yield_each: true,
        ..Faults::default()
    }));
    let mut handles = Vec::new();
    for i in 0..1000usize {
        let mut ticket = match i % 4 {
            0 => Ticket::planned([escalate(&format!("r{i}"))]),
            1 => Ticket::planned([reply("a"), reply("b"), escalate(&format!("r{i}"))]),
            2 => Ticket::planned([reply(&format!("d{i}"))]),
            _ => Ticket::planned([refund()]),
        };
        ticket.reply_loops = i % 4 == 1;
        ticket.text = i.to_string();
        handles.push((i, runner.spawn(agent.clone(), Support::start(), ticket)));
    }
    let mut waiting = Vec::new();
    for (i, h) in handles {
        let run_id = h.run_id();
        let ended = h.await.unwrap();
        match (i % 4, ended) {
            (0, Ended::Finished(o)) => {
                assert_eq!(o.path, ["Intake", "Classify", "Escalate", "Done"]);
                assert_eq!(o.context.reason, Some(format!("r{i}")));
                assert_eq!(o.run_id, run_id);
            }
            (1, Ended::Finished(o)) => {
                assert_eq!(
                    o.path,
                    [
                        "Intake", "Classify", "Reply", "Classify", "Reply", "Classify", "Escalate",
                        "Done"
                    ]
                );
                assert_eq!(o.context.reason, Some(format!("r{i}")));
                assert_eq!(o.decisions, 3);
            }
            (2, Ended::Finished(o)) => {
                assert_eq!(o.path, ["Intake", "Classify", "Reply", "Done"]);
                assert_eq!(o.context.drafts, [format!("d{i}")]);
            }
            (3, Ended::Waiting(s)) => {
                assert_eq!(s.context().text, i.to_string());
                waiting.push(s);
            }
            (_, other) => panic!("run {i} ended wrongly: {other:?}"),
        }
    }
    assert_eq!(waiting.len(), 250);
    // Resume the waiting ones concurrently.
    let mut resumed = Vec::new();
    for s in waiting {
        let runner = runner.clone();
        let agent = agent.clone();
        resumed.push(tokio::spawn(async move {
            runner.signal(&*agent, s, AwaitApprovalNext::Done).await
        }));
    }
    for r in resumed {
        let o = r.await.unwrap().unwrap().finished().unwrap();
        assert_eq!(
            o.path,
            ["Intake", "Classify", "Refund", "AwaitApproval", "Done"]
        );
    }
    // Every run's events are its own and complete.
    let events = log.events();
    let finished = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Finished { .. }))
        .count();
    assert_eq!(finished, 1000);
    let mut ids: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Started { .. }))
        .map(|e| e.run_id)
        .collect();
    ids.sort_by_key(|id| id.to_string());
    ids.dedup();
    assert_eq!(ids.len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_run_is_cancelled() {
    let faults = Faults {
        hang_in: Some("Refund"),
        ..Faults::default()
    };
    let hung = faults.hung.clone();
    let runner = Runner::new();
    let handle = runner.spawn(
        Arc::new(Agent::with(faults)),
        Support::start(),
        Ticket::planned([refund()]),
    );
    let run_id = handle.run_id();
    tokio::time::timeout(Duration::from_secs(30), hung.notified())
        .await
        .expect("the run reaches Refund");
    handle.abort();
    let err = handle.await.unwrap_err();
    assert!(matches!(err.kind, RunErrorKind::Cancelled), "{err:?}");
    assert_eq!(err.run_id, run_id);
    assert_eq!(err.machine, "Support");

    // Aborting a finished run changes nothing.
    let handle = runner.spawn(
        Arc::new(Agent::new()),
        Support::start(),
        Ticket::planned([escalate("x")]),
    );
    let out = handle.await.unwrap().finished().unwrap();
    assert_eq!(out.terminal, Support::Done);
}

#[tokio::test]
async fn transitions_are_only_declared_edges() {
    // Every transition a run takes, whoever decides, is an edge of the graph.
    let log = Arc::new(EventLog::new());
    let runner = Runner::builder().subscriber(log.clone()).build();
    let agent = Agent::new();
    let mut t = Ticket::planned([reply("a"), refund()]);
    t.reply_loops = true;
    let s = runner
        .start(&agent, Support::start(), t)
        .await
        .unwrap()
        .waiting()
        .unwrap();
    let mut t2 = Ticket::planned([escalate("b")]);
    t2.handoff = true;
    let s2 = runner
        .start(&agent, Support::start(), t2)
        .await
        .unwrap()
        .waiting()
        .unwrap();
    runner
        .signal(
            &agent,
            s,
            AwaitApprovalNext::Escalate { reason: "c".into() },
        )
        .await
        .unwrap();
    runner
        .signal(&agent, s2, AwaitHandoffNext::Done)
        .await
        .unwrap();
    let g = Support::graph();
    let mut n = 0;
    for e in log.events() {
        if let EventKind::Transition { from, to, via, .. } = e.kind {
            let (f, t) = (g.index_of(&from).unwrap(), g.index_of(&to).unwrap());
            let edge = g
                .moves_from(f)
                .find(|e| e.to == t)
                .unwrap_or_else(|| panic!("{from} -> {to} is not an edge"));
            let expected = match edge.kind {
                guiderail_runtime::StateKind::Plain => DecidedVia::Code,
                guiderail_runtime::StateKind::Gate => DecidedVia::Gate,
                guiderail_runtime::StateKind::Wait => DecidedVia::Signal,
                guiderail_runtime::StateKind::Terminal => unreachable!(),
            };
            assert_eq!(via, expected, "{from} -> {to}");
            n += 1;
        }
    }
    assert_eq!(n, 7 + 4);
}
