//! Webhook delivery: every call event is spooled in the durable store,
//! signed (Standard Webhooks) and POSTed to its destination, per call strictly
//! in seq order, at least once, with retries on a schedule and dead letters.
//!
//! [`WebhookService`] is an [`EventSink`]: `emit` writes the event to the
//! store's spool (waiting on the group commit that carries it) and hands it
//! to the dispatcher thread, never waiting on the network. Delivery threads
//! (started when events are due, ended after `worker-idle` without work)
//! make the HTTP attempts. [`WebhookService::stop`] drains what is ready,
//! interrupts what is in flight and joins every thread.
//!
//! Back-pressure: the spool is bounded in bytes. Above its high-water mark
//! the service refuses *new calls* ([`EventSink::admit`], 503 `spool_full`),
//! so the reserve between the mark and the bound is left to the calls
//! already accepted: their events are always spooled, never dropped.
//!
//! Order: a call's next event is sent only once the previous one is delivered
//! or given up (dead-lettered); a call waiting for a retry holds up nothing
//! but its own later events. Delivery is at least once: `webhook-id` is the
//! event id, stable across attempts and restarts, for receivers to deduplicate.

pub mod admin;
pub mod cli;
pub mod destination;
mod dispatch;
pub mod schedule;
pub mod sender;
mod shared;
pub mod signer;
mod sink;
pub mod spool;
mod stats;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender as ChanSender;
use serde_json::{json, Value};

use crate::core::store::DeadLetter;

use self::destination::Destinations;
use self::dispatch::Intake;
use self::schedule::RetrySchedule;
use self::sender::Sender;
use self::shared::{Shared, SpoolGauge};
use self::spool::{import_files, order_per_call};
use self::stats::Stats;
use super::config::{ApiToken, WebhookSettings};
use super::events::CallEvent;
use super::store::sqlite::SqliteOptions;
use super::store::{spool_bytes, SqliteStore, Store, Write, COMMIT_TIMEOUT};
pub use crate::core::log::{stderr_log, LogHook, LogLevel};
use crate::core::store::SpoolRecord;

/// Why a replay did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayError {
    /// No dead letter has this id.
    NotFound(String),
    /// The spool is above its high-water mark, or the store failed.
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

/// Opens the durable store in the data directory `settings.spool_dir`
/// (SQLite, `zorio_c2c.db`), keeping ended calls for `call_retention`.
pub fn open_store(
    settings: &WebhookSettings,
    call_retention: Duration,
) -> Result<Arc<SqliteStore>, String> {
    let dir = &settings.spool_dir;
    if dir.as_os_str().is_empty() {
        return Err("webhooks: no data directory (data-dir / spool-dir) set".to_string());
    }
    SqliteStore::open_dir(
        dir,
        SqliteOptions {
            call_retention,
            sync: settings.store_sync,
        },
    )
    .map_err(|e| format!("webhook store in {}: {e}", dir.display()))
}

