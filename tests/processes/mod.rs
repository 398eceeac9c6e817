//! Processes a test starts and owns: a free loopback port to give them, a
//! child killed and reaped when dropped, and a redis-server of the test's
//! own (for the cluster tests, each on its own port).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port free now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills and reaps the process when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `redis-server` can be run.
pub fn redis_installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One command to Redis in its inline form; the first line of the answer
/// (a bulk string's value, `(nil)` for none).
pub fn redis_cmd(port: u16, cmd: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    if let Some(n) = line.strip_prefix('$') {
        let n: i64 = n.trim().parse().ok()?;
        if n < 0 {
            return Some("(nil)".into());
        }
        line.clear();
        r.read_line(&mut line).ok()?;
    }
    Some(line.trim().to_string())
}

/// A redis-server of our own (no persistence); killed when dropped.
pub struct RedisServer {
    child: KillOnDrop,
    pub port: u16,
}

impl RedisServer {
    /// Starts one on `port` and waits until it answers PING.
    pub fn start_on(port: u16) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let until = Instant::now() + Duration::from_secs(10);
        while redis_cmd(port, "PING").as_deref() != Some("+PONG") {
            assert!(
                Instant::now() < until,
                "redis-server on {port} did not answer"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer {
            child: KillOnDrop(child),
            port,
        }
    }

    /// Starts one on a free port.
    pub fn start() -> RedisServer {
        RedisServer::start_on(free_port())
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
    }
}
