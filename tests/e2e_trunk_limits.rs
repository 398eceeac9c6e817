//! Per-trunk limits on a real FreeSWITCH with sipp phones and carriers:
//! 12 calls forced onto a trunk with `cps="2"` reach the carrier no faster
//! than 2 INVITEs in any second (timed by the carrier's own message log) and
//! all 12 are bridged; with `max-channels="3"` and an LCR route of two
//! trunks, the 4th concurrent call goes to the second trunk, its first
//! attempt saying `TRUNK_MAX_CHANNELS`. Calls are placed and ended over the
//! HTTP API, as a CRM does. Prints `SKIPPED` and why without a FreeSWITCH
//! (`FREESWITCH_BIN`).

mod e2e_common;
mod scratch;

use std::time::{Duration, Instant};

use e2e_common::*;
use serde_json::{json, Value};

const TOKEN: &str = "e2e-token-0123456789";

fn api(ports: Ports, method: &str, path: &str, body: &str) -> (String, Value) {
    let r = http(ports.http, method, path, &format!("Bearer {TOKEN}"), body);
    let json = r
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (r, json)
}

fn post(ports: Ports, body: Value) -> String {
    let (r, v) = api(
        ports,
        "POST",
        "/api/pbx/calls/click-to-call",
        &body.to_string(),
    );
    assert!(r.starts_with("HTTP/1.1 202"), "{r}");
    v["data"]["call_uuid"].as_str().unwrap().to_string()
}

fn call(ports: Ports, uuid: &str) -> Value {
    api(ports, "GET", &format!("/api/pbx/calls/{uuid}"), "").1["data"].clone()
}

