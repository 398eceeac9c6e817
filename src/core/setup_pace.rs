//! How many calls the switch is given to set up at once, adapted to how
//! quickly it sets them up: overload met by pacing, not slowness.
//!
//! A switch on saturated cores takes longer over every step of every call
//! it sets up at once; past a point agents hang up before their customer
//! answers, and fewer calls are bridged than with fewer at once (measured:
//! the overload bench, docs/benchmarks.md). So calls take their turn in the
//! order their threads reach the line, and a call is "in setup" from its
//! turn until its agent's leg is answered or fails. No limit while the
//! switch sets calls up promptly. Then a window, looked at once [`STEP`]
//! has passed and [`MIN_SEEN`] setups were seen since the last look, on the
//! setup delays seen (smoothed; only those of calls that started after the
//! last cut, so a cut is not cut again for calls it did not let in):
//! - past [`CONGESTED`] beyond the phones' own delay ([`Floor`]): cut to
//!   [`CUT`] × the calls in setup (never below [`MIN_WINDOW`]);
//! - below it: the limit is lifted once nobody waits, else the window grows
//!   by a tenth (at least one call). It is lifted too when nothing is in
//!   setup and nobody waits: the next burst meets the switch as it is then.
//!
//! A window, not a rate: as the switch gets through setups faster, the
//! freed places let the next calls in at once (the pace follows the switch
//! without being told), and it never holds more than the window in setup.
//! The agent's leg, not the whole call: the originate of the agent returns
//! to us at once, while the customer's answer reaches us as an event, and
//! those run seconds late on an overloaded switch (a count waiting on them
//! reached 557 calls "in setup" at 90/s where the agents' alone were 20 to
//! 60). Each customer is dialled when its agent answers, so a window on
//! agents paces customers too.
//!
//! The delay is the switch's own, never a person's: from the agent's channel
//! being created to the phone's 180 or 183 (when it sends one: a phone that
//! answers with neither may have rung a person), or from the
//! switch marking it answered to the originate returning to us, whichever
//! is longer. Measured on 2 cores: 20 ms (p50) and 65 ms (p99) at 60
//! calls/s, 0.34 s and 2.4 s at 85/s. A phone's own share (its round trip
//! to the 180) is the least delay of the last ten minutes, and not counted.
//!
//! And the first in line, once the window has room, waits for the switch's
//! event dispatch when its event queue fills ([`Flow`]): that queue, not
//! the setups, is what stalls a switch on saturated cores, while its agents'
//! setups stay prompt.

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::core::event_flow::Flow;
use crate::core::log::{LogHook, LogLevel};
use crate::core::turns::Turns;
use crate::switch::EventQueue;

/// A setup delay (smoothed) this far past the phones' own ([`Floor`])
/// means the switch is falling behind.
pub const CONGESTED: Duration = Duration::from_millis(250);
/// How often the first caller held by the flow looks again.
const FLOW_EVERY: Duration = Duration::from_millis(20);
/// A decision needs this many setups seen (fewer can't overload a switch,
/// and one slow phone says nothing of it).
pub const MIN_SEEN: u32 = 8;
/// The window never drops below this many calls in setup.
pub const MIN_WINDOW: f64 = 4.0;
/// A cut leaves this share of the calls in setup.
pub const CUT: f64 = 0.8;
/// Weight of the newest delay in the smoothed one.
const SMOOTHING: f64 = 0.2;
/// The window is looked at no more often than this.
pub const STEP: Duration = Duration::from_millis(500);
/// How often a caller waiting behind others looks whether its call is gone
/// (it is woken when it reaches the front): an overloaded switch may have
/// hundreds waiting, so not often.
const GONE_EVERY: Duration = Duration::from_secs(1);

