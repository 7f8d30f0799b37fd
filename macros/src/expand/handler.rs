//! The handler trait: one method per state that runs code (plain and gate
//! states), so a missing handler is a compile error from rustc.

use proc_macro2::TokenStream;
use quote::quote;

use super::{moves, names};
use crate::model::{Kind, Machine, State};

/// The return type of a state's handler future.
pub fn output(m: &Machine, s: &State) -> TokenStream {
    let p = &m.private;
    let next = names::next_enum(s);
    match s.kind {
        Kind::Gate => quote!(#p::HandlerResult<#p::Decision<#next>>),
        _ => quote!(#p::HandlerResult<#next>),
    }
}

/// `cx: &mut Cx<'_, Machine>, field: Type, …` of a state's handler.
pub fn inputs(m: &Machine, s: &State) -> TokenStream {
    let p = &m.private;
    let machine = &m.ident;
    let params = names::params(s);
    let types = s.payload.types();
    quote!(cx: &mut #p::Cx<'_, super::#machine>, #(#params: #types),*)
}

pub fn handles(s: &State) -> bool {
    matches!(s.kind, Kind::Plain | Kind::Gate)
}

pub fn trait_def(m: &Machine, item_vis: &TokenStream) -> TokenStream {
    let machine = &m.ident;
    let message = format!("`{{Self}}` does not handle the states of `{machine}`");
    let note = format!(
        "implement it: `#[guiderail::handlers] impl {}::Handlers for {{Self}} {{{{ .. }}}}`, one `async fn` per state that runs code",
        names::module(m)
    );
    let methods = m.states.iter().filter(|s| handles(s)).map(|s| {
        let method = names::method(s);
        let inputs = inputs(m, s);
        let output = output(m, s);
        let doc = moves::docs(s, "");
        let what = if s.kind == Kind::Gate {
            format!(
                "Handles the gate `{}`: return `cx.decide(prompt).await` (a model decision) or `Decision::overridden(..)`.",
                s.ident
            )
        } else {
            format!("Handles the state `{}` and returns its next move.", s.ident)
        };
        quote! {
            #[doc = #what]
            #[doc = ""]
            #doc
            fn #method(&self, #inputs)
                -> impl ::core::future::Future<Output = #output> + ::core::marker::Send;
        }
    });
    let doc = format!(
        "The handlers of [`{machine}`](super::{machine}): one method per state that runs code. \
         Wait states have none (a signal moves them on) and terminal states have none (the run ends)."
    );
    quote! {
        #[doc = #doc]
        #[diagnostic::on_unimplemented(message = #message, note = #note)]
        #item_vis trait Handlers: ::core::marker::Send + ::core::marker::Sync {
            #(#methods)*
        }
    }
}

/// The `Dispatch` impl: `__run`, the in-memory run loop with a `match` on
/// the state in it, each handler's future awaited by the loop itself (one
/// layer, as in a hand-written loop), and `step`, the same `match` for one
/// step (durable runs, whose loop is the runtime's). No allocation per
/// step.
pub fn dispatch(m: &Machine) -> TokenStream {
    let p = &m.private;
    let machine = &m.ident;
    let module = names::module(m);
    let handled = arms(m, |s, call| {
        let wrap = if s.kind == Kind::Gate {
            quote!(decided)
        } else {
            quote!(moved)
        };
        quote!(#p::#wrap(#call.await))
    });
    let wait = quote!(#p::Step::Wait(__state));
    let terminal = quote!(#p::Step::Terminal(__state));
    let step = match_on(m, quote!(self), &handled, &wait, &terminal);
    let loop_step = match_on(m, quote!(__state), &handled, &wait, &terminal);
    quote! {
        #[automatically_derived]
        impl<__H: #module::Handlers + ?::core::marker::Sized> #p::Dispatch<__H> for #machine {
            fn step<'__a>(
                self,
                __handlers: &'__a __H,
                __cx: &'__a mut #p::Cx<'_, Self>,
            ) -> impl ::core::future::Future<Output = #p::Step<Self>> + ::core::marker::Send + '__a {
                async move { #step }
            }

            fn __run<'__a>(
                self,
                __env: &'__a #p::run::Env,
                __handlers: &'__a __H,
                __core: &'__a mut #p::run::RunCore<<Self as #p::Machine>::Context>,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<#p::run::Stop<Self>, #p::run::RunError>,
            > + ::core::marker::Send + '__a
            where
                __H: ::core::marker::Sync,
            {
                async move {
                    let mut __run_state = self;
                    #p::__run_loop!(
                        machine: Self,
                        env: __env,
                        handlers: __handlers,
                        state: __run_state,
                        core: __core,
                        hook: __no_hook,
                        durable: false,
                        step: |__state, __handlers, __cx| #loop_step,
                    )
                }
            }
        }
    }
}

/// The arms of a `match` on the state for the states with handlers: the
/// pattern binding the payload, and `body` of the handler's call (on
/// `__handlers` and `__cx`).
fn arms(m: &Machine, body: impl Fn(&State, TokenStream) -> TokenStream) -> Vec<TokenStream> {
    let machine = &m.ident;
    let prefix = quote!(#machine);
    m.states
        .iter()
        .filter(|s| handles(s))
        .map(|s| {
            let pat = moves::pattern(&prefix, s);
            let method = names::method(s);
            let args = names::bindings(s);
            let body = body(s, quote!(__handlers.#method(__cx, #(#args),*)));
            quote!(#pat => #body)
        })
        .collect()
}

/// `match #on { .. }` with `handled` for the states with handlers, and
/// `wait` and `terminal` (of the state, bound as `__state`) for the others.
fn match_on(
    m: &Machine,
    on: TokenStream,
    handled: &[TokenStream],
    wait: &TokenStream,
    terminal: &TokenStream,
) -> TokenStream {
    let machine = &m.ident;
    let others = m.states.iter().filter(|s| !handles(s)).map(|s| {
        let ident = &s.ident;
        let body = if s.kind == Kind::Wait { wait } else { terminal };
        quote!(__state @ #machine::#ident { .. } => #body)
    });
    quote!(match #on { #(#handled,)* #(#others,)* })
}

/// The handler signature as users write it, for "missing handler" messages.
pub fn signature_text(m: &Machine, s: &State) -> String {
    let module = names::module(m);
    let method = names::method(s);
    let mut params = vec![format!("cx: &mut Cx<'_, {}>", m.ident)];
    for (name, ty) in names::params(s).iter().zip(s.payload.types()) {
        params.push(format!(
            "{name}: {}",
            quote!(#ty)
                .to_string()
                .replace(" < ", "<")
                .replace(" >", ">")
        ));
    }
    let next = names::next_enum(s);
    let output = if s.kind == Kind::Gate {
        format!("HandlerResult<Decision<{module}::{next}>>")
    } else {
        format!("HandlerResult<{module}::{next}>")
    };
    format!(
        "async fn {method}(&self, {}) -> {output}",
        params.join(", ")
    )
}

/// What `#[guiderail::handlers]` needs to know about the machine: a
/// `macro_rules!` in the machine's module that hands the machine's states
/// and the user's `impl` block to `__check_handlers!`, plus type aliases the
/// checks name from the user's scope.
pub fn handlers_info(m: &Machine, item_vis: &TokenStream) -> TokenStream {
    let p = &m.private;
    let machine = &m.ident;
    let states = m.states.iter().map(|s| {
        let ident = &s.ident;
        let method = names::method(s);
        let kind = syn::Ident::new(
            &s.kind.as_str().to_lowercase(),
            proc_macro2::Span::call_site(),
        );
        let params = names::params(s);
        let sig = signature_text(m, s);
        quote!({ #ident, #method, #kind, [#(#params),*], #sig })
    });
    let aliases = m.states.iter().filter(|s| handles(s)).flat_map(|s| {
        s.payload
            .types()
            .into_iter()
            .enumerate()
            .map(move |(i, ty)| {
                let alias = payload_alias(s, i);
                quote! {
                    #[doc(hidden)]
                    #[allow(non_camel_case_types)]
                    #item_vis type #alias = #ty;
                }
            })
    });
    quote! {
        #[doc(hidden)]
        #item_vis type __Machine = super::#machine;
        #(#aliases)*

        #[doc(hidden)]
        macro_rules! __guiderail_states {
            ($($item:tt)*) => {
                #p::__check_handlers! {
                    #machine, (#p), [#(#states),*], $($item)*
                }
            };
        }
        #[doc(hidden)]
        #[allow(unused_imports)]
        pub(crate) use __guiderail_states;
    }
}

/// `__IssueRefund_0`: the alias of a payload field's type.
pub fn payload_alias(s: &State, i: usize) -> syn::Ident {
    quote::format_ident!("__{}_{}", s.ident, i)
}
