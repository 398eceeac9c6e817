//! Taking calls back from the journal when an engine starts: after a module
//! reload the switch still carries the bridged calls of the engine before;
//! after a restart of the switch nothing it carried is left.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::{CallCell, Engine};
use crate::core::call::{CallRecord, CallState, HangupBy, Leg};
use crate::core::journal;

/// `hangup_cause` of a leg whose end happened while no engine watched,
/// within the same process (between a module's unload and its next load).
pub const CAUSE_UNOBSERVED: &str = "NORMAL_UNSPECIFIED";
/// `hangup_cause` of a leg the switch's stop ended (a crash, a kill, power
/// loss: the journal holds a call of an earlier process).
pub const CAUSE_SWITCH_STOPPED: &str = "CRASH";

/// Ends a leg the journal says was live, at the last moment it was known up.
fn end_unseen(leg: &mut Leg, seen_at: std::time::SystemTime, cause: &str) {
    if leg.is_live() {
        leg.ended_at = Some(seen_at);
        leg.hangup_cause = Some(cause.to_string());
    }
}

impl Engine {
    /// Takes back every call in the journal; runs before the first leg
    /// report is read, so no report about an adopted leg is missed.
    pub(crate) fn recover(&self) {
        for c in self.journal.open_calls() {
            self.take_back(c);
        }
    }

    fn take_back(&self, mut c: CallRecord) {
        if c.state == CallState::Ended {
            // Its hangup went out; its CDR did not (the journal loses a call
            // together with emitting its CDR).
            self.emit_cdr(&mut c);
            return;
        }
        let a_up = c.a.is_live() && self.switch.leg_exists(c.a.uuid);
        let b_up = c.b.is_live() && self.switch.leg_exists(c.b.uuid);
        let cause = if c.instance == journal::instance() {
            CAUSE_UNOBSERVED
        } else {
            CAUSE_SWITCH_STOPPED
        };
        let seen_at = c.seen_at;
        // No thread of this engine will place or bridge anything for it.
        c.runner_done = true;
        if !a_up && c.a.is_live() && b_up && c.hangup_by.is_none() {
            c.hangup_by = Some(HangupBy::Agent);
        }
        if !b_up && c.b.is_live() && a_up && c.hangup_by.is_none() {
            c.hangup_by = Some(HangupBy::Customer);
        }
        if !a_up {
            end_unseen(&mut c.a, seen_at, cause);
        }
        if !b_up {
            end_unseen(&mut c.b, seen_at, cause);
        }
        // The parties of a transfer: followed while their channel is up.
        for p in &mut c.parties {
            if !(p.leg.is_live() && self.switch.leg_exists(p.leg.uuid)) {
                end_unseen(&mut p.leg, seen_at, cause);
            }
        }
        if let Some(at) = c.attempts.last_mut().filter(|a| a.ended_at.is_none()) {
            if !b_up && c.b.answered_at.is_none() {
                at.ended_at = Some(seen_at);
                at.result = Some(cause.to_string());
            }
        }
        let adopt = a_up || b_up;
        if !adopt {
            c.recovered = true;
            c.hangup_by.get_or_insert(HangupBy::System);
            if c.b.answered_at.is_none() {
                c.cancel.get_or_insert(HangupBy::System);
            }
        }
        let unbridged: Vec<Uuid> = [(&c.a, a_up), (&c.b, b_up)]
            .into_iter()
            .filter(|(_, up)| *up && c.state != CallState::Bridged)
            .map(|(l, _)| l.uuid)
            .collect();
        let cell: CallCell = Arc::new(Mutex::new(c));
        self.register(&cell);
        if adopt {
            self.stats.adopted.fetch_add(1, Ordering::Relaxed);
            // The switch still holds its backstop: arm the precise limit again.
            let c = lock(&cell);
            if c.state == CallState::Bridged {
                self.arm_limit(&c, false);
            }
            drop(c);
            // Only a bridge keeps a call going without us: end what was still
            // being set up (its hangups arrive as leg reports).
            for leg in unbridged {
                lock(&cell).cancel.get_or_insert(HangupBy::System);
                self.switch.hangup(leg, "SYSTEM_SHUTDOWN");
            }
        } else {
            self.stats.recovered.fetch_add(1, Ordering::Relaxed);
            self.finish_if_done(&cell);
        }
    }
}

fn lock(cell: &CallCell) -> std::sync::MutexGuard<'_, CallRecord> {
    cell.lock().unwrap_or_else(|e| e.into_inner())
}
