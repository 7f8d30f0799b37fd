//! Building a gate's schemas from its generated move enum.
//!
//! The schemas are rewritten into the subset of JSON Schema that OpenAI's
//! strict structured outputs accept (the strictest of the providers), see
//! [`GateSpec::strict`]:
//!
//! - every object has `additionalProperties: false` and lists all its
//!   properties in `required`; a field serde may omit (`Option<T>`,
//!   `#[serde(default)]`) becomes nullable instead, and when decoding, a
//!   `null` for a defaulted non-`Option` field is read as "omitted";
//! - `oneOf` becomes `anyOf`, `const` becomes a one-value `enum`, and a
//!   nullable object or array (`"type": ["object", "null"]`) becomes
//!   `anyOf: [{object}, {"type": "null"}]`;
//! - annotations strict mode rejects (`default`, `examples`, `deprecated`,
//!   `readOnly`, `writeOnly`, `$comment`, …) are removed, and so are
//!   `uniqueItems` and formats outside strict mode's list (`uint64`,
//!   `double`, `uri`, …); kept: `pattern`, `format` (`date-time`, `time`,
//!   `date`, `duration`, `email`, `hostname`, `ipv4`, `ipv6`, `uuid`),
//!   `minLength`, `maxLength`, `minimum`, `maximum`, `exclusiveMinimum`,
//!   `exclusiveMaximum`, `multipleOf`, `minItems`, `maxItems`, `enum`,
//!   `anyOf`, `$ref` and `$defs`.
//!
//! What strict mode cannot express (maps such as `HashMap<String, T>`,
//! tuples, `allOf`, `not`, `if`/`then`/`else`, unconstrained values such as
//! `serde_json::Value`) is kept as it is and makes the gate non-strict:
//! providers then send the schema with `strict: false`. The decoder checks
//! answers against these same schemas (see [`crate::decode_answer`]).

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
    /// The JSON Schema of the payload (an empty object for unit moves), in
    /// the strict subset. `$ref`s point into the gate's `$defs`, which are
    /// kept at the root of [`GateSpec::output_schema`] and of
    /// [`MoveSpec::tool_parameters`].
    pub payload_schema: Value,
    /// Tool parameters: the payload schema, wrapped in `{"value": …}` when
    /// the payload is not an object (tools take objects only).
    pub tool_parameters: Value,
    /// Whether `tool_parameters` wraps the payload in `value`.
    pub wrapped: bool,
    /// JSON pointers (into the payload schema, or `/$defs/…`) of the
    /// properties that serde may omit but whose type does not take `null`:
    /// strict mode makes them nullable, and the decoder drops a `null` there.
    pub(crate) defaulted: Vec<String>,
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
    /// Whether every schema of the gate fits OpenAI's strict subset. When it
    /// does not (a map, a tuple, an unconstrained value in a payload),
    /// providers send the schemas with `strict: false`.
    pub strict: bool,
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
        let arms = arms(&root);

        let mut rewrite = Strictify {
            defs: root.get("$defs").and_then(Value::as_object),
            strict: true,
            defaulted: Vec::new(),
        };
        let defs = rewrite.defs.map(|defs| {
            let mut out = Map::new();
            for (name, def) in defs {
                let mut def = def.clone();
                rewrite.schema(&mut def, &format!("/$defs/{}", escape(name)));
                out.insert(name.clone(), def);
            }
            out
        });
        let defs_defaulted = std::mem::take(&mut rewrite.defaulted);

        let moves: Vec<MoveSpec> = N::MOVES
            .iter()
            .map(|m| move_spec(m, &arms, defs.as_ref(), &mut rewrite, &defs_defaulted))
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
            output_schema["$defs"] = Value::Object(defs);
        }
        GateSpec {
            machine: N::MACHINE,
            gate: N::GATE,
            doc: N::GATE_DOC,
            moves,
            output_schema,
            strict: rewrite.strict,
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

    /// The gate's `$defs` (shared by all moves), if any.
    pub fn defs(&self) -> Option<&Map<String, Value>> {
        self.output_schema.get("$defs").and_then(Value::as_object)
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
    json!({ "type": "object", "properties": {}, "required": [], "additionalProperties": false })
}

fn move_spec(
    m: &MoveInfo,
    arms: &Map<String, Value>,
    defs: Option<&Map<String, Value>>,
    rewrite: &mut Strictify<'_>,
    defs_defaulted: &[String],
) -> MoveSpec {
    let mut payload_schema = match m.shape {
        MoveShape::Unit => empty_object(),
        MoveShape::Newtype | MoveShape::Struct => {
            arms.get(m.name).cloned().unwrap_or_else(|| json!({}))
        }
    };
    rewrite.schema(&mut payload_schema, "");
    let mut defaulted = std::mem::take(&mut rewrite.defaulted);
    defaulted.extend_from_slice(defs_defaulted);
    defaulted.sort();
    defaulted.dedup();
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
        tool_parameters["$defs"] = Value::Object(defs.clone());
    }
    MoveSpec {
        name: m.name,
        doc: m.doc,
        shape: m.shape,
        payload_schema,
        tool_parameters,
        wrapped,
        defaulted,
    }
}

