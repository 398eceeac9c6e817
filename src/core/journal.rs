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

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::SystemTime;

use uuid::Uuid;

use super::call::CallRecord;
use super::store::{Store, StoreError, Write, COMMIT_TIMEOUT};

/// Where open calls are kept. Implementations must be cheap to `put` into
/// (it runs on every call event) and must never block for long.
pub trait CallJournal: Send + Sync {
    /// Records (or replaces) an open call.
    fn put(&self, record: &CallRecord);
    /// The call has ended and its CDR was emitted.
    fn remove(&self, call_uuid: Uuid);
    /// Every open call, oldest first.
    fn open_calls(&self) -> Vec<CallRecord>;

    /// Whether records live in the engine's durable store: the engine then
    /// commits a call's record itself ([`journal_write`]), in the same
    /// commit as what it promises about the call (the 202's idempotency
    /// key, each event), instead of calling `put` / `remove`.
    fn durable(&self) -> bool {
        false
    }

    /// An ended call still kept (for `GET /api/pbx/calls/{uuid}`).
    fn ended_call(&self, _call_uuid: Uuid) -> Option<CallRecord> {
        None
    }
    /// Replaces an ended call's record (its recording erased).
    fn update_ended(&self, _record: &CallRecord) {}
}

/// The write that records `record` in a durable journal: open, or ended
/// (its CDR is emitted in the same commit; kept for the retention period).
pub fn journal_write(record: &CallRecord, ended: bool) -> Write {
    let snapshot = record.to_snapshot();
    if ended {
        Write::CallEnded(record.call_uuid, snapshot, record.end_time())
    } else {
        Write::CallOpen(record.call_uuid, snapshot)
    }
}

/// The journal in the durable store ([`crate::core::store`]): calls survive
/// a crash of the switch, and ended calls stay readable for the retention
/// period without taking memory.
pub struct StoreJournal {
    store: Arc<dyn Store>,
}

impl StoreJournal {
    pub fn new(store: Arc<dyn Store>) -> StoreJournal {
        StoreJournal { store }
    }

    fn write(&self, w: Write) {
        if let Err(e) = self.store.write(vec![w], COMMIT_TIMEOUT) {
            // Only shutdown and odd paths get here (the engine commits the
            // journal with each event itself); say so, never silently.
            eprintln!("mod_zorio_c2c: call journal write failed: {e}");
        }
    }

    fn parse(snapshot: &str) -> Result<CallRecord, StoreError> {
        serde_json::from_str(snapshot)
            .map_err(|e| e.to_string())
            .and_then(|v| CallRecord::from_snapshot(&v))
            .map_err(StoreError::Db)
    }
}

impl CallJournal for StoreJournal {
    fn put(&self, record: &CallRecord) {
        self.write(journal_write(record, false));
    }

    fn remove(&self, call_uuid: Uuid) {
        self.write(Write::CallClosed(call_uuid, SystemTime::now()));
    }

    fn open_calls(&self) -> Vec<CallRecord> {
        let mut v: Vec<CallRecord> = match self.store.calls_open() {
            Ok(entries) => entries
                .iter()
                .filter_map(|e| match StoreJournal::parse(&e.snapshot) {
                    Ok(c) => Some(c),
                    Err(err) => {
                        eprintln!(
                            "mod_zorio_c2c: call journal: unreadable record of {}: {err}",
                            e.call_uuid
                        );
                        None
                    }
                })
                .collect(),
            Err(e) => {
                eprintln!("mod_zorio_c2c: call journal unreadable: {e}");
                Vec::new()
            }
        };
        v.sort_by_key(|c| c.created_at);
        v
    }

    fn durable(&self) -> bool {
        true
    }

    fn update_ended(&self, record: &CallRecord) {
        self.write(journal_write(record, true));
    }

    fn ended_call(&self, call_uuid: Uuid) -> Option<CallRecord> {
        let e = self.store.call_get(call_uuid).ok().flatten()?;
        e.ended_at?;
        StoreJournal::parse(&e.snapshot).ok()
    }
}

/// How many ended calls a [`MemoryJournal`] keeps readable.
const MEMORY_ENDED_CALLS: usize = 10_000;

/// A journal in memory: it outlives an engine (and, inside FreeSWITCH, where
/// the library stays mapped, a module reload) but not the process. It keeps
/// the last [`MEMORY_ENDED_CALLS`] ended calls readable.
#[derive(Default)]
pub struct MemoryJournal {
    calls: Mutex<HashMap<Uuid, CallRecord>>,
    ended: Mutex<VecDeque<CallRecord>>,
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
        let Some(c) = self.calls().remove(&call_uuid) else {
            return;
        };
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        ended.push_back(c);
        if ended.len() > MEMORY_ENDED_CALLS {
            ended.pop_front();
        }
    }

    fn open_calls(&self) -> Vec<CallRecord> {
        let mut v: Vec<CallRecord> = self.calls().values().cloned().collect();
        v.sort_by_key(|c| c.created_at);
        v
    }

    fn update_ended(&self, record: &CallRecord) {
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = ended.iter_mut().find(|c| c.call_uuid == record.call_uuid) {
            *c = record.clone();
        }
    }

    fn ended_call(&self, call_uuid: Uuid) -> Option<CallRecord> {
        let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        ended
            .iter()
            .rev()
            .find(|c| c.call_uuid == call_uuid)
            .cloned()
    }
}

static INSTANCE: LazyLock<Uuid> = LazyLock::new(Uuid::new_v4);

/// This process's id: the same for every engine of one process (every
/// reload of the module), new after a restart of the switch. A journal
/// record of another instance was interrupted by a restart, not a reload.
pub fn instance() -> Uuid {
    *INSTANCE
}
