//! What survives: the spool across a restart, dead letters and their
//! replay, a full spool refusing loudly, events with nowhere to go.

mod scratch;
mod webhooks_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mod_zorio_c2c::core::events::{self, CallEvent, EventSink};
use mod_zorio_c2c::core::webhooks::cli::cli;
use mod_zorio_c2c::core::webhooks::{LogLevel, WebhookService};
use serde_json::{json, Value};
use uuid::Uuid;
use webhooks_common::*;

fn event(call: Uuid, seq: u32) -> CallEvent {
    CallEvent::new(
        events::HANGUP,
        call,
        seq,
        None,
        json!({"call_uuid": call.to_string(), "seq": seq}),
    )
}

fn status(s: &WebhookService, field: &str) -> u64 {
    s.status_json()[field].as_u64().unwrap_or(u64::MAX)
}

#[test]
fn a_restart_delivers_everything_spooled_in_per_call_order() {
    let spool = temp_spool("restart");
    let nowhere = format!("http://127.0.0.1:{}/hooks", free_port());
    let mut cfg = settings(Some(nowhere), &spool);
    cfg.retry_schedule = vec![Duration::from_secs(60)];
    cfg.give_up_after = Duration::from_secs(600);
    let calls: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let first = WebhookService::start(&cfg, &[]).unwrap();
    for seq in 1..=4 {
        for c in &calls {
            first.emit(&event(*c, seq));
        }
    }
    assert!(first.stop(Duration::from_secs(1)).is_empty());
    assert_eq!(status(&first, "delivered"), 0);
    // Emitted after stop: still spooled, for the next start.
    first.emit(&event(calls[0], 5));
    drop(first);
    assert_eq!(spooled(&spool), 13);

    let rx = Receiver::ok();
    cfg.url = Some(rx.url());
    let second = WebhookService::start(&cfg, &[]).unwrap();
    let bodies = rx.wait_delivered(13, std::time::Duration::from_secs(5));
    for (i, c) in calls.iter().enumerate() {
        let seqs: Vec<u64> = bodies
            .iter()
            .filter(|b| b["data"]["call_uuid"] == c.to_string())
            .map(|b| b["data"]["seq"].as_u64().unwrap())
            .collect();
        let want: Vec<u64> = if i == 0 {
            (1..=5).collect()
        } else {
            (1..=4).collect()
        };
        assert_eq!(seqs, want, "call {i}");
    }
    let mut ids: Vec<&str> = bodies.iter().map(|b| b["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 13);
    wait_until(Duration::from_secs(2), "spool emptied", || {
        spooled(&spool) == 0
    });
    assert!(second.stop(Duration::from_secs(1)).is_empty());
}

#[test]
fn given_up_events_become_dead_letters_and_can_be_replayed() {
    let up = Arc::new(AtomicBool::new(false));
    let u = up.clone();
    let rx = Receiver::start(0, move |_, _| {
        Reply::Status(if u.load(Ordering::SeqCst) { 200 } else { 500 })
    });
    let spool = temp_spool("dead");
    let mut cfg = settings(Some(rx.url()), &spool);
    cfg.retry_schedule = vec![Duration::from_millis(40)];
    cfg.give_up_after = Duration::from_millis(300);
    let (log, lines) = captured_log();
    let s = WebhookService::start_with_log(&cfg, &[], log).unwrap();
    let call = Uuid::new_v4();
    let (e1, e2) = (event(call, 1), event(call, 2));
    s.emit(&e1);
    s.emit(&e2);
    wait_until(Duration::from_secs(3), "two dead letters", || {
        status(&s, "dead_letters") == 2 && status(&s, "spool_size") == 0
    });
    assert_eq!(status(&s, "spool_size"), 0);
    assert_eq!(status(&s, "dead_lettered"), 2);
    assert_eq!(rx.delivered().len(), 0);
    let dead = s.dead_letters();
    assert_eq!(dead.len(), 2);
    assert!(
        dead[0].attempts >= 3,
        "retried before giving up: {}",
        dead[0].attempts
    );
    assert_eq!(dead[0].last_error, "HTTP 500");
    assert!(lines
        .lock()
        .unwrap()
        .iter()
        .any(|(l, u, m)| *l == LogLevel::Warning
            && m.contains("gave up")
            && m.contains(&e1.id)
            && *u == Some(e1.log_uuid())));

    let listing = cli(&s, "dead");
    assert!(listing.starts_with("+OK 2 dead letters\n"), "{listing}");
    assert!(listing.contains(&e1.id) && listing.contains(&e2.id));
    assert!(cli(&s, "replay evt_nope").starts_with("-ERR not_found"));
    assert!(cli(&s, "replay ../../etc/passwd").starts_with("-ERR not_found"));
    assert!(cli(&s, "bogus").starts_with("-ERR"));

    // A replay gets a fresh give-up horizon: retried again, then dead again.
    let before = rx.requests().len();
    assert!(cli(&s, &format!("replay {}", e1.id)).starts_with("+OK"));
    wait_until(Duration::from_secs(1), "replay under way", || {
        status(&s, "dead_letters") == 1
    });
    wait_until(Duration::from_secs(3), "dead again", || {
        status(&s, "dead_letters") == 2 && status(&s, "spool_size") == 0
    });
    let again = rx.requests()[before..]
        .iter()
        .filter(|r| r.id() == e1.id)
        .count();
    assert!(again >= 3, "only {again} attempts after the replay");

    up.store(true, Ordering::SeqCst);
    assert_eq!(
        cli(&s, &format!("replay {}", e1.id)),
        format!("+OK replaying {}\n", e1.id)
    );
    let bodies = rx.wait_delivered(1, Duration::from_secs(3));
    assert_eq!(bodies[0]["id"], e1.id.as_str());
    assert_eq!(cli(&s, "replay-all"), "+OK replaying 1 dead letters\n");
    let bodies = rx.wait_delivered(2, Duration::from_secs(3));
    assert_eq!(bodies[1]["id"], e2.id.as_str());
    assert!(s.dead_letters().is_empty());
    // The receiver has the body before the sender has read the 200 and
    // counted the delivery: wait for the count, not for the body.
    let st = || -> Value {
        serde_json::from_str(cli(&s, "status").split_once('\n').unwrap().1).unwrap()
    };
    wait_until(Duration::from_secs(3), "two deliveries counted", || {
        st()["delivered"] == 2
    });
    let st = st();
    assert_eq!(st["replayed"], 3);
    assert_eq!(st["delivered"], 2);
    assert_eq!(st["dead_letters"], 0);
    assert!(cli(&s, "").starts_with("+OK webhooks\n"));
    assert!(s.stop(Duration::from_secs(1)).is_empty());
}

#[test]
fn above_the_high_water_mark_new_calls_are_refused_and_no_event_is_dropped() {
    let spool = temp_spool("full");
    let nowhere = format!("http://127.0.0.1:{}/hooks", free_port());
    let mut cfg = settings(Some(nowhere.clone()), &spool);
    let one = mod_zorio_c2c::core::store::spool_bytes(
        &mod_zorio_c2c::core::store::SpoolRecord::from_event(&event(Uuid::new_v4(), 1)),
    );
    // Room for 4 events; new calls are refused from the third on.
    cfg.max_spool_bytes = 4 * one + one / 2;
    cfg.spool_high_water_percent = 50;
    cfg.retry_schedule = vec![Duration::from_secs(60)];
    cfg.give_up_after = Duration::from_secs(600);
    let (log, lines) = captured_log();
    let s = WebhookService::start_with_log(&cfg, &[], log).unwrap();
    let call = Uuid::new_v4();
    let evs: Vec<CallEvent> = (1..=6).map(|n| event(call, n)).collect();
    assert!(s.admit().is_ok());
    s.emit(&evs[0]);
    s.emit(&evs[1]);
    assert!(s.admit().is_ok());
    s.emit(&evs[2]);
    let refused = s.admit().unwrap_err();
    assert_eq!((refused.status, refused.code), (503, "spool_full"));
    // The accepted call goes on: every event is kept, past the bound too.
    for e in &evs[3..] {
        s.emit(e);
    }
    assert_eq!(status(&s, "spool_size"), 6);
    assert_eq!(spooled(&spool), 6);
    assert_eq!(status(&s, "refused_calls_spool_full"), 1);
    assert_eq!(status(&s, "spool_over_capacity"), 2);
    assert_eq!(s.status_json()["accepting_calls"], false);
    let errors: Vec<(Option<String>, String)> = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|(l, _, _)| *l == LogLevel::Error)
        .map(|(_, u, m)| (u.clone(), m.clone()))
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].1.contains("NEW CALLS ARE REFUSED"), "{errors:?}");
    assert!(errors[1].1.contains("kept anyway") && errors[1].1.contains(&evs[4].id));
    // Tagged with the call's channel, so FreeSWITCH's per-call log filter shows it.
    assert_eq!(errors[1].0, Some(evs[4].log_uuid()));
    assert!(cli(&s, "status").contains("\"accepting_calls\": false"));
    let gauges = s.gauges();
    assert!(gauges.contains(&("c2c_webhook_spool_full".to_string(), 1.0)));
    assert!(s.stop(Duration::from_secs(1)).is_empty());
    drop(s);

    // The CRM is back: the backlog drains and new calls are welcome again.
    let rx = Receiver::ok();
    cfg.url = Some(rx.url());
    let (log, lines) = captured_log();
    let s = WebhookService::start_with_log(&cfg, &[], log).unwrap();
    assert!(s.admit().is_err(), "still full right after the restart");
    rx.wait_delivered(6, Duration::from_secs(5));
    wait_until(Duration::from_secs(2), "accepting again", || {
        s.admit().is_ok()
    });
    assert!(lines
        .lock()
        .unwrap()
        .iter()
        .any(|(l, _, m)| *l == LogLevel::Info && m.contains("new calls are accepted again")));
    assert!(s.stop(Duration::from_secs(1)).is_empty());
}

