//! Graph fingerprints: the same shape gives the same fingerprint whatever
//! the docs, bounds, declaration order or spacing; a changed state, kind,
//! payload type or move gives another. Durable runs are refused across a
//! change (see `machine_durable.rs`).
//!
//! The shape text (`Graph::shape`) is exactly what the fingerprint hashes,
//! and `guiderail::testing`'s fingerprint file check fails for each kind of
//! change, naming it.
#![allow(missing_docs, dead_code)]

use std::path::PathBuf;

use guiderail::StateKind;
use guiderail::testing::{
    Difference, FingerprintError, Fingerprints, Item, SchemaChange, ShapeChange, StateShape,
    assert_fingerprints,
};

mod base {
    #[guiderail::machine(context = ())]
    pub enum M {
        #[initial]
        #[to(Work)]
        Start,
        #[to(Done, Work)]
        #[max_visits(3)]
        Work { items: Vec<String> },
        #[terminal]
        Done,
    }
}

/// Docs, bounds, declaration order and spacing differ: same shape.
mod cosmetic {
    /// Documented.
    #[guiderail::machine(context = u32, max_steps = 10)]
    pub enum M {
        /// The end.
        #[terminal]
        Done,
        /// Work, documented, with another visit limit.
        #[to(Work, Done)]
        #[max_visits(5)]
        Work {
            /// The items.
            items: Vec<String>,
        },
        #[initial]
        #[to(Work)]
        Start,
    }
}

mod payload_changed {
    #[guiderail::machine(context = ())]
    pub enum M {
        #[initial]
        #[to(Work)]
        Start,
        #[to(Done, Work)]
        #[max_visits(3)]
        Work { items: Vec<u64> },
        #[terminal]
        Done,
    }
}

mod field_renamed {
    #[guiderail::machine(context = ())]
    pub enum M {
        #[initial]
        #[to(Work)]
        Start,
        #[to(Done, Work)]
        #[max_visits(3)]
        Work { lines: Vec<String> },
        #[terminal]
        Done,
    }
}

mod move_removed {
    #[guiderail::machine(context = ())]
    pub enum M {
        #[initial]
        #[to(Work)]
        Start,
        #[to(Done)]
        Work { items: Vec<String> },
        #[terminal]
        Done,
    }
}

mod kind_changed {
    #[guiderail::machine(context = ())]
    pub enum M {
        #[initial]
        #[to(Work)]
        Start,
        #[wait]
        #[to(Done, Work)]
        #[max_visits(3)]
        Work { items: Vec<String> },
        #[terminal]
        Done,
    }
}

mod state_renamed {
    #[guiderail::machine(context = ())]
    pub enum M {
        #[initial]
        #[to(Busy)]
        Start,
        #[to(Done, Busy)]
        #[max_visits(3)]
        Busy { items: Vec<String> },
        #[terminal]
        Done,
    }
}

mod state_added {
    #[guiderail::machine(context = ())]
    pub enum M {
        #[initial]
        #[to(Work)]
        Start,
        #[to(Done, Work, Park)]
        #[max_visits(3)]
        Work { items: Vec<String> },
        #[wait]
        #[to(Done)]
        Park,
        #[terminal]
        Done,
    }
}

mod move_added {
    #[guiderail::machine(context = ())]
    pub enum M {
        #[initial]
        #[to(Work, Done)]
        Start,
        #[to(Done, Work)]
        #[max_visits(3)]
        Work { items: Vec<String> },
        #[terminal]
        Done,
    }
}

/// Another machine, for files with several.
mod other {
    #[guiderail::machine]
    pub enum Other {
        #[initial]
        #[to(End)]
        Begin,
        #[terminal]
        End,
    }
}

/// Two versions of a payload type with the same schema name, and a machine
/// that carries it.
mod refund_v1 {
    use guiderail::prelude::*;

    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    pub struct Refund {
        /// The order.
        pub order_id: u64,
        pub amount_cents: u64,
    }

    #[guiderail::machine]
    pub enum Pay {
        #[initial]
        #[to(IssueRefund)]
        Start,
        #[to(Done)]
        IssueRefund(Refund),
        #[terminal]
        Done,
    }
}

