//! Trunk limits shared by every node of a cluster, in Redis, on Redis's own
//! clock. CPS: one pacing slot key per trunk (`<prefix>trunk:<name>:tat`),
//! the same math as [`crate::core::gcra::pace`]. Channels: one hash per
//! trunk (`<prefix>trunk:<name>:ch`), a field per node holding
//! `<channels>:<expiry ms>`; a claim sums every live field and counts one
//! more in the same script, so two nodes never both take the last channel.
//! A node's field is written at each claim, when a dial returns, and on
//! every heartbeat; a node that stops beating drops out after `node-ttl`.
//!
//! Redis unreachable: this node paces and counts alone (logged), as its
//! admission does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Script;

use super::ledger::{Ledger, LocalLedger};
use crate::core::cluster::redis::{Redis, RedisDown};
use crate::core::cluster::Cluster;
use crate::core::gcra::Clock;
use crate::core::log::{LogHook, LogLevel};

/// KEYS: the trunk's slot key. ARGV: interval µs, within µs (-2: a call
/// started now, the next slot is no sooner than now + interval).
/// Returns {1 taken | 0 not, wait µs}.
const SLOT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - now
local within = tonumber(ARGV[2])
if within == -2 then
  local next = now + tonumber(ARGV[1])
  if next > tat then
    redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.ceil((next - now) / 1000) + 1000)
  end
  return {1, 0}
end
if wait > within then return {0, wait} end
local new = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.ceil((new - now) / 1000) + 1000)
return {1, wait}
";

/// KEYS: the trunk's channel hash. ARGV: node, its channels now, max (for
/// a claim), field TTL ms, mode (`claim` or `publish`).
/// Returns {1 claimed / written | 0 refused, the other nodes' channels}.
const CHANNELS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local others = 0
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] then
    local n, exp = string.match(all[i + 1], '^(%d+):(%d+)$')
    if n and tonumber(exp) > now then
      others = others + tonumber(n)
    else
      redis.call('HDEL', KEYS[1], all[i])
    end
  end
end
local mine = tonumber(ARGV[2])
local ttl = tonumber(ARGV[4])
local ok = 1
if ARGV[5] == 'claim' then
  if others + mine >= tonumber(ARGV[3]) then ok = 0 else mine = mine + 1 end
end
redis.call('HSET', KEYS[1], ARGV[1], mine .. ':' .. (now + ttl))
redis.call('PEXPIRE', KEYS[1], ttl)
return {ok, others}
";

/// The Redis ledger.
pub struct RedisLedger {
    redis: Arc<Redis>,
    prefix: String,
    node: String,
    ttl: Duration,
    slot: Script,
    channels: Script,
    log: LogHook,
    /// Decides alone while Redis is unreachable.
    fallback: LocalLedger,
    /// Decisions taken alone (logged every 100th).
    alone: AtomicU64,
    /// What `c2c status` and `/metrics` show, as of this node's last word
    /// with Redis (a claim, a dial's end, a heartbeat, a slot): they never
    /// wait on the network. Per trunk: the other nodes' channels, and when
    /// its next slot comes.
    seen: Mutex<HashMap<String, Seen>>,
}

#[derive(Default, Clone, Copy)]
struct Seen {
    others: u32,
    next_slot: Option<Instant>,
}

impl RedisLedger {
    /// Trunk limits through `cluster`'s Redis; `clock` for the fallback.
    pub fn new(cluster: &Cluster, clock: Arc<dyn Clock>) -> RedisLedger {
        let settings = cluster.settings();
        RedisLedger {
            redis: cluster.redis(),
            prefix: settings.key_prefix.clone(),
            node: settings.node_name.clone(),
            ttl: settings.node_ttl,
            slot: Script::new(SLOT),
            channels: Script::new(CHANNELS),
            log: cluster.log(),
            fallback: LocalLedger::new(clock),
            alone: AtomicU64::new(0),
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn note(&self, trunk: &str, f: impl FnOnce(&mut Seen)) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        f(seen.entry(trunk.to_string()).or_default());
    }

    fn key(&self, trunk: &str, what: &str) -> String {
        format!("{}trunk:{trunk}:{what}", self.prefix)
    }

    fn alone(&self, trunk: &str, e: &RedisDown) {
        if self.alone.fetch_add(1, Ordering::Relaxed) % 100 == 0 {
            (self.log)(
                LogLevel::Warning,
                None,
                &format!("trunk {trunk}: Redis unreachable ({e}): this node paces and counts the trunk alone"),
            );
        }
    }

    fn slot(
        &self,
        trunk: &str,
        interval: Duration,
        within: i64,
    ) -> Result<(bool, Duration), RedisDown> {
        let (taken, wait): (i64, i64) = self.redis.run(|c| {
            self.slot
                .key(self.key(trunk, "tat"))
                .arg(interval.as_micros() as u64)
                .arg(within)
                .invoke(c)
        })?;
        Ok((taken == 1, Duration::from_micros(wait.max(0) as u64)))
    }

    fn channels(&self, trunk: &str, mine: u32, max: u32, mode: &str) -> Result<bool, RedisDown> {
        let (ok, others): (i64, i64) = self.redis.run(|c| {
            self.channels
                .key(self.key(trunk, "ch"))
                .arg(&self.node)
                .arg(mine)
                .arg(max)
                .arg(self.ttl.as_millis().max(1) as u64)
                .arg(mode)
                .invoke(c)
        })?;
        self.note(trunk, |s| s.others = others.max(0) as u32);
        Ok(ok == 1)
    }
}

impl Ledger for RedisLedger {
    fn take_slot(
        &self,
        trunk: &str,
        interval: Duration,
        within: Duration,
    ) -> Result<Duration, Duration> {
        let within_us = within.as_micros().min(i64::MAX as u128) as i64;
        let r = match self.slot(trunk, interval, within_us) {
            Ok((true, wait)) => Ok(wait),
            Ok((false, wait)) => Err(wait),
            Err(e) => {
                self.alone(trunk, &e);
                return self.fallback.take_slot(trunk, interval, within);
            }
        };
        let next = Instant::now() + r.map_or_else(|need| need, |wait| wait + interval);
        self.note(trunk, |s| s.next_slot = Some(next));
        r
    }

    fn started(&self, trunk: &str, interval: Duration) {
        if let Err(e) = self.slot(trunk, interval, -2) {
            self.alone(trunk, &e);
            self.fallback.started(trunk, interval);
        }
        let next = Instant::now() + interval;
        self.note(trunk, |s| s.next_slot = s.next_slot.max(Some(next)));
    }

    fn claim_channel(&self, trunk: &str, max: u32, mine: u32) -> bool {
        match self.channels(trunk, mine, max, "claim") {
            Ok(ok) => ok,
            Err(e) => {
                self.alone(trunk, &e);
                self.fallback.claim_channel(trunk, max, mine)
            }
        }
    }

    fn publish(&self, trunk: &str, mine: u32) {
        let _ = self.channels(trunk, mine, 0, "publish");
    }

    fn in_use(&self, trunk: &str, mine: u32) -> u32 {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        mine + seen.get(trunk).map_or(0, |s| s.others)
    }

    fn next_slot_in(&self, trunk: &str) -> Duration {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get(trunk).and_then(|s| s.next_slot) {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => self.fallback.next_slot_in(trunk),
        }
    }
}
