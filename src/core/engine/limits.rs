//! Call time limits. The engine's own clock ends a call at its limit
//! (within the leg dispatcher's 50 ms tick); the switch's scheduler holds a
//! backstop one second later, which fires only if no engine watched (the
//! module unloaded): a reloaded engine arms the limit again from the journal.

use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::{lock, Engine};
use crate::core::call::{CallRecord, CallState, CAUSE_TIME_LIMIT};

/// How often `recording-retention` is applied (more often when it is shorter).
const PURGE_EVERY: Duration = Duration::from_secs(60);

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

    /// Erases recordings past `recording-retention`, at most once a minute
    /// (called on the leg dispatcher's tick).
    pub(super) fn purge_recordings_if_due(&self) {
        let config = self.config();
        let Some(max_age) = config.recording_retention else {
            return;
        };
        {
            let mut last = lock(&self.last_purge);
            if last.is_some_and(|t| t.elapsed() < PURGE_EVERY.min(max_age)) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let dir = crate::core::recording::dir_of(&config);
        crate::core::recording::purge(&dir, &config.recording_format, max_age);
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
