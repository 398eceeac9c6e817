//! The Redis connection: a few sync connections, each with a connect and a
//! command timeout, so no caller ever waits longer than those. When a command
//! fails, Redis is marked down: callers are answered at once (no connect
//! attempt per request) until the heartbeat reaches Redis again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::core::config::ClusterSettings;
use crate::core::log::{LogHook, LogLevel};

/// Idle connections kept; more are opened while callers need them (at most
/// one per HTTP blocking thread) and closed when given back.
const MAX_IDLE: usize = 4;

/// Why a Redis operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisDown {
    /// Marked down by an earlier failure; not tried.
    Down,
    /// This attempt failed.
    Failed(String),
}

impl std::fmt::Display for RedisDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisDown::Down => f.write_str("Redis is unreachable"),
            RedisDown::Failed(e) => write!(f, "Redis: {e}"),
        }
    }
}

/// The shared connection pool and Redis's health as this node sees it.
pub struct Redis {
    client: redis::Client,
    connect_timeout: Duration,
    command_timeout: Duration,
    idle: Mutex<Vec<redis::Connection>>,
    up: AtomicBool,
    closed: AtomicBool,
    /// Failed commands or connects.
    pub errors: AtomicU64,
    log: LogHook,
}

impl Redis {
    /// A pool for `settings.redis_url` (nothing is connected yet; Redis starts as down).
    pub fn new(settings: &ClusterSettings, log: LogHook) -> Result<Arc<Redis>, String> {
        let client = redis::Client::open(settings.redis_url.as_str())
            .map_err(|e| format!("cluster redis-url: {e}"))?;
        Ok(Arc::new(Redis {
            client,
            connect_timeout: settings.connect_timeout,
            command_timeout: settings.command_timeout,
            idle: Mutex::new(Vec::new()),
            up: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            log,
        }))
    }

    /// Whether the last operation reached Redis.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// Runs `f` on a connection, unless Redis is marked down.
    pub fn run<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, RedisDown> {
        if !self.is_up() {
            return Err(RedisDown::Down);
        }
        self.attempt(f)
    }

    /// Runs `f` even when Redis is marked down (the heartbeat's probe);
    /// success marks it up again.
    pub fn probe<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, RedisDown> {
        let r = self.attempt(f);
        if r.is_ok() && !self.up.swap(true, Ordering::SeqCst) {
            (self.log)(
                LogLevel::Info,
                None,
                "cluster: Redis is reachable: global rate limit, Idempotency-Keys and call \
                 lookups across nodes are on",
            );
        }
        r
    }

    fn attempt<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, RedisDown> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(RedisDown::Down);
        }
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut con = match idle {
            Some(c) => c,
            None => match self.connect() {
                Ok(c) => c,
                Err(e) => return Err(self.failed(e)),
            },
        };
        match f(&mut con) {
            Ok(v) => {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                if idle.len() < MAX_IDLE && !self.closed.load(Ordering::SeqCst) {
                    idle.push(con);
                }
                Ok(v)
            }
            // A connection that failed is dropped (closed), never reused.
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                Err(self.failed(e))
            }
            // Redis answered, with an error (a script error, a wrong type):
            // the connection is fine, the operation is not.
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                Err(RedisDown::Failed(e.to_string()))
            }
        }
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let con = self
            .client
            .get_connection_with_timeout(self.connect_timeout)?;
        con.set_read_timeout(Some(self.command_timeout))?;
        con.set_write_timeout(Some(self.command_timeout))?;
        Ok(con)
    }

    fn failed(&self, e: redis::RedisError) -> RedisDown {
        self.errors.fetch_add(1, Ordering::Relaxed);
        // Connections idle in the pool went to the same Redis: drop them too.
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if self.up.swap(false, Ordering::SeqCst) {
            (self.log)(
                LogLevel::Error,
                None,
                &format!(
                    "cluster: REDIS IS UNREACHABLE ({e}): rate limits fall back to this node's \
                     own limiter, requests with an Idempotency-Key are refused (503), call \
                     lookups answer for this node's calls only, until Redis is back"
                ),
            );
        }
        RedisDown::Failed(e.to_string())
    }

    /// Closes every connection; later operations fail at once.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.up.store(false, Ordering::SeqCst);
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
