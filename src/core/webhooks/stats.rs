//! Counters of the webhook service.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Mutex;

use crate::core::metrics::{buckets, Histogram};

#[derive(Default)]
pub(crate) struct Stats {
    /// Events in the per-call queues (including those in flight).
    pub queued: AtomicUsize,
    pub in_flight: AtomicUsize,
    /// Delivery threads running (started on demand, see `dispatch::Pool`).
    pub threads: AtomicUsize,
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// New calls refused because the spool was above its high-water mark.
    pub refused_calls: AtomicU64,
    /// Events of accepted calls spooled past the byte bound (kept anyway).
    pub over_capacity: AtomicU64,
    pub spool_errors: AtomicU64,
    pub no_destination: AtomicU64,
    pub replayed: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// Delivered events: created until their 2xx, and attempts they took.
    pub delivery: Delivery,
}

/// Histograms of delivered events.
pub(crate) struct Delivery {
    /// Seconds from the event's `created_at` to its 2xx.
    pub lag: Histogram,
    /// Attempts (the last one the 2xx).
    pub attempts: Histogram,
}

impl Default for Delivery {
    fn default() -> Delivery {
        Delivery {
            lag: Histogram::new(&buckets::WEBHOOK_LAG_SECONDS),
            attempts: Histogram::new(&buckets::WEBHOOK_ATTEMPTS),
        }
    }
}
