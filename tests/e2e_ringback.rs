//! End to end against a real FreeSWITCH: what the agent hears while the
//! customer's phone rings. The agent's phone (sipp) answers with an SDP whose
//! audio port is a UDP socket of this test, so every RTP packet FreeSWITCH
//! sends the agent is seen here. Each call fails over: the first trunk
//! answers 503, the second takes the call.
//!
//! 1. The second trunk answers `183 Session Progress` with SDP and streams
//!    a 400 Hz tone as early media, then `200 OK` 3 s later: the agent
//!    receives that very audio before the customer's answer (as with
//!    FreeSWITCH's own `&bridge`).
//! 2. The second trunk only rings (`180`) and answers 3 s later, streaming
//!    the tone once answered: the agent receives the configured ringback (a
//!    tone, not silence, and not the carrier's audio) before the answer.
//! 3. The first trunk rings 2 s, then 503: the ringback goes on across the
//!    failover.
//! 4. The first trunk sends early media 1.5 s, then 503 (the agent is
//!    bridged to it on the 183, as with `&bridge`): the attempt fails with
//!    the carrier's 503, the same agent leg fails over to the second trunk.
//! 5. A forced trunk sends early media and never answers: the attempt ends
//!    at `b-leg-timeout` (10 s) with `NO_ANSWER`, the carrier gets a CANCEL.
//!
//! Runs when `FREESWITCH_BIN` is set (see tests/e2e_freeswitch.rs);
//! otherwise prints `SKIPPED: <why>`.

mod e2e_common;
mod scratch;

use std::net::UdpSocket;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e_common::*;
use serde_json::json;

/// The agent's phone: rings, answers with its audio at `rtp_port` (our
/// socket), waits for the BYE.
fn scenario_agent(rtp_port: u16) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"agent\">\n<recv request=\"INVITE\"/>\n{ring}<pause milliseconds=\"300\"/>\n<send retrans=\"500\"><![CDATA[\nSIP/2.0 200 OK\n{RESPONSE_HEAD}Content-Type: application/sdp\nContent-Length: [len]\n\nv=0\no=user1 53655765 2353687637 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio {rtp_port} RTP/AVP 0\na=rtpmap:0 PCMU/8000\n\n]]></send>\n<recv request=\"ACK\"/>\n{BYE_OK}</scenario>\n",
        ring = ringing(),
    )
}

/// A carrier that answers the INVITE with `183` and SDP, streams `tone` as
/// early media, then goes on with `then` (sipp steps).
fn scenario_early_media_then(name: &str, tone: &Path, then: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"{name}\">\n<recv request=\"INVITE\"/>\n<send><![CDATA[\nSIP/2.0 183 Session Progress\n{RESPONSE_HEAD}Content-Type: application/sdp\nContent-Length: [len]\n\nv=0\no=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]\ns=-\nc=IN IP[media_ip_type] [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000\n\n]]></send>\n<nop><action><exec rtp_stream=\"{tone},-1,0\"/></action></nop>\n{then}</scenario>\n",
        tone = tone.display(),
    )
}

/// `183` with SDP and `tone` as early media, answered after 3 s, waits for the BYE.
fn scenario_early_media(tone: &Path) -> String {
    let then = format!(
        "<pause milliseconds=\"3000\"/>\n{ok}<recv request=\"ACK\"/>\n{BYE_OK}",
        ok = ok_with_sdp()
    );
    scenario_early_media_then("early media", tone, &then)
}

/// `183` with SDP and `tone` as early media, then, after `ms`, a 503.
fn scenario_early_media_then_503(tone: &Path, ms: u64) -> String {
    let then = format!("<pause milliseconds=\"{ms}\"/>\n{}", refused_503());
    scenario_early_media_then("early media then 503", tone, &then)
}

/// `183` with SDP and `tone` as early media, never answered: the CANCEL, 487.
fn scenario_early_media_forever(tone: &Path) -> String {
    scenario_early_media_then("early media forever", tone, CANCELLED)
}

