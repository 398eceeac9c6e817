//! The click-to-call request body: every rule of the contract, every invalid
//! field reported at once, wrong JSON types reported as field errors.

use serde_json::{Map, Value};

use super::config::is_phone;
use super::errors::{ApiError, FieldError};

/// A request that passed every syntactic rule of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickToCallRequest {
    pub from_extension: String,
    pub to_phone: String,
    pub caller_id: Option<String>,
    pub trunk_id: Option<i64>,
    pub trunk_name: Option<String>,
    /// Custom SIP headers, keys without the `X-` prefix, in request order.
    pub headers: Vec<(String, String)>,
    /// Most seconds the call may last from the bridge (1 to [`MAX_TIME_LIMIT`]).
    pub time_limit: Option<u32>,
    /// Record the call (`record-calls` `on-request`); `None`: not asked.
    pub record: Option<bool>,
}

/// Longest `time_limit` a request may ask for (a day), in seconds.
pub const MAX_TIME_LIMIT: u32 = 86_400;

/// Longest custom header value (contract: at most 200 characters).
pub const MAX_HEADER_VALUE: usize = 200;
/// Most custom headers one request may carry.
pub const MAX_HEADERS: usize = 20;
/// Longest custom header key.
pub const MAX_HEADER_KEY: usize = 64;

impl ClickToCallRequest {
    /// Parses a JSON body; a body that is not JSON is `malformed_json` (400).
    pub fn from_json_bytes(body: &[u8]) -> Result<ClickToCallRequest, ApiError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                400,
                super::errors::codes::MALFORMED_JSON,
                format!("request body is not valid JSON: {e}"),
            )
        })?;
        Self::from_value(&value)
    }

    /// Validates a decoded JSON value against the contract.
    pub fn from_value(value: &Value) -> Result<ClickToCallRequest, ApiError> {
        let Some(obj) = value.as_object() else {
            return Err(ApiError::validation(vec![field(
                "body",
                "invalid_type",
                "must be a JSON object",
            )]));
        };
        let mut errors = Vec::new();
        let from_extension = string_field(obj, "from_extension", true, &mut errors);
        if let Some(ext) = &from_extension {
            if !(3..=10).contains(&ext.len()) || !ext.chars().all(|c| c.is_ascii_digit()) {
                errors.push(field(
                    "from_extension",
                    "invalid_format",
                    "must match ^[0-9]{3,10}$",
                ));
            }
        }
        let to_phone = string_field(obj, "to_phone", true, &mut errors);
        if let Some(p) = &to_phone {
            if !p.chars().all(|c| c.is_ascii_digit() || c == '+') {
                errors.push(field("to_phone", "invalid_format", "must match ^[0-9+]+$"));
            } else if p.len() < 3 {
                errors.push(field(
                    "to_phone",
                    "too_short",
                    "must be at least 3 characters",
                ));
            } else if p.len() > 32 {
                errors.push(field(
                    "to_phone",
                    "too_long",
                    "must be at most 32 characters",
                ));
            }
        }
        let caller_id = string_field(obj, "caller_id", false, &mut errors);
        if let Some(c) = &caller_id {
            if !is_phone(c, 1, 32) {
                errors.push(field(
                    "caller_id",
                    "invalid_format",
                    "must be 1 to 32 characters of ^[0-9+]+$",
                ));
            }
        }
        let trunk_id = match obj.get("trunk_id") {
            None | Some(Value::Null) => None,
            // JSON has no integer type: 4.0 is the integer 4 (as JSON Schema says).
            Some(v) => match v.as_i64().or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            }) {
                Some(id) if id > 0 => Some(id),
                Some(_) => {
                    errors.push(field(
                        "trunk_id",
                        "invalid_value",
                        "must be a positive integer",
                    ));
                    None
                }
                None => {
                    errors.push(field("trunk_id", "invalid_type", "must be an integer"));
                    None
                }
            },
        };
        let trunk_name = string_field(obj, "trunk_name", false, &mut errors);
        if let Some(n) = &trunk_name {
            if n.chars().count() > 100 {
                errors.push(field(
                    "trunk_name",
                    "too_long",
                    "must be at most 100 characters",
                ));
            } else if n.trim().is_empty() {
                errors.push(field("trunk_name", "invalid_value", "must not be empty"));
            }
        }
        let headers = headers_field(obj, &mut errors);
        let time_limit = time_limit_field(obj, &mut errors);
        let record = match obj.get("record") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                errors.push(field("record", "invalid_type", "must be a boolean"));
                None
            }
        };
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        Ok(ClickToCallRequest {
            from_extension: from_extension.unwrap_or_default(),
            to_phone: to_phone.unwrap_or_default(),
            caller_id,
            trunk_id,
            trunk_name,
            headers,
            time_limit,
            record,
        })
    }
}

