//! Wiring: one running click-to-call service (engine, webhooks, HTTP) over a
//! switch. The module builds one on load over FreeSWITCH; the sandbox builds
//! one over the simulated switch. No `unsafe` here.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::core::backend::Backend;
use crate::core::cluster::Cluster;
use crate::core::config::{ClusterSettings, Config, HttpSettings};
use crate::core::engine::Engine;
use crate::core::events::{EventSink, FanOut};
use crate::core::gcra::MonotonicClock;
use crate::core::http::{HttpServer, HttpState, WebhookAdmin};
use crate::core::journal::{CallJournal, StoreJournal};
use crate::core::log::LogLevel;
use crate::core::recording;
use crate::core::store::Store;
use crate::core::webhooks::{self, LogHook, WebhookService};
use crate::switch::{LegReport, Switch};

/// A running service.
pub struct App {
    pub engine: Arc<Engine>,
    /// Webhook delivery (spool, retries, dead letters).
    pub webhooks: Arc<WebhookService>,
    /// The durable store (spool, dead letters, idempotency keys, journal).
    pub store: Arc<dyn Store>,
    /// What the HTTP API shares; also usable without the listener, through
    /// [`crate::core::http::route`] (the module's `pbx` command for mod_xml_rpc).
    pub http_state: Arc<HttpState>,
    /// The HTTP listener, when `http.enabled`.
    pub http: Option<HttpServer>,
    /// This node's part in a cluster, when `<cluster>` is configured.
    pub cluster: Option<Arc<Cluster>>,
}

impl App {
    /// Starts everything over `switch`, logging to stderr. `extra_sinks` also
    /// receive every call event (the module mirrors them as CUSTOM events).
    pub fn start(
        config: Config,
        switch: Arc<dyn Switch>,
        legs: Receiver<LegReport>,
        extra_sinks: Vec<Arc<dyn EventSink>>,
    ) -> Result<App, String> {
        App::start_with_log(config, switch, legs, extra_sinks, webhooks::stderr_log())
    }

    /// [`App::start`] with operator messages going to `log` (the module
    /// passes one writing to the FreeSWITCH log). Opens the store, starts
    /// webhooks over it, then the engine over the store's call journal (calls
    /// survive a reload and a crash of the switch).
    pub fn start_with_log(
        config: Config,
        switch: Arc<dyn Switch>,
        legs: Receiver<LegReport>,
        extra_sinks: Vec<Arc<dyn EventSink>>,
        log: LogHook,
    ) -> Result<App, String> {
        match recording::check_format(&config, switch.as_ref()) {
            // At the switch's boot its format modules may load after us
            // (modules.conf order): a recording that cannot be written
            // then fails alone, and says so in its CDR.
            Err(e) if switch.booting() => log(
                LogLevel::Warning,
                None,
                &format!("{e} (yet: the switch is still loading its modules)"),
            ),
            r => r.map_err(|e| format!("config refused at {e}"))?,
        }
        let http_settings = config.http.clone();
        let cluster_settings = config.cluster.clone();
        let cluster_log = log.clone();
        let pace_log = log.clone();
        let store: Arc<dyn Store> =
            webhooks::open_store(&config.webhooks, config.ended_call_retention)?;
        let webhooks = match WebhookService::start_with_store(
            &config.webhooks,
            &config.tokens,
            Arc::clone(&store),
            log,
        ) {
            Ok(w) => w,
            Err(e) => {
                store.close(Duration::from_secs(2));
                return Err(e);
            }
        };
        let mut sinks: Vec<Arc<dyn EventSink>> = vec![webhooks.clone()];
        sinks.extend(extra_sinks);
        let journal: Arc<dyn CallJournal> = Arc::new(StoreJournal::new(Arc::clone(&store)));
        let engine = Engine::with_store(
            config,
            switch,
            legs,
            Arc::new(FanOut(sinks)),
            journal,
            Some(Arc::clone(&store)),
        );
        engine.pace.set_log(pace_log);
        let http_state = HttpState::with_backend(
            Arc::clone(&engine),
            &Backend::Local {
                store: Some(Arc::clone(&store)),
            },
            Arc::new(MonotonicClock::default()),
        );
        http_state.set_webhook_admin(Some(webhooks.clone() as Arc<dyn WebhookAdmin>));
        let (hooks, db) = (Arc::clone(&webhooks), Arc::clone(&store));
        http_state.set_extra_metrics(Some(Box::new(move |out| {
            hooks.write_metrics(out);
            if let Some(h) = db.commit_seconds() {
                let help = "Seconds each commit of the durable store took (fsync included).";
                out.histogram("c2c_store_commit_seconds", help, &[], &[(Vec::new(), h)]);
            }
        })));
        let http = if http_settings.enabled {
            match HttpServer::start(Arc::clone(&http_state), &http_settings) {
                Ok(s) => Some(s),
                Err(e) => {
                    engine.shutdown(Duration::from_secs(2));
                    webhooks.stop(Duration::from_secs(2));
                    store.close(Duration::from_secs(2));
                    return Err(format!("cannot listen on {}: {e}", http_settings.listen));
                }
            }
        } else {
            None
        };
        let cluster = match &cluster_settings {
            None => None,
            Some(settings) => {
                let started = node_url(settings, http.as_ref(), &http_settings)
                    .and_then(|url| Cluster::start(settings, url, cluster_log));
                match started {
                    Ok(c) => Some(c),
                    Err(e) => {
                        if let Some(h) = &http {
                            h.stop(Duration::from_secs(2));
                        }
                        engine.shutdown(Duration::from_secs(2));
                        webhooks.stop(Duration::from_secs(2));
                        store.close(Duration::from_secs(2));
                        return Err(e);
                    }
                }
            }
        };
        if let Some(c) = &cluster {
            http_state.set_backend(&Backend::Redis(Arc::clone(c)));
        }
        Ok(App {
            engine,
            webhooks,
            store,
            http_state,
            http,
            cluster,
        })
    }

