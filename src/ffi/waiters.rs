//! Wake-ups for the call threads that wait on a leg (its attempt's end,
//! its bridge): the event callback wakes the one thread waiting on that
//! leg, instead of every call thread polling shared maps every 10 ms. Under
//! overload those polls were hundreds of runnable threads, each wake-up
//! queued behind the others, and their contention on the notes' maps made
//! the callback skip notes (see docs/benchmarks.md, issue 20).
//!
//! The callback never waits on a thread of ours: it takes the map's lock
//! for one lookup, and a waiter's flag for one store (neither is held across
//! a wait: [`Condvar::wait_timeout`] releases it). Notify touches no
//! thread-local, so nothing of ours is left behind on FreeSWITCH's thread.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use uuid::Uuid;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct Flag {
    woken: Mutex<bool>,
    cv: Condvar,
}

/// The threads waiting on a leg, by leg (one each).
#[derive(Default)]
pub(crate) struct Waiters(Mutex<HashMap<Uuid, Arc<Flag>>>);

/// A thread's registration as the waiter on one leg; unregisters on drop.
pub(crate) struct Waiter<'a> {
    all: &'a Waiters,
    leg: Uuid,
    flag: Arc<Flag>,
}

impl Waiters {
    /// Registers the calling thread as `leg`'s waiter: a wake-up from now on
    /// is kept until [`Waiter::wait`] takes it.
    pub(crate) fn register(&self, leg: Uuid) -> Waiter<'_> {
        let flag = Arc::new(Flag::default());
        lock(&self.0).insert(leg, Arc::clone(&flag));
        Waiter {
            all: self,
            leg,
            flag,
        }
    }

    /// Wakes `leg`'s waiter, if any (something about the leg was noted).
    pub(crate) fn wake(&self, leg: Uuid) {
        let flag = lock(&self.0).get(&leg).cloned();
        if let Some(f) = flag {
            *lock(&f.woken) = true;
            f.cv.notify_one();
        }
    }
}

impl Waiter<'_> {
    /// Until woken (a wake-up since the last wait counts) or `at_most` passed.
    pub(crate) fn wait(&self, at_most: Duration) {
        let mut woken = lock(&self.flag.woken);
        if !*woken {
            woken = self
                .flag
                .cv
                .wait_timeout(woken, at_most)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        *woken = false;
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut m = lock(&self.all.0);
        if m.get(&self.leg).is_some_and(|f| Arc::ptr_eq(f, &self.flag)) {
            m.remove(&self.leg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_wake_up_is_kept_until_waited_for() {
        let w = Waiters::default();
        let leg = Uuid::from_u128(1);
        let me = w.register(leg);
        w.wake(leg);
        let t = Instant::now();
        me.wait(Duration::from_secs(5));
        assert!(t.elapsed() < Duration::from_secs(1));
        // Taken: the next wait times out.
        let t = Instant::now();
        me.wait(Duration::from_millis(50));
        assert!(t.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn another_thread_wakes_the_waiter_and_drop_unregisters() {
        let w = Arc::new(Waiters::default());
        let leg = Uuid::from_u128(2);
        let me = w.register(leg);
        let other = Arc::clone(&w);
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            other.wake(leg);
        });
        let t = Instant::now();
        me.wait(Duration::from_secs(5));
        assert!(t.elapsed() < Duration::from_secs(1));
        h.join().unwrap();
        drop(me);
        assert!(lock(&w.0).is_empty());
        w.wake(leg); // nobody waits: a no-op
    }
}
