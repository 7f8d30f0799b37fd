//! Helpers for a project's own tests.
//!
//! # Graph fingerprints
//!
//! A durable run stores its machine's graph fingerprint
//! ([`Graph::fingerprint`]), and a run stored under one fingerprint is not
//! resumed by a machine with another ([`crate::DurableError::GraphChanged`]).
//! So once runs of a machine are stored in production, a change to its
//! states, their kinds or payload types, or its moves strands them.
//!
//! [`assert_fingerprints`] turns that into a failing test: commit a file
//! with the shapes of the machines that have stored runs, and the test
//! fails when a change would strand them, naming what changed. With
//! [`Fingerprints::schema`], the file also keeps the JSON Schema of payload
//! and context types, whose changes the fingerprint does not see (a field
//! renamed inside `Refund` keeps `IssueRefund(Refund)`'s fingerprint, but a
//! stored `IssueRefund` no longer deserialises).
//!
//! ```text
//! # Graph fingerprints of machines with stored runs, checked by guiderail::testing. …
//!
//! machine Support 8d4e7a0cc3f1b2a9
//!   state AwaitApproval wait
//!   state Classify gate
//!   state Done terminal
//!   state Escalate plain {reason:String}
//!   state IssueRefund plain (Refund)
//!   move AwaitApproval Done
//!   move Classify Escalate
//!   …
//!
//! type Refund
//!   /properties/amount_cents/type "integer"
//!   /required ["amount_cents","order_id"]
//!   …
//! ```
//!
//! - The file missing: the check writes it and passes, so the first run
//!   creates it (commit it), except under `CI=true`, where it fails.
//! - A machine or type checked but not in the file: added the same way.
//! - Anything else that differs fails, with every difference named: a
//!   state added or removed, a state's kind or payload changed, a move
//!   added or removed, a schema changed (by JSON pointer), a machine or
//!   type in the file no longer checked.
//! - To accept a change (no stored run needs the old shape, or the runner
//!   opts in with `allow_graph_change` and the runs' states still exist),
//!   run the tests with `GUIDERAIL_UPDATE_FINGERPRINTS=1`: the file is
//!   rewritten, and the diff shows the change for review.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::graph::{Graph, StateKind};

/// The environment variable that makes [`assert_fingerprints`] rewrite its
/// file instead of failing: `GUIDERAIL_UPDATE_FINGERPRINTS=1 cargo test`.
pub const UPDATE_VAR: &str = "GUIDERAIL_UPDATE_FINGERPRINTS";

const HEADER: &str = "\
# Graph fingerprints of machines with stored runs, checked by guiderail::testing.
# A run stored under one fingerprint is not resumed by a machine with another,
# so a change here strands stored runs. Generated: to accept an intended change,
# run `GUIDERAIL_UPDATE_FINGERPRINTS=1 cargo test` and commit this file.
";

/// Checks the machines `graphs` against the fingerprint file at `path`,
/// and panics naming every difference (see the [module docs](self)).
///
/// `path` is relative to the working directory, which `cargo test` sets to
/// the package's root; `concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fingerprints.txt")`
/// works from anywhere. Check all machines of one file in one call: a
/// machine in the file that is not checked is a difference.
///
/// ```text
/// #[test]
/// fn stored_runs_still_resume() {
///     guiderail::testing::assert_fingerprints(
///         concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fingerprints.txt"),
///         &[Support::graph(), Billing::graph()],
///     );
/// }
/// ```
#[track_caller]
pub fn assert_fingerprints(path: impl AsRef<Path>, graphs: &[&Graph]) {
    Fingerprints::new(path).machines(graphs).assert();
}

