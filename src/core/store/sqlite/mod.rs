//! The store on one switch: SQLite (WAL, `synchronous=FULL`), one writer
//! thread doing group commit.
//!
//! Callers hand their writes to the writer's queue (bounded: a full queue is
//! refused, never dropped) and wait on a completion ([`writer`]). The writer
//! takes everything queued at once, applies each caller's writes in one
//! transaction, commits (one fsync of the WAL for the whole group) and then
//! wakes every caller of the group. While it commits, the next group
//! gathers. Reads ([`reads`]) go through a second connection (WAL readers see
//! what is committed and never block the writer). [`schema`] opens the
//! database and keeps its tables current; [`rows`] maps records to rows.
//!
//! Waiting uses a `Mutex` + `Condvar` only (no channel receive): a FreeSWITCH
//! thread (fs_cli `c2c`) may wait on a commit, and must not be left with a
//! thread-local destructor of ours.

mod checkpointer;
mod reads;
mod rows;
mod schema;
mod writer;

use crate::core::metrics::histogram::HistogramSnapshot;
use crate::core::metrics::{buckets, Histogram};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use uuid::Uuid;

use self::checkpointer::{join_until, Checkpointer, Signal};
use self::schema::{connect, SCHEMA};
use self::writer::{writer, Completion, Group, Queue, Shared};
use super::backend::{Committed, Store, StoreError};
use super::records::{IdempotencyRecord, JournalEntry, SpoolUsage, Write};
use super::spool::{DeadLetter, SpoolRecord};

pub use self::writer::{SqliteOptions, MAX_QUEUED};

/// The database's file name inside the data directory.
pub const DB_FILE: &str = "zorio_c2c.db";

/// SQLite behind the [`Store`] trait.
pub struct SqliteStore {
    path: PathBuf,
    shared: Arc<Shared>,
    reader: Mutex<Connection>,
    writer: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<Checkpointer>>,
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
            commit_seconds: Histogram::new(&buckets::STORE_COMMIT_SECONDS),
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
        self.read(reads::spool_all)
    }

    fn spool_usage(&self) -> Result<SpoolUsage, StoreError> {
        self.read(reads::spool_usage)
    }

    fn dead_list(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.read(reads::dead_list)
    }

    fn dead_get(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        self.read(|c| reads::dead_get(c, id))
    }

    fn dead_len(&self) -> Result<u64, StoreError> {
        self.read(reads::dead_len)
    }

    fn idempotency_get(
        &self,
        token: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.read(|c| reads::idempotency_get(c, token, key))
    }

    fn sticky_get(&self, to_phone: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| reads::sticky_get(c, to_phone))
    }

    fn calls_open(&self) -> Result<Vec<JournalEntry>, StoreError> {
        self.read(reads::calls_open)
    }

    fn call_get(&self, call_uuid: Uuid) -> Result<Option<JournalEntry>, StoreError> {
        self.read(|c| reads::call_get(c, call_uuid))
    }

    fn commit_seconds(&self) -> Option<HistogramSnapshot> {
        Some(self.shared.commit_seconds.snapshot())
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
