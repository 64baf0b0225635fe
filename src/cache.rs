//! One in-memory cache type for the whole server: a bounded map that evicts the least
//! recently used entry when full. Used for rendered reports, metric answers, attribution
//! credits and duplicate counts; each caller keys entries by everything the value depends on
//! (an ETag, a data version), so a stale entry is never returned, only left to age out.
//!
//! [`Flights`] is its companion: identical work asked for at the same time runs once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// Computations in flight by key: whoever asks for a key already being computed waits for
/// that computation instead of starting another (single-flight).
#[derive(Debug)]
pub struct Flights<K, V> {
    inflight: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Self {
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Flights<K, V> {
    /// Runs `work` for `key` unless it is running already; then waits for it and shares its
    /// value. A failed computation is shared with no one: each waiter then tries on its own
    /// turn, and the next caller starts afresh.
    pub async fn run<F, Fut, E>(&self, key: K, work: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<V, E>>,
    {
        let cell = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(inflight.entry(key.clone()).or_default())
        };
        let result = cell.get_or_try_init(work).await.cloned();
        // Done or failed, the next caller starts afresh; no entry outlives its computation.
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if inflight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            inflight.remove(&key);
        }
        result
    }
}

/// A map of at most `capacity` entries (and, when weighed, at most `max_bytes` of them),
/// least recently used out first. An entry's weight is taken when it is inserted and kept
/// with it, so a value that grows later (a compressed form added) cannot unbalance the count.
#[derive(Debug)]
pub struct Cache<K, V> {
    capacity: usize,
    max_bytes: usize,
    weigh: fn(&V) -> usize,
    inner: Mutex<Inner<K, V>>,
}

#[derive(Debug)]
struct Inner<K, V> {
    /// Last use, weight at insertion, value.
    entries: HashMap<K, (u64, usize, V)>,
    clock: u64,
    bytes: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    /// An empty cache holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self::weighed(capacity, usize::MAX, |_| 0)
    }

    /// An empty cache of at most `capacity` entries weighing at most `max_bytes` together, by
    /// `weigh` (an entry heavier than `max_bytes` alone is not kept).
    pub fn weighed(capacity: usize, max_bytes: usize, weigh: fn(&V) -> usize) -> Self {
        Self {
            capacity: capacity.max(1),
            max_bytes,
            weigh,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                clock: 0,
                bytes: 0,
            }),
        }
    }

    /// Bytes held, by the cache's weight.
    pub fn bytes(&self) -> usize {
        self.inner.lock().map(|i| i.bytes).unwrap_or(0)
    }

    /// Returns a copy of the value under `key`, marking it recently used.
    pub fn get(&self, key: &K) -> Option<V> {
        let mut inner = self.inner.lock().ok()?;
        inner.clock += 1;
        let now = inner.clock;
        let (used, _, value) = inner.entries.get_mut(key)?;
        *used = now;
        Some(value.clone())
    }

    /// Stores `value` under `key`, evicting the least recently used entry when full.
    pub fn insert(&self, key: K, value: V) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let weight = (self.weigh)(&value);
        if weight > self.max_bytes {
            return;
        }
        inner.clock += 1;
        let now = inner.clock;
        if let Some((_, old, _)) = inner.entries.remove(&key) {
            inner.bytes -= old;
        }
        while !inner.entries.is_empty()
            && (inner.entries.len() >= self.capacity || inner.bytes + weight > self.max_bytes)
        {
            let oldest = inner
                .entries
                .iter()
                .min_by_key(|(_, (used, _, _))| *used)
                .map(|(key, _)| key.clone());
            let Some(oldest) = oldest else { break };
            if let Some((_, old, _)) = inner.entries.remove(&oldest) {
                inner.bytes -= old;
            }
        }
        inner.bytes += weight;
        inner.entries.insert(key, (now, weight, value));
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        if let Ok(mut inner) = self.inner.lock() {
            let mut dropped = 0;
            inner.entries.retain(|key, (_, weight, value)| {
                let kept = keep(key, value);
                if !kept {
                    dropped += *weight;
                }
                kept
            });
            inner.bytes -= dropped;
        }
    }

    /// Returns every key stored (without marking any as used).
    pub fn keys(&self) -> Vec<K> {
        self.inner
            .lock()
            .map(|inner| inner.entries.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Returns how many entries are stored.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.entries.len()).unwrap_or(0)
    }

    /// Returns whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_of_one_key_share_one_computation() {
        let flights: Arc<Flights<&str, usize>> = Arc::default();
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (flights, runs) = (Arc::clone(&flights), Arc::clone(&runs));
                tokio::spawn(async move {
                    flights
                        .run("report", || async {
                            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            Ok::<_, ()>(42)
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.expect("task"), Ok(42));
        }
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Over: the next caller computes again.
        let again = flights.run("report", || async { Ok::<_, ()>(7) }).await;
        assert_eq!(again, Ok(7));
    }

    #[test]
    fn the_least_recently_used_entry_leaves_first() {
        let cache = Cache::new(2);
        cache.insert("a", 1);
        cache.insert("b", 2);
        assert_eq!(cache.get(&"a"), Some(1)); // a is now more recent than b
        cache.insert("c", 3);
        assert_eq!(cache.get(&"b"), None);
        assert_eq!(cache.get(&"a"), Some(1));
        assert_eq!(cache.get(&"c"), Some(3));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_weighed_cache_evicts_by_bytes() {
        let cache: Cache<&str, Vec<u8>> = Cache::weighed(100, 10, Vec::len);
        cache.insert("a", vec![0; 4]);
        cache.insert("b", vec![0; 4]);
        assert_eq!(cache.bytes(), 8);
        cache.insert("c", vec![0; 4]); // 12 > 10: the oldest leaves
        assert_eq!(cache.get(&"a"), None);
        assert_eq!(cache.bytes(), 8);
        cache.insert("b", vec![0; 1]); // replacing frees the old weight
        assert_eq!(cache.bytes(), 5);
        cache.insert("huge", vec![0; 11]); // heavier than the whole budget: not kept
        assert_eq!(cache.get(&"huge"), None);
        assert_eq!(cache.len(), 2);
        cache.retain(|k, _| *k == "c");
        assert_eq!(cache.bytes(), 4);
    }

    #[test]
    fn a_value_that_grows_after_insertion_leaves_with_its_inserted_weight() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache: Cache<&str, Arc<AtomicUsize>> =
            Cache::weighed(100, 10, |v| v.load(Ordering::SeqCst));
        let growing = Arc::new(AtomicUsize::new(4));
        cache.insert("a", Arc::clone(&growing));
        growing.store(9, Ordering::SeqCst); // its compressed forms were made
        cache.insert("b", Arc::new(AtomicUsize::new(8))); // 4 + 8 > 10: `a` leaves
        assert_eq!(cache.get(&"a").map(|_| ()), None);
        assert_eq!(cache.bytes(), 8);
    }

    #[test]
    fn replacing_a_key_does_not_evict_another() {
        let cache = Cache::new(2);
        cache.insert("a", 1);
        cache.insert("b", 2);
        cache.insert("a", 10);
        assert_eq!(cache.get(&"a"), Some(10));
        assert_eq!(cache.get(&"b"), Some(2));
    }

    #[test]
    fn retain_drops_what_the_predicate_rejects() {
        let cache = Cache::new(8);
        for i in 0..5 {
            cache.insert(i, i * 10);
        }
        cache.retain(|k, _| k % 2 == 0);
        assert_eq!(cache.len(), 3);
        assert!(!cache.is_empty());
        assert_eq!(cache.get(&1), None);
    }
}
