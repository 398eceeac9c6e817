//! Shared by the HTTP contract tests: an App over the simulated switch on an
//! ephemeral port, and a minimal HTTP/1.1 client over a plain TcpStream.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use mod_zorio_c2c::app::App;
use mod_zorio_c2c::core::config::Config;
use mod_zorio_c2c::core::events::{EventLog, EventSink};
use mod_zorio_c2c::sim::{SimOptions, SimSwitch};
use mod_zorio_c2c::switch::leg_channel;
use serde_json::Value;

pub use crate::scratch::Scratch;

/// The sample config's token.
pub const TOKEN: &str = "change-me-to-a-long-random-token";
pub const SAMPLE: &str = include_str!("../../conf/autoload_configs/zorio_c2c.conf.xml");

pub struct TestApp {
    pub app: App,
    pub sim: Arc<SimSwitch>,
    pub log: Arc<EventLog>,
    pub addr: SocketAddr,
    /// The spool directory [`config`] chose, removed after the app stops.
    spool: Option<Scratch>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.app.stop(Duration::from_secs(5));
        self.sim.stop();
    }
}

/// Names the spool directories [`config`] makes (the apps [`start_with`]
/// starts over them remove them when they stop).
const SPOOL_PREFIX: &str = "c2c-http-test";

/// The sample config, listening on 127.0.0.1:0, rate limit off, its spool in
/// a fresh directory of the temp dir (see [`start_with`]).
pub fn config() -> Config {
    let mut c = Config::from_xml(SAMPLE).expect("sample config");
    c.http.listen = "127.0.0.1:0".parse().unwrap();
    c.http.rate_limit_per_minute = None;
    c.webhooks.spool_dir = std::env::temp_dir().join(format!(
        "{SPOOL_PREFIX}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    c
}

/// Fast simulated people: answers within tens of milliseconds.
pub fn sim_options() -> SimOptions {
    SimOptions::demo_fast(Duration::from_millis(50), Duration::from_millis(200))
}

/// Starts the app; a spool directory [`config`] chose is the app's to
/// remove when it stops (and the test passed).
pub fn start_with(config: Config, options: SimOptions) -> TestApp {
    let dir = &config.webhooks.spool_dir;
    let ours = dir.parent() == Some(std::env::temp_dir().as_path())
        && dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(SPOOL_PREFIX));
    let spool = ours.then(|| Scratch::adopt(dir.clone()));
    let (tx, rx) = leg_channel();
    let sim = SimSwitch::new(options, tx);
    let log = Arc::new(EventLog::default());
    let sinks: Vec<Arc<dyn EventSink>> = vec![log.clone()];
    let app = App::start(config, sim.clone(), rx, sinks).expect("app starts");
    let addr = app.http_addr().expect("listening");
    TestApp {
        app,
        sim,
        log,
        addr,
        spool,
    }
}

pub fn start(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut c = config();
    tweak(&mut c);
    start_with(c, sim_options())
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The error code of the one error shape (asserting the shape).
    pub fn error_code(&self) -> String {
        let j = self.json();
        let e = &j["error"];
        assert!(e["message"].is_string(), "error shape: {j}");
        assert!(e["fields"].is_array(), "error shape: {j}");
        e["code"].as_str().expect("error.code").to_string()
    }
}

/// One client connection.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// A connection over a stream opened elsewhere.
    pub fn from_stream(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.send_raw(&bytes);
    }

    /// Reads one response; `None` if the server closed the connection first.
    pub fn try_read(&mut self) -> Option<Resp> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let mut lines = head.split("\r\n");
                let status_line = lines.next().unwrap_or("");
                let status: u16 = status_line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("status line {status_line:?}"));
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse().unwrap())
                    .unwrap_or(0);
                let total = end + 4 + len;
                while self.buf.len() < total {
                    if !self.fill() {
                        panic!("connection closed inside a response");
                    }
                }
                let body = self.buf[end + 4..total].to_vec();
                self.buf.drain(..total);
                return Some(Resp {
                    status,
                    headers,
                    body,
                });
            }
            if !self.fill() {
                return None;
            }
        }
    }

    pub fn read(&mut self) -> Resp {
        self.try_read().expect("a response")
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Whether the server has closed the connection (EOF within `wait`).
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// One request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut c = Conn::open(addr);
    c.send(method, path, headers, body);
    c.read()
}

pub fn auth() -> String {
    format!("Bearer {TOKEN}")
}

/// `GET` with the token.
pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[("Authorization", &auth())], b"")
}

/// `POST /api/pbx/calls/click-to-call` with the token, JSON body and extra headers.
pub fn post_call(addr: SocketAddr, body: &str, extra: &[(&str, &str)]) -> Resp {
    let a = auth();
    let mut h: Vec<(&str, &str)> =
        vec![("Authorization", &a), ("Content-Type", "application/json")];
    h.extend_from_slice(extra);
    request(
        addr,
        "POST",
        "/api/pbx/calls/click-to-call",
        &h,
        body.as_bytes(),
    )
}

/// The sandbox binary, running until dropped.
pub struct Sandbox {
    child: std::process::Child,
    pub addr: SocketAddr,
    /// The lines it prints after the first (read on, so it never blocks).
    pub lines: std::sync::mpsc::Receiver<String>,
    /// Its data directory, removed once it is stopped.
    data: Scratch,
}

impl Sandbox {
    /// Starts `c2c-sandbox --listen 127.0.0.1:0 --data-dir SCRATCH ARGS` and
    /// reads its address.
    pub fn start(args: &[&str]) -> Sandbox {
        use std::io::BufRead;
        let data = Scratch::new("c2c-sandbox-test");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_c2c-sandbox"))
            .args(["--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sandbox starts");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let addr: SocketAddr = first
            .split("://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        // Keep reading its output: a closed pipe would end the sandbox.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Sandbox {
            child,
            addr,
            lines: rx,
            data,
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
