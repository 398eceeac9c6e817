//! The listener: hyper 1 (HTTP/1.1) on a small tokio runtime that this
//! server owns.
//!
//! Threads: one std thread of ours, `c2c-http`, builds the runtime, so the
//! thread that calls [`HttpServer::start`] (FreeSWITCH's, running `load`)
//! never enters tokio. The runtime has [`WORKERS`] worker threads and at most
//! [`BLOCKING_THREADS`] blocking threads (all named `c2c-http-N`); requests
//! that reach the engine (which may look the agent up in the switch's
//! directory) run on the blocking threads, everything else on the workers.
//!
//! Limits: `max-connections` in all and `max-connections-per-ip` per client
//! address (beyond either: 503 and close); deadlines for a request's head,
//! its body, idle keep-alive connections and answers the client does not take
//! (see [`super::io`]); `max-header-bytes` and `max-body-bytes` (an oversized
//! body is refused with 413 before it is read).
//!
//! [`HttpServer::stop`] only sets a flag and wakes the `c2c-http` thread (no
//! tokio on the caller's thread), then waits for that thread with a
//! deadline. That thread stops accepting (the port is free again), lets
//! requests being handled finish and answer (hyper's graceful shutdown), shuts
//! the runtime down (`shutdown_timeout`, which joins its threads) and ends.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Version;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

use crate::core::config::HttpSettings;
use crate::core::errors::{codes, ApiError};
use crate::core::request::ClickToCallRequest;

use super::auth;
use super::codes as http_codes;
use super::file_body::FileBody;
use super::io::{error_bytes, Deadlines, GuardedIo, Phase};
use super::message::{Request, Response};
use super::router::route;
use super::state::HttpState;
use super::tls::CertStore;

/// Runtime worker threads: one per core of the 2-core machines the module
/// is sized for; the API's work is small and the switch needs the cores.
pub const WORKERS: usize = 2;
/// Most blocking threads (requests that reach the engine). A click-to-call
/// holds one until its durable commit: milliseconds, but up to 0.46 s on a
/// 2-core switch offered 90 calls/s (the overload bench), where 16 threads
/// were all taken and requests waited seconds for one. They are started on
/// demand and leave after 10 s idle, so an idle module keeps none.
pub const BLOCKING_THREADS: usize = 64;
/// Connections beyond the caps answered 503 at once; more are just closed.
const MAX_REFUSING: usize = 256;

/// Open connections, in all and per client address.
#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

struct Shared {
    state: Arc<HttpState>,
    settings: HttpSettings,
    http1: http1::Builder,
    tls: Option<tokio_rustls::TlsAcceptor>,
    counts: Mutex<Counts>,
    stop: AtomicBool,
    /// Set when the accept loop stops: connections with no request in
    /// hand end (see [`super::io`]).
    draining: Arc<AtomicBool>,
    /// What the `c2c-http` thread may spend on stopping, in milliseconds.
    stop_budget_ms: AtomicU64,
}

/// Start-up progress of the `c2c-http` thread.
const STARTING: u8 = 0;
const RUNNING: u8 = 1;
const FAILED: u8 = 2;

