//! The listener over real sockets: keep-alive, limits, timeouts, the
//! connection cap, routing errors, metrics, webhook admin hooks, and a stop
//! that frees the port so a reload can bind it again and again.

mod common;
mod scratch;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const MODE1: &str = r#"{"from_extension":"1001","to_phone":"0987654321"}"#;

fn post_head(len: usize) -> String {
    format!(
        "POST /api/pbx/calls/click-to-call HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    )
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let t = start(|_| {});
    let mut c = Conn::open(t.addr);
    c.send("GET", "/health", &[], b"");
    let a = c.read();
    assert_eq!(a.status, 200);
    assert_eq!(a.header("connection"), Some("keep-alive"));
    c.send(
        "POST",
        "/api/pbx/calls/click-to-call",
        &[
            ("Authorization", &auth()),
            ("Content-Type", "application/json"),
        ],
        MODE1.as_bytes(),
    );
    assert_eq!(c.read().status, 202);
    // Pipelined: two requests in one write, two answers in order.
    let mut two = format!("{}{MODE1}", post_head(MODE1.len())).into_bytes();
    two.extend_from_slice(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    c.send_raw(&two);
    assert_eq!(c.read().status, 202);
    assert_eq!(c.read().status, 404);
    // Connection: close is honoured.
    c.send("GET", "/health", &[("Connection", "close")], b"");
    let r = c.read();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_within(Duration::from_secs(2)));
}

/// A client that shuts its write side once its whole request is sent (as
/// `printf … | nc` and some HTTP libraries do) still gets its answer, and
/// the call is placed exactly once; then the server closes.
#[test]
fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    use mod_zorio_c2c::sim::SimAction;
    use std::sync::atomic::Ordering;
    let t = start(|_| {});
    for round in 0..5 {
        let mut c = Conn::open(t.addr);
        c.send_raw(format!("{}{MODE1}", post_head(MODE1.len())).as_bytes());
        c.stream.shutdown(std::net::Shutdown::Write).unwrap();
        let r = c
            .try_read()
            .unwrap_or_else(|| panic!("round {round}: no answer"));
        assert_eq!(r.status, 202, "round {round}: {}", r.text());
        let call = r.json()["data"]["call_uuid"].as_str().unwrap().to_string();
        assert!(c.closed_within(Duration::from_secs(2)), "round {round}");
        let uuid = uuid::Uuid::parse_str(&call).unwrap();
        assert!(t.app.engine.call(uuid).is_some(), "202 for an unknown call");
        let until = Instant::now() + Duration::from_secs(5);
        let originated = || {
            t.sim
                .actions()
                .iter()
                .filter(|a| matches!(a, SimAction::OriginateAgent(l) if l.call_uuid == uuid))
                .count()
        };
        while originated() == 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(originated(), 1, "round {round}: the agent rung once");
    }
    assert_eq!(t.app.engine.stats.accepted.load(Ordering::SeqCst), 5);
    // A GET and two pipelined requests, then the half-close: all answered.
    let mut c = Conn::open(t.addr);
    let mut bytes = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n".to_vec();
    bytes.extend_from_slice(format!("{}{MODE1}", post_head(MODE1.len())).as_bytes());
    c.send_raw(&bytes);
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(c.read().status, 200);
    assert_eq!(c.read().status, 202);
    assert!(c.closed_within(Duration::from_secs(2)));
    assert_eq!(t.app.engine.stats.accepted.load(Ordering::SeqCst), 6);
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let t = start(|_| {});
    let mut c = Conn::open(t.addr);
    c.send_raw(b"GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(c.read().status, 200);
    assert!(c.closed_within(Duration::from_secs(2)));
    let mut c = Conn::open(t.addr);
    c.send_raw(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.read().status, 200);
    c.send_raw(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.read().status, 200);
}

#[test]
fn expect_100_continue_is_answered() {
    let t = start(|_| {});
    let mut c = Conn::open(t.addr);
    let head = post_head(MODE1.len()).replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n");
    c.send_raw(head.as_bytes());
    assert_eq!(c.read().status, 100);
    c.send_raw(MODE1.as_bytes());
    assert_eq!(c.read().status, 202);
}

#[test]
fn a_slow_client_never_stalls_another_and_times_out() {
    let t = start(|c| c.http.read_timeout = Duration::from_millis(1000));
    // Slowloris: a head that never ends, one byte at a time.
    let mut slow = Conn::open(t.addr);
    slow.send_raw(b"POST /api/pbx/calls/click-to-call HTTP/1.1\r\nHost: t\r\n");
    let mut slow_body = Conn::open(t.addr);
    slow_body.send_raw(post_head(100).as_bytes());
    slow_body.send_raw(b"{\"from_extension\":");
    let started = Instant::now();
    for _ in 0..3 {
        slow.send_raw(b"X");
        let r = post_call(t.addr, MODE1, &[]);
        assert_eq!(r.status, 202);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    // Both slow clients get 408 once the read timeout passes, then are closed.
    for c in [&mut slow, &mut slow_body] {
        let r = c.read();
        assert_eq!(r.status, 408);
        assert_eq!(r.error_code(), "request_timeout");
        assert!(c.closed_within(Duration::from_secs(2)));
    }
    assert!(started.elapsed() >= Duration::from_millis(950));
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let t = start(|c| c.http.idle_timeout = Duration::from_millis(300));
    let mut c = Conn::open(t.addr);
    c.send("GET", "/health", &[], b"");
    assert_eq!(c.read().status, 200);
    let t0 = Instant::now();
    assert!(c.closed_within(Duration::from_secs(3)));
    assert!(t0.elapsed() >= Duration::from_millis(250));
}

/// Opens `cap` connections that each got an answer, then one more: its answer.
fn fill_to_cap(addr: std::net::SocketAddr, cap: usize) -> (Vec<Conn>, Conn, Resp) {
    let held: Vec<Conn> = (0..cap)
        .map(|_| {
            let mut c = Conn::open(addr);
            c.send("GET", "/health", &[], b"");
            assert_eq!(c.read().status, 200);
            c
        })
        .collect();
    let mut extra = Conn::open(addr);
    extra.send("GET", "/health", &[], b"");
    let r = extra.read();
    assert_eq!(r.status, 503);
    assert_eq!(r.error_code(), "too_many_connections");
    (held, extra, r)
}

#[test]
fn the_connection_cap_answers_503_and_closes() {
    let t = start(|c| c.http.max_connections = 2);
    let (mut held, mut third, r) = fill_to_cap(t.addr, 2);
    assert!(r.header("retry-after").is_some());
    assert!(third.closed_within(Duration::from_secs(2)));
    // The held connections still work; freeing one lets a new one in.
    held[0].send("GET", "/health", &[], b"");
    assert_eq!(held[0].read().status, 200);
    held.pop();
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let mut c = Conn::open(t.addr);
        c.send("GET", "/health", &[], b"");
        if c.read().status == 200 {
            break;
        }
        assert!(Instant::now() < until, "a freed slot was never reused");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn oversized_heads_and_bodies_are_refused_before_reading_them() {
    let t = start(|c| {
        c.http.max_header_bytes = 1024;
        c.http.max_body_bytes = 100;
    });
    let mut c = Conn::open(t.addr);
    let big = "a".repeat(2000);
    c.send("GET", "/health", &[("X-Big", &big)], b"");
    let r = c.read();
    assert_eq!(r.status, 431);
    assert_eq!(r.error_code(), "headers_too_large");
    // Content-Length over the limit: 413 at once, without sending the body.
    let mut c = Conn::open(t.addr);
    c.send_raw(post_head(1_000_000).as_bytes());
    let r = c.read();
    assert_eq!(r.status, 413);
    assert_eq!(r.error_code(), "payload_too_large");
    assert!(c.closed_within(Duration::from_secs(2)));
    // Garbage is a 400 in the same shape.
    let mut c = Conn::open(t.addr);
    c.send_raw(b"\x01\x02 nonsense\r\n\r\n");
    let r = c.read();
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "bad_request");
}

#[test]
fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
    let t = start(|_| {});
    let r = get(t.addr, "/api/pbx/nothing");
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "not_found");
    let r = get(t.addr, "/api/pbx/calls/click-to-call");
    assert_eq!(r.status, 405);
    assert_eq!(r.error_code(), "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = request(
        t.addr,
        "PUT",
        &format!("/api/pbx/calls/{}", uuid::Uuid::new_v4()),
        &[("Authorization", &auth())],
        b"",
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, DELETE"));
    let r = request(t.addr, "POST", "/health", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
}

#[test]
fn metrics_report_requests_calls_trunks_and_extra_gauges() {
    let t = start(|_| {});
    assert_eq!(request(t.addr, "GET", "/metrics", &[], b"").status, 401);
    let r = post_call(
        t.addr,
        r#"{"from_extension":"1001","to_phone":"0900503503"}"#,
        &[],
    );
    assert_eq!(r.status, 202);
    let call = uuid::Uuid::parse_str(r.json()["data"]["call_uuid"].as_str().unwrap()).unwrap();
    post_call(t.addr, "{", &[]);
    let until = Instant::now() + Duration::from_secs(5);
    while t.app.engine.call(call).unwrap().state.as_str() != "ended" {
        assert!(Instant::now() < until);
        std::thread::sleep(Duration::from_millis(20));
    }
    let m = get(t.addr, "/metrics");
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let text = m.text();
    for line in [
        "c2c_http_requests_total{route=\"click_to_call\",status=\"202\"} 1",
        "c2c_http_requests_total{route=\"click_to_call\",status=\"400\"} 1",
        "c2c_http_requests_total{route=\"metrics\",status=\"401\"} 1",
        "c2c_calls_ended_total{outcome=\"completed\"} 1",
        "c2c_calls_accepted_total 1",
        "c2c_trunk_attempts_total{trunk=\"BACKUP\"} 1",
        "c2c_trunk_failures_total{trunk=\"BACKUP\"} 1",
        "c2c_trunk_attempts_total{trunk=\"POC\"} 1",
        "c2c_trunk_failures_total{trunk=\"POC\"} 0",
        "# TYPE c2c_webhook_queue_depth gauge",
        "c2c_webhook_queue_depth 0",
        "c2c_http_open_connections 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

/// Answers 200 to every request on `listener`, until the test ends.
fn serve_ok(listener: std::net::TcpListener) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut buf = [0u8; 65536];
                let mut got = Vec::new();
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    let Some(head_end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let len = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if got.len() >= head_end + 4 + len {
                        got.drain(..head_end + 4 + len);
                        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                    }
                }
            });
        }
    });
}

