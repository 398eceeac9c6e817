//! Global `Idempotency-Key`s, under `<prefix>idem:<sha256(token, key)>`. A
//! key is claimed by the admission script ([`super::redis_script`]) atomically
//! with the rate-limit decision; the claim holds [`CLAIM_TTL`] while the call
//! is placed, then the 202 replaces it for the key's whole TTL. Two nodes
//! racing on one key: one places the call, the others wait for its answer
//! and replay it.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use redis::Script;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::interface::Answer;
use super::keys::fingerprint;
use crate::core::cluster::redis::Redis;

/// How long a claim holds before its answer is stored: a node that dies
/// while placing the call frees the key after this.
pub const CLAIM_TTL: Duration = Duration::from_secs(60);

/// Deletes KEYS[1] only if it still holds ARGV[1] (our claim).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

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
    /// A claim the admission script made.
    pub fn new(
        redis: Arc<Redis>,
        key: String,
        claim: String,
        fingerprint: String,
        ttl: Duration,
    ) -> GlobalPending {
        GlobalPending {
            redis,
            key,
            claim,
            fingerprint,
            ttl,
            released: false,
        }
    }

    /// The connection the claim was made on.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// The Redis key (for the pipeline that stores the answer).
    pub fn redis_key(&self) -> &str {
        &self.key
    }

    /// What to store as the key's answer (`None`: not a success, release the key).
    pub fn answer_value(&self, response: &Answer) -> Option<(String, u64)> {
        if !response.is_success() {
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

/// What a key already in Redis means for a request with this fingerprint.
pub enum Seen {
    /// Answered before (by any node): send this again.
    Replay(Answer),
    /// Claimed by a request still being handled: wait and look again.
    InProgress,
    /// Used with another body: 409.
    OtherBody,
    /// Not readable as ours.
    Unreadable,
}

/// The Redis key of `key` of `token`.
pub fn redis_key(prefix: &str, token: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(token.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    format!("{prefix}idem:{}", hex(&h.finalize()))
}

/// A new claim by `node` for a request body with fingerprint `fp` (hex).
pub fn claim_value(fp: &str, node: &str) -> String {
    json!({
        "state": "pending",
        "fp": fp,
        "node": node,
        "claim": uuid::Uuid::new_v4().simple().to_string(),
    })
    .to_string()
}

/// The fingerprint of a request body, as stored (hex).
pub fn body_fingerprint(body: &[u8]) -> String {
    hex(&fingerprint(body))
}

/// Reads the value a key already has.
pub fn judge(seen: &str, fp: &str) -> Seen {
    let v: Value = serde_json::from_str(seen).unwrap_or(Value::Null);
    if v["fp"].as_str() != Some(fp) {
        return Seen::OtherBody;
    }
    match v["state"].as_str() {
        Some("done") => stored_response(&v).map_or(Seen::Unreadable, Seen::Replay),
        Some("pending") => Seen::InProgress,
        _ => Seen::Unreadable,
    }
}

fn stored_response(v: &Value) -> Option<Answer> {
    let body = base64::engine::general_purpose::STANDARD
        .decode(v["body"].as_str()?)
        .ok()?;
    let headers = serde_json::from_value(v["headers"].clone()).ok()?;
    Some(Answer {
        status: u16::try_from(v["status"].as_u64()?).ok()?,
        headers,
        body,
    })
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_claims_and_answers_read_back() {
        // Token and key are hashed together: no separator ambiguity.
        assert_ne!(redis_key("p:", "a:b", "c"), redis_key("p:", "a", "b:c"));
        assert!(redis_key("p:", "t", "k").starts_with("p:idem:"));
        let fp = body_fingerprint(br#"{"a": 1, "b": 2}"#);
        assert_eq!(fp, body_fingerprint(br#"{"b":2,"a":1}"#));
        let claim = claim_value(&fp, "n1");
        assert!(matches!(judge(&claim, &fp), Seen::InProgress));
        assert!(matches!(judge(&claim, "other"), Seen::OtherBody));
        assert!(matches!(judge("garbage", &fp), Seen::OtherBody));
        let pending = GlobalPending {
            redis: Redis::new(
                &crate::core::config::ClusterSettings::new(
                    "redis://127.0.0.1:1",
                    "n1",
                    "0123456789abcdef",
                ),
                Arc::new(|_, _, _| {}),
            )
            .unwrap(),
            key: "k".into(),
            claim,
            fingerprint: fp.clone(),
            ttl: Duration::from_secs(60),
            released: true,
        };
        let ok = Answer {
            status: 202,
            headers: vec![("Location".into(), "/x".into())],
            body: br#"{"data":{"call_uuid":"u"}}"#.to_vec(),
        };
        let (stored, ttl_ms) = pending.answer_value(&ok).unwrap();
        assert_eq!(ttl_ms, 60_000);
        let Seen::Replay(r) = judge(&stored, &fp) else {
            panic!("a stored 202 replays")
        };
        assert_eq!(
            (r.status, r.body, r.headers),
            (ok.status, ok.body.clone(), ok.headers.clone())
        );
        assert!(pending
            .answer_value(&Answer {
                status: 422,
                headers: Vec::new(),
                body: b"{}".to_vec(),
            })
            .is_none());
    }
}
