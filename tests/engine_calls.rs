//! The call state machine driven end to end over the simulated switch:
//! real threads, real timing, every branch of a call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mod_zorio_c2c::core::config::Config;
use mod_zorio_c2c::core::engine::Engine;
use mod_zorio_c2c::core::events::{self, EventLog};
use mod_zorio_c2c::core::request::ClickToCallRequest;
use mod_zorio_c2c::sim::{self, SimAction, SimOptions, SimSwitch};
use mod_zorio_c2c::switch::leg_channel;
use serde_json::json;
use uuid::Uuid;

struct World {
    engine: Arc<Engine>,
    sim: Arc<SimSwitch>,
    log: Arc<EventLog>,
}

fn world(tweak: impl FnOnce(&mut SimOptions)) -> World {
    let mut o = SimOptions::demo_fast(Duration::from_millis(60), Duration::from_millis(150));
    tweak(&mut o);
    let mut config =
        Config::from_xml(include_str!("../conf/autoload_configs/zorio_c2c.conf.xml")).unwrap();
    config.a_leg_timeout = Duration::from_millis(300);
    let (tx, rx) = leg_channel();
    let sim = SimSwitch::new(o, tx);
    let log = Arc::new(EventLog::default());
    let engine = Engine::new(config, sim.clone(), rx, log.clone());
    World { engine, sim, log }
}

fn place(w: &World, body: serde_json::Value) -> Uuid {
    let req = ClickToCallRequest::from_value(&body).unwrap();
    let a = w.engine.place(&req, Some("crm")).unwrap();
    Uuid::parse_str(&a.call_uuid).unwrap()
}

fn wait_ended(w: &World, call: Uuid) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let c = w.engine.call(call).expect("call known");
        if c.state.as_str() == "ended" {
            return c.status_json();
        }
        assert!(Instant::now() < until, "call did not end: {:?}", c.state);
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_completed_call_emits_the_contract_sequence_in_order() {
    let w = world(|_| {});
    let call = place(
        &w,
        json!({"from_extension": "1001", "to_phone": "0987654321",
        "headers": {"CRM-Lead-Id": "LEAD-42"}}),
    );
    let status = wait_ended(&w, call);
    assert_eq!(status["outcome"], "completed");
    assert_eq!(status["hangup_by"], "customer");
    assert_eq!(status["trunk_name"], "BACKUP");
    assert_eq!(w.log.types_of(call), events::COMPLETED_CALL.to_vec());
    let events: Vec<_> = w
        .log
        .all()
        .into_iter()
        .filter(|e| e.call_uuid == call)
        .collect();
    assert_eq!(events[1].data["leg"], "A");
    assert_eq!(events[3].data["leg"], "B");
    let seqs: Vec<u32> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    let cdr = &events[6].data;
    assert_eq!(cdr["headers"]["X-CRM-Lead-Id"], "LEAD-42");
    assert_eq!(cdr["attempts"].as_array().unwrap().len(), 1);
    assert!(cdr["answer_time"].is_string());

    // The customer was dialled only after the agent answered, then bridged.
    let actions = w.sim.actions();
    let kinds: Vec<&str> = actions
        .iter()
        .map(|a| match a {
            SimAction::OriginateAgent(_) => "agent",
            SimAction::DialCustomer(_) => "customer",
            SimAction::Bridge(..) => "bridge",
            SimAction::Hangup(..) => "hangup",
            SimAction::Ringback(..) => "ringback",
        })
        .collect();
    assert_eq!(&kinds[..3], &["agent", "customer", "bridge"]);
    let SimAction::DialCustomer(leg) = &actions[1] else {
        panic!()
    };
    assert_eq!(leg.caller_id, "1001");
    assert_eq!(
        leg.headers,
        vec![("CRM-Lead-Id".to_string(), "LEAD-42".to_string())]
    );
}

#[test]
fn agent_no_answer_dials_nobody() {
    let w = world(|_| {});
    let call = place(
        &w,
        json!({"from_extension": "1004", "to_phone": "0987654321"}),
    );
    let status = wait_ended(&w, call);
    assert_eq!(status["outcome"], "agent_no_answer");
    assert!(!w
        .sim
        .actions()
        .iter()
        .any(|a| matches!(a, SimAction::DialCustomer(_))));
    assert_eq!(
        w.log.types_of(call),
        vec![
            "pbx.call.ringing",
            "pbx.call.agent_missed",
            "pbx.call.hangup",
            "pbx.cdr.created"
        ]
    );
}

#[test]
fn trunk_failure_fails_over_but_busy_does_not() {
    let w = world(|_| {});
    let call = place(
        &w,
        json!({"from_extension": "1001", "to_phone": sim::NUMBER_FIRST_TRUNK_FAILS}),
    );
    let status = wait_ended(&w, call);
    assert_eq!(status["outcome"], "completed");
    let attempts = status["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["trunk_name"], "BACKUP");
    assert_eq!(attempts[0]["sip_code"], 503);
    assert_eq!(attempts[1]["trunk_name"], "POC");
    assert_eq!(status["trunk_name"], "POC");

    let busy = place(
        &w,
        json!({"from_extension": "1001", "to_phone": sim::NUMBER_BUSY}),
    );
    let status = wait_ended(&w, busy);
    assert_eq!(status["outcome"], "customer_busy");
    assert_eq!(status["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(status["hangup_cause"], "USER_BUSY");
}

#[test]
fn api_hangup_and_agent_hangup_end_the_call() {
    let w = world(|o| o.talk_time = Duration::from_secs(30));
    let call = place(
        &w,
        json!({"from_extension": "1002", "to_phone": "0987654321"}),
    );
    let until = Instant::now() + Duration::from_secs(5);
    while w.engine.call(call).unwrap().state.as_str() != "bridged" {
        assert!(Instant::now() < until);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(w.engine.call(call).unwrap().caller_id, "0900000021");
    w.engine.hangup(call).unwrap();
    let status = wait_ended(&w, call);
    assert_eq!(status["hangup_by"], "api");
    assert_eq!(status["outcome"], "completed");

    let call = place(
        &w,
        json!({"from_extension": "1001", "to_phone": "0987654321"}),
    );
    while w.engine.call(call).unwrap().state.as_str() != "bridged" {
        std::thread::sleep(Duration::from_millis(5));
    }
    let a = w.engine.call(call).unwrap().a.uuid;
    w.sim.party_hangs_up(a, "NORMAL_CLEARING");
    let status = wait_ended(&w, call);
    assert_eq!(status["hangup_by"], "agent");
    assert_eq!(w.log.types_of(call).last(), Some(&"pbx.cdr.created"));
}

#[test]
fn unknown_inactive_and_shutdown_are_refused() {
    let w = world(|_| {});
    let req = |ext: &str| {
        ClickToCallRequest::from_value(&json!({"from_extension": ext, "to_phone": "0987654321"}))
            .unwrap()
    };
    assert_eq!(
        w.engine.place(&req("1999"), None).unwrap_err().code,
        "extension_not_found"
    );
    assert_eq!(
        w.engine.place(&req("1003"), None).unwrap_err().code,
        "extension_inactive"
    );
    let call = place(
        &w,
        json!({"from_extension": "1004", "to_phone": "0987654321"}),
    );
    assert_eq!(w.engine.shutdown(Duration::from_secs(5)), 0);
    let status = w.engine.call(call).unwrap().status_json();
    assert_eq!(status["status"], "ended");
    assert_eq!(status["hangup_by"], "system");
    assert_eq!(
        w.engine.place(&req("1001"), None).unwrap_err().code,
        "shutting_down"
    );
}
