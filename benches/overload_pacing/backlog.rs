//! The switch's event queue during a phase, as the module reports it
//! (`c2c_switch_event_backlog` on `/metrics`): the one queue whose filling
//! stops every thread of the switch, whichever side's calls fill it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::e2e_common::http_get;

/// How often `/metrics` is read.
const EVERY: Duration = Duration::from_millis(250);

/// Reads the backlog every [`EVERY`] until stopped.
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(f64, u64)>>,
}

impl Watch {
    /// Starts reading the backlog from the module on `http`.
    pub fn start(http: u16, token: &'static str) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut seen = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Some(n) = backlog(&http_get(http, "/metrics", token)) {
                    seen.push((t0.elapsed().as_secs_f64(), n));
                }
                std::thread::sleep(EVERY);
            }
            seen
        });
        Watch { stop, thread }
    }

    /// Stops; the backlog read at each instant (seconds since the start).
    pub fn stop(self) -> Vec<(f64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The gauge's value in a `/metrics` answer.
fn backlog(metrics: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("c2c_switch_event_backlog "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}
