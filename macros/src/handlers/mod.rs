//! `#[guiderail::handlers]`: checks an `impl <machine>::Handlers for T`
//! block method by method and reports mistakes on the user's tokens.
//!
//! The attribute cannot see the machine enum, so it asks the machine:
//! `#[machine]` leaves a `macro_rules! __guiderail_states` in the machine's
//! module, and the attribute expands to a call of it with the `impl` block.
//! That macro hands the states and the block to `__check_handlers!`
//! (this module), which checks and expands:
//!
//! - the user's methods move, renamed, into an inherent `impl` (bodies
//!   untouched, so their own errors still point at the user's code);
//! - the trait `impl` gets one forwarding method per state with exactly the
//!   trait's signature, converting each payload through `PayloadIs` and the
//!   result through `OutputIs`, both spanned on the user's types, so a wrong
//!   type is reported once, on that type, with both types named.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, LitStr, Path, ReturnType, Token, Type, braced,
    bracketed, parenthesized,
};

use crate::check::suggest::did_you_mean;
use crate::ctxt::Ctxt;

/// The entry of `#[guiderail::handlers]`: `impl m::Handlers for T { .. }`
/// becomes `m::__guiderail_states! { (m) impl m::Handlers for T { .. } }`.
pub fn attribute(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = TokenStream::new();
    if !args.is_empty() {
        errors.extend(
            syn::Error::new_spanned(&args, "`#[guiderail::handlers]` takes no arguments")
                .to_compile_error(),
        );
    }
    let imp: ItemImpl = match syn::parse2(item.clone()) {
        Ok(imp) => imp,
        Err(_) => return not_a_handlers_impl(item, Span::call_site()),
    };
    let Some((trait_path, _)) = &imp.trait_ else {
        return not_a_handlers_impl(item, imp.self_ty.span());
    };
    let last = trait_path.segments.last().map(|s| s.ident.to_string());
    if last.as_deref() != Some("Handlers") || trait_path.segments.len() < 2 {
        return not_a_handlers_impl(item, trait_path.span());
    }
    let mut module = trait_path.clone();
    module.segments.pop();
    let module = strip_trailing(module);
    quote!(#module::__guiderail_states! { (#module) #item } #errors)
}

fn strip_trailing(mut p: Path) -> Path {
    p.segments.pop_punct();
    p
}

fn not_a_handlers_impl(item: TokenStream, span: Span) -> TokenStream {
    let err = syn::Error::new(
        span,
        "`#[guiderail::handlers]` goes on the handler impl of a machine, written with the machine's module: `impl support::Handlers for MyAgent { .. }`",
    )
    .to_compile_error();
    quote!(#item #err)
}

/// One state as the machine describes it.
struct StateDesc {
    ident: Ident,
    method: Ident,
    kind: Ident,
    params: Vec<Ident>,
    signature: LitStr,
}

impl Parse for StateDesc {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let content;
        braced!(content in input);
        let ident = content.parse()?;
        content.parse::<Token![,]>()?;
        let method = content.call(Ident::parse_any_ident)?;
        content.parse::<Token![,]>()?;
        let kind = content.parse()?;
        content.parse::<Token![,]>()?;
        let list;
        bracketed!(list in content);
        let params = Punctuated::<Ident, Token![,]>::parse_terminated(&list)?
            .into_iter()
            .collect();
        content.parse::<Token![,]>()?;
        let signature = content.parse()?;
        Ok(StateDesc {
            ident,
            method,
            kind,
            params,
            signature,
        })
    }
}

/// `Machine, (private path), [states], (module path) impl …`
struct Input {
    machine: Ident,
    private: Path,
    states: Vec<StateDesc>,
    module: Path,
    imp: ItemImpl,
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let machine = input.parse()?;
        input.parse::<Token![,]>()?;
        let p;
        parenthesized!(p in input);
        let private = p.parse()?;
        input.parse::<Token![,]>()?;
        let s;
        bracketed!(s in input);
        let states = Punctuated::<StateDesc, Token![,]>::parse_terminated(&s)?
            .into_iter()
            .collect();
        input.parse::<Token![,]>()?;
        let m;
        parenthesized!(m in input);
        let module = m.parse()?;
        let imp = input.parse()?;
        Ok(Input {
            machine,
            private,
            states,
            module,
            imp,
        })
    }
}

