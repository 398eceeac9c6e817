//! Heartbeats: every `heartbeat-interval` this node writes
//! `<prefix>node:<name>` (its API URL) with a TTL of `node-ttl` and its name
//! in the sorted set `<prefix>nodes`, then reads every node back: a node whose
//! key is gone is down. The same round also probes Redis, which is how a node
//! notices that Redis is back.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::redis::Redis;

/// Names forgotten after this long without a heartbeat.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// One node as this node last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSeen {
    pub name: String,
    /// Its API URL (empty when its key is gone).
    pub url: String,
    /// Heard from within `node-ttl`.
    pub up: bool,
    /// Milliseconds since the epoch of its last heartbeat (its own clock).
    pub last_seen_ms: u64,
}

/// Work that rides on every heartbeat (e.g. this node's trunk counts).
pub type BeatHook = Box<dyn Fn() + Send + Sync>;

/// What the heartbeat thread needs.
pub struct Beat {
    pub redis: Arc<Redis>,
    pub prefix: String,
    pub node: String,
    pub url: String,
    pub interval: Duration,
    pub ttl: Duration,
    pub view: Arc<Mutex<Vec<NodeSeen>>>,
    /// Run after each heartbeat Redis answered.
    pub hooks: Arc<Mutex<Vec<BeatHook>>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Beat {
    /// One heartbeat and read of the nodes; returns whether Redis answered.
    pub fn once(&self) -> bool {
        let now = now_ms();
        let info = json!({"name": self.node, "url": self.url}).to_string();
        let set = format!("{}nodes", self.prefix);
        let names: Result<Vec<(String, f64)>, _> = self.redis.probe(|c| {
            let (_, _, _, names): ((), (), (), Vec<(String, f64)>) = redis::pipe()
                .cmd("SET")
                .arg(format!("{}node:{}", self.prefix, self.node))
                .arg(&info)
                .arg("PX")
                .arg(self.ttl.as_millis() as u64)
                .cmd("ZADD")
                .arg(&set)
                .arg(now)
                .arg(&self.node)
                .cmd("ZREMRANGEBYSCORE")
                .arg(&set)
                .arg("-inf")
                .arg(now.saturating_sub(FORGET_AFTER.as_millis() as u64))
                .cmd("ZRANGE")
                .arg(&set)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query(c)?;
            Ok(names)
        });
        let Ok(names) = names else { return false };
        let keys: Vec<String> = names
            .iter()
            .map(|(n, _)| format!("{}node:{n}", self.prefix))
            .collect();
        let infos: Result<Vec<Option<String>>, _> = if keys.is_empty() {
            Ok(Vec::new())
        } else {
            self.redis.probe(|c| redis::cmd("MGET").arg(&keys).query(c))
        };
        let Ok(infos) = infos else { return false };
        let view = names
            .into_iter()
            .zip(infos)
            .map(|((name, last_seen_ms), info)| {
                let url = info
                    .and_then(|i| serde_json::from_str::<serde_json::Value>(&i).ok())
                    .and_then(|v| v["url"].as_str().map(str::to_string));
                NodeSeen {
                    name,
                    up: url.is_some(),
                    url: url.unwrap_or_default(),
                    last_seen_ms: last_seen_ms as u64,
                }
            })
            .collect();
        *self.view.lock().unwrap_or_else(|e| e.into_inner()) = view;
        true
    }

    /// Says this node is leaving (best effort), so the others see it at once.
    pub fn leave(&self) {
        let _ = self.redis.run(|c| {
            redis::pipe()
                .cmd("DEL")
                .arg(format!("{}node:{}", self.prefix, self.node))
                .ignore()
                .query::<()>(c)
        });
    }
}

/// The `c2c-cluster` thread: beats until stopped.
pub struct Heartbeat {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Heartbeat {
    /// Starts beating (the first beat has been done by the caller).
    pub fn start(beat: Arc<Beat>) -> Result<Heartbeat, String> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let s = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("c2c-cluster".into())
            .spawn(move || {
                let (lock, cv) = &*s;
                loop {
                    let stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                    let (stopped, _) = cv
                        .wait_timeout_while(stopped, beat.interval, |s| !*s)
                        .unwrap_or_else(|e| e.into_inner());
                    if *stopped {
                        break;
                    }
                    drop(stopped);
                    if beat.once() {
                        for hook in beat.hooks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                            hook();
                        }
                    }
                }
                beat.leave();
            })
            .map_err(|e| format!("cannot start the c2c-cluster thread: {e}"))?;
        Ok(Heartbeat {
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops the thread within `deadline`; returns whether it ended in time.
    pub fn stop(&self, deadline: Duration) -> bool {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        let Some(handle) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return true;
        };
        let until = Instant::now() + deadline;
        while !handle.is_finished() {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        handle.join().is_ok()
    }
}
