//! The global rate limit: the same GCRA as [`crate::core::http::ratelimit::gcra`],
//! one Lua script per decision, on Redis's own clock (the nodes' clocks
//! need not agree). Times are microseconds; the key expires when the
//! bucket is full again.

use std::time::Duration;

use redis::Script;

use crate::core::http::ratelimit::Decision;

use super::redis::{Redis, RedisDown};

/// KEYS[1]: the token's bucket. ARGV[1]: requests per minute.
/// Returns {allowed, remaining, reset_us, retry_after_us}.
const GCRA: &str = r"
local limit = tonumber(ARGV[1])
local interval = math.floor(60000000 / limit)
local tolerance = interval * (limit - 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local ahead = tat - now
if ahead > tolerance then
  return {0, 0, ahead, ahead - tolerance}
end
local new_tat = tat + interval
ahead = new_tat - now
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil(ahead / 1000) + 1)
local spare = tolerance + interval - ahead
return {1, math.floor(spare / interval), ahead, 0}
";

/// The GCRA script, loaded once (sent by its SHA, the body only when Redis lacks it).
pub struct GlobalLimiter {
    script: Script,
    prefix: String,
}

impl GlobalLimiter {
    /// A limiter over keys `<prefix>rl:<token>`.
    pub fn new(prefix: &str) -> GlobalLimiter {
        GlobalLimiter {
            script: Script::new(GCRA),
            prefix: prefix.to_string(),
        }
    }

    /// Counts one request of `token` against `limit` per minute, across nodes.
    pub fn check(&self, redis: &Redis, token: &str, limit: u32) -> Result<Decision, RedisDown> {
        let limit = limit.max(1);
        let key = format!("{}rl:{token}", self.prefix);
        let (allowed, remaining, reset, retry): (i64, i64, i64, i64) =
            redis.run(|c| self.script.key(&key).arg(limit).invoke(c))?;
        let us = |v: i64| Duration::from_micros(v.max(0) as u64);
        Ok(Decision {
            allowed: allowed == 1,
            limit,
            remaining: remaining.clamp(0, i64::from(limit)) as u32,
            reset: us(reset),
            retry_after: us(retry),
        })
    }
}
