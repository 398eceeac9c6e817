//! A simulated switch: a directory, agents who answer after a delay, customers
//! whose behaviour the dialled number chooses, trunks that can fail, and
//! customers who hang up after talking a while. It drives the same engine as
//! FreeSWITCH does, for tests and for the `c2c-sandbox` binary.
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::switch::{
    AgentLeg, CustomerLeg, Extension, Failure, LegEvent, LegOutcome, LegReport, LegRole, LegSender,
    Route, Switch, SwitchError,
};

/// Destination: the customer is busy (486).
pub const NUMBER_BUSY: &str = "0900486486";
/// Destination: the customer never answers (rings until the B-leg timeout,
/// at most [`SimOptions::no_answer_after`]).
pub const NUMBER_NO_ANSWER: &str = "0900408408";
/// Destination: the first trunk answers 503, the next one connects.
pub const NUMBER_FIRST_TRUNK_FAILS: &str = "0900503503";
/// Destination: every trunk answers 503.
pub const NUMBER_ALL_TRUNKS_FAIL: &str = "0900503999";

/// How the simulated world behaves.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub domain: String,
    pub extensions: Vec<Extension>,
    /// Agents that never answer (their phones ring until the A-leg timeout).
    pub agents_no_answer: HashSet<String>,
    pub agent_answer_after: Duration,
    pub customer_ring_for: Duration,
    /// Customers hang up after talking this long.
    pub talk_time: Duration,
    /// Upper bound on "no answer" rings, so the sandbox does not wait a minute.
    pub no_answer_after: Duration,
    /// Gateways that answer every call with 503.
    pub failing_gateways: HashSet<String>,
    /// Still loading its modules ([`Switch::booting`]).
    pub booting: bool,
    /// How long a failing trunk takes to answer its 503 (default: at once).
    pub trunk_failure_delay: Duration,
    /// Agents whose phones fail instead of ringing: extension → (hangup
    /// cause, SIP code), e.g. `USER_BUSY` 486 or `USER_NOT_REGISTERED` 404.
    pub agent_failures: HashMap<String, (String, u16)>,
    /// Destinations whose answered leg the switch cannot bridge.
    pub unbridgeable: HashSet<String>,
    /// The switch's session limit, if it has one.
    pub max_sessions: Option<u32>,
    /// What the switch says it took over each answered agent's setup.
    pub setup_delay: Option<Duration>,
    /// The recordings' disk fills this long into each recording: the file
    /// stops there and the switch says `uri-failure`; the call goes on.
    pub recordings_disk_full_after: Option<Duration>,
}

impl SimOptions {
    /// The sandbox's demo world: 1001 and 1002 active (1002 with outbound
    /// caller id 0900000021), 1003 inactive, 1004 never answers.
    pub fn demo() -> SimOptions {
        let ext = |id: &str, active: bool, out: Option<&str>| Extension {
            id: id.to_string(),
            domain: "sandbox.local".to_string(),
            active,
            outbound_caller_id_number: out.map(str::to_string),
            outbound_caller_id_name: None,
        };
        SimOptions {
            domain: "sandbox.local".into(),
            extensions: vec![
                ext("1001", true, None),
                ext("1002", true, Some("0900000021")),
                ext("1003", false, None),
                ext("1004", true, None),
            ],
            agents_no_answer: ["1004".to_string()].into_iter().collect(),
            agent_answer_after: Duration::from_millis(1500),
            customer_ring_for: Duration::from_millis(1500),
            talk_time: Duration::from_secs(3),
            no_answer_after: Duration::from_secs(5),
            failing_gateways: HashSet::new(),
            booting: false,
            trunk_failure_delay: Duration::ZERO,
            agent_failures: HashMap::new(),
            unbridgeable: HashSet::new(),
            max_sessions: None,
            setup_delay: None,
            recordings_disk_full_after: None,
        }
    }
}