/// Escapes a property name for a JSON pointer (RFC 6901).
pub(crate) fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// Annotations and keywords strict mode rejects and nothing checks.
const STRIPPED: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "contentEncoding",
    "contentMediaType",
    "uniqueItems",
];

/// Keywords strict mode does not support and that cannot be rewritten: kept
/// (the decoder checks the ones that constrain), but the gate is not strict.
const NOT_STRICT: &[&str] = &[
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "patternProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "prefixItems",
    "contains",
    "minContains",
    "maxContains",
];

/// String formats strict mode accepts.
pub(crate) const FORMATS: &[&str] = &[
    "date-time",
    "time",
    "date",
    "duration",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uuid",
];

const PRIMITIVES: &[&str] = &["string", "integer", "number", "boolean"];

/// The rewrite into the strict subset.
struct Strictify<'a> {
    /// The original `$defs`, to see through `$ref`s.
    defs: Option<&'a Map<String, Value>>,
    /// Cleared when something cannot be expressed in strict mode.
    strict: bool,
    /// Pointers of properties made nullable (see [`MoveSpec::defaulted`]).
    defaulted: Vec<String>,
}

impl Strictify<'_> {
    /// Rewrites `schema`, found at JSON pointer `path`, in place.
    fn schema(&mut self, schema: &mut Value, path: &str) {
        let obj = match schema {
            Value::Bool(true) => {
                // Anything goes: not expressible in strict mode.
                self.strict = false;
                return;
            }
            Value::Object(obj) => obj,
            _ => {
                self.strict = false;
                return;
            }
        };
        for key in STRIPPED {
            obj.remove(*key);
        }
        if NOT_STRICT.iter().any(|k| obj.contains_key(*k)) {
            self.strict = false;
        }
        if let Some(c) = obj.remove("const")
            && !obj.contains_key("enum")
        {
            obj.insert("enum".into(), Value::Array(vec![c]));
        }
        if let Some(one_of) = obj.remove("oneOf") {
            if obj.contains_key("anyOf") {
                // Both: keep `oneOf` as an `allOf` arm (not strict).
                self.strict = false;
                obj.insert("allOf".into(), json!([{ "anyOf": one_of }]));
            } else {
                obj.insert("anyOf".into(), one_of);
            }
        }
        let types = types_of(obj);
        if let Some(format) = obj.get("format").and_then(Value::as_str)
            && !(types.contains(&"string") && FORMATS.contains(&format))
        {
            obj.remove("format");
        }
        // `["object", "null"]` / `["array", "null"]` → anyOf with a null arm.
        if types.len() > 1
            && types.contains(&"null")
            && types.iter().any(|t| *t == "object" || *t == "array")
        {
            let description = obj.remove("description");
            let mut inner = std::mem::take(obj);
            let non_null: Vec<Value> = types
                .iter()
                .filter(|t| **t != "null")
                .map(|t| Value::String((*t).to_owned()))
                .collect();
            inner.insert(
                "type".into(),
                if non_null.len() == 1 {
                    non_null[0].clone()
                } else {
                    Value::Array(non_null)
                },
            );
            if let Some(Value::Array(values)) = inner.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            let mut arms = vec![Value::Object(inner), json!({ "type": "null" })];
            if let Some(d) = description {
                obj.insert("description".into(), d);
            }
            self.schema(&mut arms[0], &format!("{path}/anyOf/0"));
            obj.insert("anyOf".into(), Value::Array(arms));
            return;
        }

        let is_object = types.contains(&"object") || obj.contains_key("properties");
        if is_object {
            self.object(obj, path);
        }
        if let Some(items) = obj.get_mut("items") {
            if items.is_object() || items == &Value::Bool(true) {
                self.schema(items, &format!("{path}/items"));
            }
        } else if types.contains(&"array") && !obj.contains_key("prefixItems") {
            // An array of anything.
            self.strict = false;
        }
        for key in ["anyOf", "allOf", "prefixItems"] {
            if let Some(Value::Array(list)) = obj.get_mut(key) {
                for (i, arm) in list.iter_mut().enumerate() {
                    self.schema(arm, &format!("{path}/{key}/{i}"));
                }
            }
        }
        let constrained = ["type", "enum", "anyOf", "allOf", "$ref", "not"]
            .iter()
            .any(|k| obj.contains_key(*k));
        if !constrained {
            // `{}`: any value.
            self.strict = false;
        }
    }

    fn object(&mut self, obj: &mut Map<String, Value>, path: &str) {
        match obj.get("additionalProperties") {
            None | Some(Value::Bool(false)) if obj.contains_key("properties") => {
                obj.insert("additionalProperties".into(), Value::Bool(false));
            }
            Some(Value::Bool(false)) => {
                obj.insert("properties".into(), Value::Object(Map::new()));
            }
            _ => {
                // A map, or an object of anything: kept, but not strict.
                self.strict = false;
                if let Some(extra) = obj.get_mut("additionalProperties")
                    && extra.is_object()
                {
                    self.schema(extra, &format!("{path}/additionalProperties"));
                }
            }
        }
        let mut required: Vec<String> = match obj.get("required") {
            Some(Value::Array(r)) => r
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let Some(Value::Object(props)) = obj.get_mut("properties") else {
            return;
        };
        for (name, prop) in props.iter_mut() {
            let prop_path = format!("{path}/properties/{}", escape(name));
            if !required.iter().any(|r| r == name) {
                if !allows_null(prop, self.defs, 0) {
                    make_nullable(prop);
                    self.defaulted.push(prop_path.clone());
                }
                required.push(name.clone());
            }
            self.schema(prop, &prop_path);
        }
        obj.insert(
            "required".into(),
            Value::Array(required.into_iter().map(Value::String).collect()),
        );
    }
}

