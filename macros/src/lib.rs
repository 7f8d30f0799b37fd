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
mod model;
mod parse;
mod symbol;

/// Turns an enum into a state machine. See the `guiderail` crate's docs.
#[proc_macro_attribute]
pub fn machine(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::machine(args.into(), item.into()).into()
}
