//! Graph algorithms over the model: adjacency, reachability, strongly
//! connected components, and the static worst case of a run.
//!
//! Everything here works on state indices (source order) and returns
//! results in source order, so the checks that use it report in a stable
//! order. Nothing here reports errors: the worst case is also computed for
//! machines that failed their checks (the expansion still runs), so every
//! function copes with unknown targets, several or no initial states and
//! unbounded cycles.

use crate::model::{Kind, Machine};

/// The static worst case of one run (see the README's "Worst case").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorstCase {
    pub steps: Option<u64>,
    pub decisions: Option<u64>,
}

/// Successor lists by state index, from the declared (known) targets,
/// duplicates removed, in `#[to]` order. Moves out of terminal states are
/// left out: a run ends when it enters a terminal state, whatever its
/// (erroneous) `#[to]` says.
pub fn successors(m: &Machine) -> Vec<Vec<usize>> {
    let mut adj = vec![Vec::new(); m.states.len()];
    for s in &m.states {
        if s.kind == Kind::Terminal {
            continue;
        }
        for t in &s.targets {
            if let Some(to) = m.index_of(t)
                && !adj[s.index].contains(&to)
            {
                adj[s.index].push(to);
            }
        }
    }
    adj
}

/// Which states a walk from any of `roots` can enter (the roots included).
pub fn reachable(adj: &[Vec<usize>], roots: &[usize]) -> Vec<bool> {
    let mut seen = vec![false; adj.len()];
    let mut stack: Vec<usize> = Vec::new();
    for &r in roots {
        if !seen[r] {
            seen[r] = true;
            stack.push(r);
        }
    }
    while let Some(v) = stack.pop() {
        for &w in &adj[v] {
            if !seen[w] {
                seen[w] = true;
                stack.push(w);
            }
        }
    }
    seen
}

/// The strongly connected components of the subgraph induced by the states
/// with `keep[v]` (Tarjan's algorithm, iterative so deep graphs cannot
/// overflow the macro's stack).
///
/// Each component lists its states in source order; the components come in
/// reverse topological order (a component comes before every component
/// that can reach it), which is the order the worst case folds them in.
pub fn sccs(adj: &[Vec<usize>], keep: &[bool]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let n = adj.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut out = Vec::new();
    let mut next = 0;
    for root in 0..n {
        if !keep[root] || index[root] != UNSEEN {
            continue;
        }
        // (vertex, position in its successor list)
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut i)) = call.last_mut() {
            if let Some(&w) = adj[v].get(*i) {
                *i += 1;
                if !keep[w] {
                    continue;
                }
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            call.pop();
            if let Some(&(parent, _)) = call.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = Vec::new();
                loop {
                    let w = stack.pop().expect("tarjan stack");
                    on_stack[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                comp.sort_unstable();
                out.push(comp);
            }
        }
    }
    out
}

/// Whether a component contains a cycle: more than one state, or a state
/// that moves to itself.
pub fn is_cyclic(adj: &[Vec<usize>], comp: &[usize]) -> bool {
    comp.len() > 1 || adj[comp[0]].contains(&comp[0])
}

