#![forbid(unsafe_code)]
//! Procedural macros of [guiderail](https://docs.rs/guiderail). Use them
//! through the `guiderail` crate: `#[guiderail::machine]` and
//! `#[guiderail::handlers]`.
//!
//! The pipeline is parse → model → check → expand; each stage takes and
//! returns `proc_macro2` values so it can be unit-tested.

use proc_macro::TokenStream;

mod analysis;
mod check;
mod ctxt;
mod expand;
mod handlers;
mod model;
mod parse;
mod symbol;

/// Turns an enum into a state machine. See the `guiderail` crate's docs.
#[proc_macro_attribute]
pub fn machine(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::machine(args.into(), item.into()).into()
}

/// Checks a machine's handler impl method by method and reports mistakes
/// (wrong payload or move type, a method for no state, a handler for a
/// terminal or wait state, a missing handler) on the user's tokens.
///
/// Goes on `impl <machine module>::Handlers for YourType { .. }`.
#[proc_macro_attribute]
pub fn handlers(args: TokenStream, item: TokenStream) -> TokenStream {
    handlers::attribute(args.into(), item.into()).into()
}

#[doc(hidden)]
#[proc_macro]
pub fn __check_handlers(input: TokenStream) -> TokenStream {
    handlers::check(input.into()).into()
}
