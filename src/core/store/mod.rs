//! What a CRM was promised, kept across restarts and crashes: events not yet
//! delivered (the spool), dead letters, `Idempotency-Key`s and the call
//! journal. One durable store behind this small trait; [`SqliteStore`] is the
//! one for a single switch (WAL, `synchronous=FULL`, one writer thread doing
//! group commit). A shared backend (Redis, for several switches serving one
//! API) implements the same trait.
//!
//! Every write that returns `Ok` is durable (committed and fsync'd); callers
//! wait on the commit of the group their write went out in, never on an
//! fsync of their own. Writes that nobody needs to wait for (an event was
//! delivered, so it leaves the spool) are queued with [`Store::forget`]:
//! they go out, in order, with the next commit.

mod checkpointer;
pub mod sqlite;

use std::fmt;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use crate::core::webhooks::dead::DeadLetter;
use crate::core::webhooks::spool::SpoolRecord;

pub use self::sqlite::SqliteStore;

/// How long a caller waits for its commit before it gives up (and refuses).
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a write or read did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The writer did not commit within the caller's timeout (the write may
    /// still be committed later).
    Timeout,
    /// The writer's queue is full: refused, not queued.
    Overloaded,
    /// The store is closed (shutdown).
    Closed,
    /// The database said no (disk full, I/O error…).
    Db(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Timeout => f.write_str("the store did not commit in time"),
            StoreError::Overloaded => f.write_str("the store's write queue is full"),
            StoreError::Closed => f.write_str("the store is closed"),
            StoreError::Db(e) => write!(f, "store: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

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

/// What runs once a [`Store::write_then`] commit is done.
pub type Committed = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// The durable store.
pub trait Store: Send + Sync + 'static {
    /// Commits `writes` in one transaction (grouped with other callers'),
    /// waiting at most `timeout` for the commit.
    fn write(&self, writes: Vec<Write>, timeout: Duration) -> Result<(), StoreError>;

    /// Queues `writes` for the next commit without waiting (order with
    /// other writes is kept). Refuses only when the queue is full or closed.
    fn forget(&self, writes: Vec<Write>) -> Result<(), StoreError>;

    /// Queues `writes` like [`Store::forget`], then runs `then` with the
    /// outcome of their commit, on the store's own thread: `then` must be
    /// quick and must not wait on the store. `Err` (queue full or closed):
    /// refused, and `then` is dropped without being run.
    fn write_then(&self, writes: Vec<Write>, then: Committed) -> Result<(), StoreError> {
        match self.write(writes, COMMIT_TIMEOUT) {
            Err(e @ (StoreError::Overloaded | StoreError::Closed)) => Err(e),
            r => {
                then(r);
                Ok(())
            }
        }
    }

    /// Every spooled event (in no particular order).
    fn spool_all(&self) -> Result<Vec<SpoolRecord>, StoreError>;

    /// What waits in the spool now (as committed).
    fn spool_usage(&self) -> Result<SpoolUsage, StoreError>;

    /// Every dead letter, oldest death first.
    fn dead_list(&self) -> Result<Vec<DeadLetter>, StoreError>;

    /// One dead letter.
    fn dead_get(&self, id: &str) -> Result<Option<DeadLetter>, StoreError>;

    /// How many dead letters there are.
    fn dead_len(&self) -> Result<u64, StoreError>;

    /// A remembered key, if not expired.
    fn idempotency_get(
        &self,
        token: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Calls not yet ended (to recover at start).
    fn calls_open(&self) -> Result<Vec<JournalEntry>, StoreError>;

    /// One call, open or ended within the retention.
    fn call_get(&self, call_uuid: Uuid) -> Result<Option<JournalEntry>, StoreError>;

    /// Stops the writer (committing what was queued) within `deadline`;
    /// returns whether it stopped in time. Writes after this are refused.
    fn close(&self, deadline: Duration) -> bool;
}
