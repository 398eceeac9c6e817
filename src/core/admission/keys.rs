//! `Idempotency-Key`: the same key and body (for the same token) replays the
//! first answer instead of placing a second call; the same key with another
//! body is a conflict. A duplicate that arrives while the first request is
//! still being handled waits for its answer. Keys expire after the configured
//! TTL; memory holds at most [`MAX_KEYS`] of them.
//!
//! With a durable store attached ([`IdempotencyStore::set_durable`]) a key
//! holds for its whole TTL across restarts and crashes: the answer to keep is
//! written in the same commit that accepts the call, before the 202 leaves
//! ([`Claim::durable`]), and a key not in memory is looked up in the store.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::interface::{Answer, Claim as ClaimTrait};
use crate::core::gcra::Clock;
use crate::core::store::{IdempotencyRecord, Store, Write};

/// Most keys remembered at once; the oldest are forgotten first.
pub const MAX_KEYS: usize = 100_000;
/// Longest accepted key.
pub const MAX_KEY_LEN: usize = 255;
/// How long a duplicate waits for the first request's answer.
pub const WAIT_FOR_FIRST: Duration = Duration::from_secs(10);

type Key = (String, String);

enum Slot {
    InProgress,
    Done(Answer),
}

struct Entry {
    fingerprint: [u8; 32],
    slot: Slot,
    expires: Duration,
    /// Distinguishes this entry from a later one with the same key.
    generation: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Key, Entry>,
    /// Keys in insertion order, for expiry and the size bound.
    order: VecDeque<(Duration, Key, u64)>,
    generation: u64,
}

/// What to do with a request that carries a key.
pub enum Claim {
    /// First time: handle it, then [`Claim::finish`].
    Proceed(Pending),
    /// Seen with this body: send this stored answer again.
    Replay(Answer),
    /// Seen with another body, or the first is still running after
    /// [`WAIT_FOR_FIRST`]: 409.
    Conflict(&'static str),
    /// The durable store could not be read: 503 (rather than risk a second call).
    Unavailable(String),
}

/// The store.
pub struct IdempotencyStore {
    clock: Arc<dyn Clock>,
    capacity: usize,
    inner: Mutex<Inner>,
    done: Condvar,
    durable: RwLock<Option<Arc<dyn Store>>>,
}

/// A claimed key; dropping it unfinished releases the key.
pub struct Pending {
    store: Arc<IdempotencyStore>,
    key: Key,
    generation: u64,
    finished: bool,
    fingerprint: [u8; 32],
    ttl: Duration,
}

impl ClaimTrait for Pending {
    fn durable(&self, answer: &Answer) -> Vec<Write> {
        vec![Write::IdempotencyPut(IdempotencyRecord {
            token: self.key.0.clone(),
            key: self.key.1.clone(),
            fingerprint: self.fingerprint,
            status: answer.status,
            headers: answer.headers.clone(),
            body: answer.body.clone(),
            expires: SystemTime::now() + self.ttl,
        })]
    }

    fn finish(mut self: Box<Self>, answer: &Answer) {
        self.finished = true;
        let mut inner = self.store.lock();
        let ours = inner.map.get(&self.key).map(|e| e.generation) == Some(self.generation);
        if ours {
            if answer.is_success() {
                if let Some(e) = inner.map.get_mut(&self.key) {
                    e.slot = Slot::Done(answer.clone());
                }
            } else {
                inner.map.remove(&self.key);
            }
        }
        drop(inner);
        self.store.done.notify_all();
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.finished {
            let mut inner = self.store.lock();
            if inner.map.get(&self.key).map(|e| e.generation) == Some(self.generation) {
                inner.map.remove(&self.key);
            }
            drop(inner);
            self.store.done.notify_all();
        }
    }
}

/// The fingerprint of a request body: of its JSON with keys sorted and
/// spacing dropped when it is JSON (a retry that re-serialised the same
/// request is the same request), else of its bytes.
pub fn fingerprint(body: &[u8]) -> [u8; 32] {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => Sha256::digest(v.to_string().as_bytes()).into(),
        Err(_) => Sha256::digest(body).into(),
    }
}

