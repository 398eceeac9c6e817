//! How records map to rows and times to integers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::Value as SqlValue;
use uuid::Uuid;

use crate::core::store::records::JournalEntry;
use crate::core::store::spool::{DeadLetter, SpoolRecord};

/// The columns a spooled event and a dead letter share, in table order.
pub(super) fn record_values(r: &SpoolRecord) -> Vec<SqlValue> {
    vec![
        SqlValue::Text(r.id.clone()),
        SqlValue::Text(r.call_uuid.to_string()),
        SqlValue::Integer(r.seq.into()),
        SqlValue::Text(r.event_type.clone()),
        r.token.clone().map_or(SqlValue::Null, SqlValue::Text),
        SqlValue::Integer(unix_us(r.created_at) as i64),
        SqlValue::Integer(unix_us(r.since) as i64),
        SqlValue::Text(r.body.clone()),
    ]
}

pub(super) fn spool_row(r: &rusqlite::Row) -> rusqlite::Result<Option<SpoolRecord>> {
    let call: String = r.get(1)?;
    let Ok(call_uuid) = Uuid::parse_str(&call) else {
        return Ok(None);
    };
    Ok(Some(SpoolRecord {
        id: r.get(0)?,
        call_uuid,
        seq: r.get(2)?,
        event_type: r.get(3)?,
        token: r.get(4)?,
        created_at: from_us(r.get(5)?),
        since: from_us(r.get(6)?),
        body: r.get(7)?,
    }))
}

pub(super) fn dead_row(r: &rusqlite::Row) -> rusqlite::Result<Option<DeadLetter>> {
    let Some(record) = spool_row(r)? else {
        return Ok(None);
    };
    Ok(Some(DeadLetter {
        record,
        attempts: r.get(8)?,
        last_error: r.get(9)?,
        dead_at: from_ms(r.get(10)?),
    }))
}

pub(super) fn journal_row(r: &rusqlite::Row) -> rusqlite::Result<Option<JournalEntry>> {
    let call: String = r.get(0)?;
    let Ok(call_uuid) = Uuid::parse_str(&call) else {
        return Ok(None);
    };
    let ended: Option<i64> = r.get(2)?;
    Ok(Some(JournalEntry {
        call_uuid,
        snapshot: r.get(1)?,
        ended_at: ended.map(from_ms),
    }))
}

pub(super) fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

pub(super) fn unix_ms(t: SystemTime) -> u64 {
    unix_us(t) / 1000
}

pub(super) fn from_us(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us.max(0) as u64)
}

pub(super) fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}