impl SimOptions {
    /// The demo world with quick people: both phones are answered after
    /// `answer`, customers hang up after `talk`, "no answer" rings 4 × `answer`.
    pub fn demo_fast(answer: Duration, talk: Duration) -> SimOptions {
        SimOptions {
            agent_answer_after: answer,
            customer_ring_for: answer,
            talk_time: talk,
            no_answer_after: answer * 4,
            ..SimOptions::demo()
        }
    }
}

/// What the simulated switch was asked to do, in order (tests read it; the
/// last 10,000 are kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimAction {
    OriginateAgent(AgentLeg),
    DialCustomer(CustomerLeg),
    Bridge(Uuid, Uuid),
    Hangup(Uuid, String),
    /// Ringback played to an agent while its call waits for a trunk (`None`: stopped).
    Ringback(Uuid, Option<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    Dialling,
    Answered,
    Ended,
}

/// Ended legs and actions the simulated switch remembers (the oldest are
/// forgotten): a long-running sandbox keeps a flat memory.
const REMEMBERED: usize = 10_000;

#[derive(Default)]
struct World {
    legs: HashMap<Uuid, (LegState, Option<u32>)>,
    /// The legs the engine follows ([`Switch::watch`]): the only ones reported.
    watched: HashMap<Uuid, LegRole>,
    /// Ended legs, oldest first (forgotten past [`REMEMBERED`]).
    ended: VecDeque<Uuid>,
    bridges: HashMap<Uuid, Uuid>,
    actions: VecDeque<SimAction>,
    /// (when, leg, cause, by_peer): scheduled hangups, by the far end
    /// (`true`) or by the switch (`false`: a time limit).
    timers: Vec<(Instant, Uuid, String, bool)>,
    /// (when, leg, party, destination): a transferred leg's new party answers.
    connects: Vec<(Instant, Uuid, Uuid, String)>,
    /// Where each transferred leg was sent.
    transferred: HashMap<Uuid, String>,
    /// Extensions on a call the engine did not place ([`SimSwitch::set_in_use`]).
    in_use: HashSet<String>,
    /// Answered customer legs the switch will not bridge ([`SimOptions::unbridgeable`]).
    unbridgeable: HashSet<Uuid>,
    /// Customer legs' trunk: (gateway, trunk id), while they are up.
    trunk_of: HashMap<Uuid, (Option<String>, Option<i64>)>,
    /// Channels through a gateway that the engine did not place
    /// ([`SimSwitch::set_foreign_channels`]).
    foreign: HashMap<String, Vec<Uuid>>,
    /// Legs being recorded: (file, since).
    recordings: HashMap<Uuid, (std::path::PathBuf, Instant)>,
    /// The last hangup time handed out (µs), so that every hangup is later.
    last_hangup_us: u64,
    stop: bool,
}

impl World {
    fn end(&mut self, leg: Uuid, attempt: Option<u32>) {
        self.legs.insert(leg, (LegState::Ended, attempt));
        self.trunk_of.remove(&leg);
        self.ended.push_back(leg);
        while self.ended.len() > REMEMBERED {
            if let Some(old) = self.ended.pop_front() {
                if self.legs.get(&old).is_some_and(|l| l.0 == LegState::Ended) {
                    self.legs.remove(&old);
                }
            }
        }
    }

    /// A hangup time (µs since the epoch), strictly after the previous one.
    fn hangup_time(&mut self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        self.last_hangup_us = now.max(self.last_hangup_us + 1);
        self.last_hangup_us
    }

    fn act(&mut self, action: SimAction) {
        self.actions.push_back(action);
        if self.actions.len() > REMEMBERED {
            self.actions.pop_front();
        }
    }
}

struct Shared {
    world: Mutex<World>,
    changed: Condvar,
    options: Mutex<SimOptions>,
    legs: LegSender,
}

