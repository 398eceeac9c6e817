//! Reads of the calls in flight (`/health`, `/metrics`, `c2c status` list
//! every call under the registry's lock) while calls end as fast as they
//! can, their CDRs going to the durable store: nothing ever waits for a
//! lock held by a thread that waits for it in turn.

mod common;
mod scratch;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn status_reads_while_calls_end_never_deadlock() {
    // Every step of a call within a millisecond: calls end all the time.
    let options = mod_zorio_c2c::sim::SimOptions::demo_fast(
        Duration::from_millis(1),
        Duration::from_millis(1),
    );
    let mut config = config();
    config.max_concurrent_calls = Some(100_000);
    let t = start_with(config, options);
    let addr = t.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|i| {
            let (stop, reads) = (Arc::clone(&stop), Arc::clone(&reads));
            std::thread::spawn(move || {
                let path = if i == 0 { "/health" } else { "/metrics" };
                let mut c = Conn::open(addr);
                while !stop.load(Ordering::Relaxed) {
                    c.send("GET", path, &[("Authorization", &auth())], b"");
                    // A read that never comes back fails here (10 s timeout).
                    assert_eq!(c.read().status, 200, "{path}");
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let a = auth();
    let headers = [
        ("Authorization", a.as_str()),
        ("Content-Type", "application/json"),
    ];
    let body = br#"{"from_extension":"1001","to_phone":"0987654321"}"#;
    let mut c = Conn::open(addr);
    let started = Instant::now();
    let mut placed = 0;
    while started.elapsed() < Duration::from_secs(4) {
        c.send("POST", "/api/pbx/calls/click-to-call", &headers, body);
        assert_eq!(c.read().status, 202);
        placed += 1;
    }
    // Every call ends, and the readers still get answers meanwhile.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let health = get(addr, "/health").json();
        if health["active_calls"] == 0 {
            break;
        }
        if Instant::now() >= until {
            let mut open = std::collections::BTreeMap::new();
            for e in t.log.all() {
                open.entry(e.call_uuid)
                    .or_insert_with(Vec::new)
                    .push(e.event_type);
            }
            open.retain(|_, types| !types.contains(&"pbx.cdr.created"));
            panic!("calls still active: {health}; their events: {open:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("a reader failed");
    }
    let n = reads.load(Ordering::Relaxed);
    assert!(n > 100, "only {n} reads");
    println!("{placed} calls placed and ended while /health and /metrics answered {n} times");
}
