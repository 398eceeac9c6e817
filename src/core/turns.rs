//! Turns in arrival order: each caller sleeps on a condvar of its own, and a
//! change wakes only the one at the front (no herd of waiters on every
//! change). The owner keeps it under its own lock with whatever else it
//! guards: a trunk's line ([`crate::core::trunks`]), the setup pace
//! ([`crate::core::setup_pace`]).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar};

/// Callers waiting their turn, in arrival order.
#[derive(Default)]
pub struct Turns {
    waiting: VecDeque<(u64, Arc<Condvar>)>,
    next: u64,
}

impl Turns {
    /// Joins the back: the caller's ticket and the condvar it sleeps on.
    pub fn join(&mut self) -> (u64, Arc<Condvar>) {
        let me = self.next;
        self.next += 1;
        let wake = Arc::new(Condvar::new());
        self.waiting.push_back((me, Arc::clone(&wake)));
        (me, wake)
    }

    /// Whether `me` is at the front.
    pub fn is_front(&self, me: u64) -> bool {
        self.waiting.front().map(|w| w.0) == Some(me)
    }

    /// Wakes the caller at the front (its turn, or what it waits for changed).
    pub fn wake_front(&self) {
        if let Some((_, wake)) = self.waiting.front() {
            wake.notify_one();
        }
    }

    /// Takes `me` out of the line (its turn taken, or given up), waking
    /// whoever is at the front then.
    pub fn leave(&mut self, me: u64) {
        self.waiting.retain(|(t, _)| *t != me);
        self.wake_front();
    }

    /// Callers waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    #[test]
    fn leaving_wakes_only_the_new_front() {
        let line = Mutex::new(Turns::default());
        let (a, _) = line.lock().unwrap().join();
        let (b, wake_b) = line.lock().unwrap().join();
        let (c, _) = line.lock().unwrap().join();
        assert!(line.lock().unwrap().is_front(a));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let mut g = line.lock().unwrap();
                while !g.is_front(b) {
                    let (next, timed_out) = wake_b.wait_timeout(g, Duration::from_secs(5)).unwrap();
                    assert!(!timed_out.timed_out(), "never woken");
                    g = next;
                }
            });
            std::thread::sleep(Duration::from_millis(20));
            line.lock().unwrap().leave(a);
            waiter.join().unwrap();
        });
        let mut g = line.lock().unwrap();
        assert_eq!(g.len(), 2);
        g.leave(c);
        assert!(g.is_front(b));
        g.leave(b);
        assert!(g.is_empty());
    }
}
