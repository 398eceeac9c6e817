//! The calls in flight: the registry (by call and by leg), capacity, and
//! what reads or ends a call from outside (`GET`, `DELETE`, `c2c status`).

use std::sync::Arc;

use uuid::Uuid;

use super::{lock, CallCell, Engine};
use crate::core::call::{CallRecord, HangupBy};
use crate::core::config::Config;
use crate::core::errors::{codes, ApiError};

impl Engine {
    /// Puts a call into the registry of calls in flight.
    pub(crate) fn register(&self, cell: &CallCell) {
        let (call, legs) = {
            let c = lock(cell);
            let mut legs = vec![c.a.uuid, c.b.uuid];
            legs.extend(c.parties.iter().map(|p| p.leg.uuid));
            (c.call_uuid, legs)
        };
        let mut reg = lock(&self.registry);
        reg.active.insert(call, Arc::clone(cell));
        for leg in legs {
            reg.by_leg.insert(leg, call);
        }
    }

    /// Calls in flight at once: the config's `max-concurrent-calls`, else
    /// half the switch's session limit (two channels a call), else 200.
    pub fn max_concurrent_calls(&self, config: &Config) -> usize {
        config
            .max_concurrent_calls
            .or_else(|| self.switch.max_sessions().map(|s| s as usize / 2))
            .unwrap_or(200)
    }

    pub(super) fn check_capacity(&self, in_flight: usize, limit: usize) -> Result<(), ApiError> {
        if in_flight >= limit {
            return Err(ApiError::new(
                503,
                codes::CAPACITY_EXCEEDED,
                format!("{in_flight} calls in flight: the limit"),
            ));
        }
        Ok(())
    }

    /// A call by its UUID (active, or ended within the journal's retention).
    pub fn call(&self, call_uuid: Uuid) -> Option<CallRecord> {
        let active = lock(&self.registry).active.get(&call_uuid).cloned();
        if let Some(c) = active {
            return Some(lock(&c).clone());
        }
        let ending = lock(&self.ending).get(&call_uuid).cloned();
        if ending.is_some() {
            return ending;
        }
        // Ended calls live in the journal's store, not in memory.
        self.journal.ended_call(call_uuid)
    }

    /// Calls in flight.
    pub fn active_calls(&self) -> Vec<CallRecord> {
        let reg = lock(&self.registry);
        reg.active.values().map(|c| lock(c).clone()).collect()
    }

    /// Hangs a call up (`DELETE`, `c2c hangup`).
    pub fn hangup(&self, call_uuid: Uuid) -> Result<(), ApiError> {
        let cell = lock(&self.registry).active.get(&call_uuid).cloned();
        let Some(cell) = cell else {
            return Err(ApiError::new(
                404,
                codes::CALL_NOT_FOUND,
                format!("no call {call_uuid} in flight"),
            ));
        };
        self.cancel(&cell, HangupBy::Api, "NORMAL_CLEARING");
        Ok(())
    }

    pub(super) fn cancel(&self, cell: &CallCell, by: HangupBy, cause: &str) {
        let legs: Vec<Uuid> = {
            let mut c = lock(cell);
            if c.cancel.is_none() {
                c.cancel = Some(by);
            }
            [&c.a, &c.b]
                .into_iter()
                .chain(c.parties.iter().map(|p| &p.leg))
                .filter(|l| l.is_live())
                .map(|l| l.uuid)
                .collect()
        };
        for leg in legs {
            self.switch.hangup(leg, cause);
        }
    }
}
