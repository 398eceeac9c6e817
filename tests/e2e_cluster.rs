//! End to end: the module inside a real FreeSWITCH with `<cluster>` pointing
//! at a redis-server started here, and a sandbox node as its peer on the same
//! Redis. The switch joins the cluster, places a call whose key and owner land
//! in Redis, the peer finds and hangs up that call on the switch, `reload
//! mod_zorio_c2c` leaves and joins again, and Redis killed and started again
//! is lived through without a restart.
//!
//! Runs when `FREESWITCH_BIN` is set and sipp and redis-server are found;
//! otherwise prints `SKIPPED: <why>`. Build the module against that switch
//! (`PKG_CONFIG_PATH=<prefix>/lib/pkgconfig cargo build --release`).

mod e2e_common;
mod processes;
mod scratch;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e_common::*;
use processes::{free_port, redis_cmd, redis_installed, KillOnDrop, RedisServer};
use serde_json::Value;

const TOKEN: &str = "e2e-token-0123456789";
const NODE_SECRET: &str = "e2e-node-secret-0123456789";

/// `method path` with the token and extra headers; (status, headers text, body).
fn call_api(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    let _ = write!(s, "{head}\r\n{body}");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let (h, b) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = h
        .split(' ')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (status, h.to_string(), b.to_string())
}

fn health(port: u16) -> Value {
    let (_, _, b) = call_api(port, "GET", "/health", &[], "");
    serde_json::from_str(&b).unwrap_or(Value::Null)
}

const BODY: &str = r#"{"from_extension":"1001","to_phone":"0987654321"}"#;

