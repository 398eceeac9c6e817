//! Contract tests of the call routes over real sockets: 202 and its ten
//! fields, every error code, auth, rate limit, idempotency, status, hangup.

mod common;
mod scratch;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const MODE1: &str = r#"{"from_extension":"1001","to_phone":"0987654321"}"#;

fn wait_status(addr: std::net::SocketAddr, call: &str, want: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(addr, &format!("/api/pbx/calls/{call}"));
        assert_eq!(r.status, 200, "{}", r.text());
        let j = r.json();
        if j["data"]["status"] == want {
            return j["data"].clone();
        }
        assert!(Instant::now() < until, "never {want}: {j}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn mode1_202_has_the_ten_fields_with_their_types() {
    let t = start(|_| {});
    let r = post_call(t.addr, MODE1, &[]);
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let j = r.json();
    let d = j["data"].as_object().expect("data object");
    let mut keys: Vec<&str> = d.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "a_leg_uuid",
            "b_leg_uuid",
            "call_uuid",
            "caller_id",
            "from_extension",
            "routing_mode",
            "status",
            "to_phone",
            "trunk_id",
            "trunk_name"
        ]
    );
    for k in ["call_uuid", "a_leg_uuid", "b_leg_uuid"] {
        let u = d[k].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(u).is_ok(), "{k}={u}");
    }
    assert_ne!(d["a_leg_uuid"], d["b_leg_uuid"]);
    assert_eq!(d["from_extension"], "1001");
    assert_eq!(d["to_phone"], "0987654321");
    assert_eq!(d["caller_id"], "1001");
    assert_eq!(d["trunk_id"], Value::Null);
    assert_eq!(d["trunk_name"], Value::Null);
    assert_eq!(d["routing_mode"], "dialplan_default");
    assert_eq!(d["status"], "queued");
    let call = d["call_uuid"].as_str().unwrap();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/pbx/calls/{call}").as_str())
    );
    // The call really happens.
    let ended = wait_status(t.addr, call, "ended");
    assert_eq!(ended["outcome"], "completed");
    assert_eq!(
        t.log.types_of(uuid::Uuid::parse_str(call).unwrap())[0],
        "pbx.call.ringing"
    );
}

#[test]
fn mode2_forced_trunk_caller_id_and_header() {
    let t = start(|_| {});
    let body = json!({"from_extension": "1001", "to_phone": "0987654321",
        "caller_id": "0900000020", "trunk_id": 4, "headers": {"CRM-Lead-Id": "LEAD-42"}});
    let r = post_call(t.addr, &body.to_string(), &[]);
    assert_eq!(r.status, 202, "{}", r.text());
    let d = &r.json()["data"];
    assert_eq!(d["trunk_id"], 4);
    assert!(d["trunk_id"].is_i64());
    assert_eq!(d["trunk_name"], "POC");
    assert_eq!(d["routing_mode"], "direct_gateway");
    assert_eq!(d["caller_id"], "0900000020");
    // By name too; the extension's own outbound caller id is used.
    let body = json!({"from_extension": "1002", "to_phone": "0987654321", "trunk_name": "BACKUP"});
    let d = post_call(t.addr, &body.to_string(), &[]).json()["data"].clone();
    assert_eq!(d["trunk_id"], 5);
    assert_eq!(d["caller_id"], "0900000021");
}

#[test]
fn validation_reports_every_field_at_once() {
    let t = start(|_| {});
    let body = json!({"from_extension": "12", "to_phone": "abc", "trunk_id": "x",
        "trunk_name": "n".repeat(101), "headers": {"Bad Key": "v"}});
    let r = post_call(t.addr, &body.to_string(), &[]);
    assert_eq!(r.status, 422);
    assert_eq!(r.error_code(), "validation_failed");
    let fields: Vec<String> = r.json()["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert!(f["code"].is_string() && f["message"].is_string());
            f["field"].as_str().unwrap().to_string()
        })
        .collect();
    for f in ["from_extension", "to_phone", "trunk_id", "trunk_name"] {
        assert!(fields.iter().any(|x| x == f), "{f} missing in {fields:?}");
    }
    assert!(
        fields.iter().any(|x| x.starts_with("headers")),
        "{fields:?}"
    );
    let r = post_call(t.addr, "{}", &[]);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["fields"].as_array().unwrap().len(), 2);
}

