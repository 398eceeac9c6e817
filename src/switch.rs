//! The seam the core drives: what a switch must do for a click-to-call call.
//!
//! The real implementation lives in `ffi` (inside FreeSWITCH); [`crate::sim`]
//! simulates one for tests and the sandbox. Methods that place a leg block the
//! calling (core-owned) thread until the leg is answered or has failed; leg
//! progress that happens later (ringing, hangup of a bridged leg) is reported
//! back through [`crate::core::engine::Engine::leg_event`].

use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;

/// The switch's one event queue: every event waits there for its dispatch
/// thread, and once it is full every thread that fires an event waits too
/// (the whole switch stalls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventQueue {
    /// Events in it now.
    pub backlog: u64,
    /// Events it holds when full.
    pub capacity: u64,
    /// The sequence number of the newest event delivered: every event the
    /// switch creates takes the next, so it grows by the events got through.
    pub delivered: u64,
}

/// An extension of the switch's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub id: String,
    pub domain: String,
    /// Absent `zorio_c2c_status` (or any value but `inactive`) means active.
    pub active: bool,
    pub outbound_caller_id_number: Option<String>,
    pub outbound_caller_id_name: Option<String>,
}

/// The A-leg: ring the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLeg {
    pub call_uuid: Uuid,
    pub leg_uuid: Uuid,
    pub extension: String,
    pub domain: String,
    pub timeout: Duration,
    /// What the agent's phone shows.
    pub caller_id_name: String,
    pub caller_id_number: String,
    pub auto_answer: bool,
}

/// Where one B-leg attempt goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `sofia/gateway/<gateway>/<number>`.
    Gateway { gateway: String },
    /// An admin's template with `${number}` replaced.
    DialString { template: String },
    /// The switch's dialplan routes the number.
    Dialplan { dialplan: String, context: String },
}

/// One B-leg attempt: dial the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerLeg {
    pub call_uuid: Uuid,
    pub leg_uuid: Uuid,
    /// The answered agent leg it will be bridged to.
    pub agent_leg_uuid: Uuid,
    pub number: String,
    pub route: Route,
    /// `Some((id, name))` when a trunk carries this attempt.
    pub trunk: Option<(i64, String)>,
    /// Presented as the INVITE's From.
    pub caller_id: String,
    /// Custom headers, key without `X-`; sent as `X-<key>: <value>`.
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    /// 1 for the first route, 2 for the first failover, …; the switch tags
    /// this attempt's [`LegReport`]s with it.
    pub attempt: u32,
    /// Played to the (answered) agent from the first attempt until the
    /// bridge: a tone (`%(…)`) or a sound file; `None`: silence.
    pub ringback: Option<String>,
}

/// Why a leg ended or failed, as FreeSWITCH names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Failure {
    /// Hangup cause name, e.g. `USER_BUSY`, `NO_ANSWER`, `NORMAL_TEMPORARY_FAILURE`.
    pub cause: String,
    /// SIP status of the final response, when known.
    pub sip_code: Option<u16>,
    /// `Some(true)` when the party on this leg hung up (it sent the BYE or
    /// CANCEL: `sip_hangup_disposition` `recv_*`), `Some(false)` when the
    /// switch ended the leg, `None` when unknown.
    pub by_peer: Option<bool>,
    /// When the switch hung the leg up, microseconds since the Unix epoch
    /// (`Caller-Channel-Hangup-Time`), when known.
    pub at_us: Option<u64>,
    /// Orders hangups the switch's clock puts in the same tick: a leg hung
    /// up earlier has a smaller one (the order of the hangup events).
    pub seq: Option<u64>,
    /// FreeSWITCH's `record_completion_cause` of a recording of this leg,
    /// when one ended (`uri-failure`: a write failed, e.g. the disk filled).
    pub record_cause: Option<String>,
}

/// How placing a leg ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegOutcome {
    Answered,
    Failed(Failure),
}

/// Progress of one leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    Ringing,
    Answered,
    /// The leg is now bridged to `partner` (a channel of the switch); after
    /// a transfer, `destination` is where the leg was sent, when known.
    Bridged {
        partner: Uuid,
        destination: Option<String>,
    },
    HungUp(Failure),
}

/// A leg's progress, sent by the switch to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegReport {
    pub leg_uuid: Uuid,
    /// The B-leg attempt this is about (`None` for the A-leg or when unknown).
    pub attempt: Option<u32>,
    pub event: LegEvent,
}