/// A sound upper bound on the steps and decisions of any run of `m`.
///
/// # What is counted
///
/// A *step* is one entry into a non-terminal state (plain, gate or wait); a
/// *decision* is one entry into a gate. A run may not enter a state with
/// `#[max_visits(k)]` a (k+1)-th time, takes at most `max_steps` steps, and
/// ends when it enters a terminal state.
///
/// # How the bound is computed
///
/// The exact longest run under visit limits is NP-hard to compute (it
/// contains the longest-simple-path problem), so the macro computes a cheap
/// bound that is never below the truth. Only states reachable from the
/// initial state take part. The *limited* states are those with
/// `#[max_visits]`; the *free* states are the other non-terminal ones. K is
/// the sum of the limits of the limited states.
///
/// Cut a run at its entries into limited states. There are at most K of
/// them, and between two of them (and before the first, and after the
/// last) the run passes through free states only. If the free states form
/// no cycle, each such stretch is a path of the acyclic graph of free
/// states, and longest paths in an acyclic graph take linear time:
///
/// - L(v) is the most free states on a path from v; for a limited state s,
///   L(s) is the longest stretch that can follow it (the largest L of its
///   moves into free states);
/// - R(v) and R(s) are the same, but only over paths whose last state has
///   a move into a limited state, so that the run can enter a limited
///   state again (0 when there is no such path, or when `s` itself moves
///   straight into a limited state).
///
/// Every stretch except the last leads back into a limited state, so with
/// `i` the initial state a run takes at most
///
/// ```text
/// K + max( L(i),  R(i) + Σ max_visits(s)·R(s) + max (L(s) − R(s)) )
///                         s                     s
/// ```
///
/// steps, where the first term covers runs that never enter a limited
/// state. This is never more than the simpler `K + (K + 1)·L`, with L the
/// longest path of free states. Decisions are bounded by the same formula
/// with each path counting only its gates, and with the limits of the
/// limited gates in place of K.
///
/// With `max_steps = N`, steps are at most N as well, and decisions are
/// never more than steps. If the free states contain a cycle, visit limits
/// do not bound a run and the step figure is `max_steps` alone; without
/// `max_steps` it is `None` (the checks reject such a machine). A free
/// cycle without a gate on it still leaves a finite decision figure.
///
/// With `on_exhausted = S`, a run that hits a bound moves to S and gets an
/// allowance of one step per state of the machine to wrap up, ignoring
/// visit limits. Both figures then grow by the longest path from S (in
/// steps, and in gates), and by at most the number of states.
///
/// # Example
///
/// In the support machine (`Intake -> Classify`, gate `Classify ->
/// IssueRefund | Escalate | Reply`, `IssueRefund -> Done`, `Escalate ->
/// Done`, `#[max_visits(3)] Reply -> Classify | Done`), `Reply` is the only
/// limited state, so K = 3. L(Intake) = 3 (`Intake, Classify,
/// IssueRefund`), R(Intake) = 2 (`Intake, Classify`, then `Reply`),
/// L(Reply) = 2 (`Classify, IssueRefund`) and R(Reply) = 1 (`Classify`).
/// Steps: 3 + max(3, 2 + 3·1 + (2 − 1)) = 9, which a run reaches:
/// `Intake, (Classify, Reply)×3, Classify, IssueRefund`. Decisions:
/// 0 + max(1, 1 + 3·1 + 0) = 4.
///
/// A unit test checks the bound against an exhaustive search of every run
/// on thousands of random small machines.
pub fn worst_case(m: &Machine) -> WorstCase {
    let n = m.states.len();
    let adj = successors(m);
    let roots: Vec<usize> = m
        .states
        .iter()
        .filter(|s| s.initial.is_some())
        .map(|s| s.index)
        .collect();
    // Without an initial state (a rejected machine) any state may start.
    let (live, starts) = if roots.is_empty() {
        (vec![true; n], (0..n).collect())
    } else {
        (reachable(&adj, &roots), roots)
    };
    let limit = |v: usize| {
        let s = &m.states[v];
        match s.max_visits {
            Some((k, _)) if live[v] && s.kind != Kind::Terminal => Some(u64::from(k)),
            _ => None,
        }
    };
    let gate = |v: usize| u64::from(m.states[v].kind == Kind::Gate);
    let free: Vec<bool> = (0..n)
        .map(|v| live[v] && m.states[v].kind != Kind::Terminal && limit(v).is_none())
        .collect();
    let enters_limited = |v: usize| adj[v].iter().any(|&w| limit(w).is_some());

    // Per free state: L and R, counting steps and counting gates.
    let (longest, back) = longest_paths(&adj, &free, &gate, &enters_limited);

    let mut steps = Len::Fin(0);
    let mut decisions = Len::Fin(0);
    for &i in &starts {
        let (l0, r0) = if free[i] {
            (longest[i], back[i].at_least_zero())
        } else {
            (Figures::ZERO, Figures::ZERO)
        };
        // R(i) + Σ max_visits(s)·R(s) + max (L(s) − R(s)), and K.
        let mut k = Figures::ZERO;
        let mut returning = r0;
        let mut last = Figures::ZERO;
        let mut any_limited = false;
        for s in (0..n).filter(|&s| limit(s).is_some()) {
            any_limited = true;
            let visits = limit(s).expect("filtered");
            let mut l = Figures::ZERO;
            let mut r = if enters_limited(s) {
                Figures::ZERO
            } else {
                Figures::NEVER
            };
            for &w in adj[s].iter().filter(|&&w| free[w]) {
                l = l.max(longest[w]);
                r = r.max(back[w]);
            }
            let r = r.at_least_zero();
            k = k.plus(Figures {
                steps: Len::Fin(visits),
                gates: Len::Fin(visits * gate(s)),
            });
            returning = returning.plus(r.times(visits));
            last = last.max(l.minus(r));
        }
        let total = if any_limited {
            k.plus(l0.max(returning.plus(last)))
        } else {
            l0
        };
        steps = steps.max(total.steps);
        decisions = decisions.max(total.gates);
    }

    let mut steps = match steps {
        Len::Fin(s) => Some(s),
        _ => None,
    };
    let mut decisions = match decisions {
        Len::Fin(d) => Some(d),
        _ => None,
    };
    if let Some((max_steps, _)) = m.max_steps {
        steps = Some(steps.map_or(max_steps, |s| s.min(max_steps)));
    }
    decisions = match (decisions, steps) {
        (Some(d), Some(s)) => Some(d.min(s)),
        (d, s) => d.or(s),
    };
    if let Some(wrap) = m.on_exhausted.as_ref().and_then(|s| m.index_of(s)) {
        // The wrap-up ignores visit limits: the longest path from the
        // `on_exhausted` state over all non-terminal states, at most n.
        let allowance = n as u64;
        let any: Vec<bool> = m.states.iter().map(|s| s.kind != Kind::Terminal).collect();
        let (longest, _) = longest_paths(&adj, &any, &gate, &|_| false);
        let cap = |l: Len| match l {
            Len::Fin(l) => l.min(allowance),
            _ => allowance,
        };
        let (extra_steps, extra_decisions) = if any[wrap] {
            (cap(longest[wrap].steps), cap(longest[wrap].gates))
        } else {
            (0, 0)
        };
        steps = steps.map(|s| s.saturating_add(extra_steps));
        decisions = decisions.map(|d| d.saturating_add(extra_decisions));
    }
    WorstCase { steps, decisions }
}

