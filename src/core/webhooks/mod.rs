//! Webhook delivery: every call event is spooled to disk, signed (Standard
//! Webhooks) and POSTed to its destination, per call strictly in seq order,
//! at least once, with retries on a schedule and a dead-letter store.
//!
//! [`WebhookService`] is an [`EventSink`]: `emit` writes the event to the
//! spool (fsync'd) and hands it to the dispatcher thread, never waiting on the
//! network. Sender threads make the HTTP attempts. [`WebhookService::stop`]
//! drains what is ready, interrupts what is in flight and joins every thread.
//!
//! Order: a call's next event is sent only once the previous one is delivered
//! or given up (dead-lettered); a call waiting for a retry holds up nothing
//! but its own later events. Delivery is at least once: `webhook-id` is the
//! event id, stable across attempts and restarts, for receivers to deduplicate.

pub mod admin;
pub mod cli;
pub mod dead;
pub mod destination;
mod dispatch;
pub mod schedule;
pub mod sender;
pub mod signer;
pub mod spool;
mod stats;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender as ChanSender;
use serde_json::{json, Value};

use self::dead::{DeadLetter, DeadStore};
use self::destination::Destinations;
use self::dispatch::Intake;
use self::schedule::RetrySchedule;
use self::sender::Sender;
use self::spool::{Spool, SpoolError, SpoolRecord};
use self::stats::Stats;
use super::config::{ApiToken, WebhookSettings};
use super::events::{CallEvent, EventSink};

pub use self::cli::cli;

/// Severity of a message given to the [`LogHook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Warning,
    Error,
}

/// Where the service reports what an operator must know (spool full,
/// events given up…), with the uuid of the call's channel when the message
/// concerns one call ([`super::events::log_uuid`]). The module routes it to
/// the FreeSWITCH log, tagged with that uuid.
pub type LogHook = Arc<dyn Fn(LogLevel, Option<&str>, &str) + Send + Sync>;

/// A [`LogHook`] writing to stderr.
pub fn stderr_log() -> LogHook {
    Arc::new(|level, uuid, msg| eprintln!("[{level:?}] {} {msg}", uuid.unwrap_or("-")))
}

/// The uuid a message about a spooled event carries ([`super::events::log_uuid`]).
fn record_log_uuid(r: &SpoolRecord) -> String {
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
    super::events::log_uuid(r.call_uuid, &body["data"])
}

/// What the dispatcher and senders share.
pub(crate) struct Shared {
    spool: Spool,
    dead: DeadStore,
    destinations: RwLock<Arc<Destinations>>,
    schedule: RetrySchedule,
    sender: Sender,
    stats: Stats,
    log: LogHook,
    /// Set by `stop` just before in-flight requests are cut.
    interrupted: AtomicBool,
}

impl Shared {
    fn log(&self, level: LogLevel, msg: &str) {
        (self.log)(level, None, msg);
    }

    /// A message about one spooled event (so, about its call).
    fn log_record(&self, level: LogLevel, record: &SpoolRecord, msg: &str) {
        (self.log)(level, Some(&record_log_uuid(record)), msg);
    }

    /// The destinations in force (replaced whole by a config reload).
    fn destinations(&self) -> Arc<Destinations> {
        self.destinations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Why a replay did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayError {
    /// No dead letter has this id.
    NotFound(String),
    /// The spool is full or the disk failed.
    Spool(String),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::NotFound(id) => write!(f, "no dead letter {id}"),
            ReplayError::Spool(e) => f.write_str(e),
        }
    }
}

/// The running webhook service (one per module load or sandbox).
pub struct WebhookService {
    shared: Arc<Shared>,
    intake: ChanSender<Intake>,
    threads: Mutex<Vec<(String, JoinHandle<()>)>>,
    workers: usize,
    running: AtomicBool,
}

impl WebhookService {
    /// Opens the spool, re-queues what it holds (per call, in seq order) and
    /// starts the dispatcher and `settings.workers` sender threads; logs to stderr.
    pub fn start(
        settings: &WebhookSettings,
        tokens: &[ApiToken],
    ) -> Result<Arc<WebhookService>, String> {
        WebhookService::start_with_log(settings, tokens, stderr_log())
    }

