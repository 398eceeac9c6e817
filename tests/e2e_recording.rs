//! End to end against a real FreeSWITCH: call recording. The agent's
//! phone streams a 400 Hz tone, the carrier's customer a 1000 Hz tone; a
//! call placed with `record: true` is recorded by the switch from the
//! customer's answer to the end, in two channels. Checked: the file has 2
//! channels, the customer's tone dominates one and the agent's the other
//! (Goertzel at 400 and 1000 Hz, per channel), its length matches
//! `billsec` within 1 s, and the CDR's `recording` (bytes, sha256,
//! channels, duration_ms) matches the file on disk. Then: the recording
//! goes on across `reload mod_zorio_c2c` and across a transfer of the
//! customer (`uuid_transfer` to a party streaming 1700 Hz, which then
//! dominates the second channel); an unwritable `recordings-dir` and a
//! `recording-format` no loaded module writes (mp3) are refused at `c2c
//! reload`; recordings on a 1 MiB tmpfs that another writer fills mid-call
//! (needs root: otherwise that case prints `SKIPPED`) fail the recording,
//! not the call: it ends normally with its hangup and a CDR saying `failed`.
//!
//! Runs when `FREESWITCH_BIN` is set (see tests/e2e_freeswitch.rs);
//! otherwise prints `SKIPPED: <why>`.

mod e2e_common;
mod scratch;

use std::path::Path;
use std::time::Duration;

use e2e_common::audio::{goertzel, read_wav};
use e2e_common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

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
    // The party numbers 44… reach through the dialplan (a transfer's target).
    let party_tone = dir.join("tone1700.ulaw");
    write_ulaw_tone_hz(&party_tone, 1700.0);
    let _party = Sipp::start(
        &env,
        &dir,
        "party",
        &scenario_answers_talking("party", 300, &party_tone),
        ports.carrier_dialplan,
        ports.rtp_start + 56,
    );
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
    assert_eq!(rec["url"], format!("/api/pbx/calls/{call}/recording"));
    let (rate, samples) = cdr_is_the_file(&cdr, &path);
    let secs = samples[0].len() as f64 / f64::from(rate);
    // The middle of the call: from 1 s in to 0.5 s before the end.
    dominated(&samples, rate, 0, (1.0, secs - 0.5), 1000.0, 400.0);
    dominated(&samples, rate, 1, (1.0, secs - 0.5), 400.0, 1000.0);
    let bytes = std::fs::read(&path).unwrap();
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

    recording_follows_a_transfer(ports, &mut esl, &log);

    // Refused at `c2c reload` in one sentence, the old config kept: a
    // recordings dir that cannot be written, a format no loaded module
    // writes (mp3 needs mod_shout).
    let bad = dir.join("freeswitch.out").join("rec");
    for (rec_dir, format, param, why) in [
        (&bad, "wav", "recordings-dir", "cannot be created"),
        (&recordings, "mp3", "recording-format", "writes mp3 files"),
    ] {
        let reply = reload_with(&dir, ports, &mut esl, &settings(rec_dir, format));
        println!("c2c reload, bad {param}: {reply}");
        let at = format!("-ERR config_invalid settings/param[{param}]: ");
        assert!(reply.starts_with(&at), "{reply}");
        assert!(reply.contains(why), "{reply}");
        assert!(reply.ends_with("(previous config kept)"), "{reply}");
    }
    step("an unwritable recordings-dir and recording-format mp3 (no mod_shout) are refused at c2c reload");

    // At load too: `reload mod_zorio_c2c` with mp3 leaves the module
    // unloaded, the log saying why; with wav it loads again.
    configure(&dir, ports, &mut esl, &settings(&recordings, "mp3"));
    let reply = api(ports, "reload mod_zorio_c2c");
    let why =
        "settings/param[recording-format]: no format module loaded in the switch writes mp3 files";
    let mut line = String::new();
    wait_for(
        "the load's refusal in the log",
        Duration::from_secs(5),
        || {
            let text = std::fs::read_to_string(dir.join("log/freeswitch.log")).unwrap_or_default();
            line = text
                .lines()
                .rfind(|l| l.contains("mod_zorio_c2c not loaded"))
                .unwrap_or_default()
                .to_string();
            line.contains(why)
        },
    );
    let reply = reply.trim().replace('\n', " / ");
    println!("reload mod_zorio_c2c with mp3: {reply}; log: {line}");
    assert!(reply.contains("-ERR loading module"), "{reply}");
    assert!(api(ports, "c2c status").starts_with("-ERR"), "unloaded");
    configure(&dir, ports, &mut esl, &settings(&recordings, "wav"));
    let reply = api(ports, "load mod_zorio_c2c");
    assert!(reply.contains("+OK"), "{reply}");
    step("recording-format mp3 is refused at load too (the module stays unloaded, the log says why); wav loads");

    full_disk_keeps_the_call(&dir, ports, &mut esl, &log);
}

/// The `<settings>` of a reload: recordings in `dir`, as `format`.
fn settings(dir: &Path, format: &str) -> String {
    format!(
        r#"<settings><param name="recordings-dir" value="{}"/><param name="recording-format" value="{format}"/></settings>"#,
        dir.display()
    )
}

