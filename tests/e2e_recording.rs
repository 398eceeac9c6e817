//! End to end against a real FreeSWITCH: call recording. The agent's
//! phone streams a 400 Hz tone, the carrier's customer a 1000 Hz tone; a
//! call placed with `record: true` is recorded by the switch from the
//! customer's answer to the end, in two channels. Checked: the file has 2
//! channels, the customer's tone dominates one and the agent's the other
//! (Goertzel at 400 and 1000 Hz, per channel), its length matches
//! `billsec` within 1 s, and the CDR's `recording` (bytes, sha256,
//! channels, duration_ms) matches the file on disk.
//!
//! Runs when `FREESWITCH_BIN` is set (see tests/e2e_freeswitch.rs);
//! otherwise prints `SKIPPED: <why>`.

mod e2e_common;
mod scratch;

use std::path::Path;
use std::time::Duration;

use e2e_common::*;
use serde_json::json;
use sha2::{Digest, Sha256};

/// A 16-bit PCM WAV: (channels, rate, samples per channel).
fn read_wav(path: &Path) -> (u16, u32, Vec<Vec<f64>>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[0..4], b"RIFF");
    assert_eq!(&b[8..12], b"WAVE");
    let (mut pos, mut fmt) = (12usize, None);
    while pos + 8 <= b.len() {
        let id = &b[pos..pos + 4];
        let size = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = pos + 8;
        if id == b"fmt " {
            let ch = u16::from_le_bytes([b[body + 2], b[body + 3]]);
            let rate = u32::from_le_bytes(b[body + 4..body + 8].try_into().unwrap());
            let bits = u16::from_le_bytes([b[body + 14], b[body + 15]]);
            assert_eq!(bits, 16, "16-bit PCM");
            fmt = Some((ch, rate));
        } else if id == b"data" {
            let (ch, rate) = fmt.expect("fmt before data");
            let data = &b[body..(body + size).min(b.len())];
            let mut chans = vec![Vec::new(); ch as usize];
            for (i, s) in data.chunks_exact(2).enumerate() {
                chans[i % ch as usize].push(f64::from(i16::from_le_bytes([s[0], s[1]])));
            }
            return (ch, rate, chans);
        }
        pos = body + size + (size & 1);
    }
    panic!("no data chunk in {}", path.display());
}