struct State {
    /// Calls allowed in setup at once; `None`: no limit.
    window: Option<f64>,
    /// Calls in setup now.
    in_flight: usize,
    /// Counts the cuts: a call that started before the last one does not
    /// speak for the window now.
    epoch: u64,
    /// When the window was last looked at.
    since: Instant,
    /// Setups seen since then.
    seen: u32,
    /// The setup delays seen since the last cut, smoothed (seconds).
    delay: Option<f64>,
    /// New calls as the switch's event dispatch lets them.
    flow: Flow,
    floor: Floor,
    /// The callers waiting, in the order they came.
    turns: Turns,
}

/// The least setup delay seen in the last ten minutes: what the phones
/// themselves take (a remote phone's 180 takes its round trip), not the
/// switch, and not counted as its delay.
#[derive(Default)]
struct Floor {
    /// Per minute: when it began, and its least delay.
    minutes: std::collections::VecDeque<(Instant, f64)>,
}

impl Floor {
    const MINUTE: Duration = Duration::from_secs(60);
    const KEPT: usize = 10;

    fn note(&mut self, now: Instant, delay: f64) {
        match self.minutes.back_mut() {
            Some((start, least)) if now - *start < Self::MINUTE => *least = least.min(delay),
            _ => {
                self.minutes.push_back((now, delay));
                if self.minutes.len() > Self::KEPT {
                    self.minutes.pop_front();
                }
            }
        }
    }

    fn get(&self) -> f64 {
        self.minutes
            .iter()
            .map(|m| m.1)
            .reduce(f64::min)
            .unwrap_or(0.0)
    }
}

/// Where calls wait for their turn to start.
pub struct SetupPace {
    state: Mutex<State>,
    step: Duration,
    /// Where a window set or lifted is told to the operator.
    log: OnceLock<LogHook>,
}

/// A call's place in setup, given back when dropped.
pub struct Slot<'a> {
    pace: &'a SetupPace,
    epoch: u64,
}

