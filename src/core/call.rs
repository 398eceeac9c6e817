//! One call's record: the state machine of its two legs, every routing
//! attempt, and the JSON views of it (status, events, CDR).

use std::time::SystemTime;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::time::{rfc3339, secs_between};

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
}

impl CallRecord {
    /// The trunk that carried (or is carrying) the B-leg.
    pub fn trunk_used(&self) -> Option<&(i64, String)> {
        self.attempts.last().and_then(|a| a.trunk.as_ref())
    }

    /// The leg whose side ended the call.
    pub fn ending_leg(&self) -> (&'static str, &Leg) {
        match self.hangup_by {
            Some(HangupBy::Customer) => ("B", &self.b),
            _ if self.b.answered_at.is_some() && self.a.hangup_cause.is_none() => ("B", &self.b),
            _ => ("A", &self.a),
        }
    }

    /// Hangup cause and SIP code of the call as a whole.
    pub fn cause(&self) -> (Option<String>, Option<u16>) {
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
        self.a
            .ended_at
            .max(self.b.ended_at)
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
        });
        if let Value::Object(e) = extra {
            m.extend(e);
        }
        m
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