/// A fingerprint check with more than machines: the JSON Schemas of
/// payload and context types ([`Fingerprints::schema`]), or an explicit
/// mode instead of the environment's.
///
/// ```text
/// #[test]
/// fn stored_runs_still_resume() {
///     guiderail::testing::Fingerprints::new(concat!(
///         env!("CARGO_MANIFEST_DIR"),
///         "/tests/fingerprints.txt"
///     ))
///     .machine(Support::graph())
///     .schema::<Refund>() // the payload of `IssueRefund`
///     .schema::<Ticket>() // the context
///     .assert();
/// }
/// ```
///
/// [`Fingerprints::check`] returns the differences instead of panicking,
/// and [`Fingerprints::ci`] and [`Fingerprints::update`] set the mode
/// instead of the environment.
#[derive(Debug, Clone)]
pub struct Fingerprints {
    path: PathBuf,
    machines: Vec<MachineEntry>,
    types: Vec<TypeEntry>,
    update: bool,
    ci: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct MachineEntry {
    name: String,
    fingerprint: u64,
    shape: GraphShape,
}

#[derive(Debug, Clone, PartialEq)]
struct TypeEntry {
    name: String,
    schema: BTreeMap<String, String>,
}

impl Fingerprints {
    /// A check of the file at `path`, with nothing to check yet. Rewrites
    /// the file when `GUIDERAIL_UPDATE_FINGERPRINTS` is set (to anything
    /// but `0`, `false` or nothing); a missing file is an error when `CI`
    /// is set likewise.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Fingerprints {
            path: path.as_ref().to_owned(),
            machines: Vec::new(),
            types: Vec::new(),
            update: env_flag(UPDATE_VAR),
            ci: env_flag("CI"),
        }
    }

    /// Checks this machine's shape.
    ///
    /// # Panics
    ///
    /// If the graph's [`Graph::shape`] text is malformed (only a graph
    /// written by hand can have that).
    pub fn machine(mut self, graph: &Graph) -> Self {
        self.machines.push(MachineEntry {
            name: graph.name.to_owned(),
            fingerprint: graph.fingerprint,
            shape: GraphShape::of(graph),
        });
        self
    }

    /// Checks these machines' shapes.
    pub fn machines(self, graphs: &[&Graph]) -> Self {
        graphs.iter().fold(self, |check, g| check.machine(g))
    }

    /// Checks the JSON Schema of `T` (a payload type of a state, or the
    /// context), under its schema name. Descriptions and titles (from doc
    /// comments) are left out: they do not change what deserialises.
    pub fn schema<T: schemars::JsonSchema>(mut self) -> Self {
        let schema = schemars::schema_for!(T);
        let mut lines = BTreeMap::new();
        flatten(schema.as_value(), &mut String::new(), false, &mut lines);
        self.types.push(TypeEntry {
            name: T::schema_name().into_owned(),
            schema: lines,
        });
        self
    }

    /// Rewrite the file instead of comparing (default: from
    /// `GUIDERAIL_UPDATE_FINGERPRINTS`).
    pub fn update(mut self, update: bool) -> Self {
        self.update = update;
        self
    }

    /// Whether this runs under CI, where a missing file, machine or type is
    /// an error instead of being written (default: from `CI`).
    pub fn ci(mut self, ci: bool) -> Self {
        self.ci = ci;
        self
    }

    /// Compares the file with the checked machines and types; writes it
    /// when it is missing or only lacks entries (outside CI) and when
    /// updating. Returns what was written and what differed, or the
    /// differences that fail the check.
    pub fn check(&self) -> Result<FingerprintReport, FingerprintError> {
        let current = self.current()?;
        let shown = self.path.display().to_string();
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(FingerprintError::Io {
                    path: shown,
                    detail: e.to_string(),
                });
            }
        };
        let Some(text) = text else {
            if self.ci && !self.update {
                return Err(FingerprintError::Missing { path: shown });
            }
            self.write(&current)?;
            let differences = diff(&FileContents::default(), &current);
            return Ok(FingerprintReport {
                path: shown,
                written: true,
                differences,
            });
        };
        let stored = match FileContents::parse(&text) {
            Ok(stored) => stored,
            Err(_) if self.update => FileContents::default(),
            Err((line, detail)) => {
                return Err(FingerprintError::Unreadable {
                    path: shown,
                    line,
                    detail,
                });
            }
        };
        let differences = diff(&stored, &current);
        if self.update {
            let written = !differences.is_empty() || render(&current) != text;
            if written {
                self.write(&current)?;
            }
            return Ok(FingerprintReport {
                path: shown,
                written,
                differences,
            });
        }
        if differences.is_empty() {
            return Ok(FingerprintReport {
                path: shown,
                written: false,
                differences,
            });
        }
        let only_new = differences
            .iter()
            .all(|d| matches!(d, Difference::New { .. }));
        if only_new && !self.ci {
            self.write(&current)?;
            return Ok(FingerprintReport {
                path: shown,
                written: true,
                differences,
            });
        }
        Err(FingerprintError::Changed {
            path: shown,
            ci: self.ci,
            differences,
        })
    }

    /// [`Fingerprints::check`], panicking with the error's message; what
    /// was written is printed to stderr.
    #[track_caller]
    pub fn assert(&self) {
        match self.check() {
            Ok(report) => {
                if report.written {
                    eprintln!("{report}");
                }
            }
            Err(e) => panic!("{e}"),
        }
    }

    fn current(&self) -> Result<FileContents, FingerprintError> {
        let mut contents = FileContents::default();
        for m in &self.machines {
            if contents
                .machines
                .insert(m.name.clone(), m.clone())
                .is_some()
            {
                return Err(FingerprintError::Duplicate {
                    what: Item::Machine(m.name.clone()),
                });
            }
        }
        for t in &self.types {
            if contents.types.insert(t.name.clone(), t.clone()).is_some() {
                return Err(FingerprintError::Duplicate {
                    what: Item::Type(t.name.clone()),
                });
            }
        }
        Ok(contents)
    }

    fn write(&self, contents: &FileContents) -> Result<(), FingerprintError> {
        let io = |e: std::io::Error| FingerprintError::Io {
            path: self.path.display().to_string(),
            detail: e.to_string(),
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        std::fs::write(&tmp, render(contents)).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

/// Whether an environment variable is set to something other than
/// nothing, `0` or `false`.
fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| {
        let v = v.trim();
        !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
    })
}

