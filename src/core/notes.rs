//! A map of short-lived notes, bounded in count and age, that makes room
//! in constant time: the oldest note goes first.
//!
//! The switch's event thread writes such notes for every leg of ours (how
//! it ended, when it was bridged…) and many are never taken. Making room by
//! scanning the whole map cost that one thread two walks of every note for
//! each new one, once a busy switch had filled it.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Notes by key: at most `max`, and none older than `keep` once a new one
/// is put. Putting a key again replaces its note and makes it the newest.
pub struct Notes<K, V> {
    /// Each note with when it was put and its place in `order`.
    map: HashMap<K, (V, Instant, u64)>,
    /// Keys in the order they were put, each with its place; a place the
    /// map no longer holds for that key is stale, skipped and dropped.
    order: VecDeque<(K, u64)>,
    next: u64,
    max: usize,
    keep: Duration,
}

impl<K: Hash + Eq + Clone, V> Notes<K, V> {
    /// An empty map of at most `max` notes (at least one) kept `keep`.
    pub fn new(max: usize, keep: Duration) -> Notes<K, V> {
        Notes {
            map: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            max: max.max(1),
            keep,
        }
    }

    /// Puts `value` for `key` (replacing its note), after making room.
    pub fn put(&mut self, key: K, value: V) {
        let now = Instant::now();
        self.map.remove(&key);
        self.make_room(now);
        let place = self.next;
        self.next += 1;
        self.order.push_back((key.clone(), place));
        self.map.insert(key, (value, now, place));
        self.compact();
    }

    /// Puts `value` for `key` unless it has a note already.
    pub fn put_new(&mut self, key: K, value: V) {
        if !self.map.contains_key(&key) {
            self.put(key, value);
        }
    }

    /// The note of `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|n| &n.0)
    }

    /// Whether `key` has a note.
    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Takes the note of `key` out.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (value, _, _) = self.map.remove(key)?;
        self.drop_stale_front();
        Some(value)
    }

    /// How many notes there are.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drops notes past `keep`, then, still full, the oldest: each looked
    /// at once, from the front of `order`.
    fn make_room(&mut self, now: Instant) {
        while let Some((key, place)) = self.order.front() {
            let Some((_, at, p)) = self.map.get(key) else {
                self.order.pop_front();
                continue;
            };
            if *p != *place {
                self.order.pop_front();
                continue;
            }
            if self.map.len() < self.max && now.duration_since(*at) < self.keep {
                return;
            }
            let (key, _) = self.order.pop_front().expect("front seen");
            self.map.remove(&key);
        }
    }

    fn drop_stale_front(&mut self) {
        while let Some((key, place)) = self.order.front() {
            if self.map.get(key).is_some_and(|n| n.2 == *place) {
                return;
            }
            self.order.pop_front();
        }
    }

    /// Keeps `order` within twice the notes (plus a little): stale places
    /// behind a live front are dropped in one pass, now and then.
    fn compact(&mut self) {
        if self.order.len() <= 2 * self.map.len() + 64 {
            return;
        }
        let map = &self.map;
        self.order
            .retain(|(key, place)| map.get(key).is_some_and(|n| n.2 == *place));
    }
}

#[cfg(test)]
mod tests {
    use super::Notes;
    use std::time::Duration;

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn a_full_map_drops_its_oldest_note_for_the_new_one() {
        let mut n = Notes::new(3, LONG);
        for k in 0..3 {
            n.put(k, k * 10);
        }
        n.put(3, 30);
        assert_eq!(n.len(), 3);
        assert!(!n.contains(&0), "the oldest went");
        assert_eq!(n.get(&3), Some(&30));
        // Putting a key again makes it the newest: 1 is now the oldest.
        n.put(2, 21);
        n.put(4, 40);
        assert!(!n.contains(&1));
        assert_eq!(
            (n.get(&2), n.get(&3), n.get(&4)),
            (Some(&21), Some(&30), Some(&40))
        );
    }

    #[test]
    fn notes_past_their_time_go_when_a_new_one_comes() {
        let mut n = Notes::new(100, Duration::from_millis(30));
        n.put("old", 1);
        std::thread::sleep(Duration::from_millis(40));
        assert!(n.contains(&"old"), "only a put makes room");
        n.put("new", 2);
        assert!(!n.contains(&"old"));
        assert_eq!(n.get(&"new"), Some(&2));
    }

    #[test]
    fn taken_notes_free_their_place_and_put_new_keeps_the_first() {
        let mut n = Notes::new(2, LONG);
        n.put(1, "a");
        n.put_new(1, "b");
        assert_eq!(n.get(&1), Some(&"a"));
        assert_eq!(n.remove(&1), Some("a"));
        assert_eq!(n.remove(&1), None);
        n.put(2, "c");
        n.put(3, "d");
        assert_eq!(n.len(), 2, "the taken note left room");
        assert!(n.contains(&2) && n.contains(&3));
    }

    #[test]
    fn the_order_kept_stays_bounded_when_notes_come_and_go() {
        let mut n = Notes::new(4096, LONG);
        // A note put, replaced and taken over and over, with one older note
        // that never goes (the front stays live).
        n.put(u64::MAX, 0);
        for i in 0..100_000u64 {
            n.put(i % 7, i);
            n.put(i % 7, i + 1);
            if i % 3 == 0 {
                n.remove(&(i % 7));
            }
        }
        assert!(n.len() <= 8);
        assert!(n.order.len() <= 2 * n.len() + 64 + 1, "{}", n.order.len());
        assert!(n.contains(&u64::MAX));
    }
}
