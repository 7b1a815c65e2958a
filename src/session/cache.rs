//! The in-process cache of session records read from Redis, so that a warm request makes no
//! round trip.
//!
//! It stays correct across replicas by invalidation: whoever ends a session (a replica, the
//! operator CLI) publishes the session's digest on the invalidation channel, every replica
//! listening evicts it ([`crate::session::store::redis::listen`]), and the one that ended it
//! has evicted it already, before answering. An entry is reused for at most
//! `session.cache_ttl` (at most 1 s) and never past the record's own deadlines, so even a
//! replica that missed a message refuses an ended session within that bound. While the
//! invalidation connection is not known to be good (before its first subscription, after a
//! disconnect or a missed PING), the cache is empty and bypassed: every request reads the store,
//! so a store that is down is still a 503.
//!
//! A read that raced with an invalidation is used for its own request but not kept: every
//! eviction and every flush moves a generation counter, and a load only enters the cache if the
//! generation did not move while it ran. Concurrent misses on one session share one read.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;

use super::{now_ms, SessionRecord, StoreError};
use crate::config::SessionCacheConfig;
use crate::metrics::CacheMetrics;

/// The session cache of one replica, keyed by session digest (`hex(SHA-256(id))`).
pub struct SessionCache {
    entries: Cache<String, Arc<Entry>>,
    ttl: Duration,
    /// Whether the invalidation connection is subscribed; entries are used only then.
    live: AtomicBool,
    /// Moves at every eviction and flush (see the module docs).
    generation: AtomicU64,
    metrics: CacheMetrics,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("ttl", &self.ttl)
            .field("live", &self.is_live())
            .finish_non_exhaustive()
    }
}

/// What the store held for one session when it was read: its record, or nothing (the session
/// ended or never existed; ids are never reused, so that answer stays true).
#[derive(Debug)]
pub struct Entry {
    /// The record; `None` when there was none.
    pub record: Option<SessionRecord>,
    /// How long this entry may be reused from when it was made.
    ttl: Duration,
    /// Taken by the one request that writes the sliding refresh back for this entry.
    refresh_claimed: AtomicBool,
}

impl Entry {
    /// An entry for `record`, reusable for `ttl` but never past the record's deadlines.
    fn new(record: Option<SessionRecord>, ttl: Duration) -> Self {
        let ttl = match &record {
            Some(record) => ttl.min(record.ttl(now_ms())),
            None => ttl,
        };
        Self {
            record,
            ttl,
            refresh_claimed: AtomicBool::new(false),
        }
    }

    /// Claim the write-back of this entry's sliding refresh: true for the first caller only, so
    /// concurrent requests on one session write it once.
    pub fn claim_refresh(&self) -> bool {
        !self.refresh_claimed.swap(true, Ordering::AcqRel)
    }
}

/// Each entry expires after its own `ttl`, counted again when it is replaced.
struct EntryExpiry;

impl Expiry<String, Arc<Entry>> for EntryExpiry {
    fn expire_after_create(&self, _: &String, entry: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// Why a shared load gave no entry to keep.
#[derive(Debug)]
enum Unkept {
    /// The store failed.
    Store(StoreError),
    /// The store answered, but an invalidation or a flush happened meanwhile: use, don't keep.
    Raced(Arc<Entry>),
}

/// A store error shared by the requests that waited on one load.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Shared(Arc<Unkept>);

impl std::fmt::Display for Unkept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unkept::Store(error) => error.fmt(f),
            Unkept::Raced(_) => f.write_str("raced with an invalidation"),
        }
    }
}

