//! The setup pace on the simulated switch: while the switch says it sets
//! calls up slowly, agents are rung one by one at the pace, and `c2c status`
//! shows the pace and the line (the unit tests in `core::setup_pace` check
//! the order, the rates, the raise and the lift).

use std::sync::Arc;
use std::time::{Duration, Instant};

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

fn world() -> (Arc<Engine>, Arc<SimSwitch>) {
    let config =
        Config::from_xml(include_str!("../conf/autoload_configs/zorio_c2c.conf.xml")).unwrap();
    let o = SimOptions::demo_fast(Duration::from_millis(20), Duration::from_millis(200));
    let (tx, rx) = leg_channel();
    let sim = SimSwitch::new(o, tx);
    let engine = Engine::new(config, sim.clone(), rx, Arc::new(EventLog::default()));
    (engine, sim)
}

fn place(engine: &Arc<Engine>, n: usize) -> Uuid {
    let req = ClickToCallRequest::from_value(
        &json!({"from_extension": "1001", "to_phone": format!("098765432{n}")}),
    )
    .unwrap();
    Uuid::parse_str(&engine.place(&req, Some("crm")).expect("accepted").call_uuid).unwrap()
}

/// When each call's agent was rung, as the switch sees it (polled every 2 ms).
fn rung(sim: &Arc<SimSwitch>, calls: &[Uuid], within: Duration) -> Vec<(Uuid, Instant)> {
    let mut seen: Vec<(Uuid, Instant)> = Vec::new();
    let until = Instant::now() + within;
    while seen.len() < calls.len() && Instant::now() < until {
        for a in sim.actions() {
            if let SimAction::OriginateAgent(l) = a {
                if calls.contains(&l.call_uuid) && !seen.iter().any(|(u, _)| *u == l.call_uuid) {
                    seen.push((l.call_uuid, Instant::now()));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    seen
}

fn pace_of(engine: &Arc<Engine>) -> Option<Value> {
    let status = command::execute(engine, &NoHost, "status");
    let pace = status.split("setup pace:\n").nth(1)?;
    let pace = pace.split("trunks:\n").next().unwrap();
    Some(serde_json::from_str(pace).unwrap())
}

#[test]
fn a_switch_falling_behind_paces_the_agents_rung() {
    let (engine, sim) = world();
    // Prompt setups: nothing waits, no pace.
    let first: Vec<Uuid> = (0..4).map(|n| place(&engine, n)).collect();
    assert_eq!(rung(&sim, &first, Duration::from_secs(5)).len(), 4);
    assert_eq!(pace_of(&engine), None, "unpaced");

    // The switch now takes 2 s over each setup: the next answers cut the
    // pace to 0.8 × the rate calls started at (here at most 4 in 2 s: 2/s).
    sim.set_options(|o| o.setup_delay = Some(Duration::from_secs(2)));
    let second: Vec<Uuid> = (4..6).map(|n| place(&engine, n)).collect();
    assert_eq!(rung(&sim, &second, Duration::from_secs(5)).len(), 2);
    let until = Instant::now() + Duration::from_secs(5);
    while pace_of(&engine).is_none() {
        assert!(Instant::now() < until, "never paced");
        std::thread::sleep(Duration::from_millis(10));
    }
    let rate = pace_of(&engine).unwrap()["calls_per_second"]
        .as_f64()
        .unwrap();
    assert!((1.0..=2.4).contains(&rate), "{rate}");

    // Six more at once: rung one by one, 1/rate apart (their order is the
    // order their threads reach the line: the unit tests check that).
    let third: Vec<Uuid> = (0..6).map(|n| place(&engine, 6 + n)).collect();
    std::thread::sleep(Duration::from_millis(50));
    let waiting = pace_of(&engine).unwrap()["waiting"].as_u64().unwrap();
    assert!(waiting >= 4, "{waiting} waiting");
    let seen = rung(&sim, &third, Duration::from_secs(15));
    assert_eq!(seen.len(), 6, "every call was rung");
    let least = Duration::from_secs_f64(0.9 / 2.4);
    for w in seen.windows(2) {
        let gap = w[1].1 - w[0].1;
        assert!(gap >= least, "two agents rung {gap:?} apart");
    }

    engine.shutdown(Duration::from_secs(2));
}
