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

    fn calls_open(&self) -> Result<Vec<JournalEntry>, StoreError> {
        self.read(reads::calls_open)
    }

    fn call_get(&self, call_uuid: Uuid) -> Result<Option<JournalEntry>, StoreError> {
        self.read(|c| reads::call_get(c, call_uuid))
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
mod tests {
    use super::rows::from_ms;
    use super::*;
    use crate::core::events::{self, CallEvent};
    use serde_json::json;
    use std::time::SystemTime;

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
