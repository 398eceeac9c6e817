//! Webhook delivery over real loopback HTTP: order per call, signatures,
//! retries (5xx, receiver down, 429 + Retry-After, timeouts), isolation
//! between calls. Real threads, real sockets, real temp spools.

mod scratch;
mod webhooks_common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mod_zorio_c2c::app::App;
use mod_zorio_c2c::core::config::Config;
use mod_zorio_c2c::core::events::{self, CallEvent, EventLog, EventSink};
use mod_zorio_c2c::core::request::ClickToCallRequest;
use mod_zorio_c2c::core::webhooks::WebhookService;
use mod_zorio_c2c::sim::{SimOptions, SimSwitch};
use mod_zorio_c2c::switch::leg_channel;
use serde_json::{json, Value};
use uuid::Uuid;
use webhooks_common::*;

fn seqs(bodies: &[Value]) -> Vec<u64> {
    bodies
        .iter()
        .map(|b| b["data"]["seq"].as_u64().unwrap_or(0))
        .collect()
}

/// Events of one call with `seq` in their data too (for the receiver to read).
fn call_events(call: Uuid, n: u32) -> Vec<CallEvent> {
    (1..=n)
        .map(|seq| {
            CallEvent::new(
                events::ANSWERED,
                call,
                seq,
                Some("crm".into()),
                json!({"call_uuid": call.to_string(), "seq": seq}),
            )
        })
        .collect()
}

fn status(s: &WebhookService, field: &str) -> u64 {
    s.status_json()[field].as_u64().unwrap_or(u64::MAX)
}

#[test]
fn a_real_call_is_delivered_in_order_and_signed_verifiably() {
    let rx = Receiver::ok();
    let spool = temp_spool("call");
    let mut config =
        Config::from_xml(include_str!("../conf/autoload_configs/zorio_c2c.conf.xml")).unwrap();
    config.webhooks = settings(Some(rx.url()), &spool);
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    // Rotation: two secrets at once, both signatures sent.
    config.webhooks.secrets = vec![SECRET_2.to_string(), SECRET.to_string()];
    config.a_leg_timeout = Duration::from_millis(300);
    let o = SimOptions::demo_fast(Duration::from_millis(40), Duration::from_millis(80));
    let (tx, legs) = leg_channel();
    let sim = SimSwitch::new(o, tx);
    let log = Arc::new(EventLog::default());
    let app = App::start(config, sim.clone(), legs, vec![log.clone()]).unwrap();

    let req = ClickToCallRequest::from_value(
        &json!({"from_extension": "1001", "to_phone": "0987654321"}),
    )
    .unwrap();
    let call = Uuid::parse_str(&app.engine.place(&req, Some("crm")).unwrap().call_uuid).unwrap();
    let bodies = rx.wait_delivered(7, Duration::from_secs(10));

    let types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, events::COMPLETED_CALL);
    assert_eq!(bodies[1]["data"]["leg"], "A");
    assert_eq!(bodies[3]["data"]["leg"], "B");
    assert!(bodies
        .iter()
        .all(|b| b["data"]["call_uuid"] == call.to_string()));
    // Same ids as the engine's own events, in the engine's order.
    let logged: Vec<String> = log.all().iter().map(|e| e.id.clone()).collect();
    let sent: Vec<String> = bodies
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent, logged);
    for r in rx.requests() {
        assert_eq!(r.header("webhook-id"), r.id());
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.header("webhook-signature").split(' ').count(), 2);
    }
    verify_with_python(&rx.requests());

    let late = app.stop(Duration::from_secs(3));
    assert!(late.is_empty(), "late: {late:?}");
    sim.stop();
    assert_eq!(status(&app.webhooks, "delivered"), 7);
    assert_eq!(status(&app.webhooks, "spool_size"), 0);
    assert_eq!(app.webhooks.status_json()["running"], false);
}