/// The simulated switch.
pub struct SimSwitch {
    shared: Arc<Shared>,
    clock: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SimSwitch {
    /// A simulated switch reporting leg progress on `legs`.
    pub fn new(options: SimOptions, legs: LegSender) -> Arc<SimSwitch> {
        let shared = Arc::new(Shared {
            world: Mutex::new(World::default()),
            changed: Condvar::new(),
            options: Mutex::new(options),
            legs,
        });
        let s = Arc::clone(&shared);
        let clock = std::thread::Builder::new()
            .name("c2c-sim-clock".into())
            .spawn(move || s.run_clock())
            .expect("spawn sim clock");
        Arc::new(SimSwitch {
            shared,
            clock: Mutex::new(Some(clock)),
        })
    }

    /// The legs the engine watches now ([`Switch::watch`]), with their roles.
    pub fn watched(&self) -> HashMap<Uuid, LegRole> {
        lock(&self.shared.world).watched.clone()
    }

    /// Everything asked of the switch so far.
    pub fn actions(&self) -> Vec<SimAction> {
        lock(&self.shared.world).actions.iter().cloned().collect()
    }

    /// Changes the simulated world (e.g. make a gateway fail).
    pub fn set_options(&self, f: impl FnOnce(&mut SimOptions)) {
        f(&mut lock(&self.shared.options));
    }

    /// A party hangs up by itself (agent, customer, or a transfer's party).
    pub fn party_hangs_up(&self, leg: Uuid, cause: &str) {
        self.shared.end_leg(leg, cause, true);
    }

    /// An attended transfer (what a REFER with Replaces does in the switch):
    /// the answered, bridged `leg` is bridged straight to a consulted party
    /// already up, whose side of the bridge is the one that reports it (no
    /// report for `leg`); its former partner is hung up by the switch.
    /// Returns the party's channel UUID, `None` when the leg is not up.
    pub fn attended_transfer(&self, leg: Uuid) -> Option<Uuid> {
        let party = Uuid::new_v4();
        self.move_leg(leg, party.to_string(), |w| {
            w.legs.insert(party, (LegState::Answered, None));
            w.bridges.insert(leg, party);
            w.bridges.insert(party, leg);
        })
        .then_some(party)
    }

    /// Transfers an answered, bridged leg to `destination` (as
    /// `uuid_transfer` or a REFER does): its partner is hung up by the
    /// switch (`hangup_after_bridge`), and after the customers' ring time a
    /// new party answers and is bridged to the leg. Returns the new party's
    /// channel UUID, `None` when the leg is not up.
    pub fn transfer(&self, leg: Uuid, destination: &str) -> Option<Uuid> {
        let ring = lock(&self.shared.options).customer_ring_for;
        let party = Uuid::new_v4();
        self.move_leg(leg, destination.to_string(), |w| {
            w.connects
                .push((Instant::now() + ring, leg, party, destination.to_string()));
        })
        .then_some(party)
    }

    /// Takes an answered `leg` out of its bridge, records it as transferred
    /// to `to`, lets `place` put its new party in the world, then hangs its
    /// former partner up (as the switch does). False when the leg is not up.
    fn move_leg(&self, leg: Uuid, to: String, place: impl FnOnce(&mut World)) -> bool {
        let mut w = lock(&self.shared.world);
        if w.legs.get(&leg).map(|l| l.0) != Some(LegState::Answered) {
            return false;
        }
        let partner = w.bridges.remove(&leg);
        if let Some(p) = partner {
            w.bridges.remove(&p);
        }
        w.transferred.insert(leg, to);
        place(&mut w);
        drop(w);
        self.shared.changed.notify_all();
        if let Some(p) = partner {
            self.shared.end_leg(p, "NORMAL_CLEARING", false);
        }
        true
    }

    /// Takes a leg out of its bridge, so that it can end alone.
    pub fn unbridge(&self, leg: Uuid) {
        let mut w = lock(&self.shared.world);
        if let Some(p) = w.bridges.remove(&leg) {
            w.bridges.remove(&p);
        }
    }

    /// Puts `n` channels the engine did not place on `gateway` (another
    /// application's calls): [`Switch::channels_by`] counts them.
    pub fn set_foreign_channels(&self, gateway: &str, n: usize) {
        let mut w = lock(&self.shared.world);
        w.foreign.insert(
            gateway.to_string(),
            (0..n).map(|_| Uuid::new_v4()).collect(),
        );
    }

    /// Puts extension `id` on (or off) a call of its own, one the engine did
    /// not place: [`Switch::extension_in_use`] says so.
    pub fn set_in_use(&self, id: &str, on: bool) {
        let mut w = lock(&self.shared.world);
        if on {
            w.in_use.insert(id.to_string());
        } else {
            w.in_use.remove(id);
        }
    }

    /// Stops the clock thread and joins it.
    pub fn stop(&self) {
        lock(&self.shared.world).stop = true;
        self.shared.changed.notify_all();
        if let Some(h) = lock(&self.clock).take() {
            let _ = h.join();
        }
    }
}

impl Drop for SimSwitch {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    /// Reports a leg's progress, as the real switch does: only a watched leg's.
    fn report(&self, leg_uuid: Uuid, attempt: Option<u32>, event: LegEvent) {
        if !lock(&self.world).watched.contains_key(&leg_uuid) {
            return;
        }
        let _ = self.legs.try_send(LegReport {
            leg_uuid,
            attempt,
            event,
        });
    }

