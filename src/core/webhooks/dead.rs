//! Dead letters: events given up after the retry horizon, kept in the store
//! with why they failed, until an operator replays them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::spool::{unix_ms, SpoolRecord};
use crate::core::time::rfc3339;

/// An event that was given up.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub record: SpoolRecord,
    /// Attempts made before giving up.
    pub attempts: u32,
    /// The last failure (`HTTP 503`, `timeout`, `no destination`…).
    pub last_error: String,
    pub dead_at: SystemTime,
}

impl DeadLetter {
    /// As the file spool stored it.
    pub fn to_json(&self) -> Value {
        json!({
            "record": self.record.to_json(),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "dead_unix_ms": unix_ms(self.dead_at),
        })
    }

    /// A dead letter of the file spool.
    pub fn from_json(v: &Value) -> Option<DeadLetter> {
        Some(DeadLetter {
            record: SpoolRecord::from_json(&v["record"])?,
            attempts: u32::try_from(v["attempts"].as_u64()?).ok()?,
            last_error: v["last_error"].as_str()?.to_string(),
            dead_at: UNIX_EPOCH + Duration::from_millis(v["dead_unix_ms"].as_u64()?),
        })
    }

    /// A summary for `c2c webhooks dead` and status views (no body).
    pub fn summary_json(&self) -> Value {
        json!({
            "id": self.record.id,
            "type": self.record.event_type,
            "call_uuid": self.record.call_uuid.to_string(),
            "seq": self.record.seq,
            "token": self.record.token,
            "created_at": rfc3339(self.record.created_at),
            "dead_at": rfc3339(self.dead_at),
            "attempts": self.attempts,
            "last_error": self.last_error,
        })
    }
}
