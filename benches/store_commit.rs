//! The floor under a durable 202 on this machine's disk: what one commit of
//! the store costs when nothing else runs (one call's record, waited for, as
//! a 202 waits), next to a bare `fdatasync` of one 4 KiB overwrite in the
//! same directory. Prints p50/p90/p99/max of each.
//!
//! `cargo bench --bench store_commit` (env: C2C_BENCH_COMMITS,
//! C2C_BENCH_STORE_SYNC=full|normal, C2C_BENCH_DIR: where the files go,
//! default the system's temporary directory).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mod_zorio_c2c::core::config::StoreSync;
use mod_zorio_c2c::core::store::sqlite::{SqliteOptions, SqliteStore};
use mod_zorio_c2c::core::store::{Store, Write};
use uuid::Uuid;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(what: &str, mut v: Vec<Duration>) {
    v.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{what}: {} samples; p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        v.len(),
        us(pct(&v, 0.50)),
        us(pct(&v, 0.90)),
        us(pct(&v, 0.99)),
        us(*v.last().unwrap()),
    );
}

fn main() {
    let n: usize = std::env::var("C2C_BENCH_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let sync = std::env::var("C2C_BENCH_STORE_SYNC")
        .ok()
        .and_then(|v| StoreSync::parse(&v))
        .unwrap_or_default();
    let base = std::env::var_os("C2C_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("c2c-bench-commit-{}", std::process::id()));

    // A call's record as the journal writes it at a 202: about 1 KB of JSON.
    let snapshot = format!("{{\"pad\":\"{}\"}}", "x".repeat(1_000));
    let options = SqliteOptions {
        sync,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_dir(&dir, options).expect("store");
    let mut commits = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let w = Write::CallOpen(Uuid::new_v4(), snapshot.clone());
        let t0 = Instant::now();
        store
            .write(vec![w], Duration::from_secs(5))
            .expect("commit");
        if i >= n / 10 {
            commits.push(t0.elapsed());
        }
    }
    report(
        &format!("store commit of one call's record (store-sync {sync:?}), waited"),
        commits,
    );
    store.close(Duration::from_secs(5));
    drop(store);

    // The disk alone: 4 KiB overwritten in place, then fdatasync.
    let path = dir.join("fdatasync.bin");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("file");
    let page = vec![7u8; 4096];
    for i in 0..256u64 {
        f.write_all_at(&page, i * 4096).expect("write");
    }
    f.sync_all().expect("sync");
    let mut syncs = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let t0 = Instant::now();
        f.write_all_at(&page, (i % 256) * 4096).expect("write");
        f.sync_data().expect("fdatasync");
        syncs.push(t0.elapsed());
    }
    report("bare 4 KiB overwrite + fdatasync", syncs);
    let _ = std::fs::remove_dir_all(&dir);
}
