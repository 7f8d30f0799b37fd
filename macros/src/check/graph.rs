//! Rules about the whole graph: names, the initial state, reachability,
//! ways out, and cycles.
//!
//! The rules that follow moves use a [`Flow`]: the declared moves, plus the
//! "did you mean" reading of each misspelt target, so one typo does not
//! also come back as "unreachable" or "no terminal reachable". When a
//! misspelt name has no likely reading, those two rules are skipped.

use std::collections::VecDeque;

use proc_macro2::Ident;

use super::suggest::did_you_mean;
use super::{Part, Pos, Report, list};
use crate::analysis::{is_cyclic, reachable, sccs, successors};
use crate::model::{Kind, Machine, State};

/// What the flow rules need to know about the moves.
pub struct Flow {
    /// Declared moves to known states (none out of terminal states).
    pub declared: Vec<Vec<usize>>,
    /// `declared` plus the suggested reading of each unknown target.
    pub resolved: Vec<Vec<usize>>,
    /// Where runs start: the `#[initial]` states, and the `on_exhausted`
    /// state (read as its suggestion if misspelt).
    pub roots: Vec<usize>,
    /// Whether every name resolved, so that reachability is known.
    pub complete: bool,
    /// The states a run can enter; `None` without an initial state.
    pub reach: Option<Vec<bool>>,
}

impl Flow {
    pub fn new(m: &Machine) -> Flow {
        let declared = successors(m);
        let mut resolved = declared.clone();
        let mut complete = true;
        for s in &m.states {
            for t in &s.targets {
                if m.index_of(t).is_some() {
                    continue;
                }
                match resolve(m, t) {
                    Some(to) if s.kind != Kind::Terminal => {
                        if !resolved[s.index].contains(&to) {
                            resolved[s.index].push(to);
                        }
                    }
                    Some(_) => {}
                    None => complete = false,
                }
            }
        }
        let mut roots: Vec<usize> = m
            .states
            .iter()
            .filter(|s| s.initial.is_some())
            .map(|s| s.index)
            .collect();
        let has_initial = !roots.is_empty();
        if let Some(ident) = &m.on_exhausted {
            match m.index_of(ident).or_else(|| resolve(m, ident)) {
                Some(i) if roots.contains(&i) => {}
                Some(i) => roots.push(i),
                None => complete = false,
            }
        }
        let reach = has_initial.then(|| reachable(&resolved, &roots));
        Flow {
            declared,
            resolved,
            roots,
            complete,
            reach,
        }
    }

    fn reachable(&self, v: usize) -> bool {
        self.reach.as_ref().is_none_or(|r| r[v])
    }
}

/// The state an unknown name most likely means.
fn resolve(m: &Machine, name: &Ident) -> Option<usize> {
    let names: Vec<String> = m.states.iter().map(State::name).collect();
    let guess = did_you_mean(&name.to_string(), names.iter().map(String::as_str))?;
    names.iter().position(|n| n == guess)
}

/// "did you mean `X`?", or the list of states.
fn unknown_state_help(m: &Machine, name: &Ident) -> String {
    let names: Vec<String> = m.states.iter().map(State::name).collect();
    match did_you_mean(&name.to_string(), names.iter().map(String::as_str)) {
        Some(guess) => format!("did you mean `{guess}`?"),
        None => {
            // A long list is cut short: the first few show the naming.
            const SHOWN: usize = 12;
            let states = if names.len() > SHOWN {
                format!(
                    "{} and {} more",
                    list(&names[..SHOWN]).replacen(" and ", ", ", 1),
                    names.len() - SHOWN
                )
            } else {
                list(&names)
            };
            format!(
                "the states of `{}` are {states}: name one of them, or add a variant `{name}`",
                m.ident
            )
        }
    }
}

/// Every `#[to(..)]` target names a state of the machine.
///
/// ```text
/// #[initial] #[to(Clasify)]   // error: unknown state `Clasify` in `#[to]`;
/// Intake,                     //        did you mean `Classify`?
/// #[gate] #[to(Done)]
/// Classify,
/// ```
pub fn unknown_target(r: &mut Report, m: &Machine) {
    for s in &m.states {
        for (i, t) in s.targets.iter().enumerate() {
            if m.index_of(t).is_none() {
                r.error(
                    Pos::on(s, Part::To(Some(i))),
                    t.span(),
                    format!(
                        "unknown state `{t}` in `#[to]`; {}",
                        unknown_state_help(m, t)
                    ),
                );
            }
        }
    }
}

