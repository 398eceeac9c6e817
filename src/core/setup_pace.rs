//! The pace at which calls start ringing their agents, adapted to how
//! quickly the switch sets calls up: overload met by pacing, not slowness.
//!
//! A switch on saturated cores takes longer over every step of every call
//! it sets up at once; past a point agents hang up before their customer
//! answers, and fewer calls are bridged than with fewer at once (measured:
//! the overload bench, docs/benchmarks.md). So calls start in the order
//! their threads reach the line, unpaced while the switch sets calls up
//! promptly. Each [`STEP`], the setup
//! delays seen (smoothed) decide:
//! - past [`CONGESTED`]: calls start at most at 0.95 × the setups the switch
//!   completed (the last [`WINDOW`]), never below half the rate calls ask
//!   to start at, nor below [`MIN_RATE`];
//! - below it: unpaced again once nobody waits, else raised (× 1.25 + 1/s,
//!   and at least 1.2 × the rate calls ask at) until the line is gone.
//!
//! The delay is the switch's own, never a person's: from the agent's channel
//! being created to the phone's 180 or 183 (when it sends one: a phone that
//! answers with neither may have rung a person), or from the
//! switch marking it answered to the originate returning to us, whichever
//! is longer. Measured on 2 cores: 20 ms (p50) and 65 ms (p99) at 60
//! calls/s, 0.34 s and 2.4 s at 85/s.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::core::turns::Turns;

/// A setup delay past this means the switch is falling behind.
pub const CONGESTED: Duration = Duration::from_millis(500);
/// The pace never drops below this many calls a second.
pub const MIN_RATE: f64 = 1.0;
/// The pace is never raised above this many calls a second.
pub const MAX_RATE: f64 = 1000.0;
/// Changes of the pace are at least this far apart.
pub const STEP: Duration = Duration::from_millis(500);
/// Weight of the newest delay in the smoothed one.
const SMOOTHING: f64 = 0.2;
/// How far back setups done and calls asking to start are counted.
pub const WINDOW: Duration = Duration::from_secs(2);
/// How often a caller waiting behind others looks whether its call is gone
/// (it is woken when it reaches the front): an overloaded switch may have
/// hundreds waiting, so not often.
const GONE_EVERY: Duration = Duration::from_secs(1);

struct State {
    /// Calls a second; `None`: unpaced.
    rate: Option<f64>,
    next_slot: Instant,
    last_change: Option<Instant>,
    /// The setup delays seen, smoothed (seconds).
    delay: Option<f64>,
    /// The callers waiting, in the order they came.
    turns: Turns,
    /// When the last setups were observed done (within [`WINDOW`]).
    done: VecDeque<Instant>,
    /// When the last calls asked to start (within [`WINDOW`]).
    asked: VecDeque<Instant>,
}

/// Where calls wait for their turn to start.
pub struct SetupPace {
    state: Mutex<State>,
    step: Duration,
}

impl Default for SetupPace {
    fn default() -> Self {
        SetupPace::with_step(STEP)
    }
}

impl SetupPace {
    /// A pace changed at most every `step` ([`STEP`] but in tests).
    pub fn with_step(step: Duration) -> Self {
        SetupPace {
            step,
            state: Mutex::new(State {
                rate: None,
                next_slot: Instant::now(),
                last_change: None,
                delay: None,
                turns: Turns::default(),
                done: VecDeque::new(),
                asked: VecDeque::new(),
            }),
        }
    }
}

/// Drops the instants in `q` older than [`WINDOW`].
fn prune(q: &mut VecDeque<Instant>, now: Instant) {
    while q.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
        q.pop_front();
    }
}

/// Adds `now` to `q`, which keeps only the last [`WINDOW`].
fn note(q: &mut VecDeque<Instant>, now: Instant) {
    prune(q, now);
    q.push_back(now);
}

