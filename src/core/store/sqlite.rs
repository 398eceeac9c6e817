//! The store on one switch: SQLite (WAL, `synchronous=FULL`), one writer
//! thread doing group commit.
//!
//! Callers hand their writes to the writer's queue (bounded: a full queue is
//! refused, never dropped) and wait on a [`Completion`]. The writer takes
//! everything queued at once, applies each caller's writes in a savepoint of
//! one transaction, commits (one fsync of the WAL for the whole group) and
//! then wakes every caller of the group. While it commits, the next group
//! gathers. Reads go through a second connection (WAL readers see what is
//! committed and never block the writer).
//!
//! Waiting uses a `Mutex` + `Condvar` only (no channel receive): a FreeSWITCH
//! thread (fs_cli `c2c`) may wait on a commit, and must not be left with a
//! thread-local destructor of ours.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};
use uuid::Uuid;

use super::checkpointer::{join_until, Checkpointer, Signal};
use super::{
    Committed, IdempotencyRecord, JournalEntry, SpoolUsage, Store, StoreError, Write, ROW_OVERHEAD,
};
use crate::core::config::StoreSync;
use crate::core::webhooks::dead::DeadLetter;
use crate::core::webhooks::spool::SpoolRecord;

/// The database's file name inside the data directory.
pub const DB_FILE: &str = "zorio_c2c.db";

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
struct Completion {
    result: Mutex<Option<Result<(), StoreError>>>,
    cv: Condvar,
}

impl Completion {
    fn new() -> Arc<Completion> {
        Arc::new(Completion {
            result: Mutex::new(None),
            cv: Condvar::new(),
        })
    }

    fn set(&self, r: Result<(), StoreError>) {
        *lock(&self.result) = Some(r);
        self.cv.notify_all();
    }

