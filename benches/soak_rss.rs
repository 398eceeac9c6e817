//! Memory over a soak: the sandbox binary places N calls (default 20,000)
//! with short timings, delivering every webhook to a loopback receiver, and
//! its resident memory (`VmRSS` in /proc/<pid>/status) is read before, during
//! and after. Ended calls live in the store, not in memory, so RSS stays flat.
//!
//! Then what one live call and one queued webhook cost, each in a sandbox of
//! its own: 150 calls held up (talking for minutes), and 2,000 short calls
//! whose webhooks cannot be delivered (nothing listens at the URL), so their
//! events wait in the dispatcher's queue; RSS before and after, divided.
//!
//! `cargo build --release && cargo bench --bench soak_rss [-- CALLS]`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BODY: &str = r#"{"from_extension":"1001","to_phone":"0987654321"}"#;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A receiver that answers 200 and only counts (keeps nothing).
fn receiver(count: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let count = count.clone();
            std::thread::spawn(move || serve(s, count));
        }
    });
    port
}

fn serve(s: TcpStream, count: Arc<AtomicU64>) {
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        count.fetch_add(1, Ordering::Relaxed);
        if w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// Keep-alive client placing `n` calls; returns how many got 202.
fn client(port: u16, n: usize) -> usize {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let req = format!(
        "POST /api/pbx/calls/click-to-call HTTP/1.1\r\nHost: soak\r\n\
         Authorization: Bearer sandbox-token\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let mut ok = 0;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..n {
        loop {
            s.write_all(req.as_bytes()).unwrap();
            buf.clear();
            let total = loop {
                let k = s.read(&mut chunk).unwrap();
                assert!(k > 0, "sandbox closed the connection");
                buf.extend_from_slice(&chunk[..k]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    break (end + 4 + len, head.starts_with("HTTP/1.1 202"));
                }
            };
            while buf.len() < total.0 {
                let k = s.read(&mut chunk).unwrap();
                buf.extend_from_slice(&chunk[..k]);
            }
            if total.1 {
                ok += 1;
                break;
            }
            // 503 capacity_exceeded: calls in flight at the limit; wait a little.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    ok
}

/// A sandbox on a free port with these extra args; (child, its API port, data dir).
fn sandbox(extra: &[&str], tag: &str) -> (std::process::Child, u16, std::path::PathBuf) {
    let exe = std::env::current_exe().unwrap();
    let sandbox = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("c2c-sandbox"))
        .expect("target dir");
    assert!(
        sandbox.exists(),
        "build the sandbox first: cargo build --release"
    );
    let dir = std::env::temp_dir().join(format!("c2c-soak-{tag}-{}", std::process::id()));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&sandbox)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&dir)
        .args(["--webhook-secret", SECRET])
        .args(["--rate-limit", "0", "--quiet"])
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("start the sandbox");
    let until = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "sandbox did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, port, dir)
}

