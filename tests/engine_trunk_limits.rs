//! Per-trunk limits on the simulated switch: a forced trunk's calls are
//! paced at its `cps` (FIFO, with ringback) and time out in its queue; LCR
//! passes over a trunk at `max-channels` (counting channels the engine did
//! not place) with an attempt that says which limit; `c2c status` and
//! `/metrics`-facing state show the trunks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mod_zorio_c2c::core::call::CallRecord;
use mod_zorio_c2c::core::command::{self, CommandHost};
use mod_zorio_c2c::core::config::{Config, ConfigError};
use mod_zorio_c2c::core::engine::Engine;
use mod_zorio_c2c::core::events::EventLog;
use mod_zorio_c2c::core::request::ClickToCallRequest;
use mod_zorio_c2c::sim::{SimAction, SimOptions, SimSwitch};
use mod_zorio_c2c::switch::leg_channel;
use serde_json::{json, Value};
use uuid::Uuid;

struct NoHost;

impl CommandHost for NoHost {
    fn load_config(&self) -> Result<Config, ConfigError> {
        unreachable!("not reloaded here")
    }
}

fn world(edit: impl FnOnce(&mut Config)) -> (Arc<Engine>, Arc<SimSwitch>, Arc<EventLog>) {
    let mut config =
        Config::from_xml(include_str!("../conf/autoload_configs/zorio_c2c.conf.xml")).unwrap();
    edit(&mut config);
    let o = SimOptions::demo_fast(Duration::from_millis(20), Duration::from_millis(300));
    let (tx, rx) = leg_channel();
    let sim = SimSwitch::new(o, tx);
    let log = Arc::new(EventLog::default());
    let engine = Engine::new(config, sim.clone(), rx, log.clone());
    (engine, sim, log)
}

fn trunk(config: &mut Config, id: i64) -> &mut mod_zorio_c2c::core::config::Trunk {
    config.trunks.iter_mut().find(|t| t.id == id).unwrap()
}

fn place(engine: &Arc<Engine>, ext: &str, body: Value) -> Uuid {
    let mut body = body;
    body["from_extension"] = json!(ext);
    let req = ClickToCallRequest::from_value(&body).unwrap();
    let a = engine.place(&req, Some("crm")).expect("accepted");
    Uuid::parse_str(&a.call_uuid).unwrap()
}

