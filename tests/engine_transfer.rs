//! Transfers and `hangup_by` over the simulated switch: the call follows
//! the customer's leg when it is transferred away from the agent, says so
//! (`pbx.call.transferred`), and ends once, when the customer's
//! conversation does; `hangup_by` names the side that hung up first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mod_zorio_c2c::core::config::Config;
use mod_zorio_c2c::core::engine::Engine;
use mod_zorio_c2c::core::events::{self, EventLog};
use mod_zorio_c2c::core::request::ClickToCallRequest;
use mod_zorio_c2c::sim::{SimAction, SimOptions, SimSwitch};
use mod_zorio_c2c::switch::{leg_channel, Switch};
use serde_json::{json, Value};
use uuid::Uuid;

struct World {
    engine: Arc<Engine>,
    sim: Arc<SimSwitch>,
    log: Arc<EventLog>,
}

/// Phones answer after 60 ms; customers talk for 30 s unless told otherwise.
fn world() -> World {
    let o = SimOptions::demo_fast(Duration::from_millis(60), Duration::from_secs(30));
    let config =
        Config::from_xml(include_str!("../conf/autoload_configs/zorio_c2c.conf.xml")).unwrap();
    let (tx, rx) = leg_channel();
    let sim = SimSwitch::new(o, tx);
    let log = Arc::new(EventLog::default());
    let engine = Engine::new(config, sim.clone(), rx, log.clone());
    World { engine, sim, log }
}

/// Places a call and waits until it is bridged: (call, A-leg, B-leg).
fn bridged_call(w: &World) -> (Uuid, Uuid, Uuid) {
    let req = ClickToCallRequest::from_value(
        &json!({"from_extension": "1001", "to_phone": "0987654321"}),
    )
    .unwrap();
    let acc = w.engine.place(&req, Some("crm")).unwrap();
    let call = Uuid::parse_str(&acc.call_uuid).unwrap();
    wait("bridged", || {
        w.engine.call(call).unwrap().state.as_str() == "bridged"
    });
    let (a, b) = (
        Uuid::parse_str(&acc.a_leg_uuid).unwrap(),
        Uuid::parse_str(&acc.b_leg_uuid).unwrap(),
    );
    (call, a, b)
}

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_ended(w: &World, call: Uuid) -> Value {
    wait("the call's end", || {
        w.engine.call(call).unwrap().state.as_str() == "ended"
    });
    w.engine.call(call).unwrap().status_json()
}

fn data_of(w: &World, call: Uuid, kind: &str) -> Vec<Value> {
    w.log
        .all()
        .into_iter()
        .filter(|e| e.call_uuid == call && e.event_type == kind)
        .map(|e| e.data)
        .collect()
}

/// Transfers the customer's leg and waits for `pbx.call.transferred`.
fn transfer(w: &World, call: Uuid, b: Uuid, to: &str) -> Uuid {
    let party = w.sim.transfer(b, to).expect("B is up");
    wait("pbx.call.transferred", || {
        !data_of(w, call, events::TRANSFERRED).is_empty()
    });
    party
}

