//! New calls paced by the switch's event dispatch once its event queue
//! fills. Every event of the switch waits in that one queue for its dispatch
//! thread (on saturated cores it yields after each), and once the queue is
//! full every thread that fires an event waits too: the whole switch stalls
//! for seconds, and calls are lost. FreeSWITCH's own event socket takes a
//! new command only between flushes of its events, so its intake slows as
//! the dispatch does; this is that, counted: past [`QUEUE_PACED`] of the
//! queue filled (or soon to be, with half of that in it) the pace watches,
//! past [`QUEUE_FREE`] a new call waits for events delivered, up to
//! [`EVENTS_PER_CALL`] of them at [`QUEUE_TARGET`] (the queue then stays as
//! it is), more above it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::switch::EventQueue;

/// Past this share of its event queue filled (or soon to be: see
/// [`SETUP_EVENTS`]), the pace watches the queue (and says so): from
/// [`QUEUE_FREE`] on, the switch is let have a new call only as its
/// dispatch thread gets through the events of earlier ones.
pub const QUEUE_PACED: f64 = 0.1;
/// Events a call puts into the switch's event queue (56 measured, ours and
/// its own): a new call per this many delivered keeps the queue as it is
/// at [`QUEUE_TARGET`]; below it more calls are let in, above it fewer.
pub const EVENTS_PER_CALL: f64 = 60.0;
/// The share of its event queue the pace keeps the switch at (or soon to
/// be), under overload.
pub const QUEUE_TARGET: f64 = 0.75;
/// Events a call let in within [`RECENT`] is still to fire (its setup and
/// bridge): counted as in the queue already.
pub const SETUP_EVENTS: f64 = 35.0;
/// See [`SETUP_EVENTS`].
const RECENT: Duration = Duration::from_secs(3);
/// Calls a paced switch may be given at once when events come in a rush.
const FLOW_BURST: f64 = 8.0;
/// Up to this share of its event queue filled (with the calls to come),
/// new calls still go in as they come: the queue is the switch's room for
/// a burst, as it is for FreeSWITCH's own originates, which nothing paces.
pub const QUEUE_FREE: f64 = 0.5;

/// Events delivered a new call waits for, the queue `fill` full (with the
/// calls to come): none up to [`QUEUE_FREE`], then more and more until
/// [`EVENTS_PER_CALL`] at [`QUEUE_TARGET`] (as many as a call brings: the
/// queue stays as it is), and more again past it. `None`: no wait.
fn events_per_call(fill: f64) -> Option<f64> {
    let per_call = if fill < QUEUE_TARGET {
        EVENTS_PER_CALL * (fill - QUEUE_FREE) / (QUEUE_TARGET - QUEUE_FREE)
    } else {
        EVENTS_PER_CALL * fill / QUEUE_TARGET
    };
    (per_call > 0.0).then_some(per_call)
}

/// The pace of new calls by the switch's event dispatch.
#[derive(Default)]
pub struct Flow {
    /// Calls that may start now while paced; `None`: not paced.
    credit: Option<f64>,
    /// The switch's delivered events at the last reading.
    delivered: Option<u64>,
    /// When the calls of the last [`RECENT`] were let in.
    recent: VecDeque<Instant>,
}

impl Flow {
    /// Takes in the switch's event queue now; what to tell the operator
    /// when pacing starts or ends.
    pub fn read(&mut self, q: EventQueue, now: Instant) -> Option<String> {
        let fresh = self.delivered.map_or(0, |d| q.delivered.saturating_sub(d));
        self.delivered = Some(q.delivered);
        while self.recent.front().is_some_and(|t| now - *t > RECENT) {
            self.recent.pop_front();
        }
        let share = |events: f64| events / q.capacity.max(1) as f64;
        let coming = q.backlog as f64 + SETUP_EVENTS * self.recent.len() as f64;
        let (fill, queued) = (share(coming), share(q.backlog as f64));
        let was = self.credit.is_some();
        // Paced once the queue itself holds half a tenth (the calls to come
        // alone, at 20 calls/s, are a tenth), until all of it is under half
        // a tenth again: no flapping at the edge.
        let paced = if was {
            fill > QUEUE_PACED / 2.0
        } else {
            fill > QUEUE_PACED && queued > QUEUE_PACED / 2.0
        };
        self.credit = paced.then(|| {
            let had = self.credit.unwrap_or(1.0);
            match events_per_call(fill) {
                Some(per_call) => (had + fresh as f64 / per_call).min(FLOW_BURST),
                None => FLOW_BURST,
            }
        });
        match (was, paced) {
            (false, true) => Some(format!(
                "setup pace: the switch's event queue is filling ({} of {} events, {} with the \
                 calls just let in): past half full, new calls go in as it delivers its events",
                q.backlog, q.capacity, coming as u64
            )),
            (true, false) => Some(format!(
                "setup pace: the switch's event queue is nearly empty again ({} of {} events): \
                 new calls go in at once",
                q.backlog, q.capacity
            )),
            _ => None,
        }
    }

