//! The switch's event queue during a phase, as the module reports it
//! (`c2c_switch_event_backlog` on `/metrics`): the one queue whose filling
//! stops every thread of the switch, whichever side's calls fill it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::e2e_common::{http_get, metric};

/// How often `/metrics` is read.
const EVERY: Duration = Duration::from_millis(250);

/// One reading: seconds since the start, the backlog, the machine's idle
/// CPU seconds so far (see [`crate::cpu::idle`]), and the channels on the
/// carrier's trunk (`c2c_trunk_channels`: both sides' customers' legs).
pub type Reading = (f64, u64, f64, u64);

/// Reads the backlog (and the machine's idle time) every [`EVERY`] until stopped.
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Reading>>,
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
                let metrics = http_get(http, "/metrics", token);
                if let Some(n) = metric(&metrics, "c2c_switch_event_backlog") {
                    let idle = crate::cpu::idle().unwrap_or(0.0);
                    let legs = metric(&metrics, TRUNK_CHANNELS).unwrap_or(0.0);
                    seen.push((t0.elapsed().as_secs_f64(), n as u64, idle, legs as u64));
                }
                std::thread::sleep(EVERY);
            }
            seen
        });
        Watch { stop, thread }
    }

    /// Stops; the readings in order.
    pub fn stop(self) -> Vec<Reading> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The carrier's trunk's channels gauge (trunk 5, `BACKUP`), with its label.
const TRUNK_CHANNELS: &str = "c2c_trunk_channels{trunk=\"BACKUP\"}";

/// The share of the cores left idle from the first reading until `until`
/// seconds (the phase's last call connected): what the switch could have
/// used while calls waited. `NaN` with fewer than two readings.
pub fn idle_share(readings: &[Reading], until: f64) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let first = readings.first();
    let last = readings.iter().take_while(|r| r.0 <= until).last();
    match (first, last) {
        (Some(a), Some(b)) if b.0 > a.0 => (b.2 - a.2) / ((b.0 - a.0) * cores),
        _ => f64::NAN,
    }
}

/// Customers' channel-seconds in the readings (each reading standing for
/// the time until the next): how long the carrier's legs were up in all.
pub fn leg_seconds(readings: &[Reading]) -> f64 {
    readings
        .windows(2)
        .map(|w| w[0].3 as f64 * (w[1].0 - w[0].0))
        .sum()
}
