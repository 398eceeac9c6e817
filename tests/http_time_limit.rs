//! `time_limit` over the HTTP API on the simulated switch: a bad value is a
//! 422 naming the field with the other invalid fields; a valid one ends the
//! call at the limit, said by `GET /api/pbx/calls/{uuid}`.

mod common;
mod scratch;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[test]
fn a_bad_time_limit_is_422_with_every_field_named() {
    let t = start(|_| {});
    for (body, code) in [
        (
            r#"{"from_extension":"1001","to_phone":"0987654321","time_limit":0}"#,
            "out_of_range",
        ),
        (
            r#"{"from_extension":"1001","to_phone":"0987654321","time_limit":86401}"#,
            "out_of_range",
        ),
        (
            r#"{"from_extension":"1001","to_phone":"0987654321","time_limit":"60"}"#,
            "invalid_type",
        ),
        (
            r#"{"from_extension":"1001","to_phone":"0987654321","time_limit":1.5}"#,
            "invalid_type",
        ),
    ] {
        let r = post_call(t.addr, body, &[]);
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        let j = r.json();
        assert_eq!(j["error"]["code"], "validation_failed");
        assert_eq!(j["error"]["fields"][0]["field"], "time_limit");
        assert_eq!(j["error"]["fields"][0]["code"], code);
    }
    let r = post_call(
        t.addr,
        r#"{"from_extension":"1","to_phone":"x","time_limit":-1}"#,
        &[],
    );
    let fields: Vec<Value> = r.json()["error"]["fields"].as_array().unwrap().clone();
    let names: Vec<&str> = fields
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["from_extension", "to_phone", "time_limit"]);
}

#[test]
fn a_call_with_a_time_limit_ends_at_it() {
    // The sandbox's customers talk 30 s here: only the limit ends the call.
    let mut o = sim_options();
    o.talk_time = Duration::from_secs(30);
    let t = start_with(config(), o);
    let r = post_call(
        t.addr,
        r#"{"from_extension":"1001","to_phone":"0987654321","time_limit":1}"#,
        &[],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let call = r.json()["data"]["call_uuid"].as_str().unwrap().to_string();
    let until = Instant::now() + Duration::from_secs(8);
    let d = loop {
        let j = get(t.addr, &format!("/api/pbx/calls/{call}")).json();
        if j["data"]["status"] == "ended" {
            break j["data"].clone();
        }
        assert!(Instant::now() < until, "never ended: {j}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(d["time_limit"], 1);
    assert_eq!(d["hangup_cause"], "ALLOTTED_TIMEOUT");
    assert_eq!(d["hangup_by"], "system");
    assert_eq!(d["outcome"], "time_limit_reached");
}