/// A passed fingerprint check: whether the file was written, and what
/// differed from it (new entries, or every change when updating).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FingerprintReport {
    /// The file.
    pub path: String,
    /// Whether the file was written (created, extended, or rewritten).
    pub written: bool,
    /// What differed from the file before it was written.
    pub differences: Vec<Difference>,
}

impl fmt::Display for FingerprintReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.written {
            return write!(f, "graph fingerprints in {} unchanged", self.path);
        }
        writeln!(f, "graph fingerprints written to {}; commit it", self.path)?;
        for d in &self.differences {
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// A machine or a type in a fingerprint file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A machine, by name.
    Machine(String),
    /// A type whose schema is checked, by schema name.
    Type(String),
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Machine(name) => write!(f, "machine `{name}`"),
            Item::Type(name) => write!(f, "type `{name}`"),
        }
    }
}

/// One difference between the fingerprint file and the checked machines
/// and types.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Difference {
    /// Checked, but not in the file.
    New {
        /// The machine or type.
        what: Item,
    },
    /// In the file, but no longer checked.
    Gone {
        /// The machine or type.
        what: Item,
    },
    /// A machine's shape changed.
    Machine {
        /// The machine.
        name: String,
        /// The fingerprint in the file.
        stored: u64,
        /// The machine's fingerprint now.
        current: u64,
        /// What changed (empty when only the fingerprint did).
        changes: Vec<ShapeChange>,
    },
    /// A type's JSON Schema changed.
    Schema {
        /// The type's schema name.
        name: String,
        /// The states whose payload names the type (`Support::IssueRefund`).
        used_by: Vec<String>,
        /// What changed.
        changes: Vec<SchemaChange>,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::New { what } => writeln!(f, "  {what} is new (not in the file)"),
            Difference::Gone { what } => writeln!(
                f,
                "  {what} is in the file but no longer checked: stored runs that need it cannot be resumed"
            ),
            Difference::Machine {
                name,
                stored,
                current,
                changes,
            } => {
                writeln!(
                    f,
                    "  machine `{name}`: fingerprint {stored:016x} in the file, now {current:016x}"
                )?;
                if changes.is_empty() {
                    writeln!(
                        f,
                        "    (the listed shape is the same: the file was edited by hand, or the fingerprint is computed differently)"
                    )?;
                } else if stored == current {
                    writeln!(
                        f,
                        "    (the fingerprint is the same: the file's lines were edited by hand)"
                    )?;
                }
                for c in changes {
                    writeln!(f, "    {c}")?;
                }
                Ok(())
            }
            Difference::Schema {
                name,
                used_by,
                changes,
            } => {
                write!(f, "  type `{name}`: schema changed")?;
                if !used_by.is_empty() {
                    write!(f, " (the payload of ")?;
                    for (i, s) in used_by.iter().enumerate() {
                        let sep = if i == 0 { "" } else { ", " };
                        write!(f, "{sep}`{s}`")?;
                    }
                    write!(f, ")")?;
                }
                writeln!(f)?;
                for c in changes {
                    writeln!(f, "    {c}")?;
                }
                Ok(())
            }
        }
    }
}