    fn wait(&self, timeout: Duration) -> Result<(), StoreError> {
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

struct Group {
    writes: Vec<Write>,
    done: Option<Arc<Completion>>,
    then: Option<Committed>,
}

#[derive(Default)]
struct Queue {
    groups: VecDeque<Group>,
    closed: bool,
    /// Someone waits on a queued group.
    waited: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Tells the checkpoint thread of each commit.
    checkpoints: Arc<Signal>,
    /// Commits made, and groups they carried (for status and benches).
    commits: AtomicU64,
    groups: AtomicU64,
}

/// SQLite behind the [`Store`] trait.
pub struct SqliteStore {
    path: PathBuf,
    shared: Arc<Shared>,
    reader: Mutex<Connection>,
    writer: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<Checkpointer>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spool (
    id TEXT PRIMARY KEY,
    call_uuid TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    token TEXT,
    created_us INTEGER NOT NULL,
    since_us INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead (
    id TEXT PRIMARY KEY,
    call_uuid TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    token TEXT,
    created_us INTEGER NOT NULL,
    since_us INTEGER NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    dead_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    token TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    status INTEGER NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (token, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_expires ON idempotency (expires_ms);
CREATE TABLE IF NOT EXISTS calls (
    call_uuid TEXT PRIMARY KEY,
    snapshot TEXT NOT NULL,
    ended_ms INTEGER
);
DROP INDEX IF EXISTS calls_ended;
CREATE INDEX IF NOT EXISTS calls_open ON calls (call_uuid) WHERE ended_ms IS NULL;
CREATE INDEX IF NOT EXISTS calls_ended_at ON calls (ended_ms) WHERE ended_ms IS NOT NULL;
";

fn connect(path: &Path, sync: StoreSync) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // WAL: readers never block the writer; FULL: every commit is fsync'd.
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode is {mode}, not wal"
        )));
    }
    // Checkpoints (copying the WAL into the database, with an fsync of its
    // own) run on their own thread (checkpointer.rs); the writer makes one
    // itself only should the WAL ever pass 32,768 pages (128 MiB, far over
    // a second of commits at 32 clients). The WAL is cut back to 64 MiB
    // when it starts over.
    conn.execute_batch(&format!(
        "PRAGMA synchronous={}; PRAGMA foreign_keys=OFF; \
         PRAGMA wal_autocheckpoint=32768; PRAGMA journal_size_limit=67108864;",
        sync.pragma()
    ))?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating) `<dir>/zorio_c2c.db` and starts the writer thread.
    pub fn open_dir(dir: &Path, options: SqliteOptions) -> Result<Arc<SqliteStore>, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Db(format!("{}: {e}", dir.display())))?;
        SqliteStore::open(&dir.join(DB_FILE), options)
    }

    /// Opens (creating) the database at `path` and starts the writer thread.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<Arc<SqliteStore>, StoreError> {
        let db = |e: rusqlite::Error| StoreError::Db(format!("{}: {e}", path.display()));
        let wconn = connect(path, options.sync).map_err(db)?;
        wconn.execute_batch(SCHEMA).map_err(db)?;
        let reader = connect(path, options.sync).map_err(db)?;
        let checkpoints = Arc::new(Signal::default());
        let checkpointer = Checkpointer::start(
            connect(path, options.sync).map_err(db)?,
            Arc::clone(&checkpoints),
        )
        .map_err(|e| StoreError::Db(format!("cannot start the store's checkpointer: {e}")))?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            checkpoints,
            commits: AtomicU64::new(0),
            groups: AtomicU64::new(0),
        });
        let sh = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("c2c-store".into())
            .spawn(move || writer(wconn, sh, options))
            .map_err(|e| StoreError::Db(format!("cannot start the store's writer: {e}")))?;
        Ok(Arc::new(SqliteStore {
            path: path.to_path_buf(),
            shared,
            reader: Mutex::new(reader),
            writer: Mutex::new(Some(handle)),
            checkpointer: Mutex::new(Some(checkpointer)),
        }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// (commits, write groups committed) so far: groups / commits is the
    /// group-commit factor.
    pub fn commit_stats(&self) -> (u64, u64) {
        (
            self.shared.commits.load(Ordering::Relaxed),
            self.shared.groups.load(Ordering::Relaxed),
        )
    }

    fn submit(
        &self,
        writes: Vec<Write>,
        done: Option<Arc<Completion>>,
        then: Option<Committed>,
    ) -> Result<(), StoreError> {
        let mut q = lock(&self.shared.queue);
        if q.closed {
            return Err(StoreError::Closed);
        }
        if q.groups.len() >= MAX_QUEUED {
            return Err(StoreError::Overloaded);
        }
        q.waited |= done.is_some();
        q.groups.push_back(Group { writes, done, then });
        drop(q);
        self.shared.wake.notify_one();
        Ok(())
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        f(&lock(&self.reader)).map_err(|e| StoreError::Db(e.to_string()))
    }
}

impl Store for SqliteStore {
    fn write(&self, writes: Vec<Write>, timeout: Duration) -> Result<(), StoreError> {
        let done = Completion::new();
        self.submit(writes, Some(Arc::clone(&done)), None)?;
        done.wait(timeout)
    }

    fn forget(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.submit(writes, None, None)
    }

    fn write_then(&self, writes: Vec<Write>, then: Committed) -> Result<(), StoreError> {
        self.submit(writes, None, Some(then))
    }

    fn spool_all(&self) -> Result<Vec<SpoolRecord>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT id, call_uuid, seq, type, token, created_us, since_us, body FROM spool",
            )?;
            let rows = st.query_map([], spool_row)?;
            Ok(rows.filter_map(|r| r.ok().flatten()).collect())
        })
    }

    fn spool_usage(&self) -> Result<SpoolUsage, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(length(body)), 0) FROM spool",
                [],
                |r| {
                    let (n, b): (i64, i64) = (r.get(0)?, r.get(1)?);
                    Ok(SpoolUsage {
                        events: n as u64,
                        bytes: b as u64 + n as u64 * ROW_OVERHEAD,
                    })
                },
            )
        })
    }

    fn dead_list(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT id, call_uuid, seq, type, token, created_us, since_us, body,
                        attempts, last_error, dead_ms FROM dead ORDER BY dead_ms, call_uuid, seq",
            )?;
            let rows = st.query_map([], dead_row)?;
            Ok(rows.filter_map(|r| r.ok().flatten()).collect())
        })
    }

    fn dead_get(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT id, call_uuid, seq, type, token, created_us, since_us, body,
                        attempts, last_error, dead_ms FROM dead WHERE id = ?1",
                [id],
                dead_row,
            )
            .optional()
            .map(Option::flatten)
        })
    }

    fn dead_len(&self) -> Result<u64, StoreError> {
        self.read(|c| c.query_row("SELECT COUNT(*) FROM dead", [], |r| r.get::<_, i64>(0)))
            .map(|n| n as u64)
    }

    fn idempotency_get(
        &self,
        token: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let now = unix_ms(SystemTime::now()) as i64;
        self.read(|c| {
            c.prepare_cached(
                "SELECT fingerprint, status, headers, body, expires_ms FROM idempotency
                 WHERE token = ?1 AND key = ?2 AND expires_ms > ?3",
            )?
            .query_row(params![token, key, now], |r| {
                let fp: Vec<u8> = r.get(0)?;
                let headers: String = r.get(2)?;
                let expires: i64 = r.get(4)?;
                Ok(IdempotencyRecord {
                    token: token.to_string(),
                    key: key.to_string(),
                    fingerprint: fp.try_into().unwrap_or([0; 32]),
                    status: r.get(1)?,
                    headers: serde_json::from_str(&headers).unwrap_or_default(),
                    body: r.get(3)?,
                    expires: from_ms(expires),
                })
            })
            .optional()
        })
    }

    fn calls_open(&self) -> Result<Vec<JournalEntry>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT call_uuid, snapshot, ended_ms FROM calls WHERE ended_ms IS NULL",
            )?;
            let rows = st.query_map([], journal_row)?;
            Ok(rows.filter_map(|r| r.ok().flatten()).collect())
        })
    }

    fn call_get(&self, call_uuid: Uuid) -> Result<Option<JournalEntry>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT call_uuid, snapshot, ended_ms FROM calls WHERE call_uuid = ?1",
            )?
            .query_row([call_uuid.to_string()], journal_row)
            .optional()
            .map(Option::flatten)
        })
    }

    fn close(&self, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        // The checkpoint thread first: the writer's last act is a checkpoint.
        let mut checkpointer = lock(&self.checkpointer);
        let checkpointer_ended = checkpointer.as_mut().is_none_or(|c| c.stop(deadline));
        if checkpointer_ended {
            *checkpointer = None;
        }
        drop(checkpointer);
        lock(&self.shared.queue).closed = true;
        self.shared.wake.notify_all();
        let Some(h) = lock(&self.writer).take() else {
            return checkpointer_ended;
        };
        join_until(h, until).is_none() && checkpointer_ended
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close(Duration::from_secs(5));
    }
}

