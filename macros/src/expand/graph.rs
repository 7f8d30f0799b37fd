//! The graph as a static value, and as Mermaid and DOT text built at
//! compile time.

use proc_macro2::TokenStream;
use quote::quote;

use super::moves;
use crate::analysis::WorstCase;
use crate::model::{Kind, Machine, Payload, State};

fn kind_tokens(m: &Machine, k: Kind) -> TokenStream {
    let p = &m.private;
    match k {
        Kind::Plain => quote!(#p::StateKind::Plain),
        Kind::Gate => quote!(#p::StateKind::Gate),
        Kind::Wait => quote!(#p::StateKind::Wait),
        Kind::Terminal => quote!(#p::StateKind::Terminal),
    }
}

fn opt<T: quote::ToTokens>(v: Option<T>) -> TokenStream {
    match v {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

/// The payload as text: `""`, `"(Refund)"`, `"{ reason : String }"` —
/// field names and types, without the fields' attributes or docs.
fn payload_text(s: &State) -> String {
    match &s.payload {
        Payload::Unit => String::new(),
        Payload::Tuple(types) => {
            let types: Vec<String> = types.iter().map(|t| quote!(#t).to_string()).collect();
            format!("({})", types.join(", "))
        }
        Payload::Struct(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|(f, t)| format!("{f} : {}", quote!(#t)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
    }
}

/// The payload's types as text with all whitespace removed (`""`,
/// `(Refund)`, `{reason:String}`): field names and types, not docs, and not
/// the spacing a compiler version prints tokens with.
fn payload_shape(s: &State) -> String {
    let text = match &s.payload {
        Payload::Unit => String::new(),
        Payload::Tuple(types) => {
            let types = types.iter().map(|t| quote!(#t).to_string());
            format!("({})", types.collect::<Vec<_>>().join(","))
        }
        Payload::Struct(fields) => {
            let fields = fields.iter().map(|(f, t)| format!("{f}:{}", quote!(#t)));
            format!("{{{}}}", fields.collect::<Vec<_>>().join(","))
        }
    };
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The graph's shape as text, one line per state (`state <name> <kind>`,
/// then ` <payload shape>` if it has a payload), sorted, then one per move
/// (`move <from> <to>`), sorted: what the fingerprint covers, readable.
pub fn shape(m: &Machine) -> String {
    let mut states: Vec<String> = m
        .states
        .iter()
        .map(|s| {
            let payload = payload_shape(s);
            let mut line = format!("state {} {}", s.ident, kind_word(s.kind));
            if !payload.is_empty() {
                line.push(' ');
                line.push_str(&payload);
            }
            line
        })
        .collect();
    states.sort();
    let mut moves: Vec<String> = m
        .states
        .iter()
        .flat_map(|s| {
            moves::targets(m, s)
                .into_iter()
                .map(move |t| format!("move {} {}", s.ident, t.ident))
        })
        .collect();
    moves.sort();
    states.extend(moves);
    let mut text = states.join("\n");
    text.push('\n');
    text
}

/// The graph's fingerprint: FNV-1a over the sorted lines
/// `state <name> <kind> <payload shape>` and `move <from> <to>`, so it
/// changes when a state, its kind or payload types, or a move changes, and
/// not when docs, bounds or the order of declarations do.
///
/// These are the lines of [`shape`], except that a state without payload
/// keeps a space after its kind; the hash must not change (stored runs
/// carry it), so it is computed as it always was.
pub fn fingerprint(m: &Machine) -> u64 {
    let mut lines: Vec<String> = m
        .states
        .iter()
        .map(|s| {
            format!(
                "state {} {} {}",
                s.ident,
                kind_word(s.kind),
                payload_shape(s)
            )
        })
        .collect();
    for s in &m.states {
        for t in moves::targets(m, s) {
            lines.push(format!("move {} {}", s.ident, t.ident));
        }
    }
    lines.sort();
    lines.iter().fold(0xcbf2_9ce4_8422_2325, |h, line| {
        fnv1a(line.as_bytes(), fnv1a(b"\n", h))
    })
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::Plain => "plain",
        Kind::Gate => "gate",
        Kind::Wait => "wait",
        Kind::Terminal => "terminal",
    }
}

/// `fn graph() -> &'static Graph` body.
pub fn graph_fn(m: &Machine, worst: WorstCase) -> TokenStream {
    let p = &m.private;
    let name = m.ident.to_string();
    let states = m.states.iter().map(|s| {
        let n = s.ident.to_string();
        let kind = kind_tokens(m, s.kind);
        let payload = payload_text(s);
        let doc = &s.doc;
        let max_visits = opt(s.max_visits.map(|(v, _)| v));
        let initial = s.initial.is_some();
        quote! {
            #p::StateInfo {
                name: #n, kind: #kind, payload: #payload, doc: #doc,
                max_visits: #max_visits, initial: #initial,
            }
        }
    });
    let edges = m.states.iter().flat_map(|s| {
        moves::targets(m, s).into_iter().map(move |t| {
            let (from, to) = (s.index, t.index);
            let kind = kind_tokens(m, s.kind);
            quote!(#p::Edge { from: #from, to: #to, kind: #kind })
        })
    });
    let initial = m.initial().map_or(0, |s| s.index);
    let max_steps = opt(m.max_steps.map(|(n, _)| n));
    let on_exhausted = opt(m.on_exhausted.as_ref().and_then(|i| m.index_of(i)));
    let ws = opt(worst.steps);
    let wd = opt(worst.decisions);
    let mermaid = mermaid(m, worst);
    let dot = dot(m);
    let fingerprint = fingerprint(m);
    let shape = shape(m);
    quote! {
        static __GRAPH: #p::Graph = #p::Graph {
            name: #name,
            states: &[#(#states),*],
            edges: &[#(#edges),*],
            initial: #initial,
            max_steps: #max_steps,
            on_exhausted: #on_exhausted,
            worst_case: #p::WorstCase { steps: #ws, decisions: #wd },
            fingerprint: #fingerprint,
            shape: #shape,
            mermaid: #mermaid,
            dot: #dot,
        };
        &__GRAPH
    }
}

fn fmt_opt(v: Option<u64>) -> String {
    v.map_or_else(|| "unbounded".to_owned(), |v| v.to_string())
}

/// Mermaid `stateDiagram-v2`: gate moves are labelled `model`, wait moves
/// `signal`; gates, waits and visit limits are named on the state.
pub fn mermaid(m: &Machine, worst: WorstCase) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    out.push_str(&format!(
        "    %% {}: worst case {} steps, {} model decisions\n",
        m.ident,
        fmt_opt(worst.steps),
        fmt_opt(worst.decisions)
    ));
    for s in &m.states {
        let mut tags = Vec::new();
        match s.kind {
            Kind::Gate => tags.push("gate".to_owned()),
            Kind::Wait => tags.push("wait".to_owned()),
            _ => {}
        }
        if let Some((v, _)) = s.max_visits {
            tags.push(format!("max {v} visits"));
        }
        if !tags.is_empty() {
            out.push_str(&format!(
                "    state \"{} ({})\" as {}\n",
                s.ident,
                tags.join(", "),
                s.ident
            ));
        }
    }
    if let Some(init) = m.initial() {
        out.push_str(&format!("    [*] --> {}\n", init.ident));
    }
    for s in &m.states {
        for t in moves::targets(m, s) {
            let label = match s.kind {
                Kind::Gate => ": model",
                Kind::Wait => ": signal",
                _ => "",
            };
            out.push_str(&format!("    {} --> {}{}\n", s.ident, t.ident, label));
        }
        if s.kind == Kind::Terminal {
            out.push_str(&format!("    {} --> [*]\n", s.ident));
        }
    }
    if let Some(wrap) = &m.on_exhausted {
        out.push_str(&format!("    note left of {wrap}: on_exhausted\n"));
    }
    for s in &m.states {
        if let Some(c) = &s.children {
            let child = c.machine.segments.last().map(|s| s.ident.to_string());
            out.push_str(&format!(
                "    note right of {}: children: {}\n",
                s.ident,
                child.unwrap_or_default()
            ));
        }
    }
    out
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz DOT: gates are diamonds, waits hexagons, terminals double
/// circles; the doc comment is each node's tooltip.
pub fn dot(m: &Machine) -> String {
    let mut out = format!(
        "digraph {} {{\n    rankdir=LR;\n    node [shape=box, style=rounded];\n    __start [shape=point];\n",
        m.ident
    );
    for s in &m.states {
        let (shape, extra) = match s.kind {
            Kind::Plain => ("box", String::new()),
            Kind::Gate => ("diamond", "\\n(gate)".to_owned()),
            Kind::Wait => ("hexagon", "\\n(wait)".to_owned()),
            Kind::Terminal => ("doublecircle", String::new()),
        };
        let visits = s
            .max_visits
            .map_or_else(String::new, |(v, _)| format!("\\nmax {v} visits"));
        out.push_str(&format!(
            "    {} [shape={shape}, label=\"{}{extra}{visits}\", tooltip=\"{}\"];\n",
            s.ident,
            s.ident,
            dot_escape(&s.doc)
        ));
    }
    if let Some(init) = m.initial() {
        out.push_str(&format!("    __start -> {};\n", init.ident));
    }
    for s in &m.states {
        for t in moves::targets(m, s) {
            let label = match s.kind {
                Kind::Gate => " [label=\"model\"]",
                Kind::Wait => " [label=\"signal\", style=dashed]",
                _ => "",
            };
            out.push_str(&format!("    {} -> {}{};\n", s.ident, t.ident, label));
        }
    }
    out.push_str("}\n");
    out
}
