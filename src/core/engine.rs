//! The engine: accepts click-to-call requests, drives each call's state
//! machine on a thread of its own, and turns leg progress into events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::call::{CallRecord, CallState, HangupBy, Leg, Party};
use super::config::Config;
use super::errors::{codes, ApiError};
use super::events::{self, CallEvent, EventSink};
use super::journal::{self, journal_write, CallJournal, MemoryJournal};
use super::request::ClickToCallRequest;
use super::routing;
use super::store::{Committed, Store, StoreError, Write, COMMIT_TIMEOUT};
use crate::switch::{Failure, LegEvent, LegReport, Switch};

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
}

pub(crate) type CallCell = Arc<Mutex<CallRecord>>;

#[derive(Default)]
struct Registry {
    active: HashMap<Uuid, CallCell>,
    /// Calls counted against the limit while their acceptance commits.
    reserved: usize,
    by_leg: HashMap<Uuid, Uuid>,
    runners: Vec<JoinHandle<()>>,
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
}

/// Notes a leg's end (the first report of it wins).
fn end_leg(leg: &mut Leg, f: &Failure) {
    if leg.ended_at.is_none() {
        leg.ended_at = Some(SystemTime::now());
        leg.hangup_cause = Some(f.cause.clone());
        leg.sip_code = f.sip_code;
        leg.by_peer = f.by_peer;
        leg.hangup_at_us = f.at_us;
        leg.hangup_seq = f.seq;
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
        let engine = Arc::new(Engine {
            config: RwLock::new(Arc::new(config)),
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
        });
        engine.recover();
        let weak = Arc::downgrade(&engine);
        let stop = Arc::clone(&engine.dispatch_stop);
        let handle = std::thread::Builder::new()
            .name("c2c-legs".into())
            .spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match legs.recv_timeout(Duration::from_millis(50)) {
                        Ok(r) => match weak.upgrade() {
                            Some(e) => e.leg_event(r.leg_uuid, r.attempt, r.event),
                            None => return,
                        },
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
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

    /// Replaces the config whole; calls in flight keep the one they started with.
    pub fn set_config(&self, config: Config) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }

    fn store(&self) -> Option<Arc<dyn Store>> {
        self.store.clone()
    }

    /// Validates, resolves and starts a call; returns at once with its UUIDs.
    pub fn place(
        self: &Arc<Self>,
        req: &ClickToCallRequest,
        token: Option<&str>,
    ) -> Result<Accepted, ApiError> {
        self.place_with(req, token, &|_| Vec::new())
    }

    /// [`Engine::place`], committing `durable(&accepted)` (e.g. the
    /// idempotency key's answer) in the store before the call starts: when
    /// this returns `Ok`, what it promised is durable. A commit that does not
    /// come within [`COMMIT_TIMEOUT`] refuses the call (503), nobody is dialled.
    pub fn place_with(
        self: &Arc<Self>,
        req: &ClickToCallRequest,
        token: Option<&str>,
        durable: &dyn Fn(&Accepted) -> Vec<Write>,
    ) -> Result<Accepted, ApiError> {
        self.place_as(Uuid::new_v4(), req, token, durable)
    }

    /// [`Engine::place_with`] under a `call_uuid` chosen by the caller (a
    /// cluster node records the call's owner in the same Redis round trip
    /// that admits the request, before the call exists).
    pub fn place_as(
        self: &Arc<Self>,
        call_uuid: Uuid,
        req: &ClickToCallRequest,
        token: Option<&str>,
        durable: &dyn Fn(&Accepted) -> Vec<Write>,
    ) -> Result<Accepted, ApiError> {
        let result = self.try_place(call_uuid, req, token, durable);
        let counter = if result.is_ok() {
            &self.stats.accepted
        } else {
            &self.stats.rejected
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    fn try_place(
        self: &Arc<Self>,
        call_uuid: Uuid,
        req: &ClickToCallRequest,
        token: Option<&str>,
        durable: &dyn Fn(&Accepted) -> Vec<Write>,
    ) -> Result<Accepted, ApiError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(ApiError::new(
                503,
                codes::SHUTTING_DOWN,
                "the module is shutting down",
            ));
        }
        // Refuse before the call exists if its events could not be kept.
        self.sink.admit()?;
        let config = self.config();
        let domain = config
            .domain
            .clone()
            .unwrap_or_else(|| self.switch.default_domain());
        let ext = self
            .switch
            .lookup_extension(&domain, &req.from_extension)
            .map_err(|e| ApiError::new(503, codes::SWITCH_UNAVAILABLE, e.0))?
            .ok_or_else(|| {
                ApiError::new(
                    422,
                    codes::EXTENSION_NOT_FOUND,
                    format!(
                        "extension {} does not exist in {domain}",
                        req.from_extension
                    ),
                )
            })?;
        if !ext.active {
            return Err(ApiError::new(
                422,
                codes::EXTENSION_INACTIVE,
                format!("extension {} is inactive", req.from_extension),
            ));
        }
        let plan = routing::plan(&config, req)?;
        let caller_id = super::callerid::resolve(req, &ext);
        let now = SystemTime::now();
        let record = CallRecord {
            call_uuid,
            token: token.map(str::to_string),
            from_extension: req.from_extension.clone(),
            domain,
            to_phone: req.to_phone.clone(),
            caller_id,
            routing_mode: plan.mode,
            reported_trunk: plan.reported_trunk().cloned(),
            headers: req.headers.clone(),
            created_at: now,
            state: CallState::Queued,
            a: Leg::new(Uuid::new_v4()),
            b: Leg::new(Uuid::new_v4()),
            attempts: Vec::new(),
            hangup_by: None,
            cancel: None,
            outcome: None,
            runner_done: false,
            seq: 0,
            instance: journal::instance(),
            seen_at: now,
            recovered: false,
            transferred: false,
            transfer_to: None,
            parties: Vec::new(),
            first_end: None,
        };
        let accepted = Accepted {
            call_uuid: record.call_uuid.to_string(),
            a_leg_uuid: record.a.uuid.to_string(),
            b_leg_uuid: record.b.uuid.to_string(),
            from_extension: record.from_extension.clone(),
            to_phone: record.to_phone.clone(),
            caller_id: record.caller_id.clone(),
            trunk_id: record.reported_trunk.as_ref().map(|t| t.0),
            trunk_name: record.reported_trunk.as_ref().map(|t| t.1.clone()),
            routing_mode: record.routing_mode,
            status: "queued",
        };
        let (call_uuid, a, b) = (record.call_uuid, record.a.uuid, record.b.uuid);
        let limit = self.max_concurrent_calls(&config);
        {
            let mut reg = lock(&self.registry);
            reg.runners.retain(|h| !h.is_finished());
            self.check_capacity(reg.active.len() + reg.reserved, limit)?;
            reg.reserved += 1;
        }
        // The accepted call is in the journal before its 202 leaves, in one
        // commit with what the caller promises with it (its Idempotency-Key's
        // answer); outside the registry's lock, so leg events go on meanwhile.
        let committed = self
            .commit_call(&record, false, durable(&accepted))
            .map_err(|e| {
                ApiError::new(
                    503,
                    codes::STORE_UNAVAILABLE,
                    format!("the call could not be recorded durably: {e}"),
                )
            });
        let cell: CallCell = Arc::new(Mutex::new(record));
        {
            let mut reg = lock(&self.registry);
            reg.reserved -= 1;
            committed?;
            if let Err(e) = self.check_capacity(reg.active.len(), limit) {
                drop(reg);
                self.journal.remove(call_uuid);
                return Err(e);
            }
            reg.active.insert(call_uuid, Arc::clone(&cell));
            reg.by_leg.insert(a, call_uuid);
            reg.by_leg.insert(b, call_uuid);
        }
        // The thread starts outside the registry's lock (leg events, on
        // FreeSWITCH's event thread, need it); the call is in it already.
        let engine = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("c2c-call-{}", &accepted.call_uuid[..8]))
            .spawn(move || engine.run_call(cell, config, plan));
        let mut reg = lock(&self.registry);
        match spawned {
            Ok(h) => reg.runners.push(h),
            Err(e) => {
                reg.active.remove(&call_uuid);
                reg.by_leg.remove(&a);
                reg.by_leg.remove(&b);
                drop(reg);
                self.journal.remove(call_uuid);
                return Err(ApiError::new(503, codes::CAPACITY_EXCEEDED, e.to_string()));
            }
        }
        Ok(accepted)
    }

    /// Puts a call into the registry of calls in flight.
    pub(crate) fn register(&self, cell: &CallCell) {
        let (call, legs) = {
            let c = lock(cell);
            let mut legs = vec![c.a.uuid, c.b.uuid];
            legs.extend(c.parties.iter().map(|p| p.leg.uuid));
            (c.call_uuid, legs)
        };
        let mut reg = lock(&self.registry);
        reg.active.insert(call, Arc::clone(cell));
        for leg in legs {
            reg.by_leg.insert(leg, call);
        }
    }

    /// Calls in flight at once: the config's `max-concurrent-calls`, else
    /// half the switch's session limit (two channels a call), else 200.
    pub fn max_concurrent_calls(&self, config: &Config) -> usize {
        config
            .max_concurrent_calls
            .or_else(|| self.switch.max_sessions().map(|s| s as usize / 2))
            .unwrap_or(200)
    }

    fn check_capacity(&self, in_flight: usize, limit: usize) -> Result<(), ApiError> {
        if in_flight >= limit {
            return Err(ApiError::new(
                503,
                codes::CAPACITY_EXCEEDED,
                format!("{in_flight} calls in flight: the limit"),
            ));
        }
        Ok(())
    }

    /// A call by its UUID (active, or ended within the journal's retention).
    pub fn call(&self, call_uuid: Uuid) -> Option<CallRecord> {
        let active = lock(&self.registry).active.get(&call_uuid).cloned();
        if let Some(c) = active {
            return Some(lock(&c).clone());
        }
        let ending = lock(&self.ending).get(&call_uuid).cloned();
        if ending.is_some() {
            return ending;
        }
        // Ended calls live in the journal's store, not in memory.
        self.journal.ended_call(call_uuid)
    }

    /// Calls in flight.
    pub fn active_calls(&self) -> Vec<CallRecord> {
        let reg = lock(&self.registry);
        reg.active.values().map(|c| lock(c).clone()).collect()
    }

    /// Hangs a call up (`DELETE`, `c2c hangup`).
    pub fn hangup(&self, call_uuid: Uuid) -> Result<(), ApiError> {
        let cell = lock(&self.registry).active.get(&call_uuid).cloned();
        let Some(cell) = cell else {
            return Err(ApiError::new(
                404,
                codes::CALL_NOT_FOUND,
                format!("no call {call_uuid} in flight"),
            ));
        };
        self.cancel(&cell, HangupBy::Api, "NORMAL_CLEARING");
        Ok(())
    }

    fn cancel(&self, cell: &CallCell, by: HangupBy, cause: &str) {
        let legs: Vec<Uuid> = {
            let mut c = lock(cell);
            if c.cancel.is_none() {
                c.cancel = Some(by);
            }
            [&c.a, &c.b]
                .into_iter()
                .chain(c.parties.iter().map(|p| &p.leg))
                .filter(|l| l.is_live())
                .map(|l| l.uuid)
                .collect()
        };
        for leg in legs {
            self.switch.hangup(leg, cause);
        }
    }

    /// Progress of a leg, reported by the switch (any thread but a FreeSWITCH one).
    /// `attempt` numbers B-leg attempts from 1; reports of an older attempt are dropped.
    pub fn leg_event(&self, leg_uuid: Uuid, attempt: Option<u32>, event: LegEvent) {
        let cell = {
            let reg = lock(&self.registry);
            reg.by_leg
                .get(&leg_uuid)
                .and_then(|c| reg.active.get(c))
                .cloned()
        };
        let Some(cell) = cell else { return };
        let mut c = lock(&cell);
        let is_a = c.a.uuid == leg_uuid;
        let is_b = c.b.uuid == leg_uuid;
        if is_b {
            let current = c.attempts.len() as u32;
            if attempt.is_some_and(|n| n != current) || c.b.started_at.is_none() {
                return;
            }
        }
        if !is_a && !is_b {
            // A party the customer was transferred to.
            if let LegEvent::HungUp(f) = event {
                if let Some(i) = c.party_index(leg_uuid) {
                    end_leg(&mut c.parties[i].leg, &f);
                }
                drop(c);
                self.finish_if_done(&cell);
            }
            return;
        }
        match event {
            LegEvent::Ringing if is_a => self.agent_ringing(&mut c),
            LegEvent::Ringing => {
                if c.b.ringing_at.is_none() && c.b.answered_at.is_none() {
                    c.b.ringing_at = Some(SystemTime::now());
                    c.state = CallState::CustomerRinging;
                    self.emit(&mut c, events::CUSTOMER_RINGING, Some("B"), json!({}));
                }
            }
            LegEvent::Answered => {} // the runner reports answers in order
            LegEvent::Bridged {
                partner,
                destination,
            } => {
                if is_b {
                    drop(c);
                    self.customer_bridged(&cell, partner, destination);
                }
            }
            LegEvent::HungUp(f) => {
                // While the runner is still dialling a leg, its own result tells the story.
                let answered = if is_a { &c.a } else { &c.b }.answered_at.is_some();
                if !answered && !c.runner_done {
                    return;
                }
                if is_a && self.customer_moved(&mut c) {
                    // The customer talks on elsewhere: only the agent is gone.
                    self.leg_ended(&mut c, true, &f);
                    c.seen_at = SystemTime::now();
                    self.journal.put(&c);
                    // Bridged straight to another channel (what an attended
                    // transfer's Replaces does): that channel is the new party,
                    // even when its side of the bridge reports it.
                    let partner = c
                        .transfer_to
                        .as_deref()
                        .and_then(|t| Uuid::parse_str(t).ok());
                    if partner.is_some() {
                        c.transfer_to = None;
                    }
                    drop(c);
                    if let Some(p) = partner {
                        self.customer_bridged(&cell, p, None);
                    }
                    return;
                }
                // The agent's leg was moved elsewhere (uuid_transfer of the
                // A-leg) and the customer's leg ended after it: the agent's
                // side left first, and its leg is no longer ours to hang up.
                let agent_left = !is_a && self.agent_moved(&mut c);
                let other = if is_a { c.b.uuid } else { c.a.uuid };
                let other_live = if is_a { c.b.is_live() } else { c.a.is_live() };
                self.leg_ended(&mut c, is_a, &f);
                if c.first_end.is_none() {
                    c.first_end = Some(if is_a {
                        HangupBy::Agent
                    } else {
                        HangupBy::Customer
                    });
                }
                drop(c);
                if agent_left {
                    lock(&self.registry).by_leg.remove(&other);
                }
                if other_live {
                    self.switch.hangup(other, "NORMAL_CLEARING");
                }
                self.finish_if_done(&cell);
            }
        }
    }

    /// Whether the agent's (answered, live) leg was moved elsewhere by the
    /// switch (`uuid_transfer` of the A-leg): it then leaves the call, which
    /// follows the customer's leg, and the CRM is told once
    /// (`pbx.call.transferred`, `moved_leg` A, no far end for the customer).
    fn agent_moved(&self, c: &mut CallRecord) -> bool {
        if c.b.answered_at.is_none() || !c.a.is_live() || c.cancel.is_some() {
            return false;
        }
        let Some(to) = self.switch.transferred(c.a.uuid, c.b.uuid) else {
            return false;
        };
        let from = c.far_end().uuid;
        c.a.ended_at = Some(SystemTime::now());
        c.a.by_peer = Some(false);
        c.first_end.get_or_insert(HangupBy::Agent);
        c.transferred = true;
        let extra = json!({
            "moved_leg": "A",
            "destination": to,
            "far_end_uuid": null,
            "previous_far_end_uuid": from.to_string(),
            "transfer": c.parties.len() + 1,
        });
        self.emit(c, events::TRANSFERRED, Some("A"), extra);
        true
    }

    /// Whether the customer's (answered, live) leg has left the agent: a
    /// transfer the switch made, seen before or now.
    fn customer_moved(&self, c: &mut CallRecord) -> bool {
        if c.b.answered_at.is_none() || !c.b.is_live() || c.cancel.is_some() {
            return false;
        }
        if !c.transferred {
            match self.switch.transferred(c.b.uuid, c.a.uuid) {
                Some(to) => {
                    c.transferred = true;
                    c.transfer_to = Some(to);
                }
                None => return false,
            }
        }
        true
    }

    /// The customer's leg is bridged to `partner`: after a transfer, a new
    /// party; the call follows it and says so (`pbx.call.transferred`).
    fn customer_bridged(&self, cell: &CallCell, partner: Uuid, destination: Option<String>) {
        let mut c = lock(cell);
        if partner == c.a.uuid
            || c.party_index(partner).is_some()
            || c.state == CallState::Ended
            || !c.b.is_live()
        {
            return;
        }
        let from = c.far_end().uuid;
        c.transferred = true;
        let destination = c.transfer_to.take().or(destination);
        let mut leg = Leg::new(partner);
        let now = SystemTime::now();
        leg.started_at = Some(now);
        leg.answered_at = Some(now);
        let followed = self.switch.follow(partner, c.call_uuid);
        if !followed {
            // Already gone: no report of its end will come.
            leg.ended_at = Some(now);
        }
        c.parties.push(Party {
            leg,
            destination: destination.clone(),
            moved_leg: "B",
        });
        c.state = CallState::Bridged;
        let extra = json!({
            "moved_leg": "B",
            "destination": destination,
            "far_end_uuid": partner.to_string(),
            "previous_far_end_uuid": from.to_string(),
            "transfer": c.parties.len(),
        });
        self.emit(&mut c, events::TRANSFERRED, Some("B"), extra);
        let call_uuid = c.call_uuid;
        drop(c);
        lock(&self.registry).by_leg.insert(partner, call_uuid);
    }

    pub(crate) fn agent_ringing(&self, c: &mut CallRecord) {
        if c.a.ringing_at.is_none() && c.a.ended_at.is_none() {
            c.a.ringing_at = Some(SystemTime::now());
            self.emit(c, events::RINGING, Some("A"), json!({}));
        }
    }

    pub(crate) fn leg_ended(&self, c: &mut CallRecord, is_a: bool, f: &Failure) {
        end_leg(if is_a { &mut c.a } else { &mut c.b }, f);
    }

    /// Emits an event of this call, numbered in order, under the call's lock.
    pub(crate) fn emit(
        &self,
        c: &mut CallRecord,
        kind: &'static str,
        leg: Option<&str>,
        extra: Value,
    ) {
        let mut data = c.event_base(leg);
        if let Value::Object(e) = extra {
            data.extend(e);
        }
        c.seq += 1;
        let event = CallEvent::new(
            kind,
            c.call_uuid,
            c.seq,
            c.token.clone(),
            Value::Object(data),
        );
        c.seen_at = SystemTime::now();
        self.emit_event(c, event, false);
    }

    /// Hands `event` to the sinks with the call's journal record: in a
    /// durable journal, the event's spool row and the record (its `seq`,
    /// its state) are one commit, so a crash never leaves one without the
    /// other (no event lost, none emitted twice under two ids).
    ///
    /// Nobody waits for that commit: the sinks get the event from the
    /// store's thread once it is committed (in commit order, so a call's
    /// events stay in seq order), and the thread that emits (FreeSWITCH's
    /// event thread, a call's) never waits on the disk. The call's last
    /// commit (`ended`, its CDR) keeps the ended record readable in
    /// `ending` until the store has it.
    fn emit_event(&self, c: &CallRecord, event: CallEvent, ended: bool) {
        let mut writes = self.sink.durable_writes(&event);
        self.journal_record(c, ended, &mut writes);
        let Some(store) = self.store().filter(|_| !writes.is_empty()) else {
            return self.sink.committed(&event);
        };
        let call_uuid = c.call_uuid;
        if ended {
            lock(&self.ending).insert(call_uuid, c.clone());
        }
        // The event goes with the write and comes back on refusal.
        let slot = Arc::new(Mutex::new(Some(event)));
        let (sink, e) = (Arc::clone(&self.sink), Arc::clone(&slot));
        let ending = Arc::clone(&self.ending);
        let then: Committed = Box::new(move |r| {
            match (r, lock(&e).take()) {
                (_, None) => {}
                (Ok(()) | Err(StoreError::Timeout), Some(e)) => sink.committed(&e),
                (Err(err), Some(e)) => sink.uncommitted(&e, &err),
            }
            if ended {
                lock(&ending).remove(&call_uuid);
            }
        });
        if store.write_then(writes, then).is_err() {
            // The store refused: the sinks try on their own (and say so).
            if ended {
                lock(&self.ending).remove(&call_uuid);
            }
            if let Some(event) = lock(&slot).take() {
                self.sink.emit(&event);
            }
        }
    }

    /// The call's journal record: added to `writes` when the journal is
    /// durable (it commits with them), else handed to the journal at once.
    fn journal_record(&self, c: &CallRecord, ended: bool, writes: &mut Vec<Write>) {
        if self.journal.durable() {
            writes.push(journal_write(c, ended));
        } else if ended {
            self.journal.remove(c.call_uuid);
        } else {
            self.journal.put(c);
        }
    }

    /// Commits `writes` with the call's journal record, waiting for it.
    fn commit_call(
        &self,
        c: &CallRecord,
        ended: bool,
        mut writes: Vec<Write>,
    ) -> Result<(), StoreError> {
        self.journal_record(c, ended, &mut writes);
        match self.store() {
            Some(store) if !writes.is_empty() => store.write(writes, COMMIT_TIMEOUT),
            _ => Ok(()),
        }
    }

    /// Ends the call when nothing of it is left: the runner is done and no leg is live.
    pub(crate) fn finish_if_done(&self, cell: &CallCell) {
        let mut c = lock(cell);
        let party_live = c.parties.iter().any(|p| p.leg.is_live());
        if c.state == CallState::Ended
            || !c.runner_done
            || c.a.is_live()
            || c.b.is_live()
            || party_live
        {
            return;
        }
        c.state = CallState::Ended;
        if c.outcome.is_none() {
            c.outcome = Some(match (c.b.answered_at, c.cancel) {
                (Some(_), _) => "completed",
                (None, Some(HangupBy::Api)) => "cancelled",
                (None, Some(_)) => "aborted",
                (None, None) => "failed",
            });
        }
        if c.hangup_by.is_none() {
            c.hangup_by = Some(match c.cancel {
                Some(by) => by,
                None if c.b.answered_at.is_some() => c.who_hung_up(),
                None => c.first_end.unwrap_or(HangupBy::System),
            });
        }
        let leg_name = c.ending_leg().0;
        let (cause, sip) = c.cause();
        let extra = json!({
            "hangup_cause": cause,
            "sip_code": sip,
            "hangup_by": c.hangup_by.map(HangupBy::as_str),
            "outcome": c.outcome,
            "duration": c.duration(),
            "billsec": c.billsec(),
            "recovered": c.recovered,
        });
        self.emit(&mut c, events::HANGUP, Some(leg_name), extra);
        self.emit_cdr(&mut c);
        let outcome = c.outcome.unwrap_or("failed");
        let (call_uuid, a, b) = (c.call_uuid, c.a.uuid, c.b.uuid);
        let parties: Vec<Uuid> = c.parties.iter().map(|p| p.leg.uuid).collect();
        drop(c);
        *lock(&self.stats.outcomes).entry(outcome).or_default() += 1;
        let mut reg = lock(&self.registry);
        if reg.active.remove(&call_uuid).is_some() {
            reg.by_leg.remove(&a);
            reg.by_leg.remove(&b);
            for p in parties {
                reg.by_leg.remove(&p);
            }
        }
    }

    /// The `pbx.cdr.created` of an ended call (its `pbx.call.hangup` was
    /// emitted); the call leaves the journal.
    pub(crate) fn emit_cdr(&self, c: &mut CallRecord) {
        let cdr = c.cdr_json();
        c.seq += 1;
        let event = CallEvent::new(events::CDR, c.call_uuid, c.seq, c.token.clone(), cdr);
        c.seen_at = SystemTime::now();
        self.emit_event(c, event, true);
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

    fn has_unbridged_calls(&self) -> bool {
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