/// Checks every signature with Python's hmac/hashlib/base64: an independent verifier.
fn verify_with_python(reqs: &[Req]) {
    let dir = temp_spool("py");
    let cases: Vec<Value> = reqs
        .iter()
        .map(|r| {
            json!({
                "id": r.header("webhook-id"),
                "ts": r.header("webhook-timestamp"),
                "sig": r.header("webhook-signature"),
                "body_hex": r.body.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            })
        })
        .collect();
    let data = dir.join("cases.json");
    std::fs::write(&data, serde_json::to_vec(&cases).unwrap()).unwrap();
    let script = r#"
import base64, hashlib, hmac, json, sys, time
secrets = [base64.b64decode(s[len("whsec_"):]) for s in sys.argv[2:]]
cases = json.load(open(sys.argv[1]))
for c in cases:
    body = bytes.fromhex(c["body_hex"])
    assert abs(time.time() - int(c["ts"])) < 300, "stale timestamp"
    signed = c["id"].encode() + b"." + c["ts"].encode() + b"." + body
    sigs = [s.split(",", 1)[1] for s in c["sig"].split(" ") if s.startswith("v1,")]
    for key in secrets:
        want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        assert any(hmac.compare_digest(want, s) for s in sigs), ("bad signature", c["id"])
    assert json.loads(body)["id"] == c["id"]
print("verified", len(cases))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&data)
        .arg(SECRET)
        .arg(SECRET_2)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python verifier failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("verified {}", reqs.len()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn server_errors_are_retried_and_later_events_wait_their_turn() {
    let rx = Receiver::start(0, |_, n| Reply::Status(if n < 3 { 503 } else { 200 }));
    let spool = temp_spool("5xx");
    let s = WebhookService::start(&settings(Some(rx.url()), &spool), &[]).unwrap();
    let call = Uuid::new_v4();
    for e in call_events(call, 3) {
        s.emit(&e);
    }
    let bodies = rx.wait_delivered(3, Duration::from_secs(5));
    assert_eq!(seqs(&bodies), [1, 2, 3]);
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 6);
    // The first event was retried three times before anything else was sent.
    let first_id = reqs[0].id();
    assert!(reqs[..4].iter().all(|r| r.id() == first_id));
    assert_eq!(reqs[3].status, Some(200));
    // Keep-alive: six requests, one sender at a time, over one connection
    // (two at most, one per sender thread).
    assert!(rx.connections() <= 2, "{} connections", rx.connections());
    assert!(s.stop(Duration::from_secs(2)).is_empty());
    assert_eq!(status(&s, "failed_attempts"), 3);
    assert_eq!(status(&s, "delivered"), 3);
    assert_eq!(status(&s, "spool_size"), 0);
}

#[test]
fn a_receiver_that_is_down_gets_everything_once_it_is_up() {
    let port = free_port();
    let spool = temp_spool("down");
    let url = format!("http://127.0.0.1:{port}/hooks");
    let s = WebhookService::start(&settings(Some(url), &spool), &[]).unwrap();
    let call = Uuid::new_v4();
    for e in call_events(call, 4) {
        s.emit(&e);
    }
    wait_until(Duration::from_secs(3), "failed attempts", || {
        status(&s, "failed_attempts") >= 3
    });
    assert_eq!(status(&s, "delivered"), 0);
    assert_eq!(status(&s, "spool_size"), 4);
    assert!(s.status_json()["last_error"].is_string());
    let rx = Receiver::start(port, |_, _| Reply::Status(204));
    let bodies = rx.wait_delivered(4, Duration::from_secs(5));
    assert_eq!(seqs(&bodies), [1, 2, 3, 4]);
    wait_until(Duration::from_secs(2), "empty spool", || {
        status(&s, "spool_size") == 0
    });
    assert!(s.stop(Duration::from_secs(2)).is_empty());
}