#[test]
fn a_transferred_customer_talks_on_and_the_call_ends_once() {
    let w = world();
    let (call, a, b) = bridged_call(&w);
    let party = transfer(&w, call, b, "0977777777");

    // The agent's leg ended, the customer's did not, and nobody hung it up.
    let live = w.engine.call(call).unwrap();
    assert_eq!(live.state.as_str(), "bridged");
    assert!(live.a.ended_at.is_some() && live.b.ended_at.is_none());
    assert!(!w
        .sim
        .actions()
        .iter()
        .any(|x| matches!(x, SimAction::Hangup(leg, _) if *leg == b)));
    let t = &data_of(&w, call, events::TRANSFERRED)[0];
    assert_eq!(t["leg"], "B");
    assert_eq!(t["moved_leg"], "B");
    assert_eq!(t["leg_uuid"], b.to_string());
    assert_eq!(t["destination"], "0977777777");
    assert_eq!(t["far_end_uuid"], party.to_string());
    assert_eq!(t["previous_far_end_uuid"], a.to_string());
    assert!(data_of(&w, call, events::HANGUP).is_empty());
    let status = w.engine.call(call).unwrap().status_json();
    assert_eq!(status["parties"].as_array().unwrap().len(), 2);
    assert_eq!(status["transferred"], true);

    // Talk a while with the new party, which then hangs up.
    std::thread::sleep(Duration::from_millis(1100));
    w.sim.party_hangs_up(party, "NORMAL_CLEARING");
    let status = wait_ended(&w, call);
    assert_eq!(status["hangup_by"], "agent", "{status}");
    assert_eq!(status["outcome"], "completed");

    let mut expected: Vec<&str> = events::COMPLETED_CALL.to_vec();
    expected.insert(5, events::TRANSFERRED);
    assert_eq!(w.log.types_of(call), expected);
    let cdr = &data_of(&w, call, events::CDR)[0];
    assert!(cdr["billsec"].as_u64().unwrap() >= 1, "{cdr}");
    let parties = cdr["parties"].as_array().unwrap();
    assert_eq!(parties.len(), 2);
    assert_eq!(parties[0]["role"], "agent");
    assert_eq!(parties[0]["leg_uuid"], a.to_string());
    assert_eq!(parties[1]["role"], "transfer");
    assert_eq!(parties[1]["destination"], "0977777777");
    assert!(parties[1]["ended_at"].is_string());
    assert_eq!(cdr["last_party"]["leg_uuid"], party.to_string());
    assert_eq!(cdr["hangup_by"], "agent");
    assert_eq!(data_of(&w, call, events::HANGUP)[0]["hangup_by"], "agent");
}

#[test]
fn an_attended_transfer_is_followed_from_the_agent_leg_end() {
    let w = world();
    let (call, a, b) = bridged_call(&w);
    let party = w.sim.attended_transfer(b).expect("B is up");
    wait("pbx.call.transferred", || {
        !data_of(&w, call, events::TRANSFERRED).is_empty()
    });
    let t = &data_of(&w, call, events::TRANSFERRED)[0];
    assert_eq!(t["far_end_uuid"], party.to_string());
    assert_eq!(t["previous_far_end_uuid"], a.to_string());
    assert!(w.engine.call(call).unwrap().b.ended_at.is_none());
    w.sim.party_hangs_up(b, "NORMAL_CLEARING");
    let status = wait_ended(&w, call);
    assert_eq!(status["hangup_by"], "customer");
    assert_eq!(status["last_party"]["leg_uuid"], party.to_string());
    assert!(!w.sim.leg_exists(party));
    assert_eq!(data_of(&w, call, events::HANGUP).len(), 1);
}

#[test]
fn a_transferred_customer_hanging_up_ends_the_call_as_customer() {
    let w = world();
    let (call, _, b) = bridged_call(&w);
    let party = transfer(&w, call, b, "1002");
    w.sim.party_hangs_up(b, "NORMAL_CLEARING");
    let status = wait_ended(&w, call);
    assert_eq!(status["hangup_by"], "customer");
    assert!(!w.sim.leg_exists(party));
    assert_eq!(data_of(&w, call, events::HANGUP).len(), 1);
    assert_eq!(data_of(&w, call, events::CDR).len(), 1);
}

