//! Hostile connections against a real sandbox process: 10,000 bad clients
//! (half idle, half trickling a request head one byte a second, reconnecting
//! whenever the server closes them) spread over many loopback source
//! addresses (127.0.1.1, 127.0.1.2, …: all of 127.0.0.0/8 is loopback on
//! Linux), while a normal client on 127.0.0.1 makes requests, each on a
//! fresh connection (every other POST of it half-closes once sent). Prints
//! the normal client's p50 / p99 / max and how many of its requests failed,
//! first with no bad clients, then among them.
//!
//! ```sh
//! cargo build --release && cargo bench --bench http_hostile
//! ```
//!
//! Env: `C2C_SANDBOX` (the sandbox binary; default: this build's),
//! `C2C_SANDBOX_ARGS` (extra flags, split on spaces), `C2C_BENCH_BAD`
//! (default 10000), `C2C_BENCH_PER_ADDR` (bad connections per source address,
//! default 100), `C2C_BENCH_REQUESTS` (normal requests per phase, default
//! 1000). The sandbox needs `ulimit -n` above the bad connections (this
//! bench raises its own soft limit to the hard one).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const TOKEN: &str = "sandbox-token";
const BODY: &str = r#"{"from_extension":"1001","to_phone":"0987654321"}"#;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}

struct Sandbox {
    child: Child,
    addr: SocketAddr,
    /// Its data directory (in the temp dir), removed once it is stopped.
    data: std::path::PathBuf,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn start_sandbox() -> Sandbox {
    let bin = std::env::var("C2C_SANDBOX")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_c2c-sandbox").to_string());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let data = std::env::temp_dir().join(format!("c2c-bench-hostile-{}", std::process::id()));
    let mut cmd = Command::new(&bin);
    cmd.arg("--data-dir").arg(&data);
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--quiet",
        "--rate-limit",
        "0",
        "--agent-answer-ms",
        "5",
        "--customer-answer-ms",
        "5",
        "--talk-ms",
        "5",
    ]);
    if let Ok(extra) = std::env::var("C2C_SANDBOX_ARGS") {
        cmd.args(extra.split_whitespace());
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let first = lines.next().expect("sandbox output").unwrap();
    assert!(first.contains("listening"), "{first}");
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    eprintln!("sandbox {bin} (pid {})", child.id());
    Sandbox {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        data,
    }
}

/// The i-th bad client's source address: 127.0.1.1, …, 100 clients each.
fn source(i: usize, per_addr: usize) -> IpAddr {
    let n = (i / per_addr) as u32 + 256 + 1;
    IpAddr::V4(Ipv4Addr::from(0x7f00_0000u32 + n))
}

/// Keeps `count` bad connections open until `stop`.
fn bad_clients(
    port: u16,
    count: usize,
    per_addr: usize,
    stop: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
    reconnects: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut tasks = Vec::new();
            for i in 0..count {
                let (stop, open, reconnects) = (stop.clone(), open.clone(), reconnects.clone());
                let src = SocketAddr::new(source(i, per_addr), 0);
                let dst = SocketAddr::from(([127, 0, 0, 1], port));
                tasks.push(tokio::spawn(async move {
                    let trickle = i % 2 == 1;
                    let mut first = true;
                    while !stop.load(Ordering::Relaxed) {
                        if !first {
                            reconnects.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        first = false;
                        let Ok(sock) = TcpSocket::new_v4() else {
                            continue;
                        };
                        if sock.bind(src).is_err() {
                            continue;
                        }
                        let Ok(mut s) = sock.connect(dst).await else {
                            continue;
                        };
                        open.fetch_add(1, Ordering::Relaxed);
                        if trickle {
                            let _ = s
                                .write_all(
                                    b"POST /api/pbx/calls/click-to-call HTTP/1.1\r\nHost: x\r\n",
                                )
                                .await;
                            while !stop.load(Ordering::Relaxed) {
                                tokio::time::sleep(Duration::from_millis(1000)).await;
                                if s.write_all(b"X").await.is_err() {
                                    break;
                                }
                                // Closed (a 408, a 503)? Then reconnect.
                                let mut b = [0u8; 512];
                                match tokio::time::timeout(Duration::from_millis(1), s.read(&mut b))
                                    .await
                                {
                                    Ok(Ok(0)) | Ok(Err(_)) | Ok(Ok(_)) => break,
                                    Err(_) => {}
                                }
                            }
                        } else {
                            // Idle: wait until the server closes it.
                            let mut b = [0u8; 512];
                            loop {
                                tokio::select! {
                                    r = s.read(&mut b) => match r {
                                        Ok(0) | Err(_) => break,
                                        Ok(_) => {}
                                    },
                                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                                        if stop.load(Ordering::Relaxed) { break; }
                                    }
                                }
                            }
                        }
                        open.fetch_sub(1, Ordering::Relaxed);
                    }
                }));
                if i % 500 == 499 {
                    tokio::task::yield_now().await;
                }
            }
            for t in tasks {
                let _ = t.await;
            }
        });
    })
}

