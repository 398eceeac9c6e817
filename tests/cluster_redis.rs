//! Three sandbox nodes sharing one real redis-server (started here on a free
//! loopback port): the rate limit, Idempotency-Keys and call lookups hold
//! across nodes; Redis killed and started again mid-run; Redis down when a
//! node starts. Prints `SKIPPED: ...` when redis-server is not installed
//! (.ci/run installs it).

mod common;
mod processes;
mod scratch;

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{request, Resp, Sandbox};
use processes::{free_port, redis_installed, RedisServer};
use serde_json::Value;

const TOKEN: &str = "cluster-token-one";
const OTHER: &str = "cluster-token-two";
const BODY: &str = r#"{"from_extension":"1001","to_phone":"0987654321"}"#;

/// One node: a sandbox joined to `url`, calls that stay up for a minute
/// (its data directory is [`Sandbox::start`]'s).
fn node(url: &str, name: &str) -> Sandbox {
    Sandbox::start(&[
        "--quiet",
        "--redis",
        url,
        "--node-name",
        name,
        "--token",
        TOKEN,
        "--token",
        OTHER,
        "--rate-limit",
        "10",
        "--agent-answer-ms",
        "50",
        "--customer-answer-ms",
        "50",
        "--talk-ms",
        "60000",
    ])
}

