//! A [`CallRecord`] as JSON and back: the form a durable
//! [`crate::core::journal::CallJournal`] stores. Times are microseconds since
//! the Unix epoch, so a record comes back exactly as it went in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::call::{Attempt, CallRecord, CallState, HangupBy, Leg, Party};
use super::recording::{Recording, RecordingState};

/// Version of the snapshot format.
const VERSION: u64 = 1;

/// Every `outcome` the engine sets (a snapshot's outcome must be one of them).
const OUTCOMES: &[&str] = &[
    "completed",
    "cancelled",
    "aborted",
    "failed",
    "agent_busy",
    "agent_unreachable",
    "agent_no_answer",
    "agent_failed",
    "agent_hung_up",
    "customer_busy",
    "customer_no_answer",
    "customer_failed",
    "bridge_failed",
    crate::core::call::OUTCOME_TIME_LIMIT,
    crate::core::call::OUTCOME_TRUNK_QUEUE_TIMEOUT,
    crate::core::call::OUTCOME_TRUNKS_AT_LIMIT,
];

/// Every rule that may choose a caller id ([`crate::core::callerid`]).
const CALLER_ID_RULES: &[&str] = &[
    "request",
    "outbound_caller_id",
    "extension",
    "local_presence",
    "sticky",
];

const STATES: &[CallState] = &[
    CallState::Queued,
    CallState::AgentRinging,
    CallState::AgentAnswered,
    CallState::CustomerDialling,
    CallState::CustomerRinging,
    CallState::CustomerAnswered,
    CallState::Bridged,
    CallState::Ended,
];

const BY: &[HangupBy] = &[
    HangupBy::Agent,
    HangupBy::Customer,
    HangupBy::Api,
    HangupBy::System,
];

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros() as u64
}

fn time_of(v: &Value) -> Option<SystemTime> {
    v.as_u64().map(|us| UNIX_EPOCH + Duration::from_micros(us))
}

fn trunk_of(v: &Value) -> Result<Option<(i64, String)>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let id = v.get(0).and_then(Value::as_i64);
    let name = v.get(1).and_then(Value::as_str);
    match (id, name) {
        (Some(id), Some(name)) => Ok(Some((id, name.to_string()))),
        _ => Err(format!("bad trunk {v}")),
    }
}

/// A leg as its snapshot writes it.
#[derive(Serialize)]
struct LegOut<'a> {
    uuid: String,
    started_at: Option<u64>,
    ringing_at: Option<u64>,
    answered_at: Option<u64>,
    ended_at: Option<u64>,
    hangup_cause: &'a Option<String>,
    sip_code: Option<u16>,
    by_peer: Option<bool>,
    hangup_at_us: Option<u64>,
    hangup_seq: Option<u64>,
}

impl<'a> LegOut<'a> {
    fn of(l: &'a Leg) -> LegOut<'a> {
        LegOut {
            uuid: l.uuid.to_string(),
            started_at: l.started_at.map(micros),
            ringing_at: l.ringing_at.map(micros),
            answered_at: l.answered_at.map(micros),
            ended_at: l.ended_at.map(micros),
            hangup_cause: &l.hangup_cause,
            sip_code: l.sip_code,
            by_peer: l.by_peer,
            hangup_at_us: l.hangup_at_us,
            hangup_seq: l.hangup_seq,
        }
    }
}

/// A trunk as `[id, name]`, or null.
type TrunkOut<'a> = Option<(i64, &'a str)>;

fn trunk_out(t: &Option<(i64, String)>) -> TrunkOut<'_> {
    t.as_ref().map(|(id, name)| (*id, name.as_str()))
}

#[derive(Serialize)]
struct AttemptOut<'a> {
    trunk: TrunkOut<'a>,
    started_at: u64,
    ended_at: Option<u64>,
    result: &'a Option<String>,
    sip_code: Option<u16>,
}

#[derive(Serialize)]
struct PartyOut<'a> {
    leg: LegOut<'a>,
    destination: &'a Option<String>,
    moved_leg: &'static str,
}

