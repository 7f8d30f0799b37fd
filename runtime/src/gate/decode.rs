//! Turning a model's answer into a gate's move, and a move into JSON.

use serde_json::{Map, Value};

use super::{GateMoves, GateSpec, MoveShape, MoveSpec};
use crate::llm::Answer;

mod validate;

/// Parses a model answer into gate `N`'s move enum.
///
/// Accepts exactly what the gate's schema allows: for structured output,
/// `{"move": {"<Move>": <payload>}}`; for tools, a call of one move's tool
/// with that move's parameters. The payload is checked against the move's
/// schema (types, required and unexpected fields, enums, ranges, lengths,
/// patterns, formats) before serde reads it, so an extra field, a missing
/// `Option` field or an out-of-range number is rejected even where serde
/// alone would let it pass. Anything else is an `Err` with a reason written
/// for the model to repair its answer. Never panics, whatever the input.
pub fn decode_answer<N: GateMoves>(answer: &Answer) -> Result<N, String> {
    let spec = N::spec();
    match answer {
        Answer::Text { text } => {
            let value: Value = serde_json::from_str(text.trim())
                .map_err(|e| format!("the answer is not valid JSON ({e})"))?;
            let Value::Object(mut root) = value else {
                return Err("the answer must be a JSON object with one key, `move`".into());
            };
            let Some(inner) = root.remove("move") else {
                return Err("the answer has no `move` key".into());
            };
            if let Some(extra) = root.keys().next() {
                return Err(format!(
                    "unexpected key `{extra}`: the answer has only `move`"
                ));
            }
            let Value::Object(inner) = inner else {
                return Err(format!(
                    "`move` must be an object with exactly one of {} as its key",
                    spec.move_names()
                ));
            };
            let mut entries = inner.into_iter();
            let (Some((name, args)), None) = (entries.next(), entries.next()) else {
                return Err(format!(
                    "`move` must have exactly one key, one of {}",
                    spec.move_names()
                ));
            };
            from_move::<N>(spec, &name, args)
        }
        Answer::ToolCall {
            name, arguments, ..
        } => {
            let mv = spec.find(name).ok_or_else(|| unknown(spec, name))?;
            let args: Value = serde_json::from_str(arguments)
                .map_err(|e| format!("the arguments of `{name}` are not valid JSON ({e})"))?;
            let args = if mv.wrapped {
                let Value::Object(mut obj) = args else {
                    return Err(format!("the arguments of `{name}` must be an object"));
                };
                let value = obj
                    .remove("value")
                    .ok_or_else(|| format!("the arguments of `{name}` have no `value`"))?;
                if let Some(extra) = obj.keys().next() {
                    return Err(format!("unexpected argument `{extra}` for `{name}`"));
                }
                value
            } else {
                args
            };
            from_move::<N>(spec, name, args)
        }
        Answer::Refusal { message } => Err(format!("refusal: {message}")),
    }
}

fn unknown(spec: &GateSpec, name: &str) -> String {
    format!(
        "`{name}` is not an allowed move here; choose one of {}",
        spec.move_names()
    )
}

/// Checks `args` against the move's payload schema; drops the `null`s that
/// stand for omitted defaulted fields.
fn check_payload(spec: &GateSpec, mv: &MoveSpec, args: &mut Value) -> Result<(), String> {
    let validator = validate::Validator {
        defs: spec.defs(),
        defaulted: &mv.defaulted,
    };
    validator
        .check(&mv.payload_schema, args, "", "", 0)
        .map_err(|e| format!("invalid payload for `{}`: {e}", mv.name))
}

fn from_move<N: GateMoves>(spec: &GateSpec, name: &str, mut args: Value) -> Result<N, String> {
    let mv = spec.find(name).ok_or_else(|| unknown(spec, name))?;
    let tagged = if mv.shape == MoveShape::Unit {
        match &args {
            Value::Object(o) if o.is_empty() => Value::String(mv.name.to_owned()),
            _ => return Err(format!("move `{name}` takes no fields; write `{{}}`")),
        }
    } else {
        check_payload(spec, mv, &mut args)?;
        let mut m = Map::new();
        m.insert(mv.name.to_owned(), args);
        Value::Object(m)
    };
    serde_json::from_value::<N>(tagged).map_err(|e| format!("invalid payload for `{name}`: {e}"))
}

/// A move as its name and JSON payload (`{}` for unit moves): the inverse of
/// [`decode_answer`], used for overrides, scripted answers and records.
pub fn encode_move<N: GateMoves>(next: &N) -> (&'static str, Value) {
    let value = serde_json::to_value(next).unwrap_or(Value::Null);
    let (name, payload) = match value {
        Value::String(name) => (name, Value::Object(Map::new())),
        Value::Object(obj) => obj
            .into_iter()
            .next()
            .unwrap_or_else(|| (String::new(), Value::Null)),
        _ => (String::new(), Value::Null),
    };
    let name = N::MOVES
        .iter()
        .map(|m| m.name)
        .find(|m| *m == name)
        .unwrap_or("");
    (name, payload)
}