#[test]
fn events_with_no_destination_are_counted_and_not_spooled() {
    let spool = temp_spool("nodest");
    let s = WebhookService::start(&settings(None, &spool), &[]).unwrap();
    assert!(!s.has_destination());
    s.emit(&event(Uuid::new_v4(), 1));
    s.emit(&event(Uuid::new_v4(), 1));
    assert_eq!(status(&s, "no_destination"), 2);
    assert_eq!(status(&s, "spool_size"), 0);
    assert_eq!(spooled(&spool), 0);
    assert!(s.stop(Duration::from_secs(1)).is_empty());
}

/// A real crash: this test runs itself as a child process that emits events
/// and aborts; every event whose `emit` returned must be delivered afterwards.
#[test]
fn a_crash_loses_nothing_that_emit_returned() {
    const CHILD: &str = "C2C_WEBHOOKS_CRASH_CHILD_SPOOL";
    if let Ok(dir) = std::env::var(CHILD) {
        let mut cfg = settings(
            Some(format!("http://127.0.0.1:{}/hooks", free_port())),
            std::path::Path::new(&dir),
        );
        cfg.retry_schedule = vec![Duration::from_secs(60)];
        cfg.give_up_after = Duration::from_secs(600);
        let s = WebhookService::start(&cfg, &[]).unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for seq in 1..=5 {
            for c in [a, b] {
                let e = event(c, seq);
                s.emit(&e);
                println!("emitted {} {} {}", c, seq, e.id);
            }
        }
        std::process::abort();
    }
    let spool = temp_spool("crash");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "a_crash_loses_nothing_that_emit_returned",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &spool)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child must crash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let emitted: Vec<Vec<String>> = stdout
        .lines()
        .filter_map(|l| l.find("emitted ").map(|i| &l[i + 8..]))
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect();
    assert_eq!(emitted.len(), 10, "child output: {stdout}");

    let rx = Receiver::ok();
    let s = WebhookService::start(&settings(Some(rx.url()), &spool), &[]).unwrap();
    let bodies = rx.wait_delivered(10, Duration::from_secs(5));
    for call in [&emitted[0][0], &emitted[1][0]] {
        let want: Vec<&str> = emitted
            .iter()
            .filter(|e| &e[0] == call)
            .map(|e| e[2].as_str())
            .collect();
        let got: Vec<&str> = bodies
            .iter()
            .filter(|b| b["data"]["call_uuid"] == call.as_str())
            .map(|b| b["id"].as_str().unwrap())
            .collect();
        assert_eq!(got, want, "call {call} in seq order");
    }
    assert!(s.stop(Duration::from_secs(1)).is_empty());
}