/// `time_limit`: an integer number of seconds, 1 to [`MAX_TIME_LIMIT`]
/// (`3.0` is the integer 3, as for `trunk_id`).
fn time_limit_field(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<u32> {
    let v = match obj.get("time_limit") {
        None | Some(Value::Null) => return None,
        Some(v) => v,
    };
    let n = v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
            .map(|f| f as i64)
    });
    match n {
        Some(n) if (1..=i64::from(MAX_TIME_LIMIT)).contains(&n) => Some(n as u32),
        Some(_) => {
            errors.push(field(
                "time_limit",
                "out_of_range",
                &format!("must be 1 to {MAX_TIME_LIMIT} seconds"),
            ));
            None
        }
        None => {
            errors.push(field(
                "time_limit",
                "invalid_type",
                "must be an integer (seconds)",
            ));
            None
        }
    }
}

fn field(name: &str, code: &'static str, message: &str) -> FieldError {
    FieldError {
        field: name.to_string(),
        code,
        message: message.to_string(),
    }
}

fn string_field(
    obj: &Map<String, Value>,
    name: &str,
    required: bool,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match obj.get(name) {
        None | Some(Value::Null) => {
            if required {
                errors.push(field(name, "required", "is required"));
            }
            None
        }
        Some(Value::String(s)) if s.is_empty() && required => {
            errors.push(field(name, "required", "is required"));
            None
        }
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(field(name, "invalid_type", "must be a string"));
            None
        }
    }
}