/// Waits until `f` holds (a minute at most).
fn settle(mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < until, "did not settle");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET /health` of a sandbox, as text.
fn health(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(
        b"GET /health HTTP/1.1\r\nHost: soak\r\nAuthorization: Bearer sandbox-token\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// VmRSS once it holds still for a second (KiB).
fn steady_rss(pid: u32) -> u64 {
    let mut last = rss_kib(pid);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = rss_kib(pid);
        if now.abs_diff(last) < 64 {
            return now;
        }
        last = now;
    }
}

/// Memory per live call: 150 calls up at once (talking 10 minutes; the
/// sandbox's simulated switch takes 200).
fn per_live_call() {
    let calls = 150;
    let (mut child, port, dir) = sandbox(
        &[
            "--webhook-url",
            "http://127.0.0.1:9/unused",
            "--agent-answer-ms",
            "5",
            "--customer-answer-ms",
            "5",
            "--talk-ms",
            "600000",
        ],
        "live",
    );
    let pid = child.id();
    // One call first: what every call shares is then in place.
    assert_eq!(client(port, 1), 1);
    let before = steady_rss(pid);
    let threads =
        |pid: u32| std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
    let t0 = threads(pid);
    let hs: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || client(port, calls / 8)))
        .collect();
    let placed: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
    settle(|| health(port).contains(&format!("\"active_calls\":{}", placed + 1)));
    let after = steady_rss(pid);
    println!(
        "per live call: {placed} calls up: VmRSS {before} -> {after} KiB, {:.1} KiB a call \
         (the simulated switch's share included); threads {t0} -> {}",
        (after as f64 - before as f64) / placed as f64,
        threads(pid)
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Memory per queued webhook: 2,000 short calls, nothing listening at the
/// webhook URL, so every event waits for its retry.
fn per_queued_webhook() {
    let calls = 2_000;
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{dead}/hooks");
    let (mut child, port, dir) = sandbox(
        &[
            "--webhook-url",
            &url,
            "--agent-answer-ms",
            "5",
            "--customer-answer-ms",
            "5",
            "--talk-ms",
            "20",
        ],
        "queued",
    );
    let pid = child.id();
    assert_eq!(client(port, 1), 1);
    std::thread::sleep(Duration::from_secs(1));
    let before = steady_rss(pid);
    let queued_before = spool_size(port);
    let hs: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || client(port, calls / 8)))
        .collect();
    let placed: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
    settle(|| health(port).contains("\"active_calls\":0"));
    let after = steady_rss(pid);
    let queued = spool_size(port) - queued_before;
    println!(
        "per queued webhook: {placed} calls, {queued} events waiting: VmRSS {before} -> {after} KiB, \
         {:.2} KiB an event ({:.1} KiB a call, its events included)",
        (after as f64 - before as f64) / queued as f64,
        (after as f64 - before as f64) / placed as f64,
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Events in the spool (`c2c_webhook_spool_size` of `/metrics`).
fn spool_size(port: u16) -> i64 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(
        b"GET /metrics HTTP/1.1\r\nHost: soak\r\nAuthorization: Bearer sandbox-token\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines()
        .find_map(|l| l.strip_prefix("c2c_webhook_spool_size "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(-1, |v| v as i64)
}

fn main() {
    let calls: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let exe = std::env::current_exe().unwrap();
    let sandbox = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("c2c-sandbox"))
        .expect("target dir");
    assert!(
        sandbox.exists(),
        "build the sandbox first: cargo build --release"
    );
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let hook_port = receiver(count.clone(), stop.clone());
    let dir = std::env::temp_dir().join(format!("c2c-soak-{}", std::process::id()));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(&sandbox)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&dir)
        .args([
            "--webhook-url",
            &format!("http://127.0.0.1:{hook_port}/hooks"),
            "--webhook-secret",
            SECRET,
        ])
        .args(["--rate-limit", "0", "--quiet"])
        .args(["--agent-answer-ms", "5", "--customer-answer-ms", "5"])
        .args(["--talk-ms", "20"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start the sandbox");
    let pid = child.id();
    let until = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "sandbox did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let clients = 8;
    let warm = 1_000.min(calls);
    let run = |n: usize| {
        let hs: Vec<_> = (0..clients)
            .map(|_| std::thread::spawn(move || client(port, n / clients)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
    };
    // Until the calls' events are in (at least 5 a call: which ringing and
    // answer events a call has depends on the simulated timing) and nothing more comes.
    let wait_quiet = |want: u64| {
        let until = Instant::now() + Duration::from_secs(300);
        let mut last = (u64::MAX, Instant::now());
        loop {
            let n = count.load(Ordering::Relaxed);
            if n != last.0 {
                last = (n, Instant::now());
            } else if n >= want && last.1.elapsed() > Duration::from_millis(1000) {
                return;
            }
            assert!(
                Instant::now() < until,
                "events not delivered: {n} of {want}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let start_rss = rss_kib(pid);
    let placed = run(warm);
    wait_quiet(placed as u64 * 5);
    let before = rss_kib(pid);
    let t0 = Instant::now();
    let mut total = placed;
    let mut samples = Vec::new();
    let step = (calls - warm) / 4;
    for _ in 0..4 {
        total += run(step);
        samples.push(rss_kib(pid));
    }
    wait_quiet(total as u64 * 5);
    let after = rss_kib(pid);
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "soak: {total} calls ({} webhooks delivered) in {secs:.1}s through the sandbox \
         (pid {pid}); VmRSS at start {start_rss} KiB, after {placed} warm-up calls {before} KiB, \
         during {samples:?} KiB, after all {after} KiB ({:+} KiB)",
        count.load(Ordering::Relaxed),
        after as i64 - before as i64
    );
    let _ = child.kill();
    let _ = child.wait();
    stop.store(true, Ordering::SeqCst);
    let _ = std::fs::remove_dir_all(&dir);
    per_live_call();
    per_queued_webhook();
}