/// `on_exhausted = S` names a state of the machine.
///
/// ```text
/// #[machine(context = Ticket, on_exhausted = Wrapup)]   // did you mean `WrapUp`?
/// ```
pub fn unknown_on_exhausted(r: &mut Report, m: &Machine) {
    let Some(ident) = &m.on_exhausted else { return };
    if m.index_of(ident).is_none() {
        r.error(
            Pos::OnExhausted,
            ident.span(),
            format!(
                "unknown state `{ident}` in `on_exhausted`; {}",
                unknown_state_help(m, ident)
            ),
        );
    }
}

/// A machine has exactly one `#[initial]` state: this rule reports every
/// one after the first.
///
/// ```text
/// #[initial] #[to(B)] A,
/// #[initial] #[to(Done)] B,   // error on `B`
/// ```
pub fn several_initial(r: &mut Report, m: &Machine) {
    let mut initials = m.states.iter().filter(|s| s.initial.is_some());
    let Some(first) = initials.next() else { return };
    for s in initials {
        // The model keeps only the first token of `#[initial]` (`#`), so
        // point at the state's name instead.
        r.error(
            Pos::on(s, Part::Name),
            s.ident.span(),
            format!(
                "`{}` is marked `#[initial]`, but `{}` already is; a run starts in exactly one state: remove `#[initial]` from one of them",
                s.ident, first.ident
            ),
        );
    }
}

/// A machine has an `#[initial]` state (the error points at the enum's
/// name).
///
/// ```text
/// enum Support {          // error: `Support` has no `#[initial]` state
///     #[to(Done)] Intake,
///     #[terminal] Done,
/// }
/// ```
pub fn no_initial(r: &mut Report, m: &Machine) {
    if m.states.iter().any(|s| s.initial.is_some()) {
        return;
    }
    let first = &m.states[0].ident;
    r.error(
        Pos::Machine,
        m.ident.span(),
        format!(
            "`{}` has no `#[initial]` state; mark the state a run starts in with `#[initial]`, e.g. `#[initial] {first}`",
            m.ident
        ),
    );
}

/// A state that is not terminal has moves: otherwise a run that enters it
/// could not go on.
///
/// ```text
/// #[gate]       // error: state `Classify` has no moves
/// Classify,
/// ```
pub fn dead_end(r: &mut Report, m: &Machine) {
    for s in &m.states {
        if s.kind == Kind::Terminal || !s.targets.is_empty() || s.to_span.is_some() {
            continue;
        }
        r.error(
            Pos::on(s, Part::Name),
            s.ident.span(),
            format!(
                "state `{}` has no moves, so a run that enters it cannot go on: add `#[to(..)]` with the states it moves to, or mark it `#[terminal]`",
                s.ident
            ),
        );
    }
}

/// Every state can be entered: from the initial state, or (for the
/// `on_exhausted` state) when a bound is hit.
///
/// ```text
/// #[initial] #[to(Done)] A,
/// #[to(Done)] B,            // error: state `B` is unreachable
/// #[terminal] Done,
/// ```
pub fn unreachable_state(r: &mut Report, m: &Machine, flow: &Flow) {
    let Some(reach) = &flow.reach else { return };
    if !flow.complete {
        return;
    }
    let roots: Vec<&State> = flow.roots.iter().map(|&i| &m.states[i]).collect();
    let from = match roots.as_slice() {
        [initial] => format!("the initial state `{}`", initial.ident),
        [initial, exhausted] if m.on_exhausted.is_some() && initial.initial.is_some() => format!(
            "the initial state `{}` or the `on_exhausted` state `{}`",
            initial.ident, exhausted.ident
        ),
        _ => {
            let names: Vec<String> = roots.iter().map(|s| s.name()).collect();
            format!("any of {}", list(&names))
        }
    };
    for s in &m.states {
        if reach[s.index] {
            continue;
        }
        r.error(
            Pos::on(s, Part::Name),
            s.ident.span(),
            format!(
                "state `{}` is unreachable: no chain of moves leads to it from {from}; add `{}` to the `#[to(..)]` of a state that leads to it, or remove it",
                s.ident, s.ident
            ),
        );
    }
}

