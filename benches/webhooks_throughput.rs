//! Webhook deliveries per second to a loopback receiver, with signing and the
//! durable spool on (SQLite, WAL, synchronous=FULL, group commit):
//! `cargo bench --bench webhooks_throughput`
//! (args: `[calls] [events per call] [workers] [emitting threads]`, default
//! 2000 7, the module's default workers, 64: the engine emits from one
//! thread per call in flight).

#[path = "../tests/scratch/mod.rs"]
mod scratch;
#[path = "../tests/webhooks_common/mod.rs"]
mod webhooks_common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mod_zorio_c2c::core::events::{self, CallEvent, EventSink};
use mod_zorio_c2c::core::store::{Committed, SqliteStore, Store};
use mod_zorio_c2c::core::webhooks::{self, stderr_log, WebhookService};
use serde_json::json;
use uuid::Uuid;
use webhooks_common::{settings, temp_spool, Receiver};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let calls = args.first().copied().unwrap_or(2000);
    let per_call = args.get(1).copied().unwrap_or(7) as u32;
    let workers = args
        .get(2)
        .copied()
        .unwrap_or(mod_zorio_c2c::core::config::DEFAULT_WEBHOOK_WORKERS);
    let emitters = args.get(3).copied().unwrap_or(64);
    let total = calls * per_call as usize;

    let rx = Receiver::ok();
    let spool = temp_spool("bench");
    let mut cfg = settings(Some(rx.url()), &spool);
    cfg.workers = workers;
    let store: Arc<SqliteStore> =
        webhooks::open_store(&cfg, Duration::from_secs(3600)).expect("store");
    let service =
        WebhookService::start_with_store(&cfg, &[], store.clone(), stderr_log()).expect("start");

    // Emit from many "call threads" at once, the way the engine does: the
    // event's spool row goes to the store without waiting, and the service
    // gets the event from the store's thread once it is committed.
    let committed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..emitters)
        .map(|t| {
            let s: Arc<WebhookService> = service.clone();
            let store: Arc<SqliteStore> = store.clone();
            let committed = Arc::clone(&committed);
            std::thread::spawn(move || {
                for _ in (t..calls).step_by(emitters) {
                    let call = Uuid::new_v4();
                    for seq in 1..=per_call {
                        let data = json!({"call_uuid": call.to_string(), "leg": "A", "seq": seq});
                        let event =
                            CallEvent::new(events::ANSWERED, call, seq, Some("crm".into()), data);
                        let writes = s.durable_writes(&event);
                        let (s2, done) = (Arc::clone(&s), Arc::clone(&committed));
                        let then: Committed = Box::new(move |r| {
                            assert!(r.is_ok(), "{r:?}");
                            s2.committed(&event);
                            done.fetch_add(1, Ordering::SeqCst);
                        });
                        store.write_then(writes, then).expect("queued");
                    }
                }
            })
        })
        .collect();
    for e in threads {
        e.join().expect("emitter");
    }
    while committed.load(Ordering::SeqCst) < total {
        std::thread::sleep(Duration::from_micros(200));
    }
    let emitted_in = started.elapsed();
    let (commits, groups) = store.commit_stats();
    let delivered = |s: &WebhookService| s.status_json()["delivered"].as_u64().unwrap_or(0);
    while delivered(&service) < total as u64 {
        assert!(started.elapsed() < Duration::from_secs(600), "stuck");
        std::thread::sleep(Duration::from_millis(2));
    }
    let all_in = started.elapsed();
    let late = service.stop(Duration::from_secs(5));
    assert!(late.is_empty());
    let spooled_left = service.status_json()["spool_size"].as_u64().unwrap_or(99);
    assert_eq!(spooled_left, 0);
    drop(service);
    assert!(store.close(Duration::from_secs(5)));
    drop(store);
    println!(
        "webhooks: {total} events ({calls} calls x {per_call}), {emitters} emitting threads, \
         {workers} workers, signed, SQLite spool (WAL, synchronous=FULL, group commit)"
    );
    println!(
        "  emit (committed durably):   {:>8.0} events/s ({:?}; {commits} commits for {groups} \
         writes while emitting: {:.1} per fsync)",
        total as f64 / emitted_in.as_secs_f64(),
        emitted_in,
        groups as f64 / commits.max(1) as f64
    );
    println!(
        "  end to end delivered:       {:>8.0} deliveries/s ({:?})",
        total as f64 / all_in.as_secs_f64(),
        all_in
    );

    // Phase 2: a backlog (receiver was down, module restarted): the spool is
    // full before the service starts; measure draining it.
    let idle = WebhookService::start(&cfg, &[]).expect("start");
    assert!(idle.stop(Duration::from_secs(1)).is_empty());
    let threads: Vec<_> = (0..emitters)
        .map(|t| {
            let s: Arc<WebhookService> = idle.clone();
            std::thread::spawn(move || {
                for i in (t..calls).step_by(emitters) {
                    let call = Uuid::new_v4();
                    for seq in 1..=per_call {
                        let data = json!({"call_uuid": call.to_string(), "i": i, "seq": seq});
                        s.emit(&CallEvent::new(events::HANGUP, call, seq, None, data));
                    }
                }
            })
        })
        .collect();
    for e in threads {
        e.join().expect("emitter");
    }
    drop(idle);
    let started = Instant::now();
    let service = WebhookService::start(&cfg, &[]).expect("restart");
    while delivered(&service) < total as u64 {
        assert!(started.elapsed() < Duration::from_secs(600), "stuck");
        std::thread::sleep(Duration::from_millis(2));
    }
    let drained_in = started.elapsed();
    assert!(service.stop(Duration::from_secs(5)).is_empty());
    println!(
        "  backlog drained from spool:  {:>8.0} deliveries/s ({:?})",
        total as f64 / drained_in.as_secs_f64(),
        drained_in
    );
    drop(rx);
    let _ = std::fs::remove_dir_all(&spool);
}
