//! A map whose entries expire a fixed time after they were last set, for what the operator needs
//! to remember for a while only (a created service's ID, an event series). Expired entries go as
//! new ones come, oldest first, so memory follows the rate of change and each insert costs O(1)
//! amortised, however many entries there are.

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    time::{Duration, Instant},
};

pub struct Expiring<K, V> {
    ttl: Duration,
    entries: HashMap<K, (V, Instant)>,
    /// Keys in the order they were set, with when; a key set again appears again, and its older
    /// place is skipped when reached.
    order: VecDeque<(K, Instant)>,
}

impl<K: Hash + Eq + Clone, V> Expiring<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Expiring {
            ttl,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((key, at)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            // Only the entry's latest setting takes it away.
            if self.entries.get(key).is_some_and(|(_, set)| set == at) {
                self.entries.remove(key);
            }
            self.order.pop_front();
        }
    }

    /// The value of `key`, unless it expired.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        self.get_at(key, Instant::now())
    }

    /// Sets `key` for another `ttl`; returns the value it had, unless expired.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.insert_at(key, value, Instant::now())
    }

    fn get_at(&mut self, key: &K, now: Instant) -> Option<&V> {
        self.expire(now);
        self.entries.get(key).map(|(v, _)| v)
    }

    fn insert_at(&mut self, key: K, value: V, now: Instant) -> Option<V> {
        self.expire(now);
        self.order.push_back((key.clone(), now));
        self.entries.insert(key, (value, now)).map(|(v, _)| v)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_go_a_ttl_after_they_were_last_set() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut map = Expiring::new(ms(50));
        assert_eq!(map.insert_at("a", 1, t0), None);
        assert_eq!(map.insert_at("b", 2, t0), None);
        assert_eq!(
            map.insert_at("a", 3, t0 + ms(30)),
            Some(1),
            "set again before it expired"
        );
        // b was set 60 ms before, a 30 ms before.
        assert_eq!(map.get_at(&"b", t0 + ms(60)), None);
        assert_eq!(map.get_at(&"a", t0 + ms(60)), Some(&3));
        assert_eq!(map.len(), 1);
        assert_eq!(map.get_at(&"a", t0 + ms(80)), None);
        assert!(map.is_empty());
        assert!(map.order.is_empty(), "nothing kept for expired keys");
        assert_eq!(
            map.insert_at("a", 4, t0 + ms(90)),
            None,
            "expired: no value before"
        );
    }
}