impl WebhookService {
    /// Opens a store of its own in the data directory ([`open_store`]),
    /// re-queues what its spool holds (per call, in seq order) and starts the
    /// dispatcher and `settings.workers` sender threads; logs to stderr.
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
        let store = open_store(settings, SqliteOptions::default().call_retention)?;
        WebhookService::start_with_store(settings, tokens, store, log)
    }

    /// Starts over `store` (shared with the rest of the module). A file
    /// spool left in `settings.spool_dir` by an older version is imported
    /// into the store first.
    pub fn start_with_store(
        settings: &WebhookSettings,
        tokens: &[ApiToken],
        store: Arc<dyn Store>,
        log: LogHook,
    ) -> Result<Arc<WebhookService>, String> {
        let destinations = Destinations::new(settings, tokens)?;
        let dir = &settings.spool_dir;
        if !dir.as_os_str().is_empty() {
            let imported = import_files(dir, store.as_ref()).map_err(|e| {
                format!("webhooks: importing the file spool {}: {e}", dir.display())
            })?;
            for path in &imported.corrupt {
                log(
                    LogLevel::Error,
                    None,
                    &format!(
                        "webhooks: unreadable spool file set aside: {}",
                        path.display()
                    ),
                );
            }
            if imported.pending + imported.dead > 0 {
                log(
                    LogLevel::Info,
                    None,
                    &format!(
                        "webhooks: file spool in {} taken over: {} events and {} dead letters \
                         now in the store, files removed",
                        dir.display(),
                        imported.pending,
                        imported.dead
                    ),
                );
            }
        }
        let records = order_per_call(
            store
                .spool_all()
                .map_err(|e| format!("webhooks: reading the spool: {e}"))?,
        );
        let usage = store
            .spool_usage()
            .map_err(|e| format!("webhooks: reading the spool: {e}"))?;
        if !records.is_empty() {
            log(
                LogLevel::Info,
                None,
                &format!("webhooks: {} spooled events re-queued", records.len()),
            );
        }
        let max_bytes = settings.max_spool_bytes.max(1);
        let high_water = (max_bytes as u128
            * u128::from(settings.spool_high_water_percent.min(100))
            / 100) as u64;
        let workers = settings.workers.max(1);
        let shared = Arc::new(Shared {
            store,
            spool: SpoolGauge {
                events: AtomicU64::new(usage.events),
                bytes: AtomicU64::new(usage.bytes),
                max_bytes,
                high_water,
                refusing: AtomicBool::new(false),
            },
            max_dead_letters: settings.max_dead_letters.max(1),
            destinations: RwLock::new(Arc::new(destinations)),
            schedule: RetrySchedule::new(settings.retry_schedule.clone(), settings.give_up_after),
            sender: Sender::new(settings.connect_timeout, settings.response_timeout, workers),
            stats: Stats::default(),
            log,
            interrupted: AtomicBool::new(false),
            senders: Mutex::new(Vec::new()),
        });
        let (intake_tx, intake_rx) = crossbeam_channel::unbounded();
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let worker_idle = settings.worker_idle;
        shared.note_level();
        for record in records {
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
        // Delivery threads are started by the dispatcher when there is work.
        let mut spawned = Vec::new();
        let result = (|| -> std::io::Result<()> {
            let sh = Arc::clone(&shared);
            let name = "c2c-webhooks".to_string();
            let h = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    dispatch::dispatcher(sh, intake_rx, done_rx, done_tx, workers, worker_idle)
                })?;
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
        let mut join = |name: String, h: JoinHandle<()>| {
            while !h.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
            }
            if !h.is_finished() {
                late.push(name);
            } else if h.join().is_err() {
                self.shared.log(
                    LogLevel::Error,
                    &format!("webhooks: thread {name} panicked"),
                );
            }
        };
        // The dispatcher first: once it is gone, no delivery thread starts.
        for (name, h) in threads {
            join(name, h);
        }
        let senders = std::mem::take(&mut *lock(&self.shared.senders));
        for (name, h) in senders {
            join(name, h);
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
            "threads": s.threads.load(Ordering::Relaxed),
            "delivered": n(&s.delivered),
            "failed_attempts": n(&s.failed_attempts),
            "dead_lettered": n(&s.dead_lettered),
            "dead_letters": self.shared.store.dead_len().unwrap_or(0),
            "spool_size": n(&self.shared.spool.events),
            "spool_bytes": self.shared.spool.bytes(),
            "spool_capacity_bytes": self.shared.spool.max_bytes,
            "spool_high_water_bytes": self.shared.spool.high_water,
            "accepting_calls": !self.shared.spool.above_high_water(),
            "refused_calls_spool_full": n(&s.refused_calls),
            "spool_over_capacity": n(&s.over_capacity),
            "spool_errors": n(&s.spool_errors),
            "no_destination": n(&s.no_destination),
            "replayed": n(&s.replayed),
            "last_error": s.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        })
    }

    /// Every dead letter, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.shared.store.dead_list().unwrap_or_else(|e| {
            self.shared
                .log(LogLevel::Error, &format!("webhooks: dead letters: {e}"));
            Vec::new()
        })
    }

    /// The store the spool lives in.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.shared.store)
    }

    /// Puts one dead letter back in the spool (in the same commit that
    /// forgets the dead letter) and queues it for delivery, with a fresh
    /// give-up horizon. Refused while the spool is above its high-water mark.
    pub fn replay(&self, id: &str) -> Result<(), ReplayError> {
        let sh = &self.shared;
        let mut dead = sh
            .store
            .dead_get(id)
            .map_err(|e| ReplayError::Spool(e.to_string()))?
            .ok_or_else(|| ReplayError::NotFound(id.to_string()))?;
        if sh.spool.above_high_water() {
            return Err(ReplayError::Spool(format!(
                "spool_full: the spool holds {} bytes, over its high-water mark {}",
                sh.spool.bytes(),
                sh.spool.high_water
            )));
        }
        dead.record.since = std::time::SystemTime::now();
        sh.store
            .write(
                vec![
                    Write::SpoolPut(dead.record.clone()),
                    Write::DeadRemove(id.to_string()),
                ],
                COMMIT_TIMEOUT,
            )
            .map_err(|e| ReplayError::Spool(e.to_string()))?;
        sh.spooled(1, spool_bytes(&dead.record));
        sh.stats.replayed.fetch_add(1, Ordering::Relaxed);
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

impl WebhookService {
    /// The spool row of `event`, or `None` when it has nowhere to go.
    fn record_of(&self, event: &CallEvent) -> Option<SpoolRecord> {
        let sh = &self.shared;
        sh.destinations().for_token(event.token.as_deref())?;
        let record = SpoolRecord::from_event(event);
        let bytes = spool_bytes(&record);
        if sh.spool.bytes() + bytes > sh.spool.max_bytes {
            // Only calls accepted before the high-water mark get here: their
            // events are kept all the same (the reserve was too small).
            sh.stats.over_capacity.fetch_add(1, Ordering::Relaxed);
            sh.log_record(
                LogLevel::Error,
                &record,
                &format!(
                    "webhooks: spool over its bound ({} of {} bytes): event {} ({} of call {}, \
                     seq {}) kept anyway, as its call was accepted; raise max-spool-bytes or \
                     lower spool-high-water",
                    sh.spool.bytes(),
                    sh.spool.max_bytes,
                    event.id,
                    event.event_type,
                    event.call_uuid,
                    event.seq
                ),
            );
        }
        Some(record)
    }

    /// `record` is committed: count it and hand it to the dispatcher.
    fn enqueue(&self, record: SpoolRecord) {
        self.shared.spooled(1, spool_bytes(&record));
        // After stop the dispatcher is gone; the event waits in the store.
        let _ = self.intake.send(Intake::Event(record));
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
