//! A queue handed to one thread that lives only while there is work: whoever
//! pushes never waits on what delivery waits on, delivery keeps the order of
//! the pushes, and an idle module keeps no thread for it.
//!
//! Made for the CUSTOM events mirrored into FreeSWITCH: handing one to the
//! switch's subscribers runs their handlers (and waits on their locks), and
//! the thread that emits them is the durable store's writer, which every
//! 202 waits on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

struct State<T> {
    queue: VecDeque<T>,
    thread: Option<JoinHandle<()>>,
    /// Whether the thread is up (it clears this itself as it leaves).
    running: bool,
    closed: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    wake: Condvar,
    dropped: AtomicU64,
}

/// What a [`Courier`] delivers with: runs on the courier's thread.
pub type Deliver<T> = Arc<dyn Fn(T) + Send + Sync>;

/// A bounded queue delivered in order by a thread of its own, started at the
/// first push and gone after `idle` with nothing to do.
pub struct Courier<T: Send + 'static> {
    name: String,
    max: usize,
    idle: Duration,
    deliver: Deliver<T>,
    shared: Arc<Shared<T>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T: Send + 'static> Courier<T> {
    /// A courier whose thread is named `name`, holding at most `max` items
    /// (past it the oldest is dropped and counted).
    pub fn new(name: &str, max: usize, idle: Duration, deliver: Deliver<T>) -> Courier<T> {
        Courier {
            name: name.to_string(),
            max: max.max(1),
            idle,
            deliver,
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    thread: None,
                    running: false,
                    closed: false,
                }),
                wake: Condvar::new(),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Queues `item`; never waits on delivery. `false` once closed (or when
    /// no thread could be started: the item is then dropped and counted).
    pub fn push(&self, item: T) -> bool {
        let mut st = lock(&self.shared.state);
        if st.closed {
            return false;
        }
        if st.queue.len() >= self.max {
            st.queue.pop_front();
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
        st.queue.push_back(item);
        if st.running {
            self.shared.wake.notify_one();
            return true;
        }
        // The last thread has left (or is leaving: it holds no item).
        if let Some(old) = st.thread.take() {
            let _ = old.join();
        }
        let (shared, deliver, idle) = (
            Arc::clone(&self.shared),
            Arc::clone(&self.deliver),
            self.idle,
        );
        match std::thread::Builder::new()
            .name(self.name.clone())
            .spawn(move || run(&shared, &*deliver, idle))
        {
            Ok(h) => {
                st.running = true;
                st.thread = Some(h);
                true
            }
            Err(_) => {
                st.queue.pop_back();
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Items dropped so far (queue full, or no thread).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Whether its thread is up now.
    pub fn running(&self) -> bool {
        lock(&self.shared.state).running
    }

    /// Stops taking items, delivers what is queued until `deadline`, drops
    /// the rest, and joins the thread. `false` when the thread is still in
    /// a delivery at the deadline (it is then left running: its code must
    /// stay loaded).
    pub fn close(&self, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        let mut st = lock(&self.shared.state);
        st.closed = true;
        self.shared.wake.notify_all();
        while st.running && !st.queue.is_empty() {
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                break;
            };
            st = self
                .shared
                .wake
                .wait_timeout(st, left)
                .map_or_else(|e| e.into_inner().0, |(g, _)| g);
        }
        let dropped = st.queue.len() as u64;
        st.queue.clear();
        self.shared.dropped.fetch_add(dropped, Ordering::Relaxed);
        self.shared.wake.notify_all();
        while st.running {
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                return false;
            };
            st = self
                .shared
                .wake
                .wait_timeout(st, left)
                .map_or_else(|e| e.into_inner().0, |(g, _)| g);
        }
        if let Some(h) = st.thread.take() {
            drop(st);
            let _ = h.join();
        }
        true
    }
}

/// The courier's thread: delivers in order; leaves after `idle` with an
/// empty queue, or when closed and empty.
fn run<T>(shared: &Shared<T>, deliver: &(dyn Fn(T) + Send + Sync), idle: Duration) {
    let mut st = lock(&shared.state);
    loop {
        if let Some(item) = st.queue.pop_front() {
            drop(st);
            deliver(item);
            st = lock(&shared.state);
            // `close` waits for the queue to empty.
            shared.wake.notify_all();
            continue;
        }
        if st.closed {
            break;
        }
        let (g, waited) = shared
            .wake
            .wait_timeout(st, idle)
            .unwrap_or_else(|e| e.into_inner());
        st = g;
        if waited.timed_out() && st.queue.is_empty() {
            break;
        }
    }
    st.running = false;
    shared.wake.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn collecting(delay: Duration) -> (Deliver<u32>, mpsc::Receiver<u32>) {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let deliver: Deliver<u32> = Arc::new(move |i| {
            std::thread::sleep(delay);
            let _ = lock(&tx).send(i);
        });
        (deliver, rx)
    }

    #[test]
    fn delivers_in_order_without_making_the_pusher_wait() {
        let (deliver, rx) = collecting(Duration::from_millis(20));
        let c = Courier::new("courier-test", 100, Duration::from_secs(5), deliver);
        let t = Instant::now();
        for i in 0..10 {
            assert!(c.push(i));
        }
        // Ten deliveries take 200 ms; the pushes did not wait for them.
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        let got: Vec<u32> = (0..10)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert!(c.close(Duration::from_secs(1)));
    }

    #[test]
    fn its_thread_leaves_when_idle_and_comes_back_for_more() {
        let (deliver, rx) = collecting(Duration::ZERO);
        let c = Courier::new("courier-test", 100, Duration::from_millis(100), deliver);
        assert!(!c.running());
        c.push(1);
        assert!(c.running());
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 1);
        let until = Instant::now() + Duration::from_secs(5);
        while c.running() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!c.running(), "the thread stayed with nothing to do");
        c.push(2);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 2);
        assert!(c.close(Duration::from_secs(1)));
        assert!(!c.running());
        assert!(!c.push(3), "a closed courier takes nothing");
    }

    #[test]
    fn a_full_queue_drops_its_oldest_and_counts_it() {
        let gate = Arc::new(Mutex::new(()));
        let held = lock(&gate);
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let g = Arc::clone(&gate);
        let deliver: Deliver<u32> = Arc::new(move |i| {
            drop(lock(&g));
            let _ = lock(&tx).send(i);
        });
        let c = Courier::new("courier-test", 3, Duration::from_secs(5), deliver);
        c.push(0);
        // The thread takes 0 and blocks on the gate; 1..=5 queue behind it.
        std::thread::sleep(Duration::from_millis(100));
        for i in 1..=5 {
            c.push(i);
        }
        assert_eq!(c.dropped(), 2);
        drop(held);
        let got: Vec<u32> = (0..4)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        assert_eq!(got, vec![0, 3, 4, 5]);
        assert!(c.close(Duration::from_secs(1)));
    }

    #[test]
    fn close_gives_up_at_its_deadline_on_a_stuck_delivery() {
        let gate = Arc::new(Mutex::new(()));
        let held = lock(&gate);
        let g = Arc::clone(&gate);
        let deliver: Deliver<u32> = Arc::new(move |_| drop(lock(&g)));
        let c = Courier::new("courier-test", 10, Duration::from_secs(5), deliver);
        c.push(0);
        c.push(1);
        std::thread::sleep(Duration::from_millis(50));
        let t = Instant::now();
        assert!(!c.close(Duration::from_millis(200)));
        assert!(t.elapsed() >= Duration::from_millis(200));
        assert_eq!(c.dropped(), 1, "the queued item is dropped at close");
        drop(held);
        let until = Instant::now() + Duration::from_secs(5);
        while c.running() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!c.running());
    }
}