/// The rate of the instants in `q` over the last [`WINDOW`].
fn per_second(q: &mut VecDeque<Instant>, now: Instant) -> f64 {
    prune(q, now);
    q.len() as f64 / WINDOW.as_secs_f64()
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SetupPace {
    /// Waits for this call's turn to start, in the order calls reach the
    /// line, at the pace; `false` when `gone` says the call ended meanwhile
    /// (looked at within [`GONE_EVERY`]).
    pub fn enter(&self, gone: &dyn Fn() -> bool) -> bool {
        let mut st = lock(&self.state);
        let now = Instant::now();
        note(&mut st.asked, now);
        let (me, wake) = st.turns.join();
        loop {
            if gone() {
                st.turns.leave(me);
                return false;
            }
            let now = Instant::now();
            let mut nap = GONE_EVERY;
            if st.turns.is_front(me) {
                let due = match st.rate {
                    None => now,
                    Some(_) => st.next_slot.max(now),
                };
                if due <= now {
                    if let Some(rate) = st.rate {
                        st.next_slot = now.max(st.next_slot) + Duration::from_secs_f64(1.0 / rate);
                    }
                    // The next in line now waits for its own slot.
                    st.turns.leave(me);
                    return true;
                }
                nap = nap.min(due - now);
            }
            st = wake
                .wait_timeout(st, nap)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Takes in how long the switch took over one call's setup.
    pub fn observe(&self, delay: Duration) {
        let mut st = lock(&self.state);
        let now = Instant::now();
        note(&mut st.done, now);
        let d = delay.as_secs_f64();
        let smoothed = st.delay.map_or(d, |s| s + SMOOTHING * (d - s));
        st.delay = Some(smoothed);
        if st.last_change.is_some_and(|t| now - t < self.step) {
            return;
        }
        if smoothed > CONGESTED.as_secs_f64() {
            // Paced a little below what the switch gets through now.
            let through = per_second(&mut st.done, now);
            let asked = per_second(&mut st.asked, now);
            let rate = (through * 0.95).max(asked * 0.5).max(MIN_RATE);
            if st.rate.is_none_or(|r| r > rate) {
                st.rate = Some(rate);
                st.next_slot = st.next_slot.max(now + Duration::from_secs_f64(1.0 / rate));
            }
            st.last_change = Some(now);
        } else if let Some(rate) = st.rate {
            // Prompt again: lifted once nobody waits (a line let in at once
            // is the burst the pace is there to prevent), else raised.
            st.rate = if st.turns.is_empty() {
                None
            } else {
                let asked = per_second(&mut st.asked, now);
                Some((rate * 1.25 + 1.0).max(asked * 1.2).min(MAX_RATE))
            };
            st.last_change = Some(now);
            st.turns.wake_front();
        }
    }

    /// The pace now (calls a second), `None` when unpaced.
    pub fn rate(&self) -> Option<f64> {
        lock(&self.state).rate
    }

    /// Calls waiting for their turn.
    pub fn waiting(&self) -> usize {
        lock(&self.state).turns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn unpaced_while_the_switch_answers_promptly() {
        let p = SetupPace::default();
        let t = Instant::now();
        for _ in 0..200 {
            assert!(p.enter(&|| false));
            p.observe(Duration::from_millis(40));
        }
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(p.rate(), None);
    }

    #[test]
    fn a_slow_setup_paces_calls_in_arrival_order() {
        let p = SetupPace::default();
        // 20 calls asked to start within the window (10 a second), none
        // of their setups seen done yet: the pace is half what is asked.
        for _ in 0..20 {
            assert!(p.enter(&|| false));
        }
        p.observe(Duration::from_secs(2));
        let rate = p.rate().expect("paced");
        assert!((rate - 5.0).abs() < 0.01, "{rate}");
        // A second slow one within STEP: no second change.
        p.observe(Duration::from_secs(2));
        assert_eq!(p.rate(), Some(rate));
        // Starts now come 1/5 s apart, in arrival order, across threads.
        let p = Arc::new(p);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for i in 0..6 {
            let (p, order) = (Arc::clone(&p), Arc::clone(&order));
            threads.push(std::thread::spawn(move || {
                assert!(p.enter(&|| false));
                order.lock().unwrap().push((i, Instant::now()));
            }));
            std::thread::sleep(Duration::from_millis(5));
        }
        for t in threads {
            t.join().unwrap();
        }
        let order = order.lock().unwrap();
        let ids: Vec<i32> = order.iter().map(|o| o.0).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4, 5], "arrival order");
        for w in order.windows(2) {
            let gap = w[1].1 - w[0].1;
            assert!(gap >= Duration::from_millis(190), "{gap:?}");
        }
    }

    #[test]
    fn the_pace_follows_the_setups_the_switch_completes() {
        let p = SetupPace::with_step(Duration::ZERO);
        // 40 prompt setups, then a slow one, all within the window: the
        // switch completed 20.5 a second; the pace is 0.95 × that.
        for _ in 0..40 {
            p.observe(Duration::from_millis(10));
        }
        assert_eq!(p.rate(), None);
        p.observe(Duration::from_secs(5));
        let rate = p.rate().expect("paced");
        assert!((rate - 0.95 * 20.5).abs() < 0.01, "{rate}");
    }

    #[test]
    fn prompt_setups_lift_the_pace_once_nobody_waits() {
        let p = SetupPace::with_step(Duration::ZERO);
        assert!(p.enter(&|| false));
        p.observe(Duration::from_secs(1));
        assert_eq!(p.rate(), Some(MIN_RATE));
        // The smoothed delay falls below CONGESTED after a few prompt ones.
        let mut n = 0;
        while p.rate().is_some() {
            p.observe(Duration::from_millis(10));
            n += 1;
            assert!(n < 20, "never lifted");
        }
        assert!(n >= 2, "lifted after {n}");
    }

    #[test]
    fn a_waiting_call_gets_its_turn_while_the_pace_rises() {
        let p = Arc::new(SetupPace::with_step(Duration::ZERO));
        assert!(p.enter(&|| false));
        p.observe(Duration::from_secs(1));
        let waiter = {
            let p = Arc::clone(&p);
            std::thread::spawn(move || p.enter(&|| false))
        };
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(p.waiting(), 1);
        let before = p.rate().unwrap();
        for _ in 0..10 {
            p.observe(Duration::from_millis(10));
        }
        // Raised, not lifted: someone waits.
        assert!(p.rate().unwrap() > before);
        assert!(waiter.join().unwrap());
        assert_eq!(p.waiting(), 0);
    }

    #[test]
    fn the_counts_keep_only_the_window() {
        // Every call notes its start and its setup: what is older than
        // WINDOW goes at each note, so a pace that never cuts keeps no more.
        let now = Instant::now();
        let mut q: VecDeque<Instant> = (0..1000)
            .map(|i| now - WINDOW - Duration::from_millis(1000 - i))
            .collect();
        note(&mut q, now);
        assert_eq!(q.len(), 1);
        assert_eq!(per_second(&mut q, now), 0.5);
    }

    #[test]
    fn a_call_that_ends_while_it_waits_leaves_the_line() {
        let p = Arc::new(SetupPace::default());
        assert!(p.enter(&|| false));
        p.observe(Duration::from_secs(1));
        assert_eq!(p.rate(), Some(MIN_RATE));
        // The next slot is a second away: this one waits, then its call ends.
        let gone = Arc::new(AtomicBool::new(false));
        let (p2, g2) = (Arc::clone(&p), Arc::clone(&gone));
        let waiter = std::thread::spawn(move || p2.enter(&|| g2.load(Ordering::SeqCst)));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(p.waiting(), 1);
        gone.store(true, Ordering::SeqCst);
        assert!(!waiter.join().unwrap());
        assert_eq!(p.waiting(), 0);
    }
}