#[test]
fn webhook_admin_lists_and_replays_real_dead_letters() {
    // Events die at once: the receiver's port is closed and there is no retry horizon.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port_addr = closed.local_addr().unwrap();
    drop(closed);
    let t = start(|c| {
        c.webhooks.url = Some(format!("http://{port_addr}/hooks"));
        c.webhooks.retry_schedule = vec![Duration::from_millis(10)];
        c.webhooks.give_up_after = Duration::ZERO;
        c.webhooks.connect_timeout = Duration::from_millis(300);
        c.a_leg_timeout = Duration::from_millis(200);
    });
    let r = post_call(
        t.addr,
        r#"{"from_extension":"1004","to_phone":"0987654321"}"#,
        &[],
    );
    assert_eq!(r.status, 202);
    let until = Instant::now() + Duration::from_secs(10);
    let dead = loop {
        let r = get(t.addr, "/api/pbx/webhooks/dead-letters");
        assert_eq!(r.status, 200);
        let list = r.json()["data"].as_array().cloned().unwrap_or_default();
        // agent_missed path: ringing, agent_missed, hangup, cdr.
        if list.len() >= 4 {
            break list;
        }
        assert!(Instant::now() < until, "dead letters: {list:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(dead[0]["type"], "pbx.call.ringing");
    let status = get(t.addr, "/api/pbx/webhooks/status").json();
    assert_eq!(status["data"]["dead_letters"], 4);
    let post = |path: &str| request(t.addr, "POST", path, &[("Authorization", &auth())], b"");
    let r = post("/api/pbx/webhooks/dead-letters/evt_nope/replay");
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "dead_letter_not_found");

    // The receiver comes up; one replay, then all of them, are delivered.
    serve_ok(std::net::TcpListener::bind(port_addr).unwrap());
    let first = dead[0]["id"].as_str().unwrap();
    let r = post(&format!("/api/pbx/webhooks/dead-letters/{first}/replay"));
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["data"]["id"], first);
    let r = post("/api/pbx/webhooks/dead-letters/replay");
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["data"]["replayed"], 3);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let s = get(t.addr, "/api/pbx/webhooks/status").json();
        if s["data"]["delivered"] == 4 && s["data"]["dead_letters"] == 0 {
            break;
        }
        assert!(Instant::now() < until, "not delivered: {s}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stop_joins_everything_frees_the_port_and_restarts_again_and_again() {
    let t = start(|_| {});
    let addr = t.addr;
    // An idle keep-alive client and a slowloris must not hold the stop up.
    let mut idle = Conn::open(addr);
    idle.send("GET", "/health", &[], b"");
    assert_eq!(idle.read().status, 200);
    let mut slow = Conn::open(addr);
    slow.send_raw(b"GET /health HTTP/1.1\r\n");
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    assert!(t.app.stop(Duration::from_secs(5)).is_empty());
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(idle.closed_within(Duration::from_secs(1)));
    assert!(TcpStream::connect(addr).is_err(), "listener still open");
    drop(t);
    // Reload: bind the very same port again, several times.
    for round in 0..3 {
        let mut c = config();
        c.http.listen = addr;
        let t = start_with(c, sim_options());
        assert_eq!(t.addr, addr);
        let r = post_call(t.addr, MODE1, &[]);
        assert_eq!(r.status, 202, "round {round}");
        assert!(t.app.stop(Duration::from_secs(5)).is_empty());
    }
}