/// From every state a run can enter, some terminal state is reachable.
///
/// The rule reports each closed group of states once: states that move
/// only among themselves (a loop with no way out). States that merely lead
/// into such a group are fixed with it, and states without any moves are
/// [`dead_end`]s, so neither is reported again.
///
/// ```text
/// #[initial] #[to(B)] A,
/// #[to(C)] B,               // error: no terminal state is reachable from `B`
/// #[to(B)] C,
/// #[terminal] Done,
/// ```
pub fn no_terminal_reachable(r: &mut Report, m: &Machine, flow: &Flow) {
    let Some(reach) = &flow.reach else { return };
    if !flow.complete {
        return;
    }
    let adj = &flow.resolved;
    let terminal = m.states.iter().find(|s| s.kind == Kind::Terminal);
    let mut closed: Vec<Vec<usize>> = sccs(adj, reach)
        .into_iter()
        .filter(|c| is_cyclic(adj, c) && c.iter().all(|&v| adj[v].iter().all(|w| c.contains(w))))
        .collect();
    closed.sort();
    for comp in closed {
        let s = &m.states[comp[0]];
        let names: Vec<String> = comp.iter().map(|&v| m.states[v].name()).collect();
        let stuck = if comp.len() == 1 {
            format!("its only move leads back to `{}`", s.ident)
        } else {
            format!("runs that enter it can only move between {}", list(&names))
        };
        let mut targets: Vec<String> = Vec::new();
        for t in &s.targets {
            if !targets.contains(&t.to_string()) {
                targets.push(t.to_string());
            }
        }
        let done = terminal.map_or_else(|| "Done".to_owned(), State::name);
        targets.push(done.clone());
        let example = format!("`#[to({})]` on `{}`", targets.join(", "), s.ident);
        let fix = match (terminal, comp.len()) {
            (Some(_), 1) => format!("add a move to a terminal state, e.g. {example}"),
            (Some(_), _) => {
                format!("add a move to a terminal state to one of them, e.g. {example}")
            }
            (None, _) => {
                format!("add a `#[terminal] {done}` state and a move to it, e.g. {example}")
            }
        };
        r.error(
            Pos::on(s, Part::Name),
            s.ident.span(),
            format!(
                "no terminal state is reachable from `{}`: {stuck}; {fix}",
                s.ident
            ),
        );
    }
}

/// Every cycle a run can go round is bounded: by `max_steps` on the
/// machine, or by `#[max_visits(N)]` on one of its states.
///
/// Leave out the states with `#[max_visits]` (and the terminal states);
/// any cycle left is unbounded unless the machine has `max_steps`. Each
/// strongly connected group is reported once, at its first state in
/// source order, and the message walks the cycle in order.
///
/// ```text
/// #[machine(context = Ticket)]
/// enum Support {
///     #[initial] #[to(Classify)] Intake,
///     #[gate] #[to(Reply, Done)]
///     Classify,                 // error: unbounded cycle `Classify -> Reply -> Classify`
///     #[to(Classify)] Reply,
///     #[terminal] Done,
/// }
/// ```
pub fn unbounded_cycle(r: &mut Report, m: &Machine, flow: &Flow) {
    if m.max_steps.is_some() {
        return;
    }
    let adj = &flow.declared;
    let free: Vec<bool> = m
        .states
        .iter()
        .map(|s| s.kind != Kind::Terminal && s.max_visits.is_none() && flow.reachable(s.index))
        .collect();
    let mut cycles: Vec<Vec<usize>> = sccs(adj, &free)
        .into_iter()
        .filter(|c| is_cyclic(adj, c))
        .collect();
    cycles.sort();
    for comp in cycles {
        let s = &m.states[comp[0]];
        let walk = closed_walk(adj, &comp);
        let names: Vec<String> = walk.iter().map(|&v| m.states[v].name()).collect();
        let walk_text = names.join(" -> ");
        let fix = if walk.len() == comp.len() + 1 {
            "add `#[max_visits(N)]` to one of these states".to_owned()
        } else if let Some(hub) = hub(adj, &comp) {
            format!(
                "add `#[max_visits(N)]` to `{}`, which every loop here passes through,",
                m.states[hub].ident
            )
        } else {
            "add `#[max_visits(N)]` to these states until every loop has one,".to_owned()
        };
        r.error(
            Pos::on(s, Part::Name),
            s.ident.span(),
            format!(
                "unbounded cycle `{walk_text}`: no state on it has `#[max_visits(N)]` and the machine has no `max_steps`; {fix} or `max_steps = N` to `#[machine(..)]`"
            ),
        );
    }
}