#[test]
fn retry_after_from_a_429_is_honoured() {
    let rx = Receiver::start(0, |_, n| {
        if n == 0 {
            Reply::StatusWith(429, vec![("retry-after", "1".to_string())])
        } else {
            Reply::Status(200)
        }
    });
    let spool = temp_spool("429");
    let s = WebhookService::start(&settings(Some(rx.url()), &spool), &[]).unwrap();
    for e in call_events(Uuid::new_v4(), 1) {
        s.emit(&e);
    }
    rx.wait_delivered(1, Duration::from_secs(5));
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].status, Some(429));
    let gap = reqs[1].at - reqs[0].at;
    // The schedule alone says ~30 ms; the receiver asked for a second.
    assert!(gap >= Duration::from_millis(990), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(3), "retried after {gap:?}");
    assert_eq!(reqs[0].id(), reqs[1].id());
    assert!(s.stop(Duration::from_secs(2)).is_empty());
}

#[test]
fn a_receiver_that_times_out_is_retried() {
    let rx = Receiver::start(0, |_, n| {
        if n == 0 {
            Reply::Stall(Duration::from_secs(3))
        } else {
            Reply::Status(200)
        }
    });
    let spool = temp_spool("timeout");
    let mut cfg = settings(Some(rx.url()), &spool);
    cfg.response_timeout = Duration::from_millis(300);
    let s = WebhookService::start(&cfg, &[]).unwrap();
    let started = Instant::now();
    for e in call_events(Uuid::new_v4(), 2) {
        s.emit(&e);
    }
    let bodies = rx.wait_delivered(2, Duration::from_secs(5));
    assert_eq!(seqs(&bodies), [1, 2]);
    let reqs = rx.requests();
    assert_eq!(reqs[0].status, None);
    assert_eq!(reqs[0].id(), reqs[1].id());
    // Given up after the response timeout, not after the receiver's 3 s.
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(status(&s, "failed_attempts") >= 1);
    assert!(s.stop(Duration::from_secs(2)).is_empty());
}

#[test]
fn a_failing_call_never_holds_up_another_even_with_one_worker() {
    let failing = Uuid::new_v4();
    let f = failing.to_string();
    let rx = Receiver::start(0, move |r, _| {
        Reply::Status(if r.json()["data"]["call_uuid"] == f.as_str() {
            500
        } else {
            200
        })
    });
    let spool = temp_spool("isolation");
    let mut cfg = settings(Some(rx.url()), &spool);
    cfg.workers = 1;
    cfg.retry_schedule = vec![Duration::from_millis(100)];
    let s = WebhookService::start(&cfg, &[]).unwrap();
    let ok = Uuid::new_v4();
    let (bad_events, ok_events) = (call_events(failing, 3), call_events(ok, 5));
    for (i, ok_event) in ok_events.iter().enumerate() {
        if let Some(e) = bad_events.get(i) {
            s.emit(e);
        }
        s.emit(ok_event);
    }
    let bodies = rx.wait_delivered(5, Duration::from_secs(3));
    assert_eq!(seqs(&bodies), [1, 2, 3, 4, 5]);
    assert!(bodies
        .iter()
        .all(|b| b["data"]["call_uuid"] == ok.to_string()));
    std::thread::sleep(Duration::from_millis(300));
    let bad: Vec<Req> = rx
        .requests()
        .into_iter()
        .filter(|r| r.json()["data"]["call_uuid"] == failing.to_string())
        .collect();
    assert!(bad.len() >= 2, "the failing call is retried");
    // Its seq 2 and 3 wait behind seq 1.
    assert!(bad.iter().all(|r| r.json()["data"]["seq"] == 1));
    assert_eq!(status(&s, "queue_depth"), 3);
    assert_eq!(status(&s, "spool_size"), 3);
    assert!(s.stop(Duration::from_secs(1)).is_empty());
}