#[test]
fn the_agent_leg_moved_away_leaves_the_call_and_is_not_hung_up() {
    let w = world();
    let (call, a, b) = bridged_call(&w);
    // uuid_transfer of the A-leg: the switch hangs up the customer it leaves.
    w.sim.transfer(a, "4412352").expect("A is up");
    let status = wait_ended(&w, call);
    let t = &data_of(&w, call, events::TRANSFERRED);
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0]["leg"], "A");
    assert_eq!(t[0]["moved_leg"], "A");
    assert_eq!(t[0]["leg_uuid"], a.to_string());
    assert_eq!(t[0]["destination"], "4412352");
    assert!(t[0]["far_end_uuid"].is_null());
    assert_eq!(t[0]["previous_far_end_uuid"], a.to_string());
    assert_eq!(status["hangup_by"], "agent");
    assert_eq!(status["transferred"], true);
    assert_eq!(data_of(&w, call, events::HANGUP).len(), 1);
    assert_eq!(data_of(&w, call, events::CDR).len(), 1);
    // The agent's leg went elsewhere: the engine never hung it up.
    assert!(w.sim.leg_exists(a));
    assert!(!w
        .sim
        .actions()
        .iter()
        .any(|x| matches!(x, SimAction::Hangup(leg, _) if *leg == a || *leg == b)));
}

#[test]
fn delete_ends_a_transferred_call_wherever_its_legs_are() {
    let w = world();
    let (call, _, b) = bridged_call(&w);
    let party = transfer(&w, call, b, "0977777777");
    w.engine.hangup(call).unwrap();
    let status = wait_ended(&w, call);
    assert_eq!(status["hangup_by"], "api");
    assert!(!w.sim.leg_exists(b) && !w.sim.leg_exists(party));
    assert_eq!(data_of(&w, call, events::CDR).len(), 1);
}

#[test]
fn hangup_by_names_the_side_that_hung_up_first() {
    // (what ends the call, expected hangup_by)
    type End = fn(&World, Uuid, Uuid, Uuid);
    let cases: [(&str, End, &str); 5] = [
        (
            "agent's BYE",
            |w, _, a, _| w.sim.party_hangs_up(a, "NORMAL_CLEARING"),
            "agent",
        ),
        (
            "customer's BYE",
            |w, _, _, b| w.sim.party_hangs_up(b, "NORMAL_CLEARING"),
            "customer",
        ),
        (
            "switch kills A",
            |w, _, a, _| w.sim.hangup(a, "NORMAL_CLEARING"),
            "agent",
        ),
        (
            "switch kills B",
            |w, _, _, b| w.sim.hangup(b, "NORMAL_CLEARING"),
            "customer",
        ),
        (
            "DELETE",
            |w, call, _, _| w.engine.hangup(call).unwrap(),
            "api",
        ),
    ];
    for (name, end, expected) in cases {
        let w = world();
        let (call, a, b) = bridged_call(&w);
        end(&w, call, a, b);
        let status = wait_ended(&w, call);
        assert_eq!(status["hangup_by"], expected, "{name}: {status}");
        let hangups = data_of(&w, call, events::HANGUP);
        assert_eq!(hangups.len(), 1, "{name}");
        assert_eq!(hangups[0]["hangup_by"], expected, "{name}");
        // Without a transfer, the CDR keeps its shape.
        let cdr = &data_of(&w, call, events::CDR)[0];
        assert!(cdr.get("parties").is_none(), "{name}");
        assert_eq!(w.log.types_of(call), events::COMPLETED_CALL.to_vec());
    }
}

#[test]
fn the_switch_watches_the_legs_of_calls_in_flight_and_no_other() {
    use mod_zorio_c2c::switch::LegRole;
    let w = world();
    let (call, a, b) = bridged_call(&w);
    let watched = w.sim.watched();
    assert_eq!(watched.len(), 2, "{watched:?}");
    assert_eq!(watched.get(&a), Some(&LegRole::Agent));
    assert_eq!(watched.get(&b), Some(&LegRole::Customer));

    // A transfer's new party is watched once it joins; the agent's leg,
    // ended, stays watched while the call is in flight.
    let party = transfer(&w, call, b, "0977777777");
    assert_eq!(w.sim.watched().get(&party), Some(&LegRole::Party));

    // The party's hangup is reported (it is watched) and ends the call;
    // then nothing of it is watched.
    w.sim.party_hangs_up(party, "NORMAL_CLEARING");
    wait_ended(&w, call);
    wait("no leg watched", || w.sim.watched().is_empty());
}
