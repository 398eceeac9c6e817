//! `reload mod_zorio_c2c` the way admins do it, inside a real FreeSWITCH:
//! every command through a fresh `fs_cli -x` (a new event-socket connection,
//! and so a new FreeSWITCH thread that runs our shutdown and load and then
//! exits after the old copy was closed), never a long-lived connection.
//!
//! 100 idle reloads; 100 reloads with a call at every phase (agent ringing,
//! customer being dialled, failover between trunks, customer ringing,
//! bridged, hanging up); 20 reloads through mod_xml_rpc. After each one
//! FreeSWITCH must answer `status` and still be the same process. Bridged
//! calls are adopted by the next load: `c2c status`, `GET`/`DELETE`,
//! `c2c hangup` work on them, and the CRM gets their hangup and CDR with
//! true times. `unload` with calls up, and a bridged call that ends while
//! the module is unloaded (reported `recovered`). Every call placed ends
//! in exactly one `pbx.call.hangup` and one `pbx.cdr.created`.
//!
//! Runs like `tests/e2e_freeswitch.rs` (`FREESWITCH_BIN`, `FREESWITCH_MOD_DIR`,
//! `SIPP_BIN`, `ZORIO_C2C_SO`), plus `fs_cli` (`FS_CLI_BIN`, default next to
//! the FreeSWITCH binary); otherwise prints `SKIPPED: <why>`.

mod e2e_common;
mod scratch;
mod webhooks_common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use e2e_common::*;
use webhooks_common::{Receiver, Reply, SECRET};

const TOKEN: &str = "e2e-token-0123456789";

/// What this suite asks through `fs_cli -x`.
impl FsCli {
    fn place(&self, body: Value) -> (String, String, String) {
        let r = self.x(&format!("c2c {body}"));
        assert!(r.starts_with("+OK"), "c2c refused: {r}");
        let d = json_of(&r)["data"].clone();
        let s = |k: &str| d[k].as_str().unwrap().to_string();
        (s("call_uuid"), s("a_leg_uuid"), s("b_leg_uuid"))
    }

    /// `c2c status <call>` as JSON, or `None` when the module does not know it.
    fn status(&self, call: &str) -> Option<Value> {
        let r = self.x(&format!("c2c status {call}"));
        r.starts_with("+OK").then(|| json_of(&r))
    }