#[test]
fn malformed_json_wrong_media_type_and_too_large() {
    let t = start(|c| c.http.max_body_bytes = 1024);
    let r = post_call(t.addr, r#"{"from_extension": "1001","#, &[]);
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "malformed_json");

    let a = auth();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/json; charset=latin1"),
    ] {
        let mut h = vec![("Authorization", a.as_str())];
        if let Some(ct) = ct {
            h.push(("Content-Type", ct));
        }
        let r = request(
            t.addr,
            "POST",
            "/api/pbx/calls/click-to-call",
            &h,
            MODE1.as_bytes(),
        );
        assert_eq!(r.status, 415, "{ct:?}");
        assert_eq!(r.error_code(), "unsupported_media_type");
    }
    let r = post_call(t.addr, MODE1, &[]);
    assert_eq!(r.status, 202);
    let r = request(
        t.addr,
        "POST",
        "/api/pbx/calls/click-to-call",
        &[
            ("Authorization", &a),
            ("Content-Type", "application/json; charset=UTF-8"),
        ],
        MODE1.as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.text());

    let big = format!(
        r#"{{"from_extension":"1001","to_phone":"0987654321","pad":"{}"}}"#,
        "x".repeat(2000)
    );
    let r = post_call(t.addr, &big, &[]);
    assert_eq!(r.status, 413);
    assert_eq!(r.error_code(), "payload_too_large");
}

#[test]
fn engine_refusals_keep_their_own_codes() {
    let t = start(|_| {});
    let cases = [
        (
            json!({"from_extension": "1999", "to_phone": "0987654321"}),
            "extension_not_found",
        ),
        (
            json!({"from_extension": "1003", "to_phone": "0987654321"}),
            "extension_inactive",
        ),
        (
            json!({"from_extension": "1001", "to_phone": "0987654321", "trunk_id": 99}),
            "trunk_not_found",
        ),
        (
            json!({"from_extension": "1001", "to_phone": "0987654321", "trunk_name": "NOPE"}),
            "trunk_not_found",
        ),
        (
            json!({"from_extension": "1001", "to_phone": "0987654321", "trunk_id": 7}),
            "trunk_inactive",
        ),
    ];
    for (body, code) in cases {
        let r = post_call(t.addr, &body.to_string(), &[]);
        assert_eq!(r.status, 422, "{body}");
        assert_eq!(r.error_code(), code, "{body}");
    }
}

