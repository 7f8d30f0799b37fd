//! Names of generated items, derived from the user's names.

use proc_macro2::{Ident, Span};
use quote::format_ident;

use crate::model::{Machine, Payload, State};

/// `IssueRefund` → `issue_refund`, `HTTPGet` → `http_get`.
pub fn snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The module holding a machine's generated items: `Support` → `support`.
/// A keyword (`Loop` → `loop`) becomes a raw identifier (`r#loop`).
pub fn module(m: &Machine) -> Ident {
    let name = snake(&m.ident.to_string());
    if syn::parse_str::<Ident>(&name).is_err() {
        Ident::new_raw(&name, m.ident.span())
    } else {
        Ident::new(&name, m.ident.span())
    }
}

/// The move enum of a state: `Classify` → `ClassifyNext`.
pub fn next_enum(s: &State) -> Ident {
    format_ident!("{}Next", s.ident)
}

/// The handler method of a state: `IssueRefund` → `issue_refund`.
pub fn method(s: &State) -> Ident {
    let name = snake(&s.ident.to_string());
    // `r#` keeps states such as `Move` or `Match` usable.
    if syn::parse_str::<Ident>(&name).is_err() {
        Ident::new_raw(&name, s.ident.span())
    } else {
        Ident::new(&name, s.ident.span())
    }
}

/// The parameter names of a state's payload: field names, or `payload`
/// (`payload_0`, `payload_1`, … for several unnamed fields).
pub fn params(s: &State) -> Vec<Ident> {
    match &s.payload {
        Payload::Unit => Vec::new(),
        Payload::Tuple(t) if t.len() == 1 => vec![Ident::new("payload", Span::call_site())],
        Payload::Tuple(t) => (0..t.len())
            .map(|i| format_ident!("payload_{}", i))
            .collect(),
        Payload::Struct(f) => f.iter().map(|(i, _)| i.clone()).collect(),
    }
}

/// Local bindings for destructuring a payload: `__p0`, `__p1`, … (or field
/// names for struct payloads).
pub fn bindings(s: &State) -> Vec<Ident> {
    match &s.payload {
        Payload::Unit => Vec::new(),
        Payload::Tuple(t) => (0..t.len()).map(|i| format_ident!("__p{}", i)).collect(),
        Payload::Struct(f) => f.iter().map(|(i, _)| i.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::snake;

    #[test]
    fn snake_case() {
        assert_eq!(snake("IssueRefund"), "issue_refund");
        assert_eq!(snake("HTTPGet"), "http_get");
        assert_eq!(snake("Done"), "done");
        assert_eq!(snake("Step2Go"), "step2_go");
        assert_eq!(snake("AwaitApproval"), "await_approval");
    }
}
