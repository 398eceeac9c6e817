//! One call's record: the state machine of its two legs, every routing
//! attempt, and the JSON views of it (status, events, CDR).

use std::time::SystemTime;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::time::{rfc3339, secs_between};

/// `outcome` of a call its time limit ended.
pub const OUTCOME_TIME_LIMIT: &str = "time_limit_reached";
/// The outcome of a call whose forced trunk stayed at its limit past `trunk-queue-timeout`.
pub const OUTCOME_TRUNK_QUEUE_TIMEOUT: &str = "trunk_queue_timeout";
/// The outcome of a call whose last LCR route was a trunk at its limit.
pub const OUTCOME_TRUNKS_AT_LIMIT: &str = "trunks_at_limit";
/// The hangup cause of a call its time limit ended (FreeSWITCH's name).
pub const CAUSE_TIME_LIMIT: &str = "ALLOTTED_TIMEOUT";

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    Queued,
    AgentRinging,
    AgentAnswered,
    CustomerDialling,
    CustomerRinging,
    CustomerAnswered,
    Bridged,
    Ended,
}

impl CallState {
    /// The name used in the API and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Queued => "queued",
            CallState::AgentRinging => "agent_ringing",
            CallState::AgentAnswered => "agent_answered",
            CallState::CustomerDialling => "customer_dialling",
            CallState::CustomerRinging => "customer_ringing",
            CallState::CustomerAnswered => "customer_answered",
            CallState::Bridged => "bridged",
            CallState::Ended => "ended",
        }
    }
}

/// Who ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupBy {
    Agent,
    Customer,
    Api,
    System,
}

impl HangupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            HangupBy::Agent => "agent",
            HangupBy::Customer => "customer",
            HangupBy::Api => "api",
            HangupBy::System => "system",
        }
    }
}

/// [`CallRecord::who_hung_up`] over the customer's leg and its far end.
pub fn decide_hangup_by(customer: &Leg, far: &Leg, first: Option<HangupBy>) -> HangupBy {
    let ended = |l: &Leg| l.ended_at.is_some();
    if ended(customer) && customer.by_peer == Some(true) {
        return HangupBy::Customer;
    }
    if ended(far) && far.by_peer == Some(true) {
        return HangupBy::Agent;
    }
    // The order of the hangups as they happened, else the switch's clock.
    let order = |l: &Leg| l.hangup_seq.filter(|_| ended(l));
    let time = |l: &Leg| l.hangup_at_us.filter(|_| ended(l));
    for (c, f) in [(order(customer), order(far)), (time(customer), time(far))] {
        match (c, f) {
            (Some(c), Some(f)) if f < c => return HangupBy::Agent,
            (Some(c), Some(f)) if c < f => return HangupBy::Customer,
            _ => {}
        }
    }
    match (ended(customer), ended(far)) {
        (true, false) => HangupBy::Customer,
        (false, true) => HangupBy::Agent,
        _ => first.unwrap_or(HangupBy::System),
    }
}

/// What one leg went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    pub uuid: Uuid,
    pub started_at: Option<SystemTime>,
    pub ringing_at: Option<SystemTime>,
    pub answered_at: Option<SystemTime>,
    pub ended_at: Option<SystemTime>,
    pub hangup_cause: Option<String>,
    pub sip_code: Option<u16>,
    /// Its party hung up (`Some(true)`) or the switch did (`Some(false)`).
    pub by_peer: Option<bool>,
    /// When the switch hung it up (µs since the epoch), when it says.
    pub hangup_at_us: Option<u64>,
    /// Orders its hangup among those of the same clock tick (see [`crate::switch::Failure::seq`]).
    pub hangup_seq: Option<u64>,
}

impl Leg {
    pub fn new(uuid: Uuid) -> Leg {
        Leg {
            uuid,
            started_at: None,
            ringing_at: None,
            answered_at: None,
            ended_at: None,
            hangup_cause: None,
            sip_code: None,
            by_peer: None,
            hangup_at_us: None,
            hangup_seq: None,
        }
    }

    /// Started and not yet ended: a channel exists.
    pub fn is_live(&self) -> bool {
        self.started_at.is_some() && self.ended_at.is_none()
    }