#[test]
fn auth_missing_or_wrong_is_401_with_a_challenge() {
    let t = start(|_| {});
    let r = request(
        t.addr,
        "POST",
        "/api/pbx/calls/click-to-call",
        &[("Content-Type", "application/json")],
        MODE1.as_bytes(),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "unauthorized");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    for bad in ["Bearer wrong-token-123", "Basic Y3JtOng=", TOKEN] {
        let r = request(
            t.addr,
            "GET",
            "/api/pbx/caller-ids",
            &[("Authorization", bad)],
            b"",
        );
        assert_eq!(r.status, 401, "{bad}");
        assert!(r.header("www-authenticate").is_some());
    }
    // Nothing was placed.
    assert!(t.app.engine.active_calls().is_empty());
    // /health needs no token.
    let r = request(t.addr, "GET", "/health", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
}

#[test]
fn rate_limit_429_with_headers_per_token_calls_only() {
    let t = start(|c| {
        c.http.rate_limit_per_minute = Some(3);
        let mut other = c.tokens[0].clone();
        other.name = "other".into();
        other.secret = "another-long-token".into();
        c.tokens.push(other);
    });
    for i in 0..3 {
        let r = post_call(t.addr, MODE1, &[]);
        assert_eq!(r.status, 202, "request {i}");
        assert_eq!(r.header("ratelimit-limit"), Some("3"));
        assert_eq!(
            r.header("ratelimit-remaining"),
            Some((2 - i).to_string().as_str())
        );
        assert!(r.header("x-ratelimit-remaining").is_some());
    }
    // Invalid requests count as well: the limit guards the endpoint.
    let r = post_call(t.addr, MODE1, &[]);
    assert_eq!(r.status, 429);
    assert_eq!(r.error_code(), "rate_limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    let reset: u64 = r.header("ratelimit-reset").unwrap().parse().unwrap();
    assert!((50..=60).contains(&reset), "{reset}");
    assert_eq!(
        t.app
            .engine
            .stats
            .accepted
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    // Other routes and other tokens are not limited.
    assert_eq!(get(t.addr, "/api/pbx/caller-ids").status, 200);
    let r = request(
        t.addr,
        "POST",
        "/api/pbx/calls/click-to-call",
        &[
            ("Authorization", "Bearer another-long-token"),
            ("Content-Type", "application/json"),
        ],
        MODE1.as_bytes(),
    );
    assert_eq!(r.status, 202);
}

#[test]
fn idempotency_replays_conflicts_and_never_places_twice() {
    let t = start(|c| c.http.rate_limit_per_minute = Some(10));
    let first = post_call(t.addr, MODE1, &[("Idempotency-Key", "order-1")]);
    assert_eq!(first.status, 202);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = post_call(t.addr, MODE1, &[("Idempotency-Key", "order-1")]);
    assert_eq!(again.status, 202);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json(), first.json());
    let other = post_call(
        t.addr,
        r#"{"from_extension":"1002","to_phone":"0987654321"}"#,
        &[("Idempotency-Key", "order-1")],
    );
    assert_eq!(other.status, 409);
    assert_eq!(other.error_code(), "idempotency_conflict");
    let accepted = || {
        t.app
            .engine
            .stats
            .accepted
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    assert_eq!(accepted(), 1);

    // Concurrent duplicates: one call, every answer the same call_uuid.
    let addr = t.addr;
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || post_call(addr, MODE1, &[("Idempotency-Key", "burst")]))
        })
        .collect();
    let answers: Vec<Resp> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    let uuids: std::collections::HashSet<String> = answers
        .iter()
        .map(|r| {
            assert_eq!(r.status, 202, "{}", r.text());
            r.json()["data"]["call_uuid"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(uuids.len(), 1);
    assert_eq!(accepted(), 2);
    // A failed request does not burn its key.
    let bad = post_call(
        t.addr,
        r#"{"from_extension":"1999","to_phone":"0987654321"}"#,
        &[("Idempotency-Key", "k3")],
    );
    assert_eq!(bad.status, 422);
    let ok = post_call(t.addr, MODE1, &[("Idempotency-Key", "k3")]);
    assert_eq!(ok.status, 202);
    assert_eq!(ok.header("idempotent-replayed"), None);
}

#[test]
fn idempotency_keys_expire_after_the_ttl() {
    let t = start(|c| c.http.idempotency_ttl = Duration::from_millis(300));
    let a = post_call(t.addr, MODE1, &[("Idempotency-Key", "short")]);
    std::thread::sleep(Duration::from_millis(400));
    let b = post_call(t.addr, MODE1, &[("Idempotency-Key", "short")]);
    assert_eq!(b.status, 202);
    assert_eq!(b.header("idempotent-replayed"), None);
    assert_ne!(a.json()["data"]["call_uuid"], b.json()["data"]["call_uuid"]);
}

#[test]
fn caller_ids_list_the_pool_with_trunks() {
    let t = start(|_| {});
    let r = get(t.addr, "/api/pbx/caller-ids");
    assert_eq!(r.status, 200);
    let j = r.json();
    let pool = j["data"].as_array().unwrap();
    assert_eq!(pool.len(), 2);
    assert_eq!(pool[0]["number"], "0900000020");
    assert_eq!(pool[0]["trunk_id"], 4);
    assert_eq!(pool[0]["trunk_name"], "POC");
    assert_eq!(pool[0]["description"], "Sales");
    assert_eq!(pool[1]["number"], "0900000021");
    assert_eq!(pool[1]["trunk_name"], "BACKUP");
}

#[test]
fn get_and_delete_a_call() {
    let mut o = sim_options();
    o.talk_time = Duration::from_secs(30);
    let t = start_with(config(), o);
    let r = post_call(t.addr, MODE1, &[]);
    let call = r.json()["data"]["call_uuid"].as_str().unwrap().to_string();
    let s = get(t.addr, &format!("/api/pbx/calls/{call}"));
    assert_eq!(s.status, 200);
    assert_eq!(s.json()["data"]["call_uuid"], call.as_str());
    wait_status(t.addr, &call, "bridged");
    let d = request(
        t.addr,
        "DELETE",
        &format!("/api/pbx/calls/{call}"),
        &[("Authorization", &auth())],
        b"",
    );
    assert_eq!(d.status, 202, "{}", d.text());
    assert_eq!(d.json()["data"]["call_uuid"], call.as_str());
    let ended = wait_status(t.addr, &call, "ended");
    assert_eq!(ended["hangup_by"], "api");
    // Ended: nothing left to hang up.
    let d = request(
        t.addr,
        "DELETE",
        &format!("/api/pbx/calls/{call}"),
        &[("Authorization", &auth())],
        b"",
    );
    assert_eq!(d.status, 404);
    assert_eq!(d.error_code(), "call_not_found");
    for missing in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_string()] {
        let r = get(t.addr, &format!("/api/pbx/calls/{missing}"));
        assert_eq!(r.status, 404);
        assert_eq!(r.error_code(), "call_not_found");
    }
}

#[test]
fn another_crms_calls_do_not_exist_for_a_token() {
    let mut c = config();
    let mut other = c.tokens[0].clone();
    other.name = "crm-2".into();
    other.secret = "the-second-crms-token".into();
    c.tokens.push(other);
    let mut o = sim_options();
    o.talk_time = Duration::from_secs(30);
    let t = start_with(c, o);
    let call = post_call(t.addr, MODE1, &[]).json()["data"]["call_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let as_other = [("Authorization", "Bearer the-second-crms-token")];
    let path = format!("/api/pbx/calls/{call}");
    let r = request(t.addr, "GET", &path, &as_other, b"");
    assert_eq!((r.status, r.error_code().as_str()), (404, "call_not_found"));
    let r = request(t.addr, "DELETE", &path, &as_other, b"");
    assert_eq!((r.status, r.error_code().as_str()), (404, "call_not_found"));
    // Still alive and visible to its own CRM.
    let s = wait_status(t.addr, &call, "bridged");
    assert_eq!(s["hangup_by"], Value::Null);
}
