//! Metric types every layer may use (a neutral module: it imports nothing of
//! ours), and the Prometheus text exposition that `/metrics` writes.
//!
//! Hand-written rather than `prometheus-client`: that crate's histograms and
//! label families take `parking_lot` locks, which under contention park the
//! thread and leave a thread-local destructor on it (a FreeSWITCH thread, for
//! the engine's updates); and its OpenMetrics text (`# TYPE x counter`,
//! samples `x_total`) makes `promtool check metrics` 2.42 report every
//! counter as "no help text". Updates here are atomics only.

pub mod buckets;
pub mod exposition;
pub mod histogram;

pub use exposition::Exposition;
pub use histogram::{Histogram, HistogramVec};
