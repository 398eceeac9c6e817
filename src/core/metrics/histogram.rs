//! Lock-free histograms: atomics only on the hot path, so that an update
//! from a FreeSWITCH thread never blocks and never touches a thread-local.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A Prometheus histogram with fixed upper bounds (plus `+Inf`).
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    counts: Box<[AtomicU64]>,
    count: AtomicU64,
    /// The sum, as `f64` bits (updated by compare-and-swap).
    sum: AtomicU64,
}

/// A histogram's values at one moment, buckets cumulative as exposed.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, observations ≤ bound)`, ending with `(+Inf, count)`.
    pub buckets: Vec<(f64, u64)>,
    /// Observations.
    pub count: u64,
    /// Sum of the observed values.
    pub sum: f64,
}

impl Histogram {
    /// A histogram with these upper bounds (ascending, `+Inf` implied).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one value (NaN is ignored).
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let mut old = self.sum.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(old) + v).to_bits();
            match self
                .sum
                .compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a duration, in seconds.
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// The values now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut acc = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            acc += c.load(Ordering::Relaxed);
            buckets.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), acc));
        }
        HistogramSnapshot {
            count: acc,
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
            buckets,
        }
    }
}

/// Histograms by label values (e.g. per trunk): a short read lock finds
/// the histogram, the update itself is atomic; a new label set takes the
/// write lock once.
pub struct HistogramVec {
    bounds: &'static [f64],
    series: RwLock<Vec<(Vec<String>, Arc<Histogram>)>>,
}

impl HistogramVec {
    /// Histograms with these bounds, one per label set.
    pub fn new(bounds: &'static [f64]) -> HistogramVec {
        HistogramVec {
            bounds,
            series: RwLock::new(Vec::new()),
        }
    }

    /// The histogram of these label values (created on first use).
    pub fn with(&self, values: &[&str]) -> Arc<Histogram> {
        let same = |k: &Vec<String>| k.iter().map(String::as_str).eq(values.iter().copied());
        {
            let s = self.series.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, h)) = s.iter().find(|(k, _)| same(k)) {
                return Arc::clone(h);
            }
        }
        let mut s = self.series.write().unwrap_or_else(|e| e.into_inner());
        if let Some((_, h)) = s.iter().find(|(k, _)| same(k)) {
            return Arc::clone(h);
        }
        let h = Arc::new(Histogram::new(self.bounds));
        s.push((
            values.iter().map(|v| v.to_string()).collect(),
            Arc::clone(&h),
        ));
        h
    }

    /// Every label set and its values now, sorted by label values.
    pub fn snapshot(&self) -> Vec<(Vec<String>, HistogramSnapshot)> {
        let s = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = s.iter().map(|(k, h)| (k.clone(), h.snapshot())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inclusive() {
        static B: [f64; 3] = [0.5, 1.0, 2.0];
        let h = Histogram::new(&B);
        for v in [0.1, 0.5, 0.7, 1.0, 3.0] {
            h.observe(v);
        }
        h.observe(f64::NAN);
        let s = h.snapshot();
        assert_eq!(
            s.buckets,
            vec![(0.5, 2), (1.0, 4), (2.0, 4), (f64::INFINITY, 5)]
        );
        assert_eq!(s.count, 5);
        assert!((s.sum - 5.3).abs() < 1e-9);
    }

    #[test]
    fn vec_keeps_one_series_per_label_set() {
        static B: [f64; 1] = [1.0];
        let v = HistogramVec::new(&B);
        v.with(&["POC"]).observe(0.5);
        v.with(&["POC"]).observe(2.0);
        v.with(&["BACKUP"]).observe(0.5);
        let s = v.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, vec!["BACKUP".to_string()]);
        assert_eq!(s[1].1.count, 2);
    }
}
