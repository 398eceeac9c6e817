//! Per-trunk limits: `cps` (calls a second, paced with no burst) and
//! `max-channels` (channels on the trunk, ours and others', as the switch
//! sees them). A call takes a [`Permit`] before its B-leg is dialled on a
//! limited trunk: in its trunk's FIFO line ([`queue`]), waiting up to what
//! the caller allows (`max-pacing-wait` for LCR, `trunk-queue-timeout` for a
//! forced trunk).
//!
//! The counts live in a [`Ledger`] chosen from the shared-state
//! [`Backend`], like admission and call lookup: in this process on one
//! switch, in Redis across a cluster ([`redis`]). Callers never ask which.

mod ledger;
mod queue;
pub mod redis;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use uuid::Uuid;

use crate::core::backend::Backend;
use crate::core::config::{Trunk, TrunkTarget};
use crate::core::gcra::Clock;
use crate::switch::{Switch, GATEWAY_VAR, TRUNK_VAR};

pub use self::ledger::{Ledger, LocalLedger};
use self::queue::{Ask, TrunkQueue};
pub use self::queue::{Limit, Permit, Refusal};

/// The ledger of `backend`, reading time from `clock` where it keeps time itself.
pub fn ledger_for(backend: &Backend, clock: Arc<dyn Clock>) -> Arc<dyn Ledger> {
    match backend {
        Backend::Local { .. } => Arc::new(LocalLedger::new(clock)),
        Backend::Redis(cluster) => Arc::new(redis::RedisLedger::new(cluster, clock)),
    }
}

/// The channel variable that tags a trunk's channels, and its value for this trunk.
fn tag_of(target: &TrunkTarget, id: i64) -> (&'static str, String) {
    match target {
        TrunkTarget::Gateway(g) => (GATEWAY_VAR, g.clone()),
        TrunkTarget::DialString(_) => (TRUNK_VAR, id.to_string()),
    }
}

fn channels_of(switch: &dyn Switch, target: &TrunkTarget, id: i64) -> Vec<Uuid> {
    let (var, value) = tag_of(target, id);
    switch.channels_with(var, &value)
}

/// Several trunks' channels on the switch, looked at once for all trunks
/// tagged by the same variable (every gateway trunk), not once a trunk.
struct OneLook<'a> {
    switch: &'a dyn Switch,
    by: HashMap<&'static str, HashMap<String, Vec<Uuid>>>,
}

impl<'a> OneLook<'a> {
    fn new(switch: &'a dyn Switch) -> Self {
        OneLook {
            switch,
            by: HashMap::new(),
        }
    }

    /// `trunk`'s channels, as [`TrunkLimits::on_switch`] would say.
    fn of(&mut self, trunk: &Trunk) -> &[Uuid] {
        let (var, value) = tag_of(&trunk.target, trunk.id);
        let switch = self.switch;
        let by = self
            .by
            .entry(var)
            .or_insert_with(|| switch.channels_by(var));
        by.get(&value).map_or(&[][..], Vec::as_slice)
    }
}

/// One trunk as `c2c status` and `/metrics` show it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkStatus {
    pub name: String,
    /// Channels in use (across the cluster, when there is one).
    pub channels: u32,
    pub max_channels: Option<u32>,
    pub cps: Option<f64>,
    /// Until the next CPS slot (zero: a call could go now).
    pub next_slot_in: Duration,
    /// Calls waiting for the trunk.
    pub queued: usize,
}

impl TrunkStatus {
    /// CPS tokens free now: 1 when a call could start now, else 0 (pacing
    /// has no burst); `None` without a `cps`.
    pub fn tokens(&self) -> Option<u32> {
        self.cps.map(|_| u32::from(self.next_slot_in.is_zero()))
    }

    /// As `c2c status` shows it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "trunk": self.name,
            "channels": self.channels,
            "max_channels": self.max_channels,
            "cps": self.cps,
            "cps_tokens": self.tokens(),
            "next_slot_ms": self.next_slot_in.as_millis() as u64,
            "queued": self.queued,
        })
    }
}

