//! Admission shared by every node of a cluster, in Redis: one round trip
//! looks the `Idempotency-Key` up and claims it, decides the token's rate
//! limit and records this node as the owner of the call about to be placed
//! ([`super::redis_script`]); a second stores a keyed 2xx for replay.
//!
//! Redis unreachable: this node's own GCRA decides (counted and logged), and
//! a request with a key is refused (503) rather than risk a second call.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::interface::{Admission, Admitted, Answer, Ask, Claim, Verdict};
use super::keys::WAIT_FOR_FIRST;
use super::limiter::RateLimiter;
use super::redis_keys::{self, GlobalPending, Seen, CLAIM_TTL};
use super::redis_script::{AdmitScript, AskRedis, RedisVerdict};
use crate::core::cluster::redis::{Redis, RedisDown};
use crate::core::cluster::{owner_key, Cluster, ClusterStats};
use crate::core::config::ClusterSettings;
use crate::core::gcra::Clock;
use crate::core::log::{LogHook, LogLevel};
use crate::core::store::Write;

/// How often a duplicate looks whether the first request has answered.
const POLL: Duration = Duration::from_millis(20);

/// The Redis backend.
pub struct RedisAdmission {
    settings: ClusterSettings,
    redis: Arc<Redis>,
    script: AdmitScript,
    stats: Arc<ClusterStats>,
    log: LogHook,
    /// Decides alone while Redis is unreachable.
    fallback: RateLimiter,
}

impl RedisAdmission {
    /// Admission through `cluster`'s Redis; `clock` for the fallback limiter.
    pub fn new(cluster: &Cluster, clock: Arc<dyn Clock>) -> RedisAdmission {
        let settings = cluster.settings().clone();
        RedisAdmission {
            script: AdmitScript::new(&settings.key_prefix),
            settings,
            redis: cluster.redis(),
            stats: cluster.stats(),
            log: cluster.log(),
            fallback: RateLimiter::new(clock),
        }
    }

    fn local_limit(&self, ask: &Ask, e: &RedisDown) -> Verdict {
        let Some(limit) = ask.limit else {
            return Verdict::Proceed(Admitted::new(None, None));
        };
        let n = self.stats.ratelimit_local.fetch_add(1, Ordering::Relaxed);
        if n % 100 == 0 {
            (self.log)(
                LogLevel::Warning,
                None,
                &format!(
                    "cluster: rate limit decided by this node alone ({e}); {} such decisions so far",
                    n + 1
                ),
            );
        }
        let d = self.fallback.check(ask.token, limit);
        if d.allowed {
            Verdict::Proceed(Admitted::new(Some(d), None))
        } else {
            Verdict::Limited(d)
        }
    }
}

impl Admission for RedisAdmission {
    fn admit(&self, ask: &Ask) -> Verdict {
        let prefix = &self.settings.key_prefix;
        let owner_key = owner_key(prefix, ask.call_uuid);
        let fp = redis_keys::body_fingerprint(ask.body);
        let rkey = ask.key.map(|k| redis_keys::redis_key(prefix, ask.token, k));
        let claim = redis_keys::claim_value(&fp, &self.settings.node_name);
        let claim_ttl = CLAIM_TTL.min(ask.ttl);
        let question = AskRedis {
            token: ask.token,
            limit: ask.limit,
            claim: rkey.as_deref().map(|k| (k, claim.as_str(), claim_ttl)),
            owner: (
                &owner_key,
                &self.settings.node_name,
                self.settings.call_owner_ttl,
            ),
        };
        let until = Instant::now() + WAIT_FOR_FIRST;
        loop {
            let verdict = match self.script.ask(&self.redis, &question) {
                Ok(v) => v,
                Err(e) if rkey.is_some() => {
                    self.stats
                        .idempotency_unavailable
                        .fetch_add(1, Ordering::Relaxed);
                    return Verdict::Unavailable(e.to_string());
                }
                Err(e) => return self.local_limit(ask, &e),
            };
            match verdict {
                RedisVerdict::Admitted(decision) => {
                    let claim = rkey.map(|k| {
                        Box::new(RedisClaim {
                            pending: GlobalPending::new(
                                Arc::clone(&self.redis),
                                k,
                                claim,
                                fp,
                                ask.ttl,
                            ),
                            call_uuid: ask.call_uuid,
                            stats: Arc::clone(&self.stats),
                            log: Arc::clone(&self.log),
                        }) as Box<dyn Claim>
                    });
                    return Verdict::Proceed(Admitted::new(decision, claim));
                }
                RedisVerdict::Limited(d) => return Verdict::Limited(d),
                RedisVerdict::Seen(seen) => match redis_keys::judge(&seen, &fp) {
                    Seen::Replay(r) => return Verdict::Replay(r),
                    Seen::OtherBody => {
                        return Verdict::Conflict(
                            "this Idempotency-Key was used with another request body",
                        )
                    }
                    Seen::Unreadable => {
                        return Verdict::Unavailable("unreadable stored answer".into())
                    }
                    Seen::InProgress if Instant::now() >= until => {
                        return Verdict::Conflict(
                            "a request with this Idempotency-Key is still in progress",
                        )
                    }
                    Seen::InProgress => std::thread::sleep(POLL),
                },
            }
        }
    }

    fn remote(&self) -> bool {
        true
    }
}

/// A key claimed in Redis; its answer is stored there once it is known.
struct RedisClaim {
    pending: GlobalPending,
    call_uuid: Uuid,
    stats: Arc<ClusterStats>,
    log: LogHook,
}

impl Claim for RedisClaim {
    fn durable(&self, _answer: &Answer) -> Vec<Write> {
        Vec::new()
    }

    /// Stores a 2xx as the key's answer for its whole TTL (one round trip),
    /// or releases the key. The answer has been decided: a failure here is
    /// logged and counted, not returned (the claim then expires after
    /// [`CLAIM_TTL`]).
    fn finish(self: Box<Self>, answer: &Answer) {
        let RedisClaim {
            pending,
            call_uuid,
            stats,
            log,
        } = *self;
        let Some((value, ttl_ms)) = pending.answer_value(answer) else {
            return; // released by the drop
        };
        let done = pending.redis().run(|c| {
            ::redis::cmd("SET")
                .arg(pending.redis_key())
                .arg(&value)
                .arg("PX")
                .arg(ttl_ms)
                .query::<()>(c)
        });
        if let Err(e) = done {
            stats.record_failed.fetch_add(1, Ordering::Relaxed);
            log(
                LogLevel::Error,
                Some(&call_uuid.to_string()),
                &format!(
                    "cluster: call accepted, but its Idempotency-Key answer could not be \
                     stored in Redis ({e}): a retry within {} s is answered 409, later \
                     ones could place it again",
                    CLAIM_TTL.as_secs()
                ),
            );
        }
        pending.stored();
    }
}
