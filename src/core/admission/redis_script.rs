//! Admission in one round trip: one Lua script, atomic in Redis, that
//! (1) looks the request's `Idempotency-Key` up, (2) runs the same GCRA as
//! [`crate::core::gcra::gcra`] on the token's bucket, on Redis's
//! own clock (the nodes' clocks need not agree), and if the request is let
//! through (3) claims the key and (4) records this node as the owner of the
//! call it is about to place. Times are microseconds; a bucket expires when
//! it is full again.

use std::time::Duration;

use redis::Script;

use crate::core::cluster::redis::{Redis, RedisDown};
use crate::core::gcra::Decision;

/// KEYS: bucket, idempotency key (unused when ARGV[2] is empty), owner key.
/// ARGV: limit per minute (0: none), claim value ('' : no key), claim TTL ms,
/// node name, owner TTL ms.
/// Returns {code, remaining, reset_us, retry_after_us, seen}: code 1 let
/// through, 0 refused by the limit, 2 the key is already there (`seen`).
const ADMIT: &str = r"
if ARGV[2] ~= '' then
  local seen = redis.call('GET', KEYS[2])
  if seen then return {2, 0, 0, 0, seen} end
end
local limit = tonumber(ARGV[1])
local remaining, reset = 0, 0
if limit > 0 then
  local interval = math.floor(60000000 / limit)
  local tolerance = interval * (limit - 1)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local tat = tonumber(redis.call('GET', KEYS[1]) or now)
  if tat < now then tat = now end
  local ahead = tat - now
  if ahead > tolerance then
    return {0, 0, ahead, ahead - tolerance, ''}
  end
  local new_tat = tat + interval
  ahead = new_tat - now
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil(ahead / 1000) + 1)
  remaining = math.floor((tolerance + interval - ahead) / interval)
  reset = ahead
end
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
return {1, remaining, reset, 0, ''}
";

/// What Redis said about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisVerdict {
    /// Let through: the key (if any) is claimed and the owner recorded;
    /// the limit's headers, when a limit is on.
    Admitted(Option<Decision>),
    /// Refused by the rate limit (nothing claimed or recorded).
    Limited(Decision),
    /// The key is already there, with this value.
    Seen(String),
}

/// One request's admission.
pub struct AskRedis<'a> {
    pub token: &'a str,
    /// Requests per minute; `None`: no limit.
    pub limit: Option<u32>,
    /// The Redis key of the `Idempotency-Key`, and the claim to put there.
    pub claim: Option<(&'a str, &'a str, Duration)>,
    /// The Redis key of the call's owner record, this node's name, its TTL.
    pub owner: (&'a str, &'a str, Duration),
}

/// The admission script, loaded once (sent by its SHA; the body only when
/// Redis lacks it, e.g. after a restart).
pub struct AdmitScript {
    script: Script,
    prefix: String,
}

impl AdmitScript {
    /// Buckets under `<prefix>rl:<token>`.
    pub fn new(prefix: &str) -> AdmitScript {
        AdmitScript {
            script: Script::new(ADMIT),
            prefix: prefix.to_string(),
        }
    }

    /// One atomic decision.
    pub fn ask(&self, redis: &Redis, ask: &AskRedis) -> Result<RedisVerdict, RedisDown> {
        let limit = ask.limit.map_or(0, |l| l.max(1));
        let bucket = format!("{}rl:{}", self.prefix, ask.token);
        let (key, claim, claim_ttl) = ask.claim.unwrap_or(("", "", Duration::ZERO));
        let (owner_key, node, owner_ttl) = ask.owner;
        let ms = |d: Duration| d.as_millis().max(1) as u64;
        let (code, remaining, reset, retry, seen): (i64, i64, i64, i64, String) =
            redis.run(|c| {
                self.script
                    .key(&bucket)
                    .key(if key.is_empty() { &bucket } else { key })
                    .key(owner_key)
                    .arg(limit)
                    .arg(claim)
                    .arg(ms(claim_ttl))
                    .arg(node)
                    .arg(ms(owner_ttl))
                    .invoke(c)
            })?;
        let us = |v: i64| Duration::from_micros(v.max(0) as u64);
        let decision = Decision {
            allowed: code == 1,
            limit,
            remaining: remaining.clamp(0, i64::from(limit)) as u32,
            reset: us(reset),
            retry_after: us(retry),
        };
        Ok(match code {
            1 => RedisVerdict::Admitted(ask.limit.map(|_| decision)),
            0 => RedisVerdict::Limited(decision),
            _ => RedisVerdict::Seen(seen),
        })
    }
}
