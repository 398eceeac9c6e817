//! End to end against a real FreeSWITCH: transfers and `hangup_by`.
//!
//! A bridged call whose customer leg is transferred (`uuid_transfer` from the
//! console, a blind transfer by REFER from the agent's phone) keeps the
//! customer talking: the module follows the customer's leg, says so
//! (`pbx.call.transferred`), and reports one hangup and one CDR when the
//! conversation really ends (billsec over the whole of it, every party).
//! Every way a call ends is checked for `hangup_by`, in `c2c status` and in
//! the webhooks a CRM receives. SIP parties are sipp; FreeSWITCH is driven
//! with a fresh event-socket connection per command, as `fs_cli -x` does.
//!
//! Runs when `FREESWITCH_BIN` is set (see tests/e2e_freeswitch.rs);
//! otherwise prints `SKIPPED: <why>`.

mod e2e_common;
mod scratch;
mod webhooks_common;

use std::path::Path;
use std::time::Duration;

use e2e_common::*;
use serde_json::{json, Value};
use webhooks_common::{Receiver, SECRET};

const TOKEN: &str = "e2e-token-0123456789";

/// One command over a fresh event-socket connection (what `fs_cli -x` does).
fn api(ports: Ports, cmd: &str) -> String {
    Esl::connect(ports.esl, Duration::from_secs(5))
        .expect("ESL connection")
        .api(cmd)
}

/// `INVITE` captured so that the phone can send requests in the dialog
/// itself: FreeSWITCH's Contact, From and To.
const CAPTURE_INVITE: &str = r#"<recv request="INVITE">
  <action>
    <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" assign_to="contact"/>
    <ereg regexp="[^ ].*" search_in="hdr" header="From:" assign_to="from"/>
    <ereg regexp="[^ ].*" search_in="hdr" header="To:" assign_to="to"/>
  </action>
</recv>
"#;

/// A request of ours in the dialog the INVITE opened (we are its UAS).
fn in_dialog(method: &str, extra: &str) -> String {
    format!(
        "<send retrans=\"500\"><![CDATA[\n{method} [$contact] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\nFrom: [$to];tag=[pid]SIPpTag[call_number]\nTo: [$from]\n[last_Call-ID:]\nCSeq: 1 {method}\nContact: <sip:[local_ip]:[local_port]>\nMax-Forwards: 70\n{extra}Content-Length: 0\n\n]]></send>\n"
    )
}

const OK_TO_REQUEST: &str = "<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n";

/// Rings, answers after `answer_after_ms`, talks (RTP of `tone`), then
/// hangs up itself after `bye_after_ms` (sends the BYE).
fn scenario_hangs_up(answer_after_ms: u64, bye_after_ms: u64, tone: &Path) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"hangs up\">\n{CAPTURE_INVITE}{ring}<pause milliseconds=\"{answer_after_ms}\"/>\n{ok}<recv request=\"ACK\"/>\n<nop><action><exec rtp_stream=\"{tone},-1,0\"/></action></nop>\n<pause milliseconds=\"{bye_after_ms}\"/>\n{bye}<recv response=\"200\"/>\n</scenario>\n",
        ring = ringing(),
        ok = ok_with_sdp(),
        tone = tone.display(),
        bye = in_dialog("BYE", ""),
    )
}

/// Answers, talks for `talk_ms`, then blind-transfers the call to `target`
/// (REFER); answers FreeSWITCH's NOTIFYs and the BYE that ends its leg.
fn scenario_refers(talk_ms: u64, target: &str, tone: &Path) -> String {
    let refer = in_dialog(
        "REFER",
        &format!("Refer-To: <sip:{target}@127.0.0.1>\nReferred-By: <sip:1004@127.0.0.1>\n"),
    );
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"refers\">\n{CAPTURE_INVITE}{ring}<pause milliseconds=\"300\"/>\n{ok}<recv request=\"ACK\"/>\n<nop><action><exec rtp_stream=\"{tone},-1,0\"/></action></nop>\n<pause milliseconds=\"{talk_ms}\"/>\n{refer}<recv response=\"202\"/>\n<label id=\"wait\"/>\n<recv request=\"NOTIFY\" optional=\"true\" next=\"notify\"/>\n<recv request=\"BYE\" next=\"bye\"/>\n<label id=\"notify\"/>\n{OK_TO_REQUEST}<pause milliseconds=\"1\" next=\"wait\"/>\n<label id=\"bye\"/>\n{OK_TO_REQUEST}</scenario>\n",
        ring = ringing(),
        ok = ok_with_sdp(),
        tone = tone.display(),
    )
}

