//! What the webhook service shares with its dispatcher and delivery threads:
//! destinations, sender, schedule, the store, the spool's gauge, the counters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use super::destination::Destinations;
use super::schedule::RetrySchedule;
use super::sender::Sender;
use super::stats::Stats;
use crate::core::events;
use crate::core::log::{LogHook, LogLevel};
use crate::core::store::{spool_bytes, SpoolRecord, Store};

/// The uuid a message about a spooled event carries ([`events::log_uuid`]).
fn record_log_uuid(r: &SpoolRecord) -> String {
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
    events::log_uuid(r.call_uuid, &body["data"])
}

/// How full the spool is, and its bounds (bytes).
pub(crate) struct SpoolGauge {
    pub(super) events: AtomicU64,
    pub(super) bytes: AtomicU64,
    /// The bound: past it an accepted call's event is still kept, and logged.
    pub(super) max_bytes: u64,
    /// New calls are refused from here on.
    pub(super) high_water: u64,
    /// Whether new calls are being refused (to log each change once).
    pub(super) refusing: AtomicBool,
}

impl SpoolGauge {
    pub(super) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    pub(super) fn above_high_water(&self) -> bool {
        self.bytes() >= self.high_water
    }
}

/// What the dispatcher and senders share.
pub(crate) struct Shared {
    pub(super) store: Arc<dyn Store>,
    pub(super) spool: SpoolGauge,
    pub(super) max_dead_letters: usize,
    pub(super) destinations: RwLock<Arc<Destinations>>,
    pub(super) schedule: RetrySchedule,
    pub(super) sender: Sender,
    pub(super) stats: Stats,
    pub(super) log: LogHook,
    /// Set by `stop` just before in-flight requests are cut.
    pub(super) interrupted: AtomicBool,
    /// The delivery threads the dispatcher started and has not joined yet.
    pub(super) senders: Mutex<Vec<(String, JoinHandle<()>)>>,
}

impl Shared {
    pub(super) fn log(&self, level: LogLevel, msg: &str) {
        (self.log)(level, None, msg);
    }

    /// A message about one spooled event (so, about its call).
    pub(super) fn log_record(&self, level: LogLevel, record: &SpoolRecord, msg: &str) {
        (self.log)(level, Some(&record_log_uuid(record)), msg);
    }

    /// Counts events now in the spool (`n` of them, `bytes` in all).
    pub(super) fn spooled(&self, n: u64, bytes: u64) {
        self.spool.events.fetch_add(n, Ordering::SeqCst);
        self.spool.bytes.fetch_add(bytes, Ordering::SeqCst);
        self.note_level();
    }

    /// An event left the spool (delivered or dead-lettered).
    pub(crate) fn unspooled(&self, record: &SpoolRecord) {
        let b = spool_bytes(record);
        let _ = self
            .spool
            .events
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        let _ = self
            .spool
            .bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(b))
            });
        self.note_level();
    }

    /// Logs once each time the spool crosses its high-water mark.
    pub(super) fn note_level(&self) {
        let above = self.spool.above_high_water();
        if self.spool.refusing.swap(above, Ordering::SeqCst) == above {
            return;
        }
        let (bytes, mark) = (self.spool.bytes(), self.spool.high_water);
        if above {
            self.log(
                LogLevel::Error,
                &format!(
                    "webhooks: spool holds {bytes} bytes, at its high-water mark ({mark} of \
                     {} bytes): NEW CALLS ARE REFUSED (503 spool_full) until the CRM takes \
                     its events; calls already accepted go on and their events are kept",
                    self.spool.max_bytes
                ),
            );
        } else {
            self.log(
                LogLevel::Info,
                &format!(
                    "webhooks: spool back under its high-water mark ({bytes} of {mark} bytes): \
                     new calls are accepted again"
                ),
            );
        }
    }

    /// The destinations in force (replaced whole by a config reload).
    pub(super) fn destinations(&self) -> Arc<Destinations> {
        self.destinations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