    /// Whether new calls wait for the switch's event dispatch now.
    pub fn paced(&self) -> bool {
        self.credit.is_some()
    }

    /// Whether a call may start (and takes its credit).
    pub fn take(&mut self, now: Instant) -> bool {
        let ok = match &mut self.credit {
            None => true,
            Some(c) if *c >= 1.0 => {
                *c -= 1.0;
                true
            }
            Some(_) => false,
        };
        if ok {
            self.recent.push_back(now);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(backlog: u64, delivered: u64) -> EventQueue {
        EventQueue {
            backlog,
            capacity: 20_000,
            delivered,
        }
    }

    #[test]
    fn paced_from_a_tenth_full_until_half_that_and_the_operator_is_told() {
        let (mut f, now) = (Flow::default(), Instant::now());
        assert!(f.read(queue(1_900, 0), now).is_none());
        assert!(!f.paced(), "under a tenth: calls go in at once");
        let told = f.read(queue(2_100, 0), now).expect("told");
        assert!(f.paced());
        assert!(
            told.contains("is filling (2100 of 20000 events, 2100 with the calls just let in)"),
            "{told}"
        );
        assert!(f.read(queue(1_500, 0), now).is_none());
        assert!(f.paced(), "still paced above half a tenth: no flapping");
        let told = f.read(queue(900, 0), now).expect("told");
        assert!(!f.paced());
        assert!(
            told.contains("nearly empty again (900 of 20000 events)"),
            "{told}"
        );
    }

    #[test]
    fn calls_to_come_alone_do_not_start_pacing_an_empty_queue() {
        let (mut f, now) = (Flow::default(), Instant::now());
        // 100 calls in the last 3 s (33 a second) will fire 3,500 events.
        for _ in 0..100 {
            f.read(queue(900, 0), now);
            assert!(f.take(now));
        }
        assert!(!f.paced(), "900 queued: the dispatch keeps up");
        assert!(f.read(queue(1_100, 0), now).is_some());
        assert!(f.paced(), "1,100 queued and 3,500 to come: paced");
    }

    #[test]
    fn a_fuller_queue_lets_fewer_calls_in_per_event_delivered() {
        // Calls let in for 200 events delivered, the queue at `backlog`.
        let calls_per_200 = |backlog: u64| {
            let (mut f, now) = (Flow::default(), Instant::now());
            f.read(queue(backlog, 1_000), now);
            while f.take(now) {}
            f.recent.clear();
            f.read(queue(backlog, 1_200), now);
            let mut n = 0;
            while f.take(now) {
                n += 1;
            }
            n
        };
        assert_eq!(calls_per_200(15_000), 3, "at the target: a call per 60");
        assert_eq!(calls_per_200(12_500), 6, "half way there: a call per 30");
        assert_eq!(calls_per_200(18_000), 2, "past it: a call per 72");
        assert_eq!(calls_per_200(7_500), 8, "under half full: a burst's worth");
    }

    #[test]
    fn credit_saved_while_nobody_waits_is_a_short_burst_at_most() {
        let (mut f, now) = (Flow::default(), Instant::now());
        f.read(queue(15_000, 0), now);
        f.read(queue(15_000, 100_000), now);
        let mut n = 0;
        while f.take(now) {
            n += 1;
        }
        assert_eq!(n, 8);
    }
}