/// The writer thread: takes every queued group, commits them together.
fn writer(mut conn: Connection, shared: Arc<Shared>, options: SqliteOptions) {
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
    let (outcome, results) = match commit_all(conn, &groups) {
        Ok(()) => (Ok(()), vec![Ok(()); n]),
        Err(_) if n > 1 => commit_each(conn, &groups),
        Err(e) => (Err(e), Vec::new()),
    };
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
        Write::CallClosed(uuid, at) => {
            c.prepare_cached("UPDATE calls SET ended_ms = ?2 WHERE call_uuid = ?1")?
                .execute(params![uuid.to_string(), unix_ms(*at) as i64])?;
        }
    }
    Ok(())
}

/// The columns a spooled event and a dead letter share, in table order.
fn record_values(r: &SpoolRecord) -> Vec<SqlValue> {
    vec![
        SqlValue::Text(r.id.clone()),
        SqlValue::Text(r.call_uuid.to_string()),
        SqlValue::Integer(r.seq.into()),
        SqlValue::Text(r.event_type.clone()),
        r.token.clone().map_or(SqlValue::Null, SqlValue::Text),
        SqlValue::Integer(unix_us(r.created_at) as i64),
        SqlValue::Integer(unix_us(r.since) as i64),
        SqlValue::Text(r.body.clone()),
    ]
}

