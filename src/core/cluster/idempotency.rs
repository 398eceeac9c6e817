//! Global `Idempotency-Key`s: a key is claimed with one `SET NX PX … GET`
//! (claimed, or the value it already had, in one round trip); the claim
//! holds [`CLAIM_TTL`] while the call is placed, then the 202 replaces it for
//! the key's whole TTL. Two nodes racing on one key: one places the call, the
//! other waits for its answer and replays it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use redis::Script;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::core::http::idempotency::{fingerprint, WAIT_FOR_FIRST};
use crate::core::http::message::Response;

use super::redis::{Redis, RedisDown};

/// How long a claim holds before its answer is stored: a node that dies
/// while placing the call frees the key after this.
pub const CLAIM_TTL: Duration = Duration::from_secs(60);
/// How often a duplicate looks whether the first request has answered.
const POLL: Duration = Duration::from_millis(20);

/// Deletes KEYS[1] only if it still holds ARGV[1] (our claim).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// What to do with a request that carries a key (as the local store's `Claim`).
pub enum GlobalClaim {
    /// First anywhere: place the call, then [`GlobalPending::finish`].
    Proceed(GlobalPending),
    /// Answered before (by any node): send this again.
    Replay(Response),
    /// Another body, or the first still running after the wait: 409.
    Conflict(&'static str),
    /// Redis could not be asked: 503 rather than risk a second call.
    Unavailable(String),
}

/// A key this node claimed; dropping it unfinished releases it.
pub struct GlobalPending {
    redis: Arc<Redis>,
    key: String,
    claim: String,
    fingerprint: String,
    ttl: Duration,
    released: bool,
}

impl GlobalPending {
    /// The Redis key (for the pipeline that stores the answer).
    pub fn redis_key(&self) -> &str {
        &self.key
    }

    /// What to store as the key's answer (`None`: not a success, release the key).
    pub fn answer_value(&self, response: &Response) -> Option<(String, u64)> {
        if !(200..300).contains(&response.status) {
            return None;
        }
        let body = base64::engine::general_purpose::STANDARD.encode(&response.body);
        let v = json!({
            "state": "done",
            "fp": self.fingerprint,
            "status": response.status,
            "headers": response.headers,
            "body": body,
        });
        Some((v.to_string(), self.ttl.as_millis().max(1) as u64))
    }

    /// The answer was stored (by the caller's pipeline): nothing to release.
    pub fn stored(mut self) {
        self.released = true;
    }
}

impl Drop for GlobalPending {
    fn drop(&mut self) {
        if !self.released {
            // Best effort: if Redis is gone, the claim expires after CLAIM_TTL.
            let _ = self.redis.run(|c| {
                Script::new(RELEASE)
                    .key(&self.key)
                    .arg(&self.claim)
                    .invoke::<i64>(c)
            });
        }
    }
}

/// Claims keys under `<prefix>idem:<sha256(token, key)>`.
pub struct GlobalIdempotency {
    prefix: String,
    node: String,
}

impl GlobalIdempotency {
    /// Claims for node `node`.
    pub fn new(prefix: &str, node: &str) -> GlobalIdempotency {
        GlobalIdempotency {
            prefix: prefix.to_string(),
            node: node.to_string(),
        }
    }

    fn redis_key(&self, token: &str, key: &str) -> String {
        let mut h = Sha256::new();
        h.update(token.as_bytes());
        h.update([0]);
        h.update(key.as_bytes());
        format!("{}idem:{}", self.prefix, hex(&h.finalize()))
    }

    /// Claims `key` of `token` for a request with this `body` on every node.
    pub fn claim(
        &self,
        redis: &Arc<Redis>,
        token: &str,
        key: &str,
        body: &[u8],
        ttl: Duration,
    ) -> GlobalClaim {
        let rkey = self.redis_key(token, key);
        let fp = hex(&fingerprint(body));
        let claim = json!({
            "state": "pending",
            "fp": fp,
            "node": self.node,
            "claim": uuid::Uuid::new_v4().simple().to_string(),
        })
        .to_string();
        let claim_ms = CLAIM_TTL.min(ttl).as_millis().max(1) as u64;
        let until = Instant::now() + WAIT_FOR_FIRST;
        loop {
            let old: Result<Option<String>, RedisDown> = redis.run(|c| {
                redis::cmd("SET")
                    .arg(&rkey)
                    .arg(&claim)
                    .arg("NX")
                    .arg("PX")
                    .arg(claim_ms)
                    .arg("GET")
                    .query(c)
            });
            let old = match old {
                Ok(None) => {
                    return GlobalClaim::Proceed(GlobalPending {
                        redis: Arc::clone(redis),
                        key: rkey,
                        claim,
                        fingerprint: fp,
                        ttl,
                        released: false,
                    })
                }
                Ok(Some(old)) => old,
                Err(e) => return GlobalClaim::Unavailable(e.to_string()),
            };
            let v: Value = serde_json::from_str(&old).unwrap_or(Value::Null);
            if v["fp"].as_str() != Some(fp.as_str()) {
                return GlobalClaim::Conflict(
                    "this Idempotency-Key was used with another request body",
                );
            }
            if v["state"] == "done" {
                match stored_response(&v) {
                    Some(r) => return GlobalClaim::Replay(r),
                    None => return GlobalClaim::Unavailable("unreadable stored answer".into()),
                }
            }
            if Instant::now() >= until {
                return GlobalClaim::Conflict(
                    "a request with this Idempotency-Key is still in progress",
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

fn stored_response(v: &Value) -> Option<Response> {
    let body = base64::engine::general_purpose::STANDARD
        .decode(v["body"].as_str()?)
        .ok()?;
    let headers = serde_json::from_value(v["headers"].clone()).ok()?;
    Some(Response {
        status: u16::try_from(v["status"].as_u64()?).ok()?,
        headers,
        body,
        close: false,
    })
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