    /// Ends a leg (`by_peer`: its party hung up, else the switch did); a
    /// bridged partner ends too, as FreeSWITCH does.
    fn end_leg(&self, leg: Uuid, cause: &str, by_peer: bool) {
        let mut w = lock(&self.world);
        let Some((state, attempt)) = w.legs.get(&leg).copied() else {
            return;
        };
        if state == LegState::Ended {
            return;
        }
        w.end(leg, attempt);
        let partner = w.bridges.remove(&leg);
        if let Some(p) = partner {
            w.bridges.remove(&p);
        }
        let at_us = w.hangup_time();
        let recording = w.recordings.remove(&leg);
        drop(w);
        self.changed.notify_all();
        let mut record_cause = None;
        if let Some((path, since)) = recording {
            let mut length = since.elapsed();
            let full = lock(&self.options).recordings_disk_full_after;
            if let Some(at) = full.filter(|at| *at < length) {
                length = at;
                record_cause = Some("uri-failure".to_string());
            }
            // As the switch does, the file is closed before the leg's end is reported.
            let _ = write_recording(&path, length);
        }
        let failure = Failure {
            cause: cause.to_string(),
            sip_code: None,
            by_peer: Some(by_peer),
            at_us: Some(at_us),
            seq: None,
            record_cause,
        };
        if state == LegState::Answered {
            self.report(leg, attempt, LegEvent::HungUp(failure));
        }
        if let Some(p) = partner {
            self.end_leg(p, "NORMAL_CLEARING", false);
        }
    }

    /// A transferred leg's new party answers: bridged to the leg, reported.
    fn connect(&self, leg: Uuid, party: Uuid, destination: String) {
        let mut w = lock(&self.world);
        if w.legs.get(&leg).map(|l| l.0) != Some(LegState::Answered) {
            return;
        }
        w.legs.insert(party, (LegState::Answered, None));
        w.bridges.insert(leg, party);
        w.bridges.insert(party, leg);
        drop(w);
        self.changed.notify_all();
        let attempt = lock(&self.world).legs.get(&leg).and_then(|l| l.1);
        self.report(
            leg,
            attempt,
            LegEvent::Bridged {
                partner: party,
                destination: Some(destination),
            },
        );
    }

