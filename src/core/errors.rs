//! The one error shape of the API and the fs_cli command.
//!
//! HTTP renders it as `{"error": {"code", "message", "fields": [...]}}` with
//! [`ApiError::status`]; fs_cli as `-ERR <code> <message>`. Codes are stable and
//! machine-readable; CRMs branch on them.

use serde::Serialize;
use serde_json::Value;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name, e.g. `to_phone` or `headers.CRM-Lead-Id`.
    pub field: String,
    /// The rule it broke: `required`, `invalid_type`, `invalid_format`, `too_long`, …
    pub code: &'static str,
    pub message: String,
}

/// The one error shape, as it is serialized.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorInner<'a>,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    code: &'a str,
    message: &'a str,
    fields: &'a [FieldError],
}

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<FieldError>,
}

impl ApiError {
    /// An error without field details.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// 422 `validation_failed`, listing every invalid field.
    pub fn validation(fields: Vec<FieldError>) -> ApiError {
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        ApiError {
            status: 422,
            code: codes::VALIDATION_FAILED,
            message: format!("invalid request: {}", names.join(", ")),
            fields,
        }
    }

    /// The JSON body: `{"error": {"code", "message", "fields"}}`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.body()).unwrap_or(Value::Null)
    }

    /// [`ApiError::to_json`] as bytes, written straight from the fields
    /// (no `Value` tree built on the refusal paths).
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body()).unwrap_or_default()
    }

    fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorInner {
                code: self.code,
                message: &self.message,
                fields: &self.fields,
            },
        }
    }

    /// The fs_cli form: `-ERR <code> <message>[: field: message; …]`.
    pub fn to_cli(&self) -> String {
        let mut out = format!("-ERR {} {}", self.code, self.message);
        if !self.fields.is_empty() {
            let details: Vec<String> = self
                .fields
                .iter()
                .map(|f| format!("{} ({}): {}", f.field, f.code, f.message))
                .collect();
            out.push_str(" -- ");
            out.push_str(&details.join("; "));
        }
        out
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The stable error codes.
pub mod codes {
    pub const VALIDATION_FAILED: &str = "validation_failed";
    pub const MALFORMED_JSON: &str = "malformed_json";
    pub const EXTENSION_NOT_FOUND: &str = "extension_not_found";
    pub const EXTENSION_INACTIVE: &str = "extension_inactive";
    /// 409: `agent-busy reject` and the agent is already on a call.
    pub const AGENT_BUSY: &str = "agent_busy";
    pub const TRUNK_NOT_FOUND: &str = "trunk_not_found";
    pub const TRUNK_INACTIVE: &str = "trunk_inactive";
    /// `record: true` while `record-calls` is `never`.
    pub const RECORDING_DISABLED: &str = "recording_disabled";
    /// The call has no recording (never recorded, failed, or erased).
    pub const RECORDING_NOT_FOUND: &str = "recording_not_found";
    /// The recording is still being written (the call is up).
    pub const RECORDING_IN_PROGRESS: &str = "recording_in_progress";
    /// A `Range` outside the file.
    pub const RANGE_NOT_SATISFIABLE: &str = "range_not_satisfiable";
    pub const CALL_NOT_FOUND: &str = "call_not_found";
    pub const CAPACITY_EXCEEDED: &str = "capacity_exceeded";
    pub const SWITCH_UNAVAILABLE: &str = "switch_unavailable";
    pub const SHUTTING_DOWN: &str = "shutting_down";
    /// The webhook spool is above its high-water mark: new calls wait.
    pub const SPOOL_FULL: &str = "spool_full";
    /// The durable store did not commit the call in time.
    pub const STORE_UNAVAILABLE: &str = "store_unavailable";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const IDEMPOTENCY_CONFLICT: &str = "idempotency_conflict";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    pub const NOT_FOUND: &str = "not_found";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const BAD_REQUEST: &str = "bad_request";
    pub const INTERNAL: &str = "internal_error";
    /// 503: no webhook service is attached.
    pub const WEBHOOKS_UNAVAILABLE: &str = "webhooks_unavailable";
    /// 404: no dead letter with this id.
    pub const DEAD_LETTER_NOT_FOUND: &str = "dead_letter_not_found";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_the_json() {
        let e = ApiError::validation(vec![FieldError {
            field: "to_phone".into(),
            code: "invalid_format",
            message: "must match \"^[0-9+]+$\"".into(),
        }]);
        let parsed = |b: Vec<u8>| serde_json::from_slice::<Value>(&b).unwrap();
        assert_eq!(parsed(e.to_json_bytes()), e.to_json());
        assert_eq!(e.to_json()["error"]["fields"][0]["field"], "to_phone");
        let e = ApiError::new(401, codes::UNAUTHORIZED, "no");
        assert_eq!(parsed(e.to_json_bytes()), e.to_json());
        assert_eq!(e.to_json()["error"]["code"], "unauthorized");
    }

    #[test]
    fn validation_lists_every_field_in_json_and_cli() {
        let e = ApiError::validation(vec![
            FieldError {
                field: "to_phone".into(),
                code: "required",
                message: "is required".into(),
            },
            FieldError {
                field: "trunk_id".into(),
                code: "invalid_type",
                message: "must be an integer".into(),
            },
        ]);
        assert_eq!(e.status, 422);
        let j = e.to_json();
        assert_eq!(j["error"]["code"], "validation_failed");
        assert_eq!(j["error"]["fields"][1]["field"], "trunk_id");
        let cli = e.to_cli();
        assert!(cli.starts_with("-ERR validation_failed "), "{cli}");
        assert!(
            cli.contains("trunk_id (invalid_type): must be an integer"),
            "{cli}"
        );
    }
}