/// Answers, talks, then makes an attended transfer the way a desk phone
/// does: a consultation call (a second dialog, INVITE to `target` on
/// FreeSWITCH at `fs_port`), and once the consulted party answered, a
/// REFER in the first dialog whose Refer-To carries `Replaces` naming the
/// consultation dialog; answers FreeSWITCH's NOTIFYs and the BYEs of both
/// dialogs. sipp keeps both dialogs in one call: a Call-ID written
/// `consult///[call_id]` is matched on the part after `///`.
fn scenario_attended_transfer(target: &str, fs_port: u16, tone: &Path) -> String {
    let consult = format!(
        "<send retrans=\"500\"><![CDATA[\nINVITE sip:{target}@127.0.0.1:{fs_port} SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\nFrom: <sip:1002@127.0.0.1>;tag=consult[call_number]\nTo: <sip:{target}@127.0.0.1>\nCall-ID: consult///[call_id]\nCSeq: 1 INVITE\nContact: <sip:1002@[local_ip]:[local_port]>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: [len]\n\nv=0\no=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]\ns=-\nc=IN IP[media_ip_type] [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000\n\n]]></send>\n<recv response=\"100\" optional=\"true\"/>\n<recv response=\"180\" optional=\"true\"/>\n<recv response=\"183\" optional=\"true\"/>\n<recv response=\"200\">\n  <action><ereg regexp=\";tag=([^;> \\r\\n]+)\" search_in=\"hdr\" header=\"To:\" assign_to=\"whole,ctag\"/></action>\n</recv>\n<Reference variables=\"whole\"/>\n<send><![CDATA[\nACK sip:{target}@127.0.0.1:{fs_port} SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\nFrom: <sip:1002@127.0.0.1>;tag=consult[call_number]\nTo: <sip:{target}@127.0.0.1>;tag=[$ctag]\nCall-ID: consult///[call_id]\nCSeq: 1 ACK\nContact: <sip:1002@[local_ip]:[local_port]>\nMax-Forwards: 70\nContent-Length: 0\n\n]]></send>\n"
    );
    let refer = in_dialog(
        "REFER",
        &format!("Refer-To: <sip:{target}@127.0.0.1?Replaces=consult%2F%2F%2F[call_id]%3Bto-tag%3D[$ctag]%3Bfrom-tag%3Dconsult[call_number]>\nReferred-By: <sip:1002@127.0.0.1>\n"),
    );
    // In the first dialog: its Call-ID, not the consultation's (the last seen).
    let refer = refer.replace("[last_Call-ID:]", "Call-ID: [call_id]");
    // NOTIFYs and two BYEs (the first dialog's and the consultation's), in any order.
    let wait = |n: u8| {
        format!("<label id=\"wait{n}\"/>\n<recv request=\"NOTIFY\" optional=\"true\" next=\"notify{n}\"/>\n<recv request=\"BYE\" next=\"bye{n}\"/>\n<label id=\"notify{n}\"/>\n{OK_TO_REQUEST}<pause milliseconds=\"1\" next=\"wait{n}\"/>\n<label id=\"bye{n}\"/>\n{OK_TO_REQUEST}")
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"attended transfer\">\n{CAPTURE_INVITE}{ring}<pause milliseconds=\"300\"/>\n{ok}<recv request=\"ACK\"/>\n<nop><action><exec rtp_stream=\"{tone},-1,0\"/></action></nop>\n<pause milliseconds=\"1000\"/>\n{consult}<pause milliseconds=\"800\"/>\n{refer}<recv response=\"202\"/>\n{w1}{w2}</scenario>\n",
        ring = ringing(),
        ok = ok_with_sdp(),
        tone = tone.display(),
        w1 = wait(1),
        w2 = wait(2),
    )
}

