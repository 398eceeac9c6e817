//! The spool: every event waiting for delivery is a file on disk, written and
//! fsync'd before `emit` returns, removed once delivered, and read back in
//! per-call order when the service starts again after a stop or a crash.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::core::events::CallEvent;

/// One event as spooled: the exact body to POST and what orders and routes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolRecord {
    /// The event id, also `webhook-id`.
    pub id: String,
    pub event_type: String,
    pub call_uuid: Uuid,
    pub seq: u32,
    /// The API token that placed the call (chooses the destination).
    pub token: Option<String>,
    /// When the event happened.
    pub created_at: SystemTime,
    /// When the current delivery effort began (the give-up horizon counts
    /// from here): `created_at`, or the time of the last replay.
    pub since: SystemTime,
    /// The JSON envelope, serialised once so every attempt sends the same bytes.
    pub body: String,
}

impl SpoolRecord {
    /// The record of an event.
    pub fn from_event(event: &CallEvent) -> SpoolRecord {
        // Kept to the microsecond, as on disk, so a record reads back equal.
        let created_at = UNIX_EPOCH + Duration::from_micros(unix_us(event.created_at));
        SpoolRecord {
            id: event.id.clone(),
            event_type: event.event_type.to_string(),
            call_uuid: event.call_uuid,
            seq: event.seq,
            token: event.token.clone(),
            created_at,
            since: created_at,
            body: event.envelope().to_string(),
        }
    }

    /// The record as stored on disk.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.event_type,
            "call_uuid": self.call_uuid.to_string(),
            "seq": self.seq,
            "token": self.token,
            "created_unix_us": unix_us(self.created_at),
            "since_unix_us": unix_us(self.since),
            "body": self.body,
        })
    }

    /// A record read back from disk (`None` if it is not one).
    pub fn from_json(v: &Value) -> Option<SpoolRecord> {
        let created_at = UNIX_EPOCH + Duration::from_micros(v["created_unix_us"].as_u64()?);
        let since = v["since_unix_us"]
            .as_u64()
            .map(|us| UNIX_EPOCH + Duration::from_micros(us))
            .unwrap_or(created_at);
        Some(SpoolRecord {
            id: v["id"].as_str().filter(|id| is_safe_id(id))?.to_string(),
            event_type: v["type"].as_str()?.to_string(),
            call_uuid: Uuid::parse_str(v["call_uuid"].as_str()?).ok()?,
            seq: u32::try_from(v["seq"].as_u64()?).ok()?,
            token: v["token"].as_str().map(str::to_string),
            created_at,
            since,
            body: v["body"].as_str()?.to_string(),
        })
    }
}

/// Why an event could not be spooled.
#[derive(Debug)]
pub enum SpoolError {
    /// `max_spool_events` are already waiting.
    Full(usize),
    /// The disk said no.
    Io(io::Error),
}

impl std::fmt::Display for SpoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpoolError::Full(n) => write!(f, "spool full ({n} events waiting)"),
            SpoolError::Io(e) => write!(f, "spool write failed: {e}"),
        }
    }
}

/// The pending directory, bounded to `max` events.
pub struct Spool {
    dir: PathBuf,
    count: AtomicUsize,
    max: usize,
}

/// What [`Spool::open`] found on disk.
pub struct Recovered {
    /// Events to deliver: grouped per call (oldest call first), each call in seq order.
    pub records: Vec<SpoolRecord>,
    /// Files that could not be read, renamed to `*.corrupt` and left aside.
    pub corrupt: Vec<PathBuf>,
}

impl Spool {
    /// Opens (creating) `<root>/pending` and reads back what is waiting there.
    pub fn open(root: &Path, max: usize) -> io::Result<(Spool, Recovered)> {
        let dir = root.join("pending");
        fs::create_dir_all(&dir)?;
        let mut records = Vec::new();
        let mut corrupt = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if name.ends_with(".tmp") {
                // Half-written before a crash: its emit never returned.
                let _ = fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let parsed = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| SpoolRecord::from_json(&v));
            match parsed {
                Some(r) => records.push(r),
                None => {
                    let aside = path.with_extension("corrupt");
                    let _ = fs::rename(&path, &aside);
                    corrupt.push(aside);
                }
            }
        }
        let records = order_per_call(records);
        let spool = Spool {
            dir,
            count: AtomicUsize::new(records.len()),
            max,
        };
        Ok((spool, Recovered { records, corrupt }))
    }

    /// Writes a record durably (file and directory fsync'd), or refuses when full.
    pub fn put(&self, record: &SpoolRecord) -> Result<(), SpoolError> {
        if !is_safe_id(&record.id) {
            return Err(SpoolError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an event id must be [A-Za-z0-9_-]{1,100}",
            )));
        }
        let reserved = self
            .count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            });
        if let Err(n) = reserved {
            return Err(SpoolError::Full(n));
        }
        let bytes = record.to_json().to_string();
        write_durably(&self.dir, &format!("{}.json", record.id), bytes.as_bytes()).map_err(|e| {
            self.count.fetch_sub(1, Ordering::SeqCst);
            SpoolError::Io(e)
        })
    }

    /// Forgets a delivered (or dead-lettered) event.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(format!("{id}.json"))) {
            Ok(()) => {
                self.count.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Events waiting on disk.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.max
    }
}