fn ended(engine: &Engine, call: Uuid, within: Duration) -> CallRecord {
    let until = Instant::now() + within;
    loop {
        let c = engine.call(call).expect("known call");
        if c.outcome.is_some() && c.runner_done {
            return c;
        }
        assert!(Instant::now() < until, "call not ended: {:?}", c.state);
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_forced_trunk_paces_its_calls_with_ringback_while_they_wait() {
    let (engine, sim, _) = world(|c| trunk(c, 4).cps = Some(2.0));
    // Agents may take several calls (`agent-busy ring`, the default).
    let agents = ["1001", "1002", "1001", "1002", "1001", "1002"];
    // Dial times as the switch sees them, polled every 2 ms.
    let seen = Arc::new(std::sync::Mutex::new(Vec::<(Uuid, Instant)>::new()));
    let watch = {
        let (sim, seen) = (sim.clone(), seen.clone());
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(10);
            while seen.lock().unwrap().len() < 6 && Instant::now() < until {
                for a in sim.actions() {
                    if let SimAction::DialCustomer(l) = a {
                        let mut s = seen.lock().unwrap();
                        if !s.iter().any(|(u, _)| *u == l.call_uuid) {
                            s.push((l.call_uuid, Instant::now()));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let calls: Vec<Uuid> = agents
        .iter()
        .map(|a| place(&engine, a, json!({"to_phone": "0987654321", "trunk_id": 4})))
        .collect();
    // While they wait, c2c status shows the line.
    std::thread::sleep(Duration::from_millis(300));
    let status = command::execute(&engine, &NoHost, "status");
    let trunks: Value =
        serde_json::from_str(status.split("trunks:\n").nth(1).expect(&status)).unwrap();
    let poc = trunks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["trunk"] == "POC")
        .unwrap()
        .clone();
    assert_eq!(poc["cps"], 2.0, "{poc}");
    assert!(poc["queued"].as_u64().unwrap() >= 3, "{poc}");
    watch.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6, "every call was dialled");
    // Paced 515 ms apart (the exact bound is the unit tests'; this poll
    // sees each dial within a few ms): no burst, six calls over 2.5 s.
    for w in seen.windows(2) {
        let gap = w[1].1 - w[0].1;
        assert!(
            gap >= Duration::from_millis(400),
            "two dials {gap:?} apart at cps 2"
        );
    }
    let span = seen[5].1 - seen[0].1;
    assert!(
        span >= Duration::from_millis(2400),
        "six dials over {span:?}"
    );
    for c in &calls {
        assert_eq!(
            ended(&engine, *c, Duration::from_secs(10)).outcome,
            Some("completed")
        );
    }
    // The agents who waited heard ringback, stopped before their dial.
    let rings: Vec<SimAction> = sim
        .actions()
        .into_iter()
        .filter(|a| matches!(a, SimAction::Ringback(..)))
        .collect();
    assert!(
        rings
            .iter()
            .any(|a| matches!(a, SimAction::Ringback(_, Some(_)))),
        "{rings:?}"
    );
    assert!(
        rings
            .iter()
            .any(|a| matches!(a, SimAction::Ringback(_, None))),
        "{rings:?}"
    );
    engine.shutdown(Duration::from_secs(5));
    sim.stop();
}

#[test]
fn lcr_passes_over_a_trunk_at_max_channels_with_an_attempt_that_says_so() {
    // BACKUP (5) is the cheaper: LCR tries it first. Another application's
    // call already fills it.
    let (engine, sim, log) = world(|c| trunk(c, 5).max_channels = Some(1));
    sim.set_foreign_channels("backup", 1);
    let call = place(&engine, "1001", json!({"to_phone": "0987654321"}));
    let c = ended(&engine, call, Duration::from_secs(5));
    assert_eq!(c.outcome, Some("completed"));
    assert_eq!(c.attempts.len(), 2, "{:?}", c.attempts);
    assert_eq!(c.attempts[0].trunk.as_ref().unwrap().1, "BACKUP");
    assert_eq!(c.attempts[0].result.as_deref(), Some("TRUNK_MAX_CHANNELS"));
    assert_eq!(c.attempts[1].trunk.as_ref().unwrap().1, "POC");
    assert_eq!(c.attempts[1].result.as_deref(), Some("answered"));
    let failed: Vec<_> = log
        .all()
        .into_iter()
        .filter(|e| e.call_uuid == call && e.event_type == "pbx.call.attempt_failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].data["hangup_cause"], "TRUNK_MAX_CHANNELS");
    assert_eq!(failed[0].data["will_retry"], true);
    // Nothing was dialled on BACKUP.
    let on_backup = sim.actions().into_iter().any(
        |a| matches!(a, SimAction::DialCustomer(l) if l.trunk.as_ref().is_some_and(|t| t.0 == 5)),
    );
    assert!(!on_backup);
    assert!(engine
        .trunk_refusals()
        .contains(&("BACKUP".to_string(), "max_channels", 1)));
    // Both full: the call ends saying so.
    let (engine2, sim2, _) = world(|c| {
        trunk(c, 5).max_channels = Some(1);
        trunk(c, 4).max_channels = Some(2);
    });
    sim2.set_foreign_channels("backup", 1);
    sim2.set_foreign_channels("poc", 2);
    let call = place(&engine2, "1001", json!({"to_phone": "0987654321"}));
    let c = ended(&engine2, call, Duration::from_secs(5));
    assert_eq!(c.outcome, Some("trunks_at_limit"));
    assert_eq!(c.attempts.len(), 2);
    for e in [&engine, &engine2] {
        e.shutdown(Duration::from_secs(5));
    }
    sim.stop();
    sim2.stop();
}

#[test]
fn a_forced_trunk_that_stays_full_ends_the_call_at_its_queue_timeout() {
    let (engine, sim, _) = world(|c| {
        trunk(c, 4).max_channels = Some(1);
        c.trunk_queue_timeout = Duration::from_secs(1);
    });
    sim.set_foreign_channels("poc", 1);
    let t0 = Instant::now();
    let call = place(
        &engine,
        "1001",
        json!({"to_phone": "0987654321", "trunk_name": "POC"}),
    );
    let c = ended(&engine, call, Duration::from_secs(5));
    let took = t0.elapsed();
    assert_eq!(c.outcome, Some("trunk_queue_timeout"));
    assert!(took >= Duration::from_secs(1), "gave up after {took:?}");
    assert_eq!(c.attempts[0].result.as_deref(), Some("TRUNK_MAX_CHANNELS"));
    let actions = sim.actions();
    assert!(!actions
        .iter()
        .any(|a| matches!(a, SimAction::DialCustomer(_))));
    assert!(actions.contains(&SimAction::Ringback(
        c.a.uuid,
        Some(engine.config().ringback.clone().unwrap())
    )));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, SimAction::Hangup(u, _) if *u == c.a.uuid)),
        "the agent is hung up"
    );
    // The channel frees up: the next call goes through at once.
    sim.set_foreign_channels("poc", 0);
    let call = place(
        &engine,
        "1002",
        json!({"to_phone": "0987654321", "trunk_name": "POC"}),
    );
    assert_eq!(
        ended(&engine, call, Duration::from_secs(5)).outcome,
        Some("completed")
    );
    engine.shutdown(Duration::from_secs(5));
    sim.stop();
}

/// A host whose config file says `cps="0"` on POC.
struct BadCps;

impl CommandHost for BadCps {
    fn load_config(&self) -> Result<Config, ConfigError> {
        let xml = include_str!("../conf/autoload_configs/zorio_c2c.conf.xml").replace(
            r#"name="POC" gateway="poc""#,
            r#"name="POC" gateway="poc" cps="0""#,
        );
        Config::from_xml(&xml)
    }
}

#[test]
fn c2c_reload_refuses_a_bad_trunk_limit_whole_and_keeps_the_old_config() {
    let (engine, sim, _) = world(|c| trunk(c, 4).max_channels = Some(7));
    let before = engine.config();
    let out = command::execute(&engine, &BadCps, "reload");
    assert_eq!(
        out.trim(),
        "-ERR config_invalid trunks/trunk[1]@cps: trunk \"POC\": must be calls per second above 0 (at most 10000) (previous config kept)"
    );
    assert_eq!(*engine.config(), *before, "the old config stays");
    assert_eq!(engine.config().trunks[0].max_channels, Some(7));
    engine.shutdown(Duration::from_secs(5));
    sim.stop();
}

#[test]
fn trunk_status_counts_each_gateways_channels_in_one_look_at_the_switch() {
    // Every trunk here is a gateway: one walk of the switch's channels serves them all.
    let (engine, sim, _) = world(|c| trunk(c, 5).max_channels = Some(3));
    sim.set_foreign_channels("backup", 1);
    sim.set_foreign_channels("poc", 2);
    let channels = |engine: &Engine| -> Vec<(String, u32)> {
        let mut v: Vec<_> = engine
            .trunk_status()
            .into_iter()
            .map(|t| (t.name, t.channels))
            .collect();
        v.sort();
        v
    };
    // Each gateway's own count; OLD has none.
    let expected = |poc: u32| {
        vec![
            ("BACKUP".to_string(), 1),
            ("OLD".to_string(), 0),
            ("POC".to_string(), poc),
        ]
    };
    assert_eq!(channels(&engine), expected(2));
    sim.set_foreign_channels("poc", 0);
    assert_eq!(channels(&engine), expected(0));
    engine.shutdown(Duration::from_secs(5));
    sim.stop();
}