/// One change to a machine's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeChange {
    /// A state was added.
    StateAdded {
        /// The state.
        state: String,
        /// Its kind and payload.
        shape: StateShape,
    },
    /// A state was removed.
    StateRemoved {
        /// The state.
        state: String,
        /// Its kind and payload, as they were.
        shape: StateShape,
    },
    /// A state's kind changed.
    KindChanged {
        /// The state.
        state: String,
        /// The kind in the file.
        from: StateKind,
        /// The kind now.
        to: StateKind,
    },
    /// A state's payload types changed.
    PayloadChanged {
        /// The state.
        state: String,
        /// The payload in the file (`""` for none).
        from: String,
        /// The payload now.
        to: String,
    },
    /// A move was added.
    MoveAdded {
        /// Its source state.
        from: String,
        /// Its target state.
        to: String,
    },
    /// A move was removed.
    MoveRemoved {
        /// Its source state.
        from: String,
        /// Its target state.
        to: String,
    },
}

fn payload_text(p: &str) -> String {
    if p.is_empty() {
        "none".to_owned()
    } else {
        format!("`{p}`")
    }
}

impl fmt::Display for ShapeChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeChange::StateAdded { state, shape } => {
                write!(f, "state `{state}` added ({shape})")
            }
            ShapeChange::StateRemoved { state, shape } => {
                write!(f, "state `{state}` removed (was {shape})")
            }
            ShapeChange::KindChanged { state, from, to } => {
                write!(f, "state `{state}` changed kind: {from} -> {to}")
            }
            ShapeChange::PayloadChanged { state, from, to } => write!(
                f,
                "state `{state}` changed payload: {} -> {}",
                payload_text(from),
                payload_text(to)
            ),
            ShapeChange::MoveAdded { from, to } => write!(f, "move `{from} -> {to}` added"),
            ShapeChange::MoveRemoved { from, to } => write!(f, "move `{from} -> {to}` removed"),
        }
    }
}

/// One change to a type's JSON Schema, at a JSON pointer into the schema
/// (`/properties/order_id/type`). A whole subtree added or removed is one
/// change at its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaChange {
    /// Added (with a value, for a leaf).
    Added {
        /// Where.
        pointer: String,
        /// The new value, compact JSON, if `pointer` is a leaf.
        value: Option<String>,
    },
    /// Removed.
    Removed {
        /// Where.
        pointer: String,
        /// The old value, compact JSON, if `pointer` was a leaf.
        value: Option<String>,
    },
    /// A value changed.
    Changed {
        /// Where.
        pointer: String,
        /// The value in the file.
        from: String,
        /// The value now.
        to: String,
    },
}

impl fmt::Display for SchemaChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaChange::Added { pointer, value } => match value {
                Some(v) => write!(f, "`{pointer}` added: {v}"),
                None => write!(f, "`{pointer}` added"),
            },
            SchemaChange::Removed { pointer, value } => match value {
                Some(v) => write!(f, "`{pointer}` removed (was {v})"),
                None => write!(f, "`{pointer}` removed"),
            },
            SchemaChange::Changed { pointer, from, to } => {
                write!(f, "`{pointer}` changed: {from} -> {to}")
            }
        }
    }
}

/// A fingerprint check failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FingerprintError {
    /// The file does not exist, under CI.
    #[error(
        "graph fingerprint file {path} does not exist. Run the tests once outside CI (without CI=true) to write it, and commit it"
    )]
    Missing {
        /// The file.
        path: String,
    },
    /// The file differs from the checked machines and types.
    #[error("{}", changed_message(path, *ci, differences))]
    Changed {
        /// The file.
        path: String,
        /// Whether the check ran under CI.
        ci: bool,
        /// Every difference.
        differences: Vec<Difference>,
    },
    /// The file cannot be parsed.
    #[error(
        "graph fingerprint file {path}, line {line}: {detail}. Rewrite it with {UPDATE_VAR}=1 cargo test"
    )]
    Unreadable {
        /// The file.
        path: String,
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// Two checked machines (or types) have the same name.
    #[error(
        "{what} is checked twice; machines and types are kept by name, so names must be unique"
    )]
    Duplicate {
        /// The machine or type.
        what: Item,
    },
    /// Reading or writing the file failed.
    #[error("graph fingerprint file {path}: {detail}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        detail: String,
    },
}