#[test]
fn http_disabled_starts_no_listener() {
    let t0 = {
        let mut c = config();
        c.http.enabled = false;
        let _spool = Scratch::adopt(c.webhooks.spool_dir.clone());
        let (tx, rx) = mod_zorio_c2c::switch::leg_channel();
        let sim = mod_zorio_c2c::sim::SimSwitch::new(sim_options(), tx);
        let app = mod_zorio_c2c::app::App::start(c, sim.clone(), rx, vec![]).unwrap();
        let none = app.http_addr().is_none();
        // The pure router still answers without a socket.
        let req = mod_zorio_c2c::core::http::Request::new("POST", "/api/pbx/calls/click-to-call")
            .with_header("Authorization", &auth())
            .with_header("Content-Type", "application/json")
            .with_body(MODE1);
        let r = mod_zorio_c2c::core::http::route(&app.http_state, &req);
        // A caller that authenticated by other means (fs_cli, xml_rpc).
        let trusted = mod_zorio_c2c::core::http::Request::new("GET", "/api/pbx/caller-ids");
        let anonymous = mod_zorio_c2c::core::http::route(&app.http_state, &trusted).status;
        let as_crm = mod_zorio_c2c::core::http::route_as(&app.http_state, &trusted, "crm").status;
        app.stop(Duration::from_secs(5));
        sim.stop();
        (none, r.status, anonymous, as_crm)
    };
    assert_eq!(t0, (true, 202, 401, 200));
}

