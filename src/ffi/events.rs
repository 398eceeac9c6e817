//! Channel events of our legs in (on FreeSWITCH's threads: filter, copy,
//! `try_send`, nothing more), and the CUSTOM subclasses our call events go
//! out as (fired in `custom_events`).

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crossbeam_channel::TrySendError;
use uuid::Uuid;

use crate::core::events::ALL_TYPES;
use crate::core::notes::Notes;
use crate::switch::{EventQueue, LegEvent, LegRole, LegSender};

use super::cstr::{borrowed, c_string, with_c_str};
use super::dial::{dial_of, leg_report, ChannelEvent};
use super::guard::guard;
use super::log::{self, Level};
use super::sys;
use super::waiters::Waiters;

/// Owner name of our reserved subclasses.
const OWNER: &std::ffi::CStr = c"mod_zorio_c2c";

/// How an attempt dialled from the agent's session went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DialEnd {
    /// The customer's leg answered (CHANNEL_ANSWER of that attempt).
    Answered,
    /// `bridge` returned on the agent (CHANNEL_EXECUTE_COMPLETE), with the
    /// cause of a failed originate, or of a bridge on early media that
    /// ended unanswered, when there was one.
    Returned(Option<String>),
}

/// (attempt, SIP status) of one leg's HANGUP_COMPLETE.
type EndNote = (Option<u32>, Option<u16>);

/// How our legs went, kept briefly for the thread that placed them: the SIP
/// status (HANGUP_COMPLETE), when the channel was destroyed (DESTROY), and
/// how each attempt dialled from the agent's session went ([`DialEnd`]).
/// Many notes are never taken (a bridged call's hangups and bridge, its
/// legs' destruction): each map keeps at most [`EndNotes::MAX`] for at most
/// [`EndNotes::KEEP`], the oldest going first.
pub(crate) struct EndNotes {
    /// (attempt, SIP status) of each leg's HANGUP_COMPLETE.
    notes: Mutex<Notes<Uuid, EndNote>>,
    destroyed: Mutex<Notes<Uuid, ()>>,
    /// The stamp of each leg's CHANNEL_HANGUP, until its HANGUP_COMPLETE.
    hangups: Mutex<Notes<Uuid, u64>>,
    next_hangup: AtomicU64,
    /// Our legs bridged (CHANNEL_BRIDGE, either side).
    bridged: Mutex<Notes<Uuid, ()>>,
    /// The first [`DialEnd`] of each attempt dialled from the agent's session.
    dials: Mutex<Notes<Uuid, (u32, DialEnd)>>,
    /// The agents whose call thread waits for a `bridge` of ours to return
    /// (attempts in flight on each): only their CHANNEL_EXECUTE_COMPLETEs
    /// are looked into.
    dialling: Mutex<HashMap<Uuid, u32>>,
    /// The legs the engine follows ([`crate::switch::Switch::watch`]): every
    /// other channel's event is passed over at its `Unique-ID`.
    watched: RwLock<HashMap<Uuid, LegRole>>,
    /// The call threads waiting on a leg, woken when something of it is noted.
    pub(crate) waiters: Waiters,
}

fn notes<V>() -> Mutex<Notes<Uuid, V>> {
    Mutex::new(Notes::new(EndNotes::MAX, EndNotes::KEEP))
}

impl Default for EndNotes {
    fn default() -> Self {
        EndNotes {
            notes: notes(),
            destroyed: notes(),
            hangups: notes(),
            next_hangup: AtomicU64::new(0),
            bridged: notes(),
            dials: notes(),
            dialling: Mutex::default(),
            watched: RwLock::default(),
            waiters: Waiters::default(),
        }
    }
}

impl EndNotes {
    /// 4,096 notes are 120 s of 17 calls/s; past that, the oldest go first.
    const KEEP: Duration = Duration::from_secs(120);
    const MAX: usize = 4096;

    /// Records a leg's end; never waits (skipped when the map is busy).
    fn note(&self, leg: Uuid, attempt: Option<u32>, sip: Option<u16>) {
        if let Ok(mut m) = self.notes.try_lock() {
            m.put(leg, (attempt, sip));
        }
        self.waiters.wake(leg);
    }

