//! Per-variant attributes: `#[initial]`, `#[terminal]`, `#[to(..)]`,
//! `#[gate]`, `#[wait]`, `#[max_visits(N)]`. Malformed ones are reported and
//! parsing goes on, so every mistake shows up in one build.

use proc_macro2::Span;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, Ident, Lit, LitInt, Meta, Token};

use crate::check::suggest::did_you_mean;
use crate::ctxt::Ctxt;
use crate::model::{Children, Kind};
use crate::symbol::{
    CHILDREN, FALLBACK, GATE, INITIAL, INPUT, MAX_REPAIRS, MAX_VISITS, OUTPUT, STATE_ATTRS,
    TERMINAL, TO, WAIT,
};

/// What the attributes of one variant say.
#[derive(Default)]
pub struct StateAttrs {
    pub kind: Option<(Kind, Span)>,
    pub initial: Option<Span>,
    pub targets: Vec<Ident>,
    pub to_span: Option<Span>,
    pub max_visits: Option<(u32, Span)>,
    /// `#[gate(fallback = X)]`.
    pub fallback: Option<Ident>,
    /// `#[gate(max_repairs = N)]`.
    pub max_repairs: Option<u32>,
    /// `#[children(..)]`.
    pub children: Option<Children>,
    pub doc: String,
    /// Attributes that are not ours, kept on the variant.
    pub other: Vec<Attribute>,
}

pub fn parse_state_attrs(cx: &Ctxt, attrs: &[Attribute]) -> StateAttrs {
    let mut out = StateAttrs::default();
    let mut docs = Vec::new();
    for attr in attrs {
        let Some(ident) = attr.path().get_ident() else {
            out.other.push(attr.clone());
            continue;
        };
        let name = ident.to_string();
        match name.as_str() {
            "doc" => {
                if let Meta::NameValue(nv) = &attr.meta
                    && let Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    }) = &nv.value
                {
                    docs.push(s.value().trim().to_owned());
                }
                out.other.push(attr.clone());
            }
            INITIAL => {
                no_args(cx, attr, INITIAL);
                if out.initial.is_some() {
                    cx.error_spanned_by(
                        attr,
                        "`#[initial]` is given twice on this state; keep one",
                    );
                }
                out.initial = Some(attr.span());
            }
            TERMINAL | GATE | WAIT => {
                if name == GATE && matches!(attr.meta, Meta::List(_)) {
                    gate_args(cx, attr, &mut out);
                } else {
                    no_args(cx, attr, &name);
                }
                let kind = match name.as_str() {
                    TERMINAL => Kind::Terminal,
                    GATE => Kind::Gate,
                    _ => Kind::Wait,
                };
                if let Some((prev, _)) = out.kind {
                    cx.error_spanned_by(attr, kind_conflict(prev, kind));
                } else {
                    out.kind = Some((kind, attr.span()));
                }
            }
            TO => {
                if out.to_span.is_some() {
                    cx.error_spanned_by(
                        attr,
                        "`#[to(..)]` is given twice; list every target in one `#[to(A, B)]`",
                    );
                    continue;
                }
                out.to_span = Some(attr.span());
                match attr.parse_args_with(Punctuated::<Ident, Token![,]>::parse_terminated) {
                    Ok(list) if list.is_empty() => cx.error_spanned_by(
                        attr,
                        "`#[to()]` lists no targets; name at least one state, or mark the state `#[terminal]`",
                    ),
                    Ok(list) => out.targets = list.into_iter().collect(),
                    Err(_) => cx.error_spanned_by(
                        attr,
                        "`#[to(..)]` takes state names separated by commas, e.g. `#[to(Classify, Done)]`",
                    ),
                }
            }
            MAX_VISITS => match attr.parse_args::<LitInt>() {
                Ok(n) => match n.base10_parse::<u32>() {
                    Ok(v) if v > 0 => {
                        if out.max_visits.is_some() {
                            cx.error_spanned_by(attr, "`#[max_visits]` is given twice; keep one");
                        }
                        out.max_visits = Some((v, n.span()));
                    }
                    _ => cx.error_spanned_by(
                        &n,
                        "`#[max_visits(N)]` takes a whole number of at least 1",
                    ),
                },
                Err(_) => cx.error_spanned_by(
                    attr,
                    "`#[max_visits(N)]` takes a whole number, e.g. `#[max_visits(3)]`",
                ),
            },
            CHILDREN => {
                if out.children.is_some() {
                    cx.error_spanned_by(attr, "`#[children(..)]` is given twice; keep one");
                }
                out.children = children_args(cx, attr);
            }
            _ => {
                if let Some(suggestion) = did_you_mean(&name, STATE_ATTRS.iter().copied()) {
                    cx.error_spanned_by(
                        ident,
                        format!(
                            "unknown state attribute `#[{name}]`; did you mean `#[{suggestion}]`?"
                        ),
                    );
                } else {
                    out.other.push(attr.clone());
                }
            }
        }
    }
    out.doc = docs.join(" ").trim().to_owned();
    out
}

fn no_args(cx: &Ctxt, attr: &Attribute, name: &str) {
    if !matches!(attr.meta, Meta::Path(_)) {
        cx.error_spanned_by(attr, format!("`#[{name}]` takes no arguments"));
    }
}

