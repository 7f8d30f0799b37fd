//! The graph as SVG, laid out in-process by layout-rs (no Graphviz): the
//! states the run entered and the moves it took drawn in blue, gates and
//! waits filled and labelled, terminals as double circles.

use std::collections::HashMap;

use guiderail_runtime::{GraphRecord, StateKind};
use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::render::get_shape_size;
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;

/// The colour of the run's path.
pub(crate) const PATH_COLOR: &str = "#1c64d8";
/// Gates' fill.
pub(crate) const GATE_FILL: &str = "#ffe8a3";
/// Waits' fill.
pub(crate) const WAIT_FILL: &str = "#c9e4ff";
/// Terminals' fill.
pub(crate) const TERMINAL_FILL: &str = "#d5f5d9";
const IDLE_LINE: &str = "#8a9099";
const FONT: usize = 15;

/// The graph as an SVG document, `path` (the states entered, in order)
/// highlighted.
pub(crate) fn svg(graph: &GraphRecord, path: &[String]) -> String {
    let mut visits: HashMap<&str, usize> = HashMap::new();
    for s in path {
        *visits.entry(s.as_str()).or_default() += 1;
    }
    let mut taken: HashMap<(usize, usize), usize> = HashMap::new();
    for pair in path.windows(2) {
        if let (Some(a), Some(b)) = (graph.index_of(&pair[0]), graph.index_of(&pair[1])) {
            *taken.entry((a, b)).or_default() += 1;
        }
    }

    if graph.states.is_empty() {
        return SVGWriter::new().finalize();
    }
    // layout-rs asserts its own invariants; should one fail, lay out again
    // without its optimisations, then without placement, rather than fail.
    for (no_opt, no_layout) in [(false, false), (true, false), (true, true)] {
        let drawn = std::panic::catch_unwind(|| {
            let mut vg = build(graph, &visits, &taken);
            let mut writer = SVGWriter::new();
            vg.do_it(false, no_opt, no_layout, &mut writer);
            writer.finalize()
        });
        if let Ok(svg) = drawn {
            return svg;
        }
    }
    SVGWriter::new().finalize()
}

/// The graph as layout-rs's shapes and arrows.
fn build(
    graph: &GraphRecord,
    visits: &HashMap<&str, usize>,
    taken: &HashMap<(usize, usize), usize>,
) -> VisualGraph {
    let dir = Orientation::TopToBottom;
    let mut vg = VisualGraph::new(dir);
    let mut handles = Vec::with_capacity(graph.states.len());
    for (i, s) in graph.states.iter().enumerate() {
        let kind = s.kind().unwrap_or(StateKind::Plain);
        let on_path = visits.contains_key(s.name.as_str());
        let (label, fill, rounded) = match kind {
            StateKind::Gate => (format!("gate: {}", s.name), GATE_FILL, 14),
            StateKind::Wait => (format!("wait: {}", s.name), WAIT_FILL, 0),
            StateKind::Terminal => (s.name.clone(), TERMINAL_FILL, 0),
            StateKind::Plain => (s.name.clone(), "#ffffff", 0),
        };
        let label = if i == graph.initial {
            format!("start: {label}")
        } else {
            label
        };
        let label = match visits.get(s.name.as_str()) {
            Some(&n) if n > 1 => format!("{label} ({n}x)"),
            _ => label,
        };
        let shape = match kind {
            StateKind::Terminal => ShapeKind::new_double_circle(&label),
            _ => ShapeKind::new_box(&label),
        };
        let look = StyleAttr::new(
            Color::fast(if on_path { PATH_COLOR } else { IDLE_LINE }),
            if on_path { 4 } else { 1 },
            Some(Color::fast(fill)),
            rounded,
            FONT,
        );
        let size = get_shape_size(dir, &shape, FONT, false);
        let class = format!(
            "class=\"state {}{}\" data-state=\"{}\"",
            kind.as_str(),
            if on_path { " visited" } else { "" },
            attr(&s.name)
        );
        handles.push(vg.add_node(Element::create_with_properties(
            shape, look, dir, size, class,
        )));
    }
    for &(from, to) in &graph.edges {
        let (Some(&a), Some(&b)) = (handles.get(from), handles.get(to)) else {
            continue;
        };
        let times = taken.get(&(from, to)).copied().unwrap_or(0);
        let look = StyleAttr::new(
            Color::fast(if times > 0 { PATH_COLOR } else { IDLE_LINE }),
            if times > 0 { 3 } else { 1 },
            None,
            0,
            FONT,
        );
        // No text on moves: layout-rs can fail on labelled moves in cycles.
        let text = "";
        let class = format!(
            "class=\"move{}\" data-from=\"{}\" data-to=\"{}\"",
            if times > 0 { " taken" } else { "" },
            attr(&graph.states[from].name),
            attr(&graph.states[to].name)
        );
        let arrow = Arrow::with_properties(
            LineEndKind::None,
            LineEndKind::Arrow,
            if times > 0 {
                LineStyleKind::Normal
            } else {
                LineStyleKind::Dashed
            },
            text,
            &look,
            class,
            &None,
            &None,
        );
        vg.add_edge(arrow, a, b);
    }
    vg
}

