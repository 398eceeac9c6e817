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

mod backend;
mod records;
mod spool;
pub mod sqlite;

pub use self::backend::{Committed, Store, StoreError, COMMIT_TIMEOUT};
pub use self::records::{
    spool_bytes, IdempotencyRecord, JournalEntry, SpoolUsage, Write, ROW_OVERHEAD,
};
pub use self::spool::{is_safe_id, unix_ms, unix_us, DeadLetter, SpoolRecord};
pub use self::sqlite::SqliteStore;