    fn to_json(&self) -> Value {
        json!({
            "leg_uuid": self.uuid.to_string(),
            "started_at": self.started_at.map(rfc3339),
            "ringing_at": self.ringing_at.map(rfc3339),
            "answered_at": self.answered_at.map(rfc3339),
            "ended_at": self.ended_at.map(rfc3339),
            "hangup_cause": self.hangup_cause,
            "sip_code": self.sip_code,
        })
    }
}

/// Someone the customer was transferred to: the far end of a bridge the
/// customer's leg joined after leaving the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// The party's channel; `answered_at` is when the customer was connected to it.
    pub leg: Leg,
    /// Where the customer's leg was sent (extension or number), when known.
    pub destination: Option<String>,
    /// Which of the call's legs moved (`B`: the customer's was transferred).
    pub moved_leg: &'static str,
}

/// One try to reach the customer over one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub trunk: Option<(i64, String)>,
    pub started_at: SystemTime,
    pub ended_at: Option<SystemTime>,
    /// `answered`, or the hangup cause.
    pub result: Option<String>,
    pub sip_code: Option<u16>,
}

impl Attempt {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "trunk_id": self.trunk.as_ref().map(|t| t.0),
            "trunk_name": self.trunk.as_ref().map(|t| t.1.clone()),
            "started_at": rfc3339(self.started_at),
            "ended_at": self.ended_at.map(rfc3339),
            "result": self.result,
            "sip_code": self.sip_code,
        })
    }
}

/// Everything known about one call.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub call_uuid: Uuid,
    pub token: Option<String>,
    pub from_extension: String,
    pub domain: String,
    pub to_phone: String,
    pub caller_id: String,
    /// The rule that chose `caller_id` ([`super::callerid::Chosen::rule`];
    /// `None` in records of versions that did not say).
    pub caller_id_rule: Option<&'static str>,
    pub routing_mode: &'static str,
    /// The trunk reported in the 202 (`None` under `dialplan_default`).
    pub reported_trunk: Option<(i64, String)>,
    pub headers: Vec<(String, String)>,
    pub created_at: SystemTime,
    pub state: CallState,
    pub a: Leg,
    pub b: Leg,
    pub attempts: Vec<Attempt>,
    pub hangup_by: Option<HangupBy>,
    /// Set by `DELETE` / `c2c hangup` / shutdown: the runner stops at the next step.
    pub cancel: Option<HangupBy>,
    /// `completed`, `agent_no_answer`, `customer_busy`, … once ended.
    pub outcome: Option<&'static str>,
    /// The per-call thread has finished its steps.
    pub runner_done: bool,
    /// Events emitted so far (their sequence numbers).
    pub seq: u32,
    /// The process that placed the call ([`crate::core::journal::instance`]).
    pub instance: Uuid,
    /// The last moment this module knew the call to be in this state.
    pub seen_at: SystemTime,
    /// Its end was not observed (the module was unloaded or the switch
    /// stopped meanwhile): reported on recovery, times as far as known.
    pub recovered: bool,
    /// The customer's leg left the agent (transfer): the call follows it.
    pub transferred: bool,
    /// Where the customer was sent, until the new party is connected.
    pub transfer_to: Option<String>,
    /// The parties the customer was transferred to, in order.
    pub parties: Vec<Party>,
    /// Whose leg's end was reported first (the fallback for `hangup_by`).
    pub first_end: Option<HangupBy>,
    /// Most seconds the call may last from its bridge (the request's
    /// `time_limit`, else `max-call-duration`); `None`: no limit.
    pub time_limit: Option<u32>,
    /// The call is to be recorded from the customer's answer.
    pub record: bool,
    /// Its recording, once the switch was asked for one.
    pub recording: Option<crate::core::recording::Recording>,
}

impl CallRecord {
    /// The trunk that carried (or is carrying) the B-leg.
    pub fn trunk_used(&self) -> Option<&(i64, String)> {
        self.attempts.last().and_then(|a| a.trunk.as_ref())
    }

    /// The customer's current far end: the last party, else the agent's leg.
    pub fn far_end(&self) -> &Leg {
        self.parties.last().map_or(&self.a, |p| &p.leg)
    }

    /// The party (index) whose channel is `uuid`.
    pub fn party_index(&self, uuid: Uuid) -> Option<usize> {
        self.parties.iter().position(|p| p.leg.uuid == uuid)
    }

