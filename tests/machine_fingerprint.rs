//! Graph fingerprints: the same shape gives the same fingerprint whatever
//! the docs, bounds, declaration order or spacing; a changed state, kind,
//! payload type or move gives another. Durable runs are refused across a
//! change (see `machine_durable.rs`).
#![allow(missing_docs, dead_code)]

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