/// A running HTTP listener.
pub struct HttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    owner: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HttpServer {
    /// Binds `settings.listen` (port 0: any free port, see [`HttpServer::local_addr`])
    /// and starts serving; with `tls-cert` and `tls-key`, HTTPS.
    pub fn start(state: Arc<HttpState>, settings: &HttpSettings) -> io::Result<HttpServer> {
        let tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => {
                let invalid = |e| io::Error::new(io::ErrorKind::InvalidInput, e);
                let store = CertStore::load(cert, key).map_err(invalid)?;
                let config = store.server_config().map_err(invalid)?;
                state.set_tls(Some(store));
                Some(tokio_rustls::TlsAcceptor::from(config))
            }
            _ => {
                state.set_tls(None);
                None
            }
        };
        let listener = std::net::TcpListener::bind(settings.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let mut http1 = http1::Builder::new();
        http1
            .max_buf_size(settings.max_header_bytes.max(8192) + 1024)
            .max_header_size(settings.max_header_bytes)
            .max_headers(64)
            .header_read_timeout(None)
            // A client may shut its write side once its request is sent
            // (`printf … | nc`, some HTTP libraries): it still gets its answer.
            .half_close(true)
            .title_case_headers(true)
            .writev(false);
        let shared = Arc::new(Shared {
            state,
            settings: settings.clone(),
            http1,
            tls,
            counts: Mutex::new(Counts::default()),
            stop: AtomicBool::new(false),
            draining: Arc::new(AtomicBool::new(false)),
            stop_budget_ms: AtomicU64::new(2000),
        });
        let progress = Arc::new(AtomicU8::new(STARTING));
        let (s, p) = (Arc::clone(&shared), Arc::clone(&progress));
        let owner = std::thread::Builder::new()
            .name("c2c-http".into())
            .spawn(move || own(listener, s, p))?;
        // Wait for the runtime without blocking on anything of tokio's.
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            match progress.load(Ordering::SeqCst) {
                RUNNING => break,
                FAILED => {
                    let _ = owner.join();
                    return Err(io::Error::other("cannot start the HTTP runtime"));
                }
                _ if Instant::now() > until => {
                    shared.stop.store(true, Ordering::SeqCst);
                    owner.thread().unpark();
                    let late = Instant::now() + Duration::from_secs(5);
                    while !owner.is_finished() && Instant::now() < late {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    if owner.is_finished() {
                        let _ = owner.join();
                    }
                    return Err(io::Error::other("the HTTP runtime did not start"));
                }
                _ => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        Ok(HttpServer {
            addr,
            shared,
            owner: Mutex::new(Some(owner)),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes the listener, lets requests being handled
    /// finish and answer, shuts the runtime down and joins its threads.
    /// Returns whether all of it ended within `deadline`. Calling it again
    /// is harmless.
    pub fn stop(&self, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        let Some(owner) = lock(&self.owner).take() else {
            return true;
        };
        let budget = deadline.saturating_sub(Duration::from_millis(50));
        self.shared
            .stop_budget_ms
            .store(budget.as_millis() as u64, Ordering::SeqCst);
        self.shared.stop.store(true, Ordering::SeqCst);
        owner.thread().unpark();
        while !owner.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        if owner.is_finished() {
            owner.join().is_ok()
        } else {
            false
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

/// The `c2c-http` thread: the runtime's whole life.
fn own(listener: std::net::TcpListener, shared: Arc<Shared>, progress: Arc<AtomicU8>) {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_keep_alive(Duration::from_secs(10))
        .thread_name_fn(|| format!("c2c-http-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
        .enable_io()
        .enable_time()
        .build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(_) => {
            progress.store(FAILED, Ordering::SeqCst);
            return;
        }
    };
    let wake = Arc::new(Notify::new());
    let server = {
        let _enter = rt.enter();
        match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => rt.spawn(accept_loop(l, Arc::clone(&shared), Arc::clone(&wake))),
            Err(_) => {
                progress.store(FAILED, Ordering::SeqCst);
                return;
            }
        }
    };
    progress.store(RUNNING, Ordering::SeqCst);
    while !shared.stop.load(Ordering::SeqCst) {
        std::thread::park();
    }
    let started = Instant::now();
    let budget = Duration::from_millis(shared.stop_budget_ms.load(Ordering::SeqCst));
    // Our own thread wakes the accept loop: it stops accepting and drains.
    wake.notify_one();
    let _ = rt.block_on(async { tokio::time::timeout(budget, server).await });
    rt.shutdown_timeout(budget.saturating_sub(started.elapsed()));
}

/// The client's address as one key (an IPv4-mapped IPv6 address is IPv4).
fn client_ip(peer: &SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        ip => ip,
    }
}

/// A connection counted in; counted out when dropped.
struct Admitted {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut c = lock(&self.shared.counts);
        c.total -= 1;
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
        self.shared
            .state
            .metrics
            .open_connections
            .fetch_sub(1, Ordering::SeqCst);
    }
}

fn admit(shared: &Arc<Shared>, ip: IpAddr) -> Option<Admitted> {
    let mut c = lock(&shared.counts);
    let here = c.per_ip.get(&ip).copied().unwrap_or(0);
    if c.total >= shared.settings.max_connections || here >= shared.settings.max_connections_per_ip
    {
        return None;
    }
    c.total += 1;
    *c.per_ip.entry(ip).or_default() += 1;
    shared
        .state
        .metrics
        .open_connections
        .fetch_add(1, Ordering::SeqCst);
    Some(Admitted {
        shared: Arc::clone(shared),
        ip,
    })
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>, wake: Arc<Notify>) {
    let graceful = GracefulShutdown::new();
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = wake.notified() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => {
                    // Out of descriptors, or reset before accept: back off
                    // a little instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        match admit(&shared, client_ip(&peer)) {
            Some(admitted) => {
                let watcher = graceful.watcher();
                tokio::spawn(serve(stream, peer, Arc::clone(&shared), watcher, admitted));
            }
            None => {
                let metrics = &shared.state.metrics;
                metrics.refused_connections.fetch_add(1, Ordering::Relaxed);
                metrics.record("server", 503);
                // A flood past MAX_REFUSING, or HTTPS (a plain 503 is no
                // answer to a TLS hello): just close.
                if shared.tls.is_some() {
                    continue;
                }
                if let Ok(permit) = Arc::clone(&refusing).try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse(stream).await;
                        drop(permit);
                    });
                }
            }
        }
    }
    drop(listener);
    shared.draining.store(true, Ordering::SeqCst);
    graceful.shutdown().await;
}

/// Answers a connection beyond a cap: 503, then close.
async fn refuse(mut s: TcpStream) {
    use tokio::time::timeout;
    let mut scratch = [0u8; 4096];
    let _ = timeout(Duration::from_millis(50), s.read(&mut scratch)).await;
    let mut answer = error_bytes(
        503,
        http_codes::TOO_MANY_CONNECTIONS,
        "too many open connections; retry shortly",
    );
    // Retry-After goes into the head, before its blank line.
    if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
        answer.splice(end + 2..end + 2, b"Retry-After: 1\r\n".iter().copied());
    }
    let _ = timeout(Duration::from_millis(500), s.write_all(&answer)).await;
    let _ = s.shutdown().await;
    let _ = timeout(Duration::from_millis(100), s.read(&mut scratch)).await;
}

/// One admitted connection: TLS if configured, then HTTP/1.1 until it ends.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    watcher: Watcher,
    admitted: Admitted,
) {
    let _ = stream.set_nodelay(true);
    match shared.tls.clone() {
        Some(acceptor) => {
            let handshake = acceptor.accept(stream);
            if let Ok(Ok(tls)) =
                tokio::time::timeout(shared.settings.header_read_timeout, handshake).await
            {
                serve_http(tls, peer, &shared, watcher).await;
            }
        }
        None => serve_http(stream, peer, &shared, watcher).await,
    }
    drop(admitted);
}