    /// The address the HTTP API listens on, when it does.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(HttpServer::local_addr)
    }

    /// Applies a reloaded config: webhook destinations, then the engine's
    /// config (trunks, routes, tokens, timeouts), then a renewed HTTPS
    /// certificate (open connections are kept). The HTTP listen address, TLS
    /// on/off and the spool take effect on the next start. All or nothing.
    pub fn apply_config(&self, config: Config) -> Result<(), String> {
        apply_config(&self.engine, &self.webhooks, &self.http_state, config)
    }

    /// `c2c webhooks …` (for the command host).
    pub fn webhooks_command(&self, args: &str) -> String {
        webhooks::cli::cli(&self.webhooks, args)
    }

    /// Stops everything within `deadline` in all; returns what did not
    /// stop in time. The listener goes first, so a request answered 202 is
    /// one the engine has; webhooks go last, so the engine's final events
    /// (hangups of cancelled calls) are spooled, and the store after them,
    /// committing what is queued.
    pub fn stop(&self, deadline: Duration) -> Vec<String> {
        // One deadline for the whole stop, shared by its parts in turn.
        let until = Instant::now() + deadline;
        let left = || until.saturating_duration_since(Instant::now());
        let mut late = Vec::new();
        if let Some(http) = &self.http {
            if !http.stop(left()) {
                late.push("http runtime threads".to_string());
            }
        }
        if let Some(cluster) = &self.cluster {
            self.http_state.set_backend(&Backend::Local {
                store: Some(Arc::clone(&self.store)),
            });
            if !cluster.stop(left().max(Duration::from_millis(100))) {
                late.push("c2c-cluster".to_string());
            }
        }
        let stuck = self.engine.shutdown(left());
        if stuck > 0 {
            late.push(format!("{stuck} call threads"));
        }
        late.extend(self.webhooks.stop(left().max(Duration::from_millis(100))));
        if !self.store.close(left().max(Duration::from_millis(100))) {
            late.push("c2c-store".to_string());
        }
        late
    }
}

/// The URL other nodes reach this node's API on: `node-url`, else the
/// listener's own address (which must then be a specific IP).
fn node_url(
    settings: &ClusterSettings,
    http: Option<&HttpServer>,
    http_settings: &HttpSettings,
) -> Result<String, String> {
    if let Some(url) = &settings.node_url {
        return Ok(url.clone());
    }
    let addr = http
        .map(HttpServer::local_addr)
        .ok_or("cluster: node-url is required when the HTTP listener is off")?;
    if addr.ip().is_unspecified() {
        return Err(format!(
            "cluster: node-url is required when http listen is {addr} (other nodes need an address)"
        ));
    }
    let scheme = if http_settings.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    Ok(format!("{scheme}://{addr}"))
}

/// [`App::apply_config`] for holders of the parts (the module's `c2c reload`).
pub fn apply_config(
    engine: &Engine,
    webhooks: &WebhookService,
    http: &HttpState,
    config: Config,
) -> Result<(), String> {
    recording::check_format(&config, engine.switch.as_ref()).map_err(|e| e.to_string())?;
    let tls = http.prepare_tls(&config.http)?;
    webhooks.set_destinations(&config.webhooks, &config.tokens)?;
    engine.set_config(config);
    http.install_tls(tls);
    Ok(())
}
