//! The dead-letter store: events given up after the retry horizon, kept on
//! disk with why they failed, until an operator replays them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::spool::{is_safe_id, unix_ms, write_durably, SpoolRecord};
use crate::core::time::rfc3339;

/// An event that was given up.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub record: SpoolRecord,
    /// Attempts made before giving up.
    pub attempts: u32,
    /// The last failure (`HTTP 503`, `timeout`, `no destination`…).
    pub last_error: String,
    pub dead_at: SystemTime,
}

impl DeadLetter {
    /// As stored on disk.
    fn to_json(&self) -> Value {
        json!({
            "record": self.record.to_json(),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "dead_unix_ms": unix_ms(self.dead_at),
        })
    }

    fn from_json(v: &Value) -> Option<DeadLetter> {
        Some(DeadLetter {
            record: SpoolRecord::from_json(&v["record"])?,
            attempts: u32::try_from(v["attempts"].as_u64()?).ok()?,
            last_error: v["last_error"].as_str()?.to_string(),
            dead_at: UNIX_EPOCH + Duration::from_millis(v["dead_unix_ms"].as_u64()?),
        })
    }

    /// A summary for `c2c webhooks dead` and status views (no body).
    pub fn summary_json(&self) -> Value {
        json!({
            "id": self.record.id,
            "type": self.record.event_type,
            "call_uuid": self.record.call_uuid.to_string(),
            "seq": self.record.seq,
            "token": self.record.token,
            "created_at": rfc3339(self.record.created_at),
            "dead_at": rfc3339(self.dead_at),
            "attempts": self.attempts,
            "last_error": self.last_error,
        })
    }
}

/// The `<root>/dead` directory, holding at most `capacity` dead letters.
pub struct DeadStore {
    dir: PathBuf,
    capacity: usize,
}

impl DeadStore {
    /// Opens (creating) `<root>/dead`.
    pub fn open(root: &Path, capacity: usize) -> io::Result<DeadStore> {
        let dir = root.join("dead");
        fs::create_dir_all(&dir)?;
        Ok(DeadStore {
            dir,
            capacity: capacity.max(1),
        })
    }

    /// When the store is full, discards the oldest dead letters until one
    /// more fits, and returns them (for the caller to report loudly).
    pub fn make_room(&self) -> Vec<DeadLetter> {
        let len = self.len();
        if len < self.capacity {
            return Vec::new();
        }
        let evicted: Vec<DeadLetter> = self
            .list()
            .into_iter()
            .take(len + 1 - self.capacity)
            .collect();
        for d in &evicted {
            let _ = self.remove(&d.record.id);
        }
        evicted
    }

    /// Stores a dead letter durably.
    pub fn put(&self, dead: &DeadLetter) -> io::Result<()> {
        let name = format!("{}.json", dead.record.id);
        write_durably(&self.dir, &name, dead.to_json().to_string().as_bytes())
    }

    /// Every dead letter, oldest death first (unreadable files are skipped).
    pub fn list(&self) -> Vec<DeadLetter> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut all: Vec<DeadLetter> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| read(&p))
            .collect();
        all.sort_by_key(|d| (d.dead_at, d.record.call_uuid, d.record.seq));
        all
    }

    /// One dead letter by event id.
    pub fn get(&self, id: &str) -> Option<DeadLetter> {
        if !is_safe_id(id) {
            return None;
        }
        read(&self.dir.join(format!("{id}.json")))
    }

    /// Forgets a dead letter (after it was put back in the spool).
    pub fn remove(&self, id: &str) -> io::Result<()> {
        if !is_safe_id(id) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad event id"));
        }
        match fs::remove_file(self.dir.join(format!("{id}.json"))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// How many dead letters there are.
    pub fn len(&self) -> usize {
        fs::read_dir(&self.dir)
            .map(|it| {
                it.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn read(path: &Path) -> Option<DeadLetter> {
    let bytes = fs::read(path).ok()?;
    DeadLetter::from_json(&serde_json::from_slice(&bytes).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::events::{self, CallEvent};
    use uuid::Uuid;

    #[test]
    fn stores_lists_gets_and_removes() {
        let root = std::env::temp_dir().join(format!("c2c-dead-{}", Uuid::new_v4().simple()));
        let store = DeadStore::open(&root, 10).unwrap();
        let e = CallEvent::new(events::HANGUP, Uuid::new_v4(), 3, None, json!({}));
        let dead = DeadLetter {
            record: SpoolRecord::from_event(&e),
            attempts: 4,
            last_error: "HTTP 503".into(),
            dead_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        };
        store.put(&dead).unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(store.list(), vec![dead.clone()]);
        assert_eq!(store.get(&e.id), Some(dead.clone()));
        assert_eq!(store.get("../pending/x"), None);
        assert_eq!(dead.summary_json()["attempts"], 4);
        store.remove(&e.id).unwrap();
        assert!(store.is_empty());
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn a_full_store_gives_up_its_oldest() {
        let root = std::env::temp_dir().join(format!("c2c-dead-{}", Uuid::new_v4().simple()));
        let store = DeadStore::open(&root, 2).unwrap();
        let mut ids = Vec::new();
        for i in 0..3u64 {
            let e = CallEvent::new(events::HANGUP, Uuid::new_v4(), 1, None, json!({}));
            ids.push(e.id.clone());
            let evicted = store.make_room();
            assert_eq!(evicted.len(), usize::from(i == 2));
            store
                .put(&DeadLetter {
                    record: SpoolRecord::from_event(&e),
                    attempts: 1,
                    last_error: "HTTP 500".into(),
                    dead_at: UNIX_EPOCH + Duration::from_secs(1_000 + i),
                })
                .unwrap();
        }
        let left: Vec<String> = store.list().into_iter().map(|d| d.record.id).collect();
        assert_eq!(left, ids[1..].to_vec());
        let _ = fs::remove_dir_all(&root);
    }
}