/// The `type` of a schema, as a list.
fn types_of(obj: &Map<String, Value>) -> Vec<&'static str> {
    const ALL: &[&str] = &[
        "string", "integer", "number", "boolean", "object", "array", "null",
    ];
    let pick = |s: &str| ALL.iter().copied().find(|t| *t == s);
    match obj.get("type") {
        Some(Value::String(t)) => pick(t).into_iter().collect(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|t| t.as_str().and_then(pick))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether `schema` accepts `null`.
fn allows_null(schema: &Value, defs: Option<&Map<String, Value>>, depth: u32) -> bool {
    let obj = match schema {
        Value::Bool(b) => return *b,
        Value::Object(obj) => obj,
        _ => return false,
    };
    if depth > 32 {
        return false;
    }
    if types_of(obj).contains(&"null") {
        return true;
    }
    if let Some(Value::Array(values)) = obj.get("enum") {
        return values.iter().any(Value::is_null);
    }
    if let Some(c) = obj.get("const") {
        return c.is_null();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(arms)) = obj.get(key) {
            return arms.iter().any(|a| allows_null(a, defs, depth + 1));
        }
    }
    if let Some(target) = obj.get("$ref").and_then(Value::as_str) {
        return resolve(target, defs).is_some_and(|d| allows_null(d, defs, depth + 1));
    }
    !["type", "allOf", "not"]
        .iter()
        .any(|k| obj.contains_key(*k))
}

/// The schema a local `$ref` (`#/$defs/Name`) points to.
pub(crate) fn resolve<'a>(target: &str, defs: Option<&'a Map<String, Value>>) -> Option<&'a Value> {
    let name = target.strip_prefix("#/$defs/")?;
    let name = name.replace("~1", "/").replace("~0", "~");
    defs?.get(&name)
}

