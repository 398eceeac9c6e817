//! What the store reads back: each query on the reader connection.

use std::time::SystemTime;

use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::rows::{dead_row, from_ms, journal_row, spool_row, unix_ms};
use crate::core::store::records::{IdempotencyRecord, JournalEntry, SpoolUsage, ROW_OVERHEAD};
use crate::core::store::spool::{DeadLetter, SpoolRecord};

pub(super) fn spool_all(c: &Connection) -> rusqlite::Result<Vec<SpoolRecord>> {
    let mut st =
        c.prepare("SELECT id, call_uuid, seq, type, token, created_us, since_us, body FROM spool")?;
    let rows = st.query_map([], spool_row)?;
    Ok(rows.filter_map(|r| r.ok().flatten()).collect())
}

pub(super) fn spool_usage(c: &Connection) -> rusqlite::Result<SpoolUsage> {
    c.query_row(
        "SELECT COUNT(*), COALESCE(SUM(length(body)), 0) FROM spool",
        [],
        |r| {
            let (n, b): (i64, i64) = (r.get(0)?, r.get(1)?);
            Ok(SpoolUsage {
                events: n as u64,
                bytes: b as u64 + n as u64 * ROW_OVERHEAD,
            })
        },
    )
}

pub(super) fn dead_list(c: &Connection) -> rusqlite::Result<Vec<DeadLetter>> {
    let mut st = c.prepare(
        "SELECT id, call_uuid, seq, type, token, created_us, since_us, body,
                attempts, last_error, dead_ms FROM dead ORDER BY dead_ms, call_uuid, seq",
    )?;
    let rows = st.query_map([], dead_row)?;
    Ok(rows.filter_map(|r| r.ok().flatten()).collect())
}

pub(super) fn dead_get(c: &Connection, id: &str) -> rusqlite::Result<Option<DeadLetter>> {
    c.query_row(
        "SELECT id, call_uuid, seq, type, token, created_us, since_us, body,
                attempts, last_error, dead_ms FROM dead WHERE id = ?1",
        [id],
        dead_row,
    )
    .optional()
    .map(Option::flatten)
}

pub(super) fn dead_len(c: &Connection) -> rusqlite::Result<u64> {
    c.query_row("SELECT COUNT(*) FROM dead", [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

pub(super) fn idempotency_get(
    c: &Connection,
    token: &str,
    key: &str,
) -> rusqlite::Result<Option<IdempotencyRecord>> {
    let now = unix_ms(SystemTime::now()) as i64;
    c.prepare_cached(
        "SELECT fingerprint, status, headers, body, expires_ms FROM idempotency
         WHERE token = ?1 AND key = ?2 AND expires_ms > ?3",
    )?
    .query_row(params![token, key, now], |r| {
        let fp: Vec<u8> = r.get(0)?;
        let headers: String = r.get(2)?;
        let expires: i64 = r.get(4)?;
        Ok(IdempotencyRecord {
            token: token.to_string(),
            key: key.to_string(),
            fingerprint: fp.try_into().unwrap_or([0; 32]),
            status: r.get(1)?,
            headers: serde_json::from_str(&headers).unwrap_or_default(),
            body: r.get(3)?,
            expires: from_ms(expires),
        })
    })
    .optional()
}

pub(super) fn sticky_get(c: &Connection, to_phone: &str) -> rusqlite::Result<Option<String>> {
    let now = unix_ms(SystemTime::now()) as i64;
    c.prepare_cached("SELECT number FROM sticky WHERE to_phone = ?1 AND expires_ms > ?2")?
        .query_row(params![to_phone, now], |r| r.get(0))
        .optional()
}

pub(super) fn calls_open(c: &Connection) -> rusqlite::Result<Vec<JournalEntry>> {
    let mut st =
        c.prepare("SELECT call_uuid, snapshot, ended_ms FROM calls WHERE ended_ms IS NULL")?;
    let rows = st.query_map([], journal_row)?;
    Ok(rows.filter_map(|r| r.ok().flatten()).collect())
}

pub(super) fn call_get(c: &Connection, call_uuid: Uuid) -> rusqlite::Result<Option<JournalEntry>> {
    c.prepare_cached("SELECT call_uuid, snapshot, ended_ms FROM calls WHERE call_uuid = ?1")?
        .query_row([call_uuid.to_string()], journal_row)
        .optional()
        .map(Option::flatten)
}
