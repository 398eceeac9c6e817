//! Several switches behind one API address, sharing what must be shared in
//! Redis (the engine FreeSWITCH deployments already run for `mod_hiredis`):
//! the rate limit ([`ratelimit`]), `Idempotency-Key`s ([`idempotency`]),
//! who owns which call ([`lookup`]) and which nodes are alive
//! ([`heartbeat`]). Opt-in: without a `<cluster>` section none of this
//! exists. See docs/cluster.md.
//!
//! When Redis is unreachable a node keeps working on its own: its local
//! rate limiter (counted in `c2c_cluster_ratelimit_local_total`), 503 for
//! requests with an `Idempotency-Key`, lookups of its own calls only. The
//! heartbeat keeps probing, and the node is whole again as soon as Redis
//! answers.

pub mod heartbeat;
pub mod idempotency;
pub mod lookup;
pub mod ratelimit;
pub mod redis;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::core::config::ClusterSettings;
use crate::core::http::idempotency::WAIT_FOR_FIRST;
use crate::core::http::message::Response;
use crate::core::http::ratelimit::{Decision, RateLimiter};
use crate::core::webhooks::{LogHook, LogLevel};

use self::heartbeat::{Beat, Heartbeat, NodeSeen};
use self::idempotency::{GlobalPending, Seen, CLAIM_TTL};
use self::lookup::Forwarder;
use self::ratelimit::{Admission, Ask, Verdict};
use self::redis::{Redis, RedisDown};

/// How often a duplicate looks whether the first request has answered.
const POLL: Duration = Duration::from_millis(20);

/// A click-to-call to admit ([`Cluster::admit`]).
pub struct Admit<'a> {
    /// The token's name.
    pub token: &'a str,
    /// Its `Idempotency-Key`, if any.
    pub key: Option<&'a str>,
    pub body: &'a [u8],
    /// How long the key is remembered.
    pub ttl: Duration,
    /// Requests per minute; `None`: no limit.
    pub limit: Option<u32>,
    /// The UUID the call will be placed under.
    pub call_uuid: Uuid,
}

