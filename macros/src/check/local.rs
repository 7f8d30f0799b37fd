//! Rules about one state (and the states it names), independent of the
//! shape of the graph.

use super::{Part, Pos, Report};
use crate::model::{Kind, Machine, Payload, State};

/// A terminal state ends the run, so it cannot have moves.
///
/// ```text
/// #[terminal] #[to(Classify)]   // error: terminal state `Done` has moves
/// Done,
/// ```
pub fn terminal_with_moves(r: &mut Report, s: &State) {
    // An empty or malformed `#[to]` was reported by the parser already.
    if s.kind != Kind::Terminal {
        return;
    }
    let (Some(first), Some(last)) = (s.targets.first(), s.targets.last()) else {
        return;
    };
    // The moves, from the first target to the last.
    r.error_range(
        Pos::on(s, Part::To(None)),
        first.span(),
        last.span(),
        format!(
            "terminal state `{}` has moves, but a run ends when it enters a terminal state: remove `#[to(..)]` or `#[terminal]`",
            s.ident
        ),
    );
}

/// Each target appears once in `#[to(..)]`; the error points at the
/// repetition.
///
/// ```text
/// #[to(Reply, Done, Reply)]     // error on the second `Reply`
/// Classify,
/// ```
pub fn duplicate_target(r: &mut Report, s: &State) {
    for (i, t) in s.targets.iter().enumerate() {
        if s.targets[..i].contains(t) {
            r.error(
                Pos::on(s, Part::To(Some(i))),
                t.span(),
                format!("`{t}` is listed twice in `#[to(..)]`; remove this one"),
            );
        }
    }
}

/// `#[max_visits]` on a terminal state would have no effect: a run enters
/// a terminal state at most once.
///
/// ```text
/// #[terminal] #[max_visits(2)]  // error
/// Done,
/// ```
pub fn max_visits_on_terminal(r: &mut Report, s: &State) {
    if s.kind != Kind::Terminal {
        return;
    }
    let Some((_, span)) = s.max_visits else {
        return;
    };
    r.error(
        Pos::on(s, Part::MaxVisits),
        span,
        format!(
            "`#[max_visits]` has no effect on terminal state `{}`: a run ends the first time it enters it; remove `#[max_visits(..)]`",
            s.ident
        ),
    );
}

/// Children are started by a state's handler, so a state without one (a
/// terminal or wait state) cannot have them.
///
/// ```text
/// #[terminal] #[children(Lookup, input = Job)]  // error
/// Done,
/// ```
pub fn children_where_no_handler_runs(r: &mut Report, s: &State) {
    let Some(children) = &s.children else {
        return;
    };
    let what = match s.kind {
        Kind::Terminal => "terminal",
        Kind::Wait => "wait",
        _ => return,
    };
    r.error(
        Pos::on(s, Part::Children),
        children.span,
        format!(
            "`{}` is a {what} state: it runs no handler, so it cannot start child runs; put `#[children(..)]` on the state whose handler calls `cx.fan_out`",
            s.ident
        ),
    );
}

/// A model fills a gate move's payload as a JSON object, so a gate's
/// targets carry no payload, named fields, or one unnamed field (whose
/// type is then the object).
///
/// ```text
/// #[gate] #[to(Refund, Done)]   // error on `Refund`
/// Classify,
/// #[to(Done)]
/// Refund(u64, u64),
/// ```
pub fn gate_move_payload(r: &mut Report, m: &Machine, s: &State) {
    if s.kind != Kind::Gate {
        return;
    }
    for (i, t) in s.targets.iter().enumerate() {
        if s.targets[..i].contains(t) {
            continue;
        }
        let Some(target) = m.state(t) else { continue };
        if let Payload::Tuple(fields) = &target.payload
            && fields.len() > 1
        {
            r.error(
                Pos::on(s, Part::To(Some(i))),
                t.span(),
                format!(
                    "gate `{}` moves to `{t}`, which has {} unnamed fields, but a model fills a gate move's payload as JSON: make `{t}` a struct variant (`{t} {{ a: A, b: B }}`) or a single-field tuple",
                    s.ident,
                    fields.len()
                ),
            );
        }
    }
}

