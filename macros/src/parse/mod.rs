//! Stage 1: tokens → [`Machine`](crate::model::Machine). Reports malformed
//! input into the [`Ctxt`] and keeps going where it can.

use proc_macro2::TokenStream;
use syn::{Fields, ItemEnum, Type};

use crate::ctxt::Ctxt;
use crate::model::{Kind, Machine, Payload, State};

pub mod args;
pub mod attr;

/// Parses the macro's arguments and the enum; problems go into `cx` and
/// parsing goes on, so one build reports them all.
pub fn machine(cx: &Ctxt, args: TokenStream, item: &ItemEnum) -> Machine {
    let args = args::parse_args(cx, args);
    if !item.generics.params.is_empty() {
        cx.error_spanned_by(
            &item.generics,
            "a machine enum cannot be generic; put type parameters in the context or the payloads' own types",
        );
    }
    if item.variants.is_empty() {
        cx.error_spanned_by(
            &item.ident,
            "a machine needs states: add variants, one `#[initial]` and at least one `#[terminal]`",
        );
    }
    let mut states = Vec::new();
    for (index, v) in item.variants.iter().enumerate() {
        let attrs = attr::parse_state_attrs(cx, &v.attrs);
        if let Some((_, d)) = &v.discriminant {
            cx.error_spanned_by(
                d,
                "a state cannot have a discriminant; a state carries its data as a payload, e.g. `Escalate { reason: String }`",
            );
        }
        // A payload that is not a type is reported here and replaced by `()`
        // in everything generated from it, so rustc does not repeat it.
        let mut fields = v.fields.clone();
        for field in fields.iter_mut() {
            check_payload_type(cx, &field.ty);
            if not_a_payload(&field.ty).is_some() {
                field.ty = syn::parse_quote!(());
            }
        }
        let payload = match &fields {
            Fields::Unit => Payload::Unit,
            Fields::Unnamed(f) => Payload::Tuple(f.unnamed.iter().map(|f| f.ty.clone()).collect()),
            Fields::Named(f) => Payload::Struct(
                f.named
                    .iter()
                    .map(|f| (f.ident.clone().expect("named field"), f.ty.clone()))
                    .collect(),
            ),
        };
        states.push(State {
            ident: v.ident.clone(),
            index,
            kind: attrs.kind.map_or(Kind::Plain, |(k, _)| k),
            initial: attrs.initial,
            targets: attrs.targets,
            to_span: attrs.to_span,
            max_visits: attrs.max_visits,
            fallback: attrs.fallback,
            max_repairs: attrs.max_repairs,
            children: attrs.children,
            payload,
            fields,
            doc: attrs.doc,
            attrs: attrs.other,
        });
    }
    let krate = args.krate.unwrap_or_else(|| syn::parse_quote!(::guiderail));
    let private = syn::parse_quote!(#krate::__private);
    Machine {
        ident: item.ident.clone(),
        vis: item.vis.clone(),
        context: args.context.unwrap_or_else(|| syn::parse_quote!(())),
        max_steps: args.max_steps,
        on_exhausted: args.on_exhausted,
        private,
        states,
    }
}

/// What is wrong with a payload type, if it cannot be one: a payload must
/// be a concrete type a value can have.
pub fn not_a_payload(ty: &Type) -> Option<&'static str> {
    match ty {
        Type::Infer(_) => Some("`_`"),
        Type::ImplTrait(_) => Some("`impl Trait`"),
        Type::Never(_) => Some("`!`"),
        Type::Macro(_) => Some("a macro"),
        Type::Verbatim(_) => Some("this"),
        _ => None,
    }
}

fn check_payload_type(cx: &Ctxt, ty: &Type) {
    if let Some(what) = not_a_payload(ty) {
        cx.error_spanned_by(
            ty,
            format!(
                "{what} is not a payload type; a state's payload must be a concrete type, e.g. `Refund` or `String`"
            ),
        );
    }
}