/// What the service of one connection knows.
struct Ctx {
    shared: Arc<Shared>,
    phase: Arc<Phase>,
    peer: SocketAddr,
}

async fn serve_http<S>(io: S, peer: SocketAddr, shared: &Arc<Shared>, watcher: Watcher)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let settings = &shared.settings;
    let phase = Phase::new();
    let io = GuardedIo::new(
        io,
        Arc::clone(&phase),
        Deadlines {
            header: settings.header_read_timeout.min(settings.read_timeout),
            idle: settings.idle_timeout,
            write: settings.read_timeout,
        },
        Arc::clone(&shared.state),
        Arc::clone(&shared.draining),
    );
    let ctx = Arc::new(Ctx {
        shared: Arc::clone(shared),
        phase,
        peer,
    });
    let service = service_fn(move |req| handle(req, Arc::clone(&ctx)));
    let conn = shared.http1.serve_connection(TokioIo::new(io), service);
    let _ = watcher.watch(conn).await;
}

/// An error answer after which the connection closes.
fn error(status: u16, code: &'static str, message: &str) -> Response {
    let mut r = Response::error(&ApiError::new(status, code, message));
    r.close = true;
    r
}

/// A response body: the bytes of a [`Response`], or a file slice streamed.
type ResBody = http_body_util::Either<Full<Bytes>, FileBody>;

async fn handle(
    req: hyper::Request<Incoming>,
    ctx: Arc<Ctx>,
) -> Result<hyper::Response<ResBody>, Infallible> {
    let started = ctx.phase.serving();
    let keep_alive = wants_keep_alive(&req);
    let response = match read_request(req, &ctx, started).await {
        Ok(req) => dispatch(req, &ctx).await,
        Err(r) => {
            ctx.shared.state.metrics.record("server", r.status);
            r
        }
    };
    ctx.phase.answered();
    Ok(to_hyper(response, keep_alive))
}

/// HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 only
/// with `Connection: keep-alive`.
fn wants_keep_alive(req: &hyper::Request<Incoming>) -> bool {
    let has = |token: &str| {
        req.headers().get_all(CONNECTION).iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    match req.version() {
        Version::HTTP_10 | Version::HTTP_09 => has("keep-alive"),
        _ => !has("close"),
    }
}

/// The request as the router takes it: head converted, body read within the
/// size limit and the deadline.
async fn read_request(
    req: hyper::Request<Incoming>,
    ctx: &Ctx,
    started: tokio::time::Instant,
) -> Result<Request, Response> {
    let settings = &ctx.shared.settings;
    let (parts, body) = req.into_parts();
    let max = settings.max_body_bytes;
    let too_large = || {
        error(
            413,
            codes::PAYLOAD_TOO_LARGE,
            &format!("the body exceeds {max} bytes"),
        )
    };
    // Content-Length over the limit: refused before reading a byte of it.
    if body.size_hint().lower() > max as u64 {
        return Err(too_large());
    }
    let body = if body.is_end_stream() {
        Bytes::new()
    } else {
        let deadline = started + settings.read_timeout;
        match tokio::time::timeout_at(deadline, Limited::new(body, max).collect()).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
            Ok(Err(_)) => {
                return Err(error(
                    400,
                    codes::BAD_REQUEST,
                    "malformed request body (see RFC 9112)",
                ))
            }
            Err(_) => {
                return Err(error(
                    408,
                    http_codes::REQUEST_TIMEOUT,
                    "the request did not arrive in time",
                ))
            }
        }
    };
    let mut req = Request {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        peer: Some(ctx.peer),
        ..Request::default()
    };
    if req.method == "POST" && req.path == CLICK_TO_CALL {
        req.click_to_call = Some(ClickToCallRequest::from_json_bytes(&req.body));
    }
    Ok(req)
}

/// The one route that reaches the switch once its request is valid.
const CLICK_TO_CALL: &str = "/api/pbx/calls/click-to-call";

/// Whether a request may block (it reaches the switch or the disk): those
/// run on the blocking threads, the rest on the workers. A click-to-call
/// reaches the switch (directory lookup, originate) only once it is
/// authorized and valid: the refusals (401, 400, 422) are made on a worker.
fn may_block(state: &HttpState, req: &Request) -> bool {
    // A remote admission (Redis: key, rate limit) decides before the request
    // is validated, and a remote directory may ask another node.
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", CLICK_TO_CALL) => {
            auth::is_authorized(&state.engine.config(), req)
                && (state.admission().remote()
                    || req.click_to_call.as_ref().is_some_and(Result::is_ok))
        }
        ("DELETE", p) => p.starts_with("/api/pbx/calls/"),
        // Reads the disk (the file's size, maybe a stored call).
        ("GET", p) if p.ends_with("/recording") => true,
        // Reads the store (dead letters) and walks the switch's sessions for
        // each trunk's channels: on a worker, a scrape 4 times a second at
        // 90 calls/s held the click-to-calls' p99 at 215–300 ms.
        ("GET", "/metrics") => true,
        ("GET", p) if state.directory().remote() => p.starts_with("/api/pbx/calls/"),
        (_, p) => p.starts_with("/api/pbx/webhooks/dead-letters"),
    }
}

async fn dispatch(req: Request, ctx: &Ctx) -> Response {
    let state = Arc::clone(&ctx.shared.state);
    let internal = || error(500, codes::INTERNAL, "internal error");
    if may_block(&state, &req) {
        tokio::task::spawn_blocking(move || route(&state, &req))
            .await
            .unwrap_or_else(|_| internal())
    } else {
        catch_unwind(AssertUnwindSafe(|| route(&state, &req))).unwrap_or_else(|_| internal())
    }
}

fn to_hyper(r: Response, keep_alive: bool) -> hyper::Response<ResBody> {
    let body = match r.file.as_ref().map(FileBody::open) {
        None => ResBody::Left(Full::new(Bytes::from(r.body))),
        Some(Ok(file)) => ResBody::Right(file),
        // Gone between the handler's look and now (erased meanwhile).
        Some(Err(_)) => {
            let gone = error(404, codes::NOT_FOUND, "the file is gone");
            return to_hyper(gone, keep_alive);
        }
    };
    let mut out = hyper::Response::new(body);
    *out.status_mut() =
        hyper::StatusCode::from_u16(r.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    for (n, v) in &r.headers {
        if n == "Content-Type" && v == "application/json" {
            headers.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        } else if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(n, v);
        }
    }
    // Said on every answer, as before hyper (HTTP/1.0 clients need it).
    let close = r.close || !keep_alive;
    headers.insert(
        CONNECTION,
        HeaderValue::from_static(if close { "close" } else { "keep-alive" }),
    );
    out
}
