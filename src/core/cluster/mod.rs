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
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::core::config::ClusterSettings;
use crate::core::http::message::Response;
use crate::core::http::ratelimit::{Decision, RateLimiter};
use crate::core::webhooks::{LogHook, LogLevel};

use self::heartbeat::{Beat, Heartbeat, NodeSeen};
use self::idempotency::{GlobalClaim, GlobalIdempotency, GlobalPending};
use self::lookup::Forwarder;
use self::ratelimit::GlobalLimiter;
use self::redis::Redis;

/// Counters for `/metrics`.
#[derive(Default)]
pub struct ClusterStats {
    /// Rate-limit decisions made by the local limiter because Redis was unreachable.
    pub ratelimit_local: AtomicU64,
    /// Requests with an `Idempotency-Key` refused (503) because Redis was unreachable.
    pub idempotency_unavailable: AtomicU64,
    /// Call lookups answered by asking the owner node.
    pub forwarded: AtomicU64,
    /// Call lookups whose owner node could not be asked.
    pub forward_failed: AtomicU64,
    /// Owner records or answers that could not be stored after a 202.
    pub record_failed: AtomicU64,
}

/// This node's part in the cluster.
pub struct Cluster {
    settings: ClusterSettings,
    url: String,
    redis: Arc<Redis>,
    limiter: GlobalLimiter,
    idempotency: GlobalIdempotency,
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
            limiter: GlobalLimiter::new(&settings.key_prefix),
            idempotency: GlobalIdempotency::new(&settings.key_prefix, &settings.node_name),
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

    /// One rate-limit decision: global in Redis, else `local` (counted).
    pub fn rate_limit(&self, local: &RateLimiter, token: &str, limit: u32) -> Decision {
        match self.limiter.check(&self.redis, token, limit) {
            Ok(d) => d,
            Err(e) => {
                let n = self.stats.ratelimit_local.fetch_add(1, Ordering::Relaxed);
                if n % 100 == 0 {
                    (self.log)(
                        LogLevel::Warning,
                        None,
                        &format!(
                            "cluster: rate limit decided by this node alone ({e}); \
                             {} such decisions so far",
                            n + 1
                        ),
                    );
                }
                local.check(token, limit)
            }
        }
    }

    /// Claims an `Idempotency-Key` across every node.
    pub fn claim(&self, token: &str, key: &str, body: &[u8], ttl: Duration) -> GlobalClaim {
        let claim = self.idempotency.claim(&self.redis, token, key, body, ttl);
        if matches!(claim, GlobalClaim::Unavailable(_)) {
            self.stats
                .idempotency_unavailable
                .fetch_add(1, Ordering::Relaxed);
        }
        claim
    }

    /// After an answer to a click-to-call: stores the key's answer (or
    /// releases the key) and records this node as the call's owner, in one
    /// round trip. The answer has been decided: a failure here is logged
    /// and counted, not returned.
    pub fn answered(
        &self,
        response: &Response,
        call_uuid: Option<Uuid>,
        pending: Option<GlobalPending>,
    ) {
        let answer = pending.as_ref().and_then(|p| p.answer_value(response));
        let owner = call_uuid.filter(|_| response.status == 202);
        if answer.is_none() && owner.is_none() {
            return; // a pending claim, if any, is released by its drop
        }
        let prefix = &self.settings.key_prefix;
        let done = self.redis.run(|c| {
            let mut pipe = ::redis::pipe();
            if let (Some(p), Some((value, ttl_ms))) = (&pending, &answer) {
                pipe.cmd("SET")
                    .arg(p.redis_key())
                    .arg(value)
                    .arg("PX")
                    .arg(*ttl_ms)
                    .ignore();
            }
            if let Some(uuid) = owner {
                pipe.cmd("SET")
                    .arg(lookup::owner_key(prefix, uuid))
                    .arg(&self.settings.node_name)
                    .arg("PX")
                    .arg(self.settings.call_owner_ttl.as_millis() as u64)
                    .ignore();
            }
            pipe.query::<()>(c)
        });
        match done {
            Ok(()) => {
                if let (Some(p), Some(_)) = (pending, answer) {
                    p.stored();
                }
            }
            Err(e) => {
                self.stats.record_failed.fetch_add(1, Ordering::Relaxed);
                // While Redis is known down, the transition was said once, loudly.
                if e == redis::RedisDown::Down {
                    return;
                }
                (self.log)(
                    LogLevel::Error,
                    call_uuid.map(|u| u.to_string()).as_deref(),
                    &format!(
                        "cluster: call accepted, but its owner / Idempotency-Key answer could \
                         not be stored in Redis ({e}): other nodes cannot find it"
                    ),
                );
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
                format!("c2c_cluster_node_up{{node=\"{}\"}}", n.name),
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
