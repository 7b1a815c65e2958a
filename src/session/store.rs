//! The session store contract: a small key/value interface with TTLs.
//!
//! Stores keep opaque values under keys that are already hashes of session ids (the store never
//! sees an id). Every write carries a TTL, and `touch` never recreates a missing key, so a logout
//! racing with a slow request stays a logout. Login regulation keeps its counters and bans here
//! too (`incr`, `decr`, `ttl`, `create`), so that every replica sharing the store shares them.
//! Each user's index of sessions is a sorted set (`sorted_*`): members scored by a number the
//! caller chooses (the sessions' absolute deadlines), under a key that always has a TTL.
//! Every operation names one key, so each works unchanged on a Redis Cluster.
//! The backends are [`memory`] and [`redis`] (one server, a Redis Cluster or a Sentinel-watched
//! primary); [`metered`] wraps either to time every operation.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub mod memory;
pub mod metered;
pub mod redis;

pub use self::memory::MemoryStore;
pub use self::metered::MeteredStore;
pub use self::redis::RedisStore;

/// A boxed future returned by store operations.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The store could not answer; the request fails closed (503).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The command did not complete within the configured timeout.
    #[error("session store timed out")]
    Timeout,
    /// The backend reported an error or is unreachable.
    #[error("session store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Key/value storage with expiry, shared by every replica that uses the same backend.
pub trait SessionStore: Send + Sync + 'static {
    /// Store `value` under `key` for `ttl`, only if `key` does not exist. Returns whether it was
    /// written.
    fn create<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, bool>;

    /// The value under `key`, if it exists and has not expired.
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;

    /// Replace the value and TTL of `key` only if it still exists. Returns whether it existed.
    fn touch<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, bool>;

    /// Remove `key` (no error when it is already gone).
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()>;

    /// Add one to the counter under `key` and return the new count. A counter that did not exist
    /// starts at 1 and expires after `window`; incrementing never moves the expiry. Atomic across
    /// replicas.
    fn incr<'a>(&'a self, key: &'a str, window: Duration) -> StoreFuture<'a, u64>;

    /// Take one back from the counter under `key`: never below zero, never creating the key,
    /// never moving its expiry. Atomic across replicas.
    fn decr<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()>;

    /// Time left before `key` expires; `None` when it does not exist. A key without expiry (never
    /// written by Portcullis) reports `Duration::MAX`.
    fn ttl<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>>;

    /// Check that the backend answers (`PING` for Redis).
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Send `message` to every replica listening on `channel` (Redis `PUBLISH`; on a Cluster it
    /// reaches every node's subscribers). The memory store has no other replica to tell.
    fn publish<'a>(&'a self, channel: &'a str, message: &'a str) -> StoreFuture<'a, ()>;

    /// Add `member` with `score` to the sorted set under `key` (a member already there takes the
    /// new score), and make the key live at least `ttl` from now: its expiry is extended, never
    /// shortened, and never left unset. Atomic across replicas.
    fn sorted_add<'a>(
        &'a self,
        key: &'a str,
        member: &'a str,
        score: u64,
        ttl: Duration,
    ) -> StoreFuture<'a, ()>;

    /// Every member of the sorted set under `key` with its score, lowest score first (equal
    /// scores by member); empty when the key does not exist.
    fn sorted_range<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Vec<(String, u64)>>;

    /// Remove `members` from the sorted set under `key` (absent ones are ignored). A set left
    /// empty is gone; the expiry of one that is not stays where it was.
    fn sorted_remove<'a>(&'a self, key: &'a str, members: &'a [String]) -> StoreFuture<'a, ()>;

    /// Remove every member scored at or below `max_score` from the sorted set under `key`.
    fn sorted_remove_through<'a>(&'a self, key: &'a str, max_score: u64) -> StoreFuture<'a, ()>;
}