/// `s` for an SVG attribute value (state names come from the store, which
/// an imported history fills).
fn attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG without its XML declaration, to put inside an HTML page.
pub(crate) fn inline_svg(graph: &GraphRecord, path: &[String]) -> String {
    let svg = svg(graph, path);
    match svg.find("<svg") {
        Some(i) => svg[i..].to_owned(),
        None => svg,
    }
}

#[cfg(test)]
mod tests {
    use guiderail_runtime::{GraphRecord, StateRecord};

    fn state(name: &str, kind: &str) -> StateRecord {
        StateRecord {
            name: name.into(),
            kind: kind.into(),
            payload: String::new(),
            doc: String::new(),
            max_visits: None,
        }
    }

    fn record(states: Vec<StateRecord>, edges: Vec<(usize, usize)>) -> GraphRecord {
        GraphRecord {
            machine: "Loop".into(),
            fingerprint: 1,
            states,
            edges,
            initial: 0,
            max_steps: Some(100),
            on_exhausted: None,
            mermaid: String::new(),
            dot: String::new(),
        }
    }

    #[test]
    fn self_moves_cycles_and_hostile_names_render() {
        let g = record(
            vec![
                state("Begin", "plain"),
                state("Work", "plain"),
                state("Review", "gate"),
                state("Park", "wait"),
                state("Fin\"ish<", "terminal"),
            ],
            // A self move, a cycle, a wait, and an edge to nowhere.
            vec![
                (0, 1),
                (1, 1),
                (1, 2),
                (2, 1),
                (2, 3),
                (3, 4),
                (2, 4),
                (4, 9),
            ],
        );
        let path: Vec<String> = ["Begin", "Work", "Work", "Review", "Work", "Review"]
            .map(String::from)
            .into();
        let svg = super::svg(&g, &path);
        assert!(
            svg.contains("class=\"state gate visited\" data-state=\"Review\""),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"state wait\" data-state=\"Park\""),
            "{svg}"
        );
        assert!(svg.contains("data-state=\"Fin&quot;ish&lt;\""), "{svg}");
        assert!(!svg.contains("Fin\"ish<\""), "{svg}");
        assert!(
            svg.contains("class=\"move taken\" data-from=\"Work\" data-to=\"Review\""),
            "{svg}"
        );
        // Work was entered three times.
        assert!(svg.contains(">Work (3x)<"), "{svg}");
        assert!(
            svg.contains("class=\"move\" data-from=\"Review\" data-to=\"Park\""),
            "{svg}"
        );
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn random_graphs_with_random_paths_always_draw_every_state() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let kinds = ["plain", "gate", "wait", "plain"];
        for case in 0..150 {
            let n = 2 + next(9);
            let mut states: Vec<StateRecord> = (0..n - 1)
                .map(|i| state(&format!("S{i}"), kinds[next(kinds.len())]))
                .collect();
            states.push(state("End", "terminal"));
            let mut edges = Vec::new();
            for from in 0..n - 1 {
                for _ in 0..1 + next(3) {
                    let to = next(n);
                    if !edges.contains(&(from, to)) {
                        edges.push((from, to));
                    }
                }
            }
            let g = record(states, edges.clone());
            // A walk along the edges.
            let mut at = 0;
            let mut path = vec![g.states[0].name.clone()];
            for _ in 0..next(30) {
                let outs: Vec<usize> = edges.iter().filter(|e| e.0 == at).map(|e| e.1).collect();
                if outs.is_empty() {
                    break;
                }
                at = outs[next(outs.len())];
                path.push(g.states[at].name.clone());
            }
            let svg = super::svg(&g, &path);
            for s in &g.states {
                assert!(
                    svg.contains(&format!("data-state=\"{}\"", s.name)),
                    "case {case}: {} missing from {edges:?} / {path:?}",
                    s.name
                );
            }
        }
    }

    #[test]
    fn an_empty_graph_is_an_empty_picture() {
        let svg = super::svg(&record(Vec::new(), Vec::new()), &[]);
        assert!(
            svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
            "{svg}"
        );
    }
}
