//! Webhooks survive a crash, inside a real FreeSWITCH: an event is on disk
//! before it counts as accepted, and a FreeSWITCH killed with SIGKILL while
//! deliveries are being attempted delivers every event once started again,
//! per call in order, signed, with the same event ids.
//!
//! Two real calls (agent and carriers played by sipp) end while the CRM's
//! receiver takes each call's first event (`pbx.call.ringing`) and refuses
//! the rest (503), so they pile up in the spool; with a delivery in flight
//! (the receiver stalls) FreeSWITCH gets `kill -9`. It is started again on
//! the same config and spool, the receiver now answering 200: each call's
//! events continue where they stopped, in order.
//!
//! Runs like `tests/e2e_freeswitch.rs` (`FREESWITCH_BIN`, `FREESWITCH_MOD_DIR`,
//! `SIPP_BIN`, `ZORIO_C2C_SO`); otherwise prints `SKIPPED: <why>`.

mod e2e_common;
mod scratch;
mod webhooks_common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use e2e_common::*;
use webhooks_common::{Receiver, Reply, Req, SECRET};

/// How the CRM's receiver answers, switched by the test: `REFUSE` takes
/// `pbx.call.ringing` and answers 503 to anything else.
const REFUSE: u8 = 0;
const STALL: u8 = 1;
const ACCEPT: u8 = 2;

/// One call event as FreeSWITCH announced it (CUSTOM `zorio_c2c::*`).
#[derive(Debug, Clone)]
struct Announced {
    id: String,
    event_type: String,
    seq: u32,
    leg: String,
    /// Its spool file existed the moment the CUSTOM event reached us.
    spooled: bool,
}

/// Events waiting in the store's spool (`<spool>/zorio_c2c.db`, read by a
/// connection of the test's own): id -> record as stored.
fn pending(spool: &Path) -> HashMap<String, Value> {
    let db = spool.join("zorio_c2c.db");
    if !db.exists() {
        return HashMap::new();
    }
    let c = rusqlite::Connection::open(db).expect("open the store");
    let mut st = c
        .prepare("SELECT id, call_uuid, seq, type, body FROM spool")
        .expect("query the spool");
    st.query_map([], |r| {
        let id: String = r.get(0)?;
        let v = serde_json::json!({
            "id": id,
            "call_uuid": r.get::<_, String>(1)?,
            "seq": r.get::<_, i64>(2)?,
            "type": r.get::<_, String>(3)?,
            "body": r.get::<_, String>(4)?,
        });
        Ok((id, v))
    })
    .expect("read the spool")
    .map(|r| r.expect("a spool row"))
    .collect()
}

/// Checks the Standard Webhooks headers of one request against `secret`;
/// returns the event id.
fn verify_signed(req: &Req, secret: &str) -> String {
    let id = req.header("webhook-id").to_string();
    let ts = req.header("webhook-timestamp");
    let sig = req.header("webhook-signature");
    let body = String::from_utf8(req.body.clone()).expect("UTF-8 body");
    assert_eq!(id, req.id(), "webhook-id is the event id: {body}");
    assert!(
        req.header("content-type").starts_with("application/json"),
        "{:?}",
        req.headers
    );
    let t: i64 = ts
        .parse()
        .unwrap_or_else(|_| panic!("webhook-timestamp {ts:?}"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - t).abs() < 300,
        "webhook-timestamp {t} is now ({now})"
    );
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert!(
        sig.split(' ').any(|s| s == expected),
        "webhook-signature {sig:?} is not HMAC-SHA256(id.timestamp.body) = {expected}"
    );
    id
}

