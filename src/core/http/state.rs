//! What every handler shares: the engine, admission and the call directory
//! (of the shared-state backend in force), the counters, and the hooks other
//! parts of the module attach.

use std::sync::{Arc, RwLock};

use crate::core::admission::{self, Admission};
use crate::core::backend::Backend;
use crate::core::cluster::Cluster;
use crate::core::config::HttpSettings;
use crate::core::directory::{self, CallDirectory};
use crate::core::engine::Engine;
use crate::core::gcra::{Clock, MonotonicClock};
use crate::core::metrics::Exposition;

use super::counters::Metrics;
use super::tls::{self, CertStore};
use crate::core::webhooks::admin::WebhookAdmin;

/// Metrics that other parts of the module add to `/metrics` (the webhook
/// service's, the store's): written, typed and described, into the page.
pub type ExtraMetrics = Box<dyn Fn(&mut Exposition) + Send + Sync>;

/// The state behind the router.
pub struct HttpState {
    pub engine: Arc<Engine>,
    pub metrics: Metrics,
    clock: Arc<dyn Clock>,
    admission: RwLock<Arc<dyn Admission>>,
    directory: RwLock<Arc<dyn CallDirectory>>,
    extra_metrics: RwLock<Option<ExtraMetrics>>,
    webhook_admin: RwLock<Option<Arc<dyn WebhookAdmin>>>,
    /// The HTTPS certificate being served, when the listener has TLS.
    tls: RwLock<Option<Arc<CertStore>>>,
    /// This node's part in a cluster, when `<cluster>` is configured (for
    /// `/health` and `/metrics` only: requests go through the backends).
    cluster: RwLock<Option<Arc<Cluster>>>,
}

/// A certificate read for a reload, not yet served ([`HttpState::prepare_tls`]).
pub struct PreparedTls(Option<(Arc<CertStore>, Arc<rustls::sign::CertifiedKey>)>);

impl HttpState {
    /// State over `engine` with the real clock, shared state in memory.
    pub fn new(engine: Arc<Engine>) -> Arc<HttpState> {
        HttpState::with_clock(engine, Arc::new(MonotonicClock::default()))
    }

    /// State over `engine` with an injected clock (rate limit, key expiry).
    pub fn with_clock(engine: Arc<Engine>, clock: Arc<dyn Clock>) -> Arc<HttpState> {
        HttpState::with_backend(engine, &Backend::Local { store: None }, clock)
    }

    /// State over `engine` with shared state in `backend`.
    pub fn with_backend(
        engine: Arc<Engine>,
        backend: &Backend,
        clock: Arc<dyn Clock>,
    ) -> Arc<HttpState> {
        engine.set_backend(backend);
        Arc::new(HttpState {
            admission: RwLock::new(admission::for_backend(backend, Arc::clone(&clock))),
            directory: RwLock::new(directory::for_backend(backend, Arc::clone(&engine))),
            clock,
            engine,
            metrics: Metrics::default(),
            extra_metrics: RwLock::new(None),
            webhook_admin: RwLock::new(None),
            tls: RwLock::new(None),
            cluster: RwLock::new(None),
        })
    }

    /// Attaches metrics that `/metrics` adds (the webhook service's, …).
    pub fn set_extra_metrics(&self, metrics: Option<ExtraMetrics>) {
        *self
            .extra_metrics
            .write()
            .unwrap_or_else(|e| e.into_inner()) = metrics;
    }

    /// Writes the attached metrics, if a source is attached.
    pub fn write_extra_metrics(&self, out: &mut Exposition) {
        if let Some(f) = self
            .extra_metrics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            f(out);
        }
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

    /// Puts `backend`'s admission and call directory in force (a cluster
    /// node joins once its HTTP address is known).
    pub fn set_backend(&self, backend: &Backend) {
        let admission = admission::for_backend(backend, Arc::clone(&self.clock));
        let directory = directory::for_backend(backend, Arc::clone(&self.engine));
        *self.admission.write().unwrap_or_else(|e| e.into_inner()) = admission;
        *self.directory.write().unwrap_or_else(|e| e.into_inner()) = directory;
        let cluster = match backend {
            Backend::Redis(c) => Some(Arc::clone(c)),
            Backend::Local { .. } => None,
        };
        *self.cluster.write().unwrap_or_else(|e| e.into_inner()) = cluster;
        self.engine.set_backend(backend);
    }

    /// The admission in force.
    pub fn admission(&self) -> Arc<dyn Admission> {
        self.admission
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The call directory in force.
    pub fn directory(&self) -> Arc<dyn CallDirectory> {
        self.directory
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The cluster, if this node is in one (its status, for `/health` and `/metrics`).
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
