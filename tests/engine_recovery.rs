//! One engine stops with calls the switch still carries; the next engine,
//! over the same call journal, takes them back: adopts those still up,
//! reports those that ended meanwhile (`recovered: true`), and each call
//! still ends in exactly one hangup and one CDR, its events numbered on.
//! Real threads over the simulated switch, as in a module reload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mod_zorio_c2c::core::config::Config;
use mod_zorio_c2c::core::engine::Engine;
use mod_zorio_c2c::core::events::{self, EventLog};
use mod_zorio_c2c::core::journal::{CallJournal, MemoryJournal};
use mod_zorio_c2c::core::request::ClickToCallRequest;
use mod_zorio_c2c::sim::{SimOptions, SimSwitch};
use mod_zorio_c2c::switch::{leg_channel, LegReport, Switch};
use serde_json::json;
use uuid::Uuid;

struct Switchboard {
    sim: Arc<SimSwitch>,
    legs: Receiver<LegReport>,
    journal: Arc<MemoryJournal>,
    log: Arc<EventLog>,
}

fn switchboard(talk: Duration) -> Switchboard {
    let o = SimOptions::demo_fast(Duration::from_millis(60), talk);
    let (tx, rx) = leg_channel();
    Switchboard {
        sim: SimSwitch::new(o, tx),
        legs: rx,
        journal: Arc::new(MemoryJournal::default()),
        log: Arc::new(EventLog::default()),
    }
}

fn config() -> Config {
    Config::from_xml(include_str!("../conf/autoload_configs/zorio_c2c.conf.xml")).unwrap()
}

/// An engine "loaded" over the switchboard (sharing its journal and leg channel).
fn load(s: &Switchboard) -> Arc<Engine> {
    Engine::with_journal(
        config(),
        s.sim.clone(),
        s.legs.clone(),
        s.log.clone(),
        s.journal.clone(),
    )
}

fn place(e: &Arc<Engine>, to: &str) -> (Uuid, Uuid, Uuid) {
    let req = ClickToCallRequest::from_value(
        &json!({"from_extension": "1001", "to_phone": to, "headers": {"CRM-Lead-Id": "L-7"}}),
    )
    .unwrap();
    let a = e.place(&req, Some("crm")).unwrap();
    let id = |s: &str| Uuid::parse_str(s).unwrap();
    (id(&a.call_uuid), id(&a.a_leg_uuid), id(&a.b_leg_uuid))
}

