//! Counters of the HTTP layer: requests by route and status, connections.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Mutex;
use std::time::Duration;

use crate::core::metrics::{buckets, HistogramVec};

/// HTTP counters.
pub struct Metrics {
    /// (route, status) → requests answered.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Connections open now.
    pub open_connections: AtomicUsize,
    /// Connections refused with 503 because of the cap.
    pub refused_connections: AtomicU64,
    /// Seconds from a request read to its answer, by route and status.
    pub latency: HistogramVec,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: Mutex::default(),
            open_connections: AtomicUsize::default(),
            refused_connections: AtomicU64::default(),
            latency: HistogramVec::new(&buckets::HTTP_SECONDS),
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn record(&self, route: &'static str, status: u16) {
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((route, status)).or_default() += 1;
    }

    /// Counts one answered request and how long the router took for it.
    pub fn record_timed(&self, route: &'static str, status: u16, took: Duration) {
        self.record(route, status);
        let status = status.to_string();
        self.latency.with(&[route, &status]).observe_duration(took);
    }

    /// (route, status) → requests answered, now.
    pub fn requests(&self) -> BTreeMap<(&'static str, u16), u64> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Requests answered with `status`, over all routes.
    pub fn requests_with_status(&self, status: u16) -> u64 {
        let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .filter(|((_, s), _)| *s == status)
            .map(|(_, n)| n)
            .sum()
    }
}