/// Longest paths over the states with `keep[v]`, from each such state, as
/// (L, R): L counts the states (and gates) of the longest path from `v`;
/// R the same over paths that end at a state with `enters(v)` (`Never`
/// when there is none). Paths through a cycle are unbounded.
fn longest_paths(
    adj: &[Vec<usize>],
    keep: &[bool],
    gate: &dyn Fn(usize) -> u64,
    enters: &dyn Fn(usize) -> bool,
) -> (Vec<Figures>, Vec<Figures>) {
    let n = adj.len();
    let mut longest = vec![Figures::ZERO; n];
    let mut back = vec![Figures::NEVER; n];
    for comp in sccs(adj, keep) {
        // Components come sinks first: every kept successor outside this
        // component already has its figures.
        let cyclic = is_cyclic(adj, &comp);
        let gates: u64 = comp.iter().map(|&v| gate(v)).sum();
        let weight = Figures {
            steps: if cyclic { Len::Inf } else { Len::Fin(1) },
            gates: if cyclic && gates > 0 {
                Len::Inf
            } else {
                Len::Fin(gates)
            },
        };
        let mut out = Figures::ZERO;
        let mut out_back = if comp.iter().any(|&v| enters(v)) {
            Figures::ZERO
        } else {
            Figures::NEVER
        };
        for &v in &comp {
            for &w in adj[v].iter().filter(|&&w| keep[w] && !comp.contains(&w)) {
                out = out.max(longest[w]);
                out_back = out_back.max(back[w]);
            }
        }
        for &v in &comp {
            longest[v] = weight.plus(out);
            back[v] = weight.plus(out_back);
        }
    }
    (longest, back)
}

