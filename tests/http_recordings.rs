//! Recordings over the HTTP API on the simulated switch (a real 2-channel
//! WAV per recorded call): `GET …/recording` with its type, length, ETag,
//! Range (206 exactly the bytes asked, 416), If-None-Match (304), only to
//! the token that placed the call; `DELETE` erases it and later reads say
//! so; `recording-retention` purges old files; `record` validated.

mod common;
mod scratch;

use std::time::{Duration, Instant};

use common::*;
use mod_zorio_c2c::core::config::ApiToken;
use mod_zorio_c2c::core::recording::RecordCalls;
use serde_json::Value;

fn recorded_app(tweak: impl FnOnce(&mut mod_zorio_c2c::core::config::Config)) -> TestApp {
    let mut c = config();
    c.recordings_dir = c.webhooks.spool_dir.join("recordings");
    c.tokens.push(ApiToken {
        name: "other".into(),
        secret: "other-crm-token-0123456789".into(),
        webhook_url: None,
        webhook_secrets: Vec::new(),
    });
    tweak(&mut c);
    let mut o = sim_options();
    o.talk_time = Duration::from_millis(1500);
    start_with(c, o)
}

fn place_recorded(t: &TestApp) -> String {
    let r = post_call(
        t.addr,
        r#"{"from_extension":"1001","to_phone":"0987654321","record":true}"#,
        &[],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["data"]["call_uuid"].as_str().unwrap().to_string()
}

fn wait_ended(t: &TestApp, call: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(8);
    loop {
        let j = get(t.addr, &format!("/api/pbx/calls/{call}")).json();
        if j["data"]["status"] == "ended" {
            return j["data"].clone();
        }
        assert!(Instant::now() < until, "never ended: {j}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn get_with(t: &TestApp, path: &str, headers: &[(&str, &str)]) -> Resp {
    let a = auth();
    let mut h = vec![("Authorization", a.as_str())];
    h.extend_from_slice(headers);
    request(t.addr, "GET", path, &h, b"")
}

#[test]
fn a_recording_is_served_whole_in_ranges_and_only_to_its_token() {
    let t = recorded_app(|_| {});
    let call = place_recorded(&t);
    let url = format!("/api/pbx/calls/{call}/recording");
    // While the call is up, the file is still being written.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(get(t.addr, &url).status, 409);
    let st = wait_ended(&t, &call);
    let rec = &st["recording"];
    assert_eq!(rec["status"], "available", "{st}");
    assert_eq!(rec["url"], url.as_str());
    assert_eq!(rec["channels"], 2);

    let whole = get(t.addr, &url);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-type"), Some("audio/wav"));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.body.len() as u64, rec["bytes"].as_u64().unwrap());
    assert_eq!(&whole.body[0..4], b"RIFF");
    assert_eq!(
        u16::from_le_bytes([whole.body[22], whole.body[23]]),
        2,
        "2 channels"
    );
    let etag = whole.header("etag").unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", rec["sha256"].as_str().unwrap()));
    let size = whole.body.len();

    let part = get_with(&t, &url, &[("Range", "bytes=100-199")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, whole.body[100..200]);
    assert_eq!(part.header("content-length"), Some("100"));
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 100-199/{size}").as_str())
    );
    let tail = get_with(&t, &url, &[("Range", "bytes=-10")]);
    assert_eq!(
        (tail.status, tail.body.as_slice()),
        (206, &whole.body[size - 10..])
    );
    let from = get_with(&t, &url, &[("Range", &format!("bytes={}-", size - 3))]);
    assert_eq!(from.body, whole.body[size - 3..]);
    let bad = get_with(&t, &url, &[("Range", &format!("bytes={size}-"))]);
    assert_eq!(bad.status, 416);
    assert_eq!(
        bad.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );
    let same = get_with(&t, &url, &[("If-None-Match", &etag)]);
    assert_eq!((same.status, same.body.len()), (304, 0));

    // Another CRM's token: the call does not exist for it.
    for method in ["GET", "DELETE"] {
        let other = request(
            t.addr,
            method,
            &url,
            &[("Authorization", "Bearer other-crm-token-0123456789")],
            b"",
        );
        assert_eq!(other.status, 404, "{method}");
        assert_eq!(other.error_code(), "call_not_found", "{method}");
    }
    assert_eq!(get(t.addr, &url).status, 200, "still there");
}

#[test]
fn delete_erases_the_file_and_later_reads_say_so() {
    let t = recorded_app(|_| {});
    let call = place_recorded(&t);
    let st = wait_ended(&t, &call);
    let url = format!("/api/pbx/calls/{call}/recording");
    let path = t
        .app
        .engine
        .call(call.parse().unwrap())
        .unwrap()
        .recording
        .unwrap()
        .path;
    assert!(std::path::Path::new(&path).exists());
    assert_eq!(st["recording"]["status"], "available");
    let r = request(t.addr, "DELETE", &url, &[("Authorization", &auth())], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["recording"]["status"], "deleted");
    assert!(!std::path::Path::new(&path).exists(), "the file is erased");
    let later = get(t.addr, &format!("/api/pbx/calls/{call}")).json();
    assert_eq!(later["data"]["recording"]["status"], "deleted");
    assert_eq!(later["data"]["recording"]["url"], Value::Null);
    let gone = get(t.addr, &url);
    assert_eq!(
        (gone.status, gone.error_code().as_str()),
        (404, "recording_not_found")
    );
    // An unrecorded call has no recording to serve.
    let r = post_call(
        t.addr,
        r#"{"from_extension":"1002","to_phone":"0987654321"}"#,
        &[],
    );
    let plain = r.json()["data"]["call_uuid"].as_str().unwrap().to_string();
    assert_eq!(wait_ended(&t, &plain)["recording"], Value::Null);
    let none = get(t.addr, &format!("/api/pbx/calls/{plain}/recording"));
    assert_eq!(
        (none.status, none.error_code().as_str()),
        (404, "recording_not_found")
    );
}

#[test]
fn retention_purges_old_recordings() {
    // 0.00002 days: 1.7 s.
    let t = recorded_app(|c| c.recording_retention = Some(Duration::from_secs_f64(1.728)));
    let call = place_recorded(&t);
    wait_ended(&t, &call);
    let path = t
        .app
        .engine
        .call(call.parse().unwrap())
        .unwrap()
        .recording
        .unwrap()
        .path;
    let until = Instant::now() + Duration::from_secs(8);
    while std::path::Path::new(&path).exists() {
        assert!(Instant::now() < until, "never purged");
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = get(t.addr, &format!("/api/pbx/calls/{call}")).json();
    assert_eq!(st["data"]["recording"]["status"], "deleted", "{st}");
    assert_eq!(
        st["data"]["recording"]["note"],
        "purged after recording-retention"
    );
}

#[test]
fn record_is_validated_and_refused_when_recording_is_off() {
    let t = recorded_app(|c| c.record_calls = RecordCalls::Never);
    let r = post_call(
        t.addr,
        r#"{"from_extension":"1001","to_phone":"0987654321","record":"yes","time_limit":0}"#,
        &[],
    );
    assert_eq!(r.status, 422);
    let fields: Vec<String> = r.json()["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(fields, ["time_limit", "record"]);
    let r = post_call(
        t.addr,
        r#"{"from_extension":"1001","to_phone":"0987654321","record":true}"#,
        &[],
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.error_code(), "recording_disabled");
    assert_eq!(r.json()["error"]["fields"][0]["field"], "record");
}