fn changed_message(path: &str, ci: bool, differences: &[Difference]) -> String {
    use fmt::Write;
    let mut out = format!("graph fingerprints differ from {path}:\n\n");
    for d in differences {
        let _ = write!(out, "{d}");
    }
    let strands = differences
        .iter()
        .any(|d| !matches!(d, Difference::New { .. }));
    out.push('\n');
    if strands {
        out.push_str(
            "Runs stored under the old shapes cannot be resumed by this build: a changed machine's runs are \
             refused (DurableError::GraphChanged) unless the runner opts in with `allow_graph_change(true)` \
             and their states still exist, and a changed type may no longer deserialise. \
             Keep the old shape until no stored run needs it, or migrate those runs.\n",
        );
    }
    if ci
        && differences
            .iter()
            .any(|d| matches!(d, Difference::New { .. }))
    {
        out.push_str(
            "New machines and types are added to the file by a run outside CI (without CI=true).\n",
        );
    }
    let _ = write!(
        out,
        "To accept the change, run `{UPDATE_VAR}=1 cargo test` and commit the rewritten {path}."
    );
    out
}

/// A state's kind and payload, as the fingerprint sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateShape {
    /// The state's kind.
    pub kind: StateKind,
    /// The payload's types without spaces (`""` for none, `(Refund)`,
    /// `{reason:String}`).
    pub payload: String,
}

impl fmt::Display for StateShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.payload.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}, payload `{}`", self.kind, self.payload)
        }
    }
}

/// A machine's shape as its fingerprint covers it: states with their kinds
/// and payload types, and moves. Read from [`Graph::shape`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphShape {
    /// The states, by name.
    pub states: BTreeMap<String, StateShape>,
    /// The moves, as (from, to).
    pub moves: BTreeSet<(String, String)>,
}

impl GraphShape {
    /// The shape of `graph`.
    ///
    /// # Panics
    ///
    /// If its [`Graph::shape`] text is malformed (only a graph written by
    /// hand can have that).
    pub fn of(graph: &Graph) -> GraphShape {
        GraphShape::parse(graph.shape)
            .unwrap_or_else(|e| panic!("the shape of machine `{}` is malformed: {e}", graph.name))
    }

    /// Reads shape text (the format of [`Graph::shape`]).
    pub fn parse(text: &str) -> Result<GraphShape, String> {
        let mut shape = GraphShape::default();
        for (i, line) in text.lines().enumerate() {
            shape
                .add_line(line.trim())
                .map_err(|e| format!("line {}: {e}", i + 1))?;
        }
        Ok(shape)
    }

    fn add_line(&mut self, line: &str) -> Result<(), String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => Ok(()),
            ["state", name, kind, payload @ ..] if payload.len() <= 1 => {
                let kind = StateKind::parse(kind).ok_or_else(|| {
                    format!("`{kind}` is not a state kind (plain, gate, wait, terminal)")
                })?;
                let shape = StateShape {
                    kind,
                    payload: payload.first().copied().unwrap_or_default().to_owned(),
                };
                match self.states.insert((*name).to_owned(), shape) {
                    Some(_) => Err(format!("state `{name}` is listed twice")),
                    None => Ok(()),
                }
            }
            ["move", from, to] => {
                self.moves.insert(((*from).to_owned(), (*to).to_owned()));
                Ok(())
            }
            _ => Err(format!(
                "expected `state <name> <kind> [<payload>]` or `move <from> <to>`, found `{line}`"
            )),
        }
    }

    /// The shape as text, in the format of [`Graph::shape`].
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (name, s) in &self.states {
            out.push_str(&format!("state {name} {}", s.kind));
            if !s.payload.is_empty() {
                out.push(' ');
                out.push_str(&s.payload);
            }
            out.push('\n');
        }
        for (from, to) in &self.moves {
            out.push_str(&format!("move {from} {to}\n"));
        }
        out
    }

    /// What changed from `self` to `new`: states removed, added, changed
    /// (kind, then payload), then moves removed and added.
    pub fn changes_to(&self, new: &GraphShape) -> Vec<ShapeChange> {
        let mut changes = Vec::new();
        for (state, shape) in &self.states {
            if !new.states.contains_key(state) {
                changes.push(ShapeChange::StateRemoved {
                    state: state.clone(),
                    shape: shape.clone(),
                });
            }
        }
        for (state, shape) in &new.states {
            if !self.states.contains_key(state) {
                changes.push(ShapeChange::StateAdded {
                    state: state.clone(),
                    shape: shape.clone(),
                });
            }
        }
        for (state, shape) in &new.states {
            let Some(old) = self.states.get(state) else {
                continue;
            };
            if old.kind != shape.kind {
                changes.push(ShapeChange::KindChanged {
                    state: state.clone(),
                    from: old.kind,
                    to: shape.kind,
                });
            }
            if old.payload != shape.payload {
                changes.push(ShapeChange::PayloadChanged {
                    state: state.clone(),
                    from: old.payload.clone(),
                    to: shape.payload.clone(),
                });
            }
        }
        for (from, to) in self.moves.difference(&new.moves) {
            changes.push(ShapeChange::MoveRemoved {
                from: from.clone(),
                to: to.clone(),
            });
        }
        for (from, to) in new.moves.difference(&self.moves) {
            changes.push(ShapeChange::MoveAdded {
                from: from.clone(),
                to: to.clone(),
            });
        }
        changes
    }
}

