//! Checks a payload against a gate's schema (the strict subset it is built
//! in, plus the few non-strict keywords a non-strict gate keeps), so the
//! decoder accepts what the schema sent to the model allows and nothing
//! else. serde then reads the checked value into the Rust type.
//!
//! `format` is checked for the formats strict mode knows; `pattern` with
//! `regex-lite` (a pattern it cannot compile is not checked).

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use super::super::spec::{FORMATS, escape, resolve};

/// How deep schemas and values may nest.
const MAX_DEPTH: u32 = 128;

pub(super) struct Validator<'a> {
    /// The gate's `$defs`.
    pub(super) defs: Option<&'a Map<String, Value>>,
    /// Sorted pointers of properties where `null` means "omitted".
    pub(super) defaulted: &'a [String],
}

impl Validator<'_> {
    /// Checks `value` against `schema` (found at pointer `spath`); `vpath`
    /// names the value's place for messages. Drops `null`s of defaulted
    /// properties, so serde applies their defaults.
    pub(super) fn check(
        &self,
        schema: &Value,
        value: &mut Value,
        spath: &str,
        vpath: &str,
        depth: u32,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("{}: nested too deeply", at(vpath)));
        }
        let s = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return Err(format!("{}: no value is allowed here", at(vpath))),
            Value::Object(s) => s,
            _ => return Ok(()),
        };
        if let Some(target) = s.get("$ref").and_then(Value::as_str) {
            let def = resolve(target, self.defs)
                .ok_or_else(|| format!("{}: the schema has a broken reference", at(vpath)))?;
            let name = target.trim_start_matches("#/$defs/");
            self.check(def, value, &format!("/$defs/{name}"), vpath, depth + 1)?;
        }
        if let Some(Value::Array(arms)) = s.get("anyOf") {
            self.any_of(arms, value, &format!("{spath}/anyOf"), vpath, depth)?;
        }
        if let Some(Value::Array(arms)) = s.get("oneOf") {
            self.any_of(arms, value, &format!("{spath}/oneOf"), vpath, depth)?;
        }
        if let Some(Value::Array(all)) = s.get("allOf") {
            for (i, arm) in all.iter().enumerate() {
                self.check(arm, value, &format!("{spath}/allOf/{i}"), vpath, depth + 1)?;
            }
        }
        if let Some(not) = s.get("not") {
            let mut copy = value.clone();
            if self.check(not, &mut copy, "", vpath, depth + 1).is_ok() {
                return Err(format!("{}: this value is not allowed", at(vpath)));
            }
        }
        if let Some(t) = s.get("type") {
            let ok = match t {
                Value::String(t) => is_type(value, t),
                Value::Array(list) => list
                    .iter()
                    .any(|t| t.as_str().is_some_and(|t| is_type(value, t))),
                _ => true,
            };
            if !ok {
                return Err(format!(
                    "{}: expected {}, found {}",
                    at(vpath),
                    expected(t),
                    kind(value)
                ));
            }
        }
        if let Some(Value::Array(allowed)) = s.get("enum")
            && !allowed.contains(value)
        {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return Err(format!(
                "{}: {} is not one of {}",
                at(vpath),
                short(value),
                list.join(", ")
            ));
        }
        if let Some(c) = s.get("const")
            && c != value
        {
            return Err(format!("{}: must be {c}", at(vpath)));
        }
        match value {
            Value::Number(n) => number(s, n.as_f64().unwrap_or(f64::NAN), vpath),
            Value::String(text) => string(s, text, vpath),
            Value::Array(items) => self.array(s, items, spath, vpath, depth),
            Value::Object(obj) => self.object(s, obj, spath, vpath, depth),
            _ => Ok(()),
        }
    }

    fn any_of(
        &self,
        arms: &[Value],
        value: &mut Value,
        spath: &str,
        vpath: &str,
        depth: u32,
    ) -> Result<(), String> {
        let mut errors = Vec::new();
        for (i, arm) in arms.iter().enumerate() {
            let arm_path = format!("{spath}/{i}");
            if self.defaulted.is_empty() {
                // Nothing to drop, so a failed arm leaves `value` alone.
                match self.check(arm, value, &arm_path, vpath, depth + 1) {
                    Ok(()) => return Ok(()),
                    Err(e) => errors.push((arm, e)),
                }
            } else {
                let mut copy = value.clone();
                match self.check(arm, &mut copy, &arm_path, vpath, depth + 1) {
                    Ok(()) => {
                        *value = copy;
                        return Ok(());
                    }
                    Err(e) => errors.push((arm, e)),
                }
            }
        }
        // Report the arm meant for this kind of value, when only one is.
        let fitting: Vec<&String> = errors
            .iter()
            .filter(|(arm, _)| arm_fits(arm, value))
            .map(|(_, e)| e)
            .collect();
        if fitting.len() == 1 {
            return Err(fitting[0].clone());
        }
        Err(format!(
            "{}: {} matches none of the allowed shapes",
            at(vpath),
            short(value)
        ))
    }

    fn array(
        &self,
        s: &Map<String, Value>,
        items: &mut [Value],
        spath: &str,
        vpath: &str,
        depth: u32,
    ) -> Result<(), String> {
        let len = items.len() as f64;
        if let Some(min) = s.get("minItems").and_then(Value::as_f64)
            && len < min
        {
            return Err(format!("{}: needs at least {min} items", at(vpath)));
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_f64)
            && len > max
        {
            return Err(format!("{}: takes at most {max} items", at(vpath)));
        }
        let mut first = 0;
        if let Some(Value::Array(prefix)) = s.get("prefixItems") {
            for (i, (schema, item)) in prefix.iter().zip(items.iter_mut()).enumerate() {
                self.check(
                    schema,
                    item,
                    &format!("{spath}/prefixItems/{i}"),
                    &format!("{vpath}[{i}]"),
                    depth + 1,
                )?;
            }
            first = prefix.len();
        }
        if let Some(schema) = s.get("items") {
            let item_path = format!("{spath}/items");
            for (i, item) in items.iter_mut().enumerate().skip(first) {
                self.check(
                    schema,
                    item,
                    &item_path,
                    &format!("{vpath}[{i}]"),
                    depth + 1,
                )?;
            }
        }
        Ok(())
    }

    fn object(
        &self,
        s: &Map<String, Value>,
        obj: &mut Map<String, Value>,
        spath: &str,
        vpath: &str,
        depth: u32,
    ) -> Result<(), String> {
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = s.get("required") {
            let missing: Vec<String> = required
                .iter()
                .filter_map(Value::as_str)
                .filter(|name| !obj.contains_key(*name))
                .map(|name| format!("`{name}`"))
                .collect();
            match missing.len() {
                0 => {}
                1 => return Err(format!("{}: missing field {}", at(vpath), missing[0])),
                _ => {
                    return Err(format!(
                        "{}: missing fields {} (write `null` for an empty optional field)",
                        at(vpath),
                        missing.join(", ")
                    ));
                }
            }
        }
        let extra = s.get("additionalProperties");
        let mut drop = Vec::new();
        for (name, field) in obj.iter_mut() {
            let field_vpath = if vpath.is_empty() {
                name.clone()
            } else {
                format!("{vpath}.{name}")
            };
            if let Some(schema) = props.and_then(|p| p.get(name)) {
                let field_spath = format!("{spath}/properties/{}", escape(name));
                self.check(schema, field, &field_spath, &field_vpath, depth + 1)?;
                if field.is_null() && self.defaulted.binary_search(&field_spath).is_ok() {
                    drop.push(name.clone());
                }
            } else {
                match extra {
                    Some(Value::Bool(false)) => {
                        let known: Vec<String> = props
                            .map(|p| p.keys().map(|k| format!("`{k}`")).collect())
                            .unwrap_or_default();
                        return Err(if known.is_empty() {
                            format!(
                                "{}: unexpected field `{name}`; it takes no fields",
                                at(vpath)
                            )
                        } else {
                            format!(
                                "{}: unexpected field `{name}`; the fields are {}",
                                at(vpath),
                                known.join(", ")
                            )
                        });
                    }
                    Some(schema @ Value::Object(_)) => {
                        self.check(
                            schema,
                            field,
                            &format!("{spath}/additionalProperties"),
                            &field_vpath,
                            depth + 1,
                        )?;
                    }
                    _ => {}
                }
            }
        }
        for name in drop {
            obj.remove(&name);
        }
        Ok(())
    }
}