    /// Records how attempt `attempt` at `leg` went, unless it already did
    /// (an answered attempt's `bridge` returns much later), and wakes the
    /// thread dialling it. Never skipped: a lost answer left a talking call
    /// for failed. The lock is only ever held for a map operation (the
    /// dialling thread waits on [`Waiters`], not on this map).
    fn note_dial(&self, leg: Uuid, attempt: u32, end: DialEnd) {
        {
            let mut m = lock(&self.dials);
            if m.get(&leg).is_none_or(|seen| seen.0 != attempt) {
                m.put(leg, (attempt, end));
            }
        }
        self.waiters.wake(leg);
    }

    /// How attempt `attempt` at `leg` went, once known (taken once).
    pub(crate) fn take_dial(&self, leg: Uuid, attempt: u32) -> Option<DialEnd> {
        let mut m = lock(&self.dials);
        match m.get(&leg) {
            Some(d) if d.0 == attempt => m.remove(&leg).map(|d| d.1),
            _ => None,
        }
    }

    /// Records that two legs were bridged, and wakes whoever waits on them.
    fn note_bridged(&self, legs: [Uuid; 2]) {
        {
            let mut m = lock(&self.bridged);
            for leg in legs {
                m.put(leg, ());
            }
        }
        for leg in legs {
            self.waiters.wake(leg);
        }
    }

    /// Whether `leg` has been bridged (seen even after both legs are gone).
    pub(crate) fn was_bridged(&self, leg: Uuid) -> bool {
        lock(&self.bridged).contains(&leg)
    }

    /// Records that a channel of ours is destroyed. Never skipped: a dial
    /// whose agent is gone waits for it (the lock is only ever held for a
    /// map operation).
    fn note_destroyed(&self, leg: Uuid) {
        lock(&self.destroyed).put(leg, ());
        self.waiters.wake(leg);
    }

    /// Stamps a leg's CHANNEL_HANGUP, in the order the switch fires them,
    /// with a strictly increasing wall-clock µs: the switch's own clock
    /// ticks too coarsely to order two legs, and wall-clock keeps the order
    /// across a reload of the module. Never waits.
    fn note_hangup(&self, leg: Uuid) {
        let now = now_us();
        let mut last = self.next_hangup.load(Ordering::SeqCst);
        let n = loop {
            let n = now.max(last + 1);
            match self
                .next_hangup
                .compare_exchange(last, n, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break n,
                Err(seen) => last = seen,
            }
        };
        if let Ok(mut m) = self.hangups.try_lock() {
            m.put_new(leg, n);
        }
    }

    /// The order of `leg`'s hangup, taken once; never waits.
    fn take_hangup(&self, leg: Uuid) -> Option<u64> {
        self.hangups.try_lock().ok()?.remove(&leg)
    }

    /// Whether the channel of `leg` was destroyed since the last [`EndNotes::forget`].
    pub(crate) fn is_destroyed(&self, leg: Uuid) -> bool {
        lock(&self.destroyed).contains(&leg)
    }

    /// Takes the end of `leg` (attempt `attempt`) if it has been seen.
    pub(crate) fn take(&self, leg: Uuid, attempt: Option<u32>) -> Option<Option<u16>> {
        let mut m = lock(&self.notes);
        match m.get(&leg) {
            Some(n) if n.0 == attempt => m.remove(&leg).map(|n| n.1),
            _ => None,
        }
    }

    /// Marks `agent` as dialling until the guard is dropped: the returns of
    /// its applications are looked into meanwhile ([`EndNotes::is_dialling`]).
    pub(crate) fn dialling(&self, agent: Uuid) -> Dialling<'_> {
        *lock(&self.dialling).entry(agent).or_default() += 1;
        Dialling { ends: self, agent }
    }

    /// Whether a call thread waits for a `bridge` of ours on `agent`.
    fn is_dialling(&self, agent: Uuid) -> bool {
        lock(&self.dialling).contains_key(&agent)
    }

    /// Follows `leg`'s events from now ([`EndNotes::role`]).
    pub(crate) fn watch(&self, leg: Uuid, role: LegRole) {
        write(&self.watched).insert(leg, role);
    }

    /// Stops following `leg`'s events.
    pub(crate) fn unwatch(&self, leg: Uuid) {
        write(&self.watched).remove(&leg);
    }

    /// What `leg` is to its call, while the engine follows it.
    fn role(&self, leg: Uuid) -> Option<LegRole> {
        self.watched
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&leg)
            .copied()
    }

    /// Forgets an older end of `leg` before a new attempt.
    pub(crate) fn forget(&self, leg: Uuid) {
        lock(&self.notes).remove(&leg);
        lock(&self.destroyed).remove(&leg);
        lock(&self.dials).remove(&leg);
    }
}