    /// Who ended the conversation, from the customer's leg and its far end:
    /// the side whose party sent the BYE, else the side the switch hung up
    /// first, else the side whose end was reported first.
    pub fn who_hung_up(&self) -> HangupBy {
        decide_hangup_by(&self.b, self.far_end(), self.first_end)
    }

    /// The leg whose side ended the call.
    pub fn ending_leg(&self) -> (&'static str, &Leg) {
        match self.hangup_by {
            Some(HangupBy::Customer) => ("B", &self.b),
            _ if self.transferred => ("B", &self.b),
            _ if self.b.answered_at.is_some() && self.a.hangup_cause.is_none() => ("B", &self.b),
            _ => ("A", &self.a),
        }
    }

    /// Whether the switch ended the call at its time limit: a limit was
    /// set, the customer answered, and a leg went with `ALLOTTED_TIMEOUT`.
    pub fn hit_time_limit(&self) -> bool {
        let timed_out = |l: &Leg| l.hangup_cause.as_deref() == Some(CAUSE_TIME_LIMIT);
        self.time_limit.is_some()
            && self.b.answered_at.is_some()
            && (timed_out(&self.a)
                || timed_out(&self.b)
                || self.parties.iter().any(|p| timed_out(&p.leg)))
    }

    /// Hangup cause and SIP code of the call as a whole.
    pub fn cause(&self) -> (Option<String>, Option<u16>) {
        if self.outcome == Some(OUTCOME_TIME_LIMIT) {
            return (Some(CAUSE_TIME_LIMIT.to_string()), None);
        }
        let (_, leg) = self.ending_leg();
        let other = if leg.uuid == self.a.uuid {
            &self.b
        } else {
            &self.a
        };
        (
            leg.hangup_cause
                .clone()
                .or_else(|| other.hangup_cause.clone()),
            leg.sip_code.or(other.sip_code),
        )
    }

    /// Base fields every event of this call carries.
    pub fn event_base(&self, leg: Option<&str>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("call_uuid".into(), json!(self.call_uuid.to_string()));
        if let Some(l) = leg {
            let uuid = if l == "A" { self.a.uuid } else { self.b.uuid };
            m.insert("leg".into(), json!(l));
            m.insert("leg_uuid".into(), json!(uuid.to_string()));
        }
        m.insert("from_extension".into(), json!(self.from_extension));
        m.insert("to_phone".into(), json!(self.to_phone));
        m
    }

    fn headers_json(&self) -> Value {
        Value::Object(
            self.headers
                .iter()
                .map(|(k, v)| (format!("X-{k}"), json!(v)))
                .collect(),
        )
    }

    /// When the call ended (now, while it has not).
    pub fn end_time(&self) -> SystemTime {
        if self.transferred && self.b.is_live() {
            return SystemTime::now();
        }
        let parties = self.parties.iter().filter_map(|p| p.leg.ended_at).max();
        self.a
            .ended_at
            .max(self.b.ended_at)
            .max(parties)
            .unwrap_or_else(SystemTime::now)
    }

    /// Whole seconds from start to end.
    pub fn duration(&self) -> u64 {
        secs_between(self.created_at, self.end_time())
    }

    /// Whole seconds the customer was connected.
    pub fn billsec(&self) -> u64 {
        self.b
            .answered_at
            .map(|t| secs_between(t, self.end_time()))
            .unwrap_or(0)
    }

    /// What the status view and the CDR both say about the call.
    fn summary(&self) -> Map<String, Value> {
        let (cause, sip) = self.cause();
        let used = self.trunk_used();
        let mut m = self.event_base(None);
        let extra = json!({
            "a_leg_uuid": self.a.uuid.to_string(),
            "b_leg_uuid": self.b.uuid.to_string(),
            "caller_id": self.caller_id,
            "caller_id_rule": self.caller_id_rule,
            "routing_mode": self.routing_mode,
            "trunk_id": used.map(|t| t.0),
            "trunk_name": used.map(|t| t.1.clone()),
            "outcome": self.outcome,
            "hangup_cause": cause,
            "sip_code": sip,
            "hangup_by": self.hangup_by.map(HangupBy::as_str),
            "legs": { "A": self.a.to_json(), "B": self.b.to_json() },
            "attempts": self.attempts.iter().map(Attempt::to_json).collect::<Vec<_>>(),
            "headers": self.headers_json(),
            "recovered": self.recovered,
            "time_limit": self.time_limit,
            "recording": self.recording.as_ref().map(|r| r.to_json(self.call_uuid)),
        });
        if let Value::Object(e) = extra {
            m.extend(e);
        }
        if self.transferred {
            let parties = self.parties_json();
            m.insert("transferred".into(), json!(true));
            m.insert("last_party".into(), parties.last().cloned().into());
            m.insert("parties".into(), Value::Array(parties));
        }
        m
    }

