//! `#[machine(context = T, max_steps = N, on_exhausted = State, crate = path)]`.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Lit, Path, Token, Type};

use crate::check::suggest::expected_one_of;
use crate::ctxt::Ctxt;
use crate::symbol::{CONTEXT, CRATE, MACHINE_ARGS, MAX_STEPS, ON_EXHAUSTED};

/// The value of an argument: a type for `context` (which may contain
/// `<`, `>` and commas), an expression for everything else.
pub enum Value {
    Type(Type),
    Expr(Expr),
}

impl quote::ToTokens for Value {
    fn to_tokens(&self, tokens: &mut proc_macro2::TokenStream) {
        match self {
            Value::Type(t) => t.to_tokens(tokens),
            Value::Expr(e) => e.to_tokens(tokens),
        }
    }
}

/// One `key = value` argument, kept raw until checked.
pub struct Arg {
    pub key: Ident,
    pub value: Value,
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key = if input.peek(Token![crate]) {
            let k: Token![crate] = input.parse()?;
            Ident::new("crate", k.span)
        } else {
            input.parse()?
        };
        input.parse::<Token![=]>()?;
        let value = if key == CONTEXT {
            Value::Type(input.parse()?)
        } else {
            Value::Expr(input.parse()?)
        };
        Ok(Arg { key, value })
    }
}

/// The parsed arguments.
pub struct Args {
    pub context: Option<Type>,
    pub max_steps: Option<(u64, Span)>,
    pub on_exhausted: Option<Ident>,
    pub krate: Option<Path>,
}

pub fn parse_args(cx: &Ctxt, tokens: proc_macro2::TokenStream) -> Args {
    let mut args = Args {
        context: None,
        max_steps: None,
        on_exhausted: None,
        krate: None,
    };
    let list = match syn::parse::Parser::parse2(
        Punctuated::<Arg, Token![,]>::parse_terminated,
        tokens,
    ) {
        Ok(list) => list,
        Err(e) => {
            cx.error_at(
                e.span(),
                format!(
                    "{e}; write the arguments as `key = value`, e.g. `#[machine(context = Ticket, max_steps = 20)]`"
                ),
            );
            return args;
        }
    };
    for arg in list {
        let key = arg.key.to_string();
        let value = match arg.value {
            Value::Type(ty) => {
                set(cx, &arg.key, &mut args.context, ty);
                continue;
            }
            Value::Expr(e) => e,
        };
        match key.as_str() {
            MAX_STEPS => match &value {
                Expr::Lit(l) => match &l.lit {
                    Lit::Int(i) => match i.base10_parse::<u64>() {
                        Ok(n) if n > 0 => set(cx, &arg.key, &mut args.max_steps, (n, i.span())),
                        _ => cx.error_spanned_by(
                            i,
                            "`max_steps` must be a whole number of at least 1",
                        ),
                    },
                    _ => cx.error_spanned_by(
                        &value,
                        "`max_steps` must be a whole number, e.g. `max_steps = 20`",
                    ),
                },
                _ => cx.error_spanned_by(
                    &value,
                    "`max_steps` must be a whole number, e.g. `max_steps = 20`",
                ),
            },
            ON_EXHAUSTED => match &value {
                Expr::Path(p) if p.path.get_ident().is_some() => {
                    let ident = p.path.get_ident().cloned().expect("checked");
                    set(cx, &arg.key, &mut args.on_exhausted, ident);
                }
                _ => cx.error_spanned_by(
                    &value,
                    "`on_exhausted` names a state of this machine, e.g. `on_exhausted = WrapUp`",
                ),
            },
            CRATE => {
                let path = match &value {
                    Expr::Path(p) => Some(p.path.clone()),
                    Expr::Lit(l) => match &l.lit {
                        Lit::Str(s) => s.parse::<Path>().ok(),
                        _ => None,
                    },
                    _ => None,
                };
                match path {
                    Some(p) => set(cx, &arg.key, &mut args.krate, p),
                    None => cx.error_spanned_by(
                        &value,
                        "`crate` must be a path to the guiderail crate, e.g. `crate = ::guiderail`",
                    ),
                }
            }
            _ => cx.error_spanned_by(
                &arg.key,
                format!(
                    "unknown argument `{key}`; {}",
                    expected_one_of(&key, MACHINE_ARGS)
                ),
            ),
        }
    }
    args
}

fn set<T>(cx: &Ctxt, key: &Ident, slot: &mut Option<T>, value: T) {
    if slot.is_some() {
        cx.error_spanned_by(key, format!("`{key}` is given twice; keep one"));
    } else {
        *slot = Some(value);
    }
}