/// A closed walk through every state of the strongly connected `comp`,
/// starting and ending at its first state: repeatedly the shortest way to
/// the nearest state not yet on the walk, then the shortest way back.
fn closed_walk(adj: &[Vec<usize>], comp: &[usize]) -> Vec<usize> {
    let start = comp[0];
    let mut walk = vec![start];
    let mut seen = vec![start];
    let mut at = start;
    while let Some(path) = shortest(adj, comp, at, |v| !seen.contains(&v)) {
        seen.extend(&path);
        at = *path.last().expect("non-empty path");
        walk.extend(path);
    }
    // The way back (for a self move, the move itself).
    walk.extend(shortest(adj, comp, at, |v| v == start).expect("strongly connected"));
    walk
}

/// The states after `from` on a shortest path inside `comp` to the first
/// state that satisfies `goal` (at least one move long), following moves
/// in `#[to]` order.
fn shortest(
    adj: &[Vec<usize>],
    comp: &[usize],
    from: usize,
    goal: impl Fn(usize) -> bool,
) -> Option<Vec<usize>> {
    let mut prev: Vec<Option<usize>> = vec![None; adj.len()];
    let mut queue = VecDeque::from([from]);
    let mut visited = vec![false; adj.len()];
    while let Some(v) = queue.pop_front() {
        for &w in &adj[v] {
            if !comp.contains(&w) {
                continue;
            }
            if goal(w) {
                let mut path = vec![w];
                let mut at = v;
                while at != from {
                    path.push(at);
                    at = prev[at].expect("bfs parent");
                }
                path.reverse();
                return Some(path);
            }
            if !visited[w] && w != from {
                visited[w] = true;
                prev[w] = Some(v);
                queue.push_back(w);
            }
        }
    }
    None
}

