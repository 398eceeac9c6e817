//! `<caller-ids strategy>` over the engine, the simulated switch and a real
//! SQLite store: the 202's `caller_id` is the number used, the CDR says
//! which rule chose it, and `sticky` holds across a restart of the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mod_zorio_c2c::core::config::{CallerIdStrategy, Config, PoolNumber};
use mod_zorio_c2c::core::engine::Engine;
use mod_zorio_c2c::core::events::EventLog;
use mod_zorio_c2c::core::journal::StoreJournal;
use mod_zorio_c2c::core::request::ClickToCallRequest;
use mod_zorio_c2c::core::store::sqlite::SqliteOptions;
use mod_zorio_c2c::core::store::{SqliteStore, Store};
use mod_zorio_c2c::sim::{SimOptions, SimSwitch};
use mod_zorio_c2c::switch::leg_channel;
use serde_json::json;

fn config(strategy: CallerIdStrategy, pool: &[&str]) -> Config {
    let mut c =
        Config::from_xml(include_str!("../conf/autoload_configs/zorio_c2c.conf.xml")).unwrap();
    c.caller_id_strategy = strategy;
    // Every number on trunk 5 (BACKUP), the first trunk of the demo's LCR route.
    c.caller_ids = pool
        .iter()
        .map(|n| PoolNumber {
            number: n.to_string(),
            trunk_id: Some(5),
            description: None,
        })
        .collect();
    c
}

struct World {
    engine: Arc<Engine>,
    sim: Arc<SimSwitch>,
    store: Arc<SqliteStore>,
}

fn world(config: Config, dir: &Path) -> World {
    let store = SqliteStore::open_dir(dir, SqliteOptions::default()).unwrap();
    let o = SimOptions::demo_fast(Duration::from_millis(20), Duration::from_millis(20));
    let (tx, rx) = leg_channel();
    let sim = SimSwitch::new(o, tx);
    let engine = Engine::with_store(
        config,
        sim.clone(),
        rx,
        Arc::new(EventLog::default()),
        Arc::new(StoreJournal::new(store.clone())),
        Some(store.clone() as Arc<dyn Store>),
    );
    World { engine, sim, store }
}

impl World {
    /// Places a call to `to`; (the 202's caller_id, the CDR's caller_id and rule).
    fn call(&self, to: &str) -> (String, String, String) {
        let req =
            ClickToCallRequest::from_value(&json!({"from_extension": "1001", "to_phone": to}))
                .unwrap();
        let a = self.engine.place(&req, Some("crm")).unwrap();
        let uuid = uuid::Uuid::parse_str(&a.call_uuid).unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let c = self.engine.call(uuid).unwrap();
            if c.state.as_str() == "ended" {
                let s = c.status_json();
                return (
                    a.caller_id,
                    s["caller_id"].as_str().unwrap().to_string(),
                    s["caller_id_rule"].as_str().unwrap().to_string(),
                );
            }
            assert!(Instant::now() < until, "call did not end");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(self) {
        self.engine.shutdown(Duration::from_secs(5));
        self.sim.stop();
        self.store.close(Duration::from_secs(5));
    }
}

fn temp(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "c2c-callerid-{tag}-{}",
        uuid::Uuid::new_v4().simple()
    ))
}

#[test]
fn local_presence_presents_the_closest_pool_number_and_says_so() {
    let dir = temp("presence");
    let w = world(
        config(
            CallerIdStrategy::LocalPresence,
            &["0281111111", "0241111111"],
        ),
        &dir,
    );
    let (accepted, cdr, rule) = w.call("0249876543");
    assert_eq!(
        (accepted.as_str(), cdr.as_str(), rule.as_str()),
        ("0241111111", "0241111111", "local_presence")
    );
    // No pool number shares a digit: the contract's chain (1001 has no
    // outbound caller id in the simulated directory).
    let (accepted, _, rule) = w.call("1987654321");
    assert_eq!((accepted.as_str(), rule.as_str()), ("1001", "extension"));
    w.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sticky_keeps_a_customers_number_across_a_restart_of_the_store() {
    let dir = temp("sticky");
    let w = world(
        config(CallerIdStrategy::Sticky, &["0281111111", "0241111111"]),
        &dir,
    );
    let (first, _, rule) = w.call("0249876543");
    assert_eq!(
        (first.as_str(), rule.as_str()),
        ("0241111111", "local_presence")
    );
    w.stop();
    // A closer number joins the pool first; the store is opened again.
    let pool = ["0249800000", "0281111111", "0241111111"];
    let w = world(config(CallerIdStrategy::Sticky, &pool), &dir);
    let (again, cdr, rule) = w.call("0249876543");
    assert_eq!(
        (again.as_str(), cdr.as_str(), rule.as_str()),
        ("0241111111", "0241111111", "sticky")
    );
    // Another customer gets local presence, with the new number.
    let (other, _, rule) = w.call("0249811111");
    assert_eq!(
        (other.as_str(), rule.as_str()),
        ("0249800000", "local_presence")
    );
    w.stop();
    // local-presence alone would have moved the first customer.
    let w = world(config(CallerIdStrategy::LocalPresence, &pool), &dir);
    let (moved, _, _) = w.call("0249876543");
    assert_eq!(moved, "0249800000");
    w.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
