//! What the store keeps besides the spool: remembered `Idempotency-Key`s,
//! the call journal, and the writes that change them all.

use std::time::SystemTime;

use uuid::Uuid;

use super::spool::{DeadLetter, SpoolRecord};

/// A remembered `Idempotency-Key` and the answer it replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub token: String,
    pub key: String,
    /// SHA-256 of the canonical request body.
    pub fingerprint: [u8; 32],
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wall-clock expiry (it must hold across restarts).
    pub expires: SystemTime,
}

/// A call the journal holds: its snapshot (JSON) while open, and for a
/// retention period once ended (for `GET /api/pbx/calls/{uuid}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub call_uuid: Uuid,
    /// The `CallRecord` snapshot as JSON text.
    pub snapshot: String,
    /// `None` while the call is open.
    pub ended_at: Option<SystemTime>,
}

/// One write. Writes submitted together ([`Store::write`]) commit together.
#[derive(Debug, Clone)]
pub enum Write {
    /// An event to deliver.
    SpoolPut(SpoolRecord),
    /// A delivered event leaves the spool.
    SpoolRemove(String),
    /// A given-up event: out of the spool, into the dead letters.
    DeadPut(DeadLetter),
    /// A dead letter is forgotten (after a replay put it back in the spool).
    DeadRemove(String),
    /// A key and the answer it replays.
    IdempotencyPut(IdempotencyRecord),
    /// An open call's snapshot (inserted or replaced).
    CallOpen(Uuid, String),
    /// A call's last snapshot: it is ended, kept until the retention passes.
    CallEnded(Uuid, String, SystemTime),
    /// A call is ended (its last snapshot stays as it is).
    CallClosed(Uuid, SystemTime),
    /// The caller id a customer's number was called from, remembered until
    /// `expires` (`<caller-ids strategy="sticky">`).
    StickyPut {
        to_phone: String,
        number: String,
        expires: SystemTime,
    },
}

/// Counts and bytes of what waits in the spool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolUsage {
    pub events: u64,
    /// Bytes the events take in the store (bodies plus a per-row estimate).
    pub bytes: u64,
}

/// Estimated bytes one spooled event takes in the store: its body and the
/// rest of its row and index entries.
pub fn spool_bytes(record: &SpoolRecord) -> u64 {
    record.body.len() as u64 + ROW_OVERHEAD
}

/// Bytes of a spooled row besides its body (ids, uuid, index entries, page slack).
pub const ROW_OVERHEAD: u64 = 160;
