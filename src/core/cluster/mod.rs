//! Several switches behind one API address, sharing what must be shared in
//! Redis (the engine FreeSWITCH deployments already run for `mod_hiredis`):
//! this node's membership ([`heartbeat`]) and the connection ([`redis`]) that
//! the shared-state backends use: admission (rate limit, `Idempotency-Key`s,
//! the call's owner: [`crate::core::admission::redis`]) and call lookup
//! ([`crate::core::directory::redis`]). Opt-in: without a `<cluster>` section
//! none of this exists. See docs/cluster.md.
//!
//! When Redis is unreachable a node keeps working on its own: its local
//! rate limiter (counted in `c2c_cluster_ratelimit_local_total`), 503 for
//! requests with an `Idempotency-Key`, lookups of its own calls only. The
//! heartbeat keeps probing, and the node is whole again as soon as Redis
//! answers.

pub mod heartbeat;
pub mod redis;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::core::config::ClusterSettings;
use crate::core::log::{LogHook, LogLevel};

use self::heartbeat::{Beat, BeatHook, Heartbeat, NodeSeen};
use self::redis::Redis;

/// The key of a call's owner record: the name of the node that placed it.
pub fn owner_key(prefix: &str, call_uuid: Uuid) -> String {
    format!("{prefix}call:{call_uuid}")
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
    view: Arc<Mutex<Vec<NodeSeen>>>,
    heartbeat: Heartbeat,
    hooks: Arc<Mutex<Vec<BeatHook>>>,
    /// Counters for `/metrics`, kept by the backends that use this node's Redis.
    pub stats: Arc<ClusterStats>,
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
        let hooks = Arc::new(Mutex::new(Vec::new()));
        let beat = Arc::new(Beat {
            hooks: Arc::clone(&hooks),
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
            settings: settings.clone(),
            url,
            redis,
            view,
            heartbeat,
            hooks,
            stats: Arc::default(),
            log,
        }))
    }

    /// Runs `hook` on the heartbeat thread after every heartbeat Redis
    /// answered, until the node leaves.
    pub fn on_beat(&self, hook: BeatHook) {
        self.hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hook);
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

    /// The connection the shared-state backends use.
    pub fn redis(&self) -> Arc<Redis> {
        Arc::clone(&self.redis)
    }

    /// The counters those backends keep.
    pub fn stats(&self) -> Arc<ClusterStats> {
        Arc::clone(&self.stats)
    }

    /// Where operator messages go.
    pub fn log(&self) -> LogHook {
        Arc::clone(&self.log)
    }

    /// The URL of the node named `name`, if it is up as this node last saw it.
    pub fn node_url(&self, name: &str) -> Option<String> {
        self.view
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|n| n.name == name && n.up)
            .map(|n| n.url.clone())
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