/// A state of `comp` on every one of its cycles, if there is one: leaving
/// it out leaves no cycle.
fn hub(adj: &[Vec<usize>], comp: &[usize]) -> Option<usize> {
    comp.iter().copied().find(|&h| {
        let keep: Vec<bool> = (0..adj.len())
            .map(|v| v != h && comp.contains(&v))
            .collect();
        sccs(adj, &keep).iter().all(|c| !is_cyclic(adj, c))
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::errors;
    use quote::quote;

    #[test]
    fn long_state_lists_are_cut_short() {
        let names: Vec<syn::Ident> = (0..15).map(|i| quote::format_ident!("S{i}")).collect();
        let e = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M { #[initial] #[to(Zzz, S1)] A, #(#[to(Done)] #names,)* #[terminal] Done }
            },
        );
        assert_eq!(
            e[0],
            "unknown state `Zzz` in `#[to]`; the states of `M` are `A`, `S0`, `S1`, `S2`, `S3`, `S4`, `S5`, `S6`, `S7`, `S8`, `S9`, `S10` and 5 more: name one of them, or add a variant `Zzz`"
        );
    }

    #[test]
    fn unknown_targets_each_with_help() {
        let e = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M {
                    #[initial] #[to(Clasify, Frobnicate)] Intake,
                    #[gate] #[to(Dne)] Classify,
                    #[terminal] Done,
                }
            },
        );
        assert_eq!(
            e,
            [
                "unknown state `Clasify` in `#[to]`; did you mean `Classify`?",
                "unknown state `Frobnicate` in `#[to]`; the states of `M` are `Intake`, `Classify` and `Done`: name one of them, or add a variant `Frobnicate`",
                "unknown state `Dne` in `#[to]`; did you mean `Done`?",
            ]
        );
    }

    #[test]
    fn typos_do_not_cascade() {
        // Read as `Classify` and `Done`, the graph is fine: no
        // "unreachable" or "no terminal reachable" follow-ups.
        let e = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M {
                    #[initial] #[to(Clasify)] Intake,
                    #[gate] #[to(Dne)] Classify,
                    #[terminal] Done,
                }
            },
        );
        assert_eq!(e.len(), 2, "{e:#?}");
    }

    #[test]
    fn unknown_on_exhausted() {
        let e = errors(
            quote!(context = (), max_steps = 4, on_exhausted = Wrapup),
            syn::parse_quote! {
                enum M { #[initial] #[to(Done)] A, #[to(Done)] WrapUp, #[terminal] Done }
            },
        );
        assert_eq!(
            e,
            ["unknown state `Wrapup` in `on_exhausted`; did you mean `WrapUp`?"]
        );
        let e = errors(
            quote!(context = (), max_steps = 4, on_exhausted = Zzz),
            syn::parse_quote! {
                enum M { #[initial] #[to(Done)] A, #[to(Done)] WrapUp, #[terminal] Done }
            },
        );
        assert_eq!(
            e,
            [
                "unknown state `Zzz` in `on_exhausted`; the states of `M` are `A`, `WrapUp` and `Done`: name one of them, or add a variant `Zzz`"
            ]
        );
    }

    #[test]
    fn no_initial() {
        let e = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M { #[to(Done)] A, #[to(Done)] B, #[terminal] Done }
            },
        );
        assert_eq!(
            e,
            [
                "`M` has no `#[initial]` state; mark the state a run starts in with `#[initial]`, e.g. `#[initial] A`"
            ]
        );
    }

    #[test]
    fn several_initial() {
        let e = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M { #[initial] #[to(Done)] A, #[initial] #[to(Done)] B, #[initial] #[to(Done)] C, #[terminal] Done }
            },
        );
        assert_eq!(
            e,
            [
                "`B` is marked `#[initial]`, but `A` already is; a run starts in exactly one state: remove `#[initial]` from one of them",
                "`C` is marked `#[initial]`, but `A` already is; a run starts in exactly one state: remove `#[initial]` from one of them",
            ]
        );
    }

    #[test]
    fn unreachable_state() {
        let e = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M { #[initial] #[to(Done)] A, #[to(Done)] B, #[terminal] Done, #[terminal] Other }
            },
        );
        assert_eq!(
            e,
            [
                "state `B` is unreachable: no chain of moves leads to it from the initial state `A`; add `B` to the `#[to(..)]` of a state that leads to it, or remove it",
                "state `Other` is unreachable: no chain of moves leads to it from the initial state `A`; add `Other` to the `#[to(..)]` of a state that leads to it, or remove it",
            ]
        );
    }

    #[test]
    fn on_exhausted_state_is_a_root() {
        let e = errors(
            quote!(context = (), max_steps = 9, on_exhausted = Wrap),
            syn::parse_quote! {
                enum M { #[initial] #[to(Done)] A, #[to(Log)] Wrap, #[to(Done)] Log, #[to(Done)] Lost, #[terminal] Done }
            },
        );
        assert_eq!(
            e,
            [
                "state `Lost` is unreachable: no chain of moves leads to it from the initial state `A` or the `on_exhausted` state `Wrap`; add `Lost` to the `#[to(..)]` of a state that leads to it, or remove it"
            ]
        );
    }

    #[test]
    fn dead_end() {
        let e = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M { #[initial] #[to(B, Done)] A, #[gate] B, #[terminal] Done }
            },
        );
        assert_eq!(
            e,
            [
                "state `B` has no moves, so a run that enters it cannot go on: add `#[to(..)]` with the states it moves to, or mark it `#[terminal]`"
            ]
        );
    }

    #[test]
    fn no_terminal_reachable_once_per_closed_loop() {
        let e = errors(
            quote!(context = (), max_steps = 10),
            syn::parse_quote! {
                enum M {
                    #[initial] #[to(B, Done)] A,
                    #[to(C)] B,
                    #[to(B)] C,
                    #[to(D)] Lead,
                    #[to(D)] D,
                    #[terminal] Done,
                }
            },
        );
        assert_eq!(
            e,
            [
                "no terminal state is reachable from `B`: runs that enter it can only move between `B` and `C`; add a move to a terminal state to one of them, e.g. `#[to(C, Done)]` on `B`",
                "state `Lead` is unreachable: no chain of moves leads to it from the initial state `A`; add `Lead` to the `#[to(..)]` of a state that leads to it, or remove it",
                "state `D` is unreachable: no chain of moves leads to it from the initial state `A`; add `D` to the `#[to(..)]` of a state that leads to it, or remove it",
            ]
        );
    }

    #[test]
    fn no_terminal_at_all() {
        let e = errors(
            quote!(context = (), max_steps = 10),
            syn::parse_quote! {
                enum M { #[initial] #[to(A)] A }
            },
        );
        assert_eq!(
            e,
            [
                "no terminal state is reachable from `A`: its only move leads back to `A`; add a `#[terminal] Done` state and a move to it, e.g. `#[to(A, Done)]` on `A`"
            ]
        );
    }

    #[test]
    fn unbounded_cycle_walks_the_cycle() {
        let e = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M {
                    #[initial] #[to(Classify)] Intake,
                    #[gate] #[to(Reply, Done)] Classify,
                    #[to(Check)] Reply,
                    #[to(Classify, Done)] Check,
                    #[terminal] Done,
                }
            },
        );
        assert_eq!(
            e,
            [
                "unbounded cycle `Classify -> Reply -> Check -> Classify`: no state on it has `#[max_visits(N)]` and the machine has no `max_steps`; add `#[max_visits(N)]` to one of these states or `max_steps = N` to `#[machine(..)]`"
            ]
        );
    }

    #[test]
    fn bounded_cycles_pass() {
        let by_visits = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M { #[initial] #[to(B)] A, #[max_visits(3)] #[to(A, Done)] B, #[terminal] Done }
            },
        );
        assert_eq!(by_visits, Vec::<String>::new());
        let by_steps = errors(
            quote!(context = (), max_steps = 7),
            syn::parse_quote! {
                enum M { #[initial] #[to(B)] A, #[to(A, Done)] B, #[terminal] Done }
            },
        );
        assert_eq!(by_steps, Vec::<String>::new());
    }

    #[test]
    fn each_cycle_once_and_self_moves() {
        let e = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M {
                    #[initial] #[to(A, B)] A,
                    #[max_visits(2)] #[to(C)] B,
                    #[to(D)] C,
                    #[to(C, Done)] D,
                    #[terminal] Done,
                }
            },
        );
        assert_eq!(
            e,
            [
                "unbounded cycle `A -> A`: no state on it has `#[max_visits(N)]` and the machine has no `max_steps`; add `#[max_visits(N)]` to one of these states or `max_steps = N` to `#[machine(..)]`",
                "unbounded cycle `C -> D -> C`: no state on it has `#[max_visits(N)]` and the machine has no `max_steps`; add `#[max_visits(N)]` to one of these states or `max_steps = N` to `#[machine(..)]`",
            ]
        );
    }

    #[test]
    fn tangled_cycles_name_a_walk_through_all_states() {
        let e = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M {
                    #[initial] #[to(B, C)] A,
                    #[to(A)] B,
                    #[to(A, Done)] C,
                    #[terminal] Done,
                }
            },
        );
        assert_eq!(
            e,
            [
                "unbounded cycle `A -> B -> A -> C -> A`: no state on it has `#[max_visits(N)]` and the machine has no `max_steps`; add `#[max_visits(N)]` to `A`, which every loop here passes through, or `max_steps = N` to `#[machine(..)]`"
            ]
        );
    }

    #[test]
    fn parse_errors_silence_graph_rules() {
        // `#[termnal]` is reported by the parser; `Done` must not come back
        // as a dead end, nor the loop as unbounded (`max_step` is a typo).
        let e = errors(
            quote!(context = (), max_step = 5),
            syn::parse_quote! {
                enum M { #[initial] #[to(A, Done)] A, #[termnal] Done }
            },
        );
        assert_eq!(e.len(), 2, "{e:#?}");
    }
}
