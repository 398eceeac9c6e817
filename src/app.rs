//! Wiring: one running click-to-call service (engine, webhooks, HTTP) over a
//! switch. The module builds one on load over FreeSWITCH; the sandbox builds
//! one over the simulated switch. No `unsafe` here.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;

use crate::core::config::Config;
use crate::core::engine::Engine;
use crate::core::events::{EventSink, FanOut};
use crate::core::webhooks::{self, LogHook, WebhookService};
use crate::switch::{LegReport, Switch};

/// A running service.
pub struct App {
    pub engine: Arc<Engine>,
    /// Webhook delivery (spool, retries, dead letters).
    pub webhooks: Arc<WebhookService>,
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
        App::start_with_log(config, switch, legs, extra_sinks, webhooks::stderr_log())
    }

    /// [`App::start`] with the webhook service's messages going to `log`
    /// (the module passes one writing to the FreeSWITCH log).
    pub fn start_with_log(
        config: Config,
        switch: Arc<dyn Switch>,
        legs: Receiver<LegReport>,
        extra_sinks: Vec<Arc<dyn EventSink>>,
        log: LogHook,
    ) -> Result<App, String> {
        let webhooks = WebhookService::start_with_log(&config.webhooks, &config.tokens, log)?;
        let mut sinks: Vec<Arc<dyn EventSink>> = vec![webhooks.clone()];
        sinks.extend(extra_sinks);
        let engine = Engine::new(config, switch, legs, Arc::new(FanOut(sinks)));
        Ok(App { engine, webhooks })
    }

    /// `c2c webhooks …` (for the command host).
    pub fn webhooks_command(&self, args: &str) -> String {
        webhooks::cli(&self.webhooks, args)
    }

    /// Stops everything, each part within `deadline`; returns what did not stop in time.
    pub fn stop(&self, deadline: Duration) -> Vec<String> {
        let mut late = Vec::new();
        let stuck = self.engine.shutdown(deadline);
        if stuck > 0 {
            late.push(format!("{stuck} call threads"));
        }
        // Last: the engine's final events (hangups of cancelled calls) are spooled first.
        late.extend(self.webhooks.stop(deadline));
        late
    }
}