/// Power of `hz` in `x` (Goertzel).
fn goertzel(x: &[f64], rate: u32, hz: f64) -> f64 {
    let w = std::f64::consts::TAU * hz / f64::from(rate);
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for v in x {
        let s = v + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

/// `GET path` on the module's listener with the e2e token: the head
/// (lower-cased) and the body's bytes.
fn get_bytes(port: u16, path: &str, headers: &[(&str, &str)]) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer e2e-token-0123456789\r\nConnection: close\r\n"
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
    (
        head.replacen("http/1.1", "HTTP/1.1", 1),
        out[end + 4..].to_vec(),
    )
}

#[test]
fn a_recorded_call_has_each_party_on_its_own_channel() {
    let env = match find_env() {
        Ok(e) => e,
        Err(why) => return skipped(&why),
    };
    describe(&env);
    let dir = e2e_dir("recording");
    let ports = Ports::new();
    let (_agent, _late) = start_agents(&env, &dir, ports, 300);
    let (_carrier, _c503) = start_talking_carriers(&env, &dir, ports, 1000.0);
    let recordings = dir.join("rec");
    let extra = format!(
        r#"<settings><param name="recordings-dir" value="{}"/></settings>"#,
        recordings.display()
    );
    let _fs = start_freeswitch_extra(
        &env,
        &dir,
        ports,
        &default_webhooks(&dir.join("spool")),
        &extra,
    );
    let mut esl = connect_ready(ports, &dir);
    let log = EventLog::listen(ports.esl);

    let data = place(
        &mut esl,
        json!({"from_extension": "1001", "to_phone": "0987654321", "record": true}),
    );
    let call = data["call_uuid"].as_str().unwrap().to_string();
    let st = wait_state(&mut esl, &call, "bridged", Duration::from_secs(15));
    assert_eq!(st["recording"]["status"], "recording", "{st}");
    let path = st["recording"]["path"]
        .as_str()
        .expect("c2c status shows the path")
        .to_string();
    assert!(
        path.starts_with(&recordings.display().to_string()),
        "{path}"
    );
    std::thread::sleep(Duration::from_secs(4));
    let reply = esl.api(&format!("c2c hangup {call}"));
    assert!(reply.starts_with("+OK"), "{reply}");
    wait_state(&mut esl, &call, "ended", Duration::from_secs(10));
    let cdr = cdr(&log, &call);
    let rec = &cdr["recording"];
    println!("CDR recording: {rec}, billsec {}", cdr["billsec"]);
    assert_eq!(rec["status"], "available", "{cdr}");
    assert_eq!(rec["format"], "wav");
    assert_eq!(rec["channels"], 2);
    assert_eq!(rec["url"], format!("/api/pbx/calls/{call}/recording"));
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(rec["bytes"], bytes.len() as u64, "bytes as on disk");
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(rec["sha256"], sha, "sha256 of the file on disk");

    let (channels, rate, samples) = read_wav(Path::new(&path));
    assert_eq!(channels, 2);
    let secs = samples[0].len() as f64 / f64::from(rate);
    let billsec = cdr["billsec"].as_f64().unwrap();
    println!("recording: {channels} channels, {rate} Hz, {secs:.2} s; billsec {billsec}");
    assert!(
        (secs - billsec).abs() <= 1.0,
        "{secs} s vs billsec {billsec}"
    );
    let ms = rec["duration_ms"].as_u64().unwrap() as f64 / 1000.0;
    assert!(
        (ms - secs).abs() < 0.05,
        "duration_ms {ms} vs the file's {secs}"
    );
    for (i, want, other) in [(0, 1000.0, 400.0), (1, 400.0, 1000.0)] {
        // The middle of the call: from 1 s in to 0.5 s before the end.
        let x = &samples[i];
        let part = &x[rate as usize..x.len() - rate as usize / 2];
        let (p_want, p_other) = (goertzel(part, rate, want), goertzel(part, rate, other));
        println!(
            "channel {} ({}): {want} Hz {p_want:.3e}, {other} Hz {p_other:.3e}",
            i + 1,
            ["customer", "agent"][i]
        );
        assert!(
            p_want > 20.0 * p_other,
            "channel {} is not dominated by {want} Hz",
            i + 1
        );
    }
    step("each party on its own channel, length = billsec, CDR = the file");

    // The module's own listener serves it, a Range exactly.
    let url = rec["url"].as_str().unwrap();
    let (head, body) = get_bytes(ports.http, url, &[("Range", "bytes=1000-1999")]);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(
        head.contains(&format!("content-range: bytes 1000-1999/{}", bytes.len())),
        "{head}"
    );
    assert_eq!(body, bytes[1000..2000], "exactly the bytes asked for");
    let (head, body) = get_bytes(ports.http, url, &[]);
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("content-type: audio/wav"),
        "{head}"
    );
    assert_eq!(body, bytes, "the whole file");
    step("GET …/recording: 206 with exactly the range, 200 with the file");

    // Recorded across `reload mod_zorio_c2c`: adopted, the file goes on.
    let data = place(
        &mut esl,
        json!({"from_extension": "1001", "to_phone": "0987654321", "record": true}),
    );
    let call = data["call_uuid"].as_str().unwrap().to_string();
    wait_state(&mut esl, &call, "bridged", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(1));
    let mut admin = Esl::connect(ports.esl, Duration::from_secs(5)).unwrap();
    assert!(admin.api("reload mod_zorio_c2c").contains("+OK"));
    drop(admin);
    let mut esl = Esl::connect(ports.esl, Duration::from_secs(5)).unwrap();
    let st = wait_state(&mut esl, &call, "bridged", Duration::from_secs(5));
    assert_eq!(st["recording"]["status"], "recording", "{st}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(esl.api(&format!("c2c hangup {call}")).starts_with("+OK"));
    wait_state(&mut esl, &call, "ended", Duration::from_secs(10));
    let cdr = self::cdr(&log, &call);
    let rec = &cdr["recording"];
    let secs = rec["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
    let billsec = cdr["billsec"].as_f64().unwrap();
    println!("recorded across a reload: {secs:.2} s, billsec {billsec}");
    assert_eq!(rec["status"], "available", "{cdr}");
    assert!(
        (secs - billsec).abs() <= 1.0 && secs >= 2.5,
        "{secs} vs {billsec}"
    );
    step("a recording goes on across reload mod_zorio_c2c");

    // A recordings dir that cannot be written: `c2c reload` refuses the
    // config in one sentence and keeps the old one.
    let bad = dir.join("freeswitch.out").join("rec");
    let extra = format!(
        r#"<settings><param name="recordings-dir" value="{}"/></settings>"#,
        bad.display()
    );
    write(
        &dir.join("conf/freeswitch.xml"),
        &freeswitch_xml_with(ports, &default_webhooks(&dir.join("spool")), &extra),
    );
    assert!(esl.api("reloadxml").contains("+OK"));
    let reply = esl.api("c2c reload");
    println!(
        "c2c reload with an unwritable recordings-dir: {}",
        reply.trim()
    );
    assert!(reply.starts_with("-ERR"), "{reply}");
    assert!(
        reply.contains("recordings-dir") && reply.contains("cannot be created"),
        "{reply}"
    );
    step("an unwritable recordings-dir is refused at c2c reload");
}
