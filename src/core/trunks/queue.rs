//! One trunk's waiting line: callers take their turn in arrival order
//! (FIFO), the one at the front waits for a channel and then takes the next
//! CPS slot, and a [`Permit`] marks its dial as under way until it returns.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::ledger::Ledger;
use crate::core::turns::Turns;

/// Which limit held a call back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The trunk carried `max-channels`.
    Channels,
    /// No CPS slot came in time.
    Cps,
}

impl Limit {
    /// The attempt's `hangup_cause` when a trunk is passed over for it.
    pub fn cause(self) -> &'static str {
        match self {
            Limit::Channels => "TRUNK_MAX_CHANNELS",
            Limit::Cps => "TRUNK_CPS_LIMIT",
        }
    }

    /// Its name in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Limit::Channels => "max_channels",
            Limit::Cps => "cps",
        }
    }
}

/// Why no permit was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A limit held past the wait allowed.
    Limit(Limit),
    /// The call ended (or was cancelled) while it waited.
    Gone,
}

/// How often a waiting caller looks again (channels of others end unseen).
const POLL: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Line {
    /// The callers, in arrival order.
    turns: Turns,
    /// B-legs dialled under a permit whose dial has not returned.
    pending: HashSet<Uuid>,
    /// What the caller at the front waits for.
    blocked_by: Option<Limit>,
}

/// One trunk's line.
#[derive(Default)]
pub struct TrunkQueue {
    line: Mutex<Line>,
}

/// One trunk's limits, as a caller of [`TrunkQueue::acquire`] sees them.
pub struct Ask<'a> {
    pub trunk: &'a str,
    pub cps: Option<f64>,
    pub max_channels: Option<u32>,
    /// The B-leg about to be dialled.
    pub leg: Uuid,
    /// How long the caller may wait in all.
    pub within: Duration,
}

/// A dial under way on a trunk: counted as one of its channels until dropped.
pub struct Permit {
    queue: Arc<TrunkQueue>,
    leg: Uuid,
    started: Instant,
    on_drop: Box<dyn FnOnce() + Send>,
}

impl Permit {
    /// When the call was let go (its CPS slot came).
    pub fn started(&self) -> Instant {
        self.started
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut line = self.queue.lock();
        line.pending.remove(&self.leg);
        line.turns.wake_front();
        drop(line);
        let f = std::mem::replace(&mut self.on_drop, Box::new(|| {}));
        f();
    }
}

impl TrunkQueue {
    fn lock(&self) -> MutexGuard<'_, Line> {
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Callers waiting: in line, or (at its front) for the CPS slot they took.
    pub fn depth(&self) -> usize {
        self.lock().turns.len()
    }

    /// What this node carries on the trunk: `on_switch` (the switch's
    /// channels on it, ours among them) plus dials whose channel it does
    /// not show yet.
    pub fn mine(&self, on_switch: &[Uuid]) -> u32 {
        let line = self.lock();
        let shown = on_switch.iter().filter(|u| !line.pending.contains(u));
        (shown.count() + line.pending.len()) as u32
    }

    /// Waits in line for a channel and a CPS slot, up to `ask.within`;
    /// `on_switch` lists the trunk's channels on the switch, `gone` says
    /// when the call no longer wants it, `waiting` is called each time the
    /// caller looks again while it waits (e.g. to start ringback once the
    /// agent can hear it). `on_drop` runs when the permit is dropped.
    #[allow(clippy::too_many_arguments)]
    pub fn acquire(
        self: &Arc<Self>,
        ask: &Ask,
        ledger: &dyn Ledger,
        on_switch: &dyn Fn() -> Vec<Uuid>,
        gone: &dyn Fn() -> bool,
        waiting: &mut dyn FnMut(),
        on_drop: Box<dyn FnOnce() + Send>,
    ) -> Result<Permit, Refusal> {
        let deadline = Instant::now() + ask.within;
        let mut line = self.lock();
        let (me, wake) = line.turns.join();
        let refusal = loop {
            if gone() {
                break Refusal::Gone;
            }
            let now = Instant::now();
            let front = line.turns.is_front(me);
            if front {
                let left = deadline.saturating_duration_since(now);
                match Self::try_front(ask, ledger, &line, on_switch, left) {
                    Ok(slot_wait) => {
                        // Still at the front until the slot comes: nobody
                        // else takes one meanwhile.
                        line.pending.insert(ask.leg);
                        line.blocked_by = None;
                        drop(line);
                        let until = Instant::now() + slot_wait;
                        while Instant::now() < until && !gone() {
                            waiting();
                            std::thread::sleep(POLL.min(until - Instant::now()));
                        }
                        let started = Instant::now();
                        if let Some(cps) = ask.cps {
                            // A late wake-up moves the next slot, never closer.
                            ledger.started(ask.trunk, crate::core::gcra::pace_interval(cps));
                        }
                        let permit = Permit {
                            queue: Arc::clone(self),
                            leg: ask.leg,
                            started,
                            on_drop,
                        };
                        self.lock().turns.leave(me);
                        if gone() {
                            // Dropping it gives the channel back.
                            return Err(Refusal::Gone);
                        }
                        return Ok(permit);
                    }
                    Err((limit, final_)) => {
                        line.blocked_by = Some(limit);
                        if final_ || now >= deadline {
                            break Refusal::Limit(limit);
                        }
                    }
                }
            } else if now >= deadline {
                break Refusal::Limit(line.blocked_by.unwrap_or(Limit::Cps));
            }
            drop(line);
            waiting();
            line = self.lock();
            if !front && line.turns.is_front(me) {
                continue; // our turn came meanwhile (its wake-up was missed)
            }
            let nap = POLL.min(deadline.saturating_duration_since(now));
            line = wake
                .wait_timeout(line, nap.max(Duration::from_millis(1)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        line.turns.leave(me);
        if line.turns.is_empty() {
            line.blocked_by = None;
        }
        Err(refusal)
    }

    /// The front of the line: a channel, then a CPS slot within `left`
    /// (a slot that comes later never comes sooner: final). A channel
    /// claimed for a slot that did not come is given back.
    fn try_front(
        ask: &Ask,
        ledger: &dyn Ledger,
        line: &Line,
        on_switch: &dyn Fn() -> Vec<Uuid>,
        left: Duration,
    ) -> Result<Duration, (Limit, bool)> {
        let mut claimed = None;
        if let Some(max) = ask.max_channels {
            let channels = on_switch();
            let shown = channels.iter().filter(|u| !line.pending.contains(u));
            let mine = (shown.count() + line.pending.len()) as u32;
            if !ledger.claim_channel(ask.trunk, max, mine) {
                return Err((Limit::Channels, false));
            }
            claimed = Some(mine);
        }
        let Some(cps) = ask.cps else {
            return Ok(Duration::ZERO);
        };
        let interval = crate::core::gcra::pace_interval(cps);
        ledger.take_slot(ask.trunk, interval, left).map_err(|_| {
            if let Some(mine) = claimed {
                ledger.publish(ask.trunk, mine);
            }
            (Limit::Cps, true)
        })
    }
}
