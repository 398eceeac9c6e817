//! `agent-busy reject` on a real FreeSWITCH with sipp phones: a second
//! click-to-call for 1001 while its first call is bridged gets 409
//! `agent_busy` (HTTP) and `-ERR agent_busy` (fs_cli), and the agent's phone
//! gets no second INVITE; a call of 1001 the module did not place (an
//! `originate` from the console) makes it busy too. Prints `SKIPPED` and why
//! without a FreeSWITCH (`FREESWITCH_BIN`).

mod e2e_common;
mod scratch;

use std::time::Duration;

use e2e_common::*;
use serde_json::json;

const TOKEN: &str = "e2e-token-0123456789";

fn post(ports: Ports, ext: &str) -> String {
    let body = json!({"from_extension": ext, "to_phone": "0987654321"}).to_string();
    http(
        ports.http,
        "POST",
        "/api/pbx/calls/click-to-call",
        &format!("Bearer {TOKEN}"),
        &body,
    )
}

#[test]
fn a_busy_agent_is_not_rung_again() {
    let env = match find_env() {
        Ok(e) => e,
        Err(why) => return skipped(&why),
    };
    let ports = Ports::new();
    let dir = e2e_dir("busy");
    let (agent, _late) = start_agents(&env, &dir, ports, 300);
    let (_carrier, _carrier503) = start_carriers(&env, &dir, ports);
    let _freeswitch = start_freeswitch_extra(
        &env,
        &dir,
        ports,
        &default_webhooks(&dir.join("spool")),
        r#"<settings><param name="agent-busy" value="reject"/></settings>"#,
    );
    let mut esl = connect_ready(ports, &dir);
    step("FreeSWITCH up, agent-busy reject");

    let first = place(
        &mut esl,
        json!({"from_extension": "1001", "to_phone": "0987654321"}),
    );
    let call = first["call_uuid"].as_str().unwrap().to_string();
    wait_state(&mut esl, &call, "bridged", Duration::from_secs(20));
    assert_eq!(agent.invites().len(), 1, "the agent was rung once");
    step("first call of 1001 bridged");

    let r = post(ports, "1001");
    assert!(r.starts_with("HTTP/1.1 409"), "{r}");
    assert!(r.contains("\"agent_busy\""), "{r}");
    let r = esl.api("c2c 1001 0987654321");
    assert!(r.starts_with("-ERR agent_busy"), "{r}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(agent.invites().len(), 1, "no second INVITE to the agent");
    step("second click-to-call for 1001: HTTP 409 agent_busy, fs_cli -ERR agent_busy, no INVITE");

    let r = esl.api(&format!("c2c hangup {call}"));
    assert!(r.starts_with("+OK"), "{r}");
    wait_state(&mut esl, &call, "ended", Duration::from_secs(20));

    // A call the module did not place: the console rings 1001 and parks it.
    let r = esl.api("originate user/1001@c2c.test &park");
    assert!(r.starts_with("+OK"), "{r}");
    let console_leg = r.trim().trim_start_matches("+OK").trim().to_string();
    assert_eq!(agent.invites().len(), 2, "the console's call rang 1001");
    let r = post(ports, "1001");
    assert!(
        r.starts_with("HTTP/1.1 409") && r.contains("agent_busy"),
        "{r}"
    );
    step("1001 on a console call (not ours): 409 agent_busy");
    let r = esl.api(&format!("uuid_kill {console_leg}"));
    assert!(r.starts_with("+OK"), "{r}");
    wait_for("the console call gone", Duration::from_secs(10), || {
        esl.api(&format!("uuid_exists {console_leg}")).trim() == "false"
    });
    let r = post(ports, "1001");
    assert!(r.starts_with("HTTP/1.1 202"), "{r}");
    wait_for("1001 rung", Duration::from_secs(10), || {
        agent.invites().len() == 3
    });
    step("1001 free again: 202, rung");
}
