//! The crash loop: the sandbox is killed with SIGKILL, again and again, at
//! random moments while it accepts calls and delivers their webhooks to a
//! loopback receiver, and is started again on the same data directory.
//! Afterwards: every call answered 202 has exactly one `pbx.call.hangup` and
//! one `pbx.cdr.created`, no event of any call is missing (seqs 1..=n, the
//! CDR last), each call's events arrived in order, a duplicate always has the
//! same `webhook-id`, and an `Idempotency-Key` replays its call across kills.
//!
//! `C2C_CRASH_KILLS` (default 50) sets the number of kills; the seed is
//! printed, `C2C_CRASH_SEED` replays a run.

mod scratch;
mod webhooks_common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use webhooks_common::{free_port, temp_spool, Receiver, SECRET};

const TOKEN: &str = "sandbox-token";

/// A small xorshift: the test's only randomness, seeded and printed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The sandbox process; killed when dropped (also when an assertion fails).
struct Sandbox(Child);

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(port: u16, dir: &Path, url: &str) -> Sandbox {
    let child = Command::new(env!("CARGO_BIN_EXE_c2c-sandbox"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir)
        .args(["--webhook-url", url, "--webhook-secret", SECRET])
        .args(["--rate-limit", "0", "--quiet"])
        .args(["--agent-answer-ms", "20", "--customer-answer-ms", "20"])
        .args(["--talk-ms", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the sandbox");
    Sandbox(child)
}

/// One HTTP/1.1 request on a fresh connection: (status, headers, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String, Value)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))?
        .trim()
        .parse()
        .ok()?;
    if body.len() < len {
        return None; // cut by the kill
    }
    Some((
        status,
        head.to_string(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    ))
}

fn wait_ready(addr: SocketAddr) {
    let until = Instant::now() + Duration::from_secs(20);
    while http(addr, "GET", "/health", &[], "").map(|r| r.0) != Some(200) {
        assert!(Instant::now() < until, "the sandbox did not come up");
        std::thread::sleep(Duration::from_millis(5));
    }
}

const CALL: &str = r#"{"from_extension":"1001","to_phone":"0987654321"}"#;

#[test]
fn sigkill_at_random_moments_loses_no_cdr_no_event_and_no_key() {
    let kills: usize = std::env::var("C2C_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("C2C_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash loop: {kills} kills, C2C_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let rx = Receiver::ok();
    let dir = temp_spool("crash-loop");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let accepted: Arc<Mutex<HashSet<String>>> = Arc::default();
    // Idempotency-Key -> the call_uuid its 202 named.
    let keyed: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let started = Instant::now();
    let mut replays_checked = 0;
    for round in 0..=kills {
        let mut child = start(port, &dir, &rx.url());
        wait_ready(addr);
        // Every key answered before an earlier kill replays its call, dials nobody.
        let keys: Vec<(String, String)> = keyed
            .lock()
            .unwrap()
            .iter()
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        if let Some((key, call)) = keys.get(round % keys.len().max(1)) {
            let (status, head, body) = http(
                addr,
                "POST",
                "/api/pbx/calls/click-to-call",
                &[("Idempotency-Key", key)],
                CALL,
            )
            .expect("a replay");
            assert_eq!(status, 202, "{head}");
            assert!(head.contains("Idempotent-Replayed: true"), "{head}");
            assert_eq!(body["data"]["call_uuid"], call.as_str());
            replays_checked += 1;
        }
        if round == kills {
            // The last run is left alive to deliver everything.
            let until = Instant::now() + Duration::from_secs(60);
            let want = accepted.lock().unwrap().clone();
            let _ = &child;
            loop {
                let cdrs: HashSet<String> = rx
                    .delivered()
                    .iter()
                    .filter(|b| b["type"] == "pbx.cdr.created")
                    .filter_map(|b| b["data"]["call_uuid"].as_str().map(str::to_string))
                    .collect();
                let missing = want.difference(&cdrs).count();
                if missing == 0 {
                    break;
                }
                assert!(
                    Instant::now() < until,
                    "{missing} accepted calls have no CDR after the last restart"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            // Let redeliveries still under way finish, then stop for good.
            std::thread::sleep(Duration::from_millis(300));
            drop(child);
            break;
        }
        // Place calls until the kill, some with an Idempotency-Key.
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..2)
            .map(|c| {
                let (stop, accepted, keyed) = (stop.clone(), accepted.clone(), keyed.clone());
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let key = format!("k-{round}-{c}-{n}");
                        let headers: &[(&str, &str)] = if n % 3 == 0 {
                            &[("Idempotency-Key", key.as_str())]
                        } else {
                            &[]
                        };
                        match http(addr, "POST", "/api/pbx/calls/click-to-call", headers, CALL) {
                            Some((202, _, body)) => {
                                let call = body["data"]["call_uuid"].as_str().unwrap().to_string();
                                if n % 3 == 0 {
                                    keyed.lock().unwrap().insert(key, call.clone());
                                }
                                accepted.lock().unwrap().insert(call);
                            }
                            Some((status, _, body)) => {
                                // Refusals are fine (capacity), never a 5xx of ours otherwise.
                                assert!(
                                    status == 503
                                        && ["capacity_exceeded", "shutting_down"].contains(
                                            &body["error"]["code"].as_str().unwrap_or("")
                                        ),
                                    "{status} {body}"
                                );
                            }
                            None => std::thread::sleep(Duration::from_millis(2)),
                        }
                        std::thread::sleep(Duration::from_millis(3));
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.between(20, 400)));
        child.0.kill().expect("SIGKILL");
        let status = child.0.wait().unwrap();
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9), "round {round}: {status:?}");
        }
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.join().unwrap();
        }
    }
    let elapsed = started.elapsed();

    // What the CRM received, per call.
    let reqs = rx.requests();
    let delivered: Vec<&webhooks_common::Req> = reqs.iter().filter(|r| r.delivered()).collect();
    let mut per_call: BTreeMap<String, Vec<(u64, String, String)>> = BTreeMap::new();
    let mut recovered_cdrs: HashSet<String> = HashSet::new();
    for r in &delivered {
        let b = r.json();
        if b["type"] == "pbx.cdr.created" && b["data"]["recovered"] == true {
            recovered_cdrs.insert(b["id"].as_str().unwrap().to_string());
        }
        assert_eq!(r.header("webhook-id"), b["id"].as_str().unwrap());
        let call = b["data"]["call_uuid"].as_str().unwrap().to_string();
        let seq = b["data"]["seq"].as_u64().or_else(|| b["seq"].as_u64());
        per_call.entry(call).or_default().push((
            seq.unwrap_or(0),
            b["id"].as_str().unwrap().to_string(),
            b["type"].as_str().unwrap().to_string(),
        ));
    }
    let accepted = accepted.lock().unwrap().clone();
    let mut events = 0;
    let mut duplicates = 0;
    let mut recovered = 0;
    for call in &accepted {
        assert!(
            per_call.contains_key(call),
            "accepted call {call}: no event at all"
        );
    }
    for (call, evs) in &per_call {
        // A duplicate is the same event again: same seq, same id, same type.
        let mut by_seq: BTreeMap<u64, (String, String)> = BTreeMap::new();
        let mut first_seen = Vec::new();
        for (seq, id, ty) in evs {
            match by_seq.get(seq) {
                Some((id0, ty0)) => {
                    assert_eq!((id0, ty0), (id, ty), "call {call} seq {seq}: another event");
                    duplicates += 1;
                }
                None => {
                    by_seq.insert(*seq, (id.clone(), ty.clone()));
                    first_seen.push(*seq);
                }
            }
        }
        events += by_seq.len();
        let mut sorted = first_seen.clone();
        sorted.sort();
        assert_eq!(first_seen, sorted, "call {call}: out of order");
        let n = by_seq.len() as u64;
        assert_eq!(
            by_seq.keys().copied().collect::<Vec<_>>(),
            (1..=n).collect::<Vec<_>>(),
            "call {call}: an event is missing: {evs:?}"
        );
        let types: Vec<&str> = by_seq.values().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            types.iter().filter(|t| **t == "pbx.call.hangup").count(),
            1,
            "call {call}: {types:?}"
        );
        assert_eq!(
            types.last(),
            Some(&"pbx.cdr.created"),
            "call {call}: {types:?}"
        );
        assert_eq!(
            types[types.len() - 2],
            "pbx.call.hangup",
            "call {call}: {types:?}"
        );
        if recovered_cdrs.contains(&by_seq[&n].0) {
            recovered += 1;
        }
    }
    eprintln!(
        "crash loop: {kills} SIGKILLs in {elapsed:.1?}; {} calls accepted (202), {} calls seen, \
         {events} distinct events delivered ({duplicates} duplicates, each with its webhook-id), \
         {recovered} CDRs of calls the crashes ended (recovered: true), {replays_checked} \
         Idempotency-Key replays across kills; nothing lost",
        accepted.len(),
        per_call.len()
    );
    assert!(accepted.len() >= kills, "too few calls to prove anything");
}