trait ParseAnyIdent {
    fn parse_any_ident(input: ParseStream<'_>) -> syn::Result<Ident>;
}

impl ParseAnyIdent for Ident {
    fn parse_any_ident(input: ParseStream<'_>) -> syn::Result<Ident> {
        use syn::ext::IdentExt;
        Ident::parse_any(input)
    }
}

/// The entry of `__check_handlers!`.
pub fn check(tokens: TokenStream) -> TokenStream {
    match syn::parse2::<Input>(tokens) {
        Ok(input) => expand(&input),
        Err(e) => e.to_compile_error(),
    }
}

fn handles(kind: &Ident) -> bool {
    kind == "plain" || kind == "gate"
}

fn expand(input: &Input) -> TokenStream {
    let cx = Ctxt::new();
    let Input {
        machine,
        private: p,
        states,
        module,
        imp,
    } = input;
    let self_ty = &imp.self_ty;
    let (impl_generics, _, where_clause) = imp.generics.split_for_impl();
    let trait_path = &imp.trait_.as_ref().expect("checked by the attribute").0;
    let module_name = module
        .segments
        .last()
        .map_or_else(String::new, |s| s.ident.to_string());
    let handled: Vec<&StateDesc> = states.iter().filter(|s| handles(&s.kind)).collect();

    let mut inherent = Vec::new();
    let mut forwards = Vec::new();
    let mut seen = Vec::new();
    for item in &imp.items {
        let ImplItem::Fn(f) = item else {
            cx.error_spanned_by(
                item,
                "only handler methods go in a `Handlers` impl; move other items to a separate `impl` block",
            );
            continue;
        };
        let name = f.sig.ident.to_string();
        let Some(state) = states.iter().find(|s| s.method == f.sig.ident) else {
            let candidates = handled
                .iter()
                .map(|s| s.method.to_string())
                .collect::<Vec<_>>();
            let hint = match did_you_mean(&name, candidates.iter().map(String::as_str)) {
                Some(s) => {
                    // The typo is the missing handler: report it once.
                    seen.push(s.to_owned());
                    format!("did you mean `{s}`?")
                }
                None => format!(
                    "the handlers are {}",
                    candidates
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            cx.error_spanned_by(
                &f.sig.ident,
                format!("`{machine}` has no state handled by `{name}`: a handler is named after its state in snake_case; {hint}"),
            );
            continue;
        };
        if state.kind == "terminal" {
            cx.error_spanned_by(
                &f.sig.ident,
                format!(
                    "`{}` is a terminal state: a run ends there, so it has no handler; remove `{name}`",
                    state.ident
                ),
            );
            continue;
        }
        if state.kind == "wait" {
            cx.error_spanned_by(
                &f.sig.ident,
                format!(
                    "`{}` is a wait state: a signal moves it on (`runner.signal(..)` with `{module_name}::{}Next`), so it has no handler; remove `{name}`",
                    state.ident, state.ident
                ),
            );
            continue;
        }
        seen.push(state.method.to_string());
        if let Some(forward) = method(&cx, input, state, f) {
            inherent.push(renamed(f, &module_name));
            forwards.push(forward);
        }
    }
    for state in &handled {
        if !seen.contains(&state.method.to_string()) {
            cx.error_spanned_by(
                trait_path,
                format!(
                    "missing handler for state `{}`: add `{}`",
                    state.ident,
                    state.signature.value()
                ),
            );
        }
    }
    // Every handled state gets a method, so a mistake is reported once,
    // by us, and not again as "missing item" or "incompatible type".
    let covered: Vec<String> = forwards.iter().map(|(m, _)| m.to_string()).collect();
    let stubs = handled
        .iter()
        .filter(|s| !covered.contains(&s.method.to_string()))
        .map(|s| stub(p, module, machine, s));
    let forwards = forwards.into_iter().map(|(_, t)| t);
    let errors = cx.check().err().map(|e| e.to_compile_error());
    let _ = machine;
    quote! {
        #[allow(clippy::needless_lifetimes, clippy::unused_async, dead_code)]
        impl #impl_generics #self_ty #where_clause {
            #(#inherent)*
        }

        #[automatically_derived]
        impl #impl_generics #trait_path for #self_ty #where_clause {
            #(#forwards)*
            #(#stubs)*
        }

        #errors
    }
}

fn hidden_name(module: &str, method: &Ident) -> Ident {
    format_ident!(
        "__guiderail_{}_{}",
        module.trim_start_matches("r#"),
        method.to_string().trim_start_matches("r#")
    )
}

fn renamed(f: &ImplItemFn, module: &str) -> TokenStream {
    let mut f = f.clone();
    f.sig.ident = hidden_name(module, &f.sig.ident);
    f.vis = syn::Visibility::Inherited;
    f.attrs.push(syn::parse_quote!(#[doc(hidden)]));
    quote!(#f)
}

/// The trait method's exact signature.
fn trait_signature(p: &Path, module: &Path, state: &StateDesc, span: Span) -> TokenStream {
    let method = &state.method;
    let ident = &state.ident;
    let next = format_ident!("{}Next", ident);
    let output = if state.kind == "gate" {
        quote!(#p::HandlerResult<#p::Decision<#module::#next>>)
    } else {
        quote!(#p::HandlerResult<#module::#next>)
    };
    let params = state.params.iter().enumerate().map(|(i, name)| {
        let alias = format_ident!("__{}_{}", ident, i);
        quote!(#name: #module::#alias)
    });
    // Only the return type carries the user's span (so a non-`Send` future
    // is reported on the handler); `self` and `cx` keep the call site's
    // hygiene, which the body shares.
    let ret = quote_spanned! {span=>
        impl ::core::future::Future<Output = #output> + ::core::marker::Send
    };
    quote! {
        fn #method(&self, cx: &mut #p::Cx<'_, #module::__Machine>, #(#params),*) -> #ret
    }
}

fn stub(p: &Path, module: &Path, _machine: &Ident, state: &StateDesc) -> TokenStream {
    let sig = trait_signature(p, module, state, Span::call_site());
    quote! {
        #[allow(unused_variables, unreachable_code)]
        #sig {
            async move { ::core::unreachable!() }
        }
    }
}

/// Checks one handler method; returns its forwarding trait method.
fn method(
    cx: &Ctxt,
    input: &Input,
    state: &StateDesc,
    f: &ImplItemFn,
) -> Option<(Ident, TokenStream)> {
    let p = &input.private;
    let module = &input.module;
    let module_name = module
        .segments
        .last()
        .map_or_else(String::new, |s| s.ident.to_string());
    let sig = &f.sig;
    let mut ok = true;
    let returns_future = match &sig.output {
        ReturnType::Type(_, ty) => matches!(&**ty, Type::ImplTrait(_)),
        ReturnType::Default => false,
    };
    if sig.asyncness.is_none() && !returns_future {
        cx.error_spanned_by(
            sig.fn_token,
            format!(
                "handlers are `async fn`s: write `{}`",
                state.signature.value()
            ),
        );
        ok = false;
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if matches!(r.kind, syn::ReceiverKind::Reference(_, _, None)) => {}
        other => {
            let span = other.map_or(sig.ident.span(), |o| o.span());
            cx.error_at(
                span,
                "a handler takes `&self` first (state lives in the context, `cx.context_mut()`)",
            );
            ok = false;
        }
    }
    let rest: Vec<&FnArg> = inputs.collect();
    let expected = 1 + state.params.len();
    if rest.len() != expected {
        cx.error_spanned_by(
            &sig.inputs,
            format!(
                "`{}` takes the context and the payload of `{}` ({} argument{} after `&self`): `{}`",
                sig.ident,
                state.ident,
                expected,
                if expected == 1 { "" } else { "s" },
                state.signature.value()
            ),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    let hidden = hidden_name(&module_name, &sig.ident);
    let self_ty = &input.imp.self_ty;
    let ident = &state.ident;
    let args = rest.iter().skip(1).zip(&state.params).enumerate().map(|(i, (arg, name))| {
        let alias = format_ident!("__{}_{}", ident, i);
        match arg {
            FnArg::Typed(t) => {
                let ty = &t.ty;
                quote_spanned!(ty.span()=> <#ty as #p::PayloadIs<#module::#alias>>::convert(#name))
            }
            FnArg::Receiver(_) => quote!(#name),
        }
    });
    let call = quote!(<#self_ty>::#hidden(self, cx, #(#args),*));
    let next = format_ident!("{}Next", ident);
    let expected = if state.kind == "gate" {
        quote!(#p::HandlerResult<#p::Decision<#module::#next>>)
    } else {
        quote!(#p::HandlerResult<#module::#next>)
    };
    // The user's future itself, its output checked where the user wrote
    // the output type (no `async` block around it: that would be one
    // more layer in every step's future).
    let span = declared_output(sig).map_or_else(Span::call_site, |ty| ty.span());
    let body = quote_spanned! {span=>
        let __handled: #p::Handled<_, #expected> = #p::Handled::new(#call);
        __handled
    };
    let trait_sig = trait_signature(p, module, state, sig.ident.span());
    Some((
        state.method.clone(),
        quote! {
            #[inline]
            #trait_sig { #body }
        },
    ))
}

/// The output type a handler declares: the return type of an `async fn`,
/// or `X` in `-> impl Future<Output = X>`.
fn declared_output(sig: &syn::Signature) -> Option<Type> {
    let ReturnType::Type(_, ty) = &sig.output else {
        return sig
            .asyncness
            .map(|_| syn::parse_quote_spanned!(sig.ident.span()=> ()));
    };
    if sig.asyncness.is_some() {
        return Some((**ty).clone());
    }
    let Type::ImplTrait(it) = &**ty else {
        return None;
    };
    it.bounds.iter().find_map(|b| match b {
        syn::TypeParamBound::Trait(t) => {
            let last = t.path.segments.last()?;
            let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
                return None;
            };
            args.args.iter().find_map(|a| match a {
                syn::GenericArgument::AssocType(at) if at.ident == "Output" => Some(at.ty.clone()),
                _ => None,
            })
        }
        _ => None,
    })
}