#[test]
fn the_module_in_a_cluster_with_a_sandbox_peer() {
    let env = match find_env() {
        Ok(e) => e,
        Err(why) => return skipped(&why),
    };
    if !redis_installed() {
        return skipped("redis-server is not installed (apt-get install redis-server)");
    }
    let ports = Ports::new();
    let dir = e2e_dir("e2e-cluster");
    describe(&env);
    let redis = RedisServer::start();
    let redis_port = redis.port;
    let url = redis.url();
    let (_agent, _late) = start_agents(&env, &dir, ports, 300);
    let (_carrier, _carrier503) = start_carriers(&env, &dir, ports);
    let cluster = format!(
        r#"<cluster>
        <param name="redis-url" value="{url}"/>
        <param name="node-name" value="fs-e2e"/>
        <param name="node-secret" value="{NODE_SECRET}"/>
        <param name="heartbeat-interval" value="0.5"/>
        <param name="node-ttl" value="3"/>
      </cluster>"#
    );
    let _fs = start_freeswitch_extra(
        &env,
        &dir,
        ports,
        &default_webhooks(&dir.join("spool")),
        &cluster,
    );
    let mut esl = connect_ready(ports, &dir);
    let h = health(ports.http);
    assert_eq!(h["cluster"]["node"], "fs-e2e", "{h}");
    assert_eq!(h["cluster"]["redis"], "up", "{h}");
    step("FreeSWITCH loaded the module with <cluster>: /health shows node fs-e2e, Redis up");

    // A peer: the sandbox on the same Redis, with the same token name.
    let peer_conf = dir.join("peer.conf.xml");
    let peer_port = free_port();
    write(
        &peer_conf,
        &format!(
            r#"<configuration name="zorio_c2c.conf">
  <http><param name="listen" value="127.0.0.1:{peer_port}"/></http>
  <tokens><token name="crm" value="{TOKEN}"/></tokens>
  <trunks><trunk id="5" name="BACKUP" gateway="backup"/></trunks>
  <caller-ids><number value="0900000020" trunk="5"/></caller-ids>
</configuration>"#
        ),
    );
    let mut peer = Command::new(env!("CARGO_BIN_EXE_c2c-sandbox"))
        .arg("--config")
        .arg(&peer_conf)
        .arg("--data-dir")
        .arg(dir.join("peer-data"))
        .args([
            "--quiet",
            "--redis",
            &url,
            "--node-name",
            "peer",
            "--node-secret",
            NODE_SECRET,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("sandbox");
    let mut lines = BufReader::new(peer.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    // Keep reading: a closed pipe would end the sandbox.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    assert!(first.contains("listening"), "{first}");
    let _peer = KillOnDrop(peer);
    wait_for("both nodes up", Duration::from_secs(15), || {
        health(ports.http)["cluster"]["nodes_up"] == 2
            && health(peer_port)["cluster"]["nodes_up"] == 2
    });
    step("a sandbox peer joined: each node sees two nodes up");

    let key = [("Idempotency-Key", "e2e-cluster-1")];
    let (st, _, b) = call_api(
        ports.http,
        "POST",
        "/api/pbx/calls/click-to-call",
        &key,
        BODY,
    );
    assert_eq!(st, 202, "{b}");
    let uuid = serde_json::from_str::<Value>(&b).unwrap()["data"]["call_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        redis_cmd(redis_port, &format!("GET zorio_c2c:call:{uuid}")).as_deref(),
        Some("fs-e2e")
    );
    // The same key on the peer replays the switch's answer: no second call.
    let (st, h, b) = call_api(
        peer_port,
        "POST",
        "/api/pbx/calls/click-to-call",
        &key,
        BODY,
    );
    assert_eq!(st, 202, "{b}");
    assert!(h.contains("Idempotent-Replayed: true"), "{h}");
    assert!(b.contains(&uuid), "{b}");
    step("a call placed on the switch: its owner is in Redis; its key replays on the peer");

    wait_state(&mut esl, &uuid, "bridged", Duration::from_secs(20));
    let (st, h, b) = call_api(peer_port, "GET", &format!("/api/pbx/calls/{uuid}"), &[], "");
    assert_eq!(st, 200, "{b}");
    assert!(h.to_ascii_lowercase().contains("x-c2c-node: fs-e2e"), "{h}");
    assert!(b.contains("\"bridged\""), "{b}");
    let (st, _, b) = call_api(
        peer_port,
        "DELETE",
        &format!("/api/pbx/calls/{uuid}"),
        &[],
        "",
    );
    assert_eq!(st, 202, "{b}");
    wait_state(&mut esl, &uuid, "ended", Duration::from_secs(20));
    step("the peer read the switch's bridged call and hung it up (DELETE forwarded to the owner)");

    // Reloaded the way admins do (a fresh connection per command), ten
    // times: the heartbeat thread and the Redis connections go every time.
    for i in 0..10 {
        let mut cli = Esl::connect(ports.esl, Duration::from_secs(10)).expect("esl");
        let r = cli.api("reload mod_zorio_c2c");
        assert!(r.contains("+OK"), "reload {i}: {r}");
    }
    assert!(esl.api("status").contains("UP"), "FreeSWITCH still up");
    let log = std::fs::read_to_string(dir.join("log/freeswitch.log")).unwrap_or_default();
    assert_eq!(
        log.matches("mod_zorio_c2c loaded").count(),
        11,
        "one load and ten reloads"
    );
    assert!(
        !log.contains("[CRIT]"),
        "a thread did not stop in time; see {}",
        dir.display()
    );
    wait_for(
        "the reloaded node back in the cluster",
        Duration::from_secs(20),
        || {
            let h = health(ports.http);
            h["cluster"]["redis"] == "up" && h["cluster"]["nodes_up"] == 2
        },
    );
    step("reload mod_zorio_c2c x10 through fresh connections (11 loads logged), FreeSWITCH up, the node back in the cluster");

    drop(redis);
    wait_for("Redis seen down", Duration::from_secs(15), || {
        health(ports.http)["cluster"]["redis"] == "down"
    });
    let (st, _, b) = call_api(
        ports.http,
        "POST",
        "/api/pbx/calls/click-to-call",
        &[("Idempotency-Key", "e2e-cluster-2")],
        BODY,
    );
    assert_eq!(st, 503, "{b}");
    let (st, _, b) = call_api(
        ports.http,
        "POST",
        "/api/pbx/calls/click-to-call",
        &[],
        BODY,
    );
    assert_eq!(st, 202, "{b}");
    let during = serde_json::from_str::<Value>(&b).unwrap()["data"]["call_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(&mut esl, &during, "bridged", Duration::from_secs(20));
    let _redis = RedisServer::start_on(redis_port);
    wait_for("Redis seen up again", Duration::from_secs(15), || {
        health(ports.http)["cluster"]["redis"] == "up"
    });
    let (st, _, b) = call_api(
        ports.http,
        "POST",
        "/api/pbx/calls/click-to-call",
        &[("Idempotency-Key", "e2e-cluster-2")],
        BODY,
    );
    assert_eq!(st, 202, "{b}");
    step("Redis killed: keys 503, calls without a key still placed; Redis back: keys work, no restart");
    esl.api("hupall");
}
