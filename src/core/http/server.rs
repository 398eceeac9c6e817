//! The listener: std `TcpListener`, one thread per connection up to
//! `max-connections` (beyond it: 503 and close), httparse for the request
//! head, limits on head and body size, a read timeout for a whole request and
//! an idle timeout between keep-alive requests. A slow client only ever holds
//! its own thread. [`HttpServer::stop`] closes the listener (the port is free
//! again) and joins every thread it started.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::core::config::HttpSettings;
use crate::core::errors::{codes, ApiError};

use super::codes as http_codes;
use super::message::{Request, Response};
use super::router::route;
use super::state::HttpState;

/// Most header lines in one request.
const MAX_HEADER_LINES: usize = 64;
/// Stack of a connection thread: handlers are shallow.
const CONN_STACK: usize = 512 * 1024;

struct Shared {
    state: Arc<HttpState>,
    settings: HttpSettings,
    stop: AtomicBool,
    /// A handle on each open connection, to shut it down on stop.
    conns: Mutex<HashMap<u64, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A running HTTP listener.
pub struct HttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HttpServer {
    /// Binds `settings.listen` (port 0: any free port, see [`HttpServer::local_addr`])
    /// and starts accepting.
    pub fn start(state: Arc<HttpState>, settings: &HttpSettings) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(settings.listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state,
            settings: settings.clone(),
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("c2c-http-accept".into())
            .spawn(move || accept_loop(listener, s))?;
        Ok(HttpServer {
            addr,
            shared,
            acceptor: Mutex::new(Some(acceptor)),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes the listener, lets requests being handled
    /// finish and answer, then joins every thread. Returns whether all of them
    /// ended within `deadline`. Calling it again is harmless.
    pub fn stop(&self, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        self.shared.stop.store(true, Ordering::SeqCst);
        let Some(acceptor) = lock(&self.acceptor).take() else {
            return true;
        };
        // Wake the blocking accept with a connection of our own.
        let _ = TcpStream::connect_timeout(&wake_addr(self.addr), Duration::from_millis(500));
        let mut all = join_until(acceptor, until);
        // Connections: no more reads (idle ones end now; a request being
        // handled still gets its answer written).
        for s in lock(&self.shared.conns).values() {
            let _ = s.shutdown(Shutdown::Read);
        }
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for t in threads {
            all &= join_until(t, until);
        }
        all
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

fn join_until(h: JoinHandle<()>, until: Instant) -> bool {
    while !h.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    if h.is_finished() {
        let _ = h.join();
        true
    } else {
        false
    }
}

fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let (refuse_tx, refuse_rx) = crossbeam_channel::bounded::<TcpStream>(64);
    let refuser = std::thread::Builder::new()
        .name("c2c-http-refuse".into())
        .spawn(move || {
            for s in refuse_rx {
                refuse(s);
            }
        });
    let metrics = &shared.state.metrics;
    let mut next_id: u64 = 0;
    for incoming in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match incoming {
            Ok(s) => s,
            Err(_) => {
                // Out of descriptors or a connection reset before accept:
                // back off a little instead of spinning.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        lock(&shared.threads).retain(|h| !h.is_finished());
        if metrics.open_connections.load(Ordering::SeqCst) >= shared.settings.max_connections {
            metrics.refused_connections.fetch_add(1, Ordering::Relaxed);
            metrics.record("server", 503);
            // A full refusal queue means a flood: just close.
            let _ = refuse_tx.try_send(stream);
            continue;
        }
        next_id += 1;
        let id = next_id;
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        metrics.open_connections.fetch_add(1, Ordering::SeqCst);
        lock(&shared.conns).insert(id, handle);
        let s = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("c2c-http-conn".into())
            .stack_size(CONN_STACK)
            .spawn(move || {
                let _guard = ConnGuard {
                    shared: Arc::clone(&s),
                    id,
                };
                serve(&s, stream);
            });
        match spawned {
            Ok(h) => lock(&shared.threads).push(h),
            Err(_) => {
                // The closure (and its guard) never ran.
                lock(&shared.conns).remove(&id);
                metrics.open_connections.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
    drop(listener);
    drop(refuse_tx);
    if let Ok(h) = refuser {
        let _ = h.join();
    }
}

/// Unregisters a connection when its thread ends, however it ends.
struct ConnGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        lock(&self.shared.conns).remove(&self.id);
        self.shared
            .state
            .metrics
            .open_connections
            .fetch_sub(1, Ordering::SeqCst);
    }
}

/// Answers a connection beyond the cap: 503, then close.
fn refuse(mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
    let mut scratch = [0u8; 4096];
    let _ = s.read(&mut scratch);
    let r = error(
        503,
        http_codes::TOO_MANY_CONNECTIONS,
        "too many open connections; retry shortly",
    )
    .with_header("Retry-After", "1");
    let _ = s.write_all(&r.to_bytes(false));
    let _ = s.shutdown(Shutdown::Write);
    let _ = s.read(&mut scratch);
}

fn error(status: u16, code: &'static str, message: &str) -> Response {
    let mut r = Response::error(&ApiError::new(status, code, message));
    r.close = true;
    r
}

/// Serves one connection: requests one after another while it is kept alive.
fn serve(shared: &Shared, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(shared.settings.read_timeout));
    let peer = stream.peer_addr().ok();
    let mut buf = Vec::with_capacity(4096);
    loop {
        let (req, http10) = match read_request(&mut stream, &mut buf, &shared.settings) {
            Ok(Some((mut req, http10))) => {
                req.peer = peer;
                (req, http10)
            }
            Ok(None) => return,
            Err(r) => {
                shared.state.metrics.record("server", r.status);
                let _ = stream.write_all(&r.to_bytes(false));
                let _ = stream.shutdown(Shutdown::Write);
                return;
            }
        };
        let response = catch_unwind(AssertUnwindSafe(|| route(&shared.state, &req)))
            .unwrap_or_else(|_| error(500, codes::INTERNAL, "internal error"));
        let keep =
            keep_alive(&req, http10) && !response.close && !shared.stop.load(Ordering::SeqCst);
        if stream.write_all(&response.to_bytes(keep)).is_err() || !keep {
            let _ = stream.shutdown(Shutdown::Write);
            return;
        }
    }
}

/// HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 only
/// with `Connection: keep-alive`.
fn keep_alive(req: &Request, http10: bool) -> bool {
    let conn = req.header("connection").unwrap_or("").to_ascii_lowercase();
    let has = |t: &str| conn.split(',').any(|x| x.trim() == t);
    if http10 {
        has("keep-alive")
    } else {
        !has("close")
    }
}

enum Fill {
    Data,
    Closed,
    TimedOut,
}

/// Reads more bytes into `buf`, waiting at most until `deadline`.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> Fill {
    let mut chunk = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Fill::TimedOut;
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut chunk) {
            Ok(0) => return Fill::Closed,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Fill::Data;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Fill::Closed,
        }
    }
}

struct Head {
    method: String,
    target: String,
    version: u8,
    headers: Vec<(String, String)>,
    len: usize,
}

fn parse_head(buf: &[u8], max: usize) -> Result<Option<Head>, Response> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADER_LINES];
    let mut r = httparse::Request::new(&mut headers);
    let too_large = || {
        error(
            431,
            http_codes::HEADERS_TOO_LARGE,
            &format!("the request head exceeds {max} bytes"),
        )
    };
    match r.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            if len > max {
                return Err(too_large());
            }
            Ok(Some(Head {
                method: r.method.unwrap_or("").to_string(),
                target: r.path.unwrap_or("").to_string(),
                version: r.version.unwrap_or(1),
                headers: r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
                len,
            }))
        }
        Ok(httparse::Status::Partial) if buf.len() > max => Err(too_large()),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(too_large()),
        Err(e) => Err(error(
            400,
            codes::BAD_REQUEST,
            &format!("malformed HTTP request: {e}"),
        )),
    }
}