    /// Everyone the customer talked to, in order: the agent, then each
    /// party of a transfer (times: connected to the customer, and ended).
    pub fn parties_json(&self) -> Vec<Value> {
        let mut v = vec![json!({
            "role": "agent",
            "extension": self.from_extension,
            "leg_uuid": self.a.uuid.to_string(),
            "connected_at": self.b.answered_at.map(rfc3339),
            "ended_at": self.a.ended_at.map(rfc3339),
            "hangup_cause": self.a.hangup_cause,
        })];
        for p in &self.parties {
            v.push(json!({
                "role": "transfer",
                "moved_leg": p.moved_leg,
                "destination": p.destination,
                "leg_uuid": p.leg.uuid.to_string(),
                "connected_at": p.leg.answered_at.map(rfc3339),
                "ended_at": p.leg.ended_at.map(rfc3339),
                "hangup_cause": p.leg.hangup_cause,
            }));
        }
        v
    }

    /// `GET /api/pbx/calls/{uuid}` and `c2c status <uuid>`.
    pub fn status_json(&self) -> Value {
        let mut m = self.summary();
        m.insert("status".into(), json!(self.state.as_str()));
        m.insert("created_at".into(), json!(rfc3339(self.created_at)));
        Value::Object(m)
    }

    /// The `pbx.cdr.created` data: one record covering both legs.
    pub fn cdr_json(&self) -> Value {
        let mut m = self.summary();
        let times = json!({
            "start_time": rfc3339(self.created_at),
            "answer_time": self.b.answered_at.map(rfc3339),
            "agent_answer_time": self.a.answered_at.map(rfc3339),
            "end_time": rfc3339(self.end_time()),
            "duration": self.duration(),
            "billsec": self.billsec(),
        });
        if let Value::Object(t) = times {
            m.extend(t);
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(by_peer: Option<bool>, at_us: Option<u64>, seq: Option<u64>) -> Leg {
        Leg {
            ended_at: Some(SystemTime::now()),
            by_peer,
            hangup_at_us: at_us,
            hangup_seq: seq,
            ..Leg::new(Uuid::new_v4())
        }
    }

    #[test]
    fn the_side_that_sent_the_bye_hung_up() {
        let bye = ended(Some(true), Some(20), None);
        let torn_down = ended(Some(false), Some(10), None);
        assert_eq!(decide_hangup_by(&bye, &torn_down, None), HangupBy::Customer);
        assert_eq!(decide_hangup_by(&torn_down, &bye, None), HangupBy::Agent);
    }

    #[test]
    fn else_the_first_hangup_by_order_then_by_time() {
        // Same clock tick: the order of the hangup events decides.
        let first = ended(Some(false), Some(100), Some(7));
        let second = ended(Some(false), Some(100), Some(8));
        assert_eq!(decide_hangup_by(&first, &second, None), HangupBy::Customer);
        assert_eq!(decide_hangup_by(&second, &first, None), HangupBy::Agent);
        // The order wins over a clock a channel stamped late.
        let late_clock = ended(None, Some(120), Some(7));
        assert_eq!(
            decide_hangup_by(&late_clock, &second, None),
            HangupBy::Customer
        );
        // Without an order, the clock.
        let early = ended(None, Some(90), None);
        assert_eq!(decide_hangup_by(&second, &early, None), HangupBy::Agent);
        // Nothing to tell them apart: the first report.
        let a = ended(None, None, None);
        let b = ended(None, None, None);
        assert_eq!(
            decide_hangup_by(&a, &b, Some(HangupBy::Agent)),
            HangupBy::Agent
        );
        let live = Leg::new(Uuid::new_v4());
        assert_eq!(decide_hangup_by(&a, &live, None), HangupBy::Customer);
    }
}