/// The whole snapshot, written straight from the record (no JSON tree
/// in between: the engine writes one for every event of every call).
#[derive(Serialize)]
struct SnapshotOut<'a> {
    v: u64,
    call_uuid: String,
    token: &'a Option<String>,
    from_extension: &'a str,
    domain: &'a str,
    to_phone: &'a str,
    caller_id: &'a str,
    caller_id_rule: Option<&'static str>,
    routing_mode: &'static str,
    reported_trunk: TrunkOut<'a>,
    headers: &'a [(String, String)],
    created_at: u64,
    state: &'static str,
    a: LegOut<'a>,
    b: LegOut<'a>,
    attempts: Vec<AttemptOut<'a>>,
    hangup_by: Option<&'static str>,
    cancel: Option<&'static str>,
    outcome: Option<&'static str>,
    runner_done: bool,
    seq: u32,
    instance: String,
    seen_at: u64,
    recovered: bool,
    transferred: bool,
    transfer_to: &'a Option<String>,
    parties: Vec<PartyOut<'a>>,
    first_end: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_limit: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    record: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    recording: Option<RecordingOut<'a>>,
}

#[derive(Serialize)]
struct RecordingOut<'a> {
    path: &'a str,
    format: &'a str,
    state: &'static str,
    note: &'a Option<String>,
    channels: Option<u16>,
    duration_ms: Option<u64>,
    bytes: Option<u64>,
    sha256: &'a Option<String>,
}

fn recording_of(v: &Value) -> Result<Option<Recording>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let text = |k: &str| {
        v[k].as_str()
            .map(str::to_string)
            .ok_or(format!("recording without {k}"))
    };
    let state = v["state"].as_str().and_then(RecordingState::parse);
    Ok(Some(Recording {
        path: text("path")?,
        format: text("format")?,
        state: state.ok_or("recording with an unknown state")?,
        note: text_of(&v["note"]),
        channels: v["channels"].as_u64().and_then(|n| u16::try_from(n).ok()),
        duration_ms: v["duration_ms"].as_u64(),
        bytes: v["bytes"].as_u64(),
        sha256: text_of(&v["sha256"]),
    }))
}

fn uuid_of(v: &Value, what: &str) -> Result<Uuid, String> {
    v.as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| format!("bad {what}"))
}

fn sip_of(v: &Value) -> Option<u16> {
    v.as_u64().and_then(|c| u16::try_from(c).ok())
}

