//! End to end against a real FreeSWITCH: the freshly built module loaded into
//! a FreeSWITCH started on a throwaway loopback config, SIP parties played by
//! sipp, everything driven and observed over the event socket (ESL).
//!
//! Runs when `FREESWITCH_BIN` names a FreeSWITCH binary (modules from
//! `FREESWITCH_MOD_DIR`, default `<bin>/../lib/freeswitch/mod`) and sipp is
//! found (`SIPP_BIN` or `sipp` on PATH); otherwise prints `SKIPPED: <why>`.
//! `ZORIO_C2C_SO` overrides the module to test. Build the module against that
//! switch's headers (`PKG_CONFIG_PATH=<prefix>/lib/pkgconfig cargo build --release`).

mod e2e_common;
mod scratch;

use std::fs;
use std::time::{Duration, Instant};

use e2e_common::*;

// ----------------------------------------------------------------- test ---

/// An export of the agent's own (its directory's `export_vars`).
const ADMIN_EXPORT: &str = "zorio_e2e_site";

#[test]
fn click_to_call_against_a_real_freeswitch() {
    let env = match find_env() {
        Ok(e) => e,
        Err(why) => return skipped(&why),
    };
    let ports = Ports::new();
    let dir = e2e_dir("e2e");
    let version = describe(&env);

    let (agent, late) = start_agents(&env, &dir, ports, 1500);
    let (carrier, carrier503) = start_carriers(&env, &dir, ports);
    let agent_auto = Sipp::start(
        &env,
        &dir,
        "agent_auto_answer",
        &scenario_auto_answers(),
        ports.agent_auto,
        ports.rtp_start + 36,
    );
    let dialplan_carrier = Sipp::start(
        &env,
        &dir,
        "carrier_dialplan",
        &scenario_answers("dialplan carrier", 300),
        ports.carrier_dialplan,
        ports.rtp_start + 56,
    );

    // The agent's own exports (an admin's, from the directory) go on with
    // the module's: its variable reaches the customer's leg beside the CRM's
    // X- headers. (Not a `sip_h_` one: sofia copies those by itself.)
    let own = r#"<variable name="outbound_caller_id_number" value="0900000021"/>"#;
    let xml = freeswitch_xml(ports, &default_webhooks(&dir.join("spool")));
    assert!(xml.contains(own), "user 1001's variables moved");
    let xml = xml.replacen(
        own,
        &format!(
            r#"{own}<variable name="{ADMIN_EXPORT}" value="paris"/><variable name="export_vars" value="{ADMIN_EXPORT}"/>"#
        ),
        1,
    );
    let freeswitch = start_freeswitch_xml(&env, &dir, &xml);
    let mut esl = connect_ready(ports, &dir);
    step("FreeSWITCH up with mod_zorio_c2c loaded");
    let r = http_get(ports.http, "/api/pbx/caller-ids", "e2e-token-0123456789");
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("0900000020"),
        "{r}"
    );
    let r = esl.api("pbx GET /api/pbx/caller-ids");
    assert!(r.starts_with("200 ") && r.contains("0900000020"), "{r}");
    let mut r = String::new();
    wait_for("mod_xml_rpc", Duration::from_secs(10), || {
        r = http(ports.xmlrpc, "GET", "/api/pbx/caller-ids", XMLRPC_AUTH, "");
        r.starts_with("HTTP/1.1 200")
    });
    assert!(
        r.contains("X-PBX-Status: 200") && r.contains("0900000020"),
        "{r}"
    );
    step("the module's HTTP API answers on its own listener, through `pbx GET /api/pbx/caller-ids`, and through mod_xml_rpc (/api/pbx/caller-ids, X-PBX-Status: 200)");
    let events = EventLog::listen(ports.esl);
    std::thread::sleep(Duration::from_millis(300));

    // Refusals come straight from the core through fs_cli.
    let r = esl.api("c2c 1003 0987654321");
    assert!(r.starts_with("-ERR extension_inactive"), "{r}");
    let r = esl.api("c2c 1999 0987654321");
    assert!(r.starts_with("-ERR extension_not_found"), "{r}");
    let r = esl.api("c2c");
    assert!(r.starts_with("-USAGE"), "{r}");
    step("c2c answers usage, unknown and inactive extensions from the directory");

    // 1. The main flow: agent rings, answers, customer dialled (503 on POC,
    //    failover to BACKUP), bridged; header and caller id on the INVITE.
    // FreeSWITCH itself refuses channel variable values holding `${` (it would
    // silently drop the header): the request is refused with a field error instead.
    let hostile = "a,b}c'd^^:e|f {origination_uuid=x}[g]";
    let r = esl.api(
        r#"c2c {"from_extension":"1001","to_phone":"0987654321","headers":{"Dollar":"${uuid}"}}"#,
    );
    assert!(
        r.starts_with("-ERR validation_failed") && r.contains("headers.Dollar (invalid_value)"),
        "{r}"
    );
    let call = place(
        &mut esl,
        serde_json::json!({
            "from_extension": "1001", "to_phone": "0987654321", "caller_id": "0900000020",
            "headers": {"CRM-Lead-Id": "LEAD-42", "Hostile": hostile}
        }),
    );
    let (call_uuid, a, b) = (
        call["call_uuid"].as_str().unwrap().to_string(),
        call["a_leg_uuid"].as_str().unwrap().to_string(),
        call["b_leg_uuid"].as_str().unwrap().to_string(),
    );
    assert_eq!(
        call["routing_mode"], "dialplan_default",
        "LCR picks the trunks"
    );
    let s = wait_state(&mut esl, &call_uuid, "bridged", Duration::from_secs(20));
    let ev = &events;
    wait_for("CHANNEL_BRIDGE", Duration::from_secs(5), || {
        ev.position("CHANNEL_BRIDGE", &a).is_some() || ev.position("CHANNEL_BRIDGE", &b).is_some()
    });
    let a_ring = ev
        .position("CHANNEL_PROGRESS", &a)
        .or_else(|| ev.position("CHANNEL_PROGRESS_MEDIA", &a))
        .expect("A-leg progress");
    let a_answer = ev.position("CHANNEL_ANSWER", &a).expect("A-leg answer");
    let b_create = ev.position("CHANNEL_CREATE", &b).expect("B-leg created");
    assert!(a_ring < a_answer, "agent rang before answering");
    assert_eq!(agent.invites().len(), 1, "the agent's phone got one INVITE");
    assert!(a_answer < b_create, "customer dialled only after the agent answered (A answer #{a_answer}, B create #{b_create})");
    step("agent rings first (CHANNEL_PROGRESS of A before its CHANNEL_ANSWER)");
    step(
        "customer dialled only after the agent answered (A CHANNEL_ANSWER before B CHANNEL_CREATE)",
    );
    // `show channels` reads the core database, written a moment later.
    let mut channels = String::new();
    wait_for("both legs in show channels", Duration::from_secs(5), || {
        channels = esl.api("show channels as json");
        let ch = json_of(&channels);
        let uuids: Vec<String> = ch["rows"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|c| c["uuid"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        uuids.contains(&a) && uuids.contains(&b)
    });
    let bridged = esl.api(&format!("uuid_getvar {a} bridge_uuid"));
    assert!(
        bridged.trim() == b || esl.api(&format!("uuid_getvar {b} bridge_uuid")).trim() == a,
        "legs bridged to each other: {bridged}"
    );
    step("bridged: both legs up in show channels, CHANNEL_BRIDGE seen, bridge_uuid links them");
    let attempts = s["attempts"].to_string();
    assert_eq!(s["trunk_name"], "BACKUP", "{s}");
    assert_eq!(carrier503.invites().len(), 1, "POC (503) tried once");
    let invites = carrier.invites();
    assert_eq!(invites.len(), 1, "BACKUP reached once");
    let inv = &invites[0];
    assert!(
        inv.contains("X-CRM-Lead-Id: LEAD-42"),
        "X- header on the customer INVITE:\n{inv}"
    );
    assert!(
        inv.contains(&format!("X-Hostile: {hostile}")),
        "hostile header value verbatim:\n{inv}"
    );
    assert_eq!(
        esl.api("uuid_exists x").trim(),
        "false",
        "no channel named by an injected origination_uuid"
    );
    let from = inv.lines().find(|l| l.starts_with("From:")).unwrap_or("");
    assert!(from.contains("0900000020"), "caller id in From: {from}");
    let site = esl.api(&format!("uuid_getvar {b} {ADMIN_EXPORT}"));
    assert_eq!(
        site.trim(),
        "paris",
        "the agent's own export reached the customer's leg"
    );
    let agent_exports = esl.api(&format!("uuid_getvar {a} export_vars"));
    assert_eq!(
        agent_exports.trim(),
        ADMIN_EXPORT,
        "the agent's export_vars, once the attempt is over, is the admin's again"
    );
    assert_eq!(esl.api(&format!("uuid_exists {b}")).trim(), "true");
    step(&format!(
        "failover: POC answered 503, BACKUP connected (attempts {attempts})"
    ));
    step(&format!(
        "customer INVITE carries X-CRM-Lead-Id: LEAD-42 and X-Hostile: {hostile} verbatim; a ${{uuid}} value refused with 422 headers.Dollar; {from}"
    ));
    step(&format!(
        "the agent's own export_vars ({ADMIN_EXPORT}, from the directory) kept: the customer's leg has {ADMIN_EXPORT}={site:?}, and the agent's export_vars is {agent_exports:?} again after the attempt"
    ));
    // Fired once the call's bridge is committed to the store (its fsync),
    // after the state the call is in says so.
    wait_for(
        "CUSTOM zorio_c2c::call.bridged",
        Duration::from_secs(5),
        || ev.position("zorio_c2c::call.bridged", &call_uuid).is_some(),
    );
    step("CUSTOM events zorio_c2c::call.* fired");
    // fs_cli's TAB sends `console_complete <line>`: our subcommands, then the
    // uuids of the calls in flight (our completion function).
    let r = esl.api("console_complete c2c h");
    assert!(r.contains("hangup") && r.contains("help"), "{r}");
    let r = esl.api(&format!("console_complete c2c hangup {}", &call_uuid[..8]));
    assert!(r.contains(&call_uuid[8..]), "{r}");
    step(&format!("tab completion: `c2c h` offers hangup and help; `c2c hangup {}` completes the live call's uuid", &call_uuid[..8]));
    // Our lines about the call carry its channels' uuids (logfile `uuid`:
    // each line starts with it), so fs_cli's /uuid shows them with the switch's.
    let log = std::fs::read_to_string(dir.join("log/freeswitch.log")).unwrap_or_default();
    for (uuid, text) in [
        (
            &a,
            format!("pbx.call.answered of call {call_uuid} (seq 2, leg A)"),
        ),
        (&b, "originate sofia/gateway/".to_string()),
        (&a, format!("pbx.call.bridged of call {call_uuid}")),
    ] {
        assert!(
            log.lines()
                .any(|l| l.starts_with(uuid.as_str()) && l.contains(&text)),
            "no log line tagged {uuid} with {text:?}"
        );
    }
    step("log lines about the call carry its channel uuids (A: answered, bridged; B: originate)");
    let r = esl.api(&format!("c2c hangup {call_uuid}"));
    assert!(r.starts_with("+OK"), "{r}");
    let s = wait_state(&mut esl, &call_uuid, "ended", Duration::from_secs(10));
    assert_eq!(s["outcome"], "completed", "{s}");
    step("c2c hangup ends the bridged call (outcome completed)");

    // 2. Agent never answers: no customer INVITE.
    let before = carrier.invites().len() + carrier503.invites().len();
    let call = place(
        &mut esl,
        serde_json::json!({"from_extension": "1002", "to_phone": "0987654321"}),
    );
    let call_uuid = call["call_uuid"].as_str().unwrap().to_string();
    let s = wait_state(&mut esl, &call_uuid, "ended", Duration::from_secs(15));
    assert_eq!(s["outcome"], "agent_no_answer", "{s}");
    let agent_end = format!(
        "{} / SIP {}",
        s["legs"]["A"]["hangup_cause"], s["legs"]["A"]["sip_code"]
    );
    assert_eq!(late.invites().len(), 1, "the agent was rung");
    assert_eq!(
        carrier.invites().len() + carrier503.invites().len(),
        before,
        "no customer dialled"
    );
    assert!(
        late.messages().contains("CANCEL sip:"),
        "the agent's ringing was cancelled"
    );
    step(&format!("agent no-answer: CANCEL after a-leg-timeout, customer never dialled (outcome agent_no_answer, A-leg {agent_end})"));

    // 2b. c2c hangup while the agent's phone rings: cancelled at once.
    let call = place(
        &mut esl,
        serde_json::json!({"from_extension": "1002", "to_phone": "0987654321"}),
    );
    let call_uuid = call["call_uuid"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let r = esl.api(&format!("c2c hangup {call_uuid}"));
    assert!(r.starts_with("+OK"), "{r}");
    let s = wait_state(&mut esl, &call_uuid, "ended", Duration::from_secs(3));
    assert_eq!(s["outcome"], "cancelled", "{s}");
    step(&format!(
        "c2c hangup while the agent rings: cancelled in {:?}",
        t.elapsed()
    ));

    // 2c. Forced trunks and the dialplan route.
    forced_trunks(&mut esl, &carrier, &carrier503);
    dialplan_route(
        &mut esl,
        &carrier,
        &carrier503,
        &dialplan_carrier,
        &dir.join("log/freeswitch.log"),
    );

    // 3. Reload 20 times with calls in flight (a bridged one and ringing ones).
    let keep = place(
        &mut esl,
        serde_json::json!({"from_extension": "1001", "to_phone": "0987654321", "trunk_id": 5}),
    );
    assert_eq!(
        keep["caller_id"], "0900000021",
        "the extension's outbound_caller_id_number from the directory"
    );
    let keep_a = keep["a_leg_uuid"].as_str().unwrap().to_string();
    let keep_b = keep["b_leg_uuid"].as_str().unwrap().to_string();
    wait_state(
        &mut esl,
        keep["call_uuid"].as_str().unwrap(),
        "bridged",
        Duration::from_secs(15),
    );
    let started = Instant::now();
    for i in 0..20 {
        let body = r#"{"from_extension": "1002", "to_phone": "0987654321"}"#;
        match i % 3 {
            0 => {
                let r = esl.api("c2c 1002 0987654321");
                assert!(r.starts_with("+OK"), "reload round {i}: {r}");
            }
            1 => {
                let r = esl.api(&format!("pbx POST /api/pbx/calls/click-to-call {body}"));
                assert!(r.starts_with("202 "), "reload round {i}: {r}");
            }
            _ => {
                let r = http(
                    ports.xmlrpc,
                    "POST",
                    "/api/pbx/calls/click-to-call",
                    XMLRPC_AUTH,
                    body,
                );
                assert!(
                    r.contains("X-PBX-Status: 202"),
                    "reload round {i} via mod_xml_rpc: {r}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(150));
        let r = esl.api("reload mod_zorio_c2c");
        assert!(r.contains("+OK"), "reload round {i}: {r}");
        assert_eq!(
            esl.api("module_exists mod_zorio_c2c").trim(),
            "true",
            "round {i}"
        );
    }
    let took = started.elapsed();
    assert!(esl.api("status").contains("UP"));
    let r = http_get(ports.http, "/api/pbx/caller-ids", "e2e-token-0123456789");
    assert!(
        r.starts_with("HTTP/1.1 200"),
        "HTTP listener back after 20 reloads: {r}"
    );
    let keep_call = keep["call_uuid"].as_str().unwrap();
    let s = esl.api("c2c status");
    assert!(
        s.starts_with("+OK 1 calls") && s.contains(keep_call),
        "after the reloads only the bridged call, adopted by each load: {s}"
    );
    assert_eq!(
        esl.api(&format!("uuid_exists {keep_a}")).trim(),
        "true",
        "bridged call survives reloads"
    );
    assert_eq!(esl.api(&format!("uuid_exists {keep_b}")).trim(), "true");
    let call = place(
        &mut esl,
        serde_json::json!({"from_extension": "1001", "to_phone": "0987654321", "trunk_name": "BACKUP"}),
    );
    let call_uuid = call["call_uuid"].as_str().unwrap().to_string();
    wait_state(&mut esl, &call_uuid, "bridged", Duration::from_secs(15));
    esl.api(&format!("c2c hangup {call_uuid}"));
    wait_state(&mut esl, &call_uuid, "ended", Duration::from_secs(10));
    esl.api(&format!("uuid_kill {keep_a}"));
    wait_for("ringing legs cancelled", Duration::from_secs(10), || {
        !esl.api("show channels").contains("1002@")
    });
    step(&format!("reload mod_zorio_c2c x20 with calls in flight in {took:?}: no crash, no wedge, bridged call kept and adopted, next call bridged (calls placed via c2c, pbx and mod_xml_rpc)"));
    // 4. A bad config is refused whole; the old one stays.
    let conf = dir.join("conf/freeswitch.xml");
    let good = fs::read_to_string(&conf).unwrap();
    fs::write(&conf, good.replace("<trunk id=\"5\"", "<trunk id=\"4\"")).unwrap();
    esl.api("reloadxml");
    let r = esl.api("c2c reload");
    assert!(
        r.starts_with("-ERR config_invalid trunks/trunk[2]@id"),
        "{r}"
    );
    let r = esl.api("reload mod_zorio_c2c");
    assert!(
        r.contains("-ERR loading module"),
        "bad config refused at load: {r}"
    );
    assert_eq!(esl.api("module_exists mod_zorio_c2c").trim(), "false");
    let log = fs::read_to_string(dir.join("log/freeswitch.log")).unwrap_or_default();
    let why = log
        .lines()
        .rev()
        .find(|l| l.contains("mod_zorio_c2c not loaded"))
        .unwrap_or("")
        .to_string();
    assert!(
        why.contains("trunks/trunk[2]@id"),
        "the log names the element: {why}"
    );
    fs::write(&conf, good).unwrap();
    esl.api("reloadxml");
    let r = esl.api("load mod_zorio_c2c");
    assert!(r.contains("+OK"), "{r}");
    step("bad config: c2c reload keeps the old one, load refuses (naming trunks/trunk[2]@id), good config loads again");
    // 5. auto-answer switched on by `c2c reload` (it re-reads the config).
    auto_answer_by_reload(&mut esl, &conf, &agent, &agent_auto);
    println!("e2e: all steps passed against {version}");
    drop(esl);
    drop(freeswitch);
    drop((
        agent,
        late,
        agent_auto,
        carrier,
        carrier503,
        dialplan_carrier,
    ));
    // Kept when a step fails (the panic skips this), for its logs.
    let _ = fs::remove_dir_all(&dir);
}

/// The 202 of `c2c <json>` and the call's uuids (call, A, B).
fn place_call(esl: &mut Esl, body: serde_json::Value) -> (serde_json::Value, [String; 3]) {
    let d = place(esl, body);
    let uuid = |k: &str| {
        d[k].as_str()
            .unwrap_or_else(|| panic!("{k}: {d}"))
            .to_string()
    };
    let ids = [uuid("call_uuid"), uuid("a_leg_uuid"), uuid("b_leg_uuid")];
    (d, ids)
}

/// `(trunk_id, trunk_name)` of each attempt in a `c2c status` answer.
fn attempt_trunks(s: &serde_json::Value) -> Vec<(serde_json::Value, serde_json::Value)> {
    s["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("no attempts: {s}"))
        .iter()
        .map(|a| (a["trunk_id"].clone(), a["trunk_name"].clone()))
        .collect()
}

/// `trunk_id` / `trunk_name` force one trunk (`direct_gateway`): the INVITE
/// goes to that trunk's gateway only, and a 503 there ends the call (no failover).
fn forced_trunks(esl: &mut Esl, carrier: &Sipp, carrier503: &Sipp) {
    use serde_json::json;
    let (ok0, bad0) = (carrier.invites().len(), carrier503.invites().len());
    // trunk_id 4 = POC, whose carrier answers 503; LCR would fail over to BACKUP.
    let (d, [call, _, _]) = place_call(
        esl,
        json!({"from_extension": "1001", "to_phone": "0987654321", "trunk_id": 4}),
    );
    assert_eq!(d["routing_mode"], "direct_gateway", "{d}");
    assert_eq!(
        (&d["trunk_id"], &d["trunk_name"]),
        (&json!(4), &json!("POC")),
        "{d}"
    );
    let s = wait_state(esl, &call, "ended", Duration::from_secs(20));
    assert_eq!(s["outcome"], "customer_failed", "{s}");
    assert_eq!(attempt_trunks(&s), vec![(json!(4), json!("POC"))], "{s}");
    assert_eq!(s["attempts"][0]["sip_code"], 503, "{s}");
    assert_eq!(
        (&s["trunk_id"], &s["trunk_name"]),
        (&json!(4), &json!("POC")),
        "{s}"
    );
    assert_eq!(
        carrier503.invites().len(),
        bad0 + 1,
        "POC's gateway got the INVITE"
    );
    // Give a (wrong) failover time to show up before saying there was none.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(carrier.invites().len(), ok0, "no failover to BACKUP");
    step(&format!(
        "forced trunk_id 4: 202 routing_mode direct_gateway, trunk 4/POC; INVITE only to POC's gateway, its 503 ends the call with no failover (outcome customer_failed, c2c status: trunk POC, 1 attempt {})",
        s["attempts"][0]["result"]
    ));

    // trunk_name BACKUP (case-insensitive) = trunk 5.
    let (d, [call, a, b]) = place_call(
        esl,
        json!({"from_extension": "1001", "to_phone": "0987654321", "trunk_name": "backup"}),
    );
    assert_eq!(d["routing_mode"], "direct_gateway", "{d}");
    assert_eq!(
        (&d["trunk_id"], &d["trunk_name"]),
        (&json!(5), &json!("BACKUP")),
        "{d}"
    );
    let s = wait_state(esl, &call, "bridged", Duration::from_secs(20));
    assert_eq!(attempt_trunks(&s), vec![(json!(5), json!("BACKUP"))], "{s}");
    assert_eq!(s["attempts"][0]["result"], "answered", "{s}");
    assert_eq!(
        (&s["trunk_id"], &s["trunk_name"]),
        (&json!(5), &json!("BACKUP")),
        "{s}"
    );
    assert_eq!(
        carrier.invites().len(),
        ok0 + 1,
        "BACKUP's gateway got the INVITE"
    );
    assert_eq!(carrier503.invites().len(), bad0 + 1, "POC not tried");
    assert_eq!(esl.api(&format!("uuid_exists {a}")).trim(), "true");
    assert_eq!(esl.api(&format!("uuid_exists {b}")).trim(), "true");
    let r = esl.api(&format!("c2c hangup {call}"));
    assert!(r.starts_with("+OK"), "{r}");
    let s = wait_state(esl, &call, "ended", Duration::from_secs(10));
    assert_eq!(s["outcome"], "completed", "{s}");
    step("forced trunk_name \"backup\": 202 routing_mode direct_gateway, trunk 5/BACKUP; INVITE only to BACKUP's gateway, bridged (c2c status: trunk BACKUP, 1 attempt answered), c2c hangup: completed");
}

/// A number no LCR route covers goes through the XML dialplan
/// (`loopback/<number>/default/XML`), whose extension bridges it to a carrier.
fn dialplan_route(
    esl: &mut Esl,
    carrier: &Sipp,
    carrier503: &Sipp,
    dialplan_carrier: &Sipp,
    log_path: &std::path::Path,
) {
    use serde_json::json;
    let (ok0, bad0) = (carrier.invites().len(), carrier503.invites().len());
    let (d, [call, a, b]) = place_call(
        esl,
        json!({"from_extension": "1001", "to_phone": "4412345678",
               "caller_id": "0900000020", "headers": {"CRM-Lead-Id": "LEAD-44"}}),
    );
    assert_eq!(d["routing_mode"], "dialplan_default", "{d}");
    assert!(d["trunk_id"].is_null() && d["trunk_name"].is_null(), "{d}");
    let s = wait_state(esl, &call, "bridged", Duration::from_secs(20));
    assert_eq!(attempt_trunks(&s), vec![(json!(null), json!(null))], "{s}");
    assert_eq!(s["attempts"][0]["result"], "answered", "{s}");
    assert!(s["trunk_id"].is_null() && s["trunk_name"].is_null(), "{s}");
    let invites = dialplan_carrier.invites();
    assert_eq!(invites.len(), 1, "the dialplan's carrier got one INVITE");
    assert!(
        invites[0].contains("INVITE sip:4412345678@"),
        "the customer's number: {}",
        invites[0]
    );
    // Our variables ride the loopback pair into the dialplan's bridge.
    assert!(
        invites[0].contains("X-CRM-Lead-Id: LEAD-44"),
        "X- header through the dialplan: {}",
        invites[0]
    );
    let from = invites[0]
        .lines()
        .find(|l| l.starts_with("From:"))
        .unwrap_or("");
    assert!(
        from.contains("0900000020"),
        "caller id through the dialplan: {from}"
    );
    assert_eq!(
        (carrier.invites().len(), carrier503.invites().len()),
        (ok0, bad0),
        "no trunk's gateway used"
    );
    let b_name = esl.api(&format!("uuid_getvar {b} channel_name"));
    assert!(b_name.contains("loopback/4412345678"), "B-leg: {b_name}");
    // Both legs up, and still up while the agent talks: mod_loopback would
    // "bow out" (drop our loopback B-leg) a few frames into the conversation.
    std::thread::sleep(Duration::from_secs(3));
    let stats = esl.api(&format!(
        r#"json {{"command":"mediaStats","data":{{"uuid":"{a}"}}}}"#
    ));
    let agent_packets = json_of(&stats)["response"]["audio"]["in_packet_count"].clone();
    assert!(
        agent_packets.as_u64().unwrap_or(0) > 50,
        "the agent talks: {stats}"
    );
    for leg in [&a, &b] {
        assert_eq!(
            esl.api(&format!("uuid_exists {leg}")).trim(),
            "true",
            "{leg} still up"
        );
    }
    let log = fs::read_to_string(log_path).unwrap_or_default();
    assert!(
        !log.contains("attempting direct connection"),
        "mod_loopback bowed out"
    );
    let s = status(esl, &call);
    assert_eq!(s["status"], "bridged", "{s}");
    let mut channels = String::new();
    wait_for("the dialplan's bridge up", Duration::from_secs(5), || {
        channels = esl.api("show channels");
        channels.contains("sofia/c2c/sip:4412345678@")
    });
    let r = esl.api(&format!("c2c hangup {call}"));
    assert!(r.starts_with("+OK"), "{r}");
    let s = wait_state(esl, &call, "ended", Duration::from_secs(10));
    assert_eq!(s["outcome"], "completed", "{s}");
    wait_for("every leg gone", Duration::from_secs(10), || {
        !esl.api("show channels").contains("4412345678")
    });
    assert!(
        dialplan_carrier.messages().contains("BYE sip:"),
        "the customer got a BYE"
    );
    step(&format!(
        "uncovered number 4412345678: 202 routing_mode dialplan_default, trunk null; B-leg {} ran the XML dialplan of context default, whose bridge reached the carrier (INVITE sip:4412345678@… with X-CRM-Lead-Id and the caller id in From); both legs still up 3 s on with the agent talking ({agent_packets} RTP packets in, no loopback bowout), c2c status: trunk null, 1 attempt answered; c2c hangup: completed, BYE to the customer",
        b_name.trim()
    ));
}

/// `auto-answer` true, taken by `c2c reload`: the agent's INVITE asks its
/// phone to answer by itself (sofia's `sip_auto_answer`: `Call-Info: …answer-after=0`).
fn auto_answer_by_reload(esl: &mut Esl, conf: &std::path::Path, agent: &Sipp, agent_auto: &Sipp) {
    let good = fs::read_to_string(conf).unwrap();
    let rung = agent.invites();
    assert!(!rung.is_empty());
    assert!(
        rung.iter().all(|i| !i.contains("answer-after")),
        "no auto-answer before it is configured"
    );
    let on = good.replacen(
        r#"<param name="a-leg-timeout""#,
        r#"<param name="auto-answer" value="true"/>
        <param name="a-leg-timeout""#,
        1,
    );
    assert_ne!(on, good);
    fs::write(conf, &on).unwrap();
    esl.api("reloadxml");
    let r = esl.api("c2c reload");
    assert!(r.starts_with("+OK"), "{r}");
    let (_, [call, _, _]) = place_call(
        esl,
        serde_json::json!({"from_extension": "1004", "to_phone": "0987654321", "trunk_id": 5}),
    );
    wait_state(esl, &call, "bridged", Duration::from_secs(20));
    let invites = agent_auto.invites();
    assert_eq!(invites.len(), 1, "agent 1004 rung once");
    let info = invites[0]
        .lines()
        .find(|l| l.starts_with("Call-Info:") && l.contains("answer-after=0"))
        .unwrap_or_else(|| panic!("no Call-Info answer-after=0:\n{}", invites[0]))
        .trim()
        .to_string();
    let r = esl.api(&format!("c2c hangup {call}"));
    assert!(r.starts_with("+OK"), "{r}");
    wait_state(esl, &call, "ended", Duration::from_secs(10));
    fs::write(conf, &good).unwrap();
    esl.api("reloadxml");
    let r = esl.api("c2c reload");
    assert!(r.starts_with("+OK"), "{r}");
    step(&format!(
        "auto-answer=true taken by c2c reload: the agent's INVITE carries {info} (none of the {} agent INVITEs before it did), agent answered, call bridged",
        rung.len()
    ));
}
