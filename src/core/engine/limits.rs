//! Call time limits. The engine's own clock ends a call at its limit
//! (within the leg dispatcher's 50 ms tick); the switch's scheduler holds a
//! backstop one second later, which fires only if no engine watched (the
//! module unloaded): a reloaded engine arms the limit again from the journal.

use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::{lock, Engine};
use crate::core::call::{CallRecord, CallState, CAUSE_TIME_LIMIT};

impl Engine {
    /// Arms the limit of a bridged call (from its customer's answer) and,
    /// when `backstop`, the switch's own hangup a second after it.
    pub(super) fn arm_limit(&self, c: &CallRecord, backstop: bool) {
        let (Some(secs), Some(from)) = (c.time_limit, c.b.answered_at) else {
            return;
        };
        let deadline = from + Duration::from_secs(u64::from(secs));
        lock(&self.limits).push((deadline, c.call_uuid));
        if backstop {
            let left = deadline
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .as_secs();
            // The switch logs why when it cannot; the engine's clock still holds.
            let _ = self
                .switch
                .schedule_hangup(c.b.uuid, left as u32 + 1, CAUSE_TIME_LIMIT);
        }
    }

    /// Hangs up the customer's leg of every call whose limit has come
    /// (the agent's leg follows with the same cause, see `leg_event`).
    pub(super) fn fire_due_limits(&self) {
        let now = SystemTime::now();
        let due: Vec<Uuid> = {
            let mut limits = lock(&self.limits);
            if limits.is_empty() {
                return;
            }
            let (due, pending) = limits.drain(..).partition(|(at, _)| *at <= now);
            *limits = pending;
            due.into_iter().map(|(_, call)| call).collect()
        };
        for call in due {
            let cell = lock(&self.registry).active.get(&call).cloned();
            let Some(cell) = cell else { continue };
            let leg = {
                let c = lock(&cell);
                (c.state != CallState::Ended && c.b.is_live()).then_some(c.b.uuid)
            };
            if let Some(leg) = leg {
                self.switch.hangup(leg, CAUSE_TIME_LIMIT);
            }
        }
    }
}
