//! The shared part of per-trunk limits: each trunk's CPS slots and the
//! channels it carries, kept where every caller of the trunk sees them. One
//! trait, two backends: [`LocalLedger`] (this process) and
//! [`super::redis::RedisLedger`] (every node of a cluster).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::core::gcra::{pace, Clock};

/// What the limits of a trunk are counted in, wherever they are kept.
pub trait Ledger: Send + Sync {
    /// Takes `trunk`'s next CPS slot (slots `interval` apart) when it comes
    /// within `within`: `Ok(wait)` until it; else `Err(wait)` it would have
    /// needed, and nothing is taken.
    fn take_slot(
        &self,
        trunk: &str,
        interval: Duration,
        within: Duration,
    ) -> Result<Duration, Duration>;
    /// A call whose slot came started now: the trunk's next slot is no
    /// sooner than `interval` from now (a late start moves it, so starts
    /// are never closer than `interval`).
    fn started(&self, trunk: &str, interval: Duration);
    /// Counts one more channel of this node on `trunk` when every node
    /// together carries fewer than `max`. `mine`: what this node carries now
    /// (its switch's channels on the trunk and its dials under way).
    fn claim_channel(&self, trunk: &str, max: u32, mine: u32) -> bool;
    /// Says what this node carries on `trunk` now (a dial returned, or the
    /// periodic refresh).
    fn publish(&self, _trunk: &str, _mine: u32) {}
    /// Channels on `trunk` across every node, this node carrying `mine`, as
    /// this node last heard (for `c2c status` and `/metrics`: never waits on
    /// the network).
    fn in_use(&self, _trunk: &str, mine: u32) -> u32 {
        mine
    }
    /// Until `trunk`'s next CPS slot (zero: one is free now), as this node
    /// last heard (never waits on the network).
    fn next_slot_in(&self, trunk: &str) -> Duration;
}

/// The ledger of one switch: the trunks' pacing in memory. Channels are
/// what the switch carries (a trunk's queue lets one caller claim at a time).
pub struct LocalLedger {
    clock: Arc<dyn Clock>,
    tats: Mutex<HashMap<String, Duration>>,
}

impl LocalLedger {
    /// A ledger reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> LocalLedger {
        LocalLedger {
            clock,
            tats: Mutex::new(HashMap::new()),
        }
    }
}

impl Ledger for LocalLedger {
    fn take_slot(
        &self,
        trunk: &str,
        interval: Duration,
        within: Duration,
    ) -> Result<Duration, Duration> {
        let now = self.clock.now();
        let mut tats = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        let (wait, tat) = pace(tats.get(trunk).copied(), now, interval, within)?;
        tats.insert(trunk.to_string(), tat);
        Ok(wait)
    }

    fn started(&self, trunk: &str, interval: Duration) {
        let next = self.clock.now() + interval;
        let mut tats = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        let tat = tats.entry(trunk.to_string()).or_insert(next);
        *tat = (*tat).max(next);
    }

    fn claim_channel(&self, _trunk: &str, max: u32, mine: u32) -> bool {
        mine < max
    }

    fn next_slot_in(&self, trunk: &str) -> Duration {
        let now = self.clock.now();
        let tats = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        tats.get(trunk)
            .map_or(Duration::ZERO, |t| t.saturating_sub(now))
    }
}
