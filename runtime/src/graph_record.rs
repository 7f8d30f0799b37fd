//! [`GraphRecord`]: a machine's graph as data, stored with every durable
//! run so tools can show the graph a run ran on without the machine's code.

use serde::{Deserialize, Serialize};

use crate::graph::{Graph, StateKind};

/// One state of a [`GraphRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// The state's name.
    pub name: String,
    /// `plain`, `gate`, `wait` or `terminal`.
    pub kind: String,
    /// The payload as written in the source (`""` for none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub payload: String,
    /// The state's doc comment.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub doc: String,
    /// `#[max_visits(N)]`, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_visits: Option<u32>,
}

impl StateRecord {
    /// The state's kind, if its word is known.
    pub fn kind(&self) -> Option<StateKind> {
        StateKind::parse(&self.kind)
    }
}

/// A machine's graph as owned, serialisable data (see [`Graph`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphRecord {
    /// The machine's name.
    pub machine: String,
    /// The graph's fingerprint.
    pub fingerprint: u64,
    /// The states, in source order.
    pub states: Vec<StateRecord>,
    /// The moves as (from, to) indices into `states`.
    pub edges: Vec<(usize, usize)>,
    /// The initial state's index.
    pub initial: usize,
    /// `max_steps`, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u64>,
    /// The `on_exhausted` state's index, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exhausted: Option<usize>,
    /// The graph as Mermaid text.
    pub mermaid: String,
    /// The graph as Graphviz DOT text.
    pub dot: String,
}

impl GraphRecord {
    /// The index of the state with this name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.states.iter().position(|s| s.name == name)
    }
}

impl From<&Graph> for GraphRecord {
    fn from(g: &Graph) -> Self {
        GraphRecord {
            machine: g.name.to_owned(),
            fingerprint: g.fingerprint,
            states: g
                .states
                .iter()
                .map(|s| StateRecord {
                    name: s.name.to_owned(),
                    kind: s.kind.as_str().to_owned(),
                    payload: s.payload.to_owned(),
                    doc: s.doc.to_owned(),
                    max_visits: s.max_visits,
                })
                .collect(),
            edges: g.edges.iter().map(|e| (e.from, e.to)).collect(),
            initial: g.initial,
            max_steps: g.max_steps,
            on_exhausted: g.on_exhausted,
            mermaid: g.mermaid.to_owned(),
            dot: g.dot.to_owned(),
        }
    }
}