/// Most [`LegReport`]s waiting for the engine; past it `try_send` refuses.
pub const LEG_QUEUE: usize = 65_536;

/// Where a switch sends [`LegReport`]s. Never blocks: use `try_send`, and
/// say loudly when it is full.
///
/// Bounded by a count, not by a preallocated array: its memory follows
/// what it holds (crossbeam's list channel, blocks of 31 reports). A
/// `bounded(65_536)` array was 6.8 MB allocated at every load on the
/// loading FreeSWITCH thread; freed at unload, it raised glibc's dynamic
/// mmap threshold to its size, and each later copy then landed in, and
/// stayed resident in, the arena of whichever thread loaded it.
#[derive(Clone)]
pub struct LegSender {
    tx: crossbeam_channel::Sender<LegReport>,
    bound: usize,
}

impl LegSender {
    /// Queues `report` unless `bound` reports are waiting (`Full`) or the
    /// engine is gone (`Disconnected`). Several senders at once may pass the
    /// bound by one each: it is a memory bound, not a count to the unit.
    pub fn try_send(
        &self,
        report: LegReport,
    ) -> Result<(), crossbeam_channel::TrySendError<LegReport>> {
        if self.tx.len() >= self.bound {
            return Err(crossbeam_channel::TrySendError::Full(report));
        }
        self.tx
            .send(report)
            .map_err(|e| crossbeam_channel::TrySendError::Disconnected(e.into_inner()))
    }

    /// Reports waiting.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }
}

/// The channel between a switch and its engine (bounded: [`LEG_QUEUE`]).
pub fn leg_channel() -> (LegSender, crossbeam_channel::Receiver<LegReport>) {
    leg_channel_bounded(LEG_QUEUE)
}

/// [`leg_channel`] holding at most `bound` reports.
pub fn leg_channel_bounded(bound: usize) -> (LegSender, crossbeam_channel::Receiver<LegReport>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (
        LegSender {
            tx,
            bound: bound.max(1),
        },
        rx,
    )
}

/// What a watched leg is to its call ([`Switch::watch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegRole {
    /// The agent's leg.
    Agent,
    /// The customer's leg: every dial attempt has its UUID, and its reports
    /// say which attempt they are of.
    Customer,
    /// A channel the customer was transferred to.
    Party,
}

/// The switch could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchError(pub String);