mod refund_v2 {
    use guiderail::prelude::*;

    /// Docs differ too, which does not count.
    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    pub struct Refund {
        /// The order it refunds.
        pub order_id: String,
        pub amount_cents: u64,
        pub currency: String,
    }
}

#[test]
fn cosmetic_changes_keep_the_fingerprint() {
    assert_eq!(
        base::M::graph().fingerprint,
        cosmetic::M::graph().fingerprint
    );
}

#[test]
fn shape_changes_change_the_fingerprint() {
    let base = base::M::graph().fingerprint;
    for (what, other) in [
        ("payload type", payload_changed::M::graph().fingerprint),
        ("field name", field_renamed::M::graph().fingerprint),
        ("move", move_removed::M::graph().fingerprint),
        ("kind", kind_changed::M::graph().fingerprint),
        ("state name", state_renamed::M::graph().fingerprint),
    ] {
        assert_ne!(base, other, "a changed {what} kept the fingerprint");
    }
}

#[test]
fn the_fingerprint_is_a_stable_constant() {
    // 64-bit FNV-1a over "\n" + line for the sorted lines
    //   move Start Work / move Work Done / move Work Work /
    //   state Done terminal  / state Start plain  /
    //   state Work plain {items:Vec<String>}
    // (computed independently of the macro). If this number changes, stored
    // runs of every machine would be refused after an upgrade.
    assert_eq!(base::M::graph().fingerprint, 0xdb4f_1ad8_f13d_8423);
}

/// 64-bit FNV-1a, as the macro computes the fingerprint.
fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The fingerprint of shape text: the sorted lines, each after a `\n`,
/// with a space after the kind of a state without payload.
fn fingerprint_of(shape: &str) -> u64 {
    let mut lines: Vec<String> = shape
        .lines()
        .map(|l| {
            if l.starts_with("state ") && l.split(' ').count() == 3 {
                format!("{l} ")
            } else {
                l.to_owned()
            }
        })
        .collect();
    lines.sort();
    lines.iter().fold(0xcbf2_9ce4_8422_2325, |h, l| {
        fnv1a(l.as_bytes(), fnv1a(b"\n", h))
    })
}

#[test]
fn the_shape_is_readable_text() {
    assert_eq!(
        base::M::graph().shape,
        "state Done terminal\n\
         state Start plain\n\
         state Work plain {items:Vec<String>}\n\
         move Start Work\n\
         move Work Done\n\
         move Work Work\n"
    );
    assert_eq!(base::M::graph().shape, cosmetic::M::graph().shape);
    assert_eq!(
        refund_v1::Pay::graph().shape,
        "state Done terminal\nstate IssueRefund plain (Refund)\nstate Start plain\n\
         move IssueRefund Done\nmove Start IssueRefund\n"
    );
}

#[test]
fn the_shape_is_exactly_what_the_fingerprint_hashes() {
    for graph in [
        base::M::graph(),
        cosmetic::M::graph(),
        payload_changed::M::graph(),
        field_renamed::M::graph(),
        move_removed::M::graph(),
        move_added::M::graph(),
        kind_changed::M::graph(),
        state_renamed::M::graph(),
        state_added::M::graph(),
        other::Other::graph(),
        refund_v1::Pay::graph(),
    ] {
        assert_eq!(
            fingerprint_of(graph.shape),
            graph.fingerprint,
            "{}",
            graph.shape
        );
    }
}

/// A fingerprint file in a fresh directory (not created yet).
fn file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("fingerprints").join("machines.txt");
    (dir, path)
}

/// A check of `path` independent of the environment: not CI, no update.
fn check(path: &PathBuf) -> Fingerprints {
    Fingerprints::new(path).ci(false).update(false)
}

/// The differences a check of `graph` finds against a file written from
/// `stored` (both as `M`).
fn differences(stored: &guiderail::Graph, now: &guiderail::Graph) -> (Vec<Difference>, String) {
    let (_dir, path) = file();
    check(&path).machine(stored).check().expect("written");
    match check(&path).machine(now).check() {
        Err(e @ FingerprintError::Changed { .. }) => {
            let message = e.to_string();
            let FingerprintError::Changed { differences, .. } = e else {
                unreachable!()
            };
            (differences, message)
        }
        other => panic!("expected the check to fail, got {other:?}"),
    }
}

