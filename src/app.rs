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
use crate::switch::{LegReport, Switch};

/// A running service.
pub struct App {
    pub engine: Arc<Engine>,
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
        let sink: Arc<dyn EventSink> = Arc::new(FanOut(extra_sinks));
        let engine = Engine::new(config, switch, legs, sink);
        Ok(App { engine })
    }

    /// Stops everything, each part within `deadline`; returns what did not stop in time.
    pub fn stop(&self, deadline: Duration) -> Vec<String> {
        let mut late = Vec::new();
        let stuck = self.engine.shutdown(deadline);
        if stuck > 0 {
            late.push(format!("{stuck} call threads"));
        }
        late
    }
}