/// A path length in the worst-case computation: no such path, a finite
/// length, or unbounded (a path through a cycle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Len {
    Never,
    Fin(u64),
    Inf,
}

impl Len {
    fn plus(self, other: Len) -> Len {
        match (self, other) {
            (Len::Never, _) | (_, Len::Never) => Len::Never,
            (Len::Inf, _) | (_, Len::Inf) => Len::Inf,
            (Len::Fin(a), Len::Fin(b)) => Len::Fin(a.saturating_add(b)),
        }
    }

    fn times(self, k: u64) -> Len {
        match self {
            Len::Fin(a) => Len::Fin(a.saturating_mul(k)),
            _ if k == 0 => Len::Fin(0),
            other => other,
        }
    }

    /// `self − other` for `self ≥ other ≥ 0`; unbounded stays unbounded.
    fn minus(self, other: Len) -> Len {
        match (self, other) {
            (Len::Fin(a), Len::Fin(b)) => Len::Fin(a.saturating_sub(b)),
            (Len::Fin(a), _) => Len::Fin(a),
            (other, _) => other,
        }
    }
}

/// A path's length in steps and in gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Figures {
    steps: Len,
    gates: Len,
}

impl Figures {
    const ZERO: Figures = Figures {
        steps: Len::Fin(0),
        gates: Len::Fin(0),
    };
    const NEVER: Figures = Figures {
        steps: Len::Never,
        gates: Len::Never,
    };

    fn plus(self, other: Figures) -> Figures {
        Figures {
            steps: self.steps.plus(other.steps),
            gates: self.gates.plus(other.gates),
        }
    }

    fn max(self, other: Figures) -> Figures {
        Figures {
            steps: self.steps.max(other.steps),
            gates: self.gates.max(other.gates),
        }
    }

    fn times(self, k: u64) -> Figures {
        Figures {
            steps: self.steps.times(k),
            gates: self.gates.times(k),
        }
    }

    fn minus(self, other: Figures) -> Figures {
        Figures {
            steps: self.steps.minus(other.steps),
            gates: self.gates.minus(other.gates),
        }
    }