fn text_of(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn leg_of(v: &Value) -> Result<Leg, String> {
    Ok(Leg {
        uuid: uuid_of(&v["uuid"], "leg uuid")?,
        started_at: time_of(&v["started_at"]),
        ringing_at: time_of(&v["ringing_at"]),
        answered_at: time_of(&v["answered_at"]),
        ended_at: time_of(&v["ended_at"]),
        hangup_cause: text_of(&v["hangup_cause"]),
        sip_code: sip_of(&v["sip_code"]),
        by_peer: v["by_peer"].as_bool(),
        hangup_at_us: v["hangup_at_us"].as_u64(),
        hangup_seq: v["hangup_seq"].as_u64(),
    })
}

fn party_of(v: &Value) -> Result<Party, String> {
    Ok(Party {
        leg: leg_of(&v["leg"])?,
        destination: text_of(&v["destination"]),
        moved_leg: known(&["A", "B"], &v["moved_leg"], "moved_leg")?,
    })
}

fn attempt_of(v: &Value) -> Result<Attempt, String> {
    Ok(Attempt {
        trunk: trunk_of(&v["trunk"])?,
        started_at: time_of(&v["started_at"]).ok_or("attempt without started_at")?,
        ended_at: time_of(&v["ended_at"]),
        result: text_of(&v["result"]),
        sip_code: sip_of(&v["sip_code"]),
    })
}

fn by_of(v: &Value) -> Result<Option<HangupBy>, String> {
    match v.as_str() {
        None => Ok(None),
        Some(s) => BY
            .iter()
            .find(|b| b.as_str() == s)
            .copied()
            .map(Some)
            .ok_or_else(|| format!("bad hangup_by {s}")),
    }
}

fn known(list: &[&'static str], v: &Value, what: &str) -> Result<&'static str, String> {
    let s = v.as_str().ok_or_else(|| format!("no {what}"))?;
    list.iter()
        .find(|k| **k == s)
        .copied()
        .ok_or_else(|| format!("unknown {what} {s}"))
}

impl CallRecord {
    /// The record as JSON (see the module docs).
    pub fn to_snapshot(&self) -> String {
        let out = SnapshotOut {
            v: VERSION,
            call_uuid: self.call_uuid.to_string(),
            token: &self.token,
            from_extension: &self.from_extension,
            domain: &self.domain,
            to_phone: &self.to_phone,
            caller_id: &self.caller_id,
            caller_id_rule: self.caller_id_rule,
            routing_mode: self.routing_mode,
            reported_trunk: trunk_out(&self.reported_trunk),
            headers: &self.headers,
            created_at: micros(self.created_at),
            state: self.state.as_str(),
            a: LegOut::of(&self.a),
            b: LegOut::of(&self.b),
            attempts: self
                .attempts
                .iter()
                .map(|a| AttemptOut {
                    trunk: trunk_out(&a.trunk),
                    started_at: micros(a.started_at),
                    ended_at: a.ended_at.map(micros),
                    result: &a.result,
                    sip_code: a.sip_code,
                })
                .collect(),
            hangup_by: self.hangup_by.map(HangupBy::as_str),
            cancel: self.cancel.map(HangupBy::as_str),
            outcome: self.outcome,
            runner_done: self.runner_done,
            seq: self.seq,
            instance: self.instance.to_string(),
            seen_at: micros(self.seen_at),
            recovered: self.recovered,
            transferred: self.transferred,
            transfer_to: &self.transfer_to,
            parties: self
                .parties
                .iter()
                .map(|p| PartyOut {
                    leg: LegOut::of(&p.leg),
                    destination: &p.destination,
                    moved_leg: p.moved_leg,
                })
                .collect(),
            first_end: self.first_end.map(HangupBy::as_str),
            time_limit: self.time_limit,
            record: self.record,
            recording: self.recording.as_ref().map(|r| RecordingOut {
                path: &r.path,
                format: &r.format,
                state: r.state.as_str(),
                note: &r.note,
                channels: r.channels,
                duration_ms: r.duration_ms,
                bytes: r.bytes,
                sha256: &r.sha256,
            }),
        };
        // Strings, numbers and bools only: serializing cannot fail.
        serde_json::to_string(&out).unwrap_or_default()
    }

    /// A record back from [`CallRecord::to_snapshot`]; says what is wrong
    /// with a snapshot it cannot read.
    pub fn from_snapshot(v: &Value) -> Result<CallRecord, String> {
        if v["v"].as_u64() != Some(VERSION) {
            return Err(format!("unknown snapshot version {}", v["v"]));
        }
        let text = |k: &str| text_of(&v[k]).ok_or_else(|| format!("no {k}"));
        let state = v["state"].as_str().unwrap_or("");
        let headers = v["headers"]
            .as_array()
            .ok_or("no headers")?
            .iter()
            .map(|h| match (h[0].as_str(), h[1].as_str()) {
                (Some(k), Some(val)) => Ok((k.to_string(), val.to_string())),
                _ => Err(format!("bad header {h}")),
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(CallRecord {
            call_uuid: uuid_of(&v["call_uuid"], "call_uuid")?,
            token: text_of(&v["token"]),
            from_extension: text("from_extension")?,
            domain: text("domain")?,
            to_phone: text("to_phone")?,
            caller_id: text("caller_id")?,
            caller_id_rule: match &v["caller_id_rule"] {
                Value::Null => None,
                r => Some(known(CALLER_ID_RULES, r, "caller_id_rule")?),
            },
            routing_mode: known(
                &["direct_gateway", "dialplan_default"],
                &v["routing_mode"],
                "routing_mode",
            )?,
            reported_trunk: trunk_of(&v["reported_trunk"])?,
            headers,
            created_at: time_of(&v["created_at"]).ok_or("no created_at")?,
            state: STATES
                .iter()
                .find(|s| s.as_str() == state)
                .copied()
                .ok_or_else(|| format!("unknown state {state:?}"))?,
            a: leg_of(&v["a"])?,
            b: leg_of(&v["b"])?,
            attempts: v["attempts"]
                .as_array()
                .ok_or("no attempts")?
                .iter()
                .map(attempt_of)
                .collect::<Result<_, _>>()?,
            hangup_by: by_of(&v["hangup_by"])?,
            cancel: by_of(&v["cancel"])?,
            outcome: match &v["outcome"] {
                Value::Null => None,
                o => Some(known(OUTCOMES, o, "outcome")?),
            },
            runner_done: v["runner_done"].as_bool().unwrap_or(false),
            seq: v["seq"]
                .as_u64()
                .and_then(|s| u32::try_from(s).ok())
                .ok_or("no seq")?,
            instance: uuid_of(&v["instance"], "instance")?,
            seen_at: time_of(&v["seen_at"]).ok_or("no seen_at")?,
            recovered: v["recovered"].as_bool().unwrap_or(false),
            transferred: v["transferred"].as_bool().unwrap_or(false),
            transfer_to: text_of(&v["transfer_to"]),
            parties: match v["parties"].as_array() {
                Some(list) => list.iter().map(party_of).collect::<Result<_, _>>()?,
                None => Vec::new(),
            },
            first_end: by_of(&v["first_end"])?,
            time_limit: v["time_limit"].as_u64().and_then(|t| u32::try_from(t).ok()),
            record: v["record"].as_bool().unwrap_or(false),
            recording: recording_of(&v["recording"])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(us: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(us)
    }

    fn sample() -> CallRecord {
        let mut a = Leg::new(Uuid::new_v4());
        a.started_at = Some(at(1_764_000_000_000_001));
        a.answered_at = Some(at(1_764_000_003_123_456));
        let mut b = Leg::new(Uuid::new_v4());
        b.started_at = Some(at(1_764_000_003_200_000));
        b.ended_at = Some(at(1_764_000_010_000_000));
        b.hangup_cause = Some("NORMAL_CLEARING".into());
        b.sip_code = Some(200);
        CallRecord {
            call_uuid: Uuid::new_v4(),
            token: Some("tok".into()),
            from_extension: "1001".into(),
            domain: "example.com".into(),
            to_phone: "+0987654321".into(),
            caller_id: "0900000020".into(),
            caller_id_rule: Some("local_presence"),
            routing_mode: "direct_gateway",
            reported_trunk: Some((4, "POC".into())),
            headers: vec![("CRM-Lead-Id".into(), "a,b}c'd \"q\" ü".into())],
            created_at: at(1_764_000_000_000_000),
            state: CallState::Bridged,
            a,
            b,
            attempts: vec![Attempt {
                trunk: Some((5, "BACKUP".into())),
                started_at: at(1_764_000_003_200_000),
                ended_at: None,
                result: Some("NORMAL_TEMPORARY_FAILURE".into()),
                sip_code: Some(503),
            }],
            hangup_by: Some(HangupBy::Customer),
            cancel: None,
            outcome: Some("completed"),
            runner_done: true,
            seq: 6,
            instance: Uuid::new_v4(),
            seen_at: at(1_764_000_011_000_000),
            recovered: false,
            transferred: true,
            transfer_to: Some("0977777777".into()),
            parties: vec![Party {
                leg: Leg {
                    answered_at: Some(at(1_700_000_009_000_000)),
                    by_peer: Some(true),
                    hangup_at_us: Some(1_700_000_019_000_000),
                    ..Leg::new(Uuid::from_u128(9))
                },
                destination: Some("0977777777".into()),
                moved_leg: "B",
            }],
            first_end: Some(HangupBy::Agent),
            time_limit: Some(30),
            record: true,
            recording: Some(Recording {
                path: "/rec/x.wav".into(),
                format: "wav".into(),
                state: RecordingState::Available,
                note: None,
                channels: Some(2),
                duration_ms: Some(3020),
                bytes: Some(48_364),
                sha256: Some("ab".repeat(32)),
            }),
        }
    }

    #[test]
    fn a_record_comes_back_exactly() {
        let r = sample();
        let text = r.to_snapshot();
        let back = CallRecord::from_snapshot(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{r:?}"));
    }

    #[test]
    fn a_bad_snapshot_says_what_is_wrong() {
        let mut v: Value = serde_json::from_str(&sample().to_snapshot()).unwrap();
        v["state"] = json!("dancing");
        assert_eq!(
            CallRecord::from_snapshot(&v).unwrap_err(),
            "unknown state \"dancing\""
        );
        let mut v: Value = serde_json::from_str(&sample().to_snapshot()).unwrap();
        v["v"] = json!(99);
        assert!(CallRecord::from_snapshot(&v)
            .unwrap_err()
            .contains("version"));
        let mut v: Value = serde_json::from_str(&sample().to_snapshot()).unwrap();
        v["outcome"] = json!("exploded");
        assert!(CallRecord::from_snapshot(&v)
            .unwrap_err()
            .contains("outcome"));
    }
}
