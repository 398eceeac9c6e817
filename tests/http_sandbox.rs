//! The sandbox binary end to end: flags, demo data, the printed curl line.

#[path = "e2e_common/audio.rs"]
mod audio;
mod common;
mod scratch;

use std::process::Command;

use audio::{goertzel, parse_wav};
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

/// Starts the sandbox on a free port with `env`, without `--data-dir`, and
/// reads what it prints up to its data directory; stops it.
fn started_data_dir(env: &[(&str, &std::path::Path)], port: u16) -> String {
    use std::io::BufRead;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_c2c-sandbox"));
    cmd.args(["--quiet", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("XDG_STATE_HOME")
        .env_remove("HOME")
        .stdout(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("sandbox starts");
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines
        .map_while(Result::ok)
        .find(|l| l.starts_with("data dir: "))
        .expect("a data dir line");
    let _ = child.kill();
    let _ = child.wait();
    line["data dir: ".len()..].to_string()
}

#[test]
fn the_default_data_dir_is_one_per_port_under_the_state_dir_and_reused() {
    let state = Scratch::new("c2c-sandbox-state");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let expected = state.join("c2c-sandbox").join(port.to_string());
    for _ in 0..2 {
        let dir = started_data_dir(&[("XDG_STATE_HOME", state.path())], port);
        assert_eq!(dir, expected.to_str().unwrap());
        assert!(expected.join("zorio_c2c.db").is_file());
    }
    // Every start reused the one directory.
    let made: Vec<_> = std::fs::read_dir(state.join("c2c-sandbox"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(made, [std::ffi::OsString::from(port.to_string())]);
    // Without XDG_STATE_HOME: ~/.local/state.
    let home = Scratch::new("c2c-sandbox-home");
    let dir = started_data_dir(&[("HOME", home.path())], port);
    let expected = home.join(".local/state/c2c-sandbox").join(port.to_string());
    assert_eq!(dir, expected.to_str().unwrap());
    assert!(expected.join("zorio_c2c.db").is_file());
}

#[test]
fn the_sandbox_records_a_real_two_channel_wav_a_tone_per_party() {
    let sandbox = Sandbox::start(&[
        "--quiet",
        "--agent-answer-ms",
        "50",
        "--customer-answer-ms",
        "50",
        "--talk-ms",
        "1500",
    ]);
    let addr = sandbox.addr;
    let bearer = ("Authorization", "Bearer sandbox-token");
    let r = request(
        addr,
        "POST",
        "/api/pbx/calls/click-to-call",
        &[bearer, ("Content-Type", "application/json")],
        br#"{"from_extension":"1001","to_phone":"0987654321","record":true}"#,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let call = r.json()["data"]["call_uuid"].as_str().unwrap().to_string();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let st = loop {
        let j = request(
            addr,
            "GET",
            &format!("/api/pbx/calls/{call}"),
            &[bearer],
            b"",
        )
        .json();
        if j["data"]["status"] == "ended" {
            break j["data"].clone();
        }
        assert!(std::time::Instant::now() < until, "never ended: {j}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(st["recording"]["status"], "available", "{st}");
    let url = st["recording"]["url"].as_str().unwrap().to_string();
    let wav = request(addr, "GET", &url, &[bearer], b"");
    assert_eq!(wav.status, 200);
    assert_eq!(wav.header("content-type"), Some("audio/wav"));
    let (channels, rate, data) = parse_wav(&wav.body);
    assert_eq!((channels, rate), (2, 8000));
    let secs = data[0].len() as f64 / 8000.0;
    let billsec = st["recording"]["duration_ms"].as_f64().unwrap() / 1000.0;
    assert!((secs - billsec).abs() < 0.01 && secs >= 1.0, "{secs} s");
    for (ch, want, other) in [(0usize, 1000.0, 400.0), (1, 400.0, 1000.0)] {
        let x = &data[ch];
        assert!(
            goertzel(x, rate, want) > 100.0 * goertzel(x, rate, other),
            "channel {} carries {want} Hz",
            ch + 1
        );
    }
}
