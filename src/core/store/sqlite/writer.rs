//! The writer thread and its group commit: every queued group in one
//! transaction, whoever waits woken first, then the callbacks in order.

use crate::core::metrics::Histogram;
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, TransactionBehavior};
use uuid::Uuid;

use super::checkpointer::Signal;
use super::rows::{record_values, unix_ms};
use crate::core::config::StoreSync;
use crate::core::store::backend::{Committed, StoreError};
use crate::core::store::records::Write;

/// Most write groups waiting for the writer at once; more are refused.
pub const MAX_QUEUED: usize = 200_000;

/// Longest a commit that nobody waits for is held back for more writes.
const LINGER: Duration = Duration::from_millis(2);
/// Groups after which such a commit goes at once.
const LINGER_MAX: usize = 4096;

/// How often the writer forgets expired keys and ended calls past retention.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(30);

/// Options of [`SqliteStore::open`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long ended calls stay readable.
    pub call_retention: Duration,
    /// What a commit survives (SQLite's `synchronous`).
    pub sync: StoreSync,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            call_retention: Duration::from_secs(7 * 24 * 3600),
            sync: StoreSync::Full,
        }
    }
}

/// Where a waiting caller learns the fate of its writes.
pub(super) struct Completion {
    pub(super) result: Mutex<Option<Result<(), StoreError>>>,
    pub(super) cv: Condvar,
}

impl Completion {
    pub(super) fn new() -> Arc<Completion> {
        Arc::new(Completion {
            result: Mutex::new(None),
            cv: Condvar::new(),
        })
    }

    pub(super) fn set(&self, r: Result<(), StoreError>) {
        *lock(&self.result) = Some(r);
        self.cv.notify_all();
    }

