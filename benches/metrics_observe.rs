//! What a metric update costs on the call path: `Histogram::observe` alone,
//! from two threads at once on one histogram (the worst contention: the
//! sum's compare-and-swap), and `HistogramVec::with(trunk)` + observe (the
//! customer's post-dial delay, recorded on FreeSWITCH's event thread).
//! Prints nanoseconds per update.
//!
//! `cargo bench --bench metrics_observe` (env: C2C_BENCH_UPDATES, default
//! 10,000,000 per thread).

use std::sync::Arc;
use std::time::Instant;

use mod_zorio_c2c::core::metrics::{buckets, Histogram, HistogramVec};

fn per_update(n: u64, f: impl Fn(u64)) -> f64 {
    let began = Instant::now();
    for i in 0..n {
        f(i);
    }
    began.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let n: u64 = std::env::var("C2C_BENCH_UPDATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let value = |i: u64| (i % 1000) as f64 * 0.05;

    let h = Arc::new(Histogram::new(&buckets::ANSWER_SECONDS));
    let ns = per_update(n, |i| h.observe(value(i)));
    println!("Histogram::observe, one thread: {ns:.1} ns per update");

    let threads: Vec<_> = (0..2)
        .map(|_| {
            let h = Arc::clone(&h);
            std::thread::spawn(move || per_update(n, |i| h.observe(value(i))))
        })
        .collect();
    let ns: Vec<f64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    println!(
        "Histogram::observe, two threads on one histogram: {:.1} / {:.1} ns per update",
        ns[0], ns[1]
    );
    assert_eq!(h.snapshot().count, 3 * n, "every update counted");

    let v = HistogramVec::new(&buckets::POST_DIAL_SECONDS);
    let trunks = ["POC", "BACKUP", "OLD", "dialplan"];
    let ns = per_update(n, |i| v.with(&[trunks[(i % 4) as usize]]).observe(value(i)));
    println!("HistogramVec::with(trunk) + observe, 4 trunks: {ns:.1} ns per update");
}