impl SessionCache {
    /// An empty cache, not yet live: it is used once the invalidation connection subscribes.
    pub fn new(config: &SessionCacheConfig, metrics: CacheMetrics) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(config.max_entries)
                .expire_after(EntryExpiry)
                .build(),
            ttl: config.ttl,
            live: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            metrics,
        }
    }

    /// Whether entries are being used (the invalidation connection is subscribed).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// The current generation, to hand to [`SessionCache::replace`] after a write.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The entry for `digest`: the cached one, or what `load` reads (kept when no invalidation
    /// raced with it). While the cache is not live, always what `load` reads, never kept.
    pub async fn get_or_load(
        &self,
        digest: &str,
        load: impl Future<Output = Result<Option<SessionRecord>, StoreError>>,
    ) -> Result<Arc<Entry>, StoreError> {
        if !self.is_live() {
            return Ok(Arc::new(Entry::new(load.await?, self.ttl)));
        }
        if let Some(entry) = self.entries.get(digest).await {
            self.metrics.hits.inc();
            return Ok(entry);
        }
        // Boxed: the shared load is several kilobytes of future state that every request's
        // future would otherwise carry (and copy), although only a miss needs it.
        Box::pin(self.load_shared(digest, load)).await
    }

    /// A miss: read with `load`, shared by the concurrent misses on `digest`, and keep what was
    /// read unless an invalidation raced with it.
    async fn load_shared(
        &self,
        digest: &str,
        load: impl Future<Output = Result<Option<SessionRecord>, StoreError>>,
    ) -> Result<Arc<Entry>, StoreError> {
        self.metrics.misses.inc();
        let generation = self.generation();
        let loaded = self
            .entries
            .try_get_with_by_ref(digest, async {
                let entry = Arc::new(Entry::new(load.await.map_err(Unkept::Store)?, self.ttl));
                if self.generation() != generation || !self.is_live() {
                    return Err(Unkept::Raced(entry));
                }
                Ok(entry)
            })
            .await;
        match loaded {
            Ok(entry) => {
                if self.generation() != generation {
                    // Evicted between the check above and the insert: take it out again.
                    self.entries.invalidate(digest).await;
                }
                Ok(entry)
            }
            Err(unkept) => match &*unkept {
                Unkept::Raced(entry) => Ok(Arc::clone(entry)),
                Unkept::Store(StoreError::Timeout) => Err(StoreError::Timeout),
                Unkept::Store(StoreError::Unavailable(_)) => {
                    Err(StoreError::Unavailable(Box::new(Shared(unkept))))
                }
            },
        }
    }

    /// Keep `record` (just written back) for `digest`, unless the generation moved since
    /// `generation` was read or the cache is not live.
    pub async fn replace(&self, digest: &str, record: SessionRecord, generation: u64) {
        if !self.is_live() {
            return;
        }
        let entry = Arc::new(Entry::new(Some(record), self.ttl));
        self.entries.insert(digest.to_owned(), entry).await;
        if self.generation() != generation {
            self.entries.invalidate(digest).await;
        }
    }

    /// Evict `digest`: its session ended here or on another replica.
    pub async fn forget(&self, digest: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate(digest).await;
        self.metrics.invalidations.inc();
    }

    /// Empty the cache and stop using it: the invalidation connection was lost, so news of
    /// ended sessions may have been missed.
    pub fn flush(&self) {
        let was_live = self.live.swap(false, Ordering::AcqRel);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
        self.metrics.live.set(0);
        if was_live {
            self.metrics.flushes.inc();
        }
    }

    /// Start using the cache: the invalidation connection is subscribed (again). It was flushed
    /// when the connection was lost, so nothing in it predates the subscription.
    pub fn resume(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.live.store(true, Ordering::Release);
        self.metrics.live.set(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Source;

    fn cache(ttl_ms: u64) -> SessionCache {
        SessionCache::new(
            &SessionCacheConfig {
                ttl: Duration::from_millis(ttl_ms),
                max_entries: 100,
            },
            CacheMetrics::default(),
        )
    }

    fn record(deadline_in_ms: u64) -> SessionRecord {
        let now = now_ms();
        SessionRecord {
            user: "alice".into(),
            roles: vec![],
            source: Source::Local,
            credential: String::new(),
            created_at: now,
            last_seen_at: now,
            idle_expires_at: now + deadline_in_ms,
            expires_at: now + deadline_in_ms,
            client_addr: String::new(),
            user_agent: String::new(),
        }
    }

    async fn load(
        cache: &SessionCache,
        digest: &str,
        reads: &AtomicU64,
    ) -> Result<Arc<Entry>, StoreError> {
        cache
            .get_or_load(digest, async {
                reads.fetch_add(1, Ordering::SeqCst);
                Ok(Some(record(60_000)))
            })
            .await
    }

    #[tokio::test]
    async fn not_live_reads_every_time_and_keeps_nothing() {
        let cache = cache(1000);
        let reads = AtomicU64::new(0);
        for _ in 0..3 {
            load(&cache, "d", &reads).await.unwrap();
        }
        assert_eq!(reads.load(Ordering::SeqCst), 3);
        assert_eq!(cache.entries.entry_count(), 0);
    }

    #[tokio::test]
    async fn live_reads_once_until_forgotten() {
        let cache = cache(1000);
        cache.resume();
        let reads = AtomicU64::new(0);
        for _ in 0..3 {
            load(&cache, "d", &reads).await.unwrap();
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        cache.forget("d").await;
        load(&cache, "d", &reads).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_flush_empties_and_bypasses_until_resumed() {
        let cache = cache(1000);
        cache.resume();
        let reads = AtomicU64::new(0);
        load(&cache, "d", &reads).await.unwrap();
        cache.flush();
        assert!(!cache.is_live());
        load(&cache, "d", &reads).await.unwrap();
        load(&cache, "d", &reads).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 3);
        cache.resume();
        load(&cache, "d", &reads).await.unwrap();
        load(&cache, "d", &reads).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_load_that_raced_with_an_eviction_is_used_but_not_kept() {
        let cache = cache(1000);
        cache.resume();
        let entry = cache
            .get_or_load("d", async {
                // The session ends while its record is on the way.
                cache.forget("d").await;
                Ok(Some(record(60_000)))
            })
            .await
            .unwrap();
        assert!(entry.record.is_some());
        let reads = AtomicU64::new(0);
        load(&cache, "d", &reads).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_store_error_is_an_error_and_nothing_is_kept() {
        let cache = cache(1000);
        cache.resume();
        let failed = cache
            .get_or_load("d", async { Err(StoreError::Timeout) })
            .await;
        assert!(matches!(failed, Err(StoreError::Timeout)));
        let reads = AtomicU64::new(0);
        load(&cache, "d", &reads).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_entry_never_outlives_its_records_deadline_or_the_ttl() {
        assert_eq!(
            Entry::new(Some(record(60_000)), Duration::from_secs(1)).ttl,
            Duration::from_secs(1)
        );
        assert!(
            Entry::new(Some(record(200)), Duration::from_secs(1)).ttl <= Duration::from_millis(200)
        );
        assert_eq!(
            Entry::new(None, Duration::from_secs(1)).ttl,
            Duration::from_secs(1)
        );
    }

    #[tokio::test]
    async fn an_entry_expires_after_its_ttl() {
        let cache = cache(50);
        cache.resume();
        let reads = AtomicU64::new(0);
        load(&cache, "d", &reads).await.unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        load(&cache, "d", &reads).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn only_the_first_claim_writes_the_refresh() {
        let entry = Entry::new(Some(record(60_000)), Duration::from_secs(1));
        assert!(entry.claim_refresh());
        assert!(!entry.claim_refresh());
    }
}