    /// Rings a leg: ringing report, then answer after `answer_after` (or never),
    /// unless hung up first or `timeout` passes.
    fn ring(
        &self,
        leg: Uuid,
        attempt: Option<u32>,
        answer_after: Option<Duration>,
        timeout: Duration,
        give_up: Failure,
    ) -> LegOutcome {
        lock(&self.world)
            .legs
            .insert(leg, (LegState::Dialling, attempt));
        self.report(leg, attempt, LegEvent::Ringing);
        let start = Instant::now();
        let answer_at = answer_after.filter(|d| *d < timeout).map(|d| start + d);
        let end_at = start + timeout;
        let mut w = lock(&self.world);
        loop {
            if w.legs.get(&leg).map(|l| l.0) == Some(LegState::Ended) || w.stop {
                w.end(leg, attempt);
                return LegOutcome::Failed(Failure {
                    cause: "ORIGINATOR_CANCEL".into(),
                    sip_code: Some(487),
                    ..Default::default()
                });
            }
            let now = Instant::now();
            if answer_at.is_some_and(|t| now >= t) {
                w.legs.insert(leg, (LegState::Answered, attempt));
                drop(w);
                self.report(leg, attempt, LegEvent::Answered);
                return LegOutcome::Answered;
            }
            if now >= end_at {
                w.end(leg, attempt);
                return LegOutcome::Failed(give_up);
            }
            let next = answer_at.map_or(end_at, |t| t.min(end_at));
            w = self
                .changed
                .wait_timeout(w, next.saturating_duration_since(now))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn run_clock(&self) {
        let mut w = lock(&self.world);
        loop {
            if w.stop {
                return;
            }
            let now = Instant::now();
            if let Some(i) = w.timers.iter().position(|t| t.0 <= now) {
                let (_, leg, cause, by_peer) = w.timers.swap_remove(i);
                drop(w);
                self.end_leg(leg, &cause, by_peer);
                w = lock(&self.world);
                continue;
            }
            if let Some(i) = w.connects.iter().position(|t| t.0 <= now) {
                let (_, leg, party, destination) = w.connects.swap_remove(i);
                drop(w);
                self.connect(leg, party, destination);
                w = lock(&self.world);
                continue;
            }
            let wait = w
                .timers
                .iter()
                .map(|t| t.0)
                .chain(w.connects.iter().map(|t| t.0))
                .map(|t| t.saturating_duration_since(now))
                .min()
                .unwrap_or(Duration::from_millis(200));
            w = self
                .changed
                .wait_timeout(w, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The simulated parties' voices: the customer a 1000 Hz tone (left), the
/// agent a 400 Hz tone (right), as a real switch's stereo recording of the
/// customer's leg places them.
pub const RECORDING_TONES_HZ: [f64; 2] = [1000.0, 400.0];

/// A simulated recording: `length` of 8 kHz 16-bit stereo WAV.
fn write_recording(path: &std::path::Path, length: Duration) -> std::io::Result<()> {
    crate::core::wav::write_tones(path, 8000, &RECORDING_TONES_HZ, length.as_millis() as u64)
}

impl Switch for SimSwitch {
    fn default_domain(&self) -> String {
        lock(&self.shared.options).domain.clone()
    }

    fn lookup_extension(&self, domain: &str, id: &str) -> Result<Option<Extension>, SwitchError> {
        let o = lock(&self.shared.options);
        Ok(o.extensions
            .iter()
            .find(|e| e.id == id && (e.domain == domain || domain == o.domain))
            .cloned())
    }

    fn originate_agent(&self, leg: &AgentLeg) -> (LegOutcome, Option<Duration>) {
        lock(&self.shared.world).act(SimAction::OriginateAgent(leg.clone()));
        let o = lock(&self.shared.options).clone();
        if let Some((cause, sip_code)) = o.agent_failures.get(&leg.extension) {
            let failed = LegOutcome::Failed(Failure {
                cause: cause.clone(),
                sip_code: Some(*sip_code),
                ..Default::default()
            });
            return (failed, None);
        }
        let answers = !o.agents_no_answer.contains(&leg.extension);
        let outcome = self.shared.ring(
            leg.leg_uuid,
            None,
            answers.then_some(o.agent_answer_after),
            leg.timeout,
            Failure {
                cause: "NO_ANSWER".into(),
                sip_code: Some(480),
                ..Default::default()
            },
        );
        let delay = o
            .setup_delay
            .filter(|_| matches!(outcome, LegOutcome::Answered));
        (outcome, delay)
    }

    fn dial_customer(&self, leg: &CustomerLeg) -> LegOutcome {
        {
            let mut w = lock(&self.shared.world);
            w.act(SimAction::DialCustomer(leg.clone()));
            let gateway = match &leg.route {
                Route::Gateway { gateway } => Some(gateway.clone()),
                _ => None,
            };
            let trunk = leg.trunk.as_ref().map(|t| t.0);
            w.trunk_of.insert(leg.leg_uuid, (gateway, trunk));
        }
        let o = lock(&self.shared.options).clone();
        let attempt = Some(leg.attempt);
        let trunk_down = match &leg.route {
            Route::Gateway { gateway } => o.failing_gateways.contains(gateway),
            _ => false,
        };
        let fail_503 = trunk_down
            || leg.number == NUMBER_ALL_TRUNKS_FAIL
            || (leg.number == NUMBER_FIRST_TRUNK_FAILS && leg.attempt == 1);
        if fail_503 {
            if !o.trunk_failure_delay.is_zero() {
                std::thread::sleep(o.trunk_failure_delay);
            }
            lock(&self.shared.world).end(leg.leg_uuid, attempt);
            return LegOutcome::Failed(Failure {
                cause: "NORMAL_TEMPORARY_FAILURE".into(),
                sip_code: Some(503),
                ..Default::default()
            });
        }
        if leg.number == NUMBER_BUSY {
            return LegOutcome::Failed(Failure {
                cause: "USER_BUSY".into(),
                sip_code: Some(486),
                ..Default::default()
            });
        }
        let no_answer = leg.number == NUMBER_NO_ANSWER;
        let outcome = self.shared.ring(
            leg.leg_uuid,
            attempt,
            (!no_answer).then_some(o.customer_ring_for),
            if no_answer {
                leg.timeout.min(o.no_answer_after)
            } else {
                leg.timeout
            },
            Failure {
                cause: "NO_ANSWER".into(),
                sip_code: Some(480),
                ..Default::default()
            },
        );
        if outcome == LegOutcome::Answered {
            let mut w = lock(&self.shared.world);
            if o.unbridgeable.contains(&leg.number) {
                w.unbridgeable.insert(leg.leg_uuid);
            }
            w.timers.push((
                Instant::now() + o.talk_time,
                leg.leg_uuid,
                "NORMAL_CLEARING".into(),
                true,
            ));
            drop(w);
            self.shared.changed.notify_all();
        }
        outcome
    }

    fn bridge(&self, agent_leg: Uuid, customer_leg: Uuid) -> Result<(), SwitchError> {
        let mut w = lock(&self.shared.world);
        w.act(SimAction::Bridge(agent_leg, customer_leg));
        let up = |u: &Uuid| w.legs.get(u).map(|l| l.0) == Some(LegState::Answered);
        if !(up(&agent_leg) && up(&customer_leg)) {
            return Err(SwitchError("a leg to bridge is gone".into()));
        }
        if w.unbridgeable.remove(&customer_leg) {
            return Err(SwitchError("the switch cannot bridge these legs".into()));
        }
        w.bridges.insert(agent_leg, customer_leg);
        w.bridges.insert(customer_leg, agent_leg);
        Ok(())
    }

    fn hangup(&self, leg_uuid: Uuid, cause: &str) {
        lock(&self.shared.world).act(SimAction::Hangup(leg_uuid, cause.to_string()));
        self.shared.end_leg(leg_uuid, cause, false);
    }

    fn schedule_hangup(&self, leg: Uuid, after_secs: u32, cause: &str) -> Result<(), SwitchError> {
        let mut w = lock(&self.shared.world);
        if w.legs.get(&leg).map(|l| l.0) != Some(LegState::Answered) {
            return Err(SwitchError(format!("no channel {leg}")));
        }
        let at = Instant::now() + Duration::from_secs(u64::from(after_secs));
        w.timers.push((at, leg, cause.to_string(), false));
        drop(w);
        self.shared.changed.notify_all();
        Ok(())
    }

    fn start_recording(&self, leg: Uuid, path: &std::path::Path) -> Result<(), SwitchError> {
        let mut w = lock(&self.shared.world);
        if w.legs.get(&leg).map(|l| l.0) != Some(LegState::Answered) {
            return Err(SwitchError(format!("no channel {leg}")));
        }
        // The file exists from the start, as the switch's does.
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        write_recording(path, Duration::ZERO)
            .map_err(|e| SwitchError(format!("cannot write {}: {e}", path.display())))?;
        w.recordings
            .insert(leg, (path.to_path_buf(), Instant::now()));
        Ok(())
    }

    /// Only WAV: the simulated recordings are written here.
    fn writes_format(&self, format: &str) -> bool {
        format.eq_ignore_ascii_case("wav")
    }

    fn booting(&self) -> bool {
        lock(&self.shared.options).booting
    }

    fn transferred(&self, leg: Uuid, _from: Uuid) -> Option<String> {
        lock(&self.shared.world).transferred.get(&leg).cloned()
    }

    fn follow(&self, leg: Uuid, _call_uuid: Uuid) -> bool {
        self.leg_exists(leg)
    }

    fn watch(&self, leg: Uuid, role: LegRole) {
        lock(&self.shared.world).watched.insert(leg, role);
    }

    fn unwatch(&self, leg: Uuid) {
        lock(&self.shared.world).watched.remove(&leg);
    }

    fn max_sessions(&self) -> Option<u32> {
        lock(&self.shared.options).max_sessions
    }

    fn sessions_in_use(&self) -> Option<u32> {
        let w = lock(&self.shared.world);
        let ours = w.legs.values().filter(|l| l.0 != LegState::Ended).count();
        let others: usize = w.foreign.values().map(Vec::len).sum();
        Some((ours + others) as u32)
    }

    fn extension_in_use(&self, _domain: &str, id: &str) -> bool {
        lock(&self.shared.world).in_use.contains(id)
    }

    fn channels_by(&self, var: &str) -> HashMap<String, Vec<Uuid>> {
        let w = lock(&self.shared.world);
        let mut by: HashMap<String, Vec<Uuid>> = HashMap::new();
        for (leg, (gateway, trunk)) in &w.trunk_of {
            if !w.legs.get(leg).is_some_and(|l| l.0 != LegState::Ended) {
                continue;
            }
            let value = match var {
                crate::switch::GATEWAY_VAR => gateway.clone(),
                crate::switch::TRUNK_VAR => trunk.map(|t| t.to_string()),
                _ => None,
            };
            if let Some(value) = value {
                by.entry(value).or_default().push(*leg);
            }
        }
        if var == crate::switch::GATEWAY_VAR {
            for (gateway, legs) in &w.foreign {
                by.entry(gateway.clone()).or_default().extend(legs);
            }
        }
        by
    }

    fn play_ringback(&self, agent_leg: Uuid, ringback: Option<&str>) -> Result<(), SwitchError> {
        let mut w = lock(&self.shared.world);
        w.act(SimAction::Ringback(agent_leg, ringback.map(str::to_string)));
        match w.legs.get(&agent_leg) {
            Some((LegState::Answered, _)) => Ok(()),
            _ => Err(SwitchError(format!("no channel {agent_leg}"))),
        }
    }

    fn leg_exists(&self, leg_uuid: Uuid) -> bool {
        lock(&self.shared.world)
            .legs
            .get(&leg_uuid)
            .is_some_and(|l| l.0 != LegState::Ended)
    }
}
