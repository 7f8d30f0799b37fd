//! Building a gate's schemas from its generated move enum.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::{GateMoves, MoveInfo, MoveShape};

/// One move as offered to a model.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveSpec {
    /// The move (target state) name; also the tool name.
    pub name: &'static str,
    /// The move's doc comment; also the tool description.
    pub doc: &'static str,
    /// How the payload is written.
    pub shape: MoveShape,
    /// The JSON Schema of the payload (`{}`-object for unit moves).
    pub payload_schema: Value,
    /// Tool parameters: the payload schema, wrapped in `{"value": …}` when
    /// the payload is not an object (tools take objects only).
    pub tool_parameters: Value,
    /// Whether `tool_parameters` wraps the payload in `value`.
    pub wrapped: bool,
}

/// A gate as offered to a model: built once per gate from the move enum's
/// JSON Schema (schemars) and cached.
#[derive(Debug, Clone, PartialEq)]
pub struct GateSpec {
    /// The machine's name.
    pub machine: &'static str,
    /// The gate state's name.
    pub gate: &'static str,
    /// The gate state's doc comment.
    pub doc: &'static str,
    /// The moves, in declaration order.
    pub moves: Vec<MoveSpec>,
    /// Structured-output schema: an object with one required property
    /// `move`, whose `anyOf` has one object per move, keyed by the move name.
    pub output_schema: Value,
}

impl GateSpec {
    /// Builds the spec of gate `N`. Generated code calls this once per gate.
    pub fn build<N: GateMoves + JsonSchema>() -> GateSpec {
        let settings = SchemaSettings::draft2020_12().with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        });
        let root = settings.into_generator().into_root_schema_for::<N>();
        let root = root.to_value();
        let defs = root.get("$defs").cloned();
        let arms = arms(&root);
        let moves: Vec<MoveSpec> = N::MOVES
            .iter()
            .map(|m| move_spec(m, &arms, defs.as_ref()))
            .collect();
        let any_of: Vec<Value> = moves
            .iter()
            .map(|m| {
                let mut arm = json!({
                    "type": "object",
                    "properties": { m.name: m.payload_schema },
                    "required": [m.name],
                    "additionalProperties": false,
                });
                if !m.doc.is_empty() {
                    arm["description"] = Value::String(m.doc.to_owned());
                }
                arm
            })
            .collect();
        let mut output_schema = json!({
            "type": "object",
            "properties": { "move": { "anyOf": any_of } },
            "required": ["move"],
            "additionalProperties": false,
        });
        if let Some(defs) = defs {
            output_schema["$defs"] = defs;
        }
        GateSpec {
            machine: N::MACHINE,
            gate: N::GATE,
            doc: N::GATE_DOC,
            moves,
            output_schema,
        }
    }

    /// The move with this name.
    pub fn find(&self, name: &str) -> Option<&MoveSpec> {
        self.moves.iter().find(|m| m.name == name)
    }

    /// The move names, comma-separated, for messages.
    pub fn move_names(&self) -> String {
        let names: Vec<String> = self.moves.iter().map(|m| format!("`{}`", m.name)).collect();
        names.join(", ")
    }
}

/// The `oneOf`/`anyOf` arms of an externally tagged enum schema, by move
/// name (unit variants appear as string `const`s or `enum`s).
fn arms(root: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    let list = root
        .get("oneOf")
        .or_else(|| root.get("anyOf"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_else(|| vec![root.clone()]);
    for arm in list {
        if let Some(props) = arm.get("properties").and_then(Value::as_object) {
            for (name, schema) in props {
                out.insert(name.clone(), schema.clone());
            }
        }
    }
    out
}

fn empty_object() -> Value {
    json!({ "type": "object", "properties": {}, "additionalProperties": false })
}

fn move_spec(m: &MoveInfo, arms: &Map<String, Value>, defs: Option<&Value>) -> MoveSpec {
    let payload_schema = match m.shape {
        MoveShape::Unit => empty_object(),
        MoveShape::Newtype | MoveShape::Struct => {
            arms.get(m.name).cloned().unwrap_or_else(|| json!({}))
        }
    };
    let is_object = payload_schema.get("type").and_then(Value::as_str) == Some("object");
    let wrapped = !is_object;
    let mut tool_parameters = if wrapped {
        json!({
            "type": "object",
            "properties": { "value": payload_schema },
            "required": ["value"],
            "additionalProperties": false,
        })
    } else {
        payload_schema.clone()
    };
    if let Some(defs) = defs {
        tool_parameters["$defs"] = defs.clone();
    }
    MoveSpec {
        name: m.name,
        doc: m.doc,
        shape: m.shape,
        payload_schema,
        tool_parameters,
        wrapped,
    }
}