/// Rewrites the config with `extra`, then `reloadxml`.
fn configure(dir: &Path, ports: Ports, esl: &mut Esl, extra: &str) {
    write(
        &dir.join("conf/freeswitch.xml"),
        &freeswitch_xml_with(ports, &default_webhooks(&dir.join("spool")), extra),
    );
    assert!(esl.api("reloadxml").contains("+OK"));
}

/// [`configure`], then `c2c reload`: its reply.
fn reload_with(dir: &Path, ports: Ports, esl: &mut Esl, extra: &str) -> String {
    configure(dir, ports, esl, extra);
    esl.api("c2c reload").trim().to_string()
}

/// One command over a fresh event-socket connection (what `fs_cli -x` does).
fn api(ports: Ports, cmd: &str) -> String {
    Esl::connect(ports.esl, Duration::from_secs(5))
        .expect("ESL connection")
        .api(cmd)
}

fn file_len(path: &str) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Asserts that the CDR's `recording` is the file at `path` (available,
/// bytes, sha256, 2 channels, duration_ms) and that its length is `billsec`
/// within 1 s: the file's rate and samples per channel.
fn cdr_is_the_file(cdr: &Value, path: &str) -> (u32, Vec<Vec<f64>>) {
    let rec = &cdr["recording"];
    assert_eq!(rec["status"], "available", "{cdr}");
    assert_eq!(rec["format"], "wav");
    assert_eq!(rec["channels"], 2);
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(rec["bytes"], bytes.len() as u64, "bytes as on disk");
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(rec["sha256"], sha, "sha256 of the file on disk");
    let (channels, rate, samples) = read_wav(Path::new(path));
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
    (rate, samples)
}

/// Asserts that channel `ch` of `samples` from `from` to `to` seconds is
/// dominated by `want` Hz over `other` Hz; prints both.
fn dominated(samples: &[Vec<f64>], rate: u32, ch: usize, span: (f64, f64), want: f64, other: f64) {
    let at = |t: f64| ((t * f64::from(rate)) as usize).min(samples[ch].len());
    let part = &samples[ch][at(span.0)..at(span.1)];
    let (p_want, p_other) = (goertzel(part, rate, want), goertzel(part, rate, other));
    println!(
        "channel {} {:.1}-{:.1} s: {want} Hz {p_want:.3e}, {other} Hz {p_other:.3e}",
        ch + 1,
        span.0,
        span.1
    );
    assert!(span.1 - span.0 >= 1.0, "a span of at least 1 s: {span:?}");
    assert!(
        p_want > 20.0 * p_other,
        "channel {} {span:?} is not dominated by {want} Hz",
        ch + 1
    );
}

/// The customer transferred (`uuid_transfer` of the B-leg to 4412345, the
/// dialplan's party streaming 1700 Hz): the recording goes on, the
/// customer's tone on channel 1 throughout, the agent's 400 Hz on channel
/// 2 before the transfer and the party's 1700 Hz after it.
fn recording_follows_a_transfer(ports: Ports, esl: &mut Esl, log: &EventLog) {
    let data = place(
        esl,
        json!({"from_extension": "1001", "to_phone": "0987654321", "record": true}),
    );
    let call = data["call_uuid"].as_str().unwrap().to_string();
    let b = data["b_leg_uuid"].as_str().unwrap().to_string();
    let st = wait_state(esl, &call, "bridged", Duration::from_secs(15));
    let bridged = std::time::Instant::now();
    let path = st["recording"]["path"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(2));
    // The file started at the customer's answer, before this.
    let t_transfer = bridged.elapsed().as_secs_f64();
    let r = api(ports, &format!("uuid_transfer {b} 4412345 XML default"));
    assert!(r.starts_with("+OK"), "uuid_transfer: {r}");
    wait_for(
        "the customer talks to the party",
        Duration::from_secs(15),
        || status(esl, &call)["last_party"]["leg_uuid"].is_string(),
    );
    let at_transfer = file_len(&path);
    std::thread::sleep(Duration::from_secs(3));
    let later = file_len(&path);
    let st = status(esl, &call);
    assert_eq!(st["status"], "bridged", "{st}");
    assert_eq!(st["recording"]["status"], "recording", "{st}");
    assert!(api(ports, &format!("c2c hangup {call}")).starts_with("+OK"));
    wait_state(esl, &call, "ended", Duration::from_secs(10));
    let cdr = cdr(log, &call);
    let rec = &cdr["recording"];
    println!(
        "transferred call's CDR recording: {rec}, billsec {}",
        cdr["billsec"]
    );
    assert_eq!(cdr["parties"].as_array().map(Vec::len), Some(2), "{cdr}");
    let (rate, samples) = cdr_is_the_file(&cdr, &path);
    let secs = samples[0].len() as f64 / f64::from(rate);
    let per_sec = f64::from(rate) * 4.0;
    let billsec = cdr["billsec"].as_f64().unwrap();
    let grew = (later - at_transfer) as f64 / per_sec;
    println!(
        "transfer {t_transfer:.2} s after the bridge; the file grew {grew:.2} s in the 3 s after the party answered; {secs:.2} s in all, billsec {billsec}"
    );
    // FreeSWITCH writes it in 64 KiB (2.048 s) strides: at least one in 3 s.
    assert!(grew >= 2.0, "the file grows after the transfer: {grew} s");
    // Before the transfer; the last 1.5 s (the party talked 3 s).
    let (early, late) = ((0.5, t_transfer - 0.3), (secs - 2.0, secs - 0.5));
    dominated(&samples, rate, 0, early, 1000.0, 400.0);
    dominated(&samples, rate, 0, late, 1000.0, 1700.0);
    dominated(&samples, rate, 1, early, 400.0, 1700.0);
    dominated(&samples, rate, 1, late, 1700.0, 400.0);
    step("a transfer of the customer: the recording goes on (the party's tone after it), length = billsec, CDR = the file");
}

