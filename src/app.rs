//! Wiring: one running click-to-call service (engine, webhooks, HTTP) over a
//! switch. The module builds one on load over FreeSWITCH; the sandbox builds
//! one over the simulated switch. No `unsafe` here.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;

use crate::core::config::Config;
use crate::core::engine::Engine;
use crate::core::events::{EventSink, FanOut};
use crate::core::http::{HttpServer, HttpState};
use crate::switch::{LegReport, Switch};

/// A running service.
pub struct App {
    pub engine: Arc<Engine>,
    /// What the HTTP API shares; attach the webhook hooks here
    /// ([`HttpState::set_webhook_admin`], [`HttpState::set_extra_gauges`]).
    /// Also usable without the listener, through [`crate::core::http::route`].
    pub http_state: Arc<HttpState>,
    /// The HTTP listener, when `http.enabled`.
    pub http: Option<HttpServer>,
}

impl App {
    /// Starts everything over `switch`. `extra_sinks` also receive every call
    /// event (the module mirrors them as FreeSWITCH CUSTOM events).
    pub fn start(
        config: Config,
        switch: Arc<dyn Switch>,
        legs: Receiver<LegReport>,
        extra_sinks: Vec<Arc<dyn EventSink>>,
    ) -> Result<App, String> {
        let http_settings = config.http.clone();
        let sink: Arc<dyn EventSink> = Arc::new(FanOut(extra_sinks));
        let engine = Engine::new(config, switch, legs, sink);
        let http_state = HttpState::new(Arc::clone(&engine));
        let http = if http_settings.enabled {
            match HttpServer::start(Arc::clone(&http_state), &http_settings) {
                Ok(s) => Some(s),
                Err(e) => {
                    engine.shutdown(Duration::from_secs(2));
                    return Err(format!("cannot listen on {}: {e}", http_settings.listen));
                }
            }
        } else {
            None
        };
        Ok(App {
            engine,
            http_state,
            http,
        })
    }

    /// The address the HTTP API listens on, when it does.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(HttpServer::local_addr)
    }

    /// Stops everything, each part within `deadline`; returns what did not stop in time.
    /// The listener goes first, so a request answered 202 is one the engine has.
    pub fn stop(&self, deadline: Duration) -> Vec<String> {
        let mut late = Vec::new();
        if let Some(http) = &self.http {
            if !http.stop(deadline) {
                late.push("http connection threads".to_string());
            }
        }
        let stuck = self.engine.shutdown(deadline);
        if stuck > 0 {
            late.push(format!("{stuck} call threads"));
        }
        late
    }
}
