//! [`FsSwitch`]: the real [`Switch`], placing legs through FreeSWITCH.
//! Its blocking calls run on the engine's own call threads, never on a
//! FreeSWITCH thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::switch::{
    AgentLeg, CustomerLeg, EventQueue, Extension, Failure, LegOutcome, LegRole, Switch, SwitchError,
};

use super::config_load::global_domain;
use super::cstr::{borrowed, c_string, take_owned, UuidC};
use super::dial::{
    agent_dial_string, agent_vars, customer_dial, dial_app_uuid, timeout_secs,
    transfer_destination, unsafe_var, CustomerDial, Refused, VAR_CALL, VAR_LEG,
};
use super::events::{DialEnd, EndNotes};
use super::log::{self, Level};
use super::sys;
use super::waiters::Waiter;

/// The switch we run inside.
pub(crate) struct FsSwitch {
    ends: Arc<EndNotes>,
    /// Legs being originated, with the cause cell FreeSWITCH polls to cancel them.
    ringing: Mutex<HashMap<Uuid, Arc<AtomicI32>>>,
}

/// Originate variables held in a C `switch_event_t`; destroyed by C on drop.
struct Vars(*mut sys::zc2c_vars);

impl Vars {
    fn new(list: &[(String, String)]) -> Result<Vars, Refused> {
        // SAFETY: no arguments; returns NULL or a fresh event we own.
        let vars = Vars(unsafe { sys::zc2c_vars_new() });
        if vars.0.is_null() {
            return Err(Refused("could not allocate originate variables".into()));
        }
        for (name, value) in list {
            if unsafe_var(name, value) {
                return Err(Refused(format!(
                    "variable {name} has a value FreeSWITCH would reinterpret"
                )));
            }
            let (n, v) = (c_string(name), c_string(value));
            // SAFETY: `vars.0` is our live event; FreeSWITCH copies both strings.
            let st = unsafe { sys::zc2c_vars_add(vars.0, n.as_ptr(), v.as_ptr()) };
            if st != sys::ZC2C_STATUS_SUCCESS as i32 {
                return Err(Refused(format!("could not set variable {name}")));
            }
        }
        Ok(vars)
    }
}

impl Drop for Vars {
    fn drop(&mut self) {
        // SAFETY: created by zc2c_vars_new, freed by C exactly once.
        unsafe { sys::zc2c_vars_free(self.0) };
    }
}

/// Whether the channel `uuid` has been answered (its `endpoint_disposition`,
/// set by the switch as it marks the channel answered).
fn answered(uuid: Uuid) -> bool {
    let (u, n) = (UuidC::new(uuid), c_string("endpoint_disposition"));
    // SAFETY: both strings alive for the call; the result is NULL or a
    // malloc'd copy we own, taken (copied, freed by C) exactly once.
    let d = unsafe { take_owned(sys::zc2c_channel_var(u.as_ptr(), n.as_ptr())) };
    d.as_deref() == Some("ANSWER")
}

fn exists(uuid: Uuid) -> bool {
    let u = UuidC::new(uuid);
    // SAFETY: NUL-terminated string alive for the call.
    unsafe { sys::zc2c_uuid_exists(u.as_ptr()) != 0 }
}

impl FsSwitch {
    pub(crate) fn new(ends: Arc<EndNotes>) -> FsSwitch {
        FsSwitch {
            ends,
            ringing: Mutex::new(HashMap::new()),
        }
    }