/// What a fingerprint file holds.
#[derive(Debug, Default)]
struct FileContents {
    machines: BTreeMap<String, MachineEntry>,
    types: BTreeMap<String, TypeEntry>,
}

impl FileContents {
    /// Parses a file; an error is (1-based line, what is wrong).
    fn parse(text: &str) -> Result<FileContents, (usize, String)> {
        enum Section {
            None,
            Machine(String),
            Type(String),
        }
        let mut contents = FileContents::default();
        let mut section = Section::None;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("machine ") {
                let mut words = rest.split_whitespace();
                let (Some(name), Some(hex), None) = (words.next(), words.next(), words.next())
                else {
                    return Err((
                        n,
                        format!("expected `machine <name> <fingerprint>`, found `{line}`"),
                    ));
                };
                let fingerprint = u64::from_str_radix(hex, 16)
                    .map_err(|_| (n, format!("`{hex}` is not a hexadecimal fingerprint")))?;
                let entry = MachineEntry {
                    name: name.to_owned(),
                    fingerprint,
                    shape: GraphShape::default(),
                };
                if contents.machines.insert(name.to_owned(), entry).is_some() {
                    return Err((n, format!("machine `{name}` is listed twice")));
                }
                section = Section::Machine(name.to_owned());
            } else if let Some(rest) = line.strip_prefix("type ") {
                let name = rest.trim();
                let entry = TypeEntry {
                    name: name.to_owned(),
                    schema: BTreeMap::new(),
                };
                if contents.types.insert(name.to_owned(), entry).is_some() {
                    return Err((n, format!("type `{name}` is listed twice")));
                }
                section = Section::Type(name.to_owned());
            } else {
                match &section {
                    Section::None => {
                        return Err((
                            n,
                            format!("`{line}` is outside a `machine` or `type` section"),
                        ));
                    }
                    Section::Machine(name) => {
                        let entry = contents.machines.get_mut(name).expect("inserted above");
                        entry.shape.add_line(line).map_err(|e| (n, e))?;
                    }
                    Section::Type(name) => {
                        let entry = contents.types.get_mut(name).expect("inserted above");
                        let (pointer, value) = line.split_once(' ').ok_or_else(|| {
                            (n, format!("expected `<pointer> <json>`, found `{line}`"))
                        })?;
                        entry
                            .schema
                            .insert(decode_pointer(pointer), value.trim().to_owned());
                    }
                }
            }
        }
        Ok(contents)
    }
}

