//! `openapi/openapi.json` as a JSON Schema 2020-12 validator (the `jsonschema`
//! crate, formats asserted): a body is checked against the schema at a place
//! of the document, its `$ref`s resolved within the document. And a check
//! that every object those schemas describe is closed
//! (`additionalProperties: false`), so that a field the document does not
//! declare fails validation.
#![allow(dead_code)]

use serde_json::{json, Value};

pub const DOC: &str = include_str!("../../openapi/openapi.json");

/// The document.
pub fn doc() -> Value {
    serde_json::from_str(DOC).expect("openapi.json is JSON")
}

/// The schema at `pointer` (RFC 6901) of the document, as a validator.
pub fn validator(doc: &Value, pointer: &str) -> jsonschema::Validator {
    let schema = doc
        .pointer(pointer)
        .unwrap_or_else(|| panic!("no schema at {pointer}"));
    // The schema, with the document's components beside it for its $refs
    // (`#/components/...`); `components` is no keyword, so it checks nothing.
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
    });
    root["components"] = doc["components"].clone();
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("{pointer}: not a valid schema: {e}"))
}

/// Whether `body` is valid by the schema at `pointer`; else every error.
pub fn check(doc: &Value, pointer: &str, body: &Value) -> Result<(), String> {
    let v = validator(doc, pointer);
    let errors: Vec<String> = v
        .iter_errors(body)
        .map(|e| format!("{} (at {})", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{pointer}:\n  {}\n  body: {body}",
            errors.join("\n  ")
        ))
    }
}

/// A JSON Pointer token: `~` and `/` escaped.
pub fn token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// The pointer of the JSON schema of `status` of an operation.
pub fn response_pointer(path: &str, method: &str, status: u16) -> String {
    format!(
        "/paths/{}/{}/responses/{status}/content/application~1json/schema",
        token(path),
        method.to_lowercase()
    )
}

/// The pointer of a webhook's body schema.
pub fn webhook_pointer(event_type: &str) -> String {
    format!(
        "/webhooks/{}/post/requestBody/content/application~1json/schema",
        token(event_type)
    )
}

/// The places below the schema at `pointer` (following `$ref`s) that
/// describe an object without closing it: `properties` without
/// `additionalProperties: false`. A map (`additionalProperties` a schema,
/// no `properties`) is closed by its value schema.
pub fn open_objects(doc: &Value, pointer: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    walk(doc, pointer, &mut out, &mut seen);
    out
}

fn walk(
    doc: &Value,
    pointer: &str,
    out: &mut Vec<String>,
    seen: &mut std::collections::BTreeSet<String>,
) {
    if !seen.insert(pointer.to_string()) {
        return;
    }
    let Some(s) = doc.pointer(pointer) else {
        out.push(format!("{pointer}: dangling"));
        return;
    };
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let target = r.strip_prefix('#').expect("local $ref");
        walk(doc, target, out, seen);
    }
    let has_props = s.get("properties").is_some();
    let is_object = has_props || s.get("type") == Some(&json!("object"));
    match s.get("additionalProperties") {
        Some(Value::Bool(false)) => {}
        Some(Value::Object(_)) if !has_props => {
            walk(doc, &format!("{pointer}/additionalProperties"), out, seen)
        }
        _ if is_object => out.push(pointer.to_string()),
        _ => {}
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for name in props.keys() {
            walk(
                doc,
                &format!("{pointer}/properties/{}", token(name)),
                out,
                seen,
            );
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = s.get(key).and_then(Value::as_array) {
            for i in 0..list.len() {
                walk(doc, &format!("{pointer}/{key}/{i}"), out, seen);
            }
        }
    }
    if s.get("items").is_some() {
        walk(doc, &format!("{pointer}/items"), out, seen);
    }
}
