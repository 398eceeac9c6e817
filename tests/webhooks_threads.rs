//! Alone in its binary, so the only delivery threads around are this
//! service's: none run while nothing is to deliver; a burst starts as many
//! as it keeps busy (never more than `workers`); events one at a time need
//! one; threads left without work end after `worker-idle`; `stop` joins
//! every one. Real threads, a real loopback receiver, a real store.

mod webhooks_common;

use std::time::Duration;

use mod_zorio_c2c::core::events::{self, CallEvent, EventSink};
use mod_zorio_c2c::core::webhooks::WebhookService;
use serde_json::json;
use uuid::Uuid;
use webhooks_common::*;

/// Names of this process's threads starting with `prefix`.
fn threads(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// Delivery threads (`c2c-webhook-<n>`), not the dispatcher (`c2c-webhooks`).
fn senders() -> Vec<String> {
    threads("c2c-webhook-")
}

fn event(call: Uuid) -> CallEvent {
    CallEvent::new(
        events::ANSWERED,
        call,
        1,
        Some("crm".into()),
        json!({"call_uuid": call.to_string()}),
    )
}

fn status(s: &WebhookService, field: &str) -> u64 {
    s.status_json()[field].as_u64().unwrap_or(u64::MAX)
}

#[test]
fn delivery_threads_start_with_work_and_end_when_idle() {
    // Each request takes 150 ms to answer: a burst keeps every thread busy.
    let rx = Receiver::start(0, |_, _| {
        std::thread::sleep(Duration::from_millis(150));
        Reply::Status(200)
    });
    let spool = temp_spool("threads");
    let mut settings = settings(Some(rx.url()), &spool);
    settings.workers = 4;
    settings.worker_idle = Duration::from_millis(400);
    let (log, _) = captured_log();
    let svc = WebhookService::start_with_log(&settings, &[], log).unwrap();

    // Idle: the dispatcher only.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(threads("c2c-webhooks"), ["c2c-webhooks"]);
    assert_eq!(
        senders(),
        Vec::<String>::new(),
        "no work, no delivery thread"
    );
    assert_eq!(status(&svc, "threads"), 0);

    // One event at a time: one thread does it all.
    for i in 0..3 {
        svc.emit(&event(Uuid::new_v4()));
        rx.wait_delivered(i + 1, Duration::from_secs(5));
        wait_until(Duration::from_secs(2), "the attempt's result", || {
            status(&svc, "in_flight") == 0
        });
    }
    assert_eq!(senders(), ["c2c-webhook-0"]);
    assert_eq!(status(&svc, "threads"), 1);

    // Idle again: it ends after worker-idle.
    wait_until(Duration::from_secs(3), "the idle thread to end", || {
        senders().is_empty()
    });
    assert_eq!(status(&svc, "threads"), 0);

    // A burst of 12 calls: as many threads as allowed, no more.
    for _ in 0..12 {
        svc.emit(&event(Uuid::new_v4()));
    }
    let mut most = 0;
    while rx.delivered().len() < 3 + 12 {
        let n = senders().len();
        assert!(
            n <= 4,
            "more delivery threads than workers: {:?}",
            senders()
        );
        most = most.max(n);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(most, 4, "a burst uses every worker allowed");
    // 12 requests of 150 ms on 4 threads: about 3 rounds, not 12.
    let reqs = rx.requests();
    let burst = &reqs[3..];
    let span = burst.last().unwrap().at - burst.first().unwrap().at;
    assert!(
        span < Duration::from_millis(1000),
        "one at a time would take 1.65 s: {span:?}"
    );

    wait_until(Duration::from_secs(3), "every idle thread to end", || {
        senders().is_empty()
    });
    assert_eq!(status(&svc, "threads"), 0);
    assert_eq!(status(&svc, "delivered"), 15);

    // Work again after they ended: threads start again; stop joins them all.
    for _ in 0..6 {
        svc.emit(&event(Uuid::new_v4()));
    }
    wait_until(Duration::from_secs(2), "threads for the new work", || {
        !senders().is_empty()
    });
    assert!(svc.stop(Duration::from_secs(4)).is_empty());
    assert_eq!(threads("c2c-webhook"), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&spool);
}
