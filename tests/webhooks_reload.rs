//! Module reload, again and again: App start/stop over the simulated switch
//! must join every webhook thread each time and leave nothing running.
//! (Its own test binary, so no other test's threads are counted.)

mod scratch;
mod webhooks_common;

use std::sync::Arc;
use std::time::Duration;

use mod_zorio_c2c::app::App;
use mod_zorio_c2c::core::config::Config;
use mod_zorio_c2c::core::events::EventLog;
use mod_zorio_c2c::core::request::ClickToCallRequest;
use mod_zorio_c2c::sim::{SimOptions, SimSwitch};
use mod_zorio_c2c::switch::leg_channel;
use serde_json::json;
use webhooks_common::*;

/// Names of this process's threads that belong to the webhook service.
fn webhook_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|it| {
            it.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                .map(|n| n.trim().to_string())
                .filter(|n| n.starts_with("c2c-webhook"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn app_reload_joins_every_webhook_thread_every_time() {
    let rx = Receiver::ok();
    let spool = temp_spool("reload");
    let mut delivered = 0;
    for round in 0..5 {
        let mut config =
            Config::from_xml(include_str!("../conf/autoload_configs/zorio_c2c.conf.xml")).unwrap();
        config.webhooks = settings(Some(rx.url()), &spool);
        config.webhooks.workers = 3;
        config.http.listen = "127.0.0.1:0".parse().unwrap();
        let o = SimOptions::demo_fast(Duration::from_millis(20), Duration::from_millis(30));
        let (tx, legs) = leg_channel();
        let sim = SimSwitch::new(o, tx);
        let app = App::start(
            config,
            sim.clone(),
            legs,
            vec![Arc::new(EventLog::default())],
        )
        .unwrap();
        if cfg!(target_os = "linux") {
            // A thread names itself once running: give it a moment.
            // Delivery threads start with work: the dispatcher alone at first.
            wait_until(Duration::from_secs(1), "the dispatcher", || {
                webhook_threads() == ["c2c-webhooks"]
            });
        }
        let req = ClickToCallRequest::from_value(
            &json!({"from_extension": "1001", "to_phone": "0987654321"}),
        )
        .unwrap();
        app.engine.place(&req, Some("crm")).unwrap();
        delivered += 7;
        rx.wait_delivered(delivered, Duration::from_secs(5));
        if cfg!(target_os = "linux") {
            let running = webhook_threads().len();
            assert!(
                (2..=4).contains(&running),
                "dispatcher + 1 to 3 senders: {running}"
            );
        }
        let status = app.webhooks_command("status");
        assert!(status.starts_with("+OK webhooks\n"), "{status}");
        let late = app.stop(Duration::from_secs(2));
        assert!(late.is_empty(), "round {round}: late {late:?}");
        sim.stop();
        if cfg!(target_os = "linux") {
            assert!(
                webhook_threads().is_empty(),
                "round {round}: {:?}",
                webhook_threads()
            );
        }
    }
    assert_eq!(rx.delivered().len(), 35);
}