/// The file's text for `contents`.
fn render(contents: &FileContents) -> String {
    let mut out = String::from(HEADER);
    for m in contents.machines.values() {
        out.push_str(&format!("\nmachine {} {:016x}\n", m.name, m.fingerprint));
        for line in m.shape.to_text().lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    for t in contents.types.values() {
        out.push_str(&format!("\ntype {}\n", t.name));
        for (pointer, value) in &t.schema {
            out.push_str(&format!("  {} {value}\n", encode_pointer(pointer)));
        }
    }
    out
}

/// Pointers are written with spaces and `%` percent-encoded, so the first
/// space of a line ends the pointer.
fn encode_pointer(p: &str) -> String {
    p.replace('%', "%25").replace(' ', "%20")
}

fn decode_pointer(p: &str) -> String {
    p.replace("%20", " ").replace("%25", "%")
}

/// Every difference between the file (`stored`) and what is checked now.
fn diff(stored: &FileContents, current: &FileContents) -> Vec<Difference> {
    let mut out = Vec::new();
    for (name, m) in &current.machines {
        match stored.machines.get(name) {
            None => out.push(Difference::New {
                what: Item::Machine(name.clone()),
            }),
            Some(old) => {
                let changes = old.shape.changes_to(&m.shape);
                if !changes.is_empty() || old.fingerprint != m.fingerprint {
                    out.push(Difference::Machine {
                        name: name.clone(),
                        stored: old.fingerprint,
                        current: m.fingerprint,
                        changes,
                    });
                }
            }
        }
    }
    for name in stored.machines.keys() {
        if !current.machines.contains_key(name) {
            out.push(Difference::Gone {
                what: Item::Machine(name.clone()),
            });
        }
    }
    for (name, t) in &current.types {
        match stored.types.get(name) {
            None => out.push(Difference::New {
                what: Item::Type(name.clone()),
            }),
            Some(old) => {
                let changes = schema_changes(&old.schema, &t.schema);
                if !changes.is_empty() {
                    out.push(Difference::Schema {
                        name: name.clone(),
                        used_by: users(current, name),
                        changes,
                    });
                }
            }
        }
    }
    for name in stored.types.keys() {
        if !current.types.contains_key(name) {
            out.push(Difference::Gone {
                what: Item::Type(name.clone()),
            });
        }
    }
    out
}

/// The states (`Machine::State`) whose payload names the type `name`.
fn users(current: &FileContents, name: &str) -> Vec<String> {
    let mut users = Vec::new();
    for m in current.machines.values() {
        for (state, s) in &m.shape.states {
            let mentions = s
                .payload
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|word| word == name);
            if mentions {
                users.push(format!("{}::{state}", m.name));
            }
        }
    }
    users
}

/// The changes between two flattened schemas; a subtree that is new (or
/// gone) as a whole is reported once, at its root.
fn schema_changes(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<SchemaChange> {
    let mut changes = Vec::new();
    for (pointer, value) in old {
        match new.get(pointer) {
            Some(v) if v != value => changes.push(SchemaChange::Changed {
                pointer: pointer.clone(),
                from: value.clone(),
                to: v.clone(),
            }),
            Some(_) => {}
            None => {
                let root = subtree_root(pointer, new);
                if root == *pointer {
                    changes.push(SchemaChange::Removed {
                        pointer: root,
                        value: Some(value.clone()),
                    });
                } else if !changes
                    .iter()
                    .any(|c| matches!(c, SchemaChange::Removed { pointer, .. } if *pointer == root))
                {
                    changes.push(SchemaChange::Removed {
                        pointer: root,
                        value: None,
                    });
                }
            }
        }
    }
    for (pointer, value) in new {
        if old.contains_key(pointer) {
            continue;
        }
        let root = subtree_root(pointer, old);
        if root == *pointer {
            changes.push(SchemaChange::Added {
                pointer: root,
                value: Some(value.clone()),
            });
        } else if !changes
            .iter()
            .any(|c| matches!(c, SchemaChange::Added { pointer, .. } if *pointer == root))
        {
            changes.push(SchemaChange::Added {
                pointer: root,
                value: None,
            });
        }
    }
    changes
}

/// The shortest ancestor of `pointer` (or `pointer` itself) under which
/// `other` has nothing.
fn subtree_root(pointer: &str, other: &BTreeMap<String, String>) -> String {
    let ends = pointer
        .match_indices('/')
        .map(|(i, _)| i)
        .filter(|&i| i > 0)
        .chain([pointer.len()]);
    for end in ends {
        let prefix = &pointer[..end];
        if !has_entry_under(other, prefix) {
            return prefix.to_owned();
        }
    }
    pointer.to_owned()
}

/// Whether `map` has `prefix` or a pointer below it.
fn has_entry_under(map: &BTreeMap<String, String>, prefix: &str) -> bool {
    let child = format!("{prefix}/");
    map.contains_key(prefix)
        || map
            .range(child.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&child))
}

