//! Copies the store's WAL into its database on a thread of its own. Inside
//! the writer, SQLite's auto-checkpoint stopped every commit (and every 202
//! waiting on one) for as long as it took to copy thousands of pages and
//! fsync the database: the tail of the 202's latency.
//!
//! Each round is two checkpoints, both PASSIVE: this thread copies the
//! pages while the writer goes on committing; then the writer itself, after
//! its next commit, copies the few frames committed meanwhile. Only that
//! second one, made between two of the writer's transactions, lets the next
//! commit start the WAL over from its beginning (the file stays at its
//! size, capped by `journal_size_limit`). (A RESTART checkpoint from this
//! thread would starve: the writer retakes its lock between commits.)

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// Commits after which a round starts. Fewer, larger rounds copy a page
/// rewritten by many commits once: at 1,000 (against 250) one client's 202
/// p99 fell from 1.8-2.4 ms to 1.4-1.6 ms in `http_202`; the WAL holds
/// about 32 MB at 8 pages a commit.
pub(super) const COMMITS_PER_ROUND: u64 = 1_000;
/// Longest a committed page waits for a round.
const ROUND_AT_LEAST_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    /// Commits since the last round.
    commits: u64,
    /// A round is done: the writer is to copy what came in meanwhile.
    finish: bool,
    stop: bool,
}

/// What the writer and the checkpoint thread share.
#[derive(Default)]
pub(super) struct Signal {
    state: Mutex<State>,
    cv: Condvar,
}

impl Signal {
    /// The writer made a commit; true when it is to finish a round now
    /// (a PASSIVE checkpoint of its own, between two of its commits).
    pub(super) fn committed(&self) -> bool {
        let mut s = lock(&self.state);
        s.commits += 1;
        if s.commits == COMMITS_PER_ROUND {
            self.cv.notify_one();
        }
        std::mem::take(&mut s.finish)
    }
}

/// The checkpoint thread; stopped and joined by [`Checkpointer::stop`].
pub(super) struct Checkpointer {
    signal: Arc<Signal>,
    handle: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing through `conn` (a connection of its own) each
    /// time `signal` has seen enough commits.
    pub(super) fn start(conn: Connection, signal: Arc<Signal>) -> std::io::Result<Checkpointer> {
        let s = Arc::clone(&signal);
        let handle = std::thread::Builder::new()
            .name("c2c-store-ckpt".into())
            .spawn(move || run(&conn, &s))?;
        Ok(Checkpointer {
            signal,
            handle: Some(handle),
        })
    }

    /// Stops the thread, waiting for it up to `deadline`; false if it did
    /// not end in time.
    pub(super) fn stop(&mut self, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        lock(&self.signal.state).stop = true;
        self.signal.cv.notify_all();
        self.handle = self.handle.take().and_then(|h| join_until(h, until));
        self.handle.is_none()
    }
}

/// Joins `h` if it ends by `until`; else gives it back.
pub(super) fn join_until(h: JoinHandle<()>, until: Instant) -> Option<JoinHandle<()>> {
    while !h.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    if h.is_finished() {
        let _ = h.join();
        None
    } else {
        Some(h)
    }
}

/// Runs a round whenever enough commits were made (or some, and a second
/// went by), until stopped.
fn run(conn: &Connection, signal: &Signal) {
    let mut s = lock(&signal.state);
    loop {
        let since = Instant::now();
        while !s.stop && s.commits < COMMITS_PER_ROUND {
            let left = ROUND_AT_LEAST_EVERY.saturating_sub(since.elapsed());
            if left.is_zero() && s.commits > 0 {
                break;
            }
            let wait = if left.is_zero() {
                ROUND_AT_LEAST_EVERY
            } else {
                left
            };
            s = signal
                .cv
                .wait_timeout(s, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if s.stop {
            return;
        }
        s.commits = 0;
        drop(s);
        // Errors (SQLITE_BUSY) leave the WAL to the next round; the
        // writer's own auto-checkpoint is the backstop.
        let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
        s = lock(&signal.state);
        s.finish = true;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
