//! Test helpers for the webhook tests: a real loopback HTTP/1.1 receiver
//! (std::net only, keep-alive, scripted replies), temp spools and settings.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mod_zorio_c2c::core::config::WebhookSettings;
use mod_zorio_c2c::core::webhooks::{LogHook, LogLevel};
use serde_json::Value;

pub use crate::scratch::Scratch;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const SECRET_2: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
pub struct Req {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// The status answered (`None`: the receiver stalled and hung up).
    pub status: Option<u16>,
}

impl Req {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
    pub fn id(&self) -> String {
        self.json()["id"].as_str().unwrap_or_default().to_string()
    }
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// How the receiver answers one request.
pub enum Reply {
    Status(u16),
    StatusWith(u16, Vec<(&'static str, String)>),
    /// Read the request, answer nothing for this long, then hang up.
    Stall(Duration),
}

type Script = dyn Fn(&Req, usize) -> Reply + Send + Sync;

/// A loopback HTTP receiver on its own threads; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Answers 200 to everything.
    pub fn ok() -> Receiver {
        Receiver::start(0, |_, _| Reply::Status(200))
    }

    /// Listens on `port` (0: any) and answers request number `n` (from 0) by `script`.
    pub fn start(
        port: u16,
        script: impl Fn(&Req, usize) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind receiver");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let connections = Arc::new(AtomicUsize::new(0));
        let (reqs, st, conns_seen) = (requests.clone(), stop.clone(), connections.clone());
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        conns_seen.fetch_add(1, Ordering::SeqCst);
                        let (reqs, st, script) = (reqs.clone(), st.clone(), script.clone());
                        conns.push(std::thread::spawn(move || serve(stream, reqs, st, script)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Receiver {
            addr,
            requests,
            stop,
            connections,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }

    /// The bodies (as JSON) of the requests answered 2xx, in arrival order.
    pub fn delivered(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|r| r.delivered())
            .map(Req::json)
            .collect()
    }

    /// The types of the events delivered, per call, in arrival order; a
    /// redelivery (same event id) counted once.
    pub fn types_per_call(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut m: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let mut seen = std::collections::HashSet::new();
        for e in self.delivered() {
            if !seen.insert(e["id"].as_str().unwrap_or("").to_string()) {
                continue;
            }
            let call = e["data"]["call_uuid"].as_str().unwrap_or("").to_string();
            let kind = e["type"].as_str().unwrap_or("").to_string();
            m.entry(call).or_default().push(kind);
        }
        m
    }

    /// Waits until `n` requests were answered 2xx; panics after `timeout`.
    pub fn wait_delivered(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let until = Instant::now() + timeout;
        loop {
            let d = self.delivered();
            if d.len() >= n {
                return d;
            }
            assert!(
                Instant::now() < until,
                "only {} of {n} delivered: {:?}",
                d.len(),
                self.requests().iter().map(|r| r.status).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    reqs: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
    script: Arc<Script>,
) {
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while !stop.load(Ordering::SeqCst) {
        // Request line and headers.
        let mut head: Vec<String> = Vec::new();
        let mut line = String::new();
        loop {
            match reader.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) if !line.ends_with('\n') => continue,
                Ok(_) if line == "\r\n" && !head.is_empty() => break,
                Ok(_) => head.push(std::mem::take(&mut line)),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        let mut headers = HashMap::new();
        for h in head.iter().skip(1) {
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        let mut got = 0;
        while got < len {
            match reader.read(&mut body[got..]) {
                Ok(0) => return,
                Ok(n) => got += n,
                Err(_) if !stop.load(Ordering::SeqCst) => continue,
                Err(_) => return,
            }
        }
        let mut req = Req {
            headers,
            body,
            at: Instant::now(),
            status: None,
        };
        let n = reqs.lock().unwrap().len();
        let reply = script(&req, n);
        match reply {
            Reply::Stall(d) => {
                reqs.lock().unwrap().push(req);
                let until = Instant::now() + d;
                while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                break;
            }
            Reply::Status(code) | Reply::StatusWith(code, _) => {
                let extra = match &reply {
                    Reply::StatusWith(_, h) => h
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}\r\n"))
                        .collect::<String>(),
                    _ => String::new(),
                };
                req.status = Some(code);
                // Record before answering: the sender may act on the answer at once.
                reqs.lock().unwrap().push(req);
                let resp = format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\n{extra}\r\nok");
                if writer.write_all(resp.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}

/// A fresh temp directory for a spool, removed when dropped (unless the
/// test is failing).
pub fn temp_spool(tag: &str) -> Scratch {
    Scratch::new(&format!("c2c-webhooks-{tag}"))
}

/// Settings for tests: fast retries, short timeouts, one secret.
pub fn settings(url: Option<String>, spool: &std::path::Path) -> WebhookSettings {
    WebhookSettings {
        url,
        secrets: vec![SECRET.to_string()],
        spool_dir: spool.to_path_buf(),
        retry_schedule: vec![Duration::from_millis(30), Duration::from_millis(60)],
        give_up_after: Duration::from_secs(30),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(800),
        max_spool_bytes: 64 << 20,
        spool_high_water_percent: 90,
        max_dead_letters: 10_000,
        workers: 2,
        ..WebhookSettings::default()
    }
}

/// Events committed in the spool of the store in `dir` (read by a connection
/// of the test's own, as an operator's `sqlite3` would).
pub fn spooled(dir: &std::path::Path) -> usize {
    let db = dir.join("zorio_c2c.db");
    if !db.exists() {
        return 0;
    }
    let c = rusqlite::Connection::open(db).expect("open the store");
    c.query_row("SELECT COUNT(*) FROM spool", [], |r| r.get::<_, i64>(0))
        .expect("count the spool") as usize
}

/// Log lines kept by [`captured_log`]: level, the uuid they carry, text.
pub type Lines = Arc<Mutex<Vec<(LogLevel, Option<String>, String)>>>;

/// A log hook that keeps messages for the test to inspect.
pub fn captured_log() -> (LogHook, Lines) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    let hook: LogHook = Arc::new(move |level, uuid: Option<&str>, msg: &str| {
        l.lock()
            .unwrap()
            .push((level, uuid.map(str::to_string), msg.to_string()))
    });
    (hook, lines)
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until true; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