impl IdempotencyStore {
    /// An empty store reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Arc<IdempotencyStore> {
        IdempotencyStore::with_capacity(clock, MAX_KEYS)
    }

    /// An empty store that remembers at most `capacity` keys.
    pub fn with_capacity(clock: Arc<dyn Clock>, capacity: usize) -> Arc<IdempotencyStore> {
        Arc::new(IdempotencyStore {
            clock,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
            done: Condvar::new(),
            durable: RwLock::new(None),
        })
    }

    /// Looks keys missing from memory up in `store` (where the HTTP handler
    /// commits each key's answer with the call it accepts).
    pub fn set_durable(&self, store: Option<Arc<dyn Store>>) {
        *self.durable.write().unwrap_or_else(|e| e.into_inner()) = store;
    }

    fn durable(&self) -> Option<Arc<dyn Store>> {
        self.durable
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Claims `key` of `token` for a request with this `body`.
    pub fn claim(self: &Arc<Self>, token: &str, key: &str, body: &[u8], ttl: Duration) -> Claim {
        let fp = fingerprint(body);
        let k: Key = (token.to_string(), key.to_string());
        let durable = self.durable();
        let mut looked_up = false;
        let mut inner = self.lock();
        let waited_until = Instant::now() + WAIT_FOR_FIRST;
        loop {
            let now = self.clock.now();
            expire(&mut inner, now, self.capacity);
            match inner.map.get(&k) {
                Some(e) if e.fingerprint != fp => {
                    return Claim::Conflict(
                        "this Idempotency-Key was used with another request body",
                    )
                }
                Some(Entry {
                    slot: Slot::Done(r),
                    ..
                }) => return Claim::Replay(r.clone()),
                Some(_) if Instant::now() >= waited_until => {
                    return Claim::Conflict(
                        "a request with this Idempotency-Key is still in progress",
                    )
                }
                Some(_) => {
                    inner = self
                        .done
                        .wait_timeout(inner, Duration::from_millis(100))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                None if !looked_up && durable.is_some() => {
                    // Not in memory: remembered from before a restart?
                    looked_up = true;
                    let store = durable.as_ref().map(Arc::clone);
                    let found = match store.map(|s| s.idempotency_get(token, key)) {
                        Some(Ok(found)) => found,
                        Some(Err(e)) => return Claim::Unavailable(e.to_string()),
                        None => None,
                    };
                    if let Some(rec) = found {
                        let left = rec
                            .expires
                            .duration_since(SystemTime::now())
                            .unwrap_or_default();
                        let answer = Slot::Done(Answer {
                            status: rec.status,
                            headers: rec.headers,
                            body: rec.body,
                        });
                        remember(&mut inner, &k, rec.fingerprint, answer, now + left);
                    }
                }
                None => {
                    let generation = remember(&mut inner, &k, fp, Slot::InProgress, now + ttl);
                    while inner.map.len() > self.capacity {
                        match inner.order.pop_front() {
                            Some((_, old, g)) => remove_if(&mut inner, &old, g),
                            None => break,
                        }
                    }
                    return Claim::Proceed(Pending {
                        store: Arc::clone(self),
                        key: k,
                        generation,
                        finished: false,
                        fingerprint: fp,
                        ttl,
                    });
                }
            }
        }
    }
}

/// Puts a new entry for `key`; returns its generation.
fn remember(
    inner: &mut Inner,
    key: &Key,
    fingerprint: [u8; 32],
    slot: Slot,
    expires: Duration,
) -> u64 {
    inner.generation += 1;
    let generation = inner.generation;
    inner.map.insert(
        key.clone(),
        Entry {
            fingerprint,
            slot,
            expires,
            generation,
        },
    );
    inner.order.push_back((expires, key.clone(), generation));
    generation
}

fn remove_if(inner: &mut Inner, key: &Key, generation: u64) {
    if inner.map.get(key).map(|e| e.generation) == Some(generation) {
        inner.map.remove(key);
    }
}

fn expire(inner: &mut Inner, now: Duration, capacity: usize) {
    // The order queue also holds entries already released; drop those too.
    while let Some((expires, key, g)) = inner.order.front().cloned() {
        let live = inner.map.get(&key).map(|e| e.generation) == Some(g);
        if expires <= now || !live {
            inner.order.pop_front();
            if expires <= now {
                remove_if(inner, &key, g);
            }
        } else {
            break;
        }
    }
    if inner.order.len() > 2 * capacity {
        let Inner { map, order, .. } = inner;
        order.retain(|(_, k, g)| map.get(k).map(|e| e.generation) == Some(*g));
    }
    // Entries with a shorter TTL than those before them (after a reload).
    if inner.map.len() > 1024 && inner.map.values().any(|e| e.expires <= now) {
        inner.map.retain(|_, e| e.expires > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::gcra::{ManualClock, MonotonicClock};

    fn ok() -> Answer {
        answer(202)
    }

    fn answer(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: br#"{"data":1}"#.to_vec(),
        }
    }

    fn finish(p: Pending, a: &Answer) {
        ClaimTrait::finish(Box::new(p), a);
    }

    #[test]
    fn replay_conflict_release_and_expiry() {
        let clock = Arc::new(ManualClock::default());
        let s = IdempotencyStore::new(clock.clone());
        let ttl = Duration::from_secs(60);
        let Claim::Proceed(p) = s.claim("crm", "k1", b"a", ttl) else {
            panic!("first claim")
        };
        finish(p, &ok());
        assert!(matches!(s.claim("crm", "k1", b"a", ttl), Claim::Replay(r) if r.status == 202));
        assert!(matches!(
            s.claim("crm", "k1", b"b", ttl),
            Claim::Conflict(_)
        ));
        // Another token's same key is another key.
        assert!(matches!(
            s.claim("other", "k1", b"b", ttl),
            Claim::Proceed(_)
        ));
        // A failure releases the key.
        let Claim::Proceed(p) = s.claim("crm", "k2", b"a", ttl) else {
            panic!()
        };
        finish(p, &answer(422));
        assert!(matches!(s.claim("crm", "k2", b"x", ttl), Claim::Proceed(_)));
        clock.advance(ttl);
        assert!(matches!(s.claim("crm", "k1", b"b", ttl), Claim::Proceed(_)));
    }

    #[test]
    fn memory_is_bounded_oldest_keys_go_first() {
        let clock = Arc::new(ManualClock::default());
        let s = IdempotencyStore::with_capacity(clock, 3);
        let ttl = Duration::from_secs(60);
        for k in ["a", "b", "c", "d", "e"] {
            let Claim::Proceed(p) = s.claim("crm", k, b"x", ttl) else {
                panic!()
            };
            finish(p, &ok());
        }
        assert_eq!(s.len(), 3);
        assert!(matches!(s.claim("crm", "e", b"x", ttl), Claim::Replay(_)));
        assert!(matches!(s.claim("crm", "a", b"x", ttl), Claim::Proceed(_)));
        // Released keys do not pile up in the expiry queue either.
        for i in 0..100 {
            drop(s.claim("crm", &format!("r{i}"), b"x", ttl));
        }
        assert!(s.inner.lock().unwrap().order.len() <= 7);
    }

    #[test]
    fn a_concurrent_duplicate_waits_for_the_first_answer() {
        let s = IdempotencyStore::new(Arc::new(MonotonicClock::default()));
        let ttl = Duration::from_secs(60);
        let Claim::Proceed(p) = s.claim("crm", "k", b"a", ttl) else {
            panic!()
        };
        let s2 = Arc::clone(&s);
        let dup = std::thread::spawn(move || match s2.claim("crm", "k", b"a", ttl) {
            Claim::Replay(r) => r.status,
            _ => 0,
        });
        std::thread::sleep(Duration::from_millis(50));
        finish(p, &ok());
        assert_eq!(dup.join().unwrap(), 202);
    }
}