/// JSON Schema keywords whose value is a map from names to schemas (so its
/// keys are names, not keywords).
const NAME_MAPS: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];
/// Annotation keywords left out: they do not change what deserialises.
const ANNOTATIONS: &[&str] = &["title", "description", "$schema", "$comment", "examples"];

/// Flattens a schema into `pointer -> compact JSON` leaves. Objects are
/// descended into; arrays of objects too (`anyOf`, `oneOf`, …); other
/// arrays are leaves, `required` sorted (its order means nothing).
fn flatten(
    value: &Value,
    pointer: &mut String,
    in_name_map: bool,
    out: &mut BTreeMap<String, String>,
) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, v) in map {
                if !in_name_map && ANNOTATIONS.contains(&key.as_str()) {
                    continue;
                }
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                let names = !in_name_map && NAME_MAPS.contains(&key.as_str());
                if !in_name_map && key == "required" {
                    let mut required = v.as_array().cloned().unwrap_or_default();
                    required.sort_by_key(|r| r.to_string());
                    out.insert(pointer.clone(), Value::Array(required).to_string());
                } else {
                    flatten(v, pointer, names, out);
                }
                pointer.truncate(len);
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            for (i, v) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                flatten(v, pointer, false, out);
                pointer.truncate(len);
            }
        }
        leaf => {
            let key = if pointer.is_empty() { "/" } else { pointer };
            out.insert(key.to_owned(), leaf.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_new_subtree_is_one_change_at_its_root() {
        let old = map(&[("/properties/a/type", "\"string\"")]);
        let new = map(&[
            ("/properties/a/type", "\"string\""),
            ("/properties/b/type", "\"integer\""),
            ("/properties/b/format", "\"uint64\""),
        ]);
        assert_eq!(
            schema_changes(&old, &new),
            [SchemaChange::Added {
                pointer: "/properties/b".into(),
                value: None
            }]
        );
        assert_eq!(
            schema_changes(&new, &old),
            [SchemaChange::Removed {
                pointer: "/properties/b".into(),
                value: None
            }]
        );
    }

    #[test]
    fn a_new_leaf_next_to_old_ones_is_named_with_its_value() {
        let old = map(&[("/properties/a/type", "\"integer\"")]);
        let new = map(&[
            ("/properties/a/type", "\"integer\""),
            ("/properties/a/minimum", "0"),
        ]);
        assert_eq!(
            schema_changes(&old, &new),
            [SchemaChange::Added {
                pointer: "/properties/a/minimum".into(),
                value: Some("0".into())
            }]
        );
    }

    #[test]
    fn flatten_skips_annotations_but_not_fields_named_like_them() {
        let schema = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "T",
            "description": "docs",
            "type": "object",
            "properties": {
                "description": {"type": "string", "description": "a field"},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["tags", "description"]
        });
        let mut out = BTreeMap::new();
        flatten(&schema, &mut String::new(), false, &mut out);
        assert_eq!(
            out,
            map(&[
                ("/properties/description/type", "\"string\""),
                ("/properties/tags/items/type", "\"string\""),
                ("/properties/tags/type", "\"array\""),
                ("/required", "[\"description\",\"tags\"]"),
                ("/type", "\"object\""),
            ])
        );
    }

    #[test]
    fn pointers_with_spaces_survive_the_file() {
        let mut contents = FileContents::default();
        contents.types.insert(
            "T".into(),
            TypeEntry {
                name: "T".into(),
                schema: map(&[("/properties/a b%/type", "\"string\"")]),
            },
        );
        let text = render(&contents);
        let back = FileContents::parse(&text).expect("parses");
        assert_eq!(back.types["T"], contents.types["T"]);
    }

    #[test]
    fn malformed_files_name_the_line() {
        let bad = "# c\nmachine M 00000000000000ff\n  state A plain\n  stat B plain\n";
        let (line, detail) = FileContents::parse(bad).expect_err("malformed");
        assert_eq!(line, 4);
        assert!(detail.contains("stat B plain"), "{detail}");
        let (line, _) = FileContents::parse("state A plain\n").expect_err("no section");
        assert_eq!(line, 1);
        let (line, detail) = FileContents::parse("machine M zz\n").expect_err("bad hex");
        assert_eq!(line, 1);
        assert!(detail.contains("zz"), "{detail}");
    }
}