    /// "No such path" counted as an empty one (sound, and simpler).
    fn at_least_zero(self) -> Figures {
        self.max(Figures::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::ctxt::Ctxt;

    fn parse(args: proc_macro2::TokenStream, item: syn::ItemEnum) -> Machine {
        let cx = Ctxt::new();
        let m = crate::parse::machine(&cx, args, &item);
        crate::check::machine(&cx, &m);
        if let Err(e) = cx.check() {
            let msgs: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            panic!("machine does not pass its checks: {msgs:#?}");
        }
        m
    }

    /// The bound is exactly the true maximum, found by brute force.
    fn assert_tight(m: &Machine, steps: u64, decisions: u64) {
        assert_eq!(worst_case(m), wc(steps, decisions), "bound");
        assert_eq!(truth(m), (steps, decisions), "brute force");
    }

    fn wc(steps: u64, decisions: u64) -> WorstCase {
        WorstCase {
            steps: Some(steps),
            decisions: Some(decisions),
        }
    }

    #[test]
    fn tarjan_finds_components_in_reverse_topological_order() {
        // 0 -> 1 -> 2 -> 1, 2 -> 3, 3 -> 3, 4 alone
        let adj = vec![vec![1], vec![2], vec![1, 3], vec![3], vec![]];
        let comps = sccs(&adj, &[true; 5]);
        assert_eq!(comps, vec![vec![3], vec![1, 2], vec![0], vec![4]]);
        assert!(is_cyclic(&adj, &comps[0]));
        assert!(is_cyclic(&adj, &comps[1]));
        assert!(!is_cyclic(&adj, &comps[2]));
        // Leaving out state 2 breaks the cycle.
        let comps = sccs(&adj, &[true, true, false, true, true]);
        assert_eq!(comps, vec![vec![1], vec![0], vec![3], vec![4]]);
        assert_eq!(reachable(&adj, &[1]), vec![false, true, true, true, false]);
    }

    #[test]
    fn tight_on_a_chain() {
        let m = parse(
            quote::quote!(context = ()),
            syn::parse_quote! {
                enum M {
                    #[initial] #[to(G1)] Intake,
                    #[gate] #[to(G2, Done)] G1,
                    #[gate] #[to(Done)] G2,
                    #[terminal] Done,
                }
            },
        );
        assert_tight(&m, 3, 2);
    }

    #[test]
    fn tight_on_a_visit_limited_self_loop() {
        let m = parse(
            quote::quote!(context = ()),
            syn::parse_quote! {
                enum M {
                    #[initial] #[gate] #[max_visits(3)] #[to(A, Done)] A,
                    #[terminal] Done,
                }
            },
        );
        assert_tight(&m, 3, 3);
    }

    #[test]
    fn tight_on_the_support_example() {
        // Intake, then (Classify, Reply) three times, then Classify and
        // IssueRefund: 9 steps, 4 decisions.
        let m = parse(
            quote::quote!(context = ()),
            syn::parse_quote! {
                enum Support {
                    #[initial] #[to(Classify)] Intake,
                    #[gate] #[to(IssueRefund, Escalate, Reply)] Classify,
                    #[to(Done)] IssueRefund(u64),
                    #[to(Done)] Escalate { reason: String },
                    #[max_visits(3)] #[to(Classify, Done)] Reply { draft: String },
                    #[terminal] Done,
                }
            },
        );
        assert_tight(&m, 9, 4);
    }

    #[test]
    fn tight_with_max_steps_only() {
        let m = parse(
            quote::quote!(context = (), max_steps = 5),
            syn::parse_quote! {
                enum M {
                    #[initial] #[gate] #[to(B, Done)] A,
                    #[gate] #[to(A, Done)] B,
                    #[terminal] Done,
                }
            },
        );
        assert_tight(&m, 5, 5);
    }

    #[test]
    fn max_steps_caps_a_larger_visit_bound() {
        let m = parse(
            quote::quote!(context = (), max_steps = 4),
            syn::parse_quote! {
                enum M {
                    #[initial] #[max_visits(9)] #[to(A, Done)] A,
                    #[terminal] Done,
                }
            },
        );
        assert_tight(&m, 4, 0);
    }

    #[test]
    fn on_exhausted_adds_the_wrap_up_allowance() {
        let m = parse(
            quote::quote!(context = (), max_steps = 5, on_exhausted = Wrap),
            syn::parse_quote! {
                enum M {
                    #[initial] #[gate] #[to(A, Wrap)] A,
                    #[to(Done)] Wrap,
                    #[terminal] Done,
                }
            },
        );
        // Five steps of `A`, then the wrap-up `Wrap -> Done`.
        assert_tight(&m, 5 + 1, 5);
        // A wrap-up that can loop gets the whole allowance: one step per
        // state.
        let m = parse(
            quote::quote!(context = (), max_steps = 5, on_exhausted = Wrap),
            syn::parse_quote! {
                enum M {
                    #[initial] #[gate] #[to(A, Wrap)] A,
                    #[gate] #[to(Wrap, Done)] Wrap,
                    #[terminal] Done,
                }
            },
        );
        assert_tight(&m, 5 + 3, 5 + 3);
    }

    #[test]
    fn unbounded_machines_have_no_step_figure() {
        let item: syn::ItemEnum = syn::parse_quote! {
            enum M {
                #[initial] #[to(B)] A,
                #[to(A, Done)] B,
                #[terminal] Done,
            }
        };
        let cx = Ctxt::new();
        let m = crate::parse::machine(&cx, quote::quote!(context = ()), &item);
        crate::check::machine(&cx, &m);
        assert!(cx.check().is_err());
        // No gate on the free cycle: decisions stay bounded (by zero).
        assert_eq!(
            worst_case(&m),
            WorstCase {
                steps: None,
                decisions: Some(0)
            }
        );
    }

    #[test]
    fn copes_with_broken_machines() {
        // No initial, unknown targets, a terminal with moves: no panic.
        let item: syn::ItemEnum = syn::parse_quote! {
            enum M {
                #[to(Nowhere, B)] A,
                #[max_visits(2)] #[to(A)] B,
                #[terminal] #[to(A)] Done,
            }
        };
        let cx = Ctxt::new();
        let m = crate::parse::machine(&cx, quote::quote!(context = ()), &item);
        crate::check::machine(&cx, &m);
        assert!(cx.check().is_err());
        assert_eq!(worst_case(&m), wc(2 + 1 + 2, 0));
    }

    // ---- brute force ------------------------------------------------------

    /// A small deterministic PRNG (SplitMix64), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    /// The source of a random machine with 3 to 6 states.
    fn random_machine(rng: &mut Rng) -> (String, String) {
        let n = 3 + rng.below(4) as usize;
        let names: Vec<String> = (0..n).map(|i| format!("S{i}")).collect();
        let terminals = 1 + rng.below(2) as usize;
        let mut variants = Vec::new();
        for i in 0..n {
            let mut attrs = String::new();
            if i == 0 {
                attrs.push_str("#[initial] ");
            }
            if i >= n - terminals {
                attrs.push_str("#[terminal] ");
            } else {
                match rng.below(4) {
                    0 | 1 => {}
                    2 => attrs.push_str("#[gate] "),
                    _ => attrs.push_str("#[wait] "),
                }
                if rng.chance(40) {
                    attrs.push_str(&format!("#[max_visits({})] ", 1 + rng.below(3)));
                }
                let mut targets: Vec<&str> = Vec::new();
                let count = 1 + rng.below(3);
                for _ in 0..count {
                    let t = &names[rng.below(n as u64) as usize];
                    if !targets.contains(&t.as_str()) {
                        targets.push(t);
                    }
                }
                attrs.push_str(&format!("#[to({})] ", targets.join(", ")));
            }
            variants.push(format!("{attrs}{}", names[i]));
        }
        let mut args = vec!["context = ()".to_owned()];
        if rng.chance(50) {
            args.push(format!("max_steps = {}", 1 + rng.below(12)));
        }
        if rng.chance(25) {
            args.push(format!(
                "on_exhausted = {}",
                names[rng.below(n as u64) as usize]
            ));
        }
        (
            args.join(", "),
            format!("enum M {{ {} }}", variants.join(", ")),
        )
    }

    /// The true maximum (steps, decisions) of any run, by exhaustive search
    /// (memoized on the visit counts of the limited states and the steps so
    /// far, which is all a run's future depends on).
    struct Brute<'a> {
        m: &'a Machine,
        adj: Vec<Vec<usize>>,
        memo: HashMap<(usize, Vec<u32>, u64), (u64, u64)>,
        wrap: HashMap<(usize, u64), (u64, u64)>,
    }

    impl Brute<'_> {
        fn limited(&self) -> Vec<usize> {
            self.m
                .states
                .iter()
                .filter(|s| s.max_visits.is_some())
                .map(|s| s.index)
                .collect()
        }

        /// The most steps and decisions from trying to enter `v`.
        fn enter(&mut self, v: usize, visits: Vec<u32>, steps: u64) -> (u64, u64) {
            let s = &self.m.states[v];
            // Any bound (deadline, tokens, …) may hit instead of this move.
            let exhausted = self.exhausted();
            if s.kind == Kind::Terminal {
                return exhausted;
            }
            let key = (v, visits.clone(), steps);
            if let Some(&r) = self.memo.get(&key) {
                return r;
            }
            let limited = self.limited();
            let slot = limited.iter().position(|&l| l == v);
            let blocked = self.m.max_steps.is_some_and(|(n, _)| steps >= n)
                || slot.is_some_and(|i| visits[i] >= s.max_visits.expect("limited").0);
            let result = if blocked {
                exhausted
            } else {
                let mut visits = visits;
                if let Some(i) = slot {
                    visits[i] += 1;
                }
                let gate = u64::from(s.kind == Kind::Gate);
                let mut best = (0, 0);
                for w in self.adj[v].clone() {
                    let (a, b) = self.enter(w, visits.clone(), steps + 1);
                    best = (best.0.max(a), best.1.max(b));
                }
                (
                    (best.0 + 1).max(exhausted.0),
                    (best.1 + gate).max(exhausted.1),
                )
            };
            self.memo.insert(key, result);
            result
        }

        /// What the wrap-up after a bound hit can add.
        fn exhausted(&mut self) -> (u64, u64) {
            match self
                .m
                .on_exhausted
                .as_ref()
                .and_then(|s| self.m.index_of(s))
            {
                Some(w) => self.wrap_up(w, self.m.states.len() as u64),
                None => (0, 0),
            }
        }

        fn wrap_up(&mut self, v: usize, left: u64) -> (u64, u64) {
            let s = &self.m.states[v];
            if s.kind == Kind::Terminal || left == 0 {
                return (0, 0);
            }
            if let Some(&r) = self.wrap.get(&(v, left)) {
                return r;
            }
            let gate = u64::from(s.kind == Kind::Gate);
            let mut best = (0, 0);
            for w in self.adj[v].clone() {
                let (a, b) = self.wrap_up(w, left - 1);
                best = (best.0.max(a), best.1.max(b));
            }
            let r = (best.0 + 1, best.1 + gate);
            self.wrap.insert((v, left), r);
            r
        }
    }