/// Why a state cannot be both `first` and `second` (given in that order),
/// and how to fix it.
fn kind_conflict(first: Kind, second: Kind) -> String {
    let attr = |k: Kind| format!("`#[{}]`", k.as_str().to_lowercase());
    match (first, second) {
        (Kind::Terminal, Kind::Gate) | (Kind::Gate, Kind::Terminal) => {
            "a terminal state has no next move to decide: remove `#[gate]` or `#[terminal]`".to_owned()
        }
        (Kind::Terminal, Kind::Wait) | (Kind::Wait, Kind::Terminal) => {
            "a terminal state has no next move to wait for: remove `#[wait]` or `#[terminal]`".to_owned()
        }
        (Kind::Gate, Kind::Wait) | (Kind::Wait, Kind::Gate) => {
            "a state's next move is picked either by a model (`#[gate]`) or by a signal (`#[wait]`), not both: remove one of them".to_owned()
        }
        (a, b) => format!("{} is given twice on this state; keep one", attr(if a == b { a } else { b })),
    }
}

/// `#[gate(fallback = State, max_repairs = N)]`, both optional.
fn gate_args(cx: &Ctxt, attr: &Attribute, out: &mut StateAttrs) {
    let parsed =
        attr.parse_args_with(Punctuated::<syn::MetaNameValue, Token![,]>::parse_terminated);
    let Ok(args) = parsed else {
        cx.error_spanned_by(
            attr,
            "`#[gate(..)]` takes `fallback = State` and `max_repairs = N`, e.g. `#[gate(fallback = Escalate, max_repairs = 3)]`",
        );
        return;
    };
    for arg in args {
        let key = arg
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match key.as_str() {
            FALLBACK => match &arg.value {
                Expr::Path(p) if p.path.get_ident().is_some() => {
                    out.fallback = p.path.get_ident().cloned();
                }
                other => cx.error_spanned_by(
                    other,
                    "`fallback` names one of the gate's moves, e.g. `fallback = Escalate`",
                ),
            },
            MAX_REPAIRS => match &arg.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Int(n), ..
                }) if n.base10_parse::<u32>().is_ok() => {
                    out.max_repairs = n.base10_parse::<u32>().ok();
                }
                other => cx.error_spanned_by(
                    other,
                    "`max_repairs` is a whole number, e.g. `max_repairs = 3`",
                ),
            },
            _ => cx.error_spanned_by(
                &arg.path,
                format!(
                    "unknown gate argument `{key}`; {}",
                    crate::check::suggest::expected_one_of(&key, &[FALLBACK, MAX_REPAIRS])
                ),
            ),
        }
    }
}

/// `#[children(Machine, input = T)]` or `#[children(Machine, input = T,
/// output = U)]`.
fn children_args(cx: &Ctxt, attr: &Attribute) -> Option<Children> {
    const USAGE: &str = "`#[children(..)]` names the child machine and the types it is started with and ends with, e.g. `#[children(Lookup, input = Job, output = Found)]`";
    let parsed = attr.parse_args_with(|input: syn::parse::ParseStream<'_>| {
        let machine: syn::Path = input.parse()?;
        let mut pairs = Vec::new();
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            let ty: syn::Type = input.parse()?;
            pairs.push((key, ty));
        }
        Ok((machine, pairs))
    });
    let Ok((machine, pairs)) = parsed else {
        cx.error_spanned_by(attr, USAGE);
        return None;
    };
    let (mut input, mut output) = (None, None);
    for (key, ty) in pairs {
        match key.to_string().as_str() {
            INPUT => input = Some(ty),
            OUTPUT => output = Some(ty),
            other => {
                let hint = did_you_mean(other, [INPUT, OUTPUT])
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                cx.error_spanned_by(
                    &key,
                    format!(
                        "`#[children(..)]` takes `input = T` and `output = U`, not `{other}`{hint}"
                    ),
                );
            }
        }
    }
    let Some(input) = input else {
        cx.error_spanned_by(
            attr,
            "`#[children(..)]` needs `input = T`: the context each child run starts with",
        );
        return None;
    };
    Some(Children {
        span: machine.span(),
        machine,
        input,
        output,
    })
}

#[cfg(test)]
mod tests {
    use crate::check::tests::errors;
    use quote::quote;

    #[test]
    fn kind_conflicts_say_what_to_remove() {
        let e = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M {
                    #[initial] #[to(B, C, D)] A,
                    #[gate] #[terminal] B,
                    #[terminal] #[wait] C,
                    #[wait] #[gate] #[to(Done)] D,
                    #[terminal] #[terminal] Done,
                }
            },
        );
        assert_eq!(
            e,
            [
                "a terminal state has no next move to decide: remove `#[gate]` or `#[terminal]`",
                "a terminal state has no next move to wait for: remove `#[wait]` or `#[terminal]`",
                "a state's next move is picked either by a model (`#[gate]`) or by a signal (`#[wait]`), not both: remove one of them",
                "`#[terminal]` is given twice on this state; keep one",
            ]
        );
    }

    #[test]
    fn children_need_a_machine_and_an_input() {
        let e = errors(
            quote!(context = ()),
            syn::parse_quote! {
                enum M {
                    #[initial] #[to(B, C, D)] #[children(Lookup)] A,
                    #[to(Done)] #[children(Lookup, input = Job, ouptut = ())] B,
                    #[to(Done)] #[children(input = Job)] C,
                    #[wait] #[to(Done)] #[children(Lookup, input = Job)] D,
                    #[terminal] Done,
                }
            },
        );
        assert_eq!(
            e,
            [
                "`#[children(..)]` needs `input = T`: the context each child run starts with",
                "`#[children(..)]` takes `input = T` and `output = U`, not `ouptut`; did you mean `output`?",
                "`#[children(..)]` names the child machine and the types it is started with and ends with, e.g. `#[children(Lookup, input = Job, output = Found)]`",
                "`D` is a wait state: it runs no handler, so it cannot start child runs; put `#[children(..)]` on the state whose handler calls `cx.fan_out`",
            ]
        );
    }
}
