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
use super::reader::read_request;
use super::router::route;
use super::state::HttpState;

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

pub(crate) fn error(status: u16, code: &'static str, message: &str) -> Response {
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