    fn truth(m: &Machine) -> (u64, u64) {
        let mut brute = Brute {
            m,
            adj: successors(m),
            memo: HashMap::new(),
            wrap: HashMap::new(),
        };
        let k = brute.limited().len();
        let init = m.initial().expect("checked").index;
        brute.enter(init, vec![0; k], 0)
    }

    #[test]
    fn never_below_brute_force() {
        let mut rng = Rng(0x6775_6964_6572_6169);
        let (mut tested, mut tight_steps, mut tight_decisions) = (0, 0, 0);
        for _ in 0..20_000 {
            let (args, item) = random_machine(&mut rng);
            let args: proc_macro2::TokenStream = args.parse().expect("args");
            let item: syn::ItemEnum = syn::parse_str(&item).expect("item");
            let cx = Ctxt::new();
            let m = crate::parse::machine(&cx, args.clone(), &item);
            crate::check::machine(&cx, &m);
            if cx.check().is_err() {
                continue;
            }
            tested += 1;
            let (steps, decisions) = truth(&m);
            let bound = worst_case(&m);
            let (Some(bs), Some(bd)) = (bound.steps, bound.decisions) else {
                panic!(
                    "a checked machine has a finite bound: {args} {}",
                    quote::quote!(#item)
                );
            };
            assert!(
                bs >= steps && bd >= decisions,
                "bound {bound:?} below the truth ({steps} steps, {decisions} decisions) for #[machine({args})] {}",
                quote::quote!(#item)
            );
            tight_steps += usize::from(bs == steps);
            tight_decisions += usize::from(bd == decisions);
        }
        eprintln!(
            "{tested} machines; steps tight on {tight_steps}, decisions on {tight_decisions}"
        );
        assert!(
            tested >= 500,
            "only {tested} random machines passed the checks"
        );
        // The bound is a bound, but not a wild one.
        assert!(
            tight_steps * 2 >= tested,
            "steps tight on {tight_steps} of {tested}"
        );
        assert!(
            tight_decisions * 2 >= tested,
            "decisions tight on {tight_decisions} of {tested}"
        );
    }
}