fn three(url: &str) -> Vec<Sandbox> {
    let nodes: Vec<Sandbox> = ["n1", "n2", "n3"].iter().map(|n| node(url, n)).collect();
    // Every node sees the three (heartbeats).
    for n in &nodes {
        wait_for(n.addr, "all three nodes up", |h| {
            h["cluster"]["nodes_up"] == 3
        });
    }
    nodes
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn post(addr: SocketAddr, token: &str, extra: &[(&str, &str)]) -> Resp {
    let a = bearer(token);
    let mut h = vec![
        ("Authorization", a.as_str()),
        ("Content-Type", "application/json"),
    ];
    h.extend_from_slice(extra);
    request(
        addr,
        "POST",
        "/api/pbx/calls/click-to-call",
        &h,
        BODY.as_bytes(),
    )
}

fn call(addr: SocketAddr, method: &str, uuid: &str, token: &str) -> Resp {
    let a = bearer(token);
    request(
        addr,
        method,
        &format!("/api/pbx/calls/{uuid}"),
        &[("Authorization", &a)],
        b"",
    )
}

fn health(addr: SocketAddr) -> Value {
    request(addr, "GET", "/health", &[], b"").json()
}

fn metric(addr: SocketAddr, name: &str) -> f64 {
    let a = bearer(TOKEN);
    let page = request(addr, "GET", "/metrics", &[("Authorization", &a)], b"").text();
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{page}"))
}

/// Polls `/health` until `ok` holds (at most 15 s).
fn wait_for(addr: SocketAddr, what: &str, ok: impl Fn(&Value) -> bool) {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let h = health(addr);
        if ok(&h) {
            return;
        }
        assert!(Instant::now() < until, "{addr}: never {what}: {h}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

macro_rules! need_redis {
    () => {
        if !redis_installed() {
            println!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
            return;
        }
    };
}

#[test]
fn ten_calls_a_minute_per_token_across_three_nodes_in_round_robin() {
    need_redis!();
    let redis = RedisServer::start();
    let nodes = three(&redis.url());
    let mut accepted = 0;
    for i in 0..15 {
        let r = post(nodes[i % 3].addr, TOKEN, &[]);
        if i < 10 {
            assert_eq!(r.status, 202, "request {i}: {}", r.text());
            // One bucket for the token, whichever node counts it.
            assert_eq!(
                r.header("RateLimit-Remaining"),
                Some((9 - i).to_string().as_str())
            );
            accepted += 1;
        } else {
            assert_eq!(r.status, 429, "request {i}: {}", r.text());
            assert_eq!(r.error_code(), "rate_limited");
            // GCRA: the 11th may go 6 s after the first; well within 1 s of it.
            let retry: u64 = r.header("Retry-After").unwrap().parse().unwrap();
            assert!((5..=6).contains(&retry), "Retry-After {retry}");
            assert_eq!(r.header("RateLimit-Remaining"), Some("0"));
        }
    }
    assert_eq!(accepted, 10);
    // Another token has its own bucket on every node.
    assert_eq!(post(nodes[1].addr, OTHER, &[]).status, 202);
    let total: f64 = nodes
        .iter()
        .map(|n| metric(n.addr, "c2c_calls_accepted_total"))
        .sum();
    assert_eq!(total, 11.0);
    for n in &nodes {
        assert_eq!(metric(n.addr, "c2c_cluster_ratelimit_local_total"), 0.0);
        assert_eq!(metric(n.addr, "c2c_cluster_redis_up"), 1.0);
        assert_eq!(metric(n.addr, "c2c_cluster_nodes_up"), 3.0);
    }
}

#[test]
fn one_idempotency_key_sent_to_three_nodes_at_once_places_one_call() {
    need_redis!();
    let redis = RedisServer::start();
    let nodes = three(&redis.url());
    for round in 0..5 {
        let key = format!("race-{round}-{}", uuid::Uuid::new_v4());
        let barrier = Arc::new(Barrier::new(3));
        let answers: Vec<Resp> = nodes
            .iter()
            .map(|n| {
                let (addr, key, barrier) = (n.addr, key.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    post(addr, TOKEN, &[("Idempotency-Key", &key)])
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let uuids: Vec<String> = answers
            .iter()
            .map(|r| {
                assert_eq!(r.status, 202, "{}", r.text());
                r.json()["data"]["call_uuid"].as_str().unwrap().to_string()
            })
            .collect();
        assert!(uuids.iter().all(|u| u == &uuids[0]), "{uuids:?}");
        let first = answers
            .iter()
            .filter(|r| r.header("Idempotent-Replayed").is_none())
            .count();
        assert_eq!(first, 1, "exactly one node placed the call");
        // The same key with another body is a conflict on any node.
        let a = bearer(TOKEN);
        let r = request(
            nodes[(round + 1) % 3].addr,
            "POST",
            "/api/pbx/calls/click-to-call",
            &[
                ("Authorization", &a),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", &key),
            ],
            br#"{"from_extension":"1002","to_phone":"0987654321"}"#,
        );
        assert_eq!(r.status, 409, "{}", r.text());
    }
    let total: f64 = nodes
        .iter()
        .map(|n| metric(n.addr, "c2c_calls_accepted_total"))
        .sum();
    assert_eq!(total, 5.0, "five keys, five calls in all");
}

#[test]
fn get_and_delete_on_a_node_that_does_not_own_the_call() {
    need_redis!();
    let redis = RedisServer::start();
    let nodes = three(&redis.url());
    let r = post(nodes[0].addr, TOKEN, &[]);
    assert_eq!(r.status, 202, "{}", r.text());
    let uuid = r.json()["data"]["call_uuid"].as_str().unwrap().to_string();

    let r = call(nodes[1].addr, "GET", &uuid, TOKEN);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["call_uuid"], uuid.as_str());
    assert_eq!(r.header("x-c2c-node"), Some("n1"));
    // Another CRM's token does not see it from any node either.
    assert_eq!(call(nodes[1].addr, "GET", &uuid, OTHER).status, 404);
    // Without a token: 401, not forwarded.
    let r = request(
        nodes[2].addr,
        "GET",
        &format!("/api/pbx/calls/{uuid}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 401);
    // A forged node credential is not one.
    let r = request(
        nodes[2].addr,
        "GET",
        &format!("/api/pbx/calls/{uuid}"),
        &[
            ("x-c2c-node-secret", "not-the-node-secret"),
            ("x-c2c-on-behalf-of", "sandbox"),
        ],
        b"",
    );
    assert_eq!(r.status, 401);
    // A call no node owns.
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(call(nodes[2].addr, "GET", &unknown, TOKEN).status, 404);

    // Hung up from the third node: the owner ends it.
    let r = call(nodes[2].addr, "DELETE", &uuid, TOKEN);
    assert_eq!(r.status, 202, "{}", r.text());
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let r = call(nodes[0].addr, "GET", &uuid, TOKEN);
        assert_eq!(r.status, 200);
        if r.json()["data"]["status"] == "ended" {
            break;
        }
        assert!(Instant::now() < until, "never ended: {}", r.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    // And the ended call is still found from another node (the owner's journal).
    let r = call(nodes[1].addr, "GET", &uuid, TOKEN);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["status"], "ended");
    assert!(metric(nodes[1].addr, "c2c_cluster_forwarded_total") >= 2.0);
}

#[test]
fn redis_killed_mid_run_then_started_again() {
    need_redis!();
    let mut redis = RedisServer::start();
    let port = redis.port;
    let nodes = three(&redis.url());
    let r = post(nodes[0].addr, TOKEN, &[]);
    assert_eq!(r.status, 202);
    let before = r.json()["data"]["call_uuid"].as_str().unwrap().to_string();

    redis.kill();
    for n in &nodes {
        wait_for(n.addr, "Redis down", |h| h["cluster"]["redis"] == "down");
    }
    // The rate limit falls back to the node's own limiter, counted.
    let r = post(nodes[0].addr, TOKEN, &[]);
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(metric(nodes[0].addr, "c2c_cluster_ratelimit_local_total") >= 1.0);
    assert_eq!(metric(nodes[0].addr, "c2c_cluster_redis_up"), 0.0);
    // A key cannot be checked: 503, nobody dialled.
    let r = post(nodes[1].addr, TOKEN, &[("Idempotency-Key", "while-down")]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.error_code(), "store_unavailable");
    assert!(r.header("Retry-After").is_some());
    assert_eq!(
        metric(nodes[1].addr, "c2c_cluster_idempotency_unavailable_total"),
        1.0
    );
    // Lookups answer for the node's own calls.
    assert_eq!(call(nodes[0].addr, "GET", &before, TOKEN).status, 200);
    assert_eq!(call(nodes[1].addr, "GET", &before, TOKEN).status, 404);

    // Redis back on the same address: every node recovers, no restart.
    let redis = RedisServer::start_on(port);
    for n in &nodes {
        wait_for(n.addr, "Redis up with three nodes", |h| {
            h["cluster"]["redis"] == "up" && h["cluster"]["nodes_up"] == 3
        });
    }
    let r = post(nodes[1].addr, TOKEN, &[("Idempotency-Key", "after")]);
    assert_eq!(r.status, 202, "{}", r.text());
    let after = r.json()["data"]["call_uuid"].as_str().unwrap().to_string();
    let r = post(nodes[2].addr, TOKEN, &[("Idempotency-Key", "after")]);
    assert_eq!(r.status, 202);
    assert_eq!(r.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(r.json()["data"]["call_uuid"], after.as_str());
    assert_eq!(call(nodes[0].addr, "GET", &after, TOKEN).status, 200);
    drop(redis);
}

#[test]
fn redis_down_at_start_the_node_serves_alone_and_joins_when_it_answers() {
    need_redis!();
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let n = node(&url, "late");
    let said = (0..20)
        .filter_map(|_| n.lines.recv_timeout(Duration::from_secs(5)).ok())
        .find(|l| l.starts_with("cluster node"))
        .expect("the sandbox says how it joined");
    assert_eq!(said, "cluster node late (Redis DOWN)");
    let h = health(n.addr);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["cluster"]["redis"], "down");
    assert_eq!(post(n.addr, TOKEN, &[]).status, 202);
    assert_eq!(post(n.addr, TOKEN, &[("Idempotency-Key", "k")]).status, 503);

    let _redis = RedisServer::start_on(port);
    wait_for(n.addr, "Redis up", |h| h["cluster"]["redis"] == "up");
    assert_eq!(post(n.addr, TOKEN, &[("Idempotency-Key", "k")]).status, 202);
}

#[test]
fn without_redis_flags_there_is_no_cluster() {
    let n = Sandbox::start(&["--quiet"]);
    let h = health(n.addr);
    assert_eq!(h["status"], "ok");
    assert!(h.get("cluster").is_none(), "{h}");
    let page = request(
        n.addr,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer sandbox-token")],
        b"",
    )
    .text();
    assert!(!page.contains("c2c_cluster_"));
}

/// What fs_cli's `c2c` needs of its host here: the module's admission.
struct FsCli(Arc<dyn mod_zorio_c2c::core::admission::Admission>);

impl mod_zorio_c2c::core::command::CommandHost for FsCli {
    fn load_config(
        &self,
    ) -> Result<mod_zorio_c2c::core::config::Config, mod_zorio_c2c::core::config::ConfigError> {
        unreachable!("not reloaded here")
    }

    fn admission(&self) -> Option<Arc<dyn mod_zorio_c2c::core::admission::Admission>> {
        Some(Arc::clone(&self.0))
    }
}

#[test]
fn a_call_placed_from_fs_cli_is_found_from_any_node() {
    use mod_zorio_c2c::app::App;
    use mod_zorio_c2c::core::config::{ClusterSettings, Config};
    use mod_zorio_c2c::sim::{SimOptions, SimSwitch};
    use mod_zorio_c2c::switch::leg_channel;
    need_redis!();
    let redis = RedisServer::start();
    let peer = node(&redis.url(), "peer");
    // The switch: an App as the module runs it, on the simulated switch.
    let mut config = Config::from_xml(include_str!("../conf/autoload_configs/zorio_c2c.conf.xml"))
        .expect("sample config");
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    let data = scratch::Scratch::new("c2c-cluster-switch");
    config.webhooks.spool_dir = data.path().to_path_buf();
    config.cluster = Some(ClusterSettings::new(
        &redis.url(),
        "switch",
        "sandbox-node-secret",
    ));
    let (tx, rx) = leg_channel();
    let options = SimOptions::demo_fast(Duration::from_millis(20), Duration::from_millis(20));
    let sim = SimSwitch::new(options, tx);
    let app = App::start(config, sim.clone(), rx, vec![]).expect("app");
    wait_for(peer.addr, "the switch seen up", |h| {
        h["cluster"]["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["name"] == "switch" && n["up"] == true))
    });

    let host = FsCli(app.http_state.admission());
    let out = mod_zorio_c2c::core::command::execute(&app.engine, &host, "1001 0987654321");
    assert!(out.starts_with("+OK "), "{out}");
    let uuid = out[4..].split_whitespace().next().unwrap().to_string();
    // The peer finds it through the owner record fs_cli's admission wrote.
    let r = call(peer.addr, "GET", &uuid, TOKEN);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["call_uuid"], uuid.as_str());
    assert_eq!(r.header("x-c2c-node"), Some("switch"));
    app.stop(Duration::from_secs(5));
    sim.stop();
}

/// Two nodes' trunk ledgers on one Redis.
fn ledgers(
    url: &str,
    node_ttl: Duration,
) -> Vec<(
    Arc<mod_zorio_c2c::core::cluster::Cluster>,
    mod_zorio_c2c::core::trunks::redis::RedisLedger,
)> {
    use mod_zorio_c2c::core::cluster::Cluster;
    use mod_zorio_c2c::core::config::ClusterSettings;
    use mod_zorio_c2c::core::gcra::MonotonicClock;
    ["a", "b"]
        .iter()
        .map(|name| {
            let mut settings = ClusterSettings::new(url, name, "node-secret-0123456789");
            settings.node_ttl = node_ttl;
            let log = mod_zorio_c2c::core::log::stderr_log();
            let cluster = Cluster::start(&settings, format!("http://127.0.0.1:1/{name}"), log)
                .expect("joins");
            let ledger = mod_zorio_c2c::core::trunks::redis::RedisLedger::new(
                &cluster,
                Arc::new(MonotonicClock::default()),
            );
            (cluster, ledger)
        })
        .collect()
}

#[test]
fn trunk_limits_hold_across_two_nodes() {
    use mod_zorio_c2c::core::trunks::Ledger;
    if !redis_installed() {
        println!("SKIPPED: redis-server is not installed");
        return;
    }
    let redis = RedisServer::start();
    let nodes = ledgers(&redis.url(), Duration::from_secs(1));
    let (a, b) = (&nodes[0].1, &nodes[1].1);

    // CPS 10 shared: four threads on two nodes take 24 slots; the slots
    // Redis hands out are 100 ms apart whichever node took them.
    let interval = Duration::from_millis(100);
    let granted = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for ledger in [a, b, a, b] {
            let granted = &granted;
            s.spawn(move || {
                for _ in 0..6 {
                    let wait = ledger
                        .take_slot("poc", interval, Duration::from_secs(10))
                        .expect("a slot within 10 s");
                    // The slot as Redis handed it out (on this clock).
                    granted.lock().unwrap().push(Instant::now() + wait);
                    std::thread::sleep(wait);
                }
            });
        }
    });
    let mut at = granted.into_inner().unwrap();
    at.sort();
    assert_eq!(at.len(), 24);
    for w in at.windows(11) {
        assert!(
            w[10] - w[0] >= Duration::from_millis(990),
            "11 slots in {:?}",
            w[10] - w[0]
        );
    }
    // A slot beyond the caller's wait is not taken.
    assert!(a
        .take_slot("slow", Duration::from_secs(5), Duration::ZERO)
        .is_ok());
    let need = b
        .take_slot("slow", Duration::from_secs(5), Duration::from_secs(1))
        .expect_err("next slot is 5 s away");
    assert!(need > Duration::from_secs(4), "{need:?}");

    // Channels: max 3 across both nodes, racing.
    let mine: Vec<u32> = std::thread::scope(|s| {
        let racers: Vec<_> = [a, b]
            .into_iter()
            .map(|ledger| {
                s.spawn(move || {
                    let mut mine = 0;
                    for _ in 0..5 {
                        if ledger.claim_channel("backup", 3, mine) {
                            mine += 1;
                        }
                    }
                    mine
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(
        mine[0] + mine[1],
        3,
        "exactly max-channels claims across nodes: {mine:?}"
    );
    // What a node shows is as of its last word with Redis (a heartbeat's).
    a.publish("backup", mine[0]);
    assert_eq!(a.in_use("backup", mine[0]), 3);
    // Node a's calls end: once it says so, b may take their channels.
    a.publish("backup", 0);
    b.publish("backup", mine[1]);
    assert_eq!(b.in_use("backup", mine[1]), mine[1]);
    let mut b_mine = mine[1];
    while b_mine < 3 {
        assert!(
            b.claim_channel("backup", 3, b_mine),
            "b takes a freed channel"
        );
        b_mine += 1;
    }
    assert!(!b.claim_channel("backup", 3, b_mine), "full again");
    assert!(!a.claim_channel("backup", 3, 0), "full for a too");
    // A node that stops beating drops out after node-ttl.
    nodes[1].0.stop(Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(1200));
    assert!(a.claim_channel("backup", 3, 0), "b's channels aged out");
    nodes[0].0.stop(Duration::from_secs(2));
}