fn headers_field(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Vec<(String, String)> {
    let map = match obj.get("headers") {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            errors.push(field("headers", "invalid_type", "must be an object"));
            return Vec::new();
        }
    };
    if map.len() > MAX_HEADERS {
        errors.push(field(
            "headers",
            "too_many",
            &format!("at most {MAX_HEADERS} headers"),
        ));
        return Vec::new();
    }
    let mut out = Vec::new();
    for (key, value) in map {
        let name = format!("headers.{key}");
        let key_ok = !key.is_empty()
            && key.len() <= MAX_HEADER_KEY
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !key_ok {
            errors.push(field(
                &name,
                "invalid_key",
                &format!("key must be 1 to {MAX_HEADER_KEY} characters of [A-Za-z0-9_-]"),
            ));
            continue;
        }
        let Some(v) = value.as_str() else {
            errors.push(field(&name, "invalid_type", "value must be a string"));
            continue;
        };
        if v.chars().count() > MAX_HEADER_VALUE {
            errors.push(field(
                &name,
                "too_long",
                &format!("value must be at most {MAX_HEADER_VALUE} characters"),
            ));
            continue;
        }
        // A CR or LF would start a new SIP header; other controls have no place either.
        if v.chars().any(char::is_control) {
            errors.push(field(
                &name,
                "invalid_value",
                "value must not contain control characters",
            ));
            continue;
        }
        // FreeSWITCH refuses a variable holding `${` (the header would silently
        // not be sent) and splits one starting with `ARRAY::`: say so instead.
        if v.contains("${") || v.starts_with("ARRAY::") {
            errors.push(field(
                &name,
                "invalid_value",
                "value must not contain ${ nor start with ARRAY::",
            ));
            continue;
        }
        let key = key.strip_prefix("X-").unwrap_or(key).to_string();
        out.push((key, v.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(v: Value) -> Vec<(String, &'static str)> {
        match ClickToCallRequest::from_value(&v) {
            Ok(_) => Vec::new(),
            Err(e) => e.fields.into_iter().map(|f| (f.field, f.code)).collect(),
        }
    }

    #[test]
    fn contract_examples_are_valid() {
        let r = ClickToCallRequest::from_value(
            &json!({"from_extension": "1001", "to_phone": "0987654321"}),
        )
        .unwrap();
        assert_eq!(r.to_phone, "0987654321");
        let r = ClickToCallRequest::from_value(&json!({
            "from_extension": "1001", "to_phone": "0987654321", "caller_id": "0900000020",
            "trunk_id": 4, "headers": {"CRM-Lead-Id": "LEAD-42"}
        }))
        .unwrap();
        assert_eq!(r.trunk_id, Some(4));
        assert_eq!(r.headers, vec![("CRM-Lead-Id".into(), "LEAD-42".into())]);
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        let got = codes(json!({
            "from_extension": "10a", "to_phone": 987654321, "caller_id": "abc",
            "trunk_id": "4", "trunk_name": "x".repeat(101), "headers": ["nope"]
        }));
        assert_eq!(
            got,
            vec![
                ("from_extension".into(), "invalid_format"),
                ("to_phone".into(), "invalid_type"),
                ("caller_id".into(), "invalid_format"),
                ("trunk_id".into(), "invalid_type"),
                ("trunk_name".into(), "too_long"),
                ("headers".into(), "invalid_type"),
            ]
        );
    }

    #[test]
    fn missing_and_length_rules() {
        assert_eq!(
            codes(json!({})),
            vec![
                ("from_extension".into(), "required"),
                ("to_phone".into(), "required")
            ]
        );
        assert_eq!(
            codes(json!({"from_extension": "12", "to_phone": "12"})).len(),
            2
        );
        assert_eq!(
            codes(json!({"from_extension": "12345678901", "to_phone": "1".repeat(33)})),
            vec![
                ("from_extension".into(), "invalid_format"),
                ("to_phone".into(), "too_long")
            ]
        );
        assert!(
            codes(json!({"from_extension": "1234567890", "to_phone": "+1".repeat(16)})).is_empty()
        );
        assert_eq!(codes(json!([1, 2])), vec![("body".into(), "invalid_type")]);
    }

    #[test]
    fn hostile_headers_are_refused() {
        let got = codes(
            json!({"from_extension": "1001", "to_phone": "0987654321", "headers": {
                "a}b": "x", "ok": "line\r\nVia: evil", "n": 5, "long": "v".repeat(201), "": "e"
            }}),
        );
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(got.len(), 5, "{got:?}");
        assert!(fields.contains(&"headers.a}b"));
        assert!(fields.contains(&"headers.ok"));
        let ok = ClickToCallRequest::from_value(&json!({"from_extension": "1001",
            "to_phone": "0987654321", "headers": {"v": "a,b}c[d]'e^^:f $g {h}"}}))
        .unwrap();
        assert_eq!(ok.headers[0].1, "a,b}c[d]'e^^:f $g {h}");
    }

    #[test]
    fn dial_string_syntax_in_numbers_is_refused() {
        for bad in [
            "0987|sofia/gateway/x/1",
            "123@evil",
            "1,2",
            "{a=b}123",
            "12 3",
        ] {
            assert_eq!(
                codes(json!({"from_extension": "1001", "to_phone": bad})),
                vec![("to_phone".into(), "invalid_format")],
                "{bad}"
            );
        }
    }

    #[test]
    fn time_limit_is_an_integer_in_range() {
        let base =
            |t: Value| json!({"from_extension": "1001", "to_phone": "0987654321", "time_limit": t});
        let ok = |t: Value| ClickToCallRequest::from_value(&base(t)).unwrap().time_limit;
        assert_eq!(ok(json!(1)), Some(1));
        assert_eq!(ok(json!(86_400)), Some(86_400));
        assert_eq!(ok(json!(3.0)), Some(3));
        assert_eq!(ok(Value::Null), None);
        let absent = ClickToCallRequest::from_value(
            &json!({"from_extension": "1001", "to_phone": "0987654321"}),
        );
        assert_eq!(absent.unwrap().time_limit, None);
        for (bad, code) in [
            (json!(0), "out_of_range"),
            (json!(-5), "out_of_range"),
            (json!(86_401), "out_of_range"),
            (json!(2.5), "invalid_type"),
            (json!("30"), "invalid_type"),
            (json!(true), "invalid_type"),
        ] {
            assert_eq!(
                codes(base(bad.clone())),
                vec![("time_limit".into(), code)],
                "{bad}"
            );
        }
        // Reported with every other invalid field.
        let got = codes(json!({"from_extension": "x", "to_phone": "0987654321", "time_limit": 0}));
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn record_is_a_boolean() {
        let base =
            |r: Value| json!({"from_extension": "1001", "to_phone": "0987654321", "record": r});
        let ok = |r: Value| ClickToCallRequest::from_value(&base(r)).unwrap().record;
        assert_eq!(ok(json!(true)), Some(true));
        assert_eq!(ok(json!(false)), Some(false));
        assert_eq!(ok(Value::Null), None);
        for bad in [json!("true"), json!(1), json!({})] {
            assert_eq!(
                codes(base(bad.clone())),
                vec![("record".into(), "invalid_type")],
                "{bad}"
            );
        }
        let got = codes(json!({"from_extension": "1001", "to_phone": "0987654321",
            "record": "yes", "time_limit": 0}));
        assert_eq!(
            got,
            vec![
                ("time_limit".into(), "out_of_range"),
                ("record".into(), "invalid_type")
            ]
        );
    }

    #[test]
    fn malformed_json_is_400() {
        let e = ClickToCallRequest::from_json_bytes(b"{\"from_extension\":").unwrap_err();
        assert_eq!((e.status, e.code), (400, "malformed_json"));
    }
}