/// The INVITE refused with 503, and its ACK.
fn refused_503() -> String {
    format!("<send><![CDATA[\nSIP/2.0 503 Service Unavailable\n{RESPONSE_HEAD}Content-Length: 0\n\n]]></send>\n<recv request=\"ACK\"/>\n")
}

/// What arrived on the agent's RTP socket: (ms since `start`, payload).
type Packets = Arc<Mutex<Vec<(u128, Vec<u8>)>>>;

fn listen_rtp(socket: UdpSocket, start: Instant) -> Packets {
    let got: Packets = Arc::default();
    let sink = got.clone();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        loop {
            match socket.recv(&mut buf) {
                Ok(n) if n > 12 => sink
                    .lock()
                    .unwrap()
                    .push((start.elapsed().as_millis(), buf[12..n].to_vec())),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        }
    });
    got
}

/// The RTP the agent received before the customer's answer: each packet's
/// (ms since the test began, payload), and when the answer came.
struct BeforeAnswer {
    packets: Vec<(u128, Vec<u8>)>,
    answered_ms: u128,
    /// `c2c status` of the call once bridged.
    status: serde_json::Value,
}

impl BeforeAnswer {
    fn payloads(&self) -> Vec<Vec<u8>> {
        self.packets.iter().map(|p| p.1.clone()).collect()
    }
}

/// Places a call, waits until the customer answered; returns the RTP the
/// agent received before that answer.
fn payloads_before_answer(ports: Ports, events: &EventLog, packets: &Packets) -> BeforeAnswer {
    let mut esl = Esl::connect(ports.esl, Duration::from_secs(5)).unwrap();
    let d = place(
        &mut esl,
        json!({"from_extension": "1001", "to_phone": "0987654321"}),
    );
    let (call, b) = (
        d["call_uuid"].as_str().unwrap().to_string(),
        d["b_leg_uuid"].as_str().unwrap().to_string(),
    );
    let status = wait_state(&mut esl, &call, "bridged", Duration::from_secs(20));
    // Our "bridged" can come before this test's own ESL connection has
    // read the answer (bridged on the carrier's early media, the answer
    // completes the bridge at once): wait for it.
    let answer_of_b = || {
        events
            .all()
            .iter()
            .find(|e| {
                e.get("Event-Name").map(String::as_str) == Some("CHANNEL_ANSWER")
                    && e.get("Unique-ID") == Some(&b)
            })
            .and_then(|e| e.get("_ms"))
            .and_then(|m| m.parse::<u128>().ok())
    };
    wait_for(
        "the customer's CHANNEL_ANSWER",
        Duration::from_secs(5),
        || answer_of_b().is_some(),
    );
    let answered_ms = answer_of_b().expect("seen");
    let before: Vec<(u128, Vec<u8>)> = packets
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _)| *at < answered_ms)
        .cloned()
        .collect();
    let r = Esl::connect(ports.esl, Duration::from_secs(5))
        .unwrap()
        .api(&format!("c2c hangup {call}"));
    assert!(r.starts_with("+OK"), "{r}");
    wait_state(&mut esl, &call, "ended", Duration::from_secs(10));
    packets.lock().unwrap().clear();
    BeforeAnswer {
        packets: before,
        answered_ms,
        status,
    }
}

/// How many payloads are a stretch of `tone` (looped).
fn from_tone(payloads: &[Vec<u8>], tone: &[u8]) -> usize {
    let looped = [tone, tone].concat();
    payloads
        .iter()
        .filter(|p| !p.is_empty() && looped.windows(p.len()).any(|w| w == p.as_slice()))
        .count()
}

