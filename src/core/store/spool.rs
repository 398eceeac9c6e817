//! The spool's rows: each event waiting for delivery exactly as it will be
//! POSTed, and the dead letters (events given up, with why), until an
//! operator replays them. The store owns them; the webhook service fills and
//! drains them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::core::time::rfc3339;

/// One event as spooled: the exact body to POST and what orders and routes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolRecord {
    /// The event id, also `webhook-id`.
    pub id: String,
    pub event_type: String,
    pub call_uuid: Uuid,
    pub seq: u32,
    /// The API token that placed the call (chooses the destination).
    pub token: Option<String>,
    /// When the event happened.
    pub created_at: SystemTime,
    /// When the current delivery effort began (the give-up horizon counts
    /// from here): `created_at`, or the time of the last replay.
    pub since: SystemTime,
    /// The JSON envelope, serialised once so every attempt sends the same bytes.
    pub body: String,
}

impl SpoolRecord {
    /// The record as the file spool stored it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.event_type,
            "call_uuid": self.call_uuid.to_string(),
            "seq": self.seq,
            "token": self.token,
            "created_unix_us": unix_us(self.created_at),
            "since_unix_us": unix_us(self.since),
            "body": self.body,
        })
    }

    /// A record of the file spool (`None` if it is not one).
    pub fn from_json(v: &Value) -> Option<SpoolRecord> {
        let created_at = UNIX_EPOCH + Duration::from_micros(v["created_unix_us"].as_u64()?);
        let since = v["since_unix_us"]
            .as_u64()
            .map(|us| UNIX_EPOCH + Duration::from_micros(us))
            .unwrap_or(created_at);
        Some(SpoolRecord {
            id: v["id"].as_str().filter(|id| is_safe_id(id))?.to_string(),
            event_type: v["type"].as_str()?.to_string(),
            call_uuid: Uuid::parse_str(v["call_uuid"].as_str()?).ok()?,
            seq: u32::try_from(v["seq"].as_u64()?).ok()?,
            token: v["token"].as_str().map(str::to_string),
            created_at,
            since,
            body: v["body"].as_str()?.to_string(),
        })
    }
}

/// Event ids are used as file names: only `[A-Za-z0-9_-]`, 1 to 100 characters.
pub fn is_safe_id(id: &str) -> bool {
    (1..=100).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub fn unix_ms(t: SystemTime) -> u64 {
    unix_us(t) / 1000
}

pub fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

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