fn at(vpath: &str) -> String {
    if vpath.is_empty() {
        "the payload".to_owned()
    } else {
        format!("`{vpath}`")
    }
}

fn is_type(value: &Value, t: &str) -> bool {
    match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expected(t: &Value) -> String {
    let one = |t: &str| match t {
        "null" => "null".to_owned(),
        "integer" => "an integer".to_owned(),
        "array" => "an array".to_owned(),
        "object" => "an object".to_owned(),
        other => format!("a {other}"),
    };
    match t {
        Value::String(t) => one(t),
        Value::Array(list) => {
            let names: Vec<String> = list.iter().filter_map(Value::as_str).map(one).collect();
            names.join(" or ")
        }
        _ => "a value".to_owned(),
    }
}

/// The value for a message, cut short.
fn short(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > 60 {
        let mut end = 57;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Whether an `anyOf` arm is meant for values of this JSON type.
fn arm_fits(arm: &Value, value: &Value) -> bool {
    match arm.get("type") {
        Some(Value::String(t)) => is_type(value, t) || (t == "integer" && value.is_number()),
        Some(Value::Array(list)) => list.iter().any(|t| {
            t.as_str()
                .is_some_and(|t| is_type(value, t) || (t == "integer" && value.is_number()))
        }),
        _ => !value.is_null(),
    }
}

fn number(s: &Map<String, Value>, n: f64, vpath: &str) -> Result<(), String> {
    let get = |k: &str| s.get(k).and_then(Value::as_f64);
    if let Some(min) = get("minimum")
        && n < min
    {
        return Err(format!("{}: must be at least {min}", at(vpath)));
    }
    if let Some(max) = get("maximum")
        && n > max
    {
        return Err(format!("{}: must be at most {max}", at(vpath)));
    }
    if let Some(min) = get("exclusiveMinimum")
        && n <= min
    {
        return Err(format!("{}: must be greater than {min}", at(vpath)));
    }
    if let Some(max) = get("exclusiveMaximum")
        && n >= max
    {
        return Err(format!("{}: must be less than {max}", at(vpath)));
    }
    if let Some(m) = get("multipleOf")
        && m > 0.0
    {
        let q = n / m;
        if (q - q.round()).abs() > 1e-9 {
            return Err(format!("{}: must be a multiple of {m}", at(vpath)));
        }
    }
    Ok(())
}

fn string(s: &Map<String, Value>, text: &str, vpath: &str) -> Result<(), String> {
    let get = |k: &str| s.get(k).and_then(Value::as_u64);
    if get("minLength").is_some() || get("maxLength").is_some() {
        let len = text.chars().count() as u64;
        if let Some(min) = get("minLength")
            && len < min
        {
            return Err(format!("{}: needs at least {min} characters", at(vpath)));
        }
        if let Some(max) = get("maxLength")
            && len > max
        {
            return Err(format!("{}: takes at most {max} characters", at(vpath)));
        }
    }
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
        && let Ok(re) = regex_lite::Regex::new(pattern)
        && !re.is_match(text)
    {
        return Err(format!("{}: must match the pattern `{pattern}`", at(vpath)));
    }
    if let Some(format) = s.get("format").and_then(Value::as_str)
        && FORMATS.contains(&format)
        && !formats::check(format, text)
    {
        return Err(format!("{}: must be a valid {format}", at(vpath)));
    }
    Ok(())
}

/// The string formats of strict mode.
mod formats {
    use super::{Ipv4Addr, Ipv6Addr};

    pub(super) fn check(format: &str, s: &str) -> bool {
        match format {
            "date" => date(s),
            "time" => time(s),
            "date-time" => s
                .split_once(['T', 't'])
                .is_some_and(|(d, t)| date(d) && time(t)),
            "duration" => duration(s),
            "email" => email(s),
            "hostname" => hostname(s),
            "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
            "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
            "uuid" => uuid(s),
            _ => true,
        }
    }

    fn digits(s: &str, n: usize) -> Option<u32> {
        (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    }

    /// `YYYY-MM-DD` (RFC 3339 full-date).
    fn date(s: &str) -> bool {
        let mut parts = s.split('-');
        let (Some(y), Some(m), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let (Some(y), Some(m), Some(d)) = (digits(y, 4), digits(m, 2), digits(d, 2)) else {
            return false;
        };
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let days = match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return false,
        };
        (1..=days).contains(&d)
    }

    /// `hh:mm:ss[.frac](Z|±hh:mm)` (RFC 3339 full-time).
    fn time(s: &str) -> bool {
        let (clock, offset) = if let Some(c) = s.strip_suffix(['Z', 'z']) {
            (c, None)
        } else if let Some(i) = s.rfind(['+', '-']) {
            (&s[..i], Some(&s[i + 1..]))
        } else {
            return false;
        };
        if let Some(o) = offset {
            let Some((h, m)) = o.split_once(':') else {
                return false;
            };
            if !matches!((digits(h, 2), digits(m, 2)), (Some(h), Some(m)) if h < 24 && m < 60) {
                return false;
            }
        }
        let (hms, frac) = match clock.split_once('.') {
            Some((hms, frac)) => (hms, Some(frac)),
            None => (clock, None),
        };
        if frac.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
            return false;
        }
        let mut parts = hms.split(':');
        let (Some(h), Some(m), Some(sec), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        matches!(
            (digits(h, 2), digits(m, 2), digits(sec, 2)),
            (Some(h), Some(m), Some(s)) if h < 24 && m < 60 && s <= 60
        )
    }

    /// ISO 8601 duration: `P[nY][nM][nW][nD][T[nH][nM][nS]]`.
    fn duration(s: &str) -> bool {
        let Some(rest) = s.strip_prefix('P') else {
            return false;
        };
        let (date, time) = match rest.split_once('T') {
            Some((d, t)) => (d, Some(t)),
            None => (rest, None),
        };
        let units = |part: &str, allowed: &str| -> Option<usize> {
            let mut count = 0;
            let mut number = String::new();
            let mut last = 0;
            for c in part.chars() {
                if c.is_ascii_digit() || (c == '.' && !number.is_empty()) {
                    number.push(c);
                } else {
                    let pos = allowed.find(c)?;
                    if number.is_empty() || (count > 0 && pos < last) {
                        return None;
                    }
                    last = pos + 1;
                    number.clear();
                    count += 1;
                }
            }
            number.is_empty().then_some(count)
        };
        let Some(d) = units(date, "YMWD") else {
            return false;
        };
        match time {
            Some(t) => units(t, "HMS").is_some_and(|n| n > 0),
            None => d > 0,
        }
    }

    fn email(s: &str) -> bool {
        let Some((local, domain)) = s.rsplit_once('@') else {
            return false;
        };
        !local.is_empty()
            && local.len() <= 64
            && !local.chars().any(|c| c.is_whitespace() || c == '@')
            && hostname(domain)
            && domain.contains('.')
    }

    fn hostname(s: &str) -> bool {
        let s = s.strip_suffix('.').unwrap_or(s);
        !s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    }

    fn uuid(s: &str) -> bool {
        let groups: Vec<&str> = s.split('-').collect();
        groups.len() == 5
            && groups
                .iter()
                .zip([8, 4, 4, 4, 12])
                .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    #[cfg(test)]
    mod tests {
        use super::check;

        #[test]
        fn formats() {
            for (f, ok, bad) in [
                ("date", "2024-02-29", "2023-02-29"),
                ("time", "12:30:00Z", "25:00:00Z"),
                ("time", "12:30:00.5+02:00", "12:30"),
                ("date-time", "2024-01-31T23:59:59Z", "2024-01-31 23:59"),
                ("duration", "P1DT2H", "P1H"),
                ("duration", "PT0.5S", "P"),
                ("email", "a@b.example", "a@b"),
                ("hostname", "api.openai.com", "-bad-.com"),
                ("ipv4", "127.0.0.1", "256.0.0.1"),
                ("ipv6", "::1", ":::"),
                ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123e4567"),
            ] {
                assert!(check(f, ok), "{f} {ok}");
                assert!(!check(f, bad), "{f} {bad}");
            }
        }
    }
}
