//! Calls of a cluster. Each accepted call's owner is kept at
//! `<prefix>call:<uuid>` (the node's name, for `call-owner-ttl`), recorded
//! by the admission that let the call in; a call this node does not have is
//! asked of its owner ([`super::forward`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use uuid::Uuid;

use super::forward::{Forwarder, ANSWERED_BY_HEADER};
use super::interface::{CallDirectory, Found};
use super::local::visible;
use crate::core::cluster::redis::Redis;
use crate::core::cluster::{owner_key, Cluster, ClusterStats};
use crate::core::engine::Engine;

/// The Redis backend.
pub struct RedisDirectory {
    engine: Arc<Engine>,
    cluster: Arc<Cluster>,
    redis: Arc<Redis>,
    stats: Arc<ClusterStats>,
    forwarder: Forwarder,
}

impl RedisDirectory {
    /// Calls of `engine`, and of the other nodes of `cluster`.
    pub fn new(cluster: &Arc<Cluster>, engine: Arc<Engine>) -> RedisDirectory {
        RedisDirectory {
            engine,
            redis: cluster.redis(),
            stats: cluster.stats(),
            forwarder: Forwarder::new(cluster.settings().forward_timeout),
            cluster: Arc::clone(cluster),
        }
    }

    /// The node that owns `call_uuid`, if another one recorded it (as far
    /// as Redis knows; Redis unreachable: none).
    fn other_owner(&self, call_uuid: Uuid) -> Option<String> {
        let key = owner_key(&self.cluster.settings().key_prefix, call_uuid);
        let owner: Option<String> = self
            .redis
            .run(|c| ::redis::cmd("GET").arg(&key).query(c))
            .ok()?;
        let owner = owner?;
        (owner != self.cluster.node_name()).then_some(owner)
    }
}

impl CallDirectory for RedisDirectory {
    fn find(&self, call_uuid: Uuid, token: &str, method: &str, may_forward: bool) -> Found {
        if let Some(c) = visible(&self.engine, call_uuid, token) {
            return Found::Here(Box::new(c));
        }
        if !may_forward {
            return Found::Nowhere;
        }
        let Some(owner) = self.other_owner(call_uuid) else {
            return Found::Nowhere;
        };
        let Some(url) = self.cluster.node_url(&owner) else {
            self.stats.forward_failed.fetch_add(1, Ordering::Relaxed);
            return Found::Unreachable(format!("node {owner}, which owns the call, is down"));
        };
        let settings = self.cluster.settings();
        let answer = self.forwarder.forward(
            method,
            &url,
            &format!("/api/pbx/calls/{call_uuid}"),
            token,
            &settings.node_secret,
            &settings.node_name,
        );
        match answer {
            Ok(mut a) => {
                self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                a.headers.push((ANSWERED_BY_HEADER.to_string(), owner));
                Found::Elsewhere(a)
            }
            Err(e) => {
                self.stats.forward_failed.fetch_add(1, Ordering::Relaxed);
                Found::Unreachable(e)
            }
        }
    }

    fn forwarded_token(&self, secret: Option<&str>, token: Option<&str>) -> Option<String> {
        self.cluster.forwarded_token(secret, token)
    }

    fn remote(&self) -> bool {
        true
    }
}