/// One normal request on a fresh connection; its latency, or why it failed.
fn normal_request(addr: SocketAddr, n: usize) -> Result<Duration, String> {
    let req = match n % 10 {
        0 => format!(
            "POST /api/pbx/calls/click-to-call HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
            BODY.len()
        ),
        n if n % 2 == 0 => format!(
            "GET /api/pbx/caller-ids HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        ),
        _ => "GET /health HTTP/1.1\r\nHost: b\r\n\r\n".to_string(),
    };
    let t0 = Instant::now();
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    // Every other POST half-closes once sent (`printf … | nc`): answered too.
    if n % 20 == 10 {
        s.shutdown(std::net::Shutdown::Write)
            .map_err(|e| e.to_string())?;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let k = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if k == 0 {
            return Err("closed".into());
        }
        buf.extend_from_slice(&chunk[..k]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status: u16 = head[9..12].parse().unwrap_or(0);
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let k = s.read(&mut chunk).map_err(|e| e.to_string())?;
                if k == 0 {
                    return Err("closed".into());
                }
                buf.extend_from_slice(&chunk[..k]);
            }
            let elapsed = t0.elapsed();
            return if (200..300).contains(&status) {
                Ok(elapsed)
            } else {
                Err(format!("status {status}"))
            };
        }
    }
}

fn phase(name: &str, addr: SocketAddr, requests: usize) {
    let mut lat = Vec::with_capacity(requests);
    let mut failures: Vec<String> = Vec::new();
    let started = Instant::now();
    for n in 0..requests {
        match normal_request(addr, n) {
            Ok(d) => lat.push(d),
            Err(e) => failures.push(e),
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    failures.sort();
    failures.dedup_by(|a, b| a == b);
    println!(
        "{name}: {} ok, {} failed{} in {:.1} s; p50 {:?}, p99 {:?}, max {:?}",
        lat.len(),
        requests - lat.len(),
        if failures.is_empty() {
            String::new()
        } else {
            format!(" ({})", failures.join(", "))
        },
        started.elapsed().as_secs_f64(),
        pct(0.50),
        pct(0.99),
        lat.last().copied().unwrap_or_default(),
    );
}

fn main() {
    let nofile = raise_nofile();
    let bad = env("C2C_BENCH_BAD", 10_000);
    let per_addr = env("C2C_BENCH_PER_ADDR", 100);
    let requests = env("C2C_BENCH_REQUESTS", 1000);
    println!("RLIMIT_NOFILE {nofile}; {bad} bad connections, {per_addr} per source address");
    let sandbox = start_sandbox();
    let addr = sandbox.addr;
    std::thread::sleep(Duration::from_millis(300));
    phase("no bad clients", addr, requests);

    let stop = Arc::new(AtomicBool::new(false));
    let open = Arc::new(AtomicUsize::new(0));
    let reconnects = Arc::new(AtomicUsize::new(0));
    let bads = bad_clients(
        addr.port(),
        bad,
        per_addr,
        stop.clone(),
        open.clone(),
        reconnects.clone(),
    );
    let until = Instant::now() + Duration::from_secs(20);
    while open.load(Ordering::Relaxed) < bad && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "bad clients connected: {} (of {bad})",
        open.load(Ordering::Relaxed)
    );
    phase(&format!("{bad} bad clients"), addr, requests);
    println!(
        "bad clients open at the end: {}, reconnects: {}",
        open.load(Ordering::Relaxed),
        reconnects.load(Ordering::Relaxed)
    );
    stop.store(true, Ordering::Relaxed);
    let _ = bads.join();
    drop(sandbox);
}
