//! The call journal: where a call's record waits while the switch still
//! carries the call but no engine watches it (between a module's unload and
//! the next load), and, in a durable store, across a crash of the switch.
//!
//! The engine writes every call into it when it is accepted and after each
//! event, and takes it out once the call's CDR is emitted. At start, an
//! engine takes back every call still in the journal
//! ([`crate::core::engine::Engine::with_journal`]): calls whose legs are
//! still up in the switch are adopted, the others are reported ended with
//! `recovered: true`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use uuid::Uuid;

use super::call::CallRecord;

/// Where open calls are kept. Implementations must be cheap to `put` into
/// (it runs on every call event) and must never block for long.
pub trait CallJournal: Send + Sync {
    /// Records (or replaces) an open call.
    fn put(&self, record: &CallRecord);
    /// The call has ended and its CDR was emitted.
    fn remove(&self, call_uuid: Uuid);
    /// Every open call, oldest first.
    fn open_calls(&self) -> Vec<CallRecord>;
}

/// A journal in memory: it outlives an engine (and, inside FreeSWITCH, where
/// the library stays mapped, a module reload) but not the process.
#[derive(Default)]
pub struct MemoryJournal {
    calls: Mutex<HashMap<Uuid, CallRecord>>,
}

impl MemoryJournal {
    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, CallRecord>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CallJournal for MemoryJournal {
    fn put(&self, record: &CallRecord) {
        self.calls().insert(record.call_uuid, record.clone());
    }

    fn remove(&self, call_uuid: Uuid) {
        self.calls().remove(&call_uuid);
    }

    fn open_calls(&self) -> Vec<CallRecord> {
        let mut v: Vec<CallRecord> = self.calls().values().cloned().collect();
        v.sort_by_key(|c| c.created_at);
        v
    }
}

static INSTANCE: LazyLock<Uuid> = LazyLock::new(Uuid::new_v4);

/// This process's id: the same for every engine of one process (every
/// reload of the module), new after a restart of the switch. A journal
/// record of another instance was interrupted by a restart, not a reload.
pub fn instance() -> Uuid {
    *INSTANCE
}