/// Groups records per call, each call in seq order, calls by their oldest event.
pub fn order_per_call(records: Vec<SpoolRecord>) -> Vec<SpoolRecord> {
    let mut calls: HashMap<Uuid, Vec<SpoolRecord>> = HashMap::new();
    for r in records {
        calls.entry(r.call_uuid).or_default().push(r);
    }
    let mut groups: Vec<Vec<SpoolRecord>> = calls.into_values().collect();
    for g in &mut groups {
        g.sort_by_key(|r| r.seq);
    }
    groups.sort_by_key(|g| {
        let oldest = g.iter().map(|r| r.created_at).min().unwrap_or(UNIX_EPOCH);
        (oldest, g.first().map(|r| r.call_uuid))
    });
    groups.into_iter().flatten().collect()
}

/// Writes `dir/name` so that after a crash it is either whole or absent:
/// a temporary file, fsync'd, renamed into place, then the directory fsync'd.
pub(crate) fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// Event ids are used as file names: only `[A-Za-z0-9_-]`, 1 to 100 characters.
pub fn is_safe_id(id: &str) -> bool {
    (1..=100).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    unix_us(t) / 1000
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::events;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("c2c-spool-{tag}-{}", Uuid::new_v4().simple()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn event(call: Uuid, seq: u32) -> CallEvent {
        let mut e = CallEvent::new(events::RINGING, call, seq, Some("crm".into()), json!({}));
        std::thread::sleep(Duration::from_millis(2)); // distinct creation times
        e.created_at = SystemTime::now();
        e
    }

    #[test]
    fn survives_reopen_in_per_call_seq_order_and_stays_bounded() {
        let root = temp_dir("order");
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        {
            let (spool, rec) = Spool::open(&root, 4).unwrap();
            assert!(rec.records.is_empty());
            for e in [event(a, 1), event(b, 1), event(a, 2), event(b, 2)] {
                spool.put(&SpoolRecord::from_event(&e)).unwrap();
            }
            assert_eq!(spool.len(), 4);
            let extra = SpoolRecord::from_event(&event(a, 3));
            assert!(matches!(spool.put(&extra), Err(SpoolError::Full(4))));
        }
        fs::write(root.join("pending/.evt_x.json.tmp"), b"half").unwrap();
        fs::write(root.join("pending/evt_bad.json"), b"{not json").unwrap();
        let (spool, rec) = Spool::open(&root, 4).unwrap();
        assert_eq!(spool.len(), 4);
        assert_eq!(rec.corrupt.len(), 1);
        assert!(!root.join("pending/.evt_x.json.tmp").exists());
        let order: Vec<(Uuid, u32)> = rec.records.iter().map(|r| (r.call_uuid, r.seq)).collect();
        assert_eq!(order, vec![(a, 1), (a, 2), (b, 1), (b, 2)]);
        let first = &rec.records[0];
        assert_eq!(first.token.as_deref(), Some("crm"));
        let body: Value = serde_json::from_str(&first.body).unwrap();
        assert_eq!(body["id"], first.id.as_str());
        spool.remove(&first.id).unwrap();
        spool.remove(&first.id).unwrap();
        assert_eq!(spool.len(), 3);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn ids_that_could_escape_the_directory_are_refused() {
        assert!(is_safe_id("evt_0123abc"));
        assert!(!is_safe_id("../etc/passwd"));
        assert!(!is_safe_id(""));
        assert!(!is_safe_id("a/b"));
        let root = temp_dir("unsafe");
        let (spool, _) = Spool::open(&root, 10).unwrap();
        let mut r = SpoolRecord::from_event(&event(Uuid::new_v4(), 1));
        r.id = "../escape".into();
        assert!(matches!(spool.put(&r), Err(SpoolError::Io(_))));
        assert_eq!(spool.len(), 0);
        let _ = fs::remove_dir_all(&root);
    }
}