/// The shape changes of the only difference, which is machine `M`'s.
fn shape_changes(stored: &guiderail::Graph, now: &guiderail::Graph) -> (Vec<ShapeChange>, String) {
    let (diffs, message) = differences(stored, now);
    match <[Difference; 1]>::try_from(diffs) {
        Ok(
            [
                Difference::Machine {
                    name,
                    stored: old,
                    current,
                    changes,
                },
            ],
        ) => {
            assert_eq!(name, "M");
            assert_eq!((old, current), (stored.fingerprint, now.fingerprint));
            (changes, message)
        }
        other => panic!("expected one machine difference, got {other:?}"),
    }
}

fn plain(payload: &str) -> StateShape {
    StateShape {
        kind: StateKind::Plain,
        payload: payload.into(),
    }
}

#[test]
fn a_missing_file_is_written_outside_ci() {
    let (_dir, path) = file();
    let report = check(&path)
        .machines(&[base::M::graph(), other::Other::graph()])
        .check()
        .expect("written");
    assert!(report.written);
    assert_eq!(
        report.differences,
        [
            Difference::New {
                what: Item::Machine("M".into())
            },
            Difference::New {
                what: Item::Machine("Other".into())
            },
        ]
    );
    let text = std::fs::read_to_string(&path).expect("the file exists");
    assert!(
        text.contains(&format!(
            "machine M {:016x}\n  state Done terminal\n  state Start plain\n  \
             state Work plain {{items:Vec<String>}}\n  move Start Work\n",
            base::M::graph().fingerprint
        )),
        "{text}"
    );
    // Unchanged since: passes without writing.
    let report = check(&path)
        .machines(&[base::M::graph(), other::Other::graph()])
        .check()
        .expect("unchanged");
    assert!(!report.written);
    assert!(report.differences.is_empty());
    assert_eq!(std::fs::read_to_string(&path).expect("still there"), text);
}

