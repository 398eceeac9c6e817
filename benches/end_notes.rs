//! What one note costs the switch's event thread once its map is full (a
//! busy switch: 4,096 notes are 120 s of 17 calls/s, and many notes are
//! never taken): [`Notes::put`] against the scan it replaced (every note
//! looked at for its age, then again for the oldest). Prints nanoseconds
//! per note, each map at 4,096 notes, the oldest going for each new one.
//!
//! `cargo bench --bench end_notes` (env: C2C_BENCH_NOTES, default 200,000).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mod_zorio_c2c::core::notes::Notes;
use uuid::Uuid;

const MAX: usize = 4096;
const KEEP: Duration = Duration::from_secs(120);

/// The map and room-making of `EndNotes` until 2026-12-05.
fn scan_put(m: &mut HashMap<Uuid, Instant>, key: Uuid) {
    if m.len() >= MAX {
        let now = Instant::now();
        m.retain(|_, at| now.duration_since(*at) < KEEP);
        if m.len() >= MAX {
            let oldest = m.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k);
            oldest.map(|k| m.remove(&k));
        }
    }
    m.insert(key, Instant::now());
}

fn per_note(n: u64, mut put: impl FnMut(Uuid)) -> f64 {
    let began = Instant::now();
    for i in 0..n {
        put(Uuid::from_u128(u128::from(i) + (1 << 64)));
    }
    began.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let n: u64 = std::env::var("C2C_BENCH_NOTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);

    let mut notes: Notes<Uuid, ()> = Notes::new(MAX, KEEP);
    let mut scanned: HashMap<Uuid, Instant> = HashMap::new();
    for i in 0..MAX as u128 {
        notes.put(Uuid::from_u128(i), ());
        scan_put(&mut scanned, Uuid::from_u128(i));
    }
    let ns = per_note(n, |k| notes.put(k, ()));
    assert_eq!(notes.len(), MAX);
    println!("Notes::put, full map of {MAX}: {ns:.0} ns per note");
    let ns = per_note(n / 20, |k| scan_put(&mut scanned, k));
    assert_eq!(scanned.len(), MAX);
    println!("the scan it replaced, full map of {MAX}: {ns:.0} ns per note");
}
