//! Builds a JSON value that satisfies a JSON Schema: the fakes' automatic answer when a client
//! asks for structured output, so that the client's parsing and validation of a well-formed
//! answer can be tested without a model.
//!
//! The value is deterministic and as plain as the schema allows:
//!
//! - an object has every property in `properties` (recursively), plus any name in `required`
//!   that `properties` does not describe (built from `additionalProperties` when that is a
//!   schema, null otherwise);
//! - `const` gives itself, `enum` its first value, `anyOf`/`oneOf` the first branch, `allOf`
//!   the branches merged (`properties` and `required` joined, other keywords from the last);
//! - a string is a short sentence made from the property's name (`A sample caller name.`), or
//!   for a property named `summary` one made from the conversation (`Summary: ` and the first
//!   80 characters of the last user message); a `format` of date-time, date, time, email, uri,
//!   uuid, hostname, ipv4 or ipv6 gives a fixed valid example; `minLength` is met by padding
//!   with `.` and `maxLength` by cutting;
//! - an integer or number is `minimum` (or just above `exclusiveMinimum`), otherwise 0, kept
//!   under `maximum`/`exclusiveMaximum` and rounded up to `multipleOf`;
//! - a boolean is `true`, null is null;
//! - an array has `max(minItems, 1)` items when it has an item schema (`minItems` items, often
//!   none, when it has not), at most `maxItems`, following `prefixItems` first; under
//!   `uniqueItems` the items are made distinct (the n-th enum value, a numbered string, an
//!   incremented number);
//! - a `type` list takes its first type that is not `"null"`; a schema without `type` takes
//!   the type its keywords imply (`properties` → object, `items` → array, `minLength` →
//!   string, `minimum` → number), or null;
//! - `$ref` to a JSON pointer inside the same schema (`#/$defs/Address`) is followed.
//!
//! Not handled (the value may then not satisfy the schema): `pattern` and
//! `patternProperties`, `not`, `if`/`then`/`else`, `dependentRequired`/`dependentSchemas`,
//! `contains`, `propertyNames`, `minProperties`/`maxProperties`, `uniqueItems` when the item
//! schema leaves no room for distinct values (a one-value enum, a `maxLength` that cuts the
//! numbering off), `anyOf`/`oneOf` next to other keywords (the first branch alone is built; a
//! `oneOf` whose branches overlap gives a value more than one branch matches), a `minLength`
//! on a formatted string, a `minimum` above a `maximum`, `$ref` to another document, and
//! schemas nested deeper than [`MAX_DEPTH`] (recursive ones included), which give null.

use serde_json::{Map, Value, json};

/// How deep the builder follows nested schemas and `$ref`s: recursive schemas (a tree of
/// comments) would otherwise never end.
pub(super) const MAX_DEPTH: usize = 32;

/// How many characters of the last user message a `summary` quotes.
const SUMMARY_CHARS: usize = 80;

/// What a string may be made from besides the schema.
pub(super) struct Conversation<'a> {
    /// The text of the last user message of the request.
    pub(super) last_user_text: &'a str,
}

/// A value satisfying `schema` (see the module docs for what is and is not handled).
pub(super) fn instance(schema: &Value, conversation: &Conversation<'_>) -> Value {
    Builder {
        root: schema,
        conversation,
    }
    .build(schema, None, 0, 0)
}

struct Builder<'a> {
    /// The whole schema, for `$ref`s.
    root: &'a Value,
    conversation: &'a Conversation<'a>,
}