/// Lets `schema` also take `null`.
fn make_nullable(schema: &mut Value) {
    if let Value::Object(obj) = schema {
        let types = types_of(obj);
        let primitive = !types.is_empty() && types.iter().all(|t| PRIMITIVES.contains(t));
        if primitive && !obj.contains_key("anyOf") && !obj.contains_key("$ref") {
            let mut list: Vec<Value> = types
                .iter()
                .map(|t| Value::String((*t).to_owned()))
                .collect();
            list.push(Value::String("null".into()));
            obj.insert("type".into(), Value::Array(list));
            if let Some(Value::Array(values)) = obj.get_mut("enum") {
                values.push(Value::Null);
            }
            return;
        }
        if types.is_empty()
            && let Some(Value::Array(arms)) = obj.get_mut("anyOf")
        {
            arms.push(json!({ "type": "null" }));
            return;
        }
    }
    let inner = std::mem::take(schema);
    *schema = json!({ "anyOf": [inner, { "type": "null" }] });
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::OnceLock;

    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use serde_json::{Value, json};

    use super::GateSpec;
    use crate::gate::{GateMoves, MoveInfo, MoveShape};

    /// A refund.
    #[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    struct Refund {
        order_id: u64,
        note: Option<String>,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    enum Next {
        Done,
        Escalate { reason: String, level: Option<u8> },
        IssueRefund(Refund),
        Wait(u64),
    }

    impl GateMoves for Next {
        const MACHINE: &'static str = "Support";
        const GATE: &'static str = "Classify";
        const GATE_DOC: &'static str = "Pick one.";
        const MOVES: &'static [MoveInfo] = &[
            MoveInfo {
                name: "Done",
                doc: "Nothing to do.",
                shape: MoveShape::Unit,
            },
            MoveInfo {
                name: "Escalate",
                doc: "",
                shape: MoveShape::Struct,
            },
            MoveInfo {
                name: "IssueRefund",
                doc: "",
                shape: MoveShape::Newtype,
            },
            MoveInfo {
                name: "Wait",
                doc: "",
                shape: MoveShape::Newtype,
            },
        ];
        fn spec() -> &'static GateSpec {
            static S: OnceLock<GateSpec> = OnceLock::new();
            S.get_or_init(GateSpec::build::<Self>)
        }
    }

    /// Every object node: `additionalProperties: false`, all properties
    /// required; no keyword outside the strict subset.
    fn assert_strict(schema: &Value) {
        const ALLOWED: &[&str] = &[
            "type",
            "properties",
            "required",
            "additionalProperties",
            "items",
            "anyOf",
            "enum",
            "description",
            "title",
            "$ref",
            "$defs",
            "pattern",
            "format",
            "minLength",
            "maxLength",
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "multipleOf",
            "minItems",
            "maxItems",
        ];
        match schema {
            Value::Object(obj) => {
                for key in obj.keys() {
                    assert!(ALLOWED.contains(&key.as_str()), "keyword {key} in {schema}");
                }
                if let Some(props) = obj.get("properties").and_then(Value::as_object) {
                    assert_eq!(obj["additionalProperties"], json!(false), "{schema}");
                    let required: Vec<&str> = obj["required"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap())
                        .collect();
                    for name in props.keys() {
                        assert!(required.contains(&name.as_str()), "{name} not required");
                    }
                    for p in props.values() {
                        assert_strict(p);
                    }
                }
                for key in ["anyOf"] {
                    if let Some(list) = obj.get(key).and_then(Value::as_array) {
                        list.iter().for_each(assert_strict);
                    }
                }
                if let Some(items) = obj.get("items") {
                    assert_strict(items);
                }
            }
            other => panic!("schema is not an object: {other}"),
        }
    }

    #[test]
    fn output_schema_is_strict() {
        let spec = Next::spec();
        assert!(spec.strict);
        assert_strict(&spec.output_schema);
        for m in &spec.moves {
            assert_strict(&m.tool_parameters);
        }
        assert!(!spec.output_schema.to_string().contains("oneOf"));
        assert!(!spec.output_schema.to_string().contains("uint64"));
    }

    #[test]
    fn output_schema_shape() {
        let s = &Next::spec().output_schema;
        assert_eq!(s["type"], "object");
        assert_eq!(s["required"], json!(["move"]));
        let arms = s["properties"]["move"]["anyOf"].as_array().unwrap();
        assert_eq!(arms.len(), 4);
        assert_eq!(
            arms[0],
            json!({
                "type": "object",
                "description": "Nothing to do.",
                "properties": { "Done": {
                    "type": "object", "properties": {}, "required": [], "additionalProperties": false
                } },
                "required": ["Done"],
                "additionalProperties": false,
            })
        );
        // Struct variant: the `Option` field stays nullable and becomes required.
        assert_eq!(
            arms[1]["properties"]["Escalate"],
            json!({
                "type": "object",
                "properties": {
                    "reason": { "type": "string" },
                    "level": { "type": ["integer", "null"], "minimum": 0, "maximum": 255 },
                },
                "required": ["reason", "level"],
                "additionalProperties": false,
            })
        );
        // Newtype of a struct: the struct's schema, with the defaulted `Vec`
        // made nullable.
        assert_eq!(
            arms[2]["properties"]["IssueRefund"],
            json!({
                "type": "object",
                "description": "A refund.",
                "properties": {
                    "order_id": { "type": "integer", "minimum": 0 },
                    "note": { "type": ["string", "null"] },
                    "tags": { "anyOf": [
                        { "type": "array", "items": { "type": "string" } },
                        { "type": "null" },
                    ] },
                },
                "required": ["order_id", "note", "tags"],
                "additionalProperties": false,
            })
        );
        // Newtype of u64: the number, without schemars' `format`.
        assert_eq!(
            arms[3]["properties"]["Wait"],
            json!({ "type": "integer", "minimum": 0 })
        );
    }

    #[test]
    fn tool_parameters() {
        let spec = Next::spec();
        let done = spec.find("Done").unwrap();
        assert!(!done.wrapped);
        assert_eq!(done.tool_parameters["properties"], json!({}));
        let refund = spec.find("IssueRefund").unwrap();
        assert!(!refund.wrapped);
        assert_eq!(refund.tool_parameters, refund.payload_schema);
        assert_eq!(refund.defaulted, vec!["/properties/tags".to_owned()]);
        let wait = spec.find("Wait").unwrap();
        assert!(wait.wrapped);
        assert_eq!(
            wait.tool_parameters,
            json!({
                "type": "object",
                "properties": { "value": { "type": "integer", "minimum": 0 } },
                "required": ["value"],
                "additionalProperties": false,
            })
        );
    }

    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    struct Tree {
        label: String,
        children: Vec<Tree>,
        parent: Option<Box<Tree>>,
    }

    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    struct Nested {
        inner: Option<Inner>,
        mode: Mode,
    }

    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    struct Inner {
        x: f64,
    }

    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    enum Mode {
        Fast,
        Slow { by: u8 },
    }

    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    enum Other {
        Grow(Tree),
        Nest(Nested),
        Map(HashMap<String, u32>),
    }

    impl GateMoves for Other {
        const MACHINE: &'static str = "M";
        const GATE: &'static str = "G";
        const GATE_DOC: &'static str = "";
        const MOVES: &'static [MoveInfo] = &[
            MoveInfo {
                name: "Grow",
                doc: "",
                shape: MoveShape::Newtype,
            },
            MoveInfo {
                name: "Nest",
                doc: "",
                shape: MoveShape::Newtype,
            },
            MoveInfo {
                name: "Map",
                doc: "",
                shape: MoveShape::Newtype,
            },
        ];
        fn spec() -> &'static GateSpec {
            static S: OnceLock<GateSpec> = OnceLock::new();
            S.get_or_init(GateSpec::build::<Self>)
        }
    }

    #[test]
    fn recursive_nested_and_maps() {
        let spec = Other::spec();
        // A map cannot be strict.
        assert!(!spec.strict);
        let defs = spec.defs().expect("a recursive type needs $defs");
        assert_strict(&defs["Tree"]);
        let nest = &spec.find("Nest").unwrap().payload_schema;
        assert_strict(nest);
        // A nullable object becomes anyOf with a null arm.
        assert_eq!(
            nest["properties"]["inner"]["anyOf"][1],
            json!({ "type": "null" })
        );
        assert_eq!(
            nest["properties"]["inner"]["anyOf"][0]["additionalProperties"],
            json!(false)
        );
        // A nested enum: oneOf → anyOf.
        let mode = &nest["properties"]["mode"];
        assert!(mode.get("oneOf").is_none());
        assert_eq!(mode["anyOf"].as_array().unwrap().len(), 2);
        // A map is an object: its tool takes it as is.
        assert!(!spec.find("Map").unwrap().wrapped);
    }
}
