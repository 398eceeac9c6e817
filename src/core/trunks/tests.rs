//! The pacing and the line, with real threads on the real clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::ledger::LocalLedger;
use super::queue::{Ask, Limit, Refusal, TrunkQueue};
use crate::core::gcra::MonotonicClock;

fn ask(cps: Option<f64>, max: Option<u32>, within: Duration) -> Ask<'static> {
    Ask {
        trunk: "t",
        cps,
        max_channels: max,
        leg: Uuid::new_v4(),
        within,
    }
}

fn none() -> Vec<Uuid> {
    Vec::new()
}

/// `queue.acquire` told nothing while it waits, doing nothing on drop.
fn take(
    queue: &Arc<TrunkQueue>,
    ledger: &LocalLedger,
    a: &Ask,
    on_switch: &dyn Fn() -> Vec<Uuid>,
    gone: &dyn Fn() -> bool,
) -> Result<super::Permit, Refusal> {
    queue.acquire(a, ledger, on_switch, gone, &mut || {}, Box::new(|| {}))
}

#[test]
fn no_second_holds_more_than_cps_calls_across_threads() {
    let ledger = Arc::new(LocalLedger::new(Arc::new(MonotonicClock::default())));
    let queue = Arc::new(TrunkQueue::default());
    let granted = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (ledger, queue, granted) = (ledger.clone(), queue.clone(), granted.clone());
            std::thread::spawn(move || {
                for _ in 0..4 {
                    let a = ask(Some(10.0), None, Duration::from_secs(10));
                    let p = take(&queue, &ledger, &a, &none, &|| false);
                    granted.lock().unwrap().push(p.expect("a slot").started());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut at = granted.lock().unwrap().clone();
    at.sort();
    assert_eq!(at.len(), 32);
    // 32 calls at 10/s: about 3.1 s, never 11 within one second.
    for w in at.windows(11) {
        assert!(
            w[10] - w[0] >= Duration::from_secs(1),
            "11 calls within {:?}",
            w[10] - w[0]
        );
    }
    for w in at.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(95),
            "a burst: {:?}",
            w[1] - w[0]
        );
    }
}

#[test]
fn the_line_is_first_come_first_served_and_gives_up_at_its_timeout() {
    let ledger = Arc::new(LocalLedger::new(Arc::new(MonotonicClock::default())));
    let queue = Arc::new(TrunkQueue::default());
    // One channel, taken.
    let first = take(
        &queue,
        &ledger,
        &ask(None, Some(1), Duration::ZERO),
        &none,
        &|| false,
    )
    .unwrap();
    // Nobody else gets it at once.
    let r = take(
        &queue,
        &ledger,
        &ask(None, Some(1), Duration::ZERO),
        &none,
        &|| false,
    );
    assert_eq!(r.err(), Some(Refusal::Limit(Limit::Channels)));
    let order = Arc::new(Mutex::new(Vec::new()));
    let waited = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for i in 0..4 {
        let (ledger, q, order, waited) =
            (ledger.clone(), queue.clone(), order.clone(), waited.clone());
        threads.push(std::thread::spawn(move || {
            let a = ask(None, Some(1), Duration::from_secs(5));
            let mut told = false;
            let p = q.acquire(
                &a,
                ledger.as_ref(),
                &none,
                &|| false,
                &mut || told = true,
                Box::new(|| {}),
            );
            order.lock().unwrap().push(i);
            waited.lock().unwrap().push(told);
            std::thread::sleep(Duration::from_millis(50));
            drop(p);
        }));
        // They come in this order.
        while queue.depth() < i + 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(queue.depth(), 4);
    drop(first);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    assert!(
        waited.lock().unwrap().iter().all(|w| *w),
        "each was told it waits"
    );
    // A line that does not move: refused at its timeout, not before.
    let _held = take(
        &queue,
        &ledger,
        &ask(None, Some(1), Duration::ZERO),
        &none,
        &|| false,
    )
    .unwrap();
    let t0 = Instant::now();
    let r = take(
        &queue,
        &ledger,
        &ask(None, Some(1), Duration::from_millis(300)),
        &none,
        &|| false,
    );
    assert_eq!(r.err(), Some(Refusal::Limit(Limit::Channels)));
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(queue.depth(), 0, "the timed-out caller left the line");
}

#[test]
fn channels_count_the_switchs_own_and_a_call_that_ends_leaves_the_line() {
    let ledger = LocalLedger::new(Arc::new(MonotonicClock::default()));
    let queue = Arc::new(TrunkQueue::default());
    // Two channels of others on the trunk, max 3: one more fits.
    let others = [Uuid::new_v4(), Uuid::new_v4()];
    let on_switch = || others.to_vec();
    let p = take(
        &queue,
        &ledger,
        &ask(None, Some(3), Duration::ZERO),
        &on_switch,
        &|| false,
    );
    assert!(p.is_ok());
    let r = take(
        &queue,
        &ledger,
        &ask(None, Some(3), Duration::ZERO),
        &on_switch,
        &|| false,
    );
    assert_eq!(r.err(), Some(Refusal::Limit(Limit::Channels)));
    // The dial's own channel, once the switch shows it, is not counted twice.
    assert_eq!(queue.mine(&others), 3);
    // A caller whose call ends while it waits leaves at once.
    let gone = AtomicBool::new(false);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            gone.store(true, Ordering::SeqCst);
        });
        let r = take(
            &queue,
            &ledger,
            &ask(None, Some(3), Duration::from_secs(10)),
            &on_switch,
            &|| gone.load(Ordering::SeqCst),
        );
        assert_eq!(r.err(), Some(Refusal::Gone));
    });
    assert!(t0.elapsed() < Duration::from_secs(2));
    // A slot that comes after the caller's wait is refused at once, and
    // the channel it had claimed is given back.
    drop(p);
    let q = Arc::new(TrunkQueue::default());
    let a = ask(Some(1.0), Some(1), Duration::ZERO);
    let _p = take(&q, &ledger, &a, &none, &|| false).unwrap();
    drop(_p);
    let t0 = Instant::now();
    let r = take(
        &q,
        &ledger,
        &ask(Some(1.0), Some(1), Duration::from_millis(200)),
        &none,
        &|| false,
    );
    assert_eq!(r.err(), Some(Refusal::Limit(Limit::Cps)));
    assert!(t0.elapsed() < Duration::from_millis(150));
}
