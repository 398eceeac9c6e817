//! `time_limit` and `max-call-duration` over the simulated switch: the
//! switch ends the call at the limit counted from the bridge, with
//! `ALLOTTED_TIMEOUT`, `hangup_by` `system`, outcome `time_limit_reached`
//! and `billsec` the limit; the limit holds for a call adopted by the next
//! engine (a reload), since the switch keeps it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mod_zorio_c2c::core::config::Config;
use mod_zorio_c2c::core::engine::Engine;
use mod_zorio_c2c::core::events::{self, EventLog};
use mod_zorio_c2c::core::journal::{CallJournal, MemoryJournal};
use mod_zorio_c2c::core::request::ClickToCallRequest;
use mod_zorio_c2c::sim::{SimOptions, SimSwitch};
use mod_zorio_c2c::switch::leg_channel;
use serde_json::{json, Value};
use uuid::Uuid;

fn config(max_call_duration: Option<u32>) -> Config {
    let mut c =
        Config::from_xml(include_str!("../conf/autoload_configs/zorio_c2c.conf.xml")).unwrap();
    c.max_call_duration = max_call_duration;
    c
}

/// The customer would talk 30 s: only a limit ends the call sooner.
fn sim() -> (
    Arc<SimSwitch>,
    crossbeam_channel::Receiver<mod_zorio_c2c::switch::LegReport>,
) {
    let o = SimOptions::demo_fast(Duration::from_millis(50), Duration::from_secs(30));
    let (tx, rx) = leg_channel();
    (SimSwitch::new(o, tx), rx)
}

fn place(e: &Arc<Engine>, body: Value) -> Uuid {
    let req = ClickToCallRequest::from_value(&body).unwrap();
    Uuid::parse_str(&e.place(&req, Some("crm")).unwrap().call_uuid).unwrap()
}

fn wait_state(e: &Engine, call: Uuid, state: &str, within: Duration) -> (Value, Instant) {
    let until = Instant::now() + within;
    loop {
        if let Some(c) = e.call(call) {
            if c.state.as_str() == state {
                return (c.status_json(), Instant::now());
            }
        }
        assert!(Instant::now() < until, "call {call} never {state}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn cdr(log: &EventLog, call: Uuid) -> Value {
    log.all()
        .into_iter()
        .find(|e| e.call_uuid == call && e.event_type == events::CDR)
        .expect("a CDR")
        .data
}

fn assert_limited(log: &EventLog, call: Uuid, limit: u64) {
    let cdr = cdr(log, call);
    assert_eq!(cdr["hangup_cause"], "ALLOTTED_TIMEOUT", "{cdr}");
    assert_eq!(cdr["hangup_by"], "system");
    assert_eq!(cdr["outcome"], "time_limit_reached");
    assert_eq!(cdr["time_limit"], limit);
    let billsec = cdr["billsec"].as_u64().unwrap();
    assert!(billsec.abs_diff(limit) <= 1, "billsec {billsec} vs {limit}");
    let hangup = log
        .all()
        .into_iter()
        .find(|e| e.call_uuid == call && e.event_type == events::HANGUP)
        .unwrap();
    assert_eq!(hangup.data["hangup_cause"], "ALLOTTED_TIMEOUT");
    assert_eq!(hangup.data["outcome"], "time_limit_reached");
}

#[test]
fn the_requested_limit_ends_the_call_from_the_bridge() {
    let (sim, rx) = sim();
    let log = Arc::new(EventLog::default());
    let e = Engine::new(config(None), sim.clone(), rx, log.clone());
    let call = place(
        &e,
        json!({"from_extension": "1001", "to_phone": "0987654321", "time_limit": 2}),
    );
    let (st, bridged) = wait_state(&e, call, "bridged", Duration::from_secs(5));
    assert_eq!(st["time_limit"], 2);
    let (_, ended) = wait_state(&e, call, "ended", Duration::from_secs(5));
    let took = ended - bridged;
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(2600),
        "ended {took:?} after the bridge"
    );
    assert_limited(&log, call, 2);
    assert_eq!(log.types_of(call), events::COMPLETED_CALL.to_vec());
    e.shutdown(Duration::from_secs(2));
}

#[test]
fn max_call_duration_is_the_default_and_a_request_wins_over_it() {
    let (sim, rx) = sim();
    let log = Arc::new(EventLog::default());
    let e = Engine::new(config(Some(1)), sim.clone(), rx, log.clone());
    let by_config = place(
        &e,
        json!({"from_extension": "1001", "to_phone": "0987654321"}),
    );
    let by_request = place(
        &e,
        json!({"from_extension": "1002", "to_phone": "0987654322", "time_limit": 3}),
    );
    wait_state(&e, by_config, "ended", Duration::from_secs(6));
    assert_limited(&log, by_config, 1);
    wait_state(&e, by_request, "ended", Duration::from_secs(8));
    assert_limited(&log, by_request, 3);
    e.shutdown(Duration::from_secs(2));
}

#[test]
fn without_a_limit_the_call_goes_on_and_ends_as_before() {
    let o = SimOptions::demo_fast(Duration::from_millis(50), Duration::from_millis(1500));
    let (tx, rx) = leg_channel();
    let sim = SimSwitch::new(o, tx);
    let log = Arc::new(EventLog::default());
    let e = Engine::new(config(None), sim.clone(), rx, log.clone());
    let call = place(
        &e,
        json!({"from_extension": "1001", "to_phone": "0987654321"}),
    );
    let (st, _) = wait_state(&e, call, "ended", Duration::from_secs(6));
    assert_eq!(st["time_limit"], Value::Null);
    let cdr = cdr(&log, call);
    assert_eq!(cdr["outcome"], "completed");
    assert_eq!(cdr["hangup_by"], "customer");
    assert_eq!(cdr["hangup_cause"], "NORMAL_CLEARING");
    e.shutdown(Duration::from_secs(2));
}

#[test]
fn the_limit_holds_for_a_call_adopted_by_the_next_engine() {
    let (sim, rx) = sim();
    let journal = Arc::new(MemoryJournal::default());
    let log = Arc::new(EventLog::default());
    let load = || {
        Engine::with_journal(
            config(None),
            sim.clone(),
            rx.clone(),
            log.clone(),
            journal.clone(),
        )
    };
    let first = load();
    let call = place(
        &first,
        json!({"from_extension": "1001", "to_phone": "0987654321", "time_limit": 2}),
    );
    let (_, bridged) = wait_state(&first, call, "bridged", Duration::from_secs(5));
    assert_eq!(first.shutdown(Duration::from_secs(2)), 0);
    assert_eq!(journal.open_calls()[0].time_limit, Some(2));
    let second = load();
    let (st, _) = wait_state(&second, call, "bridged", Duration::from_secs(1));
    assert_eq!(st["time_limit"], 2, "the adopted call knows its limit");
    let (_, ended) = wait_state(&second, call, "ended", Duration::from_secs(5));
    assert!(ended - bridged < Duration::from_millis(2600));
    assert_limited(&log, call, 2);
    second.shutdown(Duration::from_secs(2));
}