/// The limits of every trunk of one engine.
pub struct TrunkLimits {
    switch: Arc<dyn Switch>,
    clock: Arc<dyn Clock>,
    ledger: RwLock<Arc<dyn Ledger>>,
    queues: Mutex<HashMap<String, Arc<TrunkQueue>>>,
    /// (trunk, limit): calls a limit turned away.
    refused: Mutex<HashMap<(String, &'static str), u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TrunkLimits {
    /// Limits counted in this process, until [`TrunkLimits::set_backend`].
    pub fn new(switch: Arc<dyn Switch>, clock: Arc<dyn Clock>) -> TrunkLimits {
        TrunkLimits {
            ledger: RwLock::new(Arc::new(LocalLedger::new(Arc::clone(&clock)))),
            switch,
            clock,
            queues: Mutex::new(HashMap::new()),
            refused: Mutex::default(),
        }
    }

    /// Counts from now on in `backend` (a node joining a cluster, or leaving it).
    pub fn set_backend(&self, backend: &Backend) {
        let ledger = ledger_for(backend, Arc::clone(&self.clock));
        *self.ledger.write().unwrap_or_else(|e| e.into_inner()) = ledger;
    }

    fn ledger(&self) -> Arc<dyn Ledger> {
        Arc::clone(&self.ledger.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn queue(&self, trunk: &str) -> Arc<TrunkQueue> {
        Arc::clone(lock(&self.queues).entry(trunk.to_string()).or_default())
    }

    /// The trunk's channels on the switch now, whoever placed them: through
    /// its gateway, or (a dial-string trunk) our legs tagged with it.
    pub fn on_switch(&self, trunk: &Trunk) -> Vec<Uuid> {
        channels_of(self.switch.as_ref(), &trunk.target, trunk.id)
    }

    /// Waits up to `within` for a channel and a CPS slot on `trunk` for the
    /// B-leg `leg`; `Ok(None)` when the trunk has no limits. `gone` says when
    /// the call stopped wanting it; `waiting` is called at each look while it waits.
    pub fn acquire(
        &self,
        trunk: &Trunk,
        leg: Uuid,
        within: Duration,
        gone: &dyn Fn() -> bool,
        waiting: &mut dyn FnMut(),
    ) -> Result<Option<Permit>, Refusal> {
        if trunk.cps.is_none() && trunk.max_channels.is_none() {
            return Ok(None);
        }
        let ask = Ask {
            trunk: &trunk.name,
            cps: trunk.cps,
            max_channels: trunk.max_channels,
            leg,
            within,
        };
        let ledger = self.ledger();
        let queue = self.queue(&trunk.name);
        let on_drop: Box<dyn FnOnce() + Send> = match trunk.max_channels {
            // The dial returned: its channel (if any) is the switch's to show.
            Some(_) => {
                let (switch, queue, ledger) = (
                    Arc::clone(&self.switch),
                    Arc::clone(&queue),
                    Arc::clone(&ledger),
                );
                let (name, target, id) = (trunk.name.clone(), trunk.target.clone(), trunk.id);
                Box::new(move || {
                    let on = channels_of(switch.as_ref(), &target, id);
                    ledger.publish(&name, queue.mine(&on));
                })
            }
            None => Box::new(|| {}),
        };
        let on_switch = || self.on_switch(trunk);
        let r = queue.acquire(&ask, ledger.as_ref(), &on_switch, gone, waiting, on_drop);
        if let Err(Refusal::Limit(limit)) = r {
            *lock(&self.refused)
                .entry((trunk.name.clone(), limit.label()))
                .or_default() += 1;
        }
        r.map(Some)
    }

    /// Every trunk's state now; a `/metrics` scrape walks the switch's
    /// sessions once ([`OneLook`]).
    pub fn status(&self, trunks: &[Trunk]) -> Vec<TrunkStatus> {
        let ledger = self.ledger();
        let mut look = OneLook::new(self.switch.as_ref());
        trunks
            .iter()
            .map(|t| {
                let queue = self.queue(&t.name);
                let mine = queue.mine(look.of(t));
                TrunkStatus {
                    name: t.name.clone(),
                    channels: ledger.in_use(&t.name, mine),
                    max_channels: t.max_channels,
                    cps: t.cps,
                    next_slot_in: ledger.next_slot_in(&t.name),
                    queued: queue.depth(),
                }
            })
            .collect()
    }

    /// Says what this node carries on each limited trunk (a cluster's
    /// periodic refresh: others' counts age out without it).
    pub fn publish(&self, trunks: &[Trunk]) {
        let ledger = self.ledger();
        let mut look = OneLook::new(self.switch.as_ref());
        for t in trunks.iter().filter(|t| t.max_channels.is_some()) {
            ledger.publish(&t.name, self.queue(&t.name).mine(look.of(t)));
        }
    }

    /// (trunk, limit, calls turned away), sorted.
    pub fn refused(&self) -> Vec<(String, &'static str, u64)> {
        let mut v: Vec<_> = lock(&self.refused)
            .iter()
            .map(|((t, l), n)| (t.clone(), *l, *n))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests;