/// A tmpfs mounted at a path (needs CAP_SYS_ADMIN), unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Recordings on a 1 MiB tmpfs that another writer fills while the call is
/// bridged: the call goes on and ends normally, its hangup and CDR come,
/// and the CDR says the recording failed.
fn full_disk_keeps_the_call(dir: &Path, ports: Ports, esl: &mut Esl, log: &EventLog) {
    let small = dir.join("small");
    let _tmpfs = match Tmpfs::mount(&small, "1m") {
        Ok(t) => t,
        Err(why) => return skipped(&format!("a full disk needs a tmpfs: {why}")),
    };
    let reply = reload_with(dir, ports, esl, &settings(&small, "wav"));
    assert!(reply.starts_with("+OK"), "{reply}");
    let data = place(
        esl,
        json!({"from_extension": "1001", "to_phone": "0987654321", "record": true}),
    );
    let call = data["call_uuid"].as_str().unwrap().to_string();
    let legs = [&data["a_leg_uuid"], &data["b_leg_uuid"]].map(|l| l.as_str().unwrap().to_string());
    let st = wait_state(esl, &call, "bridged", Duration::from_secs(15));
    let path = st["recording"]["path"].as_str().unwrap().to_string();
    assert!(path.starts_with(&small.display().to_string()), "{path}");
    wait_for(
        "the first 64 KiB of audio on disk",
        Duration::from_secs(5),
        || file_len(&path) > 65_536,
    );
    // Another writer takes every byte left.
    let mut filler = std::fs::File::create(small.join("filler")).unwrap();
    let (mut filled, chunk) = (0usize, vec![7u8; 4096]);
    let err = loop {
        match std::io::Write::write(&mut filler, &chunk) {
            Ok(n) => filled += n,
            Err(e) => break e,
        }
    };
    assert_eq!(err.raw_os_error(), Some(28), "ENOSPC: {err}");
    let at_full = file_len(&path);
    println!("disk full: filler {filled} bytes, recording {at_full} bytes");
    std::thread::sleep(Duration::from_secs(3));
    let st = status(esl, &call);
    assert_eq!(st["status"], "bridged", "the call goes on: {st}");
    for leg in &legs {
        assert_eq!(api(ports, &format!("uuid_exists {leg}")).trim(), "true");
    }
    assert!(api(ports, &format!("c2c hangup {call}")).starts_with("+OK"));
    wait_state(esl, &call, "ended", Duration::from_secs(10));
    let cdr = cdr(log, &call);
    assert!(
        log.position("zorio_c2c::call.hangup", &call).is_some(),
        "pbx.call.hangup"
    );
    // The last one: a failed attempt over the first trunk had the same uuid.
    let b_end = log
        .all()
        .into_iter()
        .rev()
        .find(|e| {
            e.get("Event-Name").map(String::as_str) == Some("CHANNEL_HANGUP_COMPLETE")
                && e.get("Unique-ID") == Some(&legs[1])
        })
        .expect("the customer's HANGUP_COMPLETE");
    let cause = b_end.get("variable_record_completion_cause");
    println!(
        "customer's leg: record_completion_cause {cause:?}; the file kept {} bytes",
        file_len(&path)
    );
    assert_eq!(cause.map(String::as_str), Some("uri-failure"));
    let rec = &cdr["recording"];
    println!(
        "disk filled mid-call: hangup_cause {}, billsec {}, recording {rec}",
        cdr["hangup_cause"], cdr["billsec"]
    );
    assert_eq!(cdr["hangup_cause"], "NORMAL_CLEARING", "{cdr}");
    assert_eq!(cdr["hangup_by"], "api", "{cdr}");
    assert!(cdr["billsec"].as_u64().unwrap() >= 4, "{cdr}");
    assert_eq!(rec["status"], "failed", "{cdr}");
    assert!(rec["url"].is_null(), "{rec}");
    let r = http_get(
        ports.http,
        &format!("/api/pbx/calls/{call}"),
        "e2e-token-0123456789",
    );
    assert!(r.contains(r#""status":"failed""#), "{r}");
    drop(filler);
    step("a disk that fills mid-call: the call ends normally, hangup + CDR, the CDR says the recording failed");
}