impl std::fmt::Display for SwitchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the core needs from a switch.
///
/// Contract on progress: the switch sends a [`LegReport`] for ringing, and for
/// the end (`HungUp`) of every leg that was answered, through the
/// [`LegSender`] it was built with.
pub trait Switch: Send + Sync + 'static {
    /// The switch's own directory domain.
    fn default_domain(&self) -> String;
    /// Looks an extension up in the directory; `Ok(None)` when it does not exist.
    fn lookup_extension(&self, domain: &str, id: &str) -> Result<Option<Extension>, SwitchError>;
    /// Rings the agent and blocks until answered or failed. The leg's channel
    /// UUID must be `leg.leg_uuid`. With an answer, how long the switch
    /// itself took over the setup (no person's time: not the ringing), when
    /// it says.
    fn originate_agent(&self, leg: &AgentLeg) -> (LegOutcome, Option<std::time::Duration>);
    /// Dials the customer over one route and blocks until answered or failed.
    /// The channel UUID must be `leg.leg_uuid` (also on a retry over another trunk).
    fn dial_customer(&self, leg: &CustomerLeg) -> LegOutcome;
    /// Bridges two answered legs.
    fn bridge(&self, agent_leg: Uuid, customer_leg: Uuid) -> Result<(), SwitchError>;
    /// Hangs a leg up (no-op when it is already gone).
    fn hangup(&self, leg_uuid: Uuid, cause: &str);
    /// Whether a channel with this UUID is up in the switch now.
    fn leg_exists(&self, leg_uuid: Uuid) -> bool;
    /// Whether `leg` was transferred away from its bridge with `from` (by
    /// `uuid_transfer`, a REFER, …): where to (`Some(destination)`), else `None`.
    fn transferred(&self, _leg: Uuid, _from: Uuid) -> Option<String> {
        None
    }
    /// Tags `leg`, a channel that joined call `call_uuid` (a transfer's new
    /// party), so that its end is reported like our own legs'. `false` when
    /// the channel is already gone or ending (no report will come).
    fn follow(&self, _leg: Uuid, _call_uuid: Uuid) -> bool {
        false
    }
    /// The engine follows `leg` from now until [`Switch::unwatch`]: a call's
    /// legs from before they are placed, a transfer's party once it joins.
    /// A switch reports only watched legs, and may pass over every other
    /// channel's events without reading them.
    fn watch(&self, _leg: Uuid, _role: LegRole) {}
    /// The engine no longer follows `leg` (its call ended, or it left it).
    fn unwatch(&self, _leg: Uuid) {}
    /// Asks the switch to hang `leg` up with `cause` no sooner than
    /// `after_secs` seconds from now (FreeSWITCH's `sched_hangup`), on its
    /// own clock: it holds even when nothing of ours runs any more (the
    /// module unloaded). Whole seconds: the engine's clock is the precise one.
    fn schedule_hangup(
        &self,
        _leg: Uuid,
        _after_secs: u32,
        _cause: &str,
    ) -> Result<(), SwitchError> {
        Err(SwitchError("this switch cannot schedule a hangup".into()))
    }
    /// Starts recording `leg` (the customer's, answered) into `path` until
    /// it ends, in two channels: what the leg reads (its party) and what it
    /// writes (whoever it is bridged to). The switch does the media work; the
    /// file is closed when the leg's end is reported.
    fn start_recording(&self, _leg: Uuid, _path: &std::path::Path) -> Result<(), SwitchError> {
        Err(SwitchError("this switch cannot record".into()))
    }
    /// Whether the switch can write recordings as files of extension
    /// `format` (`wav`): a loaded format module writes it.
    fn writes_format(&self, format: &str) -> bool;
    /// Whether any channel of the switch belongs to extension `id@domain`
    /// (its presence), whoever placed it: an agent already on a call.
    fn extension_in_use(&self, _domain: &str, _id: &str) -> bool {
        false
    }

    /// Whether the switch is still starting (loading its modules): what
    /// another module provides may not be there yet.
    fn booting(&self) -> bool {
        false
    }

    /// How many channels the switch carries at most, when it says.
    fn max_sessions(&self) -> Option<u32> {
        None
    }

    /// How many channels the switch carries now (anyone's), when it says.
    fn sessions_in_use(&self) -> Option<u32> {
        None
    }

    /// How late the switch delivered its latest event (the wait in its
    /// event queue), when it says.
    fn event_lag(&self) -> Option<std::time::Duration> {
        None
    }

    /// How full the switch's event queue is, when it says.
    fn event_queue(&self) -> Option<EventQueue> {
        None
    }

    /// Every channel up now that has the variable `var`, by its value, in
    /// one look at the switch (e.g. [`GATEWAY_VAR`]: each gateway's
    /// channels), whoever placed them.
    fn channels_by(&self, _var: &str) -> HashMap<String, Vec<Uuid>> {
        HashMap::new()
    }

    /// The channels up now whose variable `var` is `value`, whoever placed them.
    fn channels_with(&self, var: &str, value: &str) -> Vec<Uuid> {
        self.channels_by(var).remove(value).unwrap_or_default()
    }

    /// Plays `ringback` to the (answered) agent until the next
    /// B-leg attempt starts or `None` stops it: while a call waits for its
    /// trunk.
    fn play_ringback(&self, _agent_leg: Uuid, _ringback: Option<&str>) -> Result<(), SwitchError> {
        Err(SwitchError("this switch cannot play ringback".into()))
    }
}

/// The variable FreeSWITCH sets on a leg placed through a sofia gateway: its name.
pub const GATEWAY_VAR: &str = "sip_gateway_name";
/// The variable our B-legs carry: the id of the trunk of their attempt.
pub const TRUNK_VAR: &str = "zorio_c2c_trunk_id";

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::TrySendError;

    fn report() -> LegReport {
        LegReport {
            leg_uuid: Uuid::new_v4(),
            attempt: None,
            event: LegEvent::Ringing,
        }
    }

    #[test]
    fn the_leg_channel_refuses_past_its_bound_and_after_the_engine() {
        let (tx, rx) = leg_channel_bounded(3);
        for _ in 0..3 {
            tx.try_send(report()).unwrap();
        }
        assert_eq!(tx.len(), 3);
        assert!(matches!(tx.try_send(report()), Err(TrySendError::Full(_))));
        rx.recv().unwrap();
        tx.clone().try_send(report()).unwrap();
        assert!(matches!(tx.try_send(report()), Err(TrySendError::Full(_))));
        drop(rx);
        let (tx, rx) = leg_channel_bounded(3);
        drop(rx);
        assert!(matches!(
            tx.try_send(report()),
            Err(TrySendError::Disconnected(_))
        ));
    }
}
