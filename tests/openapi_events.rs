//! Every webhook the engine can send, as a receiver gets it over a real
//! socket, is valid by `openapi/openapi.json` (its event's schema, closed:
//! an undeclared field fails). The calls go through every outcome, a
//! failover, transfers (the customer's leg, and the agent's leg moving
//! away), a module stop (`aborted`) and restart (a call `recovered`), and a
//! dead letter replay; the call status is validated along the way.

mod common;
mod openapi_doc;
mod scratch;
mod webhooks_common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver as Legs;
use mod_zorio_c2c::app::App;
use mod_zorio_c2c::core::config::Config;
use mod_zorio_c2c::core::events::{self, EventLog, EventSink};
use mod_zorio_c2c::sim::{self, SimOptions, SimSwitch};
use mod_zorio_c2c::switch::{leg_channel, LegReport};
use serde_json::{json, Value};
use uuid::Uuid;

use common::{auth, post_call, request, Scratch};
use webhooks_common::{Receiver, Reply, SECRET};

/// The module over the simulated switch, stopped and started again on the
/// same data directory and leg reports, as a reload does.
struct World {
    app: Option<App>,
    sim: Arc<SimSwitch>,
    legs: Legs<LegReport>,
    log: Arc<EventLog>,
    config: Config,
    addr: SocketAddr,
    _data: Scratch,
}

impl World {
    fn new(url: String) -> World {
        let data = Scratch::new("c2c-openapi-events");
        let mut config = common::config();
        config.webhooks.spool_dir = data.to_path_buf();
        config.webhooks.url = Some(url);
        config.webhooks.secrets = vec![SECRET.to_string()];
        // A refused delivery is a dead letter at once (see the replay below).
        config.webhooks.retry_schedule = vec![Duration::from_millis(10)];
        config.webhooks.give_up_after = Duration::ZERO;
        config.a_leg_timeout = Duration::from_millis(300);
        // Trunk limits that bite only when the test fills the trunks.
        for t in config.trunks.iter_mut() {
            t.max_channels = Some(50);
        }
        config.trunk_queue_timeout = Duration::from_millis(200);
        let options = SimOptions::demo_fast(Duration::from_millis(30), Duration::from_millis(150));
        let (tx, legs) = leg_channel();
        let sim = SimSwitch::new(options, tx);
        let mut w = World {
            app: None,
            sim,
            legs,
            log: Arc::new(EventLog::default()),
            config,
            addr: "127.0.0.1:0".parse().unwrap(),
            _data: data,
        };
        w.start();
        w
    }

    fn start(&mut self) {
        let sinks: Vec<Arc<dyn EventSink>> = vec![self.log.clone()];
        let app = App::start(
            self.config.clone(),
            self.sim.clone(),
            self.legs.clone(),
            sinks,
        )
        .expect("app starts");
        self.addr = app.http_addr().expect("listening");
        self.app = Some(app);
    }

    fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            assert!(app.stop(Duration::from_secs(5)).is_empty());
        }
    }

    fn engine_call(&self, call: Uuid) -> mod_zorio_c2c::core::call::CallRecord {
        self.app
            .as_ref()
            .unwrap()
            .engine
            .call(call)
            .expect("the call")
    }

    /// Places a call; (call, A-leg, B-leg).
    fn place(&self, from: &str, to: &str) -> (Uuid, Uuid, Uuid) {
        let body = json!({"from_extension": from, "to_phone": to}).to_string();
        let r = post_call(self.addr, &body, &[]);
        assert_eq!(r.status, 202, "{}", r.text());
        let d = &r.json()["data"];
        let id = |k: &str| Uuid::parse_str(d[k].as_str().unwrap()).unwrap();
        (id("call_uuid"), id("a_leg_uuid"), id("b_leg_uuid"))
    }

    fn has(&self, call: Uuid, kind: &str, leg: Option<&str>) -> bool {
        self.log.all().iter().any(|e| {
            e.call_uuid == call && e.event_type == kind && leg.is_none_or(|l| e.data["leg"] == l)
        })
    }

    fn wait_for(&self, call: Uuid, kind: &str, leg: Option<&str>) {
        wait(&format!("{kind} {leg:?} of {call}"), || {
            self.has(call, kind, leg)
        });
    }

    /// `GET /api/pbx/calls/{call}`, checked against the document.
    fn status(&self, call: Uuid) -> Value {
        let path = format!("/api/pbx/calls/{call}");
        let r = request(self.addr, "GET", &path, &[("Authorization", &auth())], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        let pointer = openapi_doc::response_pointer("/api/pbx/calls/{call_uuid}", "GET", 200);
        openapi_doc::check(&openapi_doc::doc(), &pointer, &body).unwrap_or_else(|e| panic!("{e}"));
        body["data"].clone()
    }

    /// Waits for the call's CDR; returns its final status.
    fn ended(&self, call: Uuid) -> Value {
        let until = Instant::now() + Duration::from_secs(15);
        while !self.has(call, events::CDR, None) {
            assert!(
                Instant::now() < until,
                "no CDR: {} after {:?}",
                self.engine_call(call).status_json(),
                self.log.types_of(call)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        self.status(call)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop();
        self.sim.stop();
    }
}

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

const NORMAL: &str = "0987654321";

#[test]
fn every_event_the_engine_sends_is_valid_by_the_document() {
    let refusing = Arc::new(AtomicBool::new(false));
    let r = refusing.clone();
    let receiver = Receiver::start(0, move |_, _| {
        Reply::Status(if r.load(Ordering::SeqCst) { 500 } else { 200 })
    });
    let mut w = World::new(receiver.url());
    let sim = w.sim.clone();
    let set = |f: &dyn Fn(&mut SimOptions)| sim.set_options(|o| f(o));

    // The plain outcomes, a failover and every route failing.
    for to in [
        NORMAL,
        sim::NUMBER_BUSY,
        sim::NUMBER_NO_ANSWER,
        sim::NUMBER_FIRST_TRUNK_FAILS,
        sim::NUMBER_ALL_TRUNKS_FAIL,
    ] {
        let (call, ..) = w.place("1001", to);
        w.ended(call);
    }
    // The agent never answers (1004), or its phone fails.
    let (call, ..) = w.place("1004", NORMAL);
    assert_eq!(w.ended(call)["outcome"], "agent_no_answer");
    for (cause, code, outcome) in [
        ("USER_BUSY", 486, "agent_busy"),
        ("USER_NOT_REGISTERED", 404, "agent_unreachable"),
        ("DESTINATION_OUT_OF_ORDER", 502, "agent_failed"),
    ] {
        set(&|o| {
            o.agent_failures = [("1002".to_string(), (cause.to_string(), code))].into();
        });
        let (call, ..) = w.place("1002", NORMAL);
        assert_eq!(w.ended(call)["outcome"], outcome);
    }
    set(&|o| o.agent_failures.clear());

    // Hung up by the API while the agent's phone rings.
    set(&|o| o.agent_answer_after = Duration::from_secs(5));
    let (call, ..) = w.place("1001", NORMAL);
    w.wait_for(call, events::RINGING, None);
    w.status(call);
    let path = format!("/api/pbx/calls/{call}");
    let r = request(w.addr, "DELETE", &path, &[("Authorization", &auth())], b"");
    assert_eq!(r.status, 202);
    let pointer = openapi_doc::response_pointer("/api/pbx/calls/{call_uuid}", "DELETE", 202);
    openapi_doc::check(&openapi_doc::doc(), &pointer, &r.json()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.ended(call)["outcome"], "cancelled");
    set(&|o| o.agent_answer_after = Duration::from_millis(30));

    // The agent hangs up while the customer's phone rings.
    set(&|o| o.no_answer_after = Duration::from_secs(5));
    let (call, a, _) = w.place("1001", sim::NUMBER_NO_ANSWER);
    w.wait_for(call, events::CUSTOMER_RINGING, None);
    w.sim.party_hangs_up(a, "NORMAL_CLEARING");
    assert_eq!(w.ended(call)["outcome"], "agent_hung_up");
    set(&|o| o.no_answer_after = Duration::from_millis(120));

    // The agent hangs up, or the API does, while the first trunk fails
    // slowly: the customer is not dialled again, and the call ends.
    set(&|o| o.trunk_failure_delay = Duration::from_millis(600));
    let (call, a, _) = w.place("1001", sim::NUMBER_FIRST_TRUNK_FAILS);
    w.wait_for(call, events::ANSWERED, Some("A"));
    w.sim.party_hangs_up(a, "NORMAL_CLEARING");
    wait("the agent's hangup", || {
        w.engine_call(call).a.ended_at.is_some()
    });
    assert!(!w.has(call, events::ATTEMPT_FAILED, None), "too late");
    let end = w.ended(call);
    assert_eq!(end["outcome"], "agent_hung_up");
    assert_eq!(end["hangup_cause"], "NORMAL_CLEARING");
    assert_eq!(end["attempts"].as_array().unwrap().len(), 1);
    let (call, ..) = w.place("1001", sim::NUMBER_FIRST_TRUNK_FAILS);
    w.wait_for(call, events::ANSWERED, Some("A"));
    let path = format!("/api/pbx/calls/{call}");
    let r = request(w.addr, "DELETE", &path, &[("Authorization", &auth())], b"");
    assert_eq!(r.status, 202);
    let end = w.ended(call);
    assert_eq!(end["outcome"], "cancelled");
    assert_eq!(end["hangup_by"], "api");
    set(&|o| o.trunk_failure_delay = Duration::ZERO);

    // Both answer, the bridge fails.
    set(&|o| o.unbridgeable = ["0911111111".to_string()].into());
    let (call, ..) = w.place("1001", "0911111111");
    assert_eq!(w.ended(call)["outcome"], "bridge_failed");

    // Every trunk full (others' calls): LCR ends the call, a forced trunk's
    // queue times out.
    for g in ["poc", "backup"] {
        w.sim.set_foreign_channels(g, 50);
    }
    let (call, ..) = w.place("1001", NORMAL);
    let end = w.ended(call);
    assert_eq!(end["outcome"], "trunks_at_limit");
    assert_eq!(end["hangup_cause"], "TRUNK_MAX_CHANNELS");
    let body = json!({"from_extension": "1001", "to_phone": NORMAL, "trunk_id": 4});
    let r = post_call(w.addr, &body.to_string(), &[]);
    assert_eq!(r.status, 202, "{}", r.text());
    let call = Uuid::parse_str(r.json()["data"]["call_uuid"].as_str().unwrap()).unwrap();
    assert_eq!(w.ended(call)["outcome"], "trunk_queue_timeout");
    for g in ["poc", "backup"] {
        w.sim.set_foreign_channels(g, 0);
    }

    // Transfers of the customer's leg: blind (the new party hangs up),
    // attended (the customer hangs up).
    set(&|o| o.talk_time = Duration::from_secs(60));
    // The customer would talk a minute: the call's time limit ends it.
    let body = json!({"from_extension": "1001", "to_phone": NORMAL, "time_limit": 1});
    let r = post_call(w.addr, &body.to_string(), &[]);
    assert_eq!(r.status, 202, "{}", r.text());
    let call = Uuid::parse_str(r.json()["data"]["call_uuid"].as_str().unwrap()).unwrap();
    let end = w.ended(call);
    assert_eq!(end["outcome"], "time_limit_reached");
    assert_eq!(end["hangup_cause"], "ALLOTTED_TIMEOUT");
    let transferred = |call: Uuid| {
        wait("pbx.call.transferred", || {
            w.has(call, events::TRANSFERRED, None)
        });
    };
    let (call, _, b) = w.place("1001", NORMAL);
    w.wait_for(call, events::BRIDGED, None);
    w.status(call);
    let party = w.sim.transfer(b, "0977777777").expect("B is up");
    transferred(call);
    assert_eq!(w.status(call)["parties"].as_array().unwrap().len(), 2);
    w.sim.party_hangs_up(party, "NORMAL_CLEARING");
    assert_eq!(w.ended(call)["last_party"]["role"], "transfer");
    let (call, _, b) = w.place("1001", NORMAL);
    w.wait_for(call, events::BRIDGED, None);
    w.sim.attended_transfer(b).expect("B is up");
    transferred(call);
    w.sim.party_hangs_up(b, "NORMAL_CLEARING");
    assert_eq!(w.ended(call)["hangup_by"], "customer");
    // The agent's leg moves away: the switch hangs the customer up.
    let (call, a, _) = w.place("1001", NORMAL);
    w.wait_for(call, events::BRIDGED, None);
    w.sim.transfer(a, "4412352").expect("A is up");
    assert_eq!(w.ended(call)["transferred"], true);

    // A stop: a call still ringing the agent is aborted; a bridged one
    // stays with the switch, ends while no module runs, and is reported
    // by the next one (recovered).
    set(&|o| o.agent_answer_after = Duration::from_secs(5));
    let (ringing, ..) = w.place("1001", NORMAL);
    w.wait_for(ringing, events::RINGING, None);
    set(&|o| o.agent_answer_after = Duration::from_millis(30));
    let (bridged, _, b) = w.place("1001", NORMAL);
    w.wait_for(bridged, events::BRIDGED, None);
    w.stop();
    w.sim.party_hangs_up(b, "NORMAL_CLEARING");
    w.start();
    assert_eq!(w.ended(ringing)["outcome"], "aborted");
    assert_eq!(w.ended(bridged)["recovered"], true);
    set(&|o| o.talk_time = Duration::from_millis(150));

    // Refused deliveries become dead letters; replayed, they arrive.
    refusing.store(true, Ordering::SeqCst);
    let (dead_call, ..) = w.place("1001", NORMAL);
    w.ended(dead_call);
    let admin = |method: &str, path: &str| {
        let r = request(w.addr, method, path, &[("Authorization", &auth())], b"");
        let pointer = openapi_doc::response_pointer(path, method, r.status);
        openapi_doc::check(&openapi_doc::doc(), &pointer, &r.json())
            .unwrap_or_else(|e| panic!("{e}"));
        r.json()["data"].clone()
    };
    wait("the dead call's seven dead letters", || {
        admin("GET", "/api/pbx/webhooks/dead-letters")
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["call_uuid"] == dead_call.to_string())
            .count()
            == 7
    });
    admin("GET", "/api/pbx/webhooks/status");
    refusing.store(false, Ordering::SeqCst);
    let replayed = admin("POST", "/api/pbx/webhooks/dead-letters/replay");
    assert!(replayed["replayed"].as_u64().unwrap() >= 7, "{replayed}");
    let delivered_for = |call: Uuid| {
        receiver
            .delivered()
            .into_iter()
            .filter(|e| e["data"]["call_uuid"] == call.to_string())
            .count()
    };
    wait("the replayed events", || delivered_for(dead_call) == 7);

    // Everything the engine emitted was delivered; judge each body.
    let emitted = w.log.all().len();
    wait("every event delivered", || {
        receiver.delivered().len() >= emitted
    });
    w.stop();
    let bodies = receiver.delivered();
    let ids: BTreeSet<String> = bodies
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    let emitted_ids: BTreeSet<String> = w.log.all().into_iter().map(|e| e.id).collect();
    assert_eq!(ids, emitted_ids, "delivered is what was emitted");
    judge(&bodies);
}

/// Each body valid by the webhook's schema (the union) and by its own
/// type's; and every kind of event, outcome, transfer, retry and recovery
/// the document declares was seen.
fn judge(bodies: &[Value]) {
    let doc = openapi_doc::doc();
    let mapping = &doc["components"]["schemas"]["Event"]["discriminator"]["mapping"];
    let mut types = BTreeSet::new();
    let mut outcomes = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for body in bodies {
        let t = body["type"].as_str().unwrap();
        // Its own type's schema first (the clearer errors), then the union.
        let own = mapping[t]
            .as_str()
            .expect("mapped")
            .strip_prefix('#')
            .unwrap();
        openapi_doc::check(&doc, own, body).unwrap_or_else(|e| panic!("{e}"));
        openapi_doc::check(&doc, &openapi_doc::webhook_pointer(t), body)
            .unwrap_or_else(|e| panic!("{e}"));
        types.insert(t.to_string());
        let d = &body["data"];
        if t == events::CDR {
            outcomes.insert(d["outcome"].as_str().unwrap().to_string());
        }
        for (k, v) in [
            ("moved_leg", &d["moved_leg"]),
            ("will_retry", &d["will_retry"]),
            ("recovered", &d["recovered"]),
            (
                "agent_missed_cause",
                if t == events::AGENT_MISSED {
                    &d["hangup_cause"]
                } else {
                    &Value::Null
                },
            ),
        ] {
            if !v.is_null() {
                seen.insert(format!("{k}={v}"));
            }
        }
    }
    let all: BTreeSet<String> = events::ALL_TYPES.iter().map(|t| t.to_string()).collect();
    assert_eq!(types, all, "every event type");
    let declared: BTreeSet<String> = doc["components"]["schemas"]["CdrCreatedData"]["properties"]
        ["outcome"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    // `failed` is the engine's fallback for an end none of the others
    // describes; no path of the call flow leads there.
    let expected: BTreeSet<String> = declared.into_iter().filter(|o| o != "failed").collect();
    assert_eq!(
        outcomes, expected,
        "every outcome the document declares, and no other"
    );
    for s in [
        "moved_leg=\"A\"",
        "moved_leg=\"B\"",
        "will_retry=true",
        "will_retry=false",
        "recovered=true",
        "recovered=false",
        "agent_missed_cause=\"USER_BUSY\"",
    ] {
        assert!(seen.contains(s), "never seen: {s} (seen {seen:?})");
    }
}