    fn wait_state(&self, call: &str, state: &str, within: Duration) -> Value {
        let until = Instant::now() + within;
        loop {
            let s = self.status(call);
            if s.as_ref().is_some_and(|s| s["status"] == state) {
                return s.unwrap();
            }
            assert!(
                Instant::now() < until,
                "call {call} never reached {state}: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn exists(&self, uuid: &str) -> bool {
        self.x(&format!("uuid_exists {uuid}")).trim() == "true"
    }
}

/// FreeSWITCH is up, answers `status`, and is still the process we started.
fn same_switch(fs: &mut FreeSwitch, cli: &FsCli, dir: &Path, what: &str) {
    if let Ok(Some(status)) = fs.child.try_wait() {
        let core = core_backtrace(dir, fs.pid());
        panic!(
            "FreeSWITCH died ({status}) at {what}; logs in {}{core}",
            dir.display()
        );
    }
    let r = cli.x("status");
    assert!(r.contains("is ready"), "{what}: status answered {r:?}");
    let pid = fs::read_to_string(dir.join("run/freeswitch.pid")).unwrap_or_default();
    assert_eq!(pid.trim(), fs.pid().to_string(), "{what}: another process");
}

/// A backtrace of FreeSWITCH's core file, when the kernel left one here.
fn core_backtrace(dir: &Path, pid: u32) -> String {
    let Some(core) = [dir.join("core"), dir.join(format!("core.{pid}"))]
        .into_iter()
        .find(|p| p.exists())
    else {
        return " (no core file: `ulimit -c unlimited` to keep one)".into();
    };
    let bt = Command::new("gdb")
        .args(["-batch", "-ex", "bt"])
        .arg(std::env::var_os("FREESWITCH_BIN").unwrap_or_default())
        .arg(&core)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_else(|e| format!("(gdb: {e})"));
    format!("\ncore {}:\n{bt}", core.display())
}

/// The first delivered event of `kind` for `call`, waiting for it.
fn delivered(receiver: &Receiver, call: &str, kind: &str, within: Duration) -> Value {
    let until = Instant::now() + within;
    loop {
        if let Some(e) = receiver
            .delivered()
            .into_iter()
            .find(|e| e["type"] == kind && e["data"]["call_uuid"] == call)
        {
            return e;
        }
        assert!(Instant::now() < until, "no {kind} for {call}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reload_like_an_admin_never_crashes_and_adopts_live_calls() {
    let env = match find_env() {
        Ok(e) => e,
        Err(why) => return skipped(&why),
    };
    let ports = Ports::new();
    let cli = match FsCli::find(&env, ports.esl) {
        Ok(c) => c,
        Err(why) => return skipped(&why),
    };
    let started = Instant::now();
    let dir = e2e_dir("reload");
    let version = describe(&env);
    let receiver = Receiver::start(0, |_, _| Reply::Status(200));
    let webhooks = webhook_params(&receiver.url(), SECRET, &dir.join("spool"), "");
    let (agent, late) = start_agents(&env, &dir, ports, 200);
    let (carrier, carrier503) = start_carriers(&env, &dir, ports);
    let mut freeswitch = start_freeswitch_with(&env, &dir, ports, &webhooks);
    drop(connect_ready(ports, &dir));
    same_switch(&mut freeswitch, &cli, &dir, "start");
    step("FreeSWITCH up with mod_zorio_c2c loaded");
    let mut calls: Vec<String> = Vec::new();

    // 1. Idle reloads.
    let t = Instant::now();
    for i in 0..100 {
        let r = cli.x("reload mod_zorio_c2c");
        assert!(r.contains("+OK"), "idle reload {i}: {r}");
        same_switch(&mut freeswitch, &cli, &dir, &format!("idle reload {i}"));
    }
    step(&format!(
        "100 idle reloads, each by a fresh fs_cli -x, in {:?}: FreeSWITCH answered status after each, same pid {}",
        t.elapsed(),
        freeswitch.pid()
    ));

    // 2. Reloads with a call at every phase.
    let t = Instant::now();
    // From the 202: the agent rings ~200 ms; POC's 503 and the wait for its
    // channel to go take ~1.5 s; BACKUP rings 300 ms; then bridged.
    let delays = [30u64, 150, 400, 900, 1500, 1900, 2400, 3500];
    let mut phases: BTreeMap<String, usize> = BTreeMap::new();
    let mut adopted = 0;
    for i in 0..100 {
        let hanging_up = i % 8 == 7;
        // 1002 never answers: its phone rings until the reload.
        let ext = if i % 10 == 9 && !hanging_up {
            "1002"
        } else {
            "1001"
        };
        let (call, _a, b) = cli.place(json!({"from_extension": ext, "to_phone": "0987654321"}));
        calls.push(call.clone());
        if hanging_up {
            cli.wait_state(&call, "bridged", Duration::from_secs(10));
            cli.x(&format!("uuid_kill {b}"));
        } else if i % 8 == 3 {
            // Reload the moment the call fails over from POC (503) to BACKUP.
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until
                && cli.status(&call).is_some_and(|s| {
                    s["attempts"].as_array().map_or(0, Vec::len) < 2 && s["status"] != "ended"
                })
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        } else {
            std::thread::sleep(Duration::from_millis(delays[i % delays.len()]));
        }
        let before = cli.status(&call);
        let phase = match &before {
            None => "ended".to_string(),
            Some(s) if hanging_up => format!("hanging up ({})", s["status"].as_str().unwrap()),
            Some(s) => {
                let n = s["attempts"].as_array().map_or(0, Vec::len);
                match s["status"].as_str().unwrap() {
                    "customer_dialling" if n == 1 => "customer_dialling (POC)".to_string(),
                    "customer_dialling" => "customer_dialling (BACKUP, failed over)".to_string(),
                    "customer_ringing" if n == 2 => {
                        "customer_ringing (BACKUP, failed over)".to_string()
                    }
                    st => st.to_string(),
                }
            }
        };
        *phases.entry(phase.clone()).or_default() += 1;
        let r = cli.x("reload mod_zorio_c2c");
        assert!(r.contains("+OK"), "reload {i} ({phase}): {r}");
        same_switch(
            &mut freeswitch,
            &cli,
            &dir,
            &format!("reload {i} ({phase})"),
        );
        let after = cli.status(&call);
        if before.as_ref().is_some_and(|s| s["status"] == "bridged") && !hanging_up {
            assert!(
                after.as_ref().is_some_and(|s| s["status"] == "bridged"),
                "bridged call {call} not adopted after reload {i}: {after:?}"
            );
        }
        // Bridged by the time the old load stopped (also when it got there
        // while the reload began): the new load adopted it and can end it.
        if after.as_ref().is_some_and(|s| s["status"] == "bridged") {
            let r = cli.x(&format!("c2c hangup {call}"));
            assert!(r.starts_with("+OK"), "{r}");
            cli.wait_state(&call, "ended", Duration::from_secs(10));
            adopted += 1;
        }
    }
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let left = cli.x("show channels");
        if left.lines().any(|l| l.trim() == "0 total.") {
            break;
        }
        assert!(
            Instant::now() < until,
            "channels left after the reloads:\n{left}\n{}",
            cli.x("c2c status")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        phases.keys().any(|p| p == "agent_ringing")
            && phases.keys().any(|p| p.starts_with("customer_dialling"))
            && phases.keys().any(|p| p.contains("failed over"))
            && phases.keys().any(|p| p == "bridged")
            && phases.keys().any(|p| p.starts_with("hanging up")),
        "phases hit: {phases:?}"
    );
    step(&format!(
        "100 reloads with a call in flight in {:?}, phases at reload: {phases:?}; {adopted} bridged calls adopted and ended with c2c hangup by the next load; same pid after each",
        t.elapsed()
    ));

    // 3. Reloads through mod_xml_rpc, a call placed before each.
    let t = Instant::now();
    for i in 0..20 {
        let (call, _, _) = cli.place(json!({"from_extension": "1002", "to_phone": "0987654321"}));
        calls.push(call);
        let r = http(
            ports.xmlrpc,
            "GET",
            "/api/reload?mod_zorio_c2c",
            XMLRPC_AUTH,
            "",
        );
        assert!(r.contains("+OK"), "xml_rpc reload {i}: {r}");
        same_switch(&mut freeswitch, &cli, &dir, &format!("xml_rpc reload {i}"));
    }
    step(&format!(
        "20 reloads through mod_xml_rpc (GET /api/reload?mod_zorio_c2c) in {:?}, a ringing call each time",
        t.elapsed()
    ));

    // 4. A bridged call across a reload: found, shown, ended by DELETE; true times.
    let (call, a, b) =
        cli.place(json!({"from_extension": "1001", "to_phone": "0987654321", "trunk_id": 5}));
    calls.push(call.clone());
    cli.wait_state(&call, "bridged", Duration::from_secs(10));
    let bridged_at = Instant::now();
    let r = cli.x("reload mod_zorio_c2c");
    assert!(r.contains("+OK"), "{r}");
    let r = http_get(ports.http, &format!("/api/pbx/calls/{call}"), TOKEN);
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("\"bridged\""),
        "{r}"
    );
    std::thread::sleep(Duration::from_millis(2200));
    let r = http(
        ports.http,
        "DELETE",
        &format!("/api/pbx/calls/{call}"),
        &format!("Bearer {TOKEN}"),
        "",
    );
    assert!(
        r.starts_with("HTTP/1.1 20"),
        "DELETE of an adopted call: {r}"
    );
    let held = bridged_at.elapsed().as_secs();
    let cdr = delivered(&receiver, &call, "pbx.cdr.created", Duration::from_secs(10));
    let billsec = cdr["data"]["billsec"].as_u64().unwrap();
    assert!(
        billsec + 1 >= held && billsec <= held + 2,
        "billsec {billsec}, held {held}s: {cdr}"
    );
    assert_eq!(cdr["data"]["hangup_by"], "api");
    assert_eq!(cdr["data"]["recovered"], false);
    assert!(!cli.exists(&a) && !cli.exists(&b));
    step(&format!(
        "bridged call adopted across reload: GET shows it bridged, DELETE ends it, CDR billsec {billsec} for {held} s held, recovered false"
    ));

    // 5. unload with calls in flight; a bridged call ends while unloaded, another lives on.
    let (gone, _, gone_b) = cli.place(json!({"from_extension": "1001", "to_phone": "0987654321"}));
    let (lives, _, lives_b) =
        cli.place(json!({"from_extension": "1001", "to_phone": "0987654321"}));
    calls.extend([gone.clone(), lives.clone()]);
    cli.wait_state(&gone, "bridged", Duration::from_secs(10));
    cli.wait_state(&lives, "bridged", Duration::from_secs(10));
    let (ringing, ringing_a, _) =
        cli.place(json!({"from_extension": "1002", "to_phone": "0987654321"}));
    calls.push(ringing.clone());
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let r = cli.x("unload mod_zorio_c2c");
    let took = t.elapsed();
    assert!(r.contains("+OK"), "{r}");
    assert!(took < Duration::from_secs(10), "unload took {took:?}");
    same_switch(&mut freeswitch, &cli, &dir, "unload");
    let maps = fs::read_to_string(format!("/proc/{}/maps", freeswitch.pid())).unwrap_or_default();
    assert!(
        maps.contains("mod_zorio_c2c.so"),
        "the library stays mapped after unload (-z nodelete)"
    );
    assert!(
        !cli.exists(&ringing_a),
        "the ringing agent is hung up at unload"
    );
    assert!(
        cli.exists(&lives_b) && cli.exists(&gone_b),
        "bridged calls keep talking"
    );
    cli.x(&format!("uuid_kill {gone_b}"));
    std::thread::sleep(Duration::from_millis(500));
    let r = cli.x("load mod_zorio_c2c");
    assert!(r.contains("+OK"), "{r}");
    let hangup = delivered(&receiver, &gone, "pbx.call.hangup", Duration::from_secs(10));
    assert_eq!(hangup["data"]["recovered"], true, "{hangup}");
    assert_eq!(
        hangup["data"]["hangup_cause"], "NORMAL_UNSPECIFIED",
        "{hangup}"
    );
    let r = delivered(
        &receiver,
        &ringing,
        "pbx.cdr.created",
        Duration::from_secs(10),
    );
    assert_eq!(r["data"]["hangup_by"], "system", "{r}");
    assert_eq!(cli.status(&lives).unwrap()["status"], "bridged");
    cli.x(&format!("uuid_kill {lives_b}"));
    let cdr = delivered(
        &receiver,
        &lives,
        "pbx.cdr.created",
        Duration::from_secs(10),
    );
    assert_eq!(cdr["data"]["recovered"], false, "{cdr}");
    step(&format!(
        "unload with 2 bridged and 1 ringing call took {took:?}: the library still mapped, the ringing call ended and reported (hangup_by system), the bridged ones kept talking; one that ended while unloaded reported on load (recovered true, NORMAL_UNSPECIFIED); the other adopted, its CDR sent when it ended"
    ));

    // 6. Every call placed: exactly one hangup and one CDR, events in seq order.
    wait_for("every CDR", Duration::from_secs(30), || {
        let m = receiver.types_per_call();
        calls.iter().all(|c| {
            m.get(c)
                .is_some_and(|e| e.iter().any(|t| t == "pbx.cdr.created"))
        })
    });
    let m = receiver.types_per_call();
    for c in &calls {
        let events = &m[c];
        let n = |k: &str| events.iter().filter(|t| *t == k).count();
        assert_eq!(
            (n("pbx.call.hangup"), n("pbx.cdr.created")),
            (1, 1),
            "{c}: {events:?}"
        );
        assert_eq!(
            &events[events.len() - 2..],
            ["pbx.call.hangup", "pbx.cdr.created"],
            "{c}: per-call order {events:?}"
        );
        if n("pbx.call.ringing") > 0 {
            assert_eq!(events[0], "pbx.call.ringing", "{c}: {events:?}");
        }
    }
    step(&format!(
        "all {} calls placed across the reloads got exactly one pbx.call.hangup and one pbx.cdr.created, in order ({} webhooks)",
        calls.len(),
        receiver.delivered().len()
    ));
    let log = fs::read_to_string(dir.join("log/freeswitch.log")).unwrap_or_default();
    assert!(
        log.contains("max-concurrent-calls 100"),
        "capacity follows max-sessions 200: {:?}",
        log.lines().find(|l| l.contains("mod_zorio_c2c loaded"))
    );
    step("the module says max-concurrent-calls 100 (half of max-sessions 200)");
    println!(
        "e2e reload: all steps passed against {version} in {:?}",
        started.elapsed()
    );
    drop(freeswitch);
    drop((agent, late, carrier, carrier503));
    let _ = fs::remove_dir_all(&dir);
}