    /// Places one leg; blocks until answered (then held, see src/shim/dial.c)
    /// or failed. With an answer, the switch's own share of its setup.
    fn originate(
        &self,
        leg: Uuid,
        dial: &str,
        timeout: Duration,
        cid_name: &str,
        cid_num: &str,
        vars: &[(String, String)],
    ) -> (LegOutcome, Option<Duration>) {
        let uuid = leg.to_string();
        let vars = match Vars::new(vars) {
            Ok(v) => v,
            Err(Refused(why)) => {
                log::log(
                    Level::Error,
                    Some(&uuid),
                    &format!("not placing leg: {why}"),
                );
                return (failed("INVALID_NUMBER_FORMAT", None), None);
            }
        };
        log::log(Level::Info, Some(&uuid), &format!("originate {dial}"));
        let (d, n, c) = (c_string(dial), c_string(cid_name), c_string(cid_num));
        let mut out = sys::zc2c_originate_result {
            answered: 0,
            cause: std::ptr::null(),
            setup_delay_us: -1,
        };
        let cancel = Arc::new(AtomicI32::new(0));
        self.ringing_legs().insert(leg, Arc::clone(&cancel));
        // SAFETY: all strings live across the call; `vars` is our live event
        // (FreeSWITCH copies from it); `cancel` (an AtomicI32, laid out as an
        // i32) outlives the call and is only ever set to a cause code, which
        // FreeSWITCH polls; `out` is a valid place to write; `cause` comes back
        // as a static string we only read.
        let cause = unsafe {
            sys::zc2c_originate(
                d.as_ptr(),
                timeout_secs(timeout),
                n.as_ptr(),
                c.as_ptr(),
                vars.0,
                cancel.as_ptr(),
                &mut out,
            );
            borrowed(out.cause)
        };
        self.ringing_legs().remove(&leg);
        drop(vars);
        if out.answered != 0 {
            let delay = u64::try_from(out.setup_delay_us)
                .ok()
                .map(Duration::from_micros);
            return (LegOutcome::Answered, delay);
        }
        let cause = cause.unwrap_or_else(|| "DESTINATION_OUT_OF_ORDER".into());
        log::log(Level::Info, Some(&uuid), &format!("leg failed: {cause}"));
        (failed(&cause, None), None)
    }

    /// One attempt at the customer's leg, dialled from the agent's own
    /// session by mod_dptools' `bridge` (see src/shim/dial.c), followed
    /// through events: the attempt's CHANNEL_ANSWER, or `bridge` returning
    /// on the agent (CHANNEL_EXECUTE_COMPLETE), or the agent gone.
    fn dial_from_agent(&self, leg: &CustomerLeg, dial: &CustomerDial) -> Result<(), String> {
        let vars = Vars::new(&dial.exports).map_err(|Refused(why)| {
            log::log(
                Level::Error,
                Some(&leg.leg_uuid.to_string()),
                &format!("not placing leg: {why}"),
            );
            "INVALID_NUMBER_FORMAT".to_string()
        })?;
        let agent = leg.agent_leg_uuid;
        let ringback = leg
            .ringback
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .unwrap_or("");
        let (a, d, r, app) = (
            UuidC::new(agent),
            c_string(&dial.dial),
            c_string(ringback),
            c_string(&dial_app_uuid(leg.leg_uuid, leg.attempt)),
        );
        log::log(
            Level::Info,
            Some(&leg.leg_uuid.to_string()),
            &format!(
                "originate {} from the agent's session (bridge, attempt {})",
                dial.target, leg.attempt
            ),
        );
        // Woken by the attempt's notes (the callback's), not polling for them.
        let waiter = self.ends.waiters.register(leg.leg_uuid);
        // The agent's `bridge` returns are looked into while this waits.
        let _dialling = self.ends.dialling(agent);
        // A failed attempt's agent may still be on its way into its `park`.
        let queued = wait_until(Duration::from_secs(5), || {
            // SAFETY: all strings alive for the call; `vars` is our live event,
            // only read (FreeSWITCH copies its values onto the agent's channel).
            let st = unsafe {
                sys::zc2c_dial_from(a.as_ptr(), d.as_ptr(), vars.0, r.as_ptr(), app.as_ptr())
            };
            (st >= 0).then_some(st == 1)
        });
        if queued != Some(true) {
            return Err("ORIGINATOR_CANCEL".into());
        }
        // Rings at most the timeout; the rest is a safety net.
        let ring_until = Instant::now() + leg.timeout;
        let until = ring_until + Duration::from_secs(30);
        let mut agent_gone = AgentGone::default();
        let mut rang_out = false;
        let end = loop {
            if let Some(end) = self.ends.take_dial(leg.leg_uuid, leg.attempt) {
                break end;
            }
            if !exists(agent) && agent_gone.given_up(self.ends.is_destroyed(agent)) {
                break DialEnd::Returned(Some("ORIGINATOR_CANCEL".into()));
            }
            if !rang_out && Instant::now() >= ring_until {
                // Bridged on early media, the originate's own timeout no
                // longer runs: end the ringing here, unless the customer
                // answered (asked of the leg itself: its answer may reach
                // us as an event seconds late). `bridge` then returns.
                rang_out = true;
                if !answered(leg.leg_uuid) {
                    self.hangup(leg.leg_uuid, "NO_ANSWER");
                }
            }
            if Instant::now() >= until {
                self.hangup(leg.leg_uuid, "RECOVERY_ON_TIMER_EXPIRE");
                break DialEnd::Returned(Some("RECOVERY_ON_TIMER_EXPIRE".into()));
            }
            // An agent gone before its `bridge` ran sends no note: seen here.
            waiter.wait(Duration::from_millis(250));
        };
        // SAFETY: strings alive for the call; `vars` is our live event, only read.
        unsafe { sys::zc2c_dial_clear(a.as_ptr(), vars.0) };
        match end {
            DialEnd::Answered => Ok(()),
            DialEnd::Returned(cause) => {
                Err(cause.unwrap_or_else(|| "DESTINATION_OUT_OF_ORDER".into()))
            }
        }
    }