    pub(super) fn wait(&self, timeout: Duration) -> Result<(), StoreError> {
        let until = Instant::now() + timeout;
        let mut g = lock(&self.result);
        loop {
            if let Some(r) = g.take() {
                return r;
            }
            let now = Instant::now();
            if now >= until {
                return Err(StoreError::Timeout);
            }
            g = self
                .cv
                .wait_timeout(g, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

pub(super) struct Group {
    pub(super) writes: Vec<Write>,
    pub(super) done: Option<Arc<Completion>>,
    pub(super) then: Option<Committed>,
}

#[derive(Default)]
pub(super) struct Queue {
    pub(super) groups: VecDeque<Group>,
    pub(super) closed: bool,
    /// Someone waits on a queued group.
    pub(super) waited: bool,
}

pub(super) struct Shared {
    pub(super) queue: Mutex<Queue>,
    pub(super) wake: Condvar,
    /// Tells the checkpoint thread of each commit.
    pub(super) checkpoints: Arc<Signal>,
    /// Commits made, and groups they carried (for status and benches).
    pub(super) commits: AtomicU64,
    pub(super) groups: AtomicU64,
    /// Seconds each commit took (its transaction, and the sync).
    pub(super) commit_seconds: Histogram,
}

/// The writer thread: takes every queued group, commits them together.
pub(super) fn writer(mut conn: Connection, shared: Arc<Shared>, options: SqliteOptions) {
    let mut last_housekeeping = Instant::now();
    loop {
        let (groups, closing) = {
            let mut q = lock(&shared.queue);
            while q.groups.is_empty() && !q.closed {
                let waited = shared
                    .wake
                    .wait_timeout(q, HOUSEKEEPING_EVERY)
                    .unwrap_or_else(|e| e.into_inner());
                q = waited.0;
                if waited.1.timed_out() {
                    break;
                }
            }
            // Nobody waits on what is queued (events, removals): let more
            // gather for a moment, so that a caller who does wait (a 202)
            // finds the writer ready rather than in the middle of an fsync,
            // and shares that fsync with them.
            let until = Instant::now() + LINGER;
            while !q.waited && !q.closed && !q.groups.is_empty() && q.groups.len() < LINGER_MAX {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                q = shared
                    .wake
                    .wait_timeout(q, until - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            q.waited = false;
            (std::mem::take(&mut q.groups), q.closed)
        };
        if last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
            last_housekeeping = Instant::now();
            let _ = housekeeping(&conn, &options);
        }
        if !groups.is_empty() {
            commit(&mut conn, &shared, groups);
        }
        if closing && lock(&shared.queue).groups.is_empty() {
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
            return;
        }
    }
}

fn commit(conn: &mut Connection, shared: &Shared, groups: VecDeque<Group>) {
    let n = groups.len();
    // First all at once (no savepoints; a call's snapshot that a later one
    // in this commit replaces is not written): one failing write undoes the
    // whole transaction, which is then done again group by group.
    let began = Instant::now();
    let (outcome, results) = match commit_all(conn, &groups) {
        Ok(()) => (Ok(()), vec![Ok(()); n]),
        Err(_) if n > 1 => commit_each(conn, &groups),
        Err(e) => (Err(e), Vec::new()),
    };
    shared.commit_seconds.observe_duration(began.elapsed());
    shared.commits.fetch_add(1, Ordering::Relaxed);
    shared.groups.fetch_add(n as u64, Ordering::Relaxed);
    let finish_checkpoint = shared.checkpoints.committed();
    let result = |i: usize| match &outcome {
        Ok(()) => results.get(i).cloned().unwrap_or(Ok(())),
        Err(e) => Err(StoreError::Db(e.to_string())),
    };
    // Whoever waits (a 202) first, then the callbacks, in commit order.
    for (i, g) in groups.iter().enumerate() {
        if let Some(done) = &g.done {
            done.set(result(i));
        }
    }
    for (i, g) in groups.into_iter().enumerate() {
        if let Some(then) = g.then {
            // A panic there must not take the writer (and every later
            // commit) with it.
            let r = result(i);
            let _ = catch_unwind(AssertUnwindSafe(|| then(r)));
        }
    }
    if finish_checkpoint {
        // The checkpoint thread copied the rest already: this is short.
        let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
    }
}

/// The call a write puts a whole snapshot of, if it does.
fn snapshot_of(w: &Write) -> Option<Uuid> {
    match w {
        Write::CallOpen(uuid, _) | Write::CallEnded(uuid, _, _) => Some(*uuid),
        _ => None,
    }
}

/// Every group in one transaction; a snapshot that a later one of the same
/// call replaces within it is skipped (the commit is atomic: nobody could
/// ever read it).
fn commit_all(conn: &mut Connection, groups: &VecDeque<Group>) -> rusqlite::Result<()> {
    let writes = || groups.iter().flat_map(|g| g.writes.iter()).enumerate();
    let mut last: HashMap<Uuid, usize> = HashMap::new();
    for (i, w) in writes() {
        if let Some(uuid) = snapshot_of(w) {
            last.insert(uuid, i);
        }
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (i, w) in writes() {
        if snapshot_of(w).is_some_and(|uuid| last.get(&uuid) != Some(&i)) {
            continue;
        }
        apply(&tx, w)?;
    }
    tx.commit()
}

/// Each group in a savepoint of one transaction: a group whose writes fail
/// is undone alone and told so.
fn commit_each(
    conn: &mut Connection,
    groups: &VecDeque<Group>,
) -> (rusqlite::Result<()>, Vec<Result<(), StoreError>>) {
    let mut results: Vec<Result<(), StoreError>> = Vec::with_capacity(groups.len());
    let outcome = (|| -> rusqlite::Result<()> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for g in groups {
            let mut sp = tx.savepoint()?;
            match g.writes.iter().try_for_each(|w| apply(&sp, w)) {
                Ok(()) => {
                    sp.commit()?;
                    results.push(Ok(()));
                }
                Err(e) => {
                    sp.rollback()?;
                    drop(sp);
                    results.push(Err(StoreError::Db(e.to_string())));
                }
            }
        }
        tx.commit()
    })();
    (outcome, results)
}

fn apply(c: &Connection, w: &Write) -> rusqlite::Result<()> {
    match w {
        Write::SpoolPut(r) => {
            c.prepare_cached(
                "INSERT OR REPLACE INTO spool
                 (id, call_uuid, seq, type, token, created_us, since_us, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params_from_iter(record_values(r)))?;
        }
        Write::SpoolRemove(id) => {
            c.prepare_cached("DELETE FROM spool WHERE id = ?1")?
                .execute([id])?;
        }
        Write::DeadPut(d) => {
            let r = &d.record;
            c.prepare_cached(
                "INSERT OR REPLACE INTO dead
                 (id, call_uuid, seq, type, token, created_us, since_us, body,
                  attempts, last_error, dead_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params_from_iter(record_values(r).into_iter().chain([
                SqlValue::Integer(d.attempts.into()),
                SqlValue::Text(d.last_error.clone()),
                SqlValue::Integer(unix_ms(d.dead_at) as i64),
            ])))?;
            c.prepare_cached("DELETE FROM spool WHERE id = ?1")?
                .execute([&r.id])?;
        }
        Write::DeadRemove(id) => {
            c.prepare_cached("DELETE FROM dead WHERE id = ?1")?
                .execute([id])?;
        }
        Write::IdempotencyPut(k) => {
            let headers = serde_json::to_string(&k.headers).unwrap_or_else(|_| "[]".into());
            c.prepare_cached(
                "INSERT OR REPLACE INTO idempotency
                 (token, key, fingerprint, status, headers, body, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                k.token,
                k.key,
                &k.fingerprint[..],
                k.status,
                headers,
                k.body,
                unix_ms(k.expires) as i64
            ])?;
        }
        Write::CallOpen(uuid, snapshot) => {
            let uuid = uuid.to_string();
            // An open call's later snapshots touch its row alone (no index
            // has `snapshot` in it); a new or reopened call goes the long way.
            let updated = c
                .prepare_cached(
                    "UPDATE calls SET snapshot = ?2 WHERE call_uuid = ?1 AND ended_ms IS NULL",
                )?
                .execute(params![uuid, snapshot])?;
            if updated == 0 {
                c.prepare_cached(
                    "INSERT INTO calls (call_uuid, snapshot, ended_ms) VALUES (?1, ?2, NULL)
                     ON CONFLICT (call_uuid) DO UPDATE
                     SET snapshot = excluded.snapshot, ended_ms = NULL",
                )?
                .execute(params![uuid, snapshot])?;
            }
        }
        Write::CallEnded(uuid, snapshot, at) => {
            c.prepare_cached(
                "INSERT INTO calls (call_uuid, snapshot, ended_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (call_uuid) DO UPDATE
                 SET snapshot = excluded.snapshot, ended_ms = excluded.ended_ms",
            )?
            .execute(params![uuid.to_string(), snapshot, unix_ms(*at) as i64])?;
        }
        Write::StickyPut {
            to_phone,
            number,
            expires,
        } => {
            c.prepare_cached(
                "INSERT OR REPLACE INTO sticky (to_phone, number, expires_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![to_phone, number, unix_ms(*expires) as i64])?;
        }
        Write::CallClosed(uuid, at) => {
            c.prepare_cached("UPDATE calls SET ended_ms = ?2 WHERE call_uuid = ?1")?
                .execute(params![uuid.to_string(), unix_ms(*at) as i64])?;
        }
    }
    Ok(())
}

fn housekeeping(c: &Connection, options: &SqliteOptions) -> rusqlite::Result<()> {
    let now = unix_ms(SystemTime::now()) as i64;
    let keep_from = now - options.call_retention.as_millis() as i64;
    c.execute("DELETE FROM idempotency WHERE expires_ms <= ?1", [now])?;
    c.execute("DELETE FROM sticky WHERE expires_ms <= ?1", [now])?;
    c.execute(
        "DELETE FROM calls WHERE ended_ms IS NOT NULL AND ended_ms < ?1",
        [keep_from],
    )?;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