    /// [`WebhookService::start`] with its messages going to `log`.
    pub fn start_with_log(
        settings: &WebhookSettings,
        tokens: &[ApiToken],
        log: LogHook,
    ) -> Result<Arc<WebhookService>, String> {
        let destinations = Destinations::new(settings, tokens)?;
        let dir = &settings.spool_dir;
        if dir.as_os_str().is_empty() {
            return Err("webhooks: no spool-dir set".to_string());
        }
        let (spool, recovered) = Spool::open(dir, settings.max_spool_events)
            .map_err(|e| format!("webhook spool {}: {e}", dir.display()))?;
        let dead = DeadStore::open(dir, settings.max_spool_events)
            .map_err(|e| format!("webhook dead letters {}: {e}", dir.display()))?;
        for path in &recovered.corrupt {
            log(
                LogLevel::Error,
                None,
                &format!(
                    "webhooks: unreadable spool file set aside: {}",
                    path.display()
                ),
            );
        }
        if !recovered.records.is_empty() {
            log(
                LogLevel::Info,
                None,
                &format!(
                    "webhooks: {} spooled events re-queued",
                    recovered.records.len()
                ),
            );
        }
        let workers = settings.workers.max(1);
        let shared = Arc::new(Shared {
            spool,
            dead,
            destinations: RwLock::new(Arc::new(destinations)),
            schedule: RetrySchedule::new(settings.retry_schedule.clone(), settings.give_up_after),
            sender: Sender::new(settings.connect_timeout, settings.response_timeout, workers),
            stats: Stats::default(),
            log,
            interrupted: AtomicBool::new(false),
        });
        let (intake_tx, intake_rx) = crossbeam_channel::unbounded();
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded(workers);
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        for record in recovered.records {
            // The channel is ours and open: this cannot fail.
            let _ = intake_tx.send(Intake::Event(record));
        }
        let service = Arc::new(WebhookService {
            shared: Arc::clone(&shared),
            intake: intake_tx,
            threads: Mutex::new(Vec::new()),
            workers,
            running: AtomicBool::new(true),
        });
        let mut spawned = Vec::new();
        let result = (|| -> std::io::Result<()> {
            for i in 0..workers {
                let (sh, jobs, done) = (Arc::clone(&shared), jobs_rx.clone(), done_tx.clone());
                let name = format!("c2c-webhook-{i}");
                let h = std::thread::Builder::new()
                    .name(name.clone())
                    .spawn(move || dispatch::sender(sh, jobs, done))?;
                spawned.push((name, h));
            }
            let sh = Arc::clone(&shared);
            let name = "c2c-webhooks".to_string();
            let h = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || dispatch::dispatcher(sh, intake_rx, jobs_tx, done_rx, workers))?;
            spawned.push((name, h));
            Ok(())
        })();
        *lock(&service.threads) = spawned;
        if let Err(e) = result {
            service.stop(Duration::from_secs(1));
            return Err(format!("webhooks: cannot start threads: {e}"));
        }
        Ok(service)
    }

    /// Stops within `deadline`: delivers what is ready during the first half,
    /// then cuts requests in flight (their events stay spooled) and joins every
    /// thread. Returns the names of threads that did not end in time.
    /// Events emitted after this are still spooled, for the next start.
    pub fn stop(&self, deadline: Duration) -> Vec<String> {
        let start = Instant::now();
        let until = start + deadline;
        let drain_until = start + deadline / 2;
        self.running.store(false, Ordering::SeqCst);
        let threads = std::mem::take(&mut *lock(&self.threads));
        if threads.is_empty() {
            return Vec::new();
        }
        let _ = self.intake.send(Intake::Stop { drain_until });
        let dispatcher_done = || {
            threads
                .iter()
                .all(|(n, h)| n != "c2c-webhooks" || h.is_finished())
        };
        while !dispatcher_done() && Instant::now() < drain_until {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.shared.interrupted.store(true, Ordering::SeqCst);
        self.shared.sender.shutdown();
        let mut late = Vec::new();
        for (name, h) in threads {
            while !h.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
            }
            if h.is_finished() {
                if h.join().is_err() {
                    self.shared.log(
                        LogLevel::Error,
                        &format!("webhooks: thread {name} panicked"),
                    );
                }
            } else {
                late.push(name);
            }
        }
        late
    }

    /// Counters and sizes, for `c2c webhooks status` and metrics.
    pub fn status_json(&self) -> Value {
        let s = &self.shared.stats;
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "running": self.running.load(Ordering::SeqCst),
            "workers": self.workers,
            "queue_depth": s.queued.load(Ordering::Relaxed),
            "in_flight": s.in_flight.load(Ordering::Relaxed),
            "delivered": n(&s.delivered),
            "failed_attempts": n(&s.failed_attempts),
            "dead_lettered": n(&s.dead_lettered),
            "dead_letters": self.shared.dead.len(),
            "spool_size": self.shared.spool.len(),
            "spool_capacity": self.shared.spool.capacity(),
            "refused_spool_full": n(&s.refused_full),
            "spool_errors": n(&s.spool_errors),
            "no_destination": n(&s.no_destination),
            "replayed": n(&s.replayed),
            "last_error": s.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        })
    }

    /// Every dead letter, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.shared.dead.list()
    }

    /// Puts one dead letter back in the spool and queues it for delivery,
    /// with a fresh give-up horizon.
    pub fn replay(&self, id: &str) -> Result<(), ReplayError> {
        let mut dead = self
            .shared
            .dead
            .get(id)
            .ok_or_else(|| ReplayError::NotFound(id.to_string()))?;
        dead.record.since = std::time::SystemTime::now();
        self.shared
            .spool
            .put(&dead.record)
            .map_err(|e| ReplayError::Spool(e.to_string()))?;
        if let Err(e) = self.shared.dead.remove(id) {
            self.shared.log_record(
                LogLevel::Warning,
                &dead.record,
                &format!("webhooks: replayed {id} but could not remove its dead letter: {e}"),
            );
        }
        self.shared.stats.replayed.fetch_add(1, Ordering::Relaxed);
        let _ = self.intake.send(Intake::Event(dead.record));
        Ok(())
    }

    /// Replays every dead letter; returns how many were replayed, stopping at
    /// the first that could not be (with its error).
    pub fn replay_all(&self) -> (usize, Option<ReplayError>) {
        let mut n = 0;
        for d in self.dead_letters() {
            match self.replay(&d.record.id) {
                Ok(()) => n += 1,
                Err(ReplayError::NotFound(_)) => {} // replayed meanwhile
                Err(e) => return (n, Some(e)),
            }
        }
        (n, None)
    }

    /// Takes new destinations from a reloaded config (events already
    /// spooled go to the new ones too). On error the old ones stay.
    pub fn set_destinations(
        &self,
        settings: &WebhookSettings,
        tokens: &[ApiToken],
    ) -> Result<(), String> {
        let new = Destinations::new(settings, tokens)?;
        *self
            .shared
            .destinations
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        Ok(())
    }

    /// Whether any event can be delivered (some URL is configured).
    pub fn has_destination(&self) -> bool {
        self.shared.destinations().any()
    }
}

impl EventSink for WebhookService {
    fn emit(&self, event: &CallEvent) {
        let sh = &self.shared;
        if sh
            .destinations()
            .for_token(event.token.as_deref())
            .is_none()
        {
            sh.stats.no_destination.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let record = SpoolRecord::from_event(event);
        match sh.spool.put(&record) {
            Ok(()) => {
                // After stop the dispatcher is gone; the event waits on disk.
                let _ = self.intake.send(Intake::Event(record));
            }
            Err(e) => {
                let counter = match e {
                    SpoolError::Full(_) => &sh.stats.refused_full,
                    SpoolError::Io(_) => &sh.stats.spool_errors,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                sh.log_record(
                    LogLevel::Error,
                    &record,
                    &format!(
                        "webhooks: {e}: event {} ({} of call {}, seq {}) NOT queued for delivery",
                        event.id, event.event_type, event.call_uuid, event.seq
                    ),
                );
            }
        }
    }
}

impl Drop for WebhookService {
    fn drop(&mut self) {
        if !lock(&self.threads).is_empty() {
            self.stop(Duration::from_secs(2));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
