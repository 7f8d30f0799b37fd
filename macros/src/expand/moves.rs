//! Per-state `…Next` enums: exactly the declared targets, carrying their
//! payloads, with a conversion into the machine enum. Gate move enums also
//! get the serde/schemars derives and `GateMoves`; wait move enums `Signal`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::names;
use crate::model::{Kind, Machine, Payload, State};

/// `Path::Variant`, `Path::Variant(a, b)` or `Path::Variant { a, b }`.
pub fn pattern(prefix: &TokenStream, s: &State) -> TokenStream {
    let ident = &s.ident;
    let b = names::bindings(s);
    match &s.payload {
        Payload::Unit => quote!(#prefix::#ident),
        Payload::Tuple(_) => quote!(#prefix::#ident(#(#b),*)),
        Payload::Struct(_) => quote!(#prefix::#ident { #(#b),* }),
    }
}

/// Doc attributes of a state, or a generated line when it has none.
pub fn docs(s: &State, fallback: &str) -> TokenStream {
    let docs: Vec<_> = s
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .collect();
    if docs.is_empty() {
        quote!(#[doc = #fallback])
    } else {
        quote!(#(#docs)*)
    }
}

/// The distinct, known targets of `s`, in `#[to]` order.
pub fn targets<'m>(m: &'m Machine, s: &State) -> Vec<&'m State> {
    let mut out: Vec<&State> = Vec::new();
    for t in &s.targets {
        if let Some(target) = m.state(t)
            && !out.iter().any(|o| o.ident == target.ident)
        {
            out.push(target);
        }
    }
    out
}

pub fn move_enum(m: &Machine, s: &State, item_vis: &TokenStream) -> TokenStream {
    let p = &m.private;
    let machine = &m.ident;
    let name = names::next_enum(s);
    let state = &s.ident;
    let targets = targets(m, s);
    let variants = targets.iter().map(|t| {
        let ident = &t.ident;
        let fields = &t.fields;
        let doc = docs(t, &format!("Move to `{}`.", t.ident));
        quote!(#doc #ident #fields)
    });
    let arms = targets.iter().map(|t| {
        let from = pattern(&quote!(#name), t);
        let to = pattern(&quote!(super::#machine), t);
        quote!(#from => #to)
    });
    let enum_doc = format!(
        "The moves out of [`{machine}::{state}`](super::{machine}::{state}): {}.",
        if targets.is_empty() {
            "none".to_owned()
        } else {
            targets
                .iter()
                .map(|t| format!("`{}`", t.ident))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let gate_derives = if s.kind == Kind::Gate {
        let serde_path = format!("{}::serde", path_string(p));
        let schemars_path = format!("{}::schemars", path_string(p));
        quote! {
            #[derive(#p::serde::Serialize, #p::serde::Deserialize, #p::schemars::JsonSchema)]
            #[serde(crate = #serde_path, deny_unknown_fields)]
            #[schemars(crate = #schemars_path)]
        }
    } else {
        TokenStream::new()
    };
    let extra = match s.kind {
        Kind::Gate => gate_moves(m, s, &targets),
        Kind::Wait => signal(m, s),
        _ => TokenStream::new(),
    };
    let from_body = if targets.is_empty() {
        quote!(match __next {})
    } else {
        quote!(match __next { #(#arms,)* })
    };
    quote! {
        #[doc = #enum_doc]
        #gate_derives
        #item_vis enum #name {
            #(#variants,)*
        }

        #[automatically_derived]
        impl ::core::convert::From<#name> for super::#machine {
            #[inline]
            fn from(__next: #name) -> Self {
                #from_body
            }
        }

        #extra
    }
}

fn path_string(p: &syn::Path) -> String {
    quote!(#p).to_string().replace(' ', "")
}

fn gate_moves(m: &Machine, s: &State, targets: &[&State]) -> TokenStream {
    let p = &m.private;
    let name = names::next_enum(s);
    let machine = m.ident.to_string();
    let gate = s.ident.to_string();
    let gate_doc = &s.doc;
    let moves = targets.iter().map(|t| {
        let n = t.ident.to_string();
        let doc = &t.doc;
        let shape = match &t.payload {
            Payload::Unit => quote!(Unit),
            Payload::Tuple(f) if f.len() == 1 => quote!(Newtype),
            _ => quote!(Struct),
        };
        quote!(#p::MoveInfo { name: #n, doc: #doc, shape: #p::MoveShape::#shape })
    });
    let checks = targets.iter().flat_map(|t| t.payload.types()).map(|ty| {
        quote_spanned! {ty.span()=>
            const _: () = #p::assert_gate_payload::<#ty>();
        }
    });
    let fallback = fallback(m, s);
    let max_repairs = match s.max_repairs {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        #[automatically_derived]
        impl #p::GateMoves for #name {
            const MACHINE: &'static str = #machine;
            const GATE: &'static str = #gate;
            const GATE_DOC: &'static str = #gate_doc;
            const MOVES: &'static [#p::MoveInfo] = &[#(#moves),*];
            const MAX_REPAIRS: ::core::option::Option<u32> = #max_repairs;
            #fallback
            fn spec() -> &'static #p::GateSpec {
                static __SPEC: ::std::sync::OnceLock<#p::GateSpec> = ::std::sync::OnceLock::new();
                __SPEC.get_or_init(#p::GateSpec::build::<#name>)
            }
        }
        #(#checks)*
    }
}

/// `GateMoves::fallback`: the declared fallback move, built from the
/// failure (its one field, if any, through `FromGateFailure`).
fn fallback(m: &Machine, s: &State) -> TokenStream {
    let p = &m.private;
    // A fallback that is not one of the gate's moves was reported by the
    // checks; generating it would only add a second error.
    let Some(target) = s
        .fallback
        .as_ref()
        .filter(|f| s.targets.contains(f))
        .and_then(|f| m.state(f))
    else {
        return TokenStream::new();
    };
    let name = names::next_enum(s);
    let ident = &target.ident;
    let from = |ty: &syn::Type| quote_spanned!(ty.span()=> <#ty as #p::FromGateFailure>::from_failure(__failure));
    let value = match &target.payload {
        Payload::Unit => quote!(#name::#ident),
        Payload::Tuple(t) if t.len() == 1 => {
            let v = from(&t[0]);
            quote!(#name::#ident(#v))
        }
        Payload::Struct(f) if f.len() == 1 => {
            let (field, ty) = &f[0];
            let v = from(ty);
            quote!(#name::#ident { #field: #v })
        }
        _ => return TokenStream::new(),
    };
    quote! {
        fn fallback(__failure: &#p::GateFailure) -> ::core::option::Option<Self> {
            ::core::option::Option::Some(#value)
        }
    }
}

fn signal(m: &Machine, s: &State) -> TokenStream {
    let p = &m.private;
    let name = names::next_enum(s);
    let machine = &m.ident;
    let index = s.index;
    quote! {
        #[automatically_derived]
        impl #p::Signal<super::#machine> for #name {
            const STATE: usize = #index;
            #[inline]
            fn into_state(self) -> super::#machine {
                ::core::convert::From::from(self)
            }
        }
    }
}
