//! `agent-busy reject`: an agent already on a call (ours, or any call of the
//! switch) is not rung again; the request gets 409 `agent_busy` (fs_cli:
//! `-ERR agent_busy`). `ring` (the default) keeps today's behaviour.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use mod_zorio_c2c::core::command::{self, CommandHost};
use mod_zorio_c2c::core::config::{Config, ConfigError};
use mod_zorio_c2c::core::engine::Engine;
use mod_zorio_c2c::core::events::EventLog;
use mod_zorio_c2c::core::request::ClickToCallRequest;
use mod_zorio_c2c::sim::{SimAction, SimOptions, SimSwitch};
use mod_zorio_c2c::switch::leg_channel;
use serde_json::json;

fn world(reject: bool) -> (Arc<Engine>, Arc<SimSwitch>) {
    let mut config =
        Config::from_xml(include_str!("../conf/autoload_configs/zorio_c2c.conf.xml")).unwrap();
    config.reject_busy_agent = reject;
    // Calls stay up long enough to be "already on a call".
    let o = SimOptions::demo_fast(Duration::from_millis(20), Duration::from_secs(5));
    let (tx, rx) = leg_channel();
    let sim = SimSwitch::new(o, tx);
    let engine = Engine::new(config, sim.clone(), rx, Arc::new(EventLog::default()));
    (engine, sim)
}

fn place(engine: &Arc<Engine>, ext: &str) -> Result<String, (u16, String)> {
    let req =
        ClickToCallRequest::from_value(&json!({"from_extension": ext, "to_phone": "0987654321"}))
            .unwrap();
    engine
        .place(&req, Some("crm"))
        .map(|a| a.call_uuid)
        .map_err(|e| (e.status, e.code.to_string()))
}

struct NoHost;

impl CommandHost for NoHost {
    fn load_config(&self) -> Result<Config, ConfigError> {
        unreachable!("not reloaded here")
    }
}

#[test]
fn reject_refuses_an_agent_already_on_a_call_and_dials_nobody() {
    let (engine, sim) = world(true);
    place(&engine, "1001").expect("first call");
    let agent_legs = || {
        sim.actions()
            .iter()
            .filter(|a| matches!(a, SimAction::OriginateAgent(l) if l.extension == "1001"))
            .count()
    };
    let until = std::time::Instant::now() + Duration::from_secs(2);
    while agent_legs() == 0 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(agent_legs(), 1, "the agent's phone rang");
    assert_eq!(place(&engine, "1001"), Err((409, "agent_busy".to_string())));
    let cli = command::execute(&engine, &NoHost, "1001 0987654321");
    assert!(cli.starts_with("-ERR agent_busy "), "{cli}");
    // Nothing was dialled for the refused requests.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(agent_legs(), 1);
    // Another agent is free.
    place(&engine, "1002").expect("another agent");
    // A call the engine did not place (e.g. the agent dialled out) counts too.
    sim.set_in_use("1004", true);
    assert_eq!(place(&engine, "1004"), Err((409, "agent_busy".into())));
    sim.set_in_use("1004", false);
    place(&engine, "1004").expect("free again");
    engine.shutdown(Duration::from_secs(5));
    sim.stop();
}

#[test]
fn requests_racing_for_one_agent_place_one_call() {
    let (engine, sim) = world(true);
    let start = Arc::new(Barrier::new(8));
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let (e, b) = (Arc::clone(&engine), Arc::clone(&start));
            std::thread::spawn(move || {
                b.wait();
                place(&e, "1001")
            })
        })
        .collect();
    let results: Vec<_> = tries.into_iter().map(|t| t.join().unwrap()).collect();
    let placed = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(placed, 1, "{results:?}");
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| e.0 == 409 && e.1 == "agent_busy"));
    engine.shutdown(Duration::from_secs(5));
    sim.stop();
}

#[test]
fn ring_the_default_rings_a_busy_agent_as_before() {
    let (engine, sim) = world(false);
    place(&engine, "1001").expect("first");
    sim.set_in_use("1001", true);
    place(&engine, "1001").expect("rung again");
    engine.shutdown(Duration::from_secs(5));
    sim.stop();
}
