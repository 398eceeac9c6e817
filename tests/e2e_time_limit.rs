//! End to end against a real FreeSWITCH: `time_limit`. The agent's phone
//! and the carrier both talk until they get a BYE; a call placed with
//! `time_limit: 3` must end 3 s after its bridge, ended by the switch
//! (`sched_hangup`): `ALLOTTED_TIMEOUT`, `hangup_by` `system`, `billsec` 3
//! (±1). A call whose limit was set before `reload mod_zorio_c2c` is
//! adopted by the next load and still ends at its limit, reported the same.
//!
//! Runs when `FREESWITCH_BIN` is set (see tests/e2e_freeswitch.rs);
//! otherwise prints `SKIPPED: <why>`.

mod e2e_common;
mod scratch;

use std::time::Duration;

use e2e_common::*;
use serde_json::{json, Value};

/// `Event-Date-Timestamp` (µs) of the first event `name` about `uuid`.
fn event_us(log: &EventLog, name: &str, uuid: &str) -> Option<u64> {
    let i = log.position(name, uuid)?;
    log.all()[i]
        .get("Event-Date-Timestamp")
        .and_then(|t| t.parse().ok())
}

/// The last HANGUP_COMPLETE of channel `uuid` (a failed attempt over the
/// first trunk had the same uuid).
fn hangup_of(log: &EventLog, uuid: &str) -> Headers {
    log.all()
        .into_iter()
        .rev()
        .find(|e| {
            e.get("Event-Name").map(String::as_str) == Some("CHANNEL_HANGUP_COMPLETE")
                && e.get("Unique-ID").map(String::as_str) == Some(uuid)
        })
        .expect("a HANGUP_COMPLETE")
}

fn assert_limited(st: &Value, limit: u64) {
    assert_eq!(st["hangup_cause"], "ALLOTTED_TIMEOUT", "{st}");
    assert_eq!(st["hangup_by"], "system", "{st}");
    assert_eq!(st["outcome"], "time_limit_reached", "{st}");
    assert_eq!(st["time_limit"], limit, "{st}");
}

#[test]
fn a_time_limit_ends_the_call_at_the_limit_also_across_a_reload() {
    let env = match find_env() {
        Ok(e) => e,
        Err(why) => return skipped(&why),
    };
    describe(&env);
    let dir = e2e_dir("time-limit");
    let ports = Ports::new();
    let (_agent, _late) = start_agents(&env, &dir, ports, 300);
    let (_carrier, _c503) = start_talking_carriers(&env, &dir, ports, 1000.0);
    let _fs = start_freeswitch(&env, &dir, ports);
    let mut esl = connect_ready(ports, &dir);
    let log = EventLog::listen(ports.esl);

    // 1. time_limit 3: ends 3 s after the bridge, by the switch.
    let data = place(
        &mut esl,
        json!({"from_extension": "1001", "to_phone": "0987654321", "time_limit": 3}),
    );
    let call = data["call_uuid"].as_str().unwrap().to_string();
    let b = data["b_leg_uuid"].as_str().unwrap().to_string();
    let st = wait_state(&mut esl, &call, "bridged", Duration::from_secs(15));
    assert_eq!(st["time_limit"], 3);
    let st = wait_state(&mut esl, &call, "ended", Duration::from_secs(10));
    assert_limited(&st, 3);
    let cdr3 = cdr(&log, &call);
    assert_limited(&cdr3, 3);
    let billsec = cdr3["billsec"].as_u64().unwrap();
    assert!(billsec.abs_diff(3) <= 1, "billsec {billsec}");
    let bridged = event_us(&log, "zorio_c2c::call.bridged", &call).expect("bridged event");
    let b_end = hangup_of(&log, &b);
    let ended: u64 = b_end["Event-Date-Timestamp"].parse().unwrap();
    let after_ms = (ended - bridged) / 1000;
    println!(
        "time_limit 3: customer's leg hung up {after_ms} ms after the bridge, billsec {billsec}"
    );
    assert!((2700..=3500).contains(&after_ms), "{after_ms} ms");
    assert_eq!(b_end["Hangup-Cause"], "ALLOTTED_TIMEOUT");
    assert_eq!(
        b_end
            .get("variable_sip_hangup_disposition")
            .map(String::as_str),
        Some("send_bye"),
        "the switch ended the customer's leg, not the carrier"
    );
    step("time_limit 3 ends the call 3 s after the bridge with ALLOTTED_TIMEOUT");

    // 2. Set before a reload, it holds for the adopted call.
    let data = place(
        &mut esl,
        json!({"from_extension": "1001", "to_phone": "0987654321", "time_limit": 4}),
    );
    let call = data["call_uuid"].as_str().unwrap().to_string();
    wait_state(&mut esl, &call, "bridged", Duration::from_secs(15));
    let mut admin = Esl::connect(ports.esl, Duration::from_secs(5)).unwrap();
    let reply = admin.api("reload mod_zorio_c2c");
    assert!(reply.contains("+OK"), "reload: {reply}");
    drop(admin);
    let mut esl = Esl::connect(ports.esl, Duration::from_secs(5)).unwrap();
    let st = wait_state(&mut esl, &call, "bridged", Duration::from_secs(5));
    assert_eq!(st["time_limit"], 4, "the adopted call knows its limit");
    let st = wait_state(&mut esl, &call, "ended", Duration::from_secs(10));
    assert_limited(&st, 4);
    let cdr4 = cdr(&log, &call);
    assert_limited(&cdr4, 4);
    let billsec = cdr4["billsec"].as_u64().unwrap();
    assert!(billsec.abs_diff(4) <= 1, "billsec {billsec}");
    println!("time_limit 4 across a reload: billsec {billsec}");
    step("the limit holds across reload mod_zorio_c2c");
}
