//! The machine as the later stages see it: states, moves and bounds in
//! source order, with the user's tokens kept for spans.

use proc_macro2::Span;
use syn::{Attribute, Ident, Path, Type, Visibility};

/// What a state does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plain,
    Gate,
    Wait,
    Terminal,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Plain => "Plain",
            Kind::Gate => "Gate",
            Kind::Wait => "Wait",
            Kind::Terminal => "Terminal",
        }
    }
}

/// A state's payload: the variant's fields.
#[derive(Clone)]
#[cfg_attr(test, derive(Debug))]
pub enum Payload {
    Unit,
    Tuple(Vec<Type>),
    Struct(Vec<(Ident, Type)>),
}

impl Payload {
    pub fn types(&self) -> Vec<&Type> {
        match self {
            Payload::Unit => Vec::new(),
            Payload::Tuple(t) => t.iter().collect(),
            Payload::Struct(f) => f.iter().map(|(_, t)| t).collect(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Payload::Unit => 0,
            Payload::Tuple(t) => t.len(),
            Payload::Struct(f) => f.len(),
        }
    }
}

/// One state (enum variant).
#[derive(Clone)]
#[cfg_attr(test, derive(Debug))]
pub struct State {
    pub ident: Ident,
    /// Position in the enum, which is the index in the runtime graph.
    pub index: usize,
    pub kind: Kind,
    /// Set when the state is `#[initial]` (the attribute's span).
    pub initial: Option<Span>,
    /// `#[to(..)]` targets as written.
    pub targets: Vec<Ident>,
    /// The `#[to]` attribute, if any.
    pub to_span: Option<Span>,
    pub max_visits: Option<(u32, Span)>,
    /// `#[gate(fallback = X)]`: the move taken when a gate gets no valid
    /// decision.
    pub fallback: Option<Ident>,
    /// `#[gate(max_repairs = N)]`.
    pub max_repairs: Option<u32>,
    /// `#[children(Machine, input = T, output = U)]`.
    pub children: Option<Children>,
    pub payload: Payload,
    /// The variant's fields as written (with their attributes), copied into
    /// the generated move enums.
    pub fields: syn::Fields,
    /// The doc comment, trimmed and joined.
    pub doc: String,
    /// The variant's other attributes (docs, serde, cfg, …), kept as written.
    pub attrs: Vec<Attribute>,
}

/// A state's child machine: `#[children(Machine, input = T, output = U)]`.
#[derive(Clone)]
#[cfg_attr(test, derive(Debug))]
pub struct Children {
    /// The child machine, as written.
    pub machine: syn::Path,
    /// The context each child is started with.
    pub input: Type,
    /// A terminal payload of the child machine, if declared.
    pub output: Option<Type>,
    /// Where errors about the declaration go: the child machine's name.
    pub span: Span,
}

impl State {
    pub fn name(&self) -> String {
        self.ident.to_string()
    }
}

/// The whole machine.
#[derive(Clone)]
#[cfg_attr(test, derive(Debug))]
pub struct Machine {
    pub ident: Ident,
    pub vis: Visibility,
    pub context: Type,
    pub max_steps: Option<(u64, Span)>,
    pub on_exhausted: Option<Ident>,
    /// Path to the facade's hidden module, e.g. `::guiderail::__private`.
    pub private: Path,
    pub states: Vec<State>,
}

impl Machine {
    pub fn state(&self, ident: &Ident) -> Option<&State> {
        self.states.iter().find(|s| s.ident == *ident)
    }

    pub fn index_of(&self, ident: &Ident) -> Option<usize> {
        self.states.iter().position(|s| s.ident == *ident)
    }

    pub fn initial(&self) -> Option<&State> {
        self.states.iter().find(|s| s.initial.is_some())
    }
}
