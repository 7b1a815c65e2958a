//! In-process session store: one process only, for development and tests.

use std::collections::{BTreeMap, HashMap};
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
    value: Value,
    expires: Instant,
}

/// What a key holds: bytes (sessions, counters, bans) or a sorted set (a user's sessions).
#[derive(Debug)]
enum Value {
    Bytes(Vec<u8>),
    Sorted(BTreeMap<String, u64>),
}

impl Entry {
    fn bytes(value: &[u8], expires: Instant) -> Self {
        Self {
            value: Value::Bytes(value.to_vec()),
            expires,
        }
    }
}

/// Like Redis `WRONGTYPE`: a key used as a kind of value it does not hold is an error.
fn wrong_type() -> StoreError {
    StoreError::Unavailable("operation against a key holding the wrong kind of value".into())
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
            map.insert(key.to_owned(), Entry::bytes(value, now + ttl));
            true
        });
        Box::pin(async move { Ok(written) })
    }

    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let value = self.with(|map, now| {
            if !live(map, key, now) {
                return Ok(None);
            }
            match &map[key].value {
                Value::Bytes(bytes) => Ok(Some(bytes.clone())),
                Value::Sorted(_) => Err(wrong_type()),
            }
        });
        Box::pin(async move { value })
    }

    fn touch<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, bool> {
        let existed = self.with(|map, now| {
            if !live(map, key, now) {
                return false;
            }
            map.insert(key.to_owned(), Entry::bytes(value, now + ttl));
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
                map.insert(key.to_owned(), Entry::bytes(b"1", now + window));
                return Ok(1);
            }
            let entry = map.get_mut(key).expect("live entries exist");
            let Value::Bytes(value) = &mut entry.value else {
                return Err(wrong_type());
            };
            // Like Redis INCR: a value that is not a decimal counter is an error, not a reset.
            let count = std::str::from_utf8(value)
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .and_then(|n| n.checked_add(1))
                .ok_or_else(|| StoreError::Unavailable("value is not a counter".into()))?;
            *value = count.to_string().into_bytes();
            Ok(count)
        });
        Box::pin(async move { count })
    }

    fn decr<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        let result = self.with(|map, now| {
            if !live(map, key, now) {
                return Ok(());
            }
            let entry = map.get_mut(key).expect("live entries exist");
            let Value::Bytes(value) = &mut entry.value else {
                return Err(wrong_type());
            };
            let count = std::str::from_utf8(value)
                .ok()
                .and_then(|text| text.parse::<u64>().ok());
            if let Some(count) = count.filter(|&n| n > 0) {
                *value = (count - 1).to_string().into_bytes();
            }
            Ok(())
        });
        Box::pin(async move { result })
    }

    fn ttl<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        let left = self.with(|map, now| live(map, key, now).then(|| map[key].expires - now));
        Box::pin(async move { Ok(left) })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { Ok(()) })
    }

    fn publish<'a>(&'a self, _channel: &'a str, _message: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move { Ok(()) })
    }

    fn sorted_add<'a>(
        &'a self,
        key: &'a str,
        member: &'a str,
        score: u64,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        let result = self.with(|map, now| {
            if !live(map, key, now) {
                let entry = Entry {
                    value: Value::Sorted(BTreeMap::new()),
                    expires: now + ttl,
                };
                map.insert(key.to_owned(), entry);
            }
            let entry = map.get_mut(key).expect("live entries exist");
            let Value::Sorted(members) = &mut entry.value else {
                return Err(wrong_type());
            };
            members.insert(member.to_owned(), score);
            entry.expires = entry.expires.max(now + ttl);
            Ok(())
        });
        Box::pin(async move { result })
    }

    fn sorted_range<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Vec<(String, u64)>> {
        let result = self.with(|map, now| {
            if !live(map, key, now) {
                return Ok(Vec::new());
            }
            let Value::Sorted(members) = &map[key].value else {
                return Err(wrong_type());
            };
            let mut range: Vec<(String, u64)> =
                members.iter().map(|(m, s)| (m.clone(), *s)).collect();
            // Members are already in order: a stable sort by score keeps ties by member.
            range.sort_by_key(|(_, score)| *score);
            Ok(range)
        });
        Box::pin(async move { result })
    }

    fn sorted_remove<'a>(&'a self, key: &'a str, members: &'a [String]) -> StoreFuture<'a, ()> {
        let result = self.with(|map, now| {
            edit_sorted(map, key, now, |set| {
                for member in members {
                    set.remove(member);
                }
            })
        });
        Box::pin(async move { result })
    }

    fn sorted_remove_through<'a>(&'a self, key: &'a str, max_score: u64) -> StoreFuture<'a, ()> {
        let result = self.with(|map, now| {
            edit_sorted(map, key, now, |set| {
                set.retain(|_, score| *score > max_score)
            })
        });
        Box::pin(async move { result })
    }
}

/// Change the sorted set under `key`, if there is one; like Redis, a set left empty is removed.
fn edit_sorted(
    map: &mut HashMap<String, Entry>,
    key: &str,
    now: Instant,
    edit: impl FnOnce(&mut BTreeMap<String, u64>),
) -> Result<(), StoreError> {
    if !live(map, key, now) {
        return Ok(());
    }
    let Value::Sorted(set) = &mut map.get_mut(key).expect("live entries exist").value else {
        return Err(wrong_type());
    };
    edit(set);
    if set.is_empty() {
        map.remove(key);
    }
    Ok(())
}