struct Rig {
    ports: Ports,
    hooks: Receiver,
}

impl Rig {
    /// Places a call, waits until it is bridged: (call, A-leg, B-leg).
    fn bridged(&self, ext: &str, number: &str) -> (String, String, String) {
        let r = api(
            self.ports,
            &format!("c2c {}", json!({"from_extension": ext, "to_phone": number})),
        );
        assert!(r.starts_with("+OK"), "c2c refused: {r}");
        let d = json_of(&r)["data"].clone();
        let id = |k: &str| d[k].as_str().unwrap().to_string();
        let call = id("call_uuid");
        self.wait_status(&call, "bridged", Duration::from_secs(20));
        (call, id("a_leg_uuid"), id("b_leg_uuid"))
    }

    fn status(&self, call: &str) -> Value {
        let r = api(self.ports, &format!("c2c status {call}"));
        assert!(r.starts_with("+OK"), "c2c status: {r}");
        json_of(&r)
    }

    fn wait_status(&self, call: &str, state: &str, within: Duration) -> Value {
        let mut s = Value::Null;
        wait_for(&format!("call {call} {state}"), within, || {
            s = self.status(call);
            s["status"] == state
        });
        s
    }

    /// The webhooks delivered for `call`, in delivery order.
    fn hooks_of(&self, call: &str) -> Vec<Value> {
        self.hooks
            .delivered()
            .into_iter()
            .filter(|e| e["data"]["call_uuid"] == call)
            .collect()
    }

    /// `uuid_transfer` of the customer's leg `b` to `number`; waits for the
    /// call's `pbx.call.transferred` and returns its data.
    fn transfer(&self, call: &str, b: &str, number: &str) -> Value {
        let r = api(
            self.ports,
            &format!("uuid_transfer {b} {number} XML default"),
        );
        assert!(r.starts_with("+OK"), "uuid_transfer: {r}");
        wait_for("pbx.call.transferred", Duration::from_secs(15), || {
            !self.hooks_typed(call, "pbx.call.transferred").is_empty()
        });
        self.hooks_typed(call, "pbx.call.transferred")[0]["data"].clone()
    }

    fn hooks_typed(&self, call: &str, kind: &str) -> Vec<Value> {
        self.hooks_of(call)
            .into_iter()
            .filter(|e| e["type"] == kind)
            .collect()
    }

    /// Waits for the call's CDR webhook, then checks: one hangup, one CDR,
    /// both and `c2c status` saying `hangup_by` = `by`. Returns the CDR data.
    fn ended(&self, call: &str, by: &str, what: &str) -> Value {
        wait_for(
            &format!("{what}: CDR webhook"),
            Duration::from_secs(20),
            || !self.hooks_typed(call, "pbx.cdr.created").is_empty(),
        );
        std::thread::sleep(Duration::from_millis(500)); // nothing may follow it
        let hangups = self.hooks_typed(call, "pbx.call.hangup");
        let cdrs = self.hooks_typed(call, "pbx.cdr.created");
        assert_eq!(hangups.len(), 1, "{what}: hangups {hangups:?}");
        assert_eq!(cdrs.len(), 1, "{what}: CDRs {cdrs:?}");
        assert_eq!(
            hangups[0]["data"]["hangup_by"], by,
            "{what}: {}",
            hangups[0]
        );
        assert_eq!(cdrs[0]["data"]["hangup_by"], by, "{what}: {}", cdrs[0]);
        let s = self.status(call);
        assert_eq!(s["status"], "ended", "{what}: {s}");
        assert_eq!(s["hangup_by"], by, "{what}: {s}");
        let seqs: Vec<u64> = self
            .hooks_of(call)
            .iter()
            .map(|e| e["data"]["seq"].as_u64().unwrap_or(0))
            .collect();
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(seqs, sorted, "{what}: delivered in per-call order");
        cdrs[0]["data"].clone()
    }
}

