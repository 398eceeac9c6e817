//! Call events: what the engine tells the outside world (webhooks, FreeSWITCH
//! CUSTOM events), in the order things happened to each call.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{json, Value};
use uuid::Uuid;

use super::errors::ApiError;
use super::store::{StoreError, Write};
use super::time::rfc3339;

/// The agent's phone rings (contract).
pub const RINGING: &str = "pbx.call.ringing";
/// A leg was answered: A (agent) first, then B (customer) (contract).
pub const ANSWERED: &str = "pbx.call.answered";
/// The call ended (contract).
pub const HANGUP: &str = "pbx.call.hangup";
/// The call's record, both legs (contract).
pub const CDR: &str = "pbx.cdr.created";
/// Addition: the customer's phone rings.
pub const CUSTOMER_RINGING: &str = "pbx.call.customer_ringing";
/// Addition: one routing attempt over a trunk failed (another may follow).
pub const ATTEMPT_FAILED: &str = "pbx.call.attempt_failed";
/// Addition: both legs are connected.
pub const BRIDGED: &str = "pbx.call.bridged";
/// Addition: the agent never answered, so nobody was dialled.
pub const AGENT_MISSED: &str = "pbx.call.agent_missed";

/// Addition: the customer's leg was transferred and is now connected to
/// another party (the call goes on; it ends when the customer's leg does).
pub const TRANSFERRED: &str = "pbx.call.transferred";

/// Every event type, contract first.
pub const ALL_TYPES: [&str; 9] = [
    RINGING,
    ANSWERED,
    HANGUP,
    CDR,
    CUSTOMER_RINGING,
    ATTEMPT_FAILED,
    BRIDGED,
    AGENT_MISSED,
    TRANSFERRED,
];

/// The events of a completed call, in the order they are delivered.
pub const COMPLETED_CALL: [&str; 7] = [
    RINGING,
    ANSWERED,
    CUSTOMER_RINGING,
    ANSWERED,
    BRIDGED,
    HANGUP,
    CDR,
];

/// One event of one call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    /// Stable id (`evt_<uuid>`): receivers deduplicate on it.
    pub id: String,
    pub event_type: &'static str,
    pub created_at: SystemTime,
    pub call_uuid: Uuid,
    /// 1, 2, 3… within the call: the order to deliver in.
    pub seq: u32,
    /// Name of the API token that placed the call (for per-token destinations).
    pub token: Option<String>,
    /// `call_uuid`, `leg`, `leg_uuid` and the event's own fields.
    pub data: Value,
}

impl CallEvent {
    /// A new event with a fresh id, stamped now.
    pub fn new(
        event_type: &'static str,
        call_uuid: Uuid,
        seq: u32,
        token: Option<String>,
        data: Value,
    ) -> CallEvent {
        CallEvent {
            id: format!("evt_{}", Uuid::new_v4().simple()),
            event_type,
            created_at: SystemTime::now(),
            call_uuid,
            seq,
            token,
            data,
        }
    }

    /// What this event's log lines are tagged with: see [`log_uuid`].
    pub fn log_uuid(&self) -> String {
        log_uuid(self.call_uuid, &self.data)
    }

    /// The webhook body: `{"id", "type", "created_at", "data"}`; `data`
    /// also carries `seq`, the event's place in its call (1, 2, …), so a
    /// receiver can order a call's events and see that none is missing.
    pub fn envelope(&self) -> Value {
        let mut data = self.data.clone();
        if let Value::Object(m) = &mut data {
            m.insert("seq".into(), json!(self.seq));
        }
        json!({
            "id": self.id,
            "type": self.event_type,
            "created_at": rfc3339(self.created_at),
            "data": data,
        })
    }
}

/// The uuid a log line about a call's event carries, so that FreeSWITCH's
/// per-call log filter (fs_cli `/uuid`) shows it beside the switch's own
/// lines: the leg's channel for a leg's event (`leg_uuid`), else the agent's
/// channel (`a_leg_uuid`), else the call's uuid.
pub fn log_uuid(call_uuid: Uuid, data: &Value) -> String {
    ["leg_uuid", "a_leg_uuid"]
        .iter()
        .find_map(|k| data.get(k)?.as_str())
        .map_or_else(|| call_uuid.to_string(), str::to_string)
}

/// Where events go. Called from core threads only, never from a FreeSWITCH
/// thread; an implementation may write to disk but must not wait on the network.
pub trait EventSink: Send + Sync + 'static {
    fn emit(&self, event: &CallEvent);

    /// Whether a new call may be accepted: a sink that could not keep the
    /// events of one more call (its spool is above its high-water mark)
    /// refuses here, before the call exists, rather than drop its events later.
    fn admit(&self) -> Result<(), ApiError> {
        Ok(())
    }

    /// What this sink needs committed durably for `event` (a spool row),
    /// for the engine to commit together with the call's journal record;
    /// then it calls [`EventSink::committed`] instead of `emit`.
    fn durable_writes(&self, _event: &CallEvent) -> Vec<Write> {
        Vec::new()
    }

    /// `event`, once the writes of [`EventSink::durable_writes`] are committed.
    fn committed(&self, event: &CallEvent) {
        self.emit(event);
    }

    /// `event`, whose writes the store failed to commit (`error`): a sink
    /// with a spool delivers it from memory, and says so. Called on the
    /// store's thread: it must not wait on the store.
    fn uncommitted(&self, event: &CallEvent, _error: &StoreError) {
        self.committed(event);
    }
}

/// Hands each event to several sinks, in order.
pub struct FanOut(pub Vec<Arc<dyn EventSink>>);

impl EventSink for FanOut {
    fn emit(&self, event: &CallEvent) {
        for sink in &self.0 {
            sink.emit(event);
        }
    }

    fn admit(&self) -> Result<(), ApiError> {
        self.0.iter().try_for_each(|s| s.admit())
    }

    fn durable_writes(&self, event: &CallEvent) -> Vec<Write> {
        self.0
            .iter()
            .flat_map(|s| s.durable_writes(event))
            .collect()
    }

    fn committed(&self, event: &CallEvent) {
        for sink in &self.0 {
            sink.committed(event);
        }
    }

    fn uncommitted(&self, event: &CallEvent, error: &StoreError) {
        for sink in &self.0 {
            sink.uncommitted(event, error);
        }
    }
}

/// Keeps every event in memory (the sandbox's `GET` views and tests read it).
#[derive(Default)]
pub struct EventLog {
    events: Mutex<Vec<CallEvent>>,
}

impl EventLog {
    /// Every event so far.
    pub fn all(&self) -> Vec<CallEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The types of one call's events, in order.
    pub fn types_of(&self, call: Uuid) -> Vec<&'static str> {
        self.all()
            .into_iter()
            .filter(|e| e.call_uuid == call)
            .map(|e| e.event_type)
            .collect()
    }
}

impl EventSink for EventLog {
    fn emit(&self, event: &CallEvent) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_carry_the_legs_channel_else_the_agents_else_the_call() {
        let (call, a, b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let leg = json!({"call_uuid": call.to_string(), "leg": "B", "leg_uuid": b.to_string()});
        assert_eq!(log_uuid(call, &leg), b.to_string());
        let cdr = json!({"call_uuid": call.to_string(), "a_leg_uuid": a.to_string()});
        assert_eq!(log_uuid(call, &cdr), a.to_string());
        assert_eq!(log_uuid(call, &json!({})), call.to_string());
        assert_eq!(log_uuid(call, &Value::Null), call.to_string());
        let e = CallEvent::new(BRIDGED, call, 5, None, cdr);
        assert_eq!(e.log_uuid(), a.to_string());
    }
}