/// An agent marked as dialling ([`EndNotes::dialling`]); unmarks on drop.
pub(crate) struct Dialling<'a> {
    ends: &'a EndNotes,
    agent: Uuid,
}

impl Drop for Dialling<'_> {
    fn drop(&mut self) {
        let mut m = lock(&self.ends.dialling);
        if let Some(n) = m.get_mut(&self.agent) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.agent);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

/// Where the channel-event callback sends what it sees.
pub(crate) struct EventTarget {
    pub(crate) legs: LegSender,
    pub(crate) ends: Arc<EndNotes>,
}

/// Set while loaded; the callback only reads it (writers hold it for an instant).
static TARGET: RwLock<Option<Arc<EventTarget>>> = RwLock::new(None);

pub(crate) fn set_target(t: Option<Arc<EventTarget>>) {
    *TARGET.write().unwrap_or_else(|e| e.into_inner()) = t;
}

fn target() -> Option<Arc<EventTarget>> {
    TARGET
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .cloned()
}

/// How late (µs) the switch delivered the latest channel event to us, plus
/// one (0: none seen yet): its event queue's wait, which the setup pace reads.
static EVENT_LAG_US: AtomicU64 = AtomicU64::new(0);

/// How late the switch delivered its latest channel event; `None` before the first.
pub(crate) fn event_lag() -> Option<Duration> {
    match EVENT_LAG_US.load(Ordering::Relaxed) {
        0 => None,
        us => Some(Duration::from_micros(us - 1)),
    }
}

/// The `Event-Sequence` of the newest channel event delivered to us: the
/// switch numbers every event as it is created, so the numbers handed out
/// since are the events still ahead in its queue.
static DELIVERED_SEQ: AtomicU64 = AtomicU64::new(0);

/// The switch's event queue: its backlog is the events created but not yet
/// delivered (one made and never fired counts too, until the next is
/// delivered: checked against the queue's own count under load, within a
/// few hundred); `None` before the first channel event.
pub(crate) fn event_queue() -> Option<EventQueue> {
    let delivered = DELIVERED_SEQ.load(Ordering::Relaxed);
    if delivered == 0 {
        return None;
    }
    // SAFETY: no arguments; the shim creates, reads and destroys its own event.
    let newest = unsafe { sys::zc2c_event_sequence_now() };
    // SAFETY: no arguments; reads the switch's core count.
    let capacity = unsafe { sys::zc2c_event_queue_capacity() };
    // The probe took a number of its own.
    (newest > 0).then(|| EventQueue {
        backlog: newest.saturating_sub(delivered + 1),
        capacity,
        delivered,
    })
}