#[test]
fn webhooks_survive_sigkill_of_a_real_freeswitch() {
    let env = match find_env() {
        Ok(e) => e,
        Err(why) => return skipped(&why),
    };
    let started = Instant::now();
    let ports = Ports::new();
    let dir = e2e_dir("crash");
    let version = describe(&env);
    let spool: PathBuf = dir.join("spool");

    // The CRM: refuses, then stalls, then accepts; every request is kept.
    let mode = Arc::new(AtomicU8::new(REFUSE));
    let m = mode.clone();
    let receiver = Arc::new(Receiver::start(0, move |req, _| {
        match m.load(Ordering::SeqCst) {
            REFUSE if req.json()["type"] == "pbx.call.ringing" => Reply::Status(200),
            REFUSE => Reply::Status(503),
            STALL => Reply::Stall(Duration::from_secs(60)),
            _ => Reply::Status(200),
        }
    }));
    let webhooks = webhook_params(
        &receiver.url(),
        SECRET,
        &spool,
        r#"
        <param name="give-up-after" value="86400"/>
        <param name="response-timeout" value="60"/>"#,
    );

    let agent = Sipp::start(
        &env,
        &dir,
        "agent",
        &scenario_answers("agent", 800),
        ports.agent,
        ports.rtp_start + 40,
    );
    let (carrier, carrier503) = start_carriers(&env, &dir, ports);

    // ------------------------------------------------ first FreeSWITCH ---
    let mut first = start_freeswitch_with(&env, &dir, ports, &webhooks);
    let mut esl = connect_ready(ports, &dir);
    step(&format!(
        "FreeSWITCH up (pid {}) with mod_zorio_c2c, webhooks to {} (200 to pbx.call.ringing, 503 to the rest)",
        first.pid(),
        receiver.url()
    ));
    // When FreeSWITCH announces an event, it must be committed in the
    // store's spool, or delivered already (the receiver records a request
    // before answering it, and the module unspools only after the answer).
    let spool_dir = spool.clone();
    let crm = receiver.clone();
    let events = EventLog::listen_with(ports.esl, move |ev| {
        if let Some(id) = ev.get("Zorio-C2C-Event-ID").cloned() {
            let on_disk = pending(&spool_dir).contains_key(&id);
            let spooled = on_disk || crm.requests().iter().any(|r| r.delivered() && r.id() == id);
            ev.insert("_spooled".into(), spooled.to_string());
        }
    });
    std::thread::sleep(Duration::from_millis(300));

    // Three calls at once: one straight to BACKUP, one by LCR (POC 503, then
    // BACKUP), both hung up before the kill; a third still talking when killed.
    let mut placed: Vec<String> = [
        serde_json::json!({"from_extension": "1001", "to_phone": "0987654321", "trunk_id": 5}),
        serde_json::json!({"from_extension": "1001", "to_phone": "0987654322"}),
        serde_json::json!({"from_extension": "1001", "to_phone": "0987654323", "trunk_id": 5}),
    ]
    .into_iter()
    .map(|body| {
        place(&mut esl, body)["call_uuid"]
            .as_str()
            .unwrap()
            .to_string()
    })
    .collect();
    for c in &placed {
        wait_state(&mut esl, c, "bridged", Duration::from_secs(20));
    }
    let live = placed.pop().unwrap();
    let calls = placed;
    for c in &calls {
        let r = esl.api(&format!("c2c hangup {c}"));
        assert!(r.starts_with("+OK"), "{r}");
    }
    for c in &calls {
        let s = wait_state(&mut esl, c, "ended", Duration::from_secs(10));
        assert_eq!(s["outcome"], "completed", "{s}");
    }
    // Each call's events as announced, in seq order.
    let announced = |call: &str| -> Vec<Announced> {
        let mut v: Vec<Announced> = events
            .all()
            .iter()
            .filter(|e| e.get("Zorio-C2C-Call-UUID").map(String::as_str) == Some(call))
            .map(|e| Announced {
                id: e["Zorio-C2C-Event-ID"].clone(),
                event_type: e["Zorio-C2C-Event-Type"].clone(),
                seq: e["Zorio-C2C-Seq"].parse().unwrap(),
                // Absent for call-wide events (bridged, cdr).
                leg: e.get("Zorio-C2C-Leg").cloned().unwrap_or_default(),
                spooled: e.get("_spooled").map(String::as_str) == Some("true"),
            })
            .collect();
        v.sort_by_key(|a| a.seq);
        v
    };
    wait_for(
        "both calls' pbx.cdr.created",
        Duration::from_secs(10),
        || {
            calls.iter().all(|c| {
                announced(c)
                    .iter()
                    .any(|a| a.event_type == "pbx.cdr.created")
            })
        },
    );
    wait_for(
        "the live call's pbx.call.bridged",
        Duration::from_secs(10),
        || {
            announced(&live)
                .iter()
                .any(|a| a.event_type == "pbx.call.bridged")
        },
    );
    let mut per_call: BTreeMap<String, Vec<Announced>> = BTreeMap::new();
    for c in calls.iter().chain([&live]) {
        let evs = announced(c);
        let seqs: Vec<u32> = evs.iter().map(|a| a.seq).collect();
        assert_eq!(
            seqs,
            (1..=evs.len() as u32).collect::<Vec<_>>(),
            "call {c}: seq 1..n once each"
        );
        let contract: Vec<String> = evs
            .iter()
            .filter(|a| CONTRACT.contains(&a.event_type.as_str()))
            .map(|a| match a.event_type.as_str() {
                "pbx.call.answered" => format!("{} {}", a.event_type, a.leg),
                t => t.to_string(),
            })
            .collect();
        let ended: &[&str] = if *c == live {
            &[] // its hangup and cdr never happen: the process dies first
        } else {
            &["pbx.call.hangup", "pbx.cdr.created"]
        };
        let mut want = vec![
            "pbx.call.ringing",
            "pbx.call.answered A",
            "pbx.call.answered B",
        ];
        want.extend(ended);
        assert_eq!(contract, want, "call {c}: {evs:?}");
        let late: Vec<&Announced> = evs.iter().filter(|a| !a.spooled).collect();
        assert!(
            late.is_empty(),
            "announced before its spool file existed: {late:?}"
        );
        per_call.insert(c.clone(), evs);
    }
    let all_ids: HashSet<String> = per_call.values().flatten().map(|a| a.id.clone()).collect();
    let describe_call = |evs: &[Announced]| {
        evs.iter()
            .map(|a| match a.event_type.as_str() {
                "pbx.call.answered" => format!("{}#{} {}", a.seq, a.event_type, a.leg),
                t => format!("{}#{t}", a.seq),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (c, evs) in &per_call {
        let what = if *c == live {
            "still talking"
        } else {
            "completed"
        };
        step(&format!("call {c} {what}: {}", describe_call(evs)));
    }
    step(&format!(
        "all {} events were in the spool (an fsync'd file, or already delivered) when FreeSWITCH announced them (CUSTOM zorio_c2c::*)",
        all_ids.len()
    ));

    // Each call's ringing delivered; its next event attempted and refused, with retries.
    wait_for(
        "retries of each call's second event",
        Duration::from_secs(10),
        || {
            let reqs = receiver.requests();
            per_call
                .values()
                .all(|evs| reqs.iter().filter(|r| r.id() == evs[1].id).count() >= 2)
        },
    );
    let before_kill = receiver.requests();
    for r in &before_kill {
        verify_signed(r, SECRET);
        let ringing = r.json()["type"] == "pbx.call.ringing";
        assert_eq!(
            r.status,
            Some(if ringing { 200 } else { 503 }),
            "{:?}",
            r.json()
        );
    }
    let delivered_before: HashSet<String> = before_kill
        .iter()
        .filter(|r| r.delivered())
        .map(Req::id)
        .collect();
    let ringing_ids: HashSet<String> = per_call.values().map(|evs| evs[0].id.clone()).collect();
    assert_eq!(
        delivered_before, ringing_ids,
        "only the ringings were taken"
    );
    let refused = before_kill.iter().filter(|r| !r.delivered()).count();
    // Kill with a delivery in flight: the receiver stops answering.
    let before_stall = receiver.requests().len();
    mode.store(STALL, Ordering::SeqCst);
    let mut in_flight = String::new();
    wait_for("a delivery in flight", Duration::from_secs(10), || {
        let reqs = receiver.requests();
        match reqs.iter().skip(before_stall).find(|r| r.status.is_none()) {
            Some(r) => {
                in_flight = r.id();
                true
            }
            None => false,
        }
    });
    let pid = first.pid();
    let exit = first.sigkill();
    assert_eq!(
        exit.signal(),
        Some(9),
        "FreeSWITCH died of SIGKILL: {exit:?}"
    );
    let attempted: Vec<Req> = receiver.requests();
    let attempted_ids: HashSet<String> = attempted.iter().map(Req::id).collect();
    assert_eq!(
        attempted.iter().filter(|r| r.delivered()).count(),
        delivered_before.len(),
        "nothing else was accepted before the kill"
    );
    let refused_ids: HashSet<String> = attempted_ids
        .difference(&delivered_before)
        .cloned()
        .collect();
    step(&format!(
        "before the kill: the {} ringings delivered (200), {refused} attempts refused (503) for {:?}, every request signed; SIGKILL (pid {pid}) with {in_flight} in flight: {exit}",
        delivered_before.len(),
        {
            let mut v: Vec<&String> = refused_ids.iter().collect();
            v.sort();
            v
        }
    ));

    // What the dead switch left on disk: every event not delivered.
    let left = pending(&spool);
    let left_ids: HashSet<String> = left.keys().cloned().collect();
    let undelivered: HashSet<String> = all_ids.difference(&delivered_before).cloned().collect();
    assert_eq!(
        left_ids, undelivered,
        "the spool holds exactly the undelivered events"
    );
    assert!(refused_ids.is_subset(&left_ids));
    for (c, evs) in &per_call {
        for a in evs.iter().filter(|a| left_ids.contains(&a.id)) {
            let r = &left[&a.id];
            assert_eq!(r["call_uuid"].as_str(), Some(c.as_str()));
            assert_eq!(r["seq"].as_u64(), Some(a.seq as u64));
            assert_eq!(r["type"].as_str(), Some(a.event_type.as_str()));
        }
    }
    step(&format!(
        "after the kill {} holds the {} undelivered events (ids, types and seqs as announced)",
        spool.join("zorio_c2c.db").display(),
        left.len()
    ));

    // ----------------------------------------------- second FreeSWITCH ---
    drop(esl);
    mode.store(ACCEPT, Ordering::SeqCst);
    let accept_from = attempted.len();
    let restarted = Instant::now();
    let second = start_freeswitch_with(&env, &dir, ports, &webhooks);
    let mut esl = connect_ready(ports, &dir);
    let delivered_ids = || -> HashSet<String> {
        receiver
            .requests()
            .iter()
            .filter(|r| r.delivered())
            .map(Req::id)
            .collect()
    };
    // ... and the live call, which the kill ended, reported from the journal:
    // its pbx.call.hangup and pbx.cdr.created, recovered, cause CRASH.
    let live_ended = || {
        receiver
            .requests()
            .iter()
            .filter(|r| r.delivered())
            .map(Req::json)
            .filter(|b| b["data"]["call_uuid"].as_str() == Some(live.as_str()))
            .filter(|b| b["type"] == "pbx.cdr.created")
            .count()
            > 0
    };
    wait_for(
        "every event delivered after the restart, the live call's CDR too",
        Duration::from_secs(30),
        || delivered_ids().is_superset(&all_ids) && live_ended(),
    );
    let took = restarted.elapsed();
    let everything = receiver.requests();
    let mut first_delivery: Vec<(String, Value)> = Vec::new();
    let mut seen = HashSet::new();
    for r in &everything {
        let id = verify_signed(r, SECRET);
        if r.delivered() && seen.insert(id.clone()) {
            first_delivery.push((id, r.json()));
        }
    }
    let duplicates = everything.iter().filter(|r| r.delivered()).count() - first_delivery.len();
    let after = everything.len() - accept_from;
    for (c, evs) in &per_call {
        let got: Vec<(String, Value)> = first_delivery
            .iter()
            .filter(|(_, b)| b["data"]["call_uuid"].as_str() == Some(c.as_str()))
            .cloned()
            .collect();
        let got_ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
        let want_ids: Vec<&str> = evs.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(
            &got_ids[..want_ids.len().min(got_ids.len())],
            &want_ids[..],
            "call {c}: delivered in seq order across the kill, same ids"
        );
        let extra: Vec<&Value> = got[want_ids.len()..].iter().map(|(_, b)| b).collect();
        if *c == live {
            // The call the kill ended: reported once, after the restart.
            let types: Vec<&str> = extra.iter().filter_map(|b| b["type"].as_str()).collect();
            assert_eq!(types, ["pbx.call.hangup", "pbx.cdr.created"], "{extra:?}");
            for b in &extra {
                assert_eq!(b["data"]["recovered"], true, "{b}");
                assert_eq!(b["data"]["hangup_cause"], "CRASH", "{b}");
            }
            assert_eq!(extra[1]["data"]["seq"], evs.len() as u64 + 2);
        } else {
            assert!(extra.is_empty(), "call {c}: {extra:?}");
        }
        for ((id, body), a) in got.iter().zip(evs) {
            assert_eq!(body["type"].as_str(), Some(a.event_type.as_str()), "{id}");
            if let Some(spooled) = left.get(id) {
                let spooled: Value =
                    serde_json::from_str(spooled["body"].as_str().unwrap()).unwrap();
                assert_eq!(body, &spooled, "{id}: the body spooled before the kill");
            }
        }
    }
    step(&format!(
        "FreeSWITCH started again (pid {}): the {} spooled events delivered {took:?} after the restart ({after} requests); each call's whole sequence delivered in seq order across the kill, same ids and bodies as spooled, every request's webhook-signature = HMAC-SHA256(id.timestamp.body); {duplicates} duplicates",
        second.pid(),
        left.len(),
    ));
    assert!(
        attempted_ids.is_subset(&delivered_ids()),
        "every event attempted before the kill was delivered"
    );
    step(&format!(
        "the {} event ids attempted before the kill (incl. the one in flight) are all delivered",
        attempted_ids.len()
    ));

    // Nothing left behind.
    let mut status = Value::Null;
    wait_for("an empty spool", Duration::from_secs(10), || {
        status = json_of(&esl.api("c2c webhooks status"));
        pending(&spool).is_empty() && status["spool_size"] == 0 && status["queue_depth"] == 0
    });
    assert_eq!(status["dead_letters"], 0, "{status}");
    assert_eq!(status["dead_lettered"], 0, "{status}");
    // The module's own listener took its port back from the dead process.
    let r = http_get(
        ports.http,
        "/api/pbx/webhooks/status",
        "e2e-token-0123456789",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let over_http = json_of(r.split_once("\r\n\r\n").map_or("", |(_, b)| b));
    let spool_size = over_http
        .get("data")
        .unwrap_or(&over_http)
        .get("spool_size")
        .cloned();
    assert_eq!(spool_size, Some(Value::from(0)), "{over_http}");
    let log = fs::read_to_string(dir.join("log/freeswitch.log")).unwrap_or_default();
    let requeued = format!("webhooks: {} spooled events re-queued", left.len());
    assert!(log.contains(&requeued), "the log says: {requeued}");
    step(&format!(
        "spool empty at the end (no row in the store's spool; c2c webhooks status and GET /api/pbx/webhooks/status: spool_size 0, delivered {}, dead_letters 0); log: \"{requeued}\"",
        status["delivered"]
    ));
    println!(
        "e2e crash: all steps passed against {version} in {:?}",
        started.elapsed()
    );
    drop(esl);
    drop(second);
    drop(first);
    drop((agent, carrier, carrier503));
    drop(receiver);
    // Kept when a step fails (the panic skips this), for its logs.
    let _ = fs::remove_dir_all(&dir);
}

/// The contract's event types (the others are additions).
const CONTRACT: [&str; 4] = [
    "pbx.call.ringing",
    "pbx.call.answered",
    "pbx.call.hangup",
    "pbx.cdr.created",
];
