//! The engine: accepts click-to-call requests, drives each call's state
//! machine on a thread of its own, and turns leg progress into events.
//!
//! The call flow, a file a step: [`place`] accepts a request (capacity in
//! [`registry`]), [`runner`] rings the agent then dials the customer,
//! [`legs`] turns the switch's reports into state transitions, [`report`]
//! emits the events and the CDR and commits them with the call's journal
//! record; [`limits`] ends calls at their time limit; [`recovery`] takes
//! calls back when an engine starts.

mod legs;
mod limits;
mod place;
mod recordings;
mod recovery;
mod registry;
mod report;
mod runner;
pub mod timings;
mod trunk_wait;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use serde::Serialize;
use uuid::Uuid;

use super::backend::Backend;
use super::call::{CallRecord, CallState, HangupBy};
use super::config::Config;
use super::events::EventSink;
use super::journal::{CallJournal, MemoryJournal};
use super::setup_pace::SetupPace;
use super::store::Store;
use super::trunks::{TrunkLimits, TrunkStatus};
use crate::switch::{LegReport, Switch};

/// The `data` of a 202: the contract's ten fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    pub call_uuid: String,
    pub a_leg_uuid: String,
    pub b_leg_uuid: String,
    pub from_extension: String,
    pub to_phone: String,
    pub caller_id: String,
    pub trunk_id: Option<i64>,
    pub trunk_name: Option<String>,
    pub routing_mode: &'static str,
    pub status: &'static str,
}

/// Counters for metrics.
#[derive(Default)]
pub struct EngineStats {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    /// Calls taken back from the journal at start with a leg still up.
    pub adopted: AtomicU64,
    /// Calls taken back from the journal whose end nobody saw (`recovered`).
    pub recovered: AtomicU64,
    /// (outcome, count) of ended calls.
    pub outcomes: Mutex<HashMap<&'static str, u64>>,
    /// (trunk name, attempts, failures).
    pub trunk_attempts: Mutex<HashMap<String, (u64, u64)>>,
    /// Histograms of the call flow's steps.
    pub timings: timings::CallTimings,
}

pub(crate) type CallCell = Arc<Mutex<CallRecord>>;

/// The calls in flight, by call and by leg, and their threads ([`registry`]).
#[derive(Default)]
pub(super) struct Registry {
    active: HashMap<Uuid, CallCell>,
    /// Calls counted against the limit while their acceptance commits.
    reserved: usize,
    /// Channels the accepted calls have yet to open (two a call, less as
    /// their runners open them): the room they need in the switch.
    unopened: usize,
    by_leg: HashMap<Uuid, Uuid>,
    runners: Vec<JoinHandle<()>>,
    /// Agents (`ext@domain`) whose call is being accepted (`agent-busy reject`).
    placing: std::collections::HashSet<String>,
}

/// The click-to-call engine. One per module load (or sandbox).
pub struct Engine {
    config: RwLock<Arc<Config>>,
    pub(crate) switch: Arc<dyn Switch>,
    sink: Arc<dyn EventSink>,
    registry: Mutex<Registry>,
    /// Ended calls whose last commit (the CDR) is still on its way to the
    /// store: a read of one finds it here until the store has it. A lock
    /// of its own, taken under a call's lock (the registry's never is).
    ending: Arc<Mutex<HashMap<Uuid, CallRecord>>>,
    pub(crate) journal: Arc<dyn CallJournal>,
    shutting_down: AtomicBool,
    dispatch_stop: Arc<AtomicBool>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
    /// Counters for metrics.
    pub stats: EngineStats,
    /// Where a call's acceptance and events are committed.
    store: Option<Arc<dyn Store>>,
    /// (deadline, call): the time limits of bridged calls ([`limits`]).
    limits: Mutex<Vec<(SystemTime, Uuid)>>,
    /// When `recording-retention` was last applied.
    last_purge: Mutex<Option<Instant>>,
    /// The trunks' `cps` and `max-channels` ([`crate::core::trunks`]).
    trunks: Arc<TrunkLimits>,
    /// How many calls are in setup at once ([`crate::core::setup_pace`]).
    pub(crate) pace: SetupPace,
}

/// While reports keep coming (one within this long), the leg thread looks
/// for them every [`REPORTS_POLL`] instead of sleeping in the channel.
const REPORTS_FLOWING: Duration = Duration::from_millis(250);
/// See [`REPORTS_FLOWING`].
const REPORTS_POLL: Duration = Duration::from_millis(5);

