//! Stage 3: every rule a machine must follow, reported together.
//!
//! Per-state rules live in [`local`], whole-graph rules in [`graph`]; each
//! rule is one function with an example of what it rejects. Rules push
//! into a [`Report`] with the position of the offending token, and the
//! report hands the errors to the [`Ctxt`] in source order.
//!
//! Rules that only make sense on a well-formed graph (initial state,
//! reachability, dead ends, cycles) are skipped when the parse stage already
//! reported an error: a misspelt `#[termnal]` or `max_step = 20` would
//! otherwise come back as "no moves" or "unbounded cycle" follow-ups.

use proc_macro2::{Punct, Spacing, Span, TokenStream, TokenTree};

use crate::ctxt::Ctxt;
use crate::model::{Machine, State};

pub mod graph;
pub mod local;
pub mod suggest;

/// Runs every rule; errors go into `cx` in source order.
pub fn machine(cx: &Ctxt, m: &Machine) {
    let mut report = Report::default();
    let parsed_cleanly = !cx.has_errors();
    for s in &m.states {
        local::terminal_with_moves(&mut report, s);
        local::duplicate_target(&mut report, s);
        local::max_visits_on_terminal(&mut report, s);
        local::children_where_no_handler_runs(&mut report, s);
        local::gate_move_payload(&mut report, m, s);
        local::gate_fallback(&mut report, m, s);
    }
    local::on_exhausted_payload(&mut report, m);
    graph::unknown_target(&mut report, m);
    graph::unknown_on_exhausted(&mut report, m);
    graph::several_initial(&mut report, m);
    if parsed_cleanly && !m.states.is_empty() {
        graph::no_initial(&mut report, m);
        graph::dead_end(&mut report, m);
        let flow = graph::Flow::new(m);
        graph::unreachable_state(&mut report, m, &flow);
        graph::no_terminal_reachable(&mut report, m, &flow);
        graph::unbounded_cycle(&mut report, m, &flow);
    }
    report.emit(cx);
}

/// Where an error points, for sorting into source order: the machine's
/// arguments come first, then the enum's name, then each state (its
/// attributes, then its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pos {
    /// The `on_exhausted` argument of `#[machine(..)]`.
    OnExhausted,
    /// The enum's name.
    Machine,
    /// Something on state `state`.
    State { state: usize, part: Part },
}

/// A place on one state, in the order they usually appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// The `#[gate(fallback = ..)]` argument.
    Fallback,
    /// The `#[to]` attribute (`None`) or its n-th target.
    To(Option<usize>),
    MaxVisits,
    /// The `#[children(..)]` attribute.
    Children,
    Name,
}

impl Pos {
    pub fn on(s: &State, part: Part) -> Pos {
        Pos::State {
            state: s.index,
            part,
        }
    }
}

/// The errors of the check stage, kept until they can be sorted.
#[derive(Default)]
pub struct Report {
    errors: Vec<(Pos, Span, Span, String)>,
}

impl Report {
    /// An error at one token.
    pub fn error(&mut self, pos: Pos, span: Span, message: impl Into<String>) {
        self.errors.push((pos, span, span, message.into()));
    }

    /// An error from the token at `start` to the token at `end` (stable
    /// rustc cannot join spans, so an error keeps both ends).
    pub fn error_range(&mut self, pos: Pos, start: Span, end: Span, message: impl Into<String>) {
        self.errors.push((pos, start, end, message.into()));
    }

    fn emit(mut self, cx: &Ctxt) {
        // Stable: rules that point at the same token keep the order in
        // which `machine` runs them.
        self.errors.sort_by_key(|(pos, ..)| *pos);
        for (_, start, end, message) in self.errors {
            let range: TokenStream = [
                TokenTree::Punct(spanned(Punct::new('<', Spacing::Alone), start)),
                TokenTree::Punct(spanned(Punct::new('>', Spacing::Alone), end)),
            ]
            .into_iter()
            .collect();
            cx.push(syn::Error::new_spanned(range, message));
        }
    }
}

fn spanned(mut p: Punct, span: Span) -> Punct {
    p.set_span(span);
    p
}

/// `` `A`, `B` and `C` `` (or "`A` and `B`", or "`A`").
pub fn list<S: AsRef<str>>(names: &[S]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{}`", n.as_ref())).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::ctxt::Ctxt;

    /// The messages the parse and check stages report for a machine.
    pub fn errors(args: proc_macro2::TokenStream, item: syn::ItemEnum) -> Vec<String> {
        let cx = Ctxt::new();
        let m = crate::parse::machine(&cx, args, &item);
        super::machine(&cx, &m);
        match cx.check() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn lists_names() {
        assert_eq!(super::list(&["A"]), "`A`");
        assert_eq!(super::list(&["A", "B"]), "`A` and `B`");
        assert_eq!(super::list(&["A", "B", "C"]), "`A`, `B` and `C`");
    }

    #[test]
    fn a_good_machine_passes() {
        let errors = errors(
            quote::quote!(context = (), max_steps = 20),
            syn::parse_quote! {
                pub enum Support {
                    #[initial] #[to(Classify)]
                    Intake,
                    /// The model picks one of three typed actions.
                    #[gate] #[to(IssueRefund, Escalate, Reply)]
                    Classify,
                    #[to(Done)]
                    IssueRefund(u64),
                    #[to(Done)]
                    Escalate { reason: String },
                    #[max_visits(3)] #[to(Classify, AwaitApproval)]
                    Reply { draft: String },
                    #[wait] #[to(Done)]
                    AwaitApproval,
                    #[terminal]
                    Done,
                }
            },
        );
        assert_eq!(errors, Vec::<String>::new());
    }

    #[test]
    fn errors_come_in_source_order() {
        let errors = errors(
            quote::quote!(context = (), on_exhausted = Wrapup),
            syn::parse_quote! {
                enum M {
                    #[initial] #[to(B, Nope)] A,
                    #[to(A, A)] B,
                    #[terminal] #[to(A)] Done,
                    #[to(Done)] WrapUp,
                }
            },
        );
        assert_eq!(
            errors,
            vec![
                "unknown state `Wrapup` in `on_exhausted`; did you mean `WrapUp`?",
                "unknown state `Nope` in `#[to]`; the states of `M` are `A`, `B`, `Done` and `WrapUp`: name one of them, or add a variant `Nope`",
                "unbounded cycle `A -> B -> A`: no state on it has `#[max_visits(N)]` and the machine has no `max_steps`; add `#[max_visits(N)]` to one of these states or `max_steps = N` to `#[machine(..)]`",
                "`A` is listed twice in `#[to(..)]`; remove this one",
                "terminal state `Done` has moves, but a run ends when it enters a terminal state: remove `#[to(..)]` or `#[terminal]`",
            ]
        );
    }
}