/// A gate's fallback is taken when the model gives no valid decision, so it
/// must be one of the gate's own moves and carry no payload or exactly one
/// field, built from the failure (`String`, `GateFailure`, or any type that
/// implements `FromGateFailure`).
///
/// ```text
/// #[gate(fallback = Archive)] #[to(Refund, Escalate)]   // error on `Archive`
/// Classify,
/// ```
pub fn gate_fallback(r: &mut Report, m: &Machine, s: &State) {
    let Some(fallback) = &s.fallback else { return };
    if s.kind != Kind::Gate {
        return;
    }
    if !s.targets.contains(fallback) {
        let moves: Vec<String> = s.targets.iter().map(|t| format!("`{t}`")).collect();
        r.error(
            Pos::on(s, Part::Fallback),
            fallback.span(),
            format!(
                "`fallback = {fallback}` is not a move of gate `{}`: the fallback must be one of its moves ({}), so a failed decision still takes a declared transition",
                s.ident,
                moves.join(", ")
            ),
        );
        return;
    }
    if let Some(target) = m.state(fallback)
        && target.payload.len() > 1
    {
        r.error(
            Pos::on(s, Part::Fallback),
            fallback.span(),
            format!(
                "the fallback move `{fallback}` has {} fields, but it is built from the failed decision: give it no payload or exactly one field, e.g. `{fallback} {{ reason: String }}` (the failure as text)",
                target.payload.len()
            ),
        );
    }
}

/// The `on_exhausted` state is built from the `BoundHit` that ended the
/// run's normal course, so it carries no payload or exactly one field.
///
/// ```text
/// #[machine(context = Ticket, on_exhausted = WrapUp)]   // error on `WrapUp`
/// enum Support { …, #[to(Done)] WrapUp { hit: BoundHit, note: String }, … }
/// ```
pub fn on_exhausted_payload(r: &mut Report, m: &Machine) {
    let Some(ident) = &m.on_exhausted else { return };
    let Some(s) = m.state(ident) else { return };
    let fields = s.payload.len();
    if fields > 1 {
        r.error(
            Pos::OnExhausted,
            ident.span(),
            format!(
                "`on_exhausted` state `{ident}` has {fields} fields, but the state a run moves to when a bound is hit carries no payload or exactly one field, the `BoundHit`: write `{ident}` or `{ident}(BoundHit)`"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::errors;
    use quote::quote;

    #[test]
    fn terminal_with_moves() {
        let e = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M { #[initial] #[to(Done)] A, #[terminal] #[to(A)] Done }
            },
        );
        assert_eq!(
            e,
            [
                "terminal state `Done` has moves, but a run ends when it enters a terminal state: remove `#[to(..)]` or `#[terminal]`"
            ]
        );
    }

    #[test]
    fn every_duplicate_target() {
        let e = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M { #[initial] #[to(Done, Done, Done)] A, #[terminal] Done }
            },
        );
        assert_eq!(
            e,
            [
                "`Done` is listed twice in `#[to(..)]`; remove this one",
                "`Done` is listed twice in `#[to(..)]`; remove this one"
            ]
        );
    }

    #[test]
    fn max_visits_on_terminal() {
        let e = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M { #[initial] #[to(Done)] A, #[terminal] #[max_visits(2)] Done }
            },
        );
        assert_eq!(
            e,
            [
                "`#[max_visits]` has no effect on terminal state `Done`: a run ends the first time it enters it; remove `#[max_visits(..)]`"
            ]
        );
    }

    #[test]
    fn gate_moves_must_be_json_objects() {
        let e = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M {
                    #[initial] #[gate] #[to(Pair, One, Named, Done)] A,
                    #[to(Done)] Pair(u64, String),
                    #[to(Done)] One(u64),
                    #[to(Done)] Named { a: u64, b: String },
                    #[to(Pair)] B,
                    #[terminal] Done,
                }
            },
        );
        assert_eq!(
            e,
            [
                "gate `A` moves to `Pair`, which has 2 unnamed fields, but a model fills a gate move's payload as JSON: make `Pair` a struct variant (`Pair { a: A, b: B }`) or a single-field tuple",
                // B is not a gate, so its move may carry a tuple.
                "state `B` is unreachable: no chain of moves leads to it from the initial state `A`; add `B` to the `#[to(..)]` of a state that leads to it, or remove it",
            ]
        );
    }

    #[test]
    fn on_exhausted_payload() {
        let e = errors(
            quote!(context = (), max_steps = 3, on_exhausted = Wrap),
            syn::parse_quote! {
                enum M { #[initial] #[to(Done)] A, #[to(Done)] Wrap(u8, u8), #[terminal] Done }
            },
        );
        assert_eq!(
            e,
            [
                "`on_exhausted` state `Wrap` has 2 fields, but the state a run moves to when a bound is hit carries no payload or exactly one field, the `BoundHit`: write `Wrap` or `Wrap(BoundHit)`"
            ]
        );
    }
}
