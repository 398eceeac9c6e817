//! The calls in flight: the registry (by call and by leg), capacity, and
//! what reads or ends a call from outside (`GET`, `DELETE`, `c2c status`).

use std::sync::Arc;

use uuid::Uuid;

use super::{lock, CallCell, Engine, Registry};
use crate::core::call::{CallRecord, HangupBy};
use crate::core::config::Config;
use crate::core::errors::{codes, ApiError};
use crate::switch::LegRole;

impl Engine {
    /// Puts a call into the registry of calls in flight.
    pub(crate) fn register(&self, cell: &CallCell) {
        let (call, legs) = {
            let c = lock(cell);
            let mut legs = vec![(c.a.uuid, LegRole::Agent), (c.b.uuid, LegRole::Customer)];
            legs.extend(c.parties.iter().map(|p| (p.leg.uuid, LegRole::Party)));
            (c.call_uuid, legs)
        };
        let mut reg = lock(&self.registry);
        reg.active.insert(call, Arc::clone(cell));
        for (leg, role) in legs {
            self.index_leg(&mut reg, leg, call, role);
        }
    }

    /// Files `leg` under call `call` in the registry's index of legs, and
    /// has the switch watch it: the reports the engine reads are of the
    /// legs in this index, and of no other channel.
    pub(super) fn index_leg(&self, reg: &mut Registry, leg: Uuid, call: Uuid, role: LegRole) {
        reg.by_leg.insert(leg, call);
        self.switch.watch(leg, role);
    }

    /// Takes `leg` out of the index of legs ([`Engine::index_leg`]).
    pub(super) fn unindex_leg(&self, reg: &mut Registry, leg: Uuid) {
        if reg.by_leg.remove(&leg).is_some() {
            self.switch.unwatch(leg);
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

    /// Refuses a call when it would pass the limit; `placing`: the calls
    /// being placed (this one and those committing their acceptance). With
    /// `max-concurrent-calls` set: the calls in flight. On `auto`, when the switch tells
    /// its sessions: whether it has room for this call's two channels, after
    /// those it carries now and those our accepted calls have yet to open.
    /// Our own count of calls in flight lags the switch where its events
    /// do (seconds, on an overloaded switch): ended calls went on counting,
    /// and 7 % of the overload bench's calls at 90/s were refused while the
    /// switch had room.
    pub(super) fn check_capacity(
        &self,
        config: &Config,
        reg: &Registry,
        placing: usize,
    ) -> Result<(), ApiError> {
        let room = match (
            config.max_concurrent_calls,
            self.switch.sessions_in_use(),
            self.switch.max_sessions(),
        ) {
            (None, Some(used), Some(max)) => Some((used as usize, max as usize)),
            _ => None,
        };
        let refused = match room {
            Some((used, max)) => {
                let planned = reg.unopened + 2 * (placing - 1);
                (used + planned + 2 > max).then(|| {
                    format!(
                        "{used} of the switch's {max} sessions in use and {planned} to be opened \
                         by calls being placed: no room for two more"
                    )
                })
            }
            None => {
                let in_flight = reg.active.len() + placing - 1;
                let limit = self.max_concurrent_calls(config);
                (in_flight >= limit).then(|| format!("{in_flight} calls in flight: the limit"))
            }
        };
        match refused {
            Some(why) => Err(ApiError::new(503, codes::CAPACITY_EXCEEDED, why)),
            None => Ok(()),
        }
    }

    /// Counts `n` channels of an accepted call as opened (or as never to be).
    pub(super) fn opened(&self, n: usize) {
        let mut reg = lock(&self.registry);
        reg.unopened = reg.unopened.saturating_sub(n);
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

    /// How many calls are in flight: the registry's lock held for a count,
    /// where [`Engine::active_calls`] copies every call under it (hundreds
    /// under overload, and every 202 takes that lock).
    pub fn active_count(&self) -> usize {
        lock(&self.registry).active.len()
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
