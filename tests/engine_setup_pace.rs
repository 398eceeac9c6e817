//! The setup pace on the simulated switch: while the switch says it sets
//! calls up slowly, the calls in setup are held to a window, others wait
//! their turn, and `c2c status` shows both; customers dialled while calls
//! are held back get no ringback unless `paced-ringback` is `play` (the
//! unit tests in `core::setup_pace` check the order, the cuts, the growth
//! and the lift).

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

const SAMPLE: &str = include_str!("../conf/autoload_configs/zorio_c2c.conf.xml");

fn world() -> (Arc<Engine>, Arc<SimSwitch>) {
    world_of(SAMPLE)
}

fn world_of(xml: &str) -> (Arc<Engine>, Arc<SimSwitch>) {
    let config = Config::from_xml(xml).unwrap();
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

/// Ten calls (numbered 0–9) on a prompt switch (10 ms setups: the phones'
/// own delay, which the pace learns), each rung; then 300 ms for their
/// agents to answer (20 ms after being rung) before the switch turns slow.
fn prompt_first(engine: &Arc<Engine>, sim: &Arc<SimSwitch>) -> Vec<Uuid> {
    sim.set_options(|o| o.setup_delay = Some(Duration::from_millis(10)));
    let first: Vec<Uuid> = (0..10).map(|n| place(engine, n)).collect();
    assert_eq!(rung(sim, &first, Duration::from_secs(5)).len(), 10);
    std::thread::sleep(Duration::from_millis(300));
    first
}

/// The switch now takes 2 s over each setup, and agents answer after 0.2 s.
/// Calls (numbered from `n`) come every 40 ms: each cut leaves 0.8 × the
/// calls in setup, down to the floor of 4, which lets fewer in than come.
/// Returns once the window is 4 and calls wait, with the next number.
fn slow_until_held(engine: &Arc<Engine>, sim: &Arc<SimSwitch>, mut n: usize) -> usize {
    sim.set_options(|o| {
        o.setup_delay = Some(Duration::from_secs(2));
        o.agent_answer_after = Duration::from_millis(200);
    });
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        place(engine, n);
        n += 1;
        std::thread::sleep(Duration::from_millis(40));
        let p = pace_of(engine);
        if p.as_ref()
            .is_some_and(|p| p["window"] == 4 && p["waiting"] != 0)
        {
            return n;
        }
        assert!(Instant::now() < until, "never cut to 4: {p:?}");
    }
}

/// The `ringback` each of `calls`' customers was dialled with, in dial order.
fn ringback_of(sim: &Arc<SimSwitch>, calls: &[Uuid]) -> Vec<Option<String>> {
    sim.actions()
        .into_iter()
        .filter_map(|a| match a {
            SimAction::DialCustomer(l) if calls.contains(&l.call_uuid) => Some(l.ringback),
            _ => None,
        })
        .collect()
}

/// Until each of `calls`' customers was dialled (at most 5 s).
fn dialled(sim: &Arc<SimSwitch>, calls: &[Uuid]) -> Vec<Option<String>> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let r = ringback_of(sim, calls);
        if r.len() >= calls.len() {
            return r;
        }
        assert!(
            Instant::now() < until,
            "{} of {} customers dialled",
            r.len(),
            calls.len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
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
fn a_switch_falling_behind_gets_a_window_of_calls_in_setup() {
    let (engine, sim) = world();
    let first = prompt_first(&engine, &sim);
    assert_eq!(pace_of(&engine), None, "no limit");

    let n = slow_until_held(&engine, &sim, 10);

    // Twelve at once join the line: each is rung only when a call before
    // it left setup (its agent answered, 0.2 s later), so never 5 within
    // that time.
    let third: Vec<Uuid> = (0..12).map(|k| place(&engine, n + k)).collect();
    let until = Instant::now() + Duration::from_secs(1);
    let p = loop {
        let p = pace_of(&engine).expect("limited");
        if p["waiting"].as_u64().unwrap() >= 12 {
            break p;
        }
        assert!(
            Instant::now() < until,
            "the twelve never joined the line: {p}"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(p["in_setup"].as_u64().unwrap() <= 5, "{p}");
    let seen = rung(&sim, &third, Duration::from_secs(15));
    assert_eq!(seen.len(), 12, "every call was rung");
    for i in 4..seen.len() {
        let gap = seen[i].1 - seen[i - 4].1;
        assert!(
            gap >= Duration::from_millis(150),
            "the {i}th rung {gap:?} after the {}th: 5 in setup",
            i - 4
        );
    }

    // The customers of calls dialled while the switch was prompt had the
    // ringback; those dialled while calls were held back, none
    // (`paced-ringback` `skip`, the default): at least the first eight of
    // the twelve, dialled while others still waited (the last may come
    // after the window was lifted).
    let held = dialled(&sim, &third);
    assert!(held[..8].iter().all(Option::is_none), "{held:?}");
    let prompt = dialled(&sim, &first);
    assert_eq!(prompt.len(), 10, "{prompt:?}");
    assert!(prompt.iter().all(Option::is_some), "{prompt:?}");

    engine.shutdown(Duration::from_secs(2));
}

#[test]
fn with_paced_ringback_play_calls_held_back_keep_their_ringback() {
    let xml = SAMPLE.replacen(
        r#"<param name="paced-ringback" value="skip"/>"#,
        r#"<param name="paced-ringback" value="play"/>"#,
        1,
    );
    assert_ne!(xml, SAMPLE, "the sample config lacks paced-ringback");
    let (engine, sim) = world_of(&xml);
    prompt_first(&engine, &sim);
    let n = slow_until_held(&engine, &sim, 10);
    let held: Vec<Uuid> = (0..8).map(|k| place(&engine, n + k)).collect();
    assert!(pace_of(&engine).is_some(), "calls held back");
    let rb = dialled(&sim, &held);
    let tone = engine.config().ringback.clone();
    assert!(tone.is_some());
    assert!(rb.iter().all(|r| *r == tone), "{rb:?}");
    engine.shutdown(Duration::from_secs(2));
}