#[test]
fn the_agent_hears_early_media_or_ringback_while_the_customer_rings() {
    let env = match find_env() {
        Ok(e) => e,
        Err(why) => return skipped(&why),
    };
    let ports = Ports::new();
    let dir = e2e_dir("ringback");
    describe(&env);
    let tone_path = dir.join("tone.ulaw");
    write_ulaw_tone(&tone_path);
    let tone = std::fs::read(&tone_path).unwrap();

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp_port = socket.local_addr().unwrap().port();
    let start = Instant::now();
    let packets = listen_rtp(socket, start);
    let _agent = Sipp::start(
        &env,
        &dir,
        "agent",
        &scenario_agent(rtp_port),
        ports.agent,
        ports.rtp_start + 40,
    );
    let poc = Sipp::start(
        &env,
        &dir,
        "carrier_503",
        &scenario_503(),
        ports.carrier_503,
        ports.rtp_start + 52,
    );
    let carrier = Sipp::start(
        &env,
        &dir,
        "carrier_early_media",
        &scenario_early_media(&tone_path),
        ports.carrier_ok,
        ports.rtp_start + 48,
    );
    let _freeswitch = start_freeswitch(&env, &dir, ports);
    drop(connect_ready(ports, &dir));
    let events = EventLog::listen_with(ports.esl, move |e| {
        e.insert("_ms".into(), start.elapsed().as_millis().to_string());
    });
    std::thread::sleep(Duration::from_millis(300));
    step("FreeSWITCH up; the agent's audio comes to this test's UDP socket");

    // 1. 183 with SDP and RTP (after a 503 of the first trunk: failover):
    // the carrier's own audio reaches the agent before the 200 OK.
    let got = payloads_before_answer(ports, &events, &packets);
    let before = got.payloads();
    let relayed = from_tone(&before, &tone);
    let first_relayed = got
        .packets
        .iter()
        .find(|(_, p)| from_tone(std::slice::from_ref(p), &tone) == 1)
        .map(|p| p.0);
    assert!(
        relayed >= 25,
        "the agent received {} RTP packets before the customer's 200 OK, {relayed} of them the carrier's early media",
        before.len()
    );
    step(&format!(
        "POC answers 503, BACKUP answers 183 with SDP and streams a tone, 200 OK 3 s later: the agent received {} RTP packets before the 200 OK, {relayed} of them the carrier's own audio; the first at {} ms, the customer's answer at {} ms",
        before.len(),
        first_relayed.unwrap_or_default(),
        got.answered_ms
    ));
    drop(carrier);

    // 2. A carrier that only rings (after a 503 of the first trunk: failover):
    // the agent hears the ringback tone until the customer answers.
    let _ringing = Sipp::start(
        &env,
        &dir,
        "carrier_rings",
        &scenario_answers_talking("carrier", 3000, &tone_path),
        ports.carrier_ok,
        ports.rtp_start + 48,
    );
    std::thread::sleep(Duration::from_millis(300));
    let before = payloads_before_answer(ports, &events, &packets).payloads();
    assert!(
        before.len() >= 25,
        "ringback: only {} RTP packets before the answer",
        before.len()
    );
    assert_eq!(from_tone(&before, &tone), 0, "no early media was sent");
    let silent = before
        .iter()
        .filter(|p| p.iter().all(|b| *b == 0xff))
        .count();
    assert!(
        silent < before.len(),
        "the packets carry a tone, not only silence"
    );
    step(&format!("POC answers 503, BACKUP only rings (180), 200 OK 3 s later: the agent received {} RTP packets of ringback before the 200 OK ({silent} of them silent, none the carrier's)", before.len()));

    // 3. The first trunk rings 2 s, then fails (503): LCR fails over to
    // the second, which rings 3 s and answers. The ringback goes on across
    // the failover: it starts while the first trunk rings and the agent's
    // audio never stops for long between the two attempts.
    drop(poc);
    let _poc = Sipp::start(
        &env,
        &dir,
        "carrier_rings_then_503",
        &scenario_rings_then_503(2000),
        ports.carrier_503,
        ports.rtp_start + 52,
    );
    std::thread::sleep(Duration::from_millis(300));
    let got = payloads_before_answer(ports, &events, &packets);
    let times: Vec<u128> = got.packets.iter().map(|p| p.0).collect();
    let first = *times.first().expect("ringback before the answer");
    let (gap, gap_at) = times
        .windows(2)
        .map(|w| (w[1] - w[0], w[0]))
        .max()
        .unwrap_or_default();
    assert!(
        got.answered_ms - first >= 4_000,
        "the ringback started {} ms before the answer: not while the first trunk rang",
        got.answered_ms - first
    );
    assert!(
        gap < 1_000,
        "the agent's audio stopped for {gap} ms (at {gap_at} ms) before the answer at {} ms",
        got.answered_ms
    );
    step(&format!(
        "POC rings 2 s then answers 503, BACKUP rings 3 s and answers: ringback from {first} ms to the answer at {} ms ({} RTP packets), the longest pause in the agent's audio {gap} ms (at {gap_at} ms, the failover)",
        got.answered_ms,
        times.len()
    ));

    // 4. The first trunk bridges its early media to the agent (183 with
    // SDP), then refuses (503): the attempt fails with the carrier's cause,
    // and the same agent leg, still up, fails over to the second trunk.
    drop(_poc);
    let _poc = Sipp::start(
        &env,
        &dir,
        "carrier_early_media_then_503",
        &scenario_early_media_then_503(&tone_path, 1500),
        ports.carrier_503,
        ports.rtp_start + 52,
    );
    std::thread::sleep(Duration::from_millis(300));
    let got = payloads_before_answer(ports, &events, &packets);
    let s = &got.status;
    let attempts = s["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{s}");
    assert_eq!(attempts[0]["trunk_name"], "POC", "{s}");
    assert_eq!(attempts[0]["sip_code"], 503, "{s}");
    assert_eq!(attempts[0]["result"], "NORMAL_TEMPORARY_FAILURE", "{s}");
    assert_eq!(s["trunk_name"], "BACKUP", "{s}");
    let early = from_tone(&got.payloads(), &tone);
    assert!(
        early >= 25,
        "the agent heard {early} packets of the first carrier's early media"
    );
    step(&format!(
        "POC bridges 1.5 s of early media (183 with SDP) to the agent, then 503: attempt 1 {} (SIP {}), the agent, still up, heard {early} of its packets and was bridged to BACKUP",
        attempts[0]["result"], attempts[0]["sip_code"]
    ));

    // 5. A forced trunk whose carrier sends early media and never answers:
    // the ringing ends at b-leg-timeout (10 s), not at the carrier's leisure.
    drop(_poc);
    let _poc = Sipp::start(
        &env,
        &dir,
        "carrier_early_media_forever",
        &scenario_early_media_forever(&tone_path),
        ports.carrier_503,
        ports.rtp_start + 52,
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut esl = Esl::connect(ports.esl, Duration::from_secs(5)).unwrap();
    let d = place(
        &mut esl,
        json!({"from_extension": "1001", "to_phone": "0987654321", "trunk_id": 4}),
    );
    let call = d["call_uuid"].as_str().unwrap().to_string();
    let placed = Instant::now();
    let s = wait_state(&mut esl, &call, "ended", Duration::from_secs(30));
    let took = placed.elapsed();
    assert_eq!(s["outcome"], "customer_no_answer", "{s}");
    assert_eq!(s["attempts"][0]["result"], "NO_ANSWER", "{s}");
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(16),
        "ended {took:?} after the request; b-leg-timeout is 10 s"
    );
    step(&format!(
        "forced POC sends early media and never answers: the attempt ended NO_ANSWER {:.1} s after the request (b-leg-timeout 10 s), outcome {}",
        took.as_secs_f64(),
        s["outcome"]
    ));
}

/// A carrier that rings for `ring_ms`, then refuses the call (503).
fn scenario_rings_then_503(ring_ms: u64) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"rings then 503\">\n<recv request=\"INVITE\"/>\n{ring}<pause milliseconds=\"{ring_ms}\"/>\n{refused}</scenario>\n",
        ring = ringing(),
        refused = refused_503(),
    )
}
