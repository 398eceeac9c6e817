//! The spool's records: every event waiting for delivery is a row of the
//! durable store ([`crate::core::store`]), committed before `emit` returns,
//! removed once delivered, and read back in per-call order when the service
//! starts again after a stop or a crash.
//!
//! Before the store, the spool was a directory of files (`<dir>/pending/*.json`,
//! `<dir>/dead/*.json`); [`import_files`] takes such a spool over on the first
//! start: imported into the store in one commit, then the files removed.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use uuid::Uuid;

use crate::core::events::CallEvent;
use crate::core::store::{
    unix_us, DeadLetter, SpoolRecord, Store, StoreError, Write, COMMIT_TIMEOUT,
};

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

/// What [`import_files`] took over.
#[derive(Debug, Default)]
pub struct Imported {
    pub pending: usize,
    pub dead: usize,
    /// Files that could not be read, renamed to `*.corrupt` and left aside.
    pub corrupt: Vec<PathBuf>,
}

/// Takes over a file spool left in `root` (`pending/` and `dead/`): every
/// readable event goes into `store` in one commit, and only then are the
/// files removed (a crash in between imports them again: same ids, no loss).
pub fn import_files(root: &Path, store: &dyn Store) -> Result<Imported, StoreError> {
    let mut imported = Imported::default();
    let mut writes = Vec::new();
    let mut files = Vec::new();
    for (sub, dead) in [("pending", false), ("dead", true)] {
        let Ok(entries) = fs::read_dir(root.join(sub)) else {
            continue;
        };
        for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if name.ends_with(".tmp") {
                // Half-written before a crash: its emit never returned.
                files.push(path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let value = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            let write = match (dead, value) {
                (false, Some(v)) => SpoolRecord::from_json(&v).map(Write::SpoolPut),
                (true, Some(v)) => DeadLetter::from_json(&v).map(Write::DeadPut),
                (_, None) => None,
            };
            match write {
                Some(w) => {
                    if dead {
                        imported.dead += 1;
                    } else {
                        imported.pending += 1;
                    }
                    writes.push(w);
                    files.push(path);
                }
                None => {
                    let aside = path.with_extension("corrupt");
                    let _ = fs::rename(&path, &aside);
                    imported.corrupt.push(aside);
                }
            }
        }
    }
    if files.is_empty() {
        return Ok(imported);
    }
    // A dead letter's DeadPut also removes a spooled row of the same id:
    // pending rows go first, so a file in both places stays a dead letter.
    writes.sort_by_key(|w| matches!(w, Write::DeadPut(_)));
    store.write(writes, COMMIT_TIMEOUT.max(Duration::from_secs(60)))?;
    for f in files {
        let _ = fs::remove_file(f);
    }
    for sub in ["pending", "dead"] {
        let _ = fs::remove_dir(root.join(sub)); // only when empty
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::events;
    use crate::core::store::{is_safe_id, sqlite::SqliteOptions, SqliteStore};
    use serde_json::json;
    use std::time::SystemTime;

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
    fn order_is_per_call_in_seq_order_oldest_call_first() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let records: Vec<SpoolRecord> = [event(a, 2), event(b, 1), event(a, 1), event(b, 2)]
            .iter()
            .map(SpoolRecord::from_event)
            .collect();
        let order: Vec<(Uuid, u32)> = order_per_call(records)
            .iter()
            .map(|r| (r.call_uuid, r.seq))
            .collect();
        assert_eq!(order, vec![(a, 1), (a, 2), (b, 1), (b, 2)]);
    }

    #[test]
    fn a_file_spool_is_taken_over_once_then_its_files_are_gone() {
        let root = temp_dir("import");
        fs::create_dir_all(root.join("pending")).unwrap();
        fs::create_dir_all(root.join("dead")).unwrap();
        let call = Uuid::new_v4();
        let pending: Vec<SpoolRecord> = (1..=3)
            .map(|seq| SpoolRecord::from_event(&event(call, seq)))
            .collect();
        for r in &pending {
            let name = format!("{}.json", r.id);
            fs::write(root.join("pending").join(name), r.to_json().to_string()).unwrap();
        }
        let dead = DeadLetter {
            record: SpoolRecord::from_event(&event(Uuid::new_v4(), 1)),
            attempts: 4,
            last_error: "HTTP 503".into(),
            dead_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        };
        let dead_file = root.join("dead").join(format!("{}.json", dead.record.id));
        fs::write(&dead_file, dead.to_json().to_string()).unwrap();
        fs::write(root.join("pending/.evt_x.json.tmp"), b"half").unwrap();
        fs::write(root.join("pending/evt_bad.json"), b"{not json").unwrap();

        let store = SqliteStore::open_dir(&root, SqliteOptions::default()).unwrap();
        let got = import_files(&root, store.as_ref()).unwrap();
        assert_eq!((got.pending, got.dead, got.corrupt.len()), (3, 1, 1));
        assert!(!root.join("pending/.evt_x.json.tmp").exists());
        assert!(root.join("pending/evt_bad.corrupt").exists());
        assert!(!dead_file.exists());
        assert_eq!(order_per_call(store.spool_all().unwrap()), pending);
        assert_eq!(store.dead_list().unwrap(), vec![dead]);
        // Nothing left to import the second time.
        let again = import_files(&root, store.as_ref()).unwrap();
        assert_eq!((again.pending, again.dead), (0, 0));
        assert_eq!(store.spool_all().unwrap().len(), 3);
        drop(store);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn ids_that_are_not_plain_are_refused() {
        assert!(is_safe_id("evt_0123abc"));
        assert!(!is_safe_id("../etc/passwd"));
        assert!(!is_safe_id(""));
        assert!(!is_safe_id("a/b"));
    }
}