    fn ringing_legs(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<AtomicI32>>> {
        self.ringing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits (bounded) until no channel has `uuid`, so it can be used again.
    fn wait_gone(&self, uuid: Uuid, within: Duration) -> bool {
        let until = Instant::now() + within;
        while exists(uuid) {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

/// When to stop waiting for what the agent's `bridge` did, once the agent
/// is gone. That reaches us as events, which run seconds late on an
/// overloaded switch: a customer who answered, talked and hung up before
/// we heard must not be reported as a failed attempt. The agent's notes
/// were fired before its CHANNEL_DESTROY: give up a moment after that is
/// seen, or after [`AgentGone::AT_MOST`] (a DESTROY we never heard of).
#[derive(Default)]
struct AgentGone {
    since: Option<Instant>,
    destroyed_since: Option<Instant>,
}

impl AgentGone {
    const AFTER_DESTROY: Duration = Duration::from_secs(1);
    const AT_MOST: Duration = Duration::from_secs(30);

    fn given_up(&mut self, destroyed: bool) -> bool {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        if destroyed {
            self.destroyed_since.get_or_insert(now);
        }
        self.destroyed_since
            .is_some_and(|d| now.duration_since(d) >= Self::AFTER_DESTROY)
            || now.duration_since(since) >= Self::AT_MOST
    }
}

/// [`wait_until`] for something the event callback notes of `waiter`'s
/// leg: looks again when woken (at the latest every 100 ms), not every 10 ms.
fn wait_noted<T>(
    waiter: &Waiter<'_>,
    within: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let until = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let left = until.checked_duration_since(Instant::now())?;
        waiter.wait(left.min(Duration::from_millis(100)));
    }
}

/// Polls `f` every 10 ms until it gives something or `within` passes.
fn wait_until<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs the API command `cmd arg` as fs_cli would; its output, `None` when
/// no such command is loaded. Only our own tokens (uuids, numbers, causes,
/// the admin's recordings path) ever reach `arg`, never a request's text.
pub(crate) fn api(cmd: &str, arg: &str) -> Option<String> {
    let (c, a) = (c_string(cmd), c_string(arg));
    // SAFETY: both strings alive for the call; the result is NULL or a
    // malloc'd buffer we own, taken (copied, freed by C) exactly once.
    unsafe { take_owned(sys::zc2c_api_execute(c.as_ptr(), a.as_ptr())) }
}

/// [`api`], `Ok` when the command answered `+OK`, else its answer.
fn api_ok(cmd: &str, arg: &str) -> Result<(), SwitchError> {
    match api(cmd, arg) {
        Some(out) if out.starts_with("+OK") => Ok(()),
        Some(out) => Err(SwitchError(format!("{cmd} {arg}: {}", out.trim()))),
        None => Err(SwitchError(format!("{cmd}: no such command"))),
    }
}

fn failed(cause: &str, sip_code: Option<u16>) -> LegOutcome {
    LegOutcome::Failed(Failure {
        cause: cause.to_string(),
        sip_code,
        ..Default::default()
    })
}

impl Switch for FsSwitch {
    fn default_domain(&self) -> String {
        global_domain().unwrap_or_else(|| "localhost".to_string())
    }

    fn lookup_extension(&self, domain: &str, id: &str) -> Result<Option<Extension>, SwitchError> {
        let (i, d) = (c_string(id), c_string(domain));
        let mut user = sys::zc2c_user {
            status: std::ptr::null_mut(),
            outbound_caller_id_number: std::ptr::null_mut(),
            outbound_caller_id_name: std::ptr::null_mut(),
        };
        // SAFETY: strings alive for the call; `user` is filled with NULL or
        // malloc'd strings, each taken (copied and freed by C) exactly once below.
        let found = unsafe { sys::zc2c_user_lookup(i.as_ptr(), d.as_ptr(), &mut user) };
        // SAFETY: see above; `take_owned` frees each pointer once, then we clear them.
        let (status, number, name) = unsafe {
            (
                take_owned(user.status),
                take_owned(user.outbound_caller_id_number),
                take_owned(user.outbound_caller_id_name),
            )
        };
        if found == 0 {
            return Ok(None);
        }
        Ok(Some(Extension {
            id: id.to_string(),
            domain: domain.to_string(),
            active: !status.is_some_and(|s| s.trim().eq_ignore_ascii_case("inactive")),
            outbound_caller_id_number: number.filter(|n| !n.is_empty()),
            outbound_caller_id_name: name.filter(|n| !n.is_empty()),
        }))
    }

    fn originate_agent(&self, leg: &AgentLeg) -> (LegOutcome, Option<Duration>) {
        let dial = match agent_dial_string(&leg.extension, &leg.domain) {
            Ok(d) => d,
            Err(Refused(why)) => {
                log::log(Level::Error, Some(&leg.leg_uuid.to_string()), &why);
                return (failed("INVALID_NUMBER_FORMAT", None), None);
            }
        };
        self.ends.forget(leg.leg_uuid);
        let waiter = self.ends.waiters.register(leg.leg_uuid);
        let (outcome, delay) = self.originate(
            leg.leg_uuid,
            &dial,
            leg.timeout,
            &leg.caller_id_name,
            &leg.caller_id_number,
            &agent_vars(leg),
        );
        let LegOutcome::Failed(f) = outcome else {
            return (outcome, delay);
        };
        // The agent's SIP answer (486, 480, …) comes with HANGUP_COMPLETE.
        let sip = wait_noted(&waiter, Duration::from_millis(1000), || {
            self.ends.take(leg.leg_uuid, None)
        });
        (failed(&f.cause, sip.flatten()), None)
    }

    fn dial_customer(&self, leg: &CustomerLeg) -> LegOutcome {
        let uuid = leg.leg_uuid.to_string();
        let dial = match customer_dial(leg) {
            Ok(d) => d,
            Err(Refused(why)) => {
                log::log(Level::Error, Some(&uuid), &why);
                return failed("INVALID_NUMBER_FORMAT", None);
            }
        };
        // A failover re-uses the leg's UUID: the previous channel must be gone first.
        if !self.wait_gone(leg.leg_uuid, Duration::from_secs(10)) {
            log::log(
                Level::Error,
                Some(&uuid),
                "previous channel with this UUID is still up",
            );
            return failed("NORMAL_TEMPORARY_FAILURE", None);
        }
        self.ends.forget(leg.leg_uuid);
        let cause = match self.dial_from_agent(leg, &dial) {
            Ok(()) => return LegOutcome::Answered,
            Err(cause) => cause,
        };
        log::log(Level::Info, Some(&uuid), &format!("leg failed: {cause}"));
        // The SIP status arrives with the channel's HANGUP_COMPLETE; wait a moment for it.
        let waiter = self.ends.waiters.register(leg.leg_uuid);
        let seen = wait_noted(&waiter, Duration::from_millis(1500), || {
            self.ends.take(leg.leg_uuid, Some(leg.attempt))
        });
        if seen.is_some() {
            // A failover re-uses this UUID: let FreeSWITCH finish with this
            // channel (CHANNEL_DESTROY, then its channels table) first.
            if wait_noted(&waiter, Duration::from_secs(5), || {
                self.ends.is_destroyed(leg.leg_uuid).then_some(())
            })
            .is_some()
            {
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        failed(&cause, seen.flatten())
    }

    /// The agent's `bridge` bridges the answered customer itself: waits
    /// (bounded) until the agent's `last_bridge_to` (set by the bridge, kept
    /// after it) names the customer's leg, looking again when the bridge's
    /// CHANNEL_BRIDGE wakes it. A bridge already over counts too: the agent
    /// says so while it is up, and the CHANNEL_BRIDGE seen says so after it
    /// left (on an overloaded switch the answer can reach us after the whole
    /// conversation).
    fn bridge(&self, agent_leg: Uuid, customer_leg: Uuid) -> Result<(), SwitchError> {
        let (a, n) = (UuidC::new(agent_leg), c_string("last_bridge_to"));
        let waiter = self.ends.waiters.register(customer_leg);
        let until = Instant::now() + Duration::from_secs(5);
        let mut agent_gone = AgentGone::default();
        let bridged = loop {
            // SAFETY: both strings alive for the call; the result is NULL or
            // a malloc'd copy we own, taken (copied, freed by C) exactly once.
            let to = unsafe { take_owned(sys::zc2c_channel_var(a.as_ptr(), n.as_ptr())) };
            if to.as_deref().and_then(|t| Uuid::parse_str(t).ok()) == Some(customer_leg)
                || self.ends.was_bridged(customer_leg)
            {
                break true;
            }
            if !exists(agent_leg) {
                if agent_gone.given_up(self.ends.is_destroyed(agent_leg)) {
                    break false;
                }
            } else if !exists(customer_leg) || Instant::now() >= until {
                break false;
            }
            waiter.wait(Duration::from_millis(100));
        };
        if bridged {
            Ok(())
        } else {
            Err(SwitchError(format!(
                "{agent_leg} and {customer_leg} were not bridged"
            )))
        }
    }

    fn hangup(&self, leg_uuid: Uuid, cause: &str) {
        let (u, c) = (UuidC::new(leg_uuid), c_string(cause));
        // Still being originated: abandon it even before its channel exists.
        if let Some(cancel) = self.ringing_legs().get(&leg_uuid) {
            // SAFETY: a NUL-terminated string alive for the call.
            let code = unsafe { sys::zc2c_cause_code(c.as_ptr()) };
            cancel.store(code.max(1), Ordering::SeqCst);
        }
        // SAFETY: both strings alive for the call; a gone channel is a no-op.
        unsafe { sys::zc2c_hangup(u.as_ptr(), c.as_ptr()) };
    }

    fn leg_exists(&self, leg_uuid: Uuid) -> bool {
        exists(leg_uuid)
    }

    fn transferred(&self, leg: Uuid, from: Uuid) -> Option<String> {
        let (u, n) = (UuidC::new(leg), c_string("transfer_source"));
        // SAFETY: both strings alive for the call; the result is NULL or a
        // malloc'd copy we own, taken (copied, freed by C) exactly once.
        let source = unsafe { take_owned(sys::zc2c_channel_var(u.as_ptr(), n.as_ptr())) }?;
        transfer_destination(&source, from)
    }

    fn follow(&self, leg: Uuid, call_uuid: Uuid) -> bool {
        let u = UuidC::new(leg);
        let tags = [
            (VAR_CALL, call_uuid.to_string()),
            (VAR_LEG, "P".to_string()),
        ];
        tags.iter().all(|(name, value)| {
            let (n, v) = (c_string(name), c_string(value));
            // SAFETY: all strings alive for the call; FreeSWITCH copies them.
            unsafe { sys::zc2c_channel_tag(u.as_ptr(), n.as_ptr(), v.as_ptr()) != 0 }
        })
    }

    fn watch(&self, leg: Uuid, role: LegRole) {
        self.ends.watch(leg, role);
    }

    fn unwatch(&self, leg: Uuid) {
        self.ends.unwatch(leg);
    }

    fn extension_in_use(&self, domain: &str, id: &str) -> bool {
        let p = c_string(&format!("{id}@{domain}"));
        // SAFETY: NUL-terminated string alive for the call; the shim only reads it.
        unsafe { sys::zc2c_presence_in_use(p.as_ptr()) > 0 }
    }

    fn schedule_hangup(&self, leg: Uuid, after_secs: u32, cause: &str) -> Result<(), SwitchError> {
        // The switch's scheduler holds it: it outlives a reload of ours. It
        // runs a task once its whole epoch second has come (`+N` could fire
        // up to 1 s early): the next whole second after now + N.
        let at = std::time::SystemTime::now() + Duration::from_secs(u64::from(after_secs));
        let epoch = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs_f64().ceil() as u64);
        let r = api_ok("sched_hangup", &format!("{epoch} {leg} {cause}"));
        if let Err(e) = &r {
            log::log(Level::Warning, Some(&leg.to_string()), &e.0);
        }
        r
    }

    fn start_recording(&self, leg: Uuid, path: &std::path::Path) -> Result<(), SwitchError> {
        let p = path.to_string_lossy();
        // Checked at load (recordings-dir); a path with a blank would split.
        if p.chars().any(char::is_whitespace) {
            return Err(SwitchError(format!("recording path {p} holds whitespace")));
        }
        // record_session reads RECORD_STEREO when it starts: read (the
        // customer) left, write (the agent, or a transfer's party) right.
        let r = api_ok("uuid_setvar", &format!("{leg} RECORD_STEREO true"))
            .and_then(|()| api_ok("uuid_record", &format!("{leg} start {p}")));
        if let Err(e) = &r {
            log::log(Level::Warning, Some(&leg.to_string()), &e.0);
        }
        r
    }

    fn channels_by(&self, var: &str) -> HashMap<String, Vec<Uuid>> {
        let n = c_string(var);
        // SAFETY: the string is alive for the call; the result is NULL or a
        // malloc'd list we own, taken (copied, freed by C) exactly once.
        let list = unsafe { take_owned(sys::zc2c_channels_by(n.as_ptr())) };
        let mut by: HashMap<String, Vec<Uuid>> = HashMap::new();
        for (uuid, value) in list
            .iter()
            .flat_map(|l| l.lines())
            .filter_map(|l| l.split_once('\t'))
        {
            if let Ok(uuid) = Uuid::parse_str(uuid) {
                by.entry(value.to_string()).or_default().push(uuid);
            }
        }
        by
    }

    fn play_ringback(&self, agent_leg: Uuid, ringback: Option<&str>) -> Result<(), SwitchError> {
        let a = UuidC::new(agent_leg);
        let Some(rb) = ringback.map(str::trim).filter(|r| !r.is_empty()) else {
            // SAFETY: a NUL-terminated string alive for the call.
            unsafe { sys::zc2c_waiting_stop(a.as_ptr()) };
            return Ok(());
        };
        let (app, arg) = waiting_media(rb);
        let (app, arg) = (c_string(app), c_string(&arg));
        // SAFETY: all strings alive for the call; FreeSWITCH copies them.
        let queued = unsafe { sys::zc2c_waiting_start(a.as_ptr(), app.as_ptr(), arg.as_ptr()) };
        if queued == 1 {
            Ok(())
        } else {
            Err(SwitchError(format!(
                "{agent_leg}: cannot play ringback now"
            )))
        }
    }

    fn writes_format(&self, format: &str) -> bool {
        let ext = c_string(format);
        // SAFETY: NUL-terminated string alive for the call; the shim only
        // reads it and releases the interface it looked up.
        unsafe { sys::zc2c_file_format_writable(ext.as_ptr()) > 0 }
    }

    fn booting(&self) -> bool {
        // SAFETY: no arguments; reads the core's runtime flags.
        unsafe { sys::zc2c_core_ready() == 0 }
    }

    fn max_sessions(&self) -> Option<u32> {
        // SAFETY: no arguments; reads the switch's session limit.
        let n = unsafe { sys::zc2c_max_sessions() };
        (n > 0).then_some(n)
    }

    fn sessions_in_use(&self) -> Option<u32> {
        // SAFETY: no arguments; reads the session manager's counter.
        Some(unsafe { sys::zc2c_sessions_in_use() })
    }

    fn event_lag(&self) -> Option<Duration> {
        super::events::event_lag()
    }

    fn event_queue(&self) -> Option<EventQueue> {
        super::events::event_queue()
    }
}

/// What plays while a call waits for its trunk, as (app, arg): a tone
/// (`%(…)`) by mod_dptools' `gentones`, looped (no tone_stream needed),
/// anything else as a file, looped.
fn waiting_media(ringback: &str) -> (&'static str, String) {
    let tone = ringback.strip_prefix("tone_stream://").unwrap_or(ringback);
    if tone.starts_with("%(") {
        (
            "gentones",
            format!("{}|-1", tone.split(';').next().unwrap_or(tone)),
        )
    } else {
        ("endless_playback", ringback.to_string())
    }
}