impl Builder<'_> {
    /// A value for `schema`. `name` is the property (or array) the value is for; `variant` is
    /// the item's index in an array with `uniqueItems`, 0 elsewhere, and makes items differ.
    fn build(&self, schema: &Value, name: Option<&str>, variant: usize, depth: usize) -> Value {
        // `true` and `false` are schemas too; `true` accepts anything, `false` nothing.
        let Some(schema) = schema.as_object() else {
            return Value::Null;
        };
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            return match self.resolve(target) {
                Some(resolved) => self.build(resolved, name, variant, depth + 1),
                None => Value::Null,
            };
        }
        if let Some(value) = schema.get("const") {
            return value.clone();
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array)
            && !values.is_empty()
        {
            return values[variant % values.len()].clone();
        }
        for combinator in ["anyOf", "oneOf"] {
            if let Some(first) = schema
                .get(combinator)
                .and_then(Value::as_array)
                .and_then(|branches| branches.first())
            {
                return self.build(first, name, variant, depth + 1);
            }
        }
        if let Some(branches) = schema.get("allOf").and_then(Value::as_array) {
            let merged = self.merge(schema, branches, depth);
            return self.build(&merged, name, variant, depth + 1);
        }
        match type_of(schema) {
            "object" => self.object(schema, variant, depth),
            "array" => self.array(schema, name, depth),
            "string" => Value::String(self.string(schema, name, variant)),
            "integer" => integer(schema, variant),
            "number" => number(schema, variant),
            "boolean" => Value::Bool(true),
            _ => Value::Null,
        }
    }

    /// The schema a local `$ref` (`#`, `#/$defs/Name`) points at, if any.
    fn resolve(&self, target: &str) -> Option<&Value> {
        let pointer = target.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    /// `schema` without its `allOf`, merged with every branch (a `$ref` branch resolved):
    /// `properties` and `required` are joined, other keywords taken from the last that has them.
    fn merge(&self, schema: &Map<String, Value>, branches: &[Value], depth: usize) -> Value {
        let mut merged = schema.clone();
        merged.remove("allOf");
        for branch in branches {
            let mut branch = branch;
            // A chain of `$ref`s is followed as far as the depth allows.
            for _ in depth..MAX_DEPTH {
                match branch.get("$ref").and_then(Value::as_str) {
                    Some(target) => match self.resolve(target) {
                        Some(resolved) => branch = resolved,
                        None => break,
                    },
                    None => break,
                }
            }
            let Some(branch) = branch.as_object() else {
                continue;
            };
            for (key, value) in branch {
                match (key.as_str(), merged.get_mut(key), value) {
                    ("properties", Some(Value::Object(into)), Value::Object(from)) => {
                        into.extend(from.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                    ("required", Some(Value::Array(into)), Value::Array(from)) => {
                        into.extend(from.iter().cloned());
                    }
                    _ => {
                        merged.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        Value::Object(merged)
    }

    fn object(&self, schema: &Map<String, Value>, variant: usize, depth: usize) -> Value {
        let mut object = Map::new();
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (key, property) in properties {
                let value = self.build(property, Some(key), variant, depth + 1);
                object.insert(key.clone(), value);
            }
        }
        let required = schema.get("required").and_then(Value::as_array);
        for key in required.into_iter().flatten().filter_map(Value::as_str) {
            if object.contains_key(key) {
                continue;
            }
            let value = match schema.get("additionalProperties") {
                Some(extra @ Value::Object(_)) => self.build(extra, Some(key), variant, depth + 1),
                _ => Value::Null,
            };
            object.insert(key.to_owned(), value);
        }
        Value::Object(object)
    }

    fn array(&self, schema: &Map<String, Value>, name: Option<&str>, depth: usize) -> Value {
        let prefix = schema
            .get("prefixItems")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let items = schema.get("items").filter(|items| items.is_object());
        let min_items = count(schema, "minItems").unwrap_or(0);
        let mut length = if items.is_some() || !prefix.is_empty() {
            min_items.max(1)
        } else {
            min_items
        };
        if let Some(max_items) = count(schema, "maxItems") {
            length = length.min(max_items);
        }
        let unique = schema.get("uniqueItems") == Some(&Value::Bool(true));
        let any = json!({});
        (0..length)
            .map(|index| {
                let item = prefix.get(index).or(items).unwrap_or(&any);
                let variant = if unique { index } else { 0 };
                self.build(item, name, variant, depth + 1)
            })
            .collect()
    }

    fn string(&self, schema: &Map<String, Value>, name: Option<&str>, variant: usize) -> String {
        let format = schema.get("format").and_then(Value::as_str);
        if let Some(example) = format.and_then(format_example) {
            // A format has one fixed example; only the date-time ones can be made distinct.
            return example.to_owned();
        }
        let mut text = match name {
            Some(name) if name.eq_ignore_ascii_case("summary") => {
                let said: String = self
                    .conversation
                    .last_user_text
                    .trim()
                    .chars()
                    .take(SUMMARY_CHARS)
                    .collect();
                if said.is_empty() {
                    "Summary: nothing was said.".to_owned()
                } else {
                    format!("Summary: {said}")
                }
            }
            Some(name) => {
                let words = name.replace(['_', '-'], " ").to_lowercase();
                format!("A sample {}.", words.trim())
            }
            None => "A sample value.".to_owned(),
        };
        if variant > 0 {
            text = format!("{} {}", variant + 1, text);
        }
        let length = text.chars().count();
        if let Some(min_length) = count(schema, "minLength")
            && length < min_length
        {
            text.extend(std::iter::repeat_n('.', min_length - length));
        }
        if let Some(max_length) = count(schema, "maxLength") {
            text = text.chars().take(max_length).collect();
        }
        text
    }
}

/// The type to build for `schema`: its `type` (the first that is not `"null"` in a list), or
/// the one its keywords imply.
fn type_of(schema: &Map<String, Value>) -> &str {
    match schema.get("type") {
        Some(Value::String(name)) => name,
        Some(Value::Array(names)) => {
            let mut names = names.iter().filter_map(Value::as_str);
            let first = names.clone().next().unwrap_or("null");
            names.find(|&name| name != "null").unwrap_or(first)
        }
        _ => {
            let has = |keys: &[&str]| keys.iter().any(|key| schema.contains_key(*key));
            if has(&["properties", "additionalProperties", "required"]) {
                "object"
            } else if has(&["items", "prefixItems", "minItems", "maxItems"]) {
                "array"
            } else if has(&["minLength", "maxLength", "pattern", "format"]) {
                "string"
            } else if has(&[
                "minimum",
                "maximum",
                "exclusiveMinimum",
                "exclusiveMaximum",
                "multipleOf",
            ]) {
                "number"
            } else {
                "null"
            }
        }
    }
}

/// A fixed valid example of a string `format`, or `None` for a format not known here.
fn format_example(format: &str) -> Option<&'static str> {
    Some(match format {
        "date-time" => "2026-01-01T00:00:00Z",
        "date" => "2026-01-01",
        "time" => "00:00:00Z",
        "duration" => "PT1M",
        "email" => "caller@example.com",
        "hostname" => "example.com",
        "ipv4" => "192.0.2.1",
        "ipv6" => "2001:db8::1",
        "uri" | "url" => "https://example.com/",
        "uuid" => "00000000-0000-4000-8000-000000000000",
        _ => return None,
    })
}

/// A non-negative whole-number keyword (`minItems`, `maxLength` …).
fn count(schema: &Map<String, Value>, key: &str) -> Option<usize> {
    schema
        .get(key)
        .and_then(Value::as_u64)
        .and_then(|count| usize::try_from(count).ok())
}

/// A numeric keyword (`minimum` …) as a float.
fn bound(schema: &Map<String, Value>, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

/// The lowest integer the schema's bounds allow (0 when nothing forces another), plus
/// `variant`, kept under the upper bound and rounded to `multipleOf`.
fn integer(schema: &Map<String, Value>, variant: usize) -> Value {
    let low = [
        bound(schema, "minimum").map(f64::ceil),
        bound(schema, "exclusiveMinimum").map(|bound| bound.floor() + 1.0),
    ]
    .into_iter()
    .flatten()
    .reduce(f64::max);
    let high = [
        bound(schema, "maximum").map(f64::floor),
        bound(schema, "exclusiveMaximum").map(|bound| bound.ceil() - 1.0),
    ]
    .into_iter()
    .flatten()
    .reduce(f64::min);
    let mut value = low.unwrap_or(0.0) + variant as f64;
    if let Some(high) = high {
        value = value.min(high);
    }
    if let Some(step) = bound(schema, "multipleOf").filter(|step| *step > 0.0) {
        let stepped = (value / step).ceil() * step;
        value = match high {
            Some(high) if stepped > high => (high / step).floor() * step,
            _ => stepped,
        };
    }
    // Bounds beyond an i64 are not something a structured-output schema has.
    json!(value as i64)
}

/// As [`integer`], for a number: the exclusive bounds are kept with a margin of 1 (or half
/// the room there is).
fn number(schema: &Map<String, Value>, variant: usize) -> Value {
    let high = [bound(schema, "maximum"), bound(schema, "exclusiveMaximum")]
        .into_iter()
        .flatten()
        .reduce(f64::min);
    let exclusive_high = bound(schema, "exclusiveMaximum");
    let mut value = match (bound(schema, "minimum"), bound(schema, "exclusiveMinimum")) {
        (_, Some(floor)) => match high {
            Some(high) if floor + 1.0 >= high => (floor + high) / 2.0,
            _ => floor + 1.0,
        },
        (Some(minimum), None) => minimum,
        (None, None) => 0.0,
    } + variant as f64;
    if let Some(high) = high
        && value > high
    {
        value = if exclusive_high == Some(high) {
            high - 0.5
        } else {
            high
        };
    }
    if let Some(step) = bound(schema, "multipleOf").filter(|step| *step > 0.0) {
        value = (value / step).ceil() * step;
    }
    if value.fract() == 0.0 && value.abs() < 1e15 {
        json!(value as i64)
    } else {
        json!(value)
    }
}