impl Default for SetupPace {
    fn default() -> Self {
        SetupPace::with_step(STEP)
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SetupPace {
    /// A window looked at no more often than every `step` ([`STEP`] but in
    /// tests).
    pub fn with_step(step: Duration) -> Self {
        SetupPace {
            step,
            log: OnceLock::new(),
            state: Mutex::new(State {
                window: None,
                in_flight: 0,
                epoch: 0,
                since: Instant::now(),
                seen: 0,
                delay: None,
                flow: Flow::default(),
                floor: Floor::default(),
                turns: Turns::default(),
            }),
        }
    }

    /// Tells `log` when a window is set (the switch falling behind) or
    /// lifted; the first hook given stays.
    pub fn set_log(&self, log: LogHook) {
        let _ = self.log.set(log);
    }

    fn tell(&self, level: LogLevel, text: &str) {
        if let Some(log) = self.log.get() {
            log(level, None, text);
        }
    }

    /// Waits for this call's turn to start, in the order calls reach the
    /// line, while the window is full or the switch's event queue (read by
    /// `queue`) paces new calls; `None` when `gone` says the call ended
    /// meanwhile (looked at within [`GONE_EVERY`]).
    pub fn enter(
        &self,
        gone: &dyn Fn() -> bool,
        queue: &dyn Fn() -> Option<EventQueue>,
    ) -> Option<Slot<'_>> {
        let mut st = lock(&self.state);
        let (me, wake) = st.turns.join();
        loop {
            if gone() {
                st.turns.leave(me);
                return None;
            }
            let room = st.window.is_none_or(|w| (st.in_flight as f64) < w);
            // First in line with room, but the switch's events say not yet.
            let mut held = false;
            if room && st.turns.is_front(me) {
                let now = Instant::now();
                if let Some(told) = queue().and_then(|q| st.flow.read(q, now)) {
                    let level = if st.flow.paced() {
                        LogLevel::Warning
                    } else {
                        LogLevel::Info
                    };
                    drop(st);
                    self.tell(level, &told);
                    st = lock(&self.state);
                    continue;
                }
                if st.flow.take(now) {
                    st.in_flight += 1;
                    // The next in line now looks for its own place.
                    st.turns.leave(me);
                    return Some(Slot {
                        pace: self,
                        epoch: st.epoch,
                    });
                }
                held = true;
            }
            let every = if held { FLOW_EVERY } else { GONE_EVERY };
            st = wake
                .wait_timeout(st, every)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Takes in how long the switch took over the setup of a call that
    /// started in `epoch`.
    fn observe(&self, epoch: u64, delay: Duration) {
        let mut st = lock(&self.state);
        let (now, d) = (Instant::now(), delay.as_secs_f64());
        st.floor.note(now, d);
        if epoch < st.epoch {
            return;
        }
        let smoothed = st.delay.map_or(d, |s| s + SMOOTHING * (d - s));
        st.delay = Some(smoothed);
        st.seen += 1;
        if now - st.since < self.step || st.seen < MIN_SEEN {
            return;
        }
        (st.since, st.seen) = (now, 0);
        let floor = st.floor.get();
        let slow = smoothed > CONGESTED.as_secs_f64() + floor;
        if slow {
            let in_setup = st.in_flight as f64;
            let was = st.window;
            let base = was.map_or(in_setup, |w| w.min(in_setup));
            let window = (base * CUT).max(MIN_WINDOW);
            st.window = Some(window);
            st.epoch += 1;
            st.delay = None;
            drop(st);
            if was.is_none() {
                let why =
                    format!("agents' setup {smoothed:.2} s, {floor:.2} s of it the phones' own");
                self.tell(
                    LogLevel::Warning,
                    &format!(
                        "setup pace: the switch is falling behind ({why}): {} calls in setup \
                         at once, the others wait their turn before their agent is rung",
                        window as usize
                    ),
                );
            }
        } else if let Some(w) = st.window {
            // Prompt again: lifted once nobody waits (a line let in at once
            // is the burst the window is there to prevent), else grown.
            st.window = if st.turns.is_empty() {
                None
            } else {
                Some(w + (w * 0.1).max(1.0))
            };
            st.turns.wake_front();
            if st.window.is_none() {
                drop(st);
                self.lifted("the switch sets calls up promptly again");
            }
        }
    }

    /// Whether the switch is overloaded now: a window is set, or the pace
    /// watches the switch's event queue (from a tenth full with the calls
    /// to come; calls may still go in as they come up to half full).
    pub fn holding(&self) -> bool {
        let st = lock(&self.state);
        st.window.is_some() || st.flow.paced()
    }

    fn lifted(&self, why: &str) {
        self.tell(LogLevel::Info, &format!("setup pace: {why}: no limit"));
    }

    fn release(&self) {
        let mut st = lock(&self.state);
        st.in_flight = st.in_flight.saturating_sub(1);
        st.turns.wake_front();
        if st.in_flight == 0 && st.turns.is_empty() && st.window.is_some() {
            // Nothing in setup, nobody waiting: the next calls find the
            // switch as it is then, with no limit from a burst long gone.
            st.window = None;
            drop(st);
            self.lifted("nothing in setup and nobody waiting");
        }
    }

    /// Calls allowed in setup at once, `None` when there is no limit.
    pub fn window(&self) -> Option<usize> {
        lock(&self.state).window.map(|w| w as usize)
    }

    /// Calls in setup now.
    pub fn in_setup(&self) -> usize {
        lock(&self.state).in_flight
    }

    /// Calls waiting for their turn.
    pub fn waiting(&self) -> usize {
        lock(&self.state).turns.len()
    }
}

impl Slot<'_> {
    /// Takes in how long the switch took over this call's agent leg.
    pub fn observe(&self, delay: Duration) {
        self.pace.observe(self.epoch, delay);
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.pace.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// A pace that decides on every [`MIN_SEEN`] setups, having seen the
    /// switch (and its phones) set calls up in 10 ms.
    fn pace() -> SetupPace {
        let p = SetupPace::with_step(Duration::ZERO);
        report(
            &p.enter(&|| false, &|| None).unwrap(),
            Duration::from_millis(10),
        );
        p
    }

    /// `slot`'s call reports `delay`, [`MIN_SEEN`] times: one decision.
    fn report(slot: &Slot<'_>, delay: Duration) {
        for _ in 0..MIN_SEEN {
            slot.observe(delay);
        }
    }

    fn hold(p: &SetupPace, n: usize) -> Vec<Slot<'_>> {
        (0..n)
            .map(|_| p.enter(&|| false, &|| None).expect("a place"))
            .collect()
    }

    /// `n` calls in setup, one of which reports a slow setup: the window is
    /// cut (to 0.8 × `n`, at least 4).
    fn cut(p: &SetupPace, n: usize) -> Vec<Slot<'_>> {
        let held = hold(p, n);
        report(&held[0], Duration::from_secs(1));
        held
    }

    /// Starts a thread that takes a place and keeps it (as a call in setup
    /// would), noting its number in `order` once it has one.
    fn caller(
        p: &Arc<SetupPace>,
        order: &Arc<Mutex<Vec<i32>>>,
        i: i32,
    ) -> std::thread::JoinHandle<()> {
        let (p, order) = (Arc::clone(p), Arc::clone(order));
        std::thread::spawn(move || {
            let slot = p.enter(&|| false, &|| None).expect("a place");
            order.lock().unwrap().push(i);
            // Still in setup when the thread ends.
            std::mem::forget(slot);
        })
    }

    fn wait_for(what: impl Fn() -> bool) {
        let t = Instant::now();
        while !what() {
            assert!(t.elapsed() < Duration::from_secs(5), "never happened");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn no_limit_while_the_switch_answers_promptly() {
        let p = pace();
        let held = hold(&p, 200);
        for s in &held {
            s.observe(Duration::from_millis(40));
        }
        assert_eq!(p.window(), None);
        assert_eq!(p.in_setup(), 200);
        drop(held);
        assert_eq!(p.in_setup(), 0);
    }

    #[test]
    fn a_decision_needs_enough_setups() {
        let p = pace();
        let held = hold(&p, 20);
        for _ in 1..MIN_SEEN {
            held[0].observe(Duration::from_secs(2));
        }
        assert_eq!(p.window(), None, "too few to say");
        held[0].observe(Duration::from_secs(2));
        assert_eq!(p.window(), Some(16));
    }

    #[test]
    fn phones_that_are_slow_themselves_are_not_the_switch_falling_behind() {
        // Remote phones: the least delay of the last minutes is 0.3 s.
        let p = SetupPace::with_step(Duration::ZERO);
        let held = hold(&p, 20);
        report(&held[0], Duration::from_millis(300));
        report(&held[0], Duration::from_millis(500));
        assert_eq!(p.window(), None, "0.2 s beyond the phones' own");
        report(&held[0], Duration::from_millis(600));
        assert_eq!(p.window(), Some(16), "0.3 s beyond");
    }

    #[test]
    fn a_slow_setup_cuts_the_window_and_calls_wait_for_a_place_in_order() {
        let p = Arc::new(pace());
        let mut held = cut(&p, 20);
        assert_eq!(p.window(), Some(16), "0.8 × the 20 in setup");
        // Those 20 started before the cut: their delays do not cut again.
        report(&held[1], Duration::from_secs(3));
        assert_eq!(p.window(), Some(16));
        // Three calls come, one after the other, while 20 are in setup.
        let order = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..3)
            .map(|i| {
                let t = caller(&p, &order, i);
                wait_for(|| p.waiting() == i as usize + 1);
                t
            })
            .collect();
        // 16 in setup: the window is full, nobody goes.
        held.truncate(16);
        std::thread::sleep(Duration::from_millis(50));
        assert!(order.lock().unwrap().is_empty());
        // Each place given back lets the next one in, in arrival order.
        held.pop();
        wait_for(|| order.lock().unwrap().len() == 1);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(order.lock().unwrap().len(), 1, "one place, one call");
        // One place at a time: two freed at once let two callers in, in
        // order, but they may note it in either order.
        held.pop();
        wait_for(|| order.lock().unwrap().len() == 2);
        held.pop();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
        assert_eq!(p.in_setup(), 16);
    }

    #[test]
    fn a_cut_never_goes_below_the_floor() {
        let p = pace();
        let _held = cut(&p, 2);
        assert_eq!(p.window(), Some(MIN_WINDOW as usize));
    }

    #[test]
    fn a_second_cut_waits_for_calls_the_first_let_in() {
        let p = pace();
        let mut held = cut(&p, 50);
        assert_eq!(p.window(), Some(40));
        held.truncate(30);
        // A call let in after the cut, slow too: cut again, from the 31 in
        // setup now.
        let late = p.enter(&|| false, &|| None).expect("a place");
        report(&late, Duration::from_secs(2));
        assert_eq!(p.window(), Some(24));
    }

    #[test]
    fn prompt_setups_lift_the_window_once_nobody_waits() {
        let p = pace();
        let mut held = cut(&p, 10);
        assert_eq!(p.window(), Some(8));
        held.truncate(1);
        assert_eq!(p.window(), Some(8), "one still in setup");
        let s = p.enter(&|| false, &|| None).expect("a place");
        report(&s, Duration::from_millis(10));
        assert_eq!(p.window(), None);
    }

    #[test]
    fn the_window_is_lifted_when_nothing_is_in_setup_and_nobody_waits() {
        let p = pace();
        let mut held = cut(&p, 10);
        assert_eq!(p.window(), Some(8));
        held.truncate(1);
        assert_eq!(p.window(), Some(8));
        held.clear();
        assert_eq!(p.window(), None, "no setup to wait for: no limit");
        assert_eq!(hold(&p, 20).len(), 20);
    }

    #[test]
    fn the_window_grows_while_calls_wait_and_the_switch_is_prompt() {
        let p = Arc::new(pace());
        let mut held = cut(&p, 10);
        assert_eq!(p.window(), Some(8));
        held.truncate(7);
        // Let in after the cut: the 8th in setup, the window is full.
        let late = p.enter(&|| false, &|| None).expect("a place");
        let order = Arc::new(Mutex::new(Vec::new()));
        let waiter = caller(&p, &order, 0);
        wait_for(|| p.waiting() == 1);
        assert!(
            p.enter(&|| true, &|| None).is_none(),
            "a call gone before its turn"
        );
        // Prompt while one waits: grown by one, not lifted; the waiter goes.
        report(&late, Duration::from_millis(10));
        assert_eq!(p.window(), Some(9));
        waiter.join().unwrap();
        assert_eq!(*order.lock().unwrap(), vec![0]);
        // Prompt with nobody waiting: lifted.
        report(&late, Duration::from_millis(10));
        assert_eq!(p.window(), None);
    }

    #[test]
    fn the_operator_is_told_when_a_window_is_set_and_lifted() {
        let p = pace();
        let told = Arc::new(Mutex::new(Vec::new()));
        let t = Arc::clone(&told);
        p.set_log(Arc::new(move |level, _, text: &str| {
            t.lock().unwrap().push((level, text.to_string()));
        }));
        let mut held = cut(&p, 20);
        held.truncate(15);
        let late = p.enter(&|| false, &|| None).expect("a place");
        report(&late, Duration::from_secs(1));
        assert_eq!(p.window(), Some(12), "cut twice");
        {
            let told = told.lock().unwrap();
            assert_eq!(told.len(), 1, "one line for both cuts: {told:?}");
            assert_eq!(told[0].0, LogLevel::Warning);
            assert!(told[0].1.contains("falling behind"), "{}", told[0].1);
            assert!(
                told[0].1.contains("16 calls in setup at once"),
                "{}",
                told[0].1
            );
        }
        held.clear();
        drop(late);
        let told = told.lock().unwrap();
        assert_eq!(told.len(), 2, "{told:?}");
        assert_eq!(told[1].0, LogLevel::Info);
        assert!(told[1]
            .1
            .ends_with("nothing in setup and nobody waiting: no limit"));
    }

    /// A switch whose event queue holds `backlog` of 20,000 events, having
    /// delivered `delivered` so far: what the pace reads.
    fn queue_of(q: &Arc<Mutex<(u64, u64)>>) -> Option<EventQueue> {
        let (backlog, delivered) = *q.lock().unwrap();
        Some(EventQueue {
            backlog,
            capacity: 20_000,
            delivered,
        })
    }

    #[test]
    fn a_filling_event_queue_lets_calls_in_as_its_events_are_delivered() {
        let p = Arc::new(SetupPace::default());
        let q = Arc::new(Mutex::new((0, 1_000)));
        let read = {
            let q = Arc::clone(&q);
            move || queue_of(&q)
        };
        let free: Vec<_> = (0..20)
            .map(|_| p.enter(&|| false, &read).unwrap())
            .collect();
        assert_eq!(p.in_setup(), 20, "an empty queue holds nobody back");
        // 12,000 queued, and 21 calls just let in: (12,000 + 21 × 35) /
        // 20,000 = 0.64 of it soon, past half full: a call per
        // 60 × (0.64 − 0.5) / 0.25 = 33 events.
        *q.lock().unwrap() = (12_000, 1_000);
        let first = p
            .enter(&|| false, &read)
            .expect("the credit a paced switch starts with");
        let (p2, read2) = (Arc::clone(&p), read.clone());
        let waiter =
            std::thread::spawn(move || p2.enter(&|| false, &read2).map(std::mem::forget).is_some());
        std::thread::sleep(Duration::from_millis(200));
        assert!(!waiter.is_finished(), "no event delivered: no new call");
        assert_eq!(p.waiting(), 1);
        q.lock().unwrap().1 += 20;
        std::thread::sleep(Duration::from_millis(200));
        assert!(!waiter.is_finished(), "20 events are not a call's worth");
        q.lock().unwrap().1 += 30;
        assert!(waiter.join().unwrap(), "50 are");
        assert_eq!(p.in_setup(), 22);
        drop((free, first));
    }

    #[test]
    fn calls_just_let_in_count_as_the_events_they_will_fire() {
        let p = SetupPace::default();
        let q = Arc::new(Mutex::new((9_000, 1_000)));
        let read = || queue_of(&q);
        // 9,000 queued (under half full): calls go in as they come, each
        // counted as the 35 events its setup will fire, until the 29th
        // brings the queue past half full soon (9,000 + 29 × 35 = 10,015).
        let deadline = Instant::now() + Duration::from_millis(300);
        let let_in: Vec<_> = (0..40)
            .map_while(|_| p.enter(&|| Instant::now() > deadline, &read))
            .collect();
        // From then on the events delivered count: none is, so after the 7
        // calls left of a burst's credit the next waits until it gives up.
        assert_eq!(let_in.len(), 29 + 7, "calls let in");
        assert_eq!(p.waiting(), 0, "the one that gave up left the line");
        drop(let_in);
    }

    #[test]
    fn a_call_that_ends_while_it_waits_leaves_the_line() {
        let p = Arc::new(pace());
        let _held = cut(&p, 5);
        assert_eq!(p.window(), Some(4));
        let gone = Arc::new(AtomicBool::new(false));
        let (p2, g2) = (Arc::clone(&p), Arc::clone(&gone));
        let waiter =
            std::thread::spawn(move || p2.enter(&|| g2.load(Ordering::SeqCst), &|| None).is_some());
        wait_for(|| p.waiting() == 1);
        gone.store(true, Ordering::SeqCst);
        assert!(!waiter.join().unwrap());
        assert_eq!(p.waiting(), 0);
        assert_eq!(p.in_setup(), 5);
    }
}