fn wait_status(ports: Ports, uuid: &str, status: &str, within: Duration) -> Value {
    let until = Instant::now() + within;
    loop {
        let c = call(ports, uuid);
        if c["status"] == status {
            return c;
        }
        assert!(Instant::now() < until, "call {uuid} never {status}: {c}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// When each INVITE reached the carrier (seconds of the day, in arrival
/// order), from sipp's message log: its entries start `<date> <time>`.
fn invite_times(carrier: &Sipp) -> Vec<f64> {
    let mut day = 0.0;
    let mut last = 0.0;
    carrier
        .invites()
        .iter()
        .filter_map(|m| {
            let clock = m.lines().next()?.split_whitespace().nth(1)?;
            let mut hms = clock.split(':').map(|p| p.parse::<f64>().ok());
            let (h, mi, s) = (hms.next()??, hms.next()??, hms.next()??);
            let t = h * 3600.0 + mi * 60.0 + s;
            if t < last {
                day += 86_400.0; // past midnight
            }
            last = t;
            Some(day + t)
        })
        .collect()
}

#[test]
fn trunks_are_paced_and_never_overrun() {
    let env = match find_env() {
        Ok(e) => e,
        Err(why) => return skipped(&why),
    };
    let ports = Ports::new();
    let dir = e2e_dir("trunks");
    let (_agent, _late) = start_agents(&env, &dir, ports, 200);
    let (carrier, _carrier503) = start_carriers(&env, &dir, ports);
    // BACKUP paced at 2/s; POC (same carrier) at most 3 channels, then ALT.
    let trunks = format!(
        r#"<trunks>
          <trunk id="5" name="BACKUP" gateway="backup" cost="0.020" cps="2"/>
          <trunk id="4" name="POC" gateway="backup" cost="0.010" max-channels="3"/>
          <trunk id="6" name="ALT" dial-string="sofia/c2c/sip:${{number}}@127.0.0.1:{}" cost="0.030"/>
        </trunks>
        <lcr><route prefix="0" trunks="4,6"/></lcr>
        <http><param name="rate-limit-per-minute" value="0"/></http>"#,
        ports.carrier_ok
    );
    // Waiting agents hold their channels: RTP ports for 70 of them, in a
    // block of their own (the shared rig's 36 serve 18 channels).
    let rtp = 58_000 + (std::process::id() % 100) as u16 * 70;
    let xml = freeswitch_xml_with(ports, &default_webhooks(&dir.join("spool")), &trunks)
        .replace(
            &format!(r#"name="rtp-start-port" value="{}""#, ports.rtp_start),
            &format!(r#"name="rtp-start-port" value="{rtp}""#),
        )
        .replace(
            &format!(r#"name="rtp-end-port" value="{}""#, ports.rtp_start + 35),
            &format!(r#"name="rtp-end-port" value="{}""#, rtp + 69),
        );
    assert!(
        xml.contains(&format!("value=\"{}\"", rtp + 69)),
        "RTP range set"
    );
    let _fs = start_freeswitch_xml(&env, &dir, &xml);
    let _esl = connect_ready(ports, &dir);
    step("FreeSWITCH up: BACKUP cps=2, POC max-channels=3, LCR POC then ALT");

    // 1. Twelve calls forced onto BACKUP, offered at 3/s (above its cps);
    // each is hung up once bridged.
    let calls: Vec<String> = (0..12)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(333));
            post(
                ports,
                json!({"from_extension": "1001", "to_phone": format!("09876543{i:02}"), "trunk_id": 5}),
            )
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(60);
    let mut open: Vec<&String> = calls.iter().collect();
    let mut bridged = std::collections::HashSet::new();
    while !open.is_empty() {
        assert!(Instant::now() < until, "calls never ended: {open:?}");
        open.retain(|c| {
            let s = call(ports, c);
            if s["status"] == "bridged" {
                bridged.insert(c.to_string());
                api(ports, "DELETE", &format!("/api/pbx/calls/{c}"), "");
            }
            s["status"] != "ended"
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(bridged.len(), 12, "every call was seen bridged");
    for c in &calls {
        let end = call(ports, c);
        let attempts = end["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{end}");
        assert_eq!(attempts[0]["result"], "answered", "{end}");
        assert!(end["legs"]["B"]["answered_at"].is_string(), "{end}");
        assert_eq!(end["outcome"], "completed", "{end}");
    }
    let mut at = invite_times(&carrier);
    assert_eq!(at.len(), 12, "one INVITE a call");
    at.sort_by(f64::total_cmp);
    let gaps: Vec<String> = at
        .windows(2)
        .map(|w| format!("{:.3}", w[1] - w[0]))
        .collect();
    for w in at.windows(3) {
        assert!(
            w[2] - w[0] >= 1.0,
            "3 INVITEs within {:.3} s: gaps {gaps:?}",
            w[2] - w[0]
        );
    }
    // Agents whose call waited for its slot heard ringback (the switch's
    // own log of what each agent's session executed).
    let log = std::fs::read_to_string(dir.join("log/freeswitch.log")).unwrap_or_default();
    let rung: std::collections::HashSet<&str> = log
        .lines()
        .filter(|l| l.contains(" EXECUTE ") && l.contains("gentones(%(2000,4000,440,480)|-1)"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        rung.len() >= 4,
        "{} waiting agents heard ringback",
        rung.len()
    );
    step(&format!(
        "{} of the agents waiting for the trunk heard ringback (gentones), stopped for their bridge",
        rung.len()
    ));
    step(&format!(
        "12 calls offered at 3/s onto cps=2: 12 INVITEs over {:.2} s, never 3 within a second (gaps {gaps:?}); all 12 answered and bridged",
        at[11] - at[0]
    ));

    // 2. Four concurrent LCR calls: POC carries three, the fourth goes to ALT.
    let mut up = Vec::new();
    for i in 0..4 {
        let c = post(
            ports,
            json!({"from_extension": "1001", "to_phone": format!("098765440{i}")}),
        );
        let bridged = wait_status(ports, &c, "bridged", Duration::from_secs(20));
        up.push((c, bridged));
    }
    for (i, (_, c)) in up.iter().enumerate() {
        let attempts = c["attempts"].as_array().unwrap();
        let names: Vec<&str> = attempts
            .iter()
            .map(|a| a["trunk_name"].as_str().unwrap())
            .collect();
        if i < 3 {
            assert_eq!(names, ["POC"], "call {i}: {c}");
        } else {
            assert_eq!(names, ["POC", "ALT"], "call {i}: {c}");
            assert_eq!(attempts[0]["result"], "TRUNK_MAX_CHANNELS", "{c}");
            assert_eq!(attempts[1]["result"], "answered", "{c}");
        }
    }
    let (metrics, _) = api(ports, "GET", "/metrics", "");
    assert!(
        metrics.contains("c2c_trunk_channels{trunk=\"POC\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("c2c_trunk_limited_total{trunk=\"POC\",limit=\"max_channels\"} 1"),
        "{metrics}"
    );
    // The switch's event lag, as its channel events reached the module, and
    // its event queue's depth: known, and small on an idle switch.
    let lag = gauge(&metrics, "c2c_switch_event_lag_seconds");
    assert!((0.0..2.0).contains(&lag), "event lag {lag} s");
    let backlog = gauge(&metrics, "c2c_switch_event_backlog");
    assert!((0.0..1000.0).contains(&backlog), "event backlog {backlog}");
    // What the queue holds: 10,000 × its dispatch threads at most (2 or more).
    let capacity = gauge(&metrics, "c2c_switch_event_queue_capacity");
    assert!(
        capacity >= 20_000.0 && capacity % 10_000.0 == 0.0,
        "capacity {capacity}"
    );
    step(&format!("max-channels=3: calls 1-3 on POC, the 4th passed over POC (TRUNK_MAX_CHANNELS) to ALT; /metrics shows POC at 3 channels, the switch's events {:.0} ms late, {backlog} in its queue", lag * 1000.0));
    for (c, _) in &up {
        api(ports, "DELETE", &format!("/api/pbx/calls/{c}"), "");
    }
    for (c, _) in &up {
        wait_status(ports, c, "ended", Duration::from_secs(20));
    }
}

/// The value of the unlabelled gauge `name` in a `/metrics` answer.
fn gauge(metrics: &str, name: &str) -> f64 {
    metric(metrics, name).unwrap_or_else(|| panic!("no {name} in {metrics}"))
}
