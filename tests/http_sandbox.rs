//! The sandbox binary end to end: flags, demo data, the printed curl line.

mod common;

use std::process::Command;

use common::*;

#[test]
fn the_sandbox_serves_the_demo_world_and_prints_a_working_curl_line() {
    let sandbox = Sandbox::start(&["--quiet", "--agent-answer-ms", "50"]);
    let addr = sandbox.addr;
    let curl = sandbox
        .lines
        .iter()
        .find(|l| l.starts_with("curl "))
        .expect("a curl line");
    assert!(curl.contains("Bearer sandbox-token"), "{curl}");
    assert!(curl.contains(&format!("http://{addr}/api/pbx/calls/click-to-call")));

    let bearer = [("Authorization", "Bearer sandbox-token")];
    let r = request(addr, "GET", "/api/pbx/caller-ids", &bearer, b"");
    assert_eq!(r.status, 200);
    let numbers: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["number"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(numbers, ["0900000020", "0900000021"]);
    let r = request(
        addr,
        "POST",
        "/api/pbx/calls/click-to-call",
        &[bearer[0], ("Content-Type", "application/json")],
        br#"{"from_extension":"1001","to_phone":"0987654321","trunk_id":4}"#,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["data"]["trunk_name"], "POC");
    let r = request(
        addr,
        "POST",
        "/api/pbx/calls/click-to-call",
        &[bearer[0], ("Content-Type", "application/json")],
        br#"{"from_extension":"1001","to_phone":"0987654321","trunk_id":7}"#,
    );
    assert_eq!(r.error_code(), "trunk_inactive");
    assert_eq!(
        request(
            addr,
            "GET",
            "/api/pbx/caller-ids",
            &[("Authorization", "Bearer x")],
            b""
        )
        .status,
        401
    );
    drop(sandbox);
}

#[test]
fn help_and_bad_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_c2c-sandbox"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--token",
        "--webhook-url",
        "--webhook-secret",
        "--config",
        "--talk-ms",
        "--max-connections-per-ip",
        "--header-read-timeout",
        "--tls-cert",
    ] {
        assert!(text.contains(flag), "{flag}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_c2c-sandbox"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_c2c-sandbox"))
        .args(["--webhook-secret", "not-whsec", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad secret is refused");
}
