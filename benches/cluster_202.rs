//! What Redis adds to the 202 path, over loopback: the same App (simulated
//! switch, rate limit on) answering click-to-call without a cluster, then as
//! a cluster node on a redis-server started here (global GCRA script + the
//! call's owner record), then with a fresh `Idempotency-Key` on every request
//! (plus the key's claim and answer). Prints p50/p99 of each and the
//! difference at p50. Needs `redis-server` on PATH.
//!
//! `cargo bench --bench cluster_202` (env: C2C_BENCH_REQUESTS, default 5000).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mod_zorio_c2c::app::App;
use mod_zorio_c2c::core::config::{ClusterSettings, Config};
use mod_zorio_c2c::sim::{SimOptions, SimSwitch};
use mod_zorio_c2c::switch::leg_channel;

const SAMPLE: &str = include_str!("../conf/autoload_configs/zorio_c2c.conf.xml");
const BODY: &str = r#"{"from_extension":"1001","to_phone":"0987654321"}"#;

/// One keep-alive client.
struct Client {
    s: TcpStream,
    token: String,
    keyed: bool,
    n: usize,
    buf: Vec<u8>,
}

impl Client {
    fn new(addr: SocketAddr, token: &str, keyed: bool) -> Client {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).unwrap();
        Client {
            s,
            token: token.to_string(),
            keyed,
            n: 0,
            buf: Vec::with_capacity(4096),
        }
    }

    /// One request; its latency.
    fn one(&mut self) -> Duration {
        self.n += 1;
        let key = if self.keyed {
            format!(
                "Idempotency-Key: bench-{}-{}\r\n",
                std::process::id(),
                self.n
            )
        } else {
            String::new()
        };
        let request = format!(
            "POST /api/pbx/calls/click-to-call HTTP/1.1\r\nHost: bench\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\n{key}\
             Content-Length: {}\r\n\r\n{BODY}",
            self.token,
            BODY.len()
        );
        let mut chunk = [0u8; 4096];
        let t0 = Instant::now();
        self.s.write_all(request.as_bytes()).expect("send");
        self.buf.clear();
        let total = loop {
            let k = self.s.read(&mut chunk).expect("read");
            assert!(k > 0, "server closed");
            self.buf.extend_from_slice(&chunk[..k]);
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                assert!(head.starts_with("HTTP/1.1 202"), "{head}");
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("content-length");
                break end + 4 + len;
            }
        };
        while self.buf.len() < total {
            let k = self.s.read(&mut chunk).expect("read");
            assert!(k > 0, "server closed");
            self.buf.extend_from_slice(&chunk[..k]);
        }
        t0.elapsed()
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// An App on the simulated switch, rate limit on (never refusing: its
/// cost is measured, not its verdict), as a cluster node with `cluster`.
fn app(cluster: Option<ClusterSettings>) -> (App, std::sync::Arc<SimSwitch>, String) {
    let mut config = Config::from_xml(SAMPLE).expect("sample config");
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.http.rate_limit_per_minute = Some(100_000_000);
    config.max_concurrent_calls = Some(1_000_000);
    // The store on tmpfs when there is one: its fsync (milliseconds, and
    // noisy on a shared disk) would drown what is measured here.
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    config.webhooks.spool_dir = base.join(format!(
        "c2c-bench-cluster-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    config.cluster = cluster;
    let token = config.tokens[0].secret.clone();
    let o = SimOptions::demo_fast(Duration::from_millis(1), Duration::from_millis(1));
    let (tx, rx) = leg_channel();
    let sim = SimSwitch::new(o, tx);
    let app = App::start(config, sim.clone(), rx, vec![]).expect("app");
    (app, sim, token)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// p50 and p99 of `v`, printed under `label`.
fn report(label: &str, v: &mut [Duration]) -> (Duration, Duration) {
    v.sort();
    let (p50, p99) = (pct(v, 0.50), pct(v, 0.99));
    println!(
        "cluster_202 {label}: {} requests: p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs",
        v.len(),
        us(p50),
        us(pct(v, 0.90)),
        us(p99),
    );
    (p50, p99)
}

/// The Redis work of one 202 alone, through the cluster's own API: the
/// admission script (GCRA + owner record), and with a key also its claim
/// in the same script, then its answer stored.
fn redis_alone(settings: &ClusterSettings, requests: usize) {
    use mod_zorio_c2c::core::admission::redis::RedisAdmission;
    use mod_zorio_c2c::core::admission::{Admission, Answer, Ask, Verdict};
    use mod_zorio_c2c::core::cluster::Cluster;
    use mod_zorio_c2c::core::gcra::MonotonicClock;
    let log: mod_zorio_c2c::core::webhooks::LogHook = std::sync::Arc::new(|_, _, _| {});
    let c = Cluster::start(settings, "http://127.0.0.1:9".into(), log).expect("cluster");
    let admission = RedisAdmission::new(&c, std::sync::Arc::new(MonotonicClock::default()));
    let ok = Answer {
        status: 202,
        headers: Vec::new(),
        body: br#"{"data":{"call_uuid":"x"}}"#.to_vec(),
    };
    let (mut plain, mut keyed) = (Vec::new(), Vec::new());
    for i in 0..requests + 300 {
        for (with_key, out) in [(false, &mut plain), (true, &mut keyed)] {
            let key = format!("alone-{i}");
            let call_uuid = uuid::Uuid::new_v4();
            let t0 = Instant::now();
            let verdict = admission.admit(&Ask {
                token: "bench",
                key: with_key.then_some(key.as_str()),
                body: BODY.as_bytes(),
                ttl: Duration::from_secs(3600),
                limit: Some(100_000_000),
                call_uuid,
            });
            let Verdict::Proceed(admitted) = verdict else {
                panic!("admitted")
            };
            admitted.finish(&ok);
            if i >= 300 {
                out.push(t0.elapsed());
            }
        }
    }
    assert!(c.redis_up(), "Redis answered throughout");
    report(
        "Redis work of a 202, alone (admission script: GCRA + owner record)",
        &mut plain,
    );
    report(
        "Redis work of a 202 with a key, alone (admission + key answer)",
        &mut keyed,
    );
    c.stop(Duration::from_secs(2));
}

fn main() {
    let requests = std::env::var("C2C_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = match Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            println!("SKIPPED: cluster_202 needs redis-server ({e})");
            return;
        }
    };
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let settings = ClusterSettings::new(
        &format!("redis://127.0.0.1:{port}"),
        "bench",
        "bench-node-secret-0123",
    );
    redis_alone(&settings, requests);
    // End to end, interleaved (one request to each App in turn), so that
    // the machine's drift weighs on the three alike.
    // One App per client, so that each store and engine carries the same load.
    let (a, sa, token) = app(None);
    let (b, sb, _) = app(Some(settings.clone()));
    let (c, sc, _) = app(Some(settings.clone()));
    let mut clients = [
        Client::new(a.http_addr().unwrap(), &token, false),
        Client::new(b.http_addr().unwrap(), &token, false),
        Client::new(c.http_addr().unwrap(), &token, true),
    ];
    let mut lat: [Vec<Duration>; 3] = Default::default();
    for i in 0..requests + 300 {
        for (k, c) in clients.iter_mut().enumerate() {
            let d = c.one();
            if i >= 300 {
                lat[k].push(d);
            }
        }
    }
    let (l50, l99) = report("202 end to end, no cluster (local limiter)", &mut lat[0]);
    let (r50, r99) = report(
        "202 end to end, cluster (Redis GCRA + owner record)",
        &mut lat[1],
    );
    let (k50, k99) = report("202 end to end, cluster + Idempotency-Key", &mut lat[2]);
    let diff = |x: Duration, y: Duration| us(x) - us(y);
    println!(
        "cluster_202 end to end, Redis adds: p50 {:+.0} µs, p99 {:+.0} µs; with a key p50 {:+.0} µs, \
         p99 {:+.0} µs (target: <= 300 µs at p50)",
        diff(r50, l50),
        diff(r99, l99),
        diff(k50, l50),
        diff(k99, l99),
    );
    for (app, sim) in [(a, sa), (b, sb), (c, sc)] {
        app.stop(Duration::from_secs(10));
        sim.stop();
        let _ = std::fs::remove_dir_all(&app.engine.config().webhooks.spool_dir);
    }
    let _ = redis.kill();
    let _ = redis.wait();
}