fn housekeeping(c: &Connection, options: &SqliteOptions) -> rusqlite::Result<()> {
    let now = unix_ms(SystemTime::now()) as i64;
    let keep_from = now - options.call_retention.as_millis() as i64;
    c.execute("DELETE FROM idempotency WHERE expires_ms <= ?1", [now])?;
    c.execute(
        "DELETE FROM calls WHERE ended_ms IS NOT NULL AND ended_ms < ?1",
        [keep_from],
    )?;
    Ok(())
}

fn spool_row(r: &rusqlite::Row) -> rusqlite::Result<Option<SpoolRecord>> {
    let call: String = r.get(1)?;
    let Ok(call_uuid) = Uuid::parse_str(&call) else {
        return Ok(None);
    };
    Ok(Some(SpoolRecord {
        id: r.get(0)?,
        call_uuid,
        seq: r.get(2)?,
        event_type: r.get(3)?,
        token: r.get(4)?,
        created_at: from_us(r.get(5)?),
        since: from_us(r.get(6)?),
        body: r.get(7)?,
    }))
}

fn dead_row(r: &rusqlite::Row) -> rusqlite::Result<Option<DeadLetter>> {
    let Some(record) = spool_row(r)? else {
        return Ok(None);
    };
    Ok(Some(DeadLetter {
        record,
        attempts: r.get(8)?,
        last_error: r.get(9)?,
        dead_at: from_ms(r.get(10)?),
    }))
}

fn journal_row(r: &rusqlite::Row) -> rusqlite::Result<Option<JournalEntry>> {
    let call: String = r.get(0)?;
    let Ok(call_uuid) = Uuid::parse_str(&call) else {
        return Ok(None);
    };
    let ended: Option<i64> = r.get(2)?;
    Ok(Some(JournalEntry {
        call_uuid,
        snapshot: r.get(1)?,
        ended_at: ended.map(from_ms),
    }))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn unix_ms(t: SystemTime) -> u64 {
    unix_us(t) / 1000
}

fn from_us(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us.max(0) as u64)
}

fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::events::{self, CallEvent};
    use serde_json::json;

    fn temp(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("c2c-store-{tag}-{}", Uuid::new_v4().simple()))
    }

    fn record(seq: u32) -> SpoolRecord {
        SpoolRecord::from_event(&CallEvent::new(
            events::RINGING,
            Uuid::new_v4(),
            seq,
            Some("crm".into()),
            json!({"seq": seq}),
        ))
    }

    #[test]
    fn write_then_runs_in_order_after_the_commit_and_the_last_snapshot_stays() {
        let dir = temp("then");
        let store = SqliteStore::open_dir(&dir, SqliteOptions::default()).unwrap();
        let call = Uuid::new_v4();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for i in 0..20 {
            let w = if i < 19 {
                Write::CallOpen(call, format!("{{\"seq\":{i}}}"))
            } else {
                Write::CallEnded(call, "{\"seq\":19}".into(), from_ms(1_700_000_000_000))
            };
            let (seen, st) = (Arc::clone(&seen), Arc::clone(&store));
            let then: Committed = Box::new(move |r| {
                // Committed by now: a reader sees it.
                let entry = st.call_get(call).unwrap().unwrap();
                lock(&seen).push((i, r, entry.snapshot));
            });
            store.write_then(vec![w], then).unwrap();
        }
        // The writer holds writes nobody waits for a moment; then all go.
        let until = Instant::now() + Duration::from_secs(5);
        while lock(&seen).len() < 20 {
            assert!(Instant::now() < until, "callbacks not run");
            std::thread::sleep(Duration::from_millis(2));
        }
        let seen = lock(&seen).clone();
        let order: Vec<i32> = seen.iter().map(|(i, _, _)| *i).collect();
        assert_eq!(order, (0..20).collect::<Vec<_>>());
        assert!(seen.iter().all(|(_, r, _)| r.is_ok()));
        let (commits, groups) = store.commit_stats();
        assert_eq!(groups, 20);
        assert!(commits < 20, "{commits} commits: none shared");
        let entry = store.call_get(call).unwrap().unwrap();
        assert_eq!(entry.snapshot, "{\"seq\":19}");
        assert_eq!(entry.ended_at, Some(from_ms(1_700_000_000_000)));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_checkpoint_thread_copies_the_wal_and_it_starts_over() {
        let dir = temp("ckpt");
        let store = SqliteStore::open_dir(&dir, SqliteOptions::default()).unwrap();
        let file = |suffix: &str| {
            std::fs::metadata(dir.join(format!("{DB_FILE}{suffix}")))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        // 5,000 commits of a 2 KB snapshot each: over 40 MB through the WAL.
        let snapshot = format!("{{\"pad\":\"{}\"}}", "x".repeat(2_000));
        for _ in 0..5_000 {
            let w = Write::CallOpen(Uuid::new_v4(), snapshot.clone());
            store.write(vec![w], Duration::from_secs(5)).unwrap();
        }
        let until = Instant::now() + Duration::from_secs(5);
        while file("") < 4 << 20 {
            assert!(
                Instant::now() < until,
                "database {} bytes: not checkpointed",
                file("")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Without the WAL starting over it would hold every commit (the
        // writer's own checkpoint waits for 128 MiB).
        assert!(file("-wal") < 24 << 20, "WAL {} bytes", file("-wal"));
        assert!(store.close(Duration::from_secs(5)));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn writes_survive_reopen_and_groups_share_commits() {
        let dir = temp("reopen");
        let store = SqliteStore::open_dir(&dir, SqliteOptions::default()).unwrap();
        let records: Vec<SpoolRecord> = (1..=50).map(record).collect();
        std::thread::scope(|s| {
            for r in &records {
                let st = &store;
                s.spawn(move || {
                    st.write(vec![Write::SpoolPut(r.clone())], Duration::from_secs(5))
                        .unwrap()
                });
            }
        });
        let (commits, groups) = store.commit_stats();
        assert_eq!(groups, 50);
        assert!(commits <= 50);
        store
            .forget(vec![Write::SpoolRemove(records[0].id.clone())])
            .unwrap();
        let dead = DeadLetter {
            record: records[1].clone(),
            attempts: 3,
            last_error: "HTTP 503".into(),
            dead_at: from_ms(1_700_000_000_123),
        };
        let key = IdempotencyRecord {
            token: "crm".into(),
            key: "k1".into(),
            fingerprint: [7; 32],
            status: 202,
            headers: vec![("Location".into(), "/x".into())],
            body: b"{}".to_vec(),
            expires: SystemTime::now() + Duration::from_secs(60),
        };
        let call = Uuid::new_v4();
        store
            .write(
                vec![
                    Write::DeadPut(dead.clone()),
                    Write::IdempotencyPut(key.clone()),
                    Write::CallOpen(call, "{\"a\":1}".into()),
                ],
                Duration::from_secs(5),
            )
            .unwrap();
        assert!(store.close(Duration::from_secs(5)));
        assert_eq!(
            store.write(vec![], Duration::from_secs(1)),
            Err(StoreError::Closed)
        );
        drop(store);

        let store = SqliteStore::open_dir(&dir, SqliteOptions::default()).unwrap();
        let mut back = store.spool_all().unwrap();
        back.sort_by_key(|r| r.seq);
        assert_eq!(back, records[2..].to_vec());
        assert_eq!(store.spool_usage().unwrap().events, 48);
        assert_eq!(store.dead_list().unwrap(), vec![dead.clone()]);
        assert_eq!(store.dead_get(&dead.record.id).unwrap(), Some(dead));
        let mut got = store.idempotency_get("crm", "k1").unwrap().unwrap();
        got.expires = key.expires;
        assert_eq!(got.headers, key.headers);
        assert_eq!(got.fingerprint, key.fingerprint);
        assert_eq!(store.idempotency_get("other", "k1").unwrap(), None);
        let open = store.calls_open().unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].call_uuid, call);
        store
            .write(
                vec![Write::CallEnded(call, "{}".into(), SystemTime::now())],
                Duration::from_secs(5),
            )
            .unwrap();
        assert!(store.calls_open().unwrap().is_empty());
        assert!(store.call_get(call).unwrap().unwrap().ended_at.is_some());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