/// Wall-clock µs since the epoch (the switch's `Event-Date-Timestamp` unit).
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Notes how late an event fired at `fired_us` (its `Event-Date-Timestamp`,
/// µs since the epoch) reached us.
fn note_event_lag(fired_us: u64) {
    EVENT_LAG_US.store(now_us().saturating_sub(fired_us) + 1, Ordering::Relaxed);
}

/// The `Unique-ID` an event's head carries, if it is a UUID.
fn head_uuid(head: &sys::zc2c_event_head) -> Option<Uuid> {
    let bytes = head.unique_id.map(|c| c as u8);
    let len = bytes.iter().position(|b| *b == 0)?;
    Uuid::try_parse_ascii(bytes[..len].trim_ascii()).ok()
}

/// The channel-event callback (a FreeSWITCH thread: the switch's one event
/// dispatch thread, which every channel's events wait for). Every channel
/// event of the bound kinds comes through here, each with a hundred
/// headers and more; the event's first twenty are read in one pass, and a
/// channel the engine does not watch goes no further.
extern "C" fn on_channel_event(event: *mut sys::zc2c_event) {
    guard("channel event callback", (), || {
        // SAFETY: `event` is the event FreeSWITCH is delivering, alive for this call.
        let kind = unsafe { sys::zc2c_event_kind(event) } as u32;
        let mut head = sys::zc2c_event_head {
            timestamp_us: 0,
            sequence: 0,
            unique_id: [0; 37],
        };
        // SAFETY: `event` is alive for this call; `head` is ours to write.
        unsafe { sys::zc2c_event_read_head(event, &mut head) };
        if head.timestamp_us > 0 {
            note_event_lag(head.timestamp_us);
        }
        DELIVERED_SEQ.fetch_max(head.sequence, Ordering::Relaxed);
        let (Some(leg), Some(t)) = (head_uuid(&head), target()) else {
            return;
        };
        let header = |name: &str| {
            with_c_str(name, |name| {
                // SAFETY: `name` is NUL-terminated and alive for the call;
                // `event` is alive for this call; the returned header is
                // borrowed from it and copied before we return.
                unsafe { borrowed(sys::zc2c_event_header(event, name)) }
            })
        };
        if kind == sys::ZC2C_EV_EXECUTE_COMPLETE {
            // Every application of every channel: only our `bridge` attempts
            // count, on an agent whose call thread waits for one. The
            // Application-UUID comes last, after every variable.
            if !t.ends.is_dialling(leg) {
                return;
            }
            let Some((leg, attempt)) = header("Application-UUID").and_then(|a| dial_of(&a)) else {
                return;
            };
            // The originate's failure, or that of a bridge on early media
            // the carrier then ended unanswered (183, then 503).
            let cause = [
                "variable_originate_failed_cause",
                "variable_last_bridge_hangup_cause",
            ]
            .into_iter()
            .find_map(|h| header(h).filter(|c| !c.is_empty()));
            t.ends.note_dial(leg, attempt, DialEnd::Returned(cause));
            return;
        }
        let Some(role) = t.ends.role(leg) else {
            return;
        };
        let kind = match kind {
            sys::ZC2C_EV_HANGUP => return t.ends.note_hangup(leg),
            sys::ZC2C_EV_DESTROY => return t.ends.note_destroyed(leg),
            sys::ZC2C_EV_PROGRESS | sys::ZC2C_EV_PROGRESS_MEDIA => ChannelEvent::Progress,
            sys::ZC2C_EV_ANSWER => ChannelEvent::Answer,
            sys::ZC2C_EV_BRIDGE => ChannelEvent::Bridge,
            sys::ZC2C_EV_HANGUP_COMPLETE => ChannelEvent::HangupComplete,
            _ => return,
        };
        // Only a customer's leg has attempts (its UUID is each one's).
        let Some(mut report) = leg_report(kind, leg, role == LegRole::Customer, header) else {
            return;
        };
        if let (LegEvent::Answered, Some(attempt)) = (&report.event, report.attempt) {
            t.ends
                .note_dial(report.leg_uuid, attempt, DialEnd::Answered);
        }
        if let LegEvent::Bridged { partner, .. } = &report.event {
            // The customer's leg waits for its bridge with the agent.
            t.ends.note_bridged([*partner, report.leg_uuid]);
        }
        // No log line here: this is the switch's event thread, and the
        // switch logs each hangup with its cause itself.
        if let LegEvent::HungUp(f) = &mut report.event {
            f.seq = t.ends.take_hangup(report.leg_uuid);
            t.ends.note(report.leg_uuid, report.attempt, f.sip_code);
        }
        match t.legs.try_send(report) {
            Ok(()) => {}
            Err(TrySendError::Full(r)) => {
                let leg = r.leg_uuid.to_string();
                log::log(
                    Level::Crit,
                    Some(&leg),
                    &format!("leg report queue FULL: dropped {:?} of leg {leg}", r.event),
                )
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    })
}

/// Our bindings; unbinding waits out any delivery in flight.
pub(crate) struct Bindings(Vec<*mut sys::zc2c_binding>);

// SAFETY: the binding handles are only passed back to the shim, which
// serializes bind/unbind under FreeSWITCH's event lock.
unsafe impl Send for Bindings {}

impl Bindings {
    /// Binds PROGRESS, PROGRESS_MEDIA, ANSWER, BRIDGE, HANGUP, HANGUP_COMPLETE,
    /// DESTROY and EXECUTE_COMPLETE.
    pub(crate) fn bind() -> Result<Bindings, String> {
        let mut b = Bindings(Vec::new());
        for kind in [
            sys::ZC2C_EV_PROGRESS,
            sys::ZC2C_EV_PROGRESS_MEDIA,
            sys::ZC2C_EV_ANSWER,
            sys::ZC2C_EV_BRIDGE,
            sys::ZC2C_EV_HANGUP,
            sys::ZC2C_EV_HANGUP_COMPLETE,
            sys::ZC2C_EV_DESTROY,
            sys::ZC2C_EV_EXECUTE_COMPLETE,
        ] {
            // SAFETY: static id string; the callback is a guarded `extern "C"`
            // fn of this module, unbound (in Drop) before the module goes.
            let h = unsafe {
                sys::zc2c_event_bind(OWNER.as_ptr(), kind as i32, Some(on_channel_event))
            };
            if h.is_null() {
                return Err(format!("could not bind channel event kind {kind}"));
            }
            b.0.push(h);
        }
        Ok(b)
    }
}

impl Drop for Bindings {
    fn drop(&mut self) {
        for h in self.0.drain(..) {
            // SAFETY: a handle from zc2c_event_bind, unbound and freed by C exactly once.
            unsafe { sys::zc2c_event_unbind(h) };
        }
    }
}

/// `zorio_c2c::call.ringing` for `pbx.call.ringing`.
pub(crate) fn subclass_of(event_type: &str) -> String {
    format!(
        "zorio_c2c::{}",
        event_type.strip_prefix("pbx.").unwrap_or(event_type)
    )
}

/// Our reserved CUSTOM subclasses; freed on drop.
pub(crate) struct Subclasses(Vec<CString>);

impl Subclasses {
    pub(crate) fn reserve() -> Subclasses {
        let mut s = Subclasses(Vec::new());
        for t in ALL_TYPES {
            let name = c_string(&subclass_of(t));
            // SAFETY: NUL-terminated strings alive for the call (FreeSWITCH copies them).
            let st = unsafe { sys::zc2c_subclass_reserve(OWNER.as_ptr(), name.as_ptr()) };
            if st != sys::ZC2C_STATUS_SUCCESS as i32 {
                log::warn(&format!(
                    "could not reserve event subclass {} (already reserved?)",
                    name.to_string_lossy()
                ));
            }
            s.0.push(name);
        }
        s
    }
}

impl Drop for Subclasses {
    fn drop(&mut self) {
        for name in self.0.drain(..) {
            // SAFETY: NUL-terminated strings alive for the call.
            unsafe { sys::zc2c_subclass_free(OWNER.as_ptr(), name.as_ptr()) };
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn subclasses_drop_the_pbx_prefix() {
        assert_eq!(
            super::subclass_of("pbx.call.ringing"),
            "zorio_c2c::call.ringing"
        );
        assert_eq!(
            super::subclass_of("pbx.cdr.created"),
            "zorio_c2c::cdr.created"
        );
    }

    #[test]
    fn an_agent_is_dialling_while_a_call_thread_holds_its_mark() {
        use super::EndNotes;
        use uuid::Uuid;
        let ends = EndNotes::default();
        let (agent, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert!(!ends.is_dialling(agent));
        let first = ends.dialling(agent);
        let second = ends.dialling(agent);
        assert!(ends.is_dialling(agent) && !ends.is_dialling(other));
        drop(first);
        assert!(ends.is_dialling(agent), "one attempt still waits");
        drop(second);
        assert!(!ends.is_dialling(agent));
    }

    #[test]
    fn the_lag_of_the_latest_event_is_how_late_it_came() {
        use super::{event_lag, note_event_lag, now_us};
        use std::time::Duration;
        let now = now_us();
        note_event_lag(now - 1_500_000);
        let lag = event_lag().expect("noted");
        assert!(
            lag >= Duration::from_millis(1_500) && lag < Duration::from_millis(2_500),
            "{lag:?}"
        );
        // A clock that says the event came from the future: no lag, not a wrap.
        note_event_lag(now + 60_000_000);
        assert_eq!(event_lag(), Some(Duration::ZERO));
    }
}