fn wait_state(e: &Engine, call: Uuid, state: &str) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(c) = e.call(call) {
            if c.state.as_str() == state {
                return c.status_json();
            }
        }
        assert!(Instant::now() < until, "call {call} never {state}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What the unload leaves in the channel is lost, as FreeSWITCH's events
/// are while no module is bound.
fn unbound_gap(s: &Switchboard) {
    while s.legs.try_recv().is_ok() {}
}

fn counted(n: &std::sync::atomic::AtomicU64) -> u64 {
    n.load(std::sync::atomic::Ordering::Relaxed)
}

fn seqs(log: &EventLog, call: Uuid) -> Vec<u32> {
    log.all()
        .into_iter()
        .filter(|e| e.call_uuid == call)
        .map(|e| e.seq)
        .collect()
}

#[test]
fn a_bridged_call_is_adopted_by_the_next_engine_and_ends_there_once() {
    let s = switchboard(Duration::from_secs(60));
    let first = load(&s);
    let (call, a, b) = place(&first, "0987654321");
    wait_state(&first, call, "bridged");
    assert_eq!(first.shutdown(Duration::from_secs(2)), 0);
    assert!(
        s.sim.leg_exists(a) && s.sim.leg_exists(b),
        "the switch keeps the bridged call"
    );
    assert_eq!(s.journal.open_calls().len(), 1, "left in the journal");

    let second = load(&s);
    assert_eq!(counted(&second.stats.adopted), 1);
    let st = wait_state(&second, call, "bridged");
    assert_eq!(st["recovered"], false);
    assert_eq!(st["headers"]["X-CRM-Lead-Id"], "L-7");
    assert_eq!(second.active_calls().len(), 1);
    std::thread::sleep(Duration::from_millis(1100));
    // DELETE / c2c hangup on the new engine.
    second.hangup(call).unwrap();
    let st = wait_state(&second, call, "ended");
    assert_eq!(st["hangup_by"], "api");
    assert_eq!(st["outcome"], "completed");
    assert!(st["legs"]["B"]["answered_at"].is_string());
    let types = s.log.types_of(call);
    assert_eq!(
        types,
        events::COMPLETED_CALL.to_vec(),
        "one sequence across the reload"
    );
    assert_eq!(seqs(&s.log, call), (1..=7).collect::<Vec<_>>());
    let cdr = s
        .log
        .all()
        .into_iter()
        .find(|e| e.call_uuid == call && e.event_type == events::CDR)
        .unwrap();
    assert!(
        cdr.data["billsec"].as_u64().unwrap() >= 1,
        "billsec spans the reload: {}",
        cdr.data
    );
    assert_eq!(cdr.data["recovered"], false);
    assert!(
        s.journal.open_calls().is_empty(),
        "journal empty once the CDR is out"
    );
    second.shutdown(Duration::from_secs(2));
}

#[test]
fn a_bridged_call_that_ends_while_unloaded_is_reported_recovered() {
    let s = switchboard(Duration::from_secs(60));
    let first = load(&s);
    let (call, _a, b) = place(&first, "0987654321");
    wait_state(&first, call, "bridged");
    first.shutdown(Duration::from_secs(2));
    s.sim.party_hangs_up(b, "NORMAL_CLEARING");
    unbound_gap(&s);

    let second = load(&s);
    assert_eq!(counted(&second.stats.recovered), 1);
    let st = wait_state(&second, call, "ended");
    assert_eq!(st["recovered"], true);
    assert_eq!(st["hangup_cause"], "NORMAL_UNSPECIFIED");
    assert_eq!(st["hangup_by"], "system");
    assert_eq!(st["outcome"], "completed");
    assert_eq!(s.log.types_of(call), events::COMPLETED_CALL.to_vec());
    let hangup = s
        .log
        .all()
        .into_iter()
        .find(|e| e.call_uuid == call && e.event_type == events::HANGUP)
        .unwrap();
    assert_eq!(hangup.data["recovered"], true);
    assert!(s.journal.open_calls().is_empty());
    second.shutdown(Duration::from_secs(2));
}

#[test]
fn one_leg_gone_while_unloaded_the_other_still_up_is_adopted_and_ends_with_it() {
    let s = switchboard(Duration::from_secs(60));
    let first = load(&s);
    let (call, a, b) = place(&first, "0987654321");
    wait_state(&first, call, "bridged");
    first.shutdown(Duration::from_secs(2));
    // The agent's leg vanished without its partner (in FreeSWITCH the partner
    // would follow at once; here it lingers so the adoption sees one leg up).
    second_leg_only(&s, a);
    let second = load(&s);
    assert_eq!(counted(&second.stats.adopted), 1);
    s.sim.party_hangs_up(b, "NORMAL_CLEARING");
    let st = wait_state(&second, call, "ended");
    assert_eq!(st["hangup_by"], "agent", "the agent's leg ended first");
    assert_eq!(st["legs"]["A"]["hangup_cause"], "NORMAL_UNSPECIFIED");
    assert_eq!(s.log.types_of(call), events::COMPLETED_CALL.to_vec());
    second.shutdown(Duration::from_secs(2));
}

/// Ends `leg` in the simulated switch without its bridge partner, and drops
/// the report (nobody was bound).
fn second_leg_only(s: &Switchboard, leg: Uuid) {
    s.sim.unbridge(leg);
    s.sim.party_hangs_up(leg, "NORMAL_CLEARING");
    unbound_gap(s);
}

#[test]
fn calls_of_an_earlier_process_are_reported_ended_by_the_switch_stop() {
    let s = switchboard(Duration::from_secs(60));
    let first = load(&s);
    let (call, a, b) = place(&first, "0987654321");
    wait_state(&first, call, "bridged");
    first.shutdown(Duration::from_secs(2));
    // As a durable journal would hand it over after a crash: another process's
    // record, whose channels died with it.
    let mut rec = s.journal.open_calls().pop().unwrap();
    rec.instance = Uuid::new_v4();
    s.journal.put(&rec);
    s.sim.hangup(a, "CRASH");
    s.sim.hangup(b, "CRASH");
    unbound_gap(&s);

    let second = load(&s);
    let st = wait_state(&second, call, "ended");
    assert_eq!(st["hangup_cause"], "CRASH");
    assert_eq!(st["recovered"], true);
    assert_eq!(st["legs"]["B"]["ended_at"], st["legs"]["A"]["ended_at"]);
    assert_eq!(s.log.types_of(call), events::COMPLETED_CALL.to_vec());
    assert_eq!(seqs(&s.log, call), (1..=7).collect::<Vec<_>>());
    second.shutdown(Duration::from_secs(2));
}

#[test]
fn a_call_still_ringing_at_unload_is_ended_and_reported_by_the_old_engine() {
    let s = switchboard(Duration::from_secs(60));
    let first = load(&s);
    let (call, a, _b) = place(&first, "0987654321");
    std::thread::sleep(Duration::from_millis(10));
    first.shutdown(Duration::from_secs(2));
    assert!(!s.sim.leg_exists(a));
    let st = first.call(call).unwrap().status_json();
    assert_eq!(st["status"], "ended");
    assert_eq!(st["hangup_by"], "system");
    let types = s.log.types_of(call);
    assert_eq!(&types[types.len() - 2..], &[events::HANGUP, events::CDR]);
    assert!(
        s.journal.open_calls().is_empty(),
        "nothing left for the next load"
    );
    let second = load(&s);
    assert!(second.active_calls().is_empty());
    second.shutdown(Duration::from_secs(2));
}

fn request(to: &str) -> ClickToCallRequest {
    ClickToCallRequest::from_value(&json!({"from_extension": "1001", "to_phone": to})).unwrap()
}

#[test]
fn on_auto_a_call_is_refused_only_when_the_switch_has_no_room_for_its_two_channels() {
    // Customers talk a minute: every call stays up.
    let s = switchboard(Duration::from_secs(60));
    let e = load(&s);
    s.sim.set_options(|o| o.max_sessions = Some(6));
    // Three calls fit, two channels each, whichever of them their runners
    // have opened yet (a channel not yet opened is counted as to be opened).
    for to in ["0987654321", "0987654322", "0987654323"] {
        e.place(&request(to), Some("crm")).unwrap();
    }
    let refused = e.place(&request("0987654324"), Some("crm")).unwrap_err();
    assert_eq!((refused.status, refused.code), (503, "capacity_exceeded"));
    assert!(
        refused.message.contains("of the switch's 6 sessions"),
        "{}",
        refused.message
    );
    e.shutdown(Duration::from_secs(1));

    // Other applications' channels take room too: 5 of 6 leave none for a
    // call of ours, though the module has none in flight; 4 leave enough.
    let s = switchboard(Duration::from_secs(60));
    let e = load(&s);
    s.sim.set_options(|o| o.max_sessions = Some(6));
    s.sim.set_foreign_channels("pbx-other", 5);
    let refused = e.place(&request("0987654321"), Some("crm")).unwrap_err();
    assert_eq!(refused.code, "capacity_exceeded", "{}", refused.message);
    s.sim.set_foreign_channels("pbx-other", 4);
    e.place(&request("0987654321"), Some("crm")).unwrap();

    // A max-concurrent-calls of the config counts the module's calls.
    let mut c = config();
    c.max_concurrent_calls = Some(1);
    e.set_config(c);
    s.sim.set_foreign_channels("pbx-other", 0);
    let refused = e.place(&request("0987654322"), Some("crm")).unwrap_err();
    assert_eq!(refused.message, "1 calls in flight: the limit");
    e.shutdown(Duration::from_secs(1));
}

#[test]
fn the_switch_session_limit_sets_the_default_capacity() {
    let s = switchboard(Duration::from_secs(60));
    let e = load(&s);
    let mut c = config();
    c.max_concurrent_calls = None;
    assert_eq!(e.max_concurrent_calls(&c), 200, "no limit known: 200");
    c.max_concurrent_calls = Some(7);
    assert_eq!(e.max_concurrent_calls(&c), 7);
    s.sim.set_options(|o| o.max_sessions = Some(1000));
    c.max_concurrent_calls = None;
    assert_eq!(e.max_concurrent_calls(&c), 500, "two channels a call");
    e.shutdown(Duration::from_secs(1));
}
