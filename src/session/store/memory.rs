//! In-process session store: one process only, for development and tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{SessionStore, StoreError, StoreFuture};

/// How often expired entries are swept out, bounding memory between lookups.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// A `HashMap` with per-entry expiry.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expires: Instant,
}

impl MemoryStore {
    /// An empty store. Call [`MemoryStore::spawn_sweeper`] inside a runtime to bound memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start a background task that removes expired entries; it ends when the store is dropped.
    pub fn spawn_sweeper(&self) {
        let entries = Arc::downgrade(&self.entries);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            loop {
                tick.tick().await;
                let Some(entries) = entries.upgrade() else {
                    return;
                };
                let now = Instant::now();
                lock(&entries).retain(|_, e| e.expires > now);
            }
        });
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Entry>, Instant) -> T) -> T {
        f(&mut lock(&self.entries), Instant::now())
    }
}

fn lock(
    entries: &Mutex<HashMap<String, Entry>>,
) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
    // A panic while holding the lock cannot leave an entry half-written, so the map stays valid.
    entries.lock().unwrap_or_else(PoisonError::into_inner)
}

fn live(map: &mut HashMap<String, Entry>, key: &str, now: Instant) -> bool {
    match map.get(key) {
        Some(e) if e.expires > now => true,
        Some(_) => {
            map.remove(key);
            false
        }
        None => false,
    }
}

impl SessionStore for MemoryStore {
    fn create<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, bool> {
        let written = self.with(|map, now| {
            if live(map, key, now) {
                return false;
            }
            let entry = Entry {
                value: value.to_vec(),
                expires: now + ttl,
            };
            map.insert(key.to_owned(), entry);
            true
        });
        Box::pin(async move { Ok(written) })
    }

    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let value = self.with(|map, now| live(map, key, now).then(|| map[key].value.clone()));
        Box::pin(async move { Ok(value) })
    }

    fn touch<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, bool> {
        let existed = self.with(|map, now| {
            if !live(map, key, now) {
                return false;
            }
            map.insert(
                key.to_owned(),
                Entry {
                    value: value.to_vec(),
                    expires: now + ttl,
                },
            );
            true
        });
        Box::pin(async move { Ok(existed) })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.with(|map, _| map.remove(key));
        Box::pin(async move { Ok(()) })
    }

    fn incr<'a>(&'a self, key: &'a str, window: Duration) -> StoreFuture<'a, u64> {
        let count = self.with(|map, now| {
            if !live(map, key, now) {
                let entry = Entry {
                    value: b"1".to_vec(),
                    expires: now + window,
                };
                map.insert(key.to_owned(), entry);
                return Ok(1);
            }
            let entry = map.get_mut(key).expect("live entries exist");
            // Like Redis INCR: a value that is not a decimal counter is an error, not a reset.
            let count = std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .and_then(|n| n.checked_add(1))
                .ok_or_else(|| StoreError::Unavailable("value is not a counter".into()))?;
            entry.value = count.to_string().into_bytes();
            Ok(count)
        });
        Box::pin(async move { count })
    }

    fn decr<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.with(|map, now| {
            if !live(map, key, now) {
                return;
            }
            let entry = map.get_mut(key).expect("live entries exist");
            let count = std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|text| text.parse::<u64>().ok());
            if let Some(count) = count.filter(|&n| n > 0) {
                entry.value = (count - 1).to_string().into_bytes();
            }
        });
        Box::pin(async move { Ok(()) })
    }

    fn ttl<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        let left = self.with(|map, now| live(map, key, now).then(|| map[key].expires - now));
        Box::pin(async move { Ok(left) })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { Ok(()) })
    }
}