#[test]
fn deeply_nested_json_is_refused_without_hurting_the_server() {
    let t = start(|_| {});
    for depth in [100, 127, 128, 129, 5_000] {
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        for body in [arrays, objects] {
            let r = post_call(t.addr, &body, &[]);
            assert!(
                r.status == 400 || r.status == 422,
                "depth {depth}: {}",
                r.status
            );
        }
    }
    let r = post_call(t.addr, MODE1, &[]);
    assert_eq!(r.status, 202);
}

#[test]
fn every_202_answered_during_a_stop_is_a_call_the_engine_has() {
    let t = start(|_| {});
    let addr = t.addr;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut c = Conn::open(addr);
                loop {
                    c.send_raw(format!("{}{MODE1}", post_head(MODE1.len())).as_bytes());
                    match c.try_read() {
                        Some(r) if r.status == 202 => {
                            got.push(r.json()["data"]["call_uuid"].as_str().unwrap().to_string())
                        }
                        _ => return got,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(150));
    assert!(t.app.stop(Duration::from_secs(5)).is_empty());
    let answered: Vec<String> = clients
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(answered.len() > 4, "{}", answered.len());
    for call in &answered {
        let uuid = uuid::Uuid::parse_str(call).unwrap();
        assert!(t.app.engine.call(uuid).is_some(), "202 for an unknown call");
    }
    let accepted = t
        .app
        .engine
        .stats
        .accepted
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        accepted as usize,
        answered.len(),
        "a call whose 202 was lost"
    );
}

