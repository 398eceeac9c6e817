//! What every handler shares: the engine, the limiter, the idempotency store,
//! the counters, and the hooks other parts of the module attach.

use std::sync::{Arc, RwLock};

use crate::core::cluster::Cluster;
use crate::core::config::HttpSettings;
use crate::core::engine::Engine;

use super::idempotency::IdempotencyStore;
use super::metrics::Metrics;
use super::ratelimit::{Clock, MonotonicClock, RateLimiter};
use super::tls::{self, CertStore};
use super::webhook_admin::WebhookAdmin;

/// Extra gauges for `/metrics`: `(name, value)`, where the name may carry
/// Prometheus labels, e.g. `("c2c_webhook_queue_depth", 3.0)`.
pub type ExtraGauges = Box<dyn Fn() -> Vec<(String, f64)> + Send + Sync>;

/// The state behind the router.
pub struct HttpState {
    pub engine: Arc<Engine>,
    pub limiter: RateLimiter,
    pub idempotency: Arc<IdempotencyStore>,
    pub metrics: Metrics,
    extra_gauges: RwLock<Option<ExtraGauges>>,
    webhook_admin: RwLock<Option<Arc<dyn WebhookAdmin>>>,
    /// The HTTPS certificate being served, when the listener has TLS.
    tls: RwLock<Option<Arc<CertStore>>>,
    /// This node's part in a cluster, when `<cluster>` is configured.
    cluster: RwLock<Option<Arc<Cluster>>>,
}

/// A certificate read for a reload, not yet served ([`HttpState::prepare_tls`]).
pub struct PreparedTls(Option<(Arc<CertStore>, Arc<rustls::sign::CertifiedKey>)>);

impl HttpState {
    /// State over `engine` with the real clock.
    pub fn new(engine: Arc<Engine>) -> Arc<HttpState> {
        HttpState::with_clock(engine, Arc::new(MonotonicClock::default()))
    }

    /// State over `engine` with an injected clock (rate limit, key expiry).
    pub fn with_clock(engine: Arc<Engine>, clock: Arc<dyn Clock>) -> Arc<HttpState> {
        Arc::new(HttpState {
            engine,
            limiter: RateLimiter::new(Arc::clone(&clock)),
            idempotency: IdempotencyStore::new(clock),
            metrics: Metrics::default(),
            extra_gauges: RwLock::new(None),
            webhook_admin: RwLock::new(None),
            tls: RwLock::new(None),
            cluster: RwLock::new(None),
        })
    }

    /// Attaches gauges that `/metrics` adds (e.g. the webhook queue depth).
    pub fn set_extra_gauges(&self, gauges: Option<ExtraGauges>) {
        *self.extra_gauges.write().unwrap_or_else(|e| e.into_inner()) = gauges;
    }

    /// The extra gauges now, if a source is attached.
    pub fn extra_gauges(&self) -> Vec<(String, f64)> {
        self.extra_gauges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|f| f())
            .unwrap_or_default()
    }

    /// Attaches the webhook service's admin side (`None` detaches it).
    pub fn set_webhook_admin(&self, admin: Option<Arc<dyn WebhookAdmin>>) {
        *self
            .webhook_admin
            .write()
            .unwrap_or_else(|e| e.into_inner()) = admin;
    }

    /// The webhook admin, if attached.
    pub fn webhook_admin(&self) -> Option<Arc<dyn WebhookAdmin>> {
        self.webhook_admin
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Attaches the cluster (`None` detaches it).
    pub fn set_cluster(&self, cluster: Option<Arc<Cluster>>) {
        *self.cluster.write().unwrap_or_else(|e| e.into_inner()) = cluster;
    }

    /// The cluster, if this node is in one.
    pub fn cluster(&self) -> Option<Arc<Cluster>> {
        self.cluster
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The listener's certificate store (set by the listener when it serves HTTPS).
    pub fn set_tls(&self, store: Option<Arc<CertStore>>) {
        *self.tls.write().unwrap_or_else(|e| e.into_inner()) = store;
    }

    /// Reads the certificate and key `settings` name, when the listener
    /// serves HTTPS (a renewed certificate for `c2c reload`); nothing is
    /// served differently until [`HttpState::install_tls`]. Turning HTTPS
    /// on or off takes a restart of the listener.
    pub fn prepare_tls(&self, settings: &HttpSettings) -> Result<PreparedTls, String> {
        let store = self.tls.read().unwrap_or_else(|e| e.into_inner()).clone();
        match (store, &settings.tls_cert, &settings.tls_key) {
            (Some(store), Some(cert), Some(key)) => {
                Ok(PreparedTls(Some((store, tls::read_pair(cert, key)?))))
            }
            _ => Ok(PreparedTls(None)),
        }
    }

    /// Serves a prepared certificate to new handshakes; open connections
    /// keep theirs.
    pub fn install_tls(&self, prepared: PreparedTls) {
        if let Some((store, pair)) = prepared.0 {
            store.replace(pair);
        }
    }
}
