//! The static shape of a machine: states, moves and bounds, as a value.
//!
//! The `#[machine]` macro builds one [`Graph`] per machine as a `static`, so
//! reading it costs nothing at run time. It is what the runner enforces
//! (visit limits, the step limit, which states are gates and waits) and what
//! tools print.

use std::fmt;

/// What a state does when a run enters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateKind {
    /// Code decides: the state's handler returns the next move.
    Plain,
    /// A model decides: the handler must return a validated decision.
    Gate,
    /// The world decides: the run suspends until a typed signal arrives.
    Wait,
    /// The run ends here.
    Terminal,
}

impl StateKind {
    /// The lowercase word used in exports (`plain`, `gate`, `wait`, `terminal`).
    pub const fn as_str(self) -> &'static str {
        match self {
            StateKind::Plain => "plain",
            StateKind::Gate => "gate",
            StateKind::Wait => "wait",
            StateKind::Terminal => "terminal",
        }
    }

    /// The kind for its word ([`StateKind::as_str`]).
    pub fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "plain" => StateKind::Plain,
            "gate" => StateKind::Gate,
            "wait" => StateKind::Wait,
            "terminal" => StateKind::Terminal,
            _ => return None,
        })
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One state of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateInfo {
    /// The variant's name, e.g. `"Classify"`.
    pub name: &'static str,
    /// What happens in this state.
    pub kind: StateKind,
    /// The payload the state is entered with, as written in the source
    /// (`""` for none, `"Refund"`, `"{ reason: String }"`).
    pub payload: &'static str,
    /// The variant's doc comment, trimmed (`""` when there is none).
    pub doc: &'static str,
    /// `#[max_visits(N)]`, if given.
    pub max_visits: Option<u32>,
    /// Whether this is the `#[initial]` state.
    pub initial: bool,
}

/// Who picks a move along an edge: the kind of its source state.
pub type EdgeKind = StateKind;

/// A declared move from one state to another (indices into [`Graph::states`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// Index of the source state.
    pub from: usize,
    /// Index of the target state.
    pub to: usize,
    /// `Plain`, `Gate` or `Wait`: who picks this move.
    pub kind: EdgeKind,
}

/// The most a run of a machine can do, known before it starts.
///
/// Each figure is a sound upper bound: no run ever exceeds it (see the
/// README's "Worst case" section for how they are computed). Machines that
/// pass the macro's checks always have both; `None` appears only in the
/// expansion emitted next to a compile error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorstCase {
    /// The most steps (entries into non-terminal states) one run can take, including the
    /// wrap-up allowance when the machine has `on_exhausted`.
    pub steps: Option<u64>,
    /// The most model decisions (gate steps) one run can take.
    pub decisions: Option<u64>,
}

/// The graph of a machine, built at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Graph {
    /// The machine enum's name.
    pub name: &'static str,
    /// States in source order.
    pub states: &'static [StateInfo],
    /// Moves in source order (by source state, then by `#[to]` order).
    pub edges: &'static [Edge],
    /// Index of the initial state.
    pub initial: usize,
    /// `max_steps` from `#[machine(..)]`, if given.
    pub max_steps: Option<u64>,
    /// The state a run moves to when a bound is hit (`on_exhausted`).
    pub on_exhausted: Option<usize>,
    /// The static worst case of one run.
    pub worst_case: WorstCase,
    /// A hash of the graph's shape: state names, kinds and payload types,
    /// and the moves (not docs or bounds), order-independent. Durable runs
    /// store it, and a run stored under another fingerprint is not resumed
    /// unless the runner allows it (`RunnerBuilder::allow_graph_change`).
    /// 64-bit FNV-1a, computed by `#[machine]` at compile time, over the
    /// lines of [`Graph::shape`].
    pub fingerprint: u64,
    /// What the fingerprint covers, as text: one line per state, sorted
    /// (`state <name> <kind>`, then the payload's types without spaces if
    /// it has a payload: `state Escalate plain {reason:String}`,
    /// `state IssueRefund plain (Refund)`), then one line per move, sorted
    /// (`move Classify Escalate`), each ending in `\n`. The same for the
    /// same shape whatever the compiler version, docs or declaration order,
    /// so it can be committed and compared
    /// ([`crate::testing::assert_fingerprints`]). Graphs written by hand
    /// may leave it empty.
    pub shape: &'static str,
    /// The graph as Mermaid `stateDiagram-v2` text.
    pub mermaid: &'static str,
    /// The graph as Graphviz DOT text.
    pub dot: &'static str,
}

impl Graph {
    /// The graph as Mermaid text (as [`Graph::mermaid`]) with each state's
    /// child machine drawn inside it as a nested state: `children` pairs a
    /// state's name with its child machine's graph. Child states are named
    /// `<Child>_<State>` so they cannot clash with the parent's. Machines
    /// with `#[children(..)]` states get it as `mermaid_with_children()`.
    pub fn mermaid_with_children(&self, children: &[(&str, &Graph)]) -> String {
        let mut out = String::from(self.mermaid);
        if !out.ends_with('\n') {
            out.push('\n');
        }
        for (state, child) in children {
            let id = |s: &StateInfo| format!("{}_{}", child.name, s.name);
            out.push_str(&format!("    state {state} {{\n"));
            let initial = &child.states[child.initial];
            out.push_str(&format!("        [*] --> {}\n", id(initial)));
            for e in child.edges {
                out.push_str(&format!(
                    "        {} --> {}\n",
                    id(&child.states[e.from]),
                    id(&child.states[e.to])
                ));
            }
            for s in child
                .states
                .iter()
                .filter(|s| s.kind == StateKind::Terminal)
            {
                out.push_str(&format!("        {} --> [*]\n", id(s)));
            }
            out.push_str("    }\n");
        }
        out
    }

    /// The state with this name.
    pub fn state(&self, name: &str) -> Option<&'static StateInfo> {
        self.states.iter().find(|s| s.name == name)
    }

    /// The index of the state with this name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.states.iter().position(|s| s.name == name)
    }

    /// The moves out of state `from`.
    pub fn moves_from(&self, from: usize) -> impl Iterator<Item = &'static Edge> + '_ {
        self.edges.iter().filter(move |e| e.from == from)
    }
}
