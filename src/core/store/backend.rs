//! The durable store's interface: one trait, whatever keeps the data.

use crate::core::metrics::histogram::HistogramSnapshot;
use std::fmt;
use std::time::Duration;

use uuid::Uuid;

use super::records::{IdempotencyRecord, JournalEntry, SpoolUsage, Write};
use super::spool::{DeadLetter, SpoolRecord};

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

    /// The caller id `to_phone` was last called from, if not expired.
    fn sticky_get(&self, to_phone: &str) -> Result<Option<String>, StoreError>;

    /// Calls not yet ended (to recover at start).
    fn calls_open(&self) -> Result<Vec<JournalEntry>, StoreError>;

    /// One call, open or ended within the retention.
    fn call_get(&self, call_uuid: Uuid) -> Result<Option<JournalEntry>, StoreError>;

    /// Stops the writer (committing what was queued) within `deadline`;
    /// returns whether it stopped in time. Writes after this are refused.
    fn close(&self, deadline: Duration) -> bool;

    /// Seconds each commit took (for `/metrics`), if this store measures it.
    fn commit_seconds(&self) -> Option<HistogramSnapshot> {
        None
    }
}
