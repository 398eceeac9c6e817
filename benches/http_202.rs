//! The 202 path over loopback: keep-alive clients POSTing click-to-call to a
//! real App over the simulated switch (rate limit off). Prints p50/p90/p99
//! latency and requests per second.
//!
//! `cargo bench --bench http_202` (env: C2C_BENCH_CLIENTS, C2C_BENCH_REQUESTS,
//! C2C_BENCH_RATE, C2C_BENCH_STORE_SYNC=full|normal|off,
//! C2C_BENCH_TRUNK_LIMITS=on|cps|channels). `C2C_BENCH_RATE` offers that
//! many requests a second (open loop) instead of back to back. `off`
//! is the same API with no durable store at all (the engine's journal in
//! memory, nothing committed before the 202): the price of durability,
//! measured in one binary. `C2C_BENCH_TRUNK_LIMITS` gives every trunk a
//! `cps` of 10000 (`cps`), a `max-channels` of 1,000,000 (`channels`) or
//! both (`on`): each call pays the limits' bookkeeping (its CPS slot, the
//! switch's channel count).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mod_zorio_c2c::app::App;
use mod_zorio_c2c::core::config::{Config, StoreSync};
use mod_zorio_c2c::core::engine::Engine;
use mod_zorio_c2c::core::events::FanOut;
use mod_zorio_c2c::core::http::server::HttpServer;
use mod_zorio_c2c::core::http::state::HttpState;
use mod_zorio_c2c::sim::{SimOptions, SimSwitch};
use mod_zorio_c2c::switch::leg_channel;

const SAMPLE: &str = include_str!("../conf/autoload_configs/zorio_c2c.conf.xml");
const BODY: &str = r#"{"from_extension":"1001","to_phone":"0987654321"}"#;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One keep-alive client: sends `n` requests, returns each latency; with
/// `every`, one request per `every` (open loop), else back to back.
fn client(addr: SocketAddr, n: usize, token: &str, every: Option<Duration>) -> Vec<Duration> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    let request = format!(
        "POST /api/pbx/calls/click-to-call HTTP/1.1\r\nHost: bench\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut out = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        if let Some(every) = every {
            let due = start + every * i as u32;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let t0 = Instant::now();
        s.write_all(request.as_bytes()).expect("send");
        buf.clear();
        let total = loop {
            let k = s.read(&mut chunk).expect("read");
            assert!(k > 0, "server closed");
            buf.extend_from_slice(&chunk[..k]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                assert!(head.starts_with("HTTP/1.1 202"), "{head}");
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("content-length");
                break end + 4 + len;
            }
        };
        while buf.len() < total {
            let k = s.read(&mut chunk).expect("read");
            assert!(k > 0, "server closed");
            buf.extend_from_slice(&chunk[..k]);
        }
        out.push(t0.elapsed());
    }
    out
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// What serves the API: the module's App (durable store), or the engine and
/// HTTP server alone (journal in memory).
enum Served {
    App(App),
    Bare(Arc<Engine>, HttpServer),
}

impl Served {
    fn addr(&self) -> SocketAddr {
        match self {
            Served::App(app) => app.http_addr().expect("listening"),
            Served::Bare(_, http) => http.local_addr(),
        }
    }

    fn stop(self) {
        match self {
            Served::App(app) => {
                app.stop(Duration::from_secs(10));
            }
            Served::Bare(engine, http) => {
                http.stop(Duration::from_secs(10));
                engine.shutdown(Duration::from_secs(10));
            }
        }
    }
}

fn main() {
    let clients = env("C2C_BENCH_CLIENTS", 4);
    let requests = env("C2C_BENCH_REQUESTS", 20_000);
    let mut config = Config::from_xml(SAMPLE).expect("sample config");
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.http.rate_limit_per_minute = None;
    config.max_concurrent_calls = Some(1_000_000);
    let spool = std::env::temp_dir().join(format!("c2c-bench-spool-{}", std::process::id()));
    config.webhooks.spool_dir = spool.clone();
    let sync_env = std::env::var("C2C_BENCH_STORE_SYNC").unwrap_or_default();
    let durable = sync_env != "off";
    config.webhooks.store_sync = match sync_env.as_str() {
        "" | "off" => StoreSync::default(),
        v => StoreSync::parse(v).expect("C2C_BENCH_STORE_SYNC: full, normal or off"),
    };
    let mode = if durable {
        format!("store-sync {:?}", config.webhooks.store_sync)
    } else {
        "no durable store".to_string()
    };
    let limits = std::env::var("C2C_BENCH_TRUNK_LIMITS").unwrap_or_else(|_| "off".into());
    for t in config.trunks.iter_mut() {
        if matches!(limits.as_str(), "on" | "cps") {
            t.cps = Some(10_000.0);
        }
        if matches!(limits.as_str(), "on" | "channels") {
            t.max_channels = Some(1_000_000);
        }
    }
    let mode = format!("{mode}, trunk limits {limits}");
    let token = config.tokens[0].secret.clone();
    // Calls end within milliseconds so the engine does not pile up threads.
    let o = SimOptions::demo_fast(Duration::from_millis(1), Duration::from_millis(1));
    let (tx, rx) = leg_channel();
    let sim = SimSwitch::new(o, tx);
    let served = if durable {
        Served::App(App::start(config, sim.clone(), rx, vec![]).expect("app"))
    } else {
        let settings = config.http.clone();
        let engine = Engine::new(config, sim.clone(), rx, Arc::new(FanOut(Vec::new())));
        let http = HttpServer::start(HttpState::new(Arc::clone(&engine)), &settings).expect("http");
        Served::Bare(engine, http)
    };
    let addr = served.addr();
    let token = Arc::new(token);

    // Warm-up.
    client(addr, 200, &token, None);

    let per = requests / clients;
    // C2C_BENCH_RATE: requests a second in all (open loop); 0: back to back.
    let rate = env("C2C_BENCH_RATE", 0);
    let every = (rate > 0).then(|| Duration::from_secs_f64(clients as f64 / rate as f64));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let token = Arc::clone(&token);
            std::thread::spawn(move || client(addr, per, &token, every))
        })
        .collect();
    let mut all: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("client"))
        .collect();
    let elapsed = t0.elapsed();
    all.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "http_202 ({mode}): {} requests, {clients} keep-alive clients, \
         {:.2?}: {:.0} req/s; \
         latency p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        all.len(),
        elapsed,
        all.len() as f64 / elapsed.as_secs_f64(),
        us(pct(&all, 0.50)),
        us(pct(&all, 0.90)),
        us(pct(&all, 0.99)),
        us(*all.last().unwrap()),
    );
    served.stop();
    sim.stop();
    let _ = std::fs::remove_dir_all(&spool);
}