/// The next leg report, if one comes soon: `Some(None)` when none came,
/// `None` once the switch's side is gone. While reports flow, they are
/// picked up every [`REPORTS_POLL`] and their sender (the switch's one
/// event dispatch thread, which every channel's events wait for) never
/// wakes this thread for one: a wake costs that thread its core on a busy
/// switch. Idle, this thread sleeps in the channel, and the first report
/// wakes it.
fn next_report(legs: &Receiver<LegReport>, last: Option<Instant>) -> Option<Option<LegReport>> {
    if last.is_some_and(|t| t.elapsed() < REPORTS_FLOWING) {
        return match legs.try_recv() {
            Ok(r) => Some(Some(r)),
            Err(TryRecvError::Empty) => {
                std::thread::sleep(REPORTS_POLL);
                Some(None)
            }
            Err(TryRecvError::Disconnected) => None,
        };
    }
    match legs.recv_timeout(Duration::from_millis(50)) {
        Ok(r) => Some(Some(r)),
        Err(RecvTimeoutError::Timeout) => Some(None),
        Err(RecvTimeoutError::Disconnected) => None,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    /// A new engine over a switch, sending events to `sink`. `legs` is the
    /// receiving end of the channel the switch reports leg progress on; a
    /// thread of the engine's own (`c2c-legs`) reads it until shutdown.
    pub fn new(
        config: Config,
        switch: Arc<dyn Switch>,
        legs: Receiver<LegReport>,
        sink: Arc<dyn EventSink>,
    ) -> Arc<Engine> {
        let journal = Arc::new(MemoryJournal::default());
        Engine::with_journal(config, switch, legs, sink, journal)
    }

    /// [`Engine::new`] over a journal that may hold calls of an earlier
    /// engine: before the first leg report is read, each is taken back
    /// (adopted while a leg is up in the switch, else reported ended).
    pub fn with_journal(
        config: Config,
        switch: Arc<dyn Switch>,
        legs: Receiver<LegReport>,
        sink: Arc<dyn EventSink>,
        journal: Arc<dyn CallJournal>,
    ) -> Arc<Engine> {
        Engine::with_store(config, switch, legs, sink, journal, None)
    }

    /// [`Engine::with_journal`] committing in a durable `store`: the journal
    /// record of a call (when the journal is durable), the events of its
    /// sinks ([`EventSink::durable_writes`]) and what a caller promises with
    /// an accepted call, each time in one commit.
    pub fn with_store(
        config: Config,
        switch: Arc<dyn Switch>,
        legs: Receiver<LegReport>,
        sink: Arc<dyn EventSink>,
        journal: Arc<dyn CallJournal>,
        store: Option<Arc<dyn Store>>,
    ) -> Arc<Engine> {
        let clock = Arc::new(crate::core::gcra::MonotonicClock::default());
        let engine = Arc::new(Engine {
            config: RwLock::new(Arc::new(config)),
            trunks: Arc::new(TrunkLimits::new(Arc::clone(&switch), clock)),
            pace: SetupPace::default(),
            switch,
            sink,
            registry: Mutex::new(Registry::default()),
            ending: Arc::default(),
            journal,
            shutting_down: AtomicBool::new(false),
            dispatch_stop: Arc::new(AtomicBool::new(false)),
            dispatcher: Mutex::new(None),
            stats: EngineStats::default(),
            store,
            limits: Mutex::default(),
            last_purge: Mutex::default(),
        });
        engine.recover();
        let weak = Arc::downgrade(&engine);
        let stop = Arc::clone(&engine.dispatch_stop);
        let handle = std::thread::Builder::new()
            .name("c2c-legs".into())
            .spawn(move || {
                let mut last_report: Option<Instant> = None;
                while !stop.load(Ordering::SeqCst) {
                    let Some(got) = next_report(&legs, last_report) else {
                        return;
                    };
                    if let Some(r) = got {
                        last_report = Some(Instant::now());
                        match weak.upgrade() {
                            Some(e) => e.leg_event(r.leg_uuid, r.attempt, r.event),
                            None => return,
                        }
                    }
                    match weak.upgrade() {
                        Some(e) => {
                            e.fire_due_limits();
                            e.purge_recordings_if_due();
                        }
                        None => return,
                    }
                }
            })
            .expect("spawn c2c-legs thread");
        *lock(&engine.dispatcher) = Some(handle);
        engine
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Counts the trunks' limits in `backend` from now on; in a cluster,
    /// this node's channel counts ride on every heartbeat.
    pub fn set_backend(self: &Arc<Self>, backend: &Backend) {
        self.trunks.set_backend(backend);
        if let Backend::Redis(cluster) = backend {
            let weak = Arc::downgrade(self);
            cluster.on_beat(Box::new(move || {
                if let Some(e) = weak.upgrade() {
                    e.trunks.publish(&e.config().trunks);
                }
            }));
        }
    }

    /// Every trunk's channels, CPS and queue now (`c2c status`, `/metrics`).
    pub fn trunk_status(&self) -> Vec<TrunkStatus> {
        self.trunks.status(&self.config().trunks)
    }

    /// (trunk, limit, calls a limit turned away).
    pub fn trunk_refusals(&self) -> Vec<(String, &'static str, u64)> {
        self.trunks.refused()
    }

    /// Replaces the config whole; calls in flight keep the one they started with.
    pub fn set_config(&self, config: Config) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }

    pub(super) fn store(&self) -> Option<Arc<dyn Store>> {
        self.store.clone()
    }

    /// Refuses new calls, hangs up every call not yet bridged (bridged calls
    /// go on inside the switch and stay in the journal, for the next engine
    /// to adopt), and joins every call thread within `deadline`.
    /// Returns how many threads did not finish in time.
    pub fn shutdown(&self, deadline: Duration) -> usize {
        self.shutting_down.store(true, Ordering::SeqCst);
        let cells: Vec<CallCell> = lock(&self.registry).active.values().cloned().collect();
        for cell in &cells {
            let mut c = lock(cell);
            if c.state == CallState::Bridged {
                c.seen_at = SystemTime::now();
                self.journal.put(&c);
            } else {
                drop(c);
                self.cancel(cell, HangupBy::System, "SYSTEM_SHUTDOWN");
            }
        }
        let handles = std::mem::take(&mut lock(&self.registry).runners);
        let until = Instant::now() + deadline;
        let mut stuck = 0;
        for h in handles {
            while !h.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            if h.is_finished() {
                let _ = h.join();
            } else {
                stuck += 1;
            }
        }
        // Let the hangups of the cancelled calls arrive, so their events go out.
        while Instant::now() < until && self.has_unbridged_calls() {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.dispatch_stop.store(true, Ordering::SeqCst);
        // Never called from the dispatcher itself (it holds only a Weak).
        if let Some(h) = lock(&self.dispatcher).take() {
            let _ = h.join();
        }
        stuck
    }

    pub(super) fn has_unbridged_calls(&self) -> bool {
        let cells: Vec<CallCell> = lock(&self.registry).active.values().cloned().collect();
        cells.iter().any(|c| lock(c).state != CallState::Bridged)
    }

    /// Whether [`Engine::shutdown`] has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Counts a routing attempt (and whether it failed) per trunk.
    pub(crate) fn count_attempt(&self, trunk: &str, failed: bool) {
        let mut t = lock(&self.stats.trunk_attempts);
        let e = t.entry(trunk.to_string()).or_default();
        e.0 += 1;
        if failed {
            e.1 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::{leg_channel, LegEvent};

    fn report(n: u128) -> LegReport {
        LegReport {
            leg_uuid: Uuid::from_u128(n),
            attempt: None,
            event: LegEvent::Ringing,
        }
    }

    #[test]
    fn reports_come_in_order_whether_they_flow_or_not_and_the_end_is_seen() {
        let (tx, rx) = leg_channel();
        for n in 1..=3 {
            tx.try_send(report(n)).unwrap();
        }
        let idle = next_report(&rx, None).unwrap().unwrap();
        assert_eq!(idle.leg_uuid, Uuid::from_u128(1));
        let now = Some(Instant::now());
        for n in 2..=3 {
            let r = next_report(&rx, now).unwrap().unwrap();
            assert_eq!(r.leg_uuid, Uuid::from_u128(n));
        }
        drop(tx);
        assert!(next_report(&rx, now).is_none(), "flowing: the end seen");
        assert!(next_report(&rx, None).is_none(), "idle: the end seen");
    }
}
