//! The SQLite store: commits, groups, callbacks, checkpoints, reopening.

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