#[test]
fn a_missing_file_fails_under_ci() {
    let (_dir, path) = file();
    let error = check(&path)
        .ci(true)
        .machine(base::M::graph())
        .check()
        .expect_err("no file under CI");
    assert!(
        matches!(error, FingerprintError::Missing { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("does not exist"), "{error}");
    assert!(!path.exists(), "nothing is written under CI");
}

#[test]
fn an_added_state_fails_naming_it_and_its_moves() {
    let (changes, message) = shape_changes(base::M::graph(), state_added::M::graph());
    assert_eq!(
        changes,
        [
            ShapeChange::StateAdded {
                state: "Park".into(),
                shape: StateShape {
                    kind: StateKind::Wait,
                    payload: String::new(),
                },
            },
            ShapeChange::MoveAdded {
                from: "Park".into(),
                to: "Done".into()
            },
            ShapeChange::MoveAdded {
                from: "Work".into(),
                to: "Park".into()
            },
        ]
    );
    assert!(message.contains("state `Park` added (wait)"), "{message}");
    assert!(message.contains("move `Work -> Park` added"), "{message}");
    assert!(
        message.contains("GUIDERAIL_UPDATE_FINGERPRINTS=1 cargo test"),
        "the message says how to accept the change: {message}"
    );
}

#[test]
fn a_removed_state_fails_naming_it() {
    let (changes, message) = shape_changes(state_added::M::graph(), base::M::graph());
    assert!(changes.contains(&ShapeChange::StateRemoved {
        state: "Park".into(),
        shape: StateShape {
            kind: StateKind::Wait,
            payload: String::new()
        },
    }));
    assert!(
        message.contains("state `Park` removed (was wait)"),
        "{message}"
    );
    assert!(message.contains("move `Park -> Done` removed"), "{message}");
}

#[test]
fn a_renamed_state_is_a_removal_and_an_addition() {
    let (changes, _) = shape_changes(base::M::graph(), state_renamed::M::graph());
    let payload = "{items:Vec<String>}";
    assert_eq!(
        changes[..2],
        [
            ShapeChange::StateRemoved {
                state: "Work".into(),
                shape: plain(payload)
            },
            ShapeChange::StateAdded {
                state: "Busy".into(),
                shape: plain(payload)
            },
        ]
    );
}

#[test]
fn a_changed_kind_fails_naming_the_state() {
    let (changes, message) = shape_changes(base::M::graph(), kind_changed::M::graph());
    assert_eq!(
        changes,
        [ShapeChange::KindChanged {
            state: "Work".into(),
            from: StateKind::Plain,
            to: StateKind::Wait,
        }]
    );
    assert!(
        message.contains("state `Work` changed kind: plain -> wait"),
        "{message}"
    );
}

#[test]
fn a_changed_payload_fails_naming_the_state() {
    let (changes, message) = shape_changes(base::M::graph(), payload_changed::M::graph());
    assert_eq!(
        changes,
        [ShapeChange::PayloadChanged {
            state: "Work".into(),
            from: "{items:Vec<String>}".into(),
            to: "{items:Vec<u64>}".into(),
        }]
    );
    assert!(
        message
            .contains("state `Work` changed payload: `{items:Vec<String>}` -> `{items:Vec<u64>}`"),
        "{message}"
    );
    let (changes, _) = shape_changes(base::M::graph(), field_renamed::M::graph());
    assert_eq!(
        changes,
        [ShapeChange::PayloadChanged {
            state: "Work".into(),
            from: "{items:Vec<String>}".into(),
            to: "{lines:Vec<String>}".into(),
        }]
    );
}

#[test]
fn an_added_or_removed_move_fails_naming_it() {
    let (changes, message) = shape_changes(base::M::graph(), move_added::M::graph());
    assert_eq!(
        changes,
        [ShapeChange::MoveAdded {
            from: "Start".into(),
            to: "Done".into()
        }]
    );
    assert!(message.contains("move `Start -> Done` added"), "{message}");
    let (changes, message) = shape_changes(base::M::graph(), move_removed::M::graph());
    assert_eq!(
        changes,
        [ShapeChange::MoveRemoved {
            from: "Work".into(),
            to: "Work".into()
        }]
    );
    assert!(message.contains("move `Work -> Work` removed"), "{message}");
}

#[test]
fn a_machine_no_longer_checked_fails() {
    let (_dir, path) = file();
    check(&path)
        .machines(&[base::M::graph(), other::Other::graph()])
        .check()
        .expect("written");
    let error = check(&path)
        .machine(base::M::graph())
        .check()
        .expect_err("Other is gone");
    let FingerprintError::Changed { differences, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(
        differences,
        &[Difference::Gone {
            what: Item::Machine("Other".into())
        }]
    );
    assert!(
        error
            .to_string()
            .contains("machine `Other` is in the file but no longer checked"),
        "{error}"
    );
}

#[test]
fn a_new_machine_is_added_outside_ci_and_fails_under_ci() {
    let (_dir, path) = file();
    check(&path)
        .machine(base::M::graph())
        .check()
        .expect("written");
    let both = [base::M::graph(), other::Other::graph()];
    let error = check(&path)
        .ci(true)
        .machines(&both)
        .check()
        .expect_err("a new machine under CI");
    assert!(
        error.to_string().contains("machine `Other` is new"),
        "{error}"
    );
    let report = check(&path).machines(&both).check().expect("added");
    assert!(report.written);
    let text = std::fs::read_to_string(&path).expect("the file");
    assert!(text.contains("machine Other "), "{text}");
    assert!(text.contains("machine M "), "{text}");
    check(&path).ci(true).machines(&both).assert();
}

#[test]
fn a_changed_payload_schema_fails_naming_the_type_its_states_and_what_changed() {
    let (_dir, path) = file();
    check(&path)
        .machine(refund_v1::Pay::graph())
        .schema::<refund_v1::Refund>()
        .check()
        .expect("written");
    let text = std::fs::read_to_string(&path).expect("the file");
    assert!(
        text.contains("type Refund\n  /properties/amount_cents/format \"uint64\"\n"),
        "{text}"
    );
    assert!(
        !text.contains("The order"),
        "doc comments are left out: {text}"
    );
    let error = check(&path)
        .machine(refund_v1::Pay::graph())
        .schema::<refund_v2::Refund>()
        .check()
        .expect_err("the schema changed");
    let FingerprintError::Changed { differences, .. } = &error else {
        panic!("{error:?}")
    };
    let [
        Difference::Schema {
            name,
            used_by,
            changes,
        },
    ] = differences.as_slice()
    else {
        panic!("expected one schema difference: {differences:?}")
    };
    assert_eq!(name, "Refund");
    assert_eq!(used_by, &["Pay::IssueRefund"]);
    assert!(
        changes.contains(&SchemaChange::Added {
            pointer: "/properties/currency".into(),
            value: None
        }),
        "{changes:?}"
    );
    assert!(
        changes.contains(&SchemaChange::Changed {
            pointer: "/properties/order_id/type".into(),
            from: "\"integer\"".into(),
            to: "\"string\"".into(),
        }),
        "{changes:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("type `Refund`: schema changed (the payload of `Pay::IssueRefund`)"),
        "{message}"
    );
    assert!(
        message.contains("`/properties/currency` added"),
        "{message}"
    );
    assert!(
        message.contains("`/properties/order_id/type` changed: \"integer\" -> \"string\""),
        "{message}"
    );
}

#[test]
fn update_rewrites_the_file_and_the_change_then_passes() {
    let (_dir, path) = file();
    check(&path)
        .machine(base::M::graph())
        .check()
        .expect("written");
    let report = check(&path)
        .update(true)
        .machine(kind_changed::M::graph())
        .check()
        .expect("updated");
    assert!(report.written);
    assert!(
        matches!(&report.differences[..], [Difference::Machine { changes, .. }]
            if changes.len() == 1),
        "{:?}",
        report.differences
    );
    check(&path)
        .ci(true)
        .machine(kind_changed::M::graph())
        .assert();
    // Updating again changes nothing.
    let report = check(&path)
        .update(true)
        .machine(kind_changed::M::graph())
        .check()
        .expect("unchanged");
    assert!(!report.written);
}

#[test]
fn assert_panics_with_the_differences_and_how_to_accept_them() {
    let (_dir, path) = file();
    check(&path)
        .machine(base::M::graph())
        .check()
        .expect("written");
    let panic = std::panic::catch_unwind(|| {
        check(&path).machine(move_removed::M::graph()).assert();
    })
    .expect_err("a changed machine panics");
    let message = panic
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert!(
        message.contains("graph fingerprints differ from"),
        "{message}"
    );
    assert!(message.contains("move `Work -> Work` removed"), "{message}");
    assert!(message.contains("DurableError::GraphChanged"), "{message}");
    assert!(
        message.contains("GUIDERAIL_UPDATE_FINGERPRINTS=1 cargo test"),
        "{message}"
    );
    // The file is left as it was.
    check(&path).machine(base::M::graph()).assert();
    // `assert_fingerprints` (mode from the environment) passes on an
    // unchanged file whatever the environment says.
    assert_fingerprints(&path, &[base::M::graph()]);
}

#[test]
fn duplicate_and_malformed_entries_are_errors() {
    let (_dir, path) = file();
    let error = check(&path)
        .machines(&[base::M::graph(), cosmetic::M::graph()])
        .check()
        .expect_err("two machines named M");
    assert_eq!(
        error,
        FingerprintError::Duplicate {
            what: Item::Machine("M".into())
        }
    );
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(&path, "machine M 0000000000000001\n  state Work sideways\n").expect("write");
    let error = check(&path)
        .machine(base::M::graph())
        .check()
        .expect_err("malformed");
    assert!(
        matches!(&error, FingerprintError::Unreadable { line: 2, detail, .. } if detail.contains("sideways")),
        "{error:?}"
    );
    // Updating replaces a malformed file.
    check(&path).update(true).machine(base::M::graph()).assert();
    check(&path).machine(base::M::graph()).assert();
}