#[test]
fn transfers_and_hangup_by_against_a_real_freeswitch() {
    let env = match find_env() {
        Ok(e) => e,
        Err(why) => return skipped(&why),
    };
    let ports = Ports::new();
    let dir = e2e_dir("transfer");
    describe(&env);
    let tone = dir.join("tone.ulaw");
    write_ulaw_tone(&tone);

    // 1001 talks until FreeSWITCH hangs it up; 1002 hangs up after 2 s;
    // 1004 blind-transfers after 1.5 s; the carriers of trunk 4 (503) and 5
    // (answers, waits for BYE); numbers 44… reach, through the XML
    // dialplan, a party that answers and hangs up after 3 s.
    let agents = [
        (
            "agent",
            scenario_answers_talking("agent", 300, &tone),
            ports.agent,
            40,
        ),
        (
            "agent_bye",
            scenario_hangs_up(300, 2000, &tone),
            ports.agent_late,
            44,
        ),
        (
            "agent_refer",
            scenario_refers(1500, "4412346", &tone),
            ports.agent_auto,
            36,
        ),
        (
            "party",
            scenario_hangs_up(300, 3000, &tone),
            ports.carrier_dialplan,
            56,
        ),
    ];
    let mut phones: Vec<Sipp> = agents
        .iter()
        .map(|(name, sc, port, media)| {
            Sipp::start(&env, &dir, name, sc, *port, ports.rtp_start + media)
        })
        .collect();
    let (_carrier, _carrier503) = start_carriers(&env, &dir, ports);

    let hooks = Receiver::ok();
    let webhooks = webhook_params(&hooks.url(), SECRET, &dir.join("spool"), "");
    let _freeswitch = start_freeswitch_with(&env, &dir, ports, &webhooks);
    drop(connect_ready(ports, &dir));
    step("FreeSWITCH up with mod_zorio_c2c, webhooks to a local receiver");
    let rig = Rig { ports, hooks };

    // 1. uuid_transfer of the customer's leg: the customer talks on.
    let (call, a, b) = rig.bridged("1001", "0987654321");
    std::thread::sleep(Duration::from_millis(1000));
    let t = rig.transfer(&call, &b, "4412345");
    assert_eq!(t["leg"], "B", "{t}");
    assert_eq!(t["leg_uuid"], b.as_str(), "{t}");
    assert_eq!(t["destination"], "4412345", "{t}");
    assert_eq!(t["previous_far_end_uuid"], a.as_str(), "{t}");
    let party = t["far_end_uuid"].as_str().unwrap().to_string();
    assert_ne!(party, a);
    let s = rig.status(&call);
    assert_eq!(s["status"], "bridged", "{s}");
    assert!(s["legs"]["A"]["ended_at"].is_string(), "{s}");
    assert!(s["legs"]["B"]["ended_at"].is_null(), "{s}");
    assert!(rig.hooks_typed(&call, "pbx.call.hangup").is_empty());
    assert_eq!(api(ports, &format!("uuid_exists {b}")).trim(), "true");
    // The new party hangs up after 3 s of talk.
    let cdr = rig.ended(&call, "agent", "uuid_transfer");
    let parties = cdr["parties"].as_array().expect("parties");
    assert_eq!(parties.len(), 2, "{cdr}");
    assert_eq!(parties[0]["role"], "agent");
    assert_eq!(parties[1]["leg_uuid"], party.as_str());
    assert_eq!(cdr["last_party"]["leg_uuid"], party.as_str());
    let billsec = cdr["billsec"].as_u64().unwrap();
    assert!(
        billsec >= 3,
        "billsec {billsec} covers the whole conversation: {cdr}"
    );
    let types: Vec<String> = rig
        .hooks_of(&call)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "pbx.call.transferred")
            .count(),
        1
    );
    step(&format!("uuid_transfer of the customer's leg to 4412345: pbx.call.transferred (leg B, destination 4412345, far end {}), the customer stays up, the new party's BYE ends the call: one hangup, one CDR, hangup_by agent, billsec {billsec}, parties agent + transfer; events {types:?}", &party[..8]));

    // 2. Blind transfer by REFER from the agent's phone.
    let (call, a, b) = rig.bridged("1004", "0987654321");
    wait_for("pbx.call.transferred", Duration::from_secs(15), || {
        !rig.hooks_typed(&call, "pbx.call.transferred").is_empty()
    });
    let t = rig.hooks_typed(&call, "pbx.call.transferred")[0]["data"].clone();
    assert_eq!(t["leg_uuid"], b.as_str(), "{t}");
    assert_eq!(t["destination"], "4412346", "{t}");
    assert_eq!(t["previous_far_end_uuid"], a.as_str(), "{t}");
    let cdr = rig.ended(&call, "agent", "REFER");
    assert_eq!(cdr["parties"].as_array().map(Vec::len), Some(2), "{cdr}");
    let billsec = cdr["billsec"].as_u64().unwrap();
    assert!(billsec >= 4, "billsec {billsec}: {cdr}");
    step(&format!("blind transfer by REFER from 1004 to 4412346: transferred, the customer stays, one hangup + one CDR, hangup_by agent, billsec {billsec}"));

    // 3. hangup_by, every way a call ends.
    let (call, _, _) = rig.bridged("1002", "0987654321");
    rig.ended(&call, "agent", "agent's BYE");
    step("agent's BYE: hangup_by agent (c2c status and webhooks)");
    // 1002's phone is now the one that makes an attended transfer (case 9).
    drop(phones.remove(1));
    let _attended = Sipp::start(
        &env,
        &dir,
        "agent_attended",
        &scenario_attended_transfer("4412353", ports.sip, &tone),
        ports.agent_late,
        ports.rtp_start + 44,
    );

    let (call, _, _) = rig.bridged("1001", "4412347");
    rig.ended(&call, "customer", "customer's BYE");
    step("customer's BYE: hangup_by customer");

    let (call, a, _) = rig.bridged("1001", "0987654321");
    assert!(api(ports, &format!("uuid_kill {a}")).starts_with("+OK"));
    rig.ended(&call, "agent", "uuid_kill A");
    step("uuid_kill of the A-leg: hangup_by agent");

    let (call, _, b) = rig.bridged("1001", "0987654321");
    assert!(api(ports, &format!("uuid_kill {b}")).starts_with("+OK"));
    rig.ended(&call, "customer", "uuid_kill B");
    step("uuid_kill of the B-leg: hangup_by customer");

    let (call, _, _) = rig.bridged("1001", "0987654321");
    assert!(api(ports, &format!("c2c hangup {call}")).starts_with("+OK"));
    rig.ended(&call, "api", "c2c hangup");
    step("c2c hangup: hangup_by api");

    let (call, _, _) = rig.bridged("1001", "0987654321");
    let r = http(
        ports.http,
        "DELETE",
        &format!("/api/pbx/calls/{call}"),
        &format!("Bearer {TOKEN}"),
        "",
    );
    assert!(r.starts_with("HTTP/1.1 2"), "DELETE: {r}");
    rig.ended(&call, "api", "DELETE");
    step("DELETE /api/pbx/calls/{uuid}: hangup_by api");

    // 4. DELETE of a transferred call ends it where its legs are by then.
    let (call, _, b) = rig.bridged("1001", "0987654321");
    let party = rig.transfer(&call, &b, "4412348")["far_end_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(api(ports, &format!("c2c hangup {call}")).starts_with("+OK"));
    rig.ended(&call, "api", "c2c hangup after transfer");
    wait_for("both channels gone", Duration::from_secs(10), || {
        api(ports, &format!("uuid_exists {b}")).trim() == "false"
            && api(ports, &format!("uuid_exists {party}")).trim() == "false"
    });
    step("c2c hangup of a transferred call: the customer and the new party hung up, hangup_by api");

    // 5. A transferred call across `reload mod_zorio_c2c`: adopted with its
    // parties, ended by the new party after the reload.
    let (call, _, b) = rig.bridged("1001", "0987654321");
    let party = rig.transfer(&call, &b, "4412349")["far_end_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api(ports, "reload mod_zorio_c2c");
    assert!(r.contains("+OK"), "reload: {r}");
    let s = rig.status(&call);
    assert_eq!(s["status"], "bridged", "adopted after the reload: {s}");
    assert_eq!(s["transferred"], true, "{s}");
    assert_eq!(s["last_party"]["leg_uuid"], party.as_str(), "{s}");
    let cdr = rig.ended(&call, "agent", "transfer then reload");
    assert_eq!(cdr["parties"].as_array().map(Vec::len), Some(2), "{cdr}");
    assert_eq!(cdr["recovered"], false, "{cdr}");
    let billsec = cdr["billsec"].as_u64().unwrap();
    assert!(billsec >= 3, "billsec {billsec}: {cdr}");
    step(&format!("transfer, then reload mod_zorio_c2c: the call is adopted (c2c status: bridged, transferred, last party {}), the new party's BYE after the reload ends it: one hangup, one CDR, hangup_by agent, billsec {billsec}, two parties", &party[..8]));

    // 6. Attended transfer, the way FreeSWITCH completes a REFER with
    // Replaces: the customer's leg is bridged straight to the consulted
    // party's channel (here from the console: the party is called first,
    // then `uuid_bridge <customer> <party>`).
    let (call, a, b) = rig.bridged("1001", "0987654321");
    let r = api(
        ports,
        &format!(
            "originate {{origination_caller_id_number=1001}}sofia/c2c/sip:4412350@127.0.0.1:{} &park()",
            ports.carrier_dialplan
        ),
    );
    assert!(r.starts_with("+OK "), "originate the consulted party: {r}");
    let consulted = r.trim_start_matches("+OK ").trim().to_string();
    let r = api(ports, &format!("uuid_bridge {b} {consulted}"));
    assert!(r.starts_with("+OK"), "uuid_bridge: {r}");
    wait_for("pbx.call.transferred", Duration::from_secs(15), || {
        !rig.hooks_typed(&call, "pbx.call.transferred").is_empty()
    });
    let t = rig.hooks_typed(&call, "pbx.call.transferred")[0]["data"].clone();
    assert_eq!(t["far_end_uuid"], consulted.as_str(), "{t}");
    assert_eq!(t["previous_far_end_uuid"], a.as_str(), "{t}");
    let cdr = rig.ended(&call, "agent", "attended transfer");
    assert_eq!(cdr["last_party"]["leg_uuid"], consulted.as_str(), "{cdr}");
    assert_eq!(cdr["parties"].as_array().map(Vec::len), Some(2), "{cdr}");
    step(&format!("attended transfer (the customer's leg bridged to the consulted party {}, as Replaces does): transferred, the party's BYE ends the call: one hangup, one CDR, hangup_by agent, billsec {}", &consulted[..8], cdr["billsec"]));

    // 7. Transfer of the agent's leg that moves its partner, the customer:
    // `uuid_transfer <A> -bleg <dest>` is the customer's transfer.
    let (call, a, b) = rig.bridged("1001", "0987654321");
    std::thread::sleep(Duration::from_millis(1000));
    let r = api(
        ports,
        &format!("uuid_transfer {a} -bleg 4412351 XML default"),
    );
    assert!(r.starts_with("+OK"), "uuid_transfer -bleg: {r}");
    wait_for("pbx.call.transferred", Duration::from_secs(15), || {
        !rig.hooks_typed(&call, "pbx.call.transferred").is_empty()
    });
    let t = rig.hooks_typed(&call, "pbx.call.transferred")[0]["data"].clone();
    assert_eq!(t["moved_leg"], "B", "{t}");
    assert_eq!(t["leg_uuid"], b.as_str(), "{t}");
    assert_eq!(t["destination"], "4412351", "{t}");
    assert_eq!(t["previous_far_end_uuid"], a.as_str(), "{t}");
    let party = t["far_end_uuid"].as_str().unwrap().to_string();
    assert_eq!(api(ports, &format!("uuid_exists {b}")).trim(), "true");
    let cdr = rig.ended(&call, "agent", "uuid_transfer -bleg");
    assert_eq!(cdr["parties"].as_array().map(Vec::len), Some(2), "{cdr}");
    assert_eq!(cdr["last_party"]["leg_uuid"], party.as_str(), "{cdr}");
    let billsec = cdr["billsec"].as_u64().unwrap();
    assert!(billsec >= 4, "billsec {billsec}: {cdr}");
    step(&format!("uuid_transfer of the A-leg with -bleg to 4412351: the customer moved (transferred, leg B, far end {}), the party's BYE ends the call: one hangup, one CDR, hangup_by agent, billsec {billsec}, two parties", &party[..8]));

    // 8. The agent's own leg sent elsewhere (`uuid_transfer <A> <dest>`):
    // the agent leaves the call, FreeSWITCH hangs up the customer its
    // bridge leaves behind, and the module does not hang up the agent's
    // leg (now talking to the party at 4412352).
    let (call, a, b) = rig.bridged("1001", "0987654321");
    std::thread::sleep(Duration::from_millis(1000));
    let r = api(ports, &format!("uuid_transfer {a} 4412352 XML default"));
    assert!(r.starts_with("+OK"), "uuid_transfer of the A-leg: {r}");
    let cdr = rig.ended(&call, "agent", "uuid_transfer of the A-leg");
    let t = rig.hooks_typed(&call, "pbx.call.transferred");
    assert_eq!(t.len(), 1, "{t:?}");
    let t = &t[0]["data"];
    assert_eq!(t["moved_leg"], "A", "{t}");
    assert_eq!(t["leg_uuid"], a.as_str(), "{t}");
    assert_eq!(t["destination"], "4412352", "{t}");
    assert!(t["far_end_uuid"].is_null(), "{t}");
    assert_eq!(api(ports, &format!("uuid_exists {b}")).trim(), "false");
    assert_eq!(
        api(ports, &format!("uuid_exists {a}")).trim(),
        "true",
        "the agent's leg, moved elsewhere, was left alone"
    );
    assert_eq!(cdr["parties"].as_array().map(Vec::len), Some(1), "{cdr}");
    let billsec = cdr["billsec"].as_u64().unwrap();
    assert!(billsec >= 1, "billsec {billsec}: {cdr}");
    let types: Vec<String> = rig
        .hooks_of(&call)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    step(&format!("uuid_transfer of the A-leg to 4412352: pbx.call.transferred (moved_leg A, no far end), FreeSWITCH hangs up the customer left behind: one hangup, one CDR, hangup_by agent, billsec {billsec}; the agent's leg is still up, talking at 4412352; events {types:?}"));
    wait_for(
        "the agent's leg ends at 4412352",
        Duration::from_secs(10),
        || api(ports, &format!("uuid_exists {a}")).trim() == "false",
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rig.hooks_typed(&call, "pbx.call.hangup").len(), 1);

    // 9. Attended transfer from the agent's phone: a consultation call to
    // 4412353, then REFER with Replaces; FreeSWITCH bridges the customer to
    // the consulted party and hangs up both of the agent's dialogs.
    let (call, a, b) = rig.bridged("1002", "0987654321");
    wait_for("pbx.call.transferred", Duration::from_secs(15), || {
        !rig.hooks_typed(&call, "pbx.call.transferred").is_empty()
    });
    let t = rig.hooks_typed(&call, "pbx.call.transferred")[0]["data"].clone();
    assert_eq!(t["moved_leg"], "B", "{t}");
    assert_eq!(t["leg_uuid"], b.as_str(), "{t}");
    assert_eq!(t["previous_far_end_uuid"], a.as_str(), "{t}");
    let party = t["far_end_uuid"].as_str().expect("far end").to_string();
    assert_ne!(party, a);
    assert_eq!(api(ports, &format!("uuid_exists {b}")).trim(), "true");
    let cdr = rig.ended(&call, "agent", "attended transfer by REFER with Replaces");
    assert_eq!(cdr["last_party"]["leg_uuid"], party.as_str(), "{cdr}");
    assert_eq!(cdr["parties"].as_array().map(Vec::len), Some(2), "{cdr}");
    let billsec = cdr["billsec"].as_u64().unwrap();
    assert!(billsec >= 3, "billsec {billsec}: {cdr}");
    step(&format!("attended transfer from 1002's phone (consultation INVITE to 4412353, then REFER with Replaces): transferred to the consulted party {}, the customer stays, the party's BYE ends the call: one hangup, one CDR, hangup_by agent, billsec {billsec}, two parties", &party[..8]));
}