#[test]
fn per_token_destinations_win_over_the_default() {
    use mod_zorio_c2c::core::config::ApiToken;
    let default_rx = Receiver::ok();
    let token_rx = Receiver::ok();
    let spool = temp_spool("tokens");
    let tokens = vec![ApiToken {
        name: "crm-2".into(),
        secret: "another-long-token".into(),
        webhook_url: Some(token_rx.url()),
        webhook_secrets: vec![SECRET_2.into()],
    }];
    let s = WebhookService::start(&settings(Some(default_rx.url()), &spool), &tokens).unwrap();
    let mut e = call_events(Uuid::new_v4(), 1).remove(0);
    s.emit(&e);
    e.id = format!("{}x", e.id);
    e.token = Some("crm-2".into());
    s.emit(&e);
    default_rx.wait_delivered(1, Duration::from_secs(3));
    token_rx.wait_delivered(1, Duration::from_secs(3));
    let r = &token_rx.requests()[0];
    assert_eq!(r.id(), e.id);
    verify_token_signature(r);
    assert!(s.stop(Duration::from_secs(1)).is_empty());
}

fn verify_token_signature(r: &Req) {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let key = base64::engine::general_purpose::STANDARD
        .decode(&SECRET_2["whsec_".len()..])
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.",
            r.header("webhook-id"),
            r.header("webhook-timestamp")
        )
        .as_bytes(),
    );
    mac.update(&r.body);
    let want = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(r.header("webhook-signature"), want);
}

#[test]
fn stop_is_idempotent_and_interrupts_requests_in_flight() {
    let stalled = Arc::new(AtomicBool::new(false));
    let st = stalled.clone();
    let rx = Receiver::start(0, move |_, _| {
        st.store(true, Ordering::SeqCst);
        Reply::Stall(Duration::from_secs(10))
    });
    let spool = temp_spool("interrupt");
    let mut cfg = settings(Some(rx.url()), &spool);
    cfg.response_timeout = Duration::from_secs(30);
    for round in 0..3 {
        stalled.store(false, Ordering::SeqCst);
        let s = WebhookService::start(&cfg, &[]).unwrap();
        if round == 0 {
            s.emit(&call_events(Uuid::new_v4(), 1)[0]);
        }
        wait_until(Duration::from_secs(3), "request in flight", || {
            stalled.load(Ordering::SeqCst)
        });
        let t = Instant::now();
        let late = s.stop(Duration::from_millis(400));
        assert!(late.is_empty(), "round {round}: late {late:?}");
        assert!(
            t.elapsed() < Duration::from_millis(600),
            "{:?}",
            t.elapsed()
        );
        assert!(s.stop(Duration::from_millis(100)).is_empty());
        // Cut short, not failed: the event is still spooled for the next start.
        assert_eq!(status(&s, "spool_size"), 1);
        assert_eq!(status(&s, "failed_attempts"), 0);
    }
}

#[test]
fn a_config_reload_moves_deliveries_to_the_new_destination() {
    let (old, new) = (Receiver::ok(), Receiver::ok());
    let spool = temp_spool("redirect");
    let mut config =
        Config::from_xml(include_str!("../conf/autoload_configs/zorio_c2c.conf.xml")).unwrap();
    config.webhooks = settings(Some(old.url()), &spool);
    config.http.enabled = false;
    let o = SimOptions::demo_fast(Duration::from_millis(20), Duration::from_millis(30));
    let (tx, legs) = leg_channel();
    let sim = SimSwitch::new(o, tx);
    let app = App::start(config.clone(), sim.clone(), legs, vec![]).unwrap();
    let req = ClickToCallRequest::from_value(
        &json!({"from_extension": "1001", "to_phone": "0987654321"}),
    )
    .unwrap();
    app.engine.place(&req, Some("crm")).unwrap();
    old.wait_delivered(7, Duration::from_secs(5));

    // A bad secret is refused whole: the old destination stays.
    let mut bad = config.clone();
    bad.webhooks.url = Some(new.url());
    bad.webhooks.secrets = vec!["whsec_!!".into()];
    assert!(app.apply_config(bad).is_err());
    config.webhooks.url = Some(new.url());
    app.apply_config(config).unwrap();
    app.engine.place(&req, Some("crm")).unwrap();
    new.wait_delivered(7, Duration::from_secs(5));
    assert_eq!(old.delivered().len(), 7);
    assert!(app.stop(Duration::from_secs(2)).is_empty());
    sim.stop();
}