/// What to do with a click-to-call ([`Cluster::admit`]).
pub enum Gate {
    /// Place the call; then [`Cluster::answered`] with `pending`.
    Proceed {
        /// For the `RateLimit-*` headers, when a limit is on.
        decision: Option<Decision>,
        pending: Option<GlobalPending>,
    },
    /// 429.
    Limited(Decision),
    /// The key's stored answer.
    Replay(Response),
    /// 409.
    Conflict(&'static str),
    /// 503: a key that Redis could not check.
    Unavailable(String),
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct ClusterStats {
    /// Rate-limit decisions made by this node's own limiter because Redis was unreachable.
    pub ratelimit_local: AtomicU64,
    /// Requests with an `Idempotency-Key` refused (503) because Redis was unreachable.
    pub idempotency_unavailable: AtomicU64,
    /// Call lookups answered by asking the owner node.
    pub forwarded: AtomicU64,
    /// Call lookups whose owner node could not be asked.
    pub forward_failed: AtomicU64,
    /// Key answers that could not be stored after a 202.
    pub record_failed: AtomicU64,
}

/// This node's part in the cluster.
pub struct Cluster {
    settings: ClusterSettings,
    url: String,
    redis: Arc<Redis>,
    admission: Admission,
    forwarder: Forwarder,
    view: Arc<Mutex<Vec<NodeSeen>>>,
    heartbeat: Heartbeat,
    /// Counters for `/metrics`.
    pub stats: ClusterStats,
    log: LogHook,
}

impl Cluster {
    /// Joins the cluster as the node reachable at `url` (its HTTP API). A
    /// Redis that cannot be reached now is not an error: the node starts on
    /// its own, says so loudly, and joins as soon as Redis answers.
    pub fn start(
        settings: &ClusterSettings,
        url: String,
        log: LogHook,
    ) -> Result<Arc<Cluster>, String> {
        let redis = Redis::new(settings, Arc::clone(&log))?;
        let view = Arc::new(Mutex::new(Vec::new()));
        let beat = Arc::new(Beat {
            redis: Arc::clone(&redis),
            prefix: settings.key_prefix.clone(),
            node: settings.node_name.clone(),
            url: url.clone(),
            interval: settings.heartbeat_interval,
            ttl: settings.node_ttl,
            view: Arc::clone(&view),
        });
        if !beat.once() {
            log(
                LogLevel::Error,
                None,
                &format!(
                    "cluster: REDIS IS UNREACHABLE at start ({}): node {} serves on its own \
                     (local rate limit, 503 for Idempotency-Keys, its own calls only) and \
                     joins the cluster when Redis answers",
                    redacted(&settings.redis_url),
                    settings.node_name
                ),
            );
        }
        let heartbeat = Heartbeat::start(beat)?;
        Ok(Arc::new(Cluster {
            admission: Admission::new(&settings.key_prefix),
            forwarder: Forwarder::new(settings.forward_timeout),
            settings: settings.clone(),
            url,
            redis,
            view,
            heartbeat,
            stats: ClusterStats::default(),
            log,
        }))
    }

    /// Leaves the cluster: stops the heartbeat (this node's key is deleted)
    /// and closes the connections, within `deadline`.
    pub fn stop(&self, deadline: Duration) -> bool {
        let ok = self.heartbeat.stop(deadline);
        self.redis.close();
        ok
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        &self.settings.node_name
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// Whether Redis answered last time.
    pub fn redis_up(&self) -> bool {
        self.redis.is_up()
    }

    /// Admits a click-to-call that will be placed as `call_uuid`: in one
    /// Redis round trip, its `Idempotency-Key` (if any) is looked up and
    /// claimed, the token's rate limit decided, and this node recorded as
    /// the call's owner. Redis unreachable: the local limiter decides
    /// (counted), and a request with a key is refused (503).
    pub fn admit(&self, local: &RateLimiter, req: &Admit) -> Gate {
        let prefix = &self.settings.key_prefix;
        let owner_key = lookup::owner_key(prefix, req.call_uuid);
        let fp = idempotency::body_fingerprint(req.body);
        let rkey = req
            .key
            .map(|k| idempotency::redis_key(prefix, req.token, k));
        let claim = idempotency::claim_value(&fp, &self.settings.node_name);
        let claim_ttl = idempotency::CLAIM_TTL.min(req.ttl);
        let ask = Ask {
            token: req.token,
            limit: req.limit,
            claim: rkey.as_deref().map(|k| (k, claim.as_str(), claim_ttl)),
            owner: (
                &owner_key,
                &self.settings.node_name,
                self.settings.call_owner_ttl,
            ),
        };
        let until = Instant::now() + WAIT_FOR_FIRST;
        loop {
            let verdict = match self.admission.ask(&self.redis, &ask) {
                Ok(v) => v,
                Err(e) if rkey.is_some() => {
                    self.stats
                        .idempotency_unavailable
                        .fetch_add(1, Ordering::Relaxed);
                    return Gate::Unavailable(e.to_string());
                }
                Err(e) => return self.local_limit(local, req, &e),
            };
            match verdict {
                Verdict::Admitted(decision) => {
                    let pending = rkey.map(|k| {
                        GlobalPending::new(Arc::clone(&self.redis), k, claim, fp, req.ttl)
                    });
                    return Gate::Proceed { decision, pending };
                }
                Verdict::Limited(d) => return Gate::Limited(d),
                Verdict::Seen(seen) => match idempotency::judge(&seen, &fp) {
                    Seen::Replay(r) => return Gate::Replay(r),
                    Seen::OtherBody => {
                        return Gate::Conflict(
                            "this Idempotency-Key was used with another request body",
                        )
                    }
                    Seen::Unreadable => {
                        return Gate::Unavailable("unreadable stored answer".into())
                    }
                    Seen::InProgress if Instant::now() >= until => {
                        return Gate::Conflict(
                            "a request with this Idempotency-Key is still in progress",
                        )
                    }
                    Seen::InProgress => std::thread::sleep(POLL),
                },
            }
        }
    }

    fn local_limit(&self, local: &RateLimiter, req: &Admit, e: &RedisDown) -> Gate {
        let Some(limit) = req.limit else {
            return Gate::Proceed {
                decision: None,
                pending: None,
            };
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
        let d = local.check(req.token, limit);
        if d.allowed {
            Gate::Proceed {
                decision: Some(d),
                pending: None,
            }
        } else {
            Gate::Limited(d)
        }
    }

    /// After the answer to an admitted request with a key: stores a 2xx as
    /// the key's answer for its whole TTL (one round trip), or releases the
    /// key. The answer has been decided: a failure here is logged and
    /// counted, not returned (the claim then expires after [`CLAIM_TTL`]).
    pub fn answered(&self, response: &Response, call_uuid: Uuid, pending: Option<GlobalPending>) {
        let Some(pending) = pending else { return };
        let Some((value, ttl_ms)) = pending.answer_value(response) else {
            return; // released by the drop
        };
        let done = self.redis.run(|c| {
            ::redis::cmd("SET")
                .arg(pending.redis_key())
                .arg(&value)
                .arg("PX")
                .arg(ttl_ms)
                .query::<()>(c)
        });
        match done {
            Ok(()) => pending.stored(),
            Err(e) => {
                self.stats.record_failed.fetch_add(1, Ordering::Relaxed);
                (self.log)(
                    LogLevel::Error,
                    Some(&call_uuid.to_string()),
                    &format!(
                        "cluster: call accepted, but its Idempotency-Key answer could not be \
                         stored in Redis ({e}): a retry within {} s is answered 409, later \
                         ones could place it again",
                        CLAIM_TTL.as_secs()
                    ),
                );
                pending.stored();
            }
        }
    }

    /// `method path` for a call this node does not have: asks its owner.
    /// `None`: no node owns it (as far as Redis knows), or Redis is unreachable.
    pub fn ask_owner(
        &self,
        method: &str,
        path: &str,
        call_uuid: Uuid,
        token: &str,
    ) -> Option<Result<Response, String>> {
        let owner = lookup::owner(&self.redis, &self.settings.key_prefix, call_uuid).ok()??;
        if owner == self.settings.node_name {
            return None;
        }
        let url = self
            .view
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|n| n.name == owner && n.up)
            .map(|n| n.url.clone());
        let Some(url) = url else {
            self.stats.forward_failed.fetch_add(1, Ordering::Relaxed);
            return Some(Err(format!("node {owner}, which owns the call, is down")));
        };
        let r = self.forwarder.forward(
            method,
            &url,
            path,
            token,
            &self.settings.node_secret,
            &self.settings.node_name,
        );
        match &r {
            Ok(_) => self.stats.forwarded.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.stats.forward_failed.fetch_add(1, Ordering::Relaxed),
        };
        Some(r.map(|resp| resp.with_header(lookup::ANSWERED_BY_HEADER, owner.clone())))
    }

    /// Whether a request carries the node-to-node credential; then the
    /// token name it was made with.
    pub fn forwarded_token(&self, secret: Option<&str>, token: Option<&str>) -> Option<String> {
        use subtle::ConstantTimeEq;
        let secret = secret?;
        let ok: bool = secret
            .as_bytes()
            .ct_eq(self.settings.node_secret.as_bytes())
            .into();
        (ok && !token?.is_empty()).then(|| token.unwrap_or_default().to_string())
    }

    /// The nodes as this node last saw them.
    pub fn nodes(&self) -> Vec<NodeSeen> {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The `cluster` object of `/health`.
    pub fn health_json(&self) -> Value {
        let nodes: Vec<Value> = self
            .nodes()
            .iter()
            .map(|n| json!({"name": n.name, "up": n.up, "url": n.url, "last_seen_ms": n.last_seen_ms}))
            .collect();
        json!({
            "node": self.settings.node_name,
            "url": self.url,
            "redis": if self.redis_up() { "up" } else { "down" },
            "nodes_up": self.nodes().iter().filter(|n| n.up).count(),
            "nodes": nodes,
        })
    }

    /// Gauges and counters for `/metrics`: `(name with labels, kind, help, value)`.
    pub fn metrics(&self) -> Vec<(String, &'static str, &'static str, f64)> {
        let s = &self.stats;
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let mut out = vec![
            (
                "c2c_cluster_redis_up".to_string(),
                "gauge",
                "1 when Redis answered the last operation.",
                f64::from(u8::from(self.redis_up())),
            ),
            (
                "c2c_cluster_redis_errors_total".to_string(),
                "counter",
                "Redis operations that failed.",
                c(&self.redis.errors),
            ),
            (
                "c2c_cluster_ratelimit_local_total".to_string(),
                "counter",
                "Rate-limit decisions made by this node alone (Redis unreachable).",
                c(&s.ratelimit_local),
            ),
            (
                "c2c_cluster_idempotency_unavailable_total".to_string(),
                "counter",
                "Requests with an Idempotency-Key refused with 503 (Redis unreachable).",
                c(&s.idempotency_unavailable),
            ),
            (
                "c2c_cluster_forwarded_total".to_string(),
                "counter",
                "Call lookups answered by the owner node.",
                c(&s.forwarded),
            ),
            (
                "c2c_cluster_forward_failed_total".to_string(),
                "counter",
                "Call lookups whose owner node could not be asked.",
                c(&s.forward_failed),
            ),
            (
                "c2c_cluster_record_failed_total".to_string(),
                "counter",
                "Accepted calls whose owner or key answer could not be stored in Redis.",
                c(&s.record_failed),
            ),
        ];
        let nodes = self.nodes();
        out.push((
            "c2c_cluster_nodes_up".to_string(),
            "gauge",
            "Nodes heard from within node-ttl.",
            nodes.iter().filter(|n| n.up).count() as f64,
        ));
        for n in nodes {
            out.push((
                format!(
                    "c2c_cluster_node_up{{node=\"{}\"}}",
                    n.name.replace('\\', "\\\\").replace('"', "\\\"")
                ),
                "gauge",
                "1 for a node heard from within node-ttl, by node.",
                f64::from(u8::from(n.up)),
            ));
        }
        out
    }
}

/// The URL without its password, for logs.
pub fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://***@{}", &url[at + 1..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            super::redacted("redis://:s3cret@10.0.0.5:6379/0"),
            "redis://***@10.0.0.5:6379/0"
        );
        assert_eq!(
            super::redacted("redis://10.0.0.5:6379"),
            "redis://10.0.0.5:6379"
        );
    }
}
