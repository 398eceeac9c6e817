//! The database's tables and how a connection to it is opened.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::core::config::StoreSync;

/// The tables, created if missing; older databases are brought up to date.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spool (
    id TEXT PRIMARY KEY,
    call_uuid TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    token TEXT,
    created_us INTEGER NOT NULL,
    since_us INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead (
    id TEXT PRIMARY KEY,
    call_uuid TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    token TEXT,
    created_us INTEGER NOT NULL,
    since_us INTEGER NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    dead_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    token TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    status INTEGER NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (token, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_expires ON idempotency (expires_ms);
CREATE TABLE IF NOT EXISTS sticky (
    to_phone TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS calls (
    call_uuid TEXT PRIMARY KEY,
    snapshot TEXT NOT NULL,
    ended_ms INTEGER
);
DROP INDEX IF EXISTS calls_ended;
CREATE INDEX IF NOT EXISTS calls_open ON calls (call_uuid) WHERE ended_ms IS NULL;
CREATE INDEX IF NOT EXISTS calls_ended_at ON calls (ended_ms) WHERE ended_ms IS NOT NULL;
";

pub(super) fn connect(path: &Path, sync: StoreSync) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // WAL: readers never block the writer; FULL: every commit is fsync'd.
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode is {mode}, not wal"
        )));
    }
    // Checkpoints (copying the WAL into the database, with an fsync of its
    // own) run on their own thread (checkpointer.rs); the writer makes one
    // itself only should the WAL ever pass 32,768 pages (128 MiB, far over
    // a second of commits at 32 clients). The WAL is cut back to 64 MiB
    // when it starts over.
    conn.execute_batch(&format!(
        "PRAGMA synchronous={}; PRAGMA foreign_keys=OFF; \
         PRAGMA wal_autocheckpoint=32768; PRAGMA journal_size_limit=67108864;",
        sync.pragma()
    ))?;
    Ok(conn)
}
