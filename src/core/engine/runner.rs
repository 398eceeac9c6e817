//! One call's steps, on its own thread: ring the agent, then (only once the
//! agent answered) dial the customer over each route in turn, then bridge.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::json;

use super::timings::secs;
use super::trunk_wait::Passed;
use super::{CallCell, Engine};
use crate::core::call::{Attempt, CallState, HangupBy};
use crate::core::config::Config;
use crate::core::events;
use crate::core::recording::{self, Recording};
use crate::core::routing::{is_trunk_failure, RoutePlan};
use crate::switch::{AgentLeg, CustomerLeg, Failure, LegOutcome};

fn lock(cell: &CallCell) -> std::sync::MutexGuard<'_, crate::core::call::CallRecord> {
    cell.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    pub(crate) fn run_call(self: Arc<Self>, cell: CallCell, config: Arc<Config>, plan: RoutePlan) {
        let mut unopened = Unopened {
            engine: &self,
            left: 2,
        };
        self.steps(&cell, &config, plan, &mut unopened);
        drop(unopened);
        lock(&cell).runner_done = true;
        self.finish_if_done(&cell);
    }

    fn steps(&self, cell: &CallCell, config: &Config, plan: RoutePlan, unopened: &mut Unopened) {
        // In the order calls reach the line, as many in setup at once as
        // the switch sets up promptly, and as fast as it delivers its events
        // while its event queue fills (queued until then: nobody is rung).
        let Some(slot) = self.pace.enter(&|| lock(cell).cancel.is_some(), &|| {
            self.switch.event_queue()
        }) else {
            return;
        };
        let agent = {
            let mut c = lock(cell);
            if c.cancel.is_some() {
                return;
            }
            c.state = CallState::AgentRinging;
            c.a.started_at = Some(SystemTime::now());
            AgentLeg {
                call_uuid: c.call_uuid,
                leg_uuid: c.a.uuid,
                extension: c.from_extension.clone(),
                domain: c.domain.clone(),
                timeout: config.a_leg_timeout,
                caller_id_name: config.agent_caller_id_name.clone(),
                caller_id_number: config
                    .agent_caller_id_number
                    .clone()
                    .unwrap_or_else(|| c.to_phone.clone()),
                auto_answer: config.auto_answer,
            }
        };
        unopened.open_one();
        let (outcome, delay) = self.switch.originate_agent(&agent);
        if let Some(delay) = delay {
            slot.observe(delay);
        }
        // The agent's setup is over: its place goes to the next in line.
        drop(slot);
        match outcome {
            LegOutcome::Failed(f) => {
                let mut c = lock(cell);
                self.leg_ended(&mut c, true, &f);
                let missed = matches!(
                    f.cause.as_str(),
                    "NO_ANSWER"
                        | "USER_BUSY"
                        | "NO_USER_RESPONSE"
                        | "CALL_REJECTED"
                        | "USER_NOT_REGISTERED"
                        | "SUBSCRIBER_ABSENT"
                        | "ORIGINATOR_CANCEL"
                        | "ALLOTTED_TIMEOUT"
                        | "PROGRESS_TIMEOUT"
                );
                c.outcome = Some(match f.cause.as_str() {
                    _ if c.cancel == Some(HangupBy::Api) => "cancelled",
                    _ if c.cancel.is_some() => "aborted",
                    "USER_BUSY" => "agent_busy",
                    "USER_NOT_REGISTERED" | "SUBSCRIBER_ABSENT" => "agent_unreachable",
                    _ if missed => "agent_no_answer",
                    _ => "agent_failed",
                });
                c.hangup_by = Some(c.cancel.unwrap_or(HangupBy::Agent));
                if c.cancel.is_none() {
                    let extra = json!({"hangup_cause": f.cause, "sip_code": f.sip_code});
                    self.emit(&mut c, events::AGENT_MISSED, Some("A"), extra);
                }
                return;
            }
            LegOutcome::Answered => {
                let mut c = lock(cell);
                self.agent_ringing(&mut c);
                let now = SystemTime::now();
                c.a.answered_at = Some(now);
                if let Some(started) = c.a.started_at {
                    let t = &self.stats.timings;
                    t.agent_answer.observe(secs(started, now));
                }
                c.state = CallState::AgentAnswered;
                self.emit(&mut c, events::ANSWERED, Some("A"), json!({}));
            }
        }
        let count = plan.candidates.len();
        let forced = plan.mode == "direct_gateway";
        for (i, cand) in plan.candidates.into_iter().enumerate() {
            let permit = match self.wait_for_trunk(cell, config, &cand, forced) {
                Ok(p) => p,
                Err(refusal) => match self.trunk_refused(cell, &cand, refusal, i + 1 < count) {
                    Passed::Next => continue,
                    Passed::Ended => return,
                },
            };
            // Read before the call's lock: the pace's lock is never taken under it.
            let ringback = self.ringback(config);
            let leg = {
                let mut c = lock(cell);
                if c.cancel.is_some() || c.a.ended_at.is_some() {
                    // Hung up while a failed attempt was being retried: the
                    // customer's leg of that attempt is gone and will not
                    // report again; it ends with the attempt's failure.
                    if let Some(failed) = c.attempts.last().filter(|_| c.b.is_live()) {
                        let f = Failure {
                            cause: failed.result.clone().unwrap_or_default(),
                            sip_code: failed.sip_code,
                            ..Failure::default()
                        };
                        self.customer_failed(&mut c, &f);
                    }
                    return;
                }
                c.state = CallState::CustomerDialling;
                let now = SystemTime::now();
                c.b.started_at.get_or_insert(now);
                c.b.ringing_at = None;
                c.attempts.push(Attempt {
                    trunk: cand.trunk.clone(),
                    started_at: now,
                    ended_at: None,
                    result: None,
                    sip_code: None,
                });
                CustomerLeg {
                    call_uuid: c.call_uuid,
                    leg_uuid: c.b.uuid,
                    agent_leg_uuid: c.a.uuid,
                    number: c.to_phone.clone(),
                    route: cand.route.clone(),
                    trunk: cand.trunk.clone(),
                    caller_id: c.caller_id.clone(),
                    headers: c.headers.clone(),
                    timeout: config.b_leg_timeout,
                    attempt: c.attempts.len() as u32,
                    ringback,
                }
            };
            // A failover's leg re-uses the first attempt's channel slot.
            unopened.open_one();
            let outcome = self.switch.dial_customer(&leg);
            // Its channel, if answered, is now the switch's to count.
            drop(permit);
            let trunk_name = cand
                .trunk
                .as_ref()
                .map(|t| t.1.as_str())
                .unwrap_or("dialplan");
            let mut c = lock(cell);
            let now = SystemTime::now();
            match outcome {
                LegOutcome::Answered => {
                    self.count_attempt(trunk_name, false);
                    if let Some(a) = c.attempts.last_mut() {
                        a.ended_at = Some(now);
                        a.result = Some("answered".into());
                        let t = &self.stats.timings;
                        let took = secs(a.started_at, now);
                        t.customer_answer.with(&[trunk_name]).observe(took);
                        if c.b.ringing_at.is_none() {
                            // Answered with no ringing seen: that was the post-dial delay.
                            t.customer_post_dial.with(&[trunk_name]).observe(took);
                        }
                    }
                    c.b.answered_at = Some(now);
                    c.state = CallState::CustomerAnswered;
                    if c.record {
                        c.recording = Some(self.start_recording(config, c.call_uuid, leg.leg_uuid));
                    }
                    self.emit(&mut c, events::ANSWERED, Some("B"), json!({}));
                    if c.cancel.is_some() || c.a.ended_at.is_some() {
                        drop(c);
                        self.switch.hangup(leg.leg_uuid, "NORMAL_CLEARING");
                        return;
                    }
                    drop(c);
                    return self.bridge(cell, &leg);
                }
                LegOutcome::Failed(f) => {
                    self.count_attempt(trunk_name, true);
                    if let Some(a) = c.attempts.last_mut() {
                        a.ended_at = Some(now);
                        a.result = Some(f.cause.clone());
                        a.sip_code = f.sip_code;
                    }
                    let more = i + 1 < count;
                    let fail_over =
                        more && c.cancel.is_none() && is_trunk_failure(&f.cause, f.sip_code);
                    let extra = json!({
                        "trunk_id": cand.trunk.as_ref().map(|t| t.0),
                        "trunk_name": cand.trunk.as_ref().map(|t| t.1.clone()),
                        "hangup_cause": f.cause,
                        "sip_code": f.sip_code,
                        "attempt": leg.attempt,
                        "will_retry": fail_over,
                    });
                    self.emit(&mut c, events::ATTEMPT_FAILED, Some("B"), extra);
                    if fail_over {
                        continue;
                    }
                    self.customer_failed(&mut c, &f);
                    let a_live = c.a.is_live();
                    drop(c);
                    if a_live {
                        self.switch.hangup(leg.agent_leg_uuid, "NORMAL_CLEARING");
                    }
                    return;
                }
            }
        }
    }

    /// The customer's leg's `ringback`: none while the switch is overloaded
    /// ([`crate::core::setup_pace::SetupPace::holding`]), unless
    /// `paced-ringback` is `play`. On an overloaded
    /// switch the tone costs it about 2 ms of CPU a call (generated,
    /// encoded and sent until the carrier's early media is bridged), about
    /// 5 % of what a call costs it (the overload bench).
    fn ringback(&self, config: &Config) -> Option<String> {
        if config.paced_ringback || !self.pace.holding() {
            config.ringback.clone()
        } else {
            None
        }
    }

    /// Asks the switch to record the customer's (answered) leg from now
    /// until it ends; a refusal is noted (the call goes on unrecorded).
    fn start_recording(&self, config: &Config, call: uuid::Uuid, leg: uuid::Uuid) -> Recording {
        let dir = recording::dir_of(config);
        let path = recording::file_path(&dir, call, &config.recording_format);
        match self.switch.start_recording(leg, &path) {
            Ok(()) => Recording::started(&path, &config.recording_format),
            Err(e) => Recording::failed(&path, &config.recording_format, e.0),
        }
    }

    pub(super) fn customer_failed(&self, c: &mut crate::core::call::CallRecord, f: &Failure) {
        self.leg_ended(c, false, f);
        c.outcome = Some(match f.cause.as_str() {
            _ if c.cancel == Some(HangupBy::Api) => "cancelled",
            _ if c.cancel.is_some() => "aborted",
            _ if c.a.ended_at.is_some() => "agent_hung_up",
            "USER_BUSY" => "customer_busy",
            "NO_ANSWER" | "NO_USER_RESPONSE" => "customer_no_answer",
            _ => "customer_failed",
        });
        c.hangup_by = Some(c.cancel.unwrap_or(if c.a.ended_at.is_some() {
            HangupBy::Agent
        } else {
            HangupBy::Customer
        }));
    }

    fn bridge(&self, cell: &CallCell, leg: &CustomerLeg) {
        match self.switch.bridge(leg.agent_leg_uuid, leg.leg_uuid) {
            Ok(()) => {
                let mut c = lock(cell);
                if c.a.ended_at.is_none() && c.b.ended_at.is_none() {
                    c.state = CallState::Bridged;
                    let t = &self.stats.timings;
                    let now = SystemTime::now();
                    t.accepted_to_bridge.observe(secs(c.created_at, now));
                    let extra = json!({
                        "a_leg_uuid": c.a.uuid.to_string(),
                        "b_leg_uuid": c.b.uuid.to_string(),
                    });
                    self.emit(&mut c, events::BRIDGED, None, extra);
                    // The switch is asked for its backstop outside the call's lock.
                    let bridged = c.clone();
                    drop(c);
                    self.arm_limit(&bridged, true);
                }
            }
            Err(e) => {
                let mut c = lock(cell);
                c.outcome = Some("bridge_failed");
                c.hangup_by = Some(HangupBy::System);
                let _ = e;
                drop(c);
                self.switch
                    .hangup(leg.agent_leg_uuid, "NORMAL_TEMPORARY_FAILURE");
                self.switch.hangup(leg.leg_uuid, "NORMAL_TEMPORARY_FAILURE");
                // A leg that ended while it was being dialled had its end
                // report set aside for the dial's result; gone now, it will
                // not report again: end it here, so that the call ends.
                let mut c = lock(cell);
                for is_a in [true, false] {
                    let l = if is_a { &c.a } else { &c.b };
                    if l.is_live() && !self.switch.leg_exists(l.uuid) {
                        let gone = Failure {
                            cause: "NORMAL_CLEARING".into(),
                            ..Failure::default()
                        };
                        self.leg_ended(&mut c, is_a, &gone);
                    }
                }
            }
        }
    }
}

/// The channels a call's runner has yet to open, counted by the registry as
/// room the call needs in the switch ([`Engine::check_capacity`]): one less
/// as it opens each; the rest released when it returns without them.
struct Unopened<'a> {
    engine: &'a Engine,
    left: usize,
}

impl Unopened<'_> {
    fn open_one(&mut self) {
        if self.left > 0 {
            self.left -= 1;
            self.engine.opened(1);
        }
    }
}

impl Drop for Unopened<'_> {
    fn drop(&mut self) {
        self.engine.opened(self.left);
    }
}