#[test]
fn chunked_bodies_are_understood_up_to_the_limit() {
    let t = start(|c| c.http.max_body_bytes = 200);
    let head = "POST /api/pbx/calls/click-to-call HTTP/1.1\r\nHost: t\r\n\
                Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n";
    let head = format!("{head}Authorization: Bearer {TOKEN}\r\n\r\n");
    let (a, b) = MODE1.split_at(10);
    let mut c = Conn::open(t.addr);
    c.send_raw(
        format!(
            "{head}{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        )
        .as_bytes(),
    );
    assert_eq!(c.read().status, 202);
    // Kept alive after a chunked request.
    c.send("GET", "/health", &[], b"");
    assert_eq!(c.read().status, 200);
    // Past the limit: 413 as soon as it is passed, without reading on.
    let mut c = Conn::open(t.addr);
    c.send_raw(format!("{head}100\r\n{}\r\n", "x".repeat(256)).as_bytes());
    let r = c.read();
    assert_eq!(r.status, 413);
    assert_eq!(r.error_code(), "payload_too_large");
    assert!(c.closed_within(Duration::from_secs(2)));
}

#[test]
fn malformed_requests_all_get_the_one_error_shape_and_never_a_5xx() {
    let t = start(|_| {});
    let post = "POST /api/pbx/calls/click-to-call HTTP/1.1\r\nHost: t\r\n";
    let many_headers: String = (0..5000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "bad chunk size",
            format!("{post}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").into_bytes(),
            400,
        ),
        (
            "huge chunk size",
            format!("{post}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nabc\r\n")
                .into_bytes(),
            400,
        ),
        (
            "absurd Content-Length",
            format!("{post}Content-Length: 99999999999999999999999999\r\n\r\n").into_bytes(),
            400,
        ),
        (
            "Content-Length not a number",
            format!("{post}Content-Length: ten\r\n\r\n").into_bytes(),
            400,
        ),
        (
            "100 KB header line",
            format!(
                "GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n",
                "a".repeat(100_000)
            )
            .into_bytes(),
            431,
        ),
        (
            "5,000 headers",
            format!("GET /health HTTP/1.1\r\n{many_headers}\r\n").into_bytes(),
            431,
        ),
        ("HTTP/0.9", b"GET /health\r\n\r\n".to_vec(), 400),
        (
            "binary garbage",
            (0..=255u8).cycle().take(3000).collect(),
            400,
        ),
        (
            "unknown TE",
            format!("{post}Transfer-Encoding: gzip\r\n\r\n").into_bytes(),
            400,
        ),
    ];
    for (name, bytes, status) in cases {
        let mut c = Conn::open(t.addr);
        // The server may close before taking everything: ignore send errors.
        use std::io::Write;
        let _ = c.stream.write_all(&bytes);
        let r = c.try_read().unwrap_or_else(|| panic!("{name}: no answer"));
        assert_eq!(r.status, status, "{name}: {}", r.text());
        assert!(r.status < 500, "{name}");
        assert!(!r.error_code().is_empty(), "{name}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{name}");
    }
    // The server is still fine.
    assert_eq!(post_call(t.addr, MODE1, &[]).status, 202);
}

#[test]
fn content_length_with_transfer_encoding_is_read_as_chunked_and_the_connection_closed() {
    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length (there is
    // no second reading of the body to smuggle a request through), and the
    // connection is closed after the answer. The bytes after the chunked
    // body are never read as a request.
    let t = start(|_| {});
    let mut c = Conn::open(t.addr);
    let body = format!("{:x}\r\n{MODE1}\r\n0\r\n\r\n", MODE1.len());
    c.send_raw(
        format!(
            "POST /api/pbx/calls/click-to-call HTTP/1.1\r\nHost: t\r\n\
             Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
             Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{body}\
             GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        .as_bytes(),
    );
    let r = c.read();
    assert_eq!(r.status, 202);
    assert!(r.header("connection").unwrap().contains("close"));
    assert!(c.try_read().is_none(), "the smuggled request was answered");
}

#[test]
fn the_per_address_cap_refuses_one_address_and_not_another() {
    let t = start(|c| c.http.max_connections_per_ip = 2);
    let (mut held, _third, _) = fill_to_cap(t.addr, 2);
    // Another loopback address has its own budget.
    let other = {
        let s = connect_from("127.0.0.2", t.addr);
        let mut c = Conn::from_stream(s);
        c.send("GET", "/health", &[], b"");
        c.read().status
    };
    assert_eq!(other, 200);
    held[0].send("GET", "/health", &[], b"");
    assert_eq!(held[0].read().status, 200);
}

/// A client socket bound to `source` (any 127.x address is loopback; std
/// has no bind-before-connect, tokio's TcpSocket has).
fn connect_from(source: &str, to: std::net::SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(std::net::SocketAddr::new(source.parse().unwrap(), 0))
            .unwrap();
        sock.connect(to).await.unwrap()
    });
    let s = {
        let _g = rt.enter();
        s.into_std().unwrap()
    };
    s.set_nonblocking(false).unwrap();
    s
}