/// Reads one request. `Ok(None)`: the connection closed or stayed idle past
/// the idle timeout. `Err`: the answer to send before closing.
fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    settings: &HttpSettings,
) -> Result<Option<(Request, bool)>, Response> {
    // The whole request must arrive within read_timeout of its first byte.
    let mut started = (!buf.is_empty()).then(Instant::now);
    let idle_until = Instant::now() + settings.idle_timeout;
    let timeout = || {
        error(
            408,
            http_codes::REQUEST_TIMEOUT,
            "the request did not arrive in time",
        )
    };
    let head = loop {
        if !buf.is_empty() {
            if let Some(head) = parse_head(buf, settings.max_header_bytes)? {
                break head;
            }
        }
        let deadline = started.map_or(idle_until, |s| s + settings.read_timeout);
        match fill(stream, buf, deadline) {
            Fill::Data => {
                started.get_or_insert_with(Instant::now);
            }
            Fill::Closed => return Ok(None),
            Fill::TimedOut if started.is_some() => return Err(timeout()),
            Fill::TimedOut => return Ok(None),
        }
    };
    let started = started.unwrap_or_else(Instant::now);
    let mut req = Request::new(&head.method, &head.target);
    req.headers = head.headers;
    if req.header("transfer-encoding").is_some() {
        return Err(error(
            501,
            http_codes::NOT_IMPLEMENTED,
            "Transfer-Encoding is not supported; send Content-Length",
        ));
    }
    let lengths: Vec<&str> = req
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.trim())
        .collect();
    let length = match lengths.as_slice() {
        [] => 0,
        [one] => one
            .parse::<usize>()
            .map_err(|_| error(400, codes::BAD_REQUEST, "Content-Length is not a number"))?,
        _ => {
            return Err(error(
                400,
                codes::BAD_REQUEST,
                "more than one Content-Length",
            ))
        }
    };
    if length > settings.max_body_bytes {
        return Err(error(
            413,
            codes::PAYLOAD_TOO_LARGE,
            &format!("the body exceeds {} bytes", settings.max_body_bytes),
        ));
    }
    let total = head.len + length;
    let expects_continue = req
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects_continue && buf.len() < total {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    while buf.len() < total {
        match fill(stream, buf, started + settings.read_timeout) {
            Fill::Data => {}
            Fill::Closed => return Ok(None),
            Fill::TimedOut => return Err(timeout()),
        }
    }
    req.body = buf[head.len..total].to_vec();
    buf.drain(..total);
    Ok(Some((req, head.version == 0)))
}
