//! A store wrapper that times every operation and counts the failures, whatever the backend
//! (see [`crate::metrics::StoreMetrics`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{SessionStore, StoreFuture};
use crate::metrics::{StoreMetrics, StoreOperation};

/// Any [`SessionStore`], measured.
pub struct MeteredStore {
    inner: Arc<dyn SessionStore>,
    metrics: StoreMetrics,
}

impl std::fmt::Debug for MeteredStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredStore").finish_non_exhaustive()
    }
}

impl MeteredStore {
    /// Measure `inner` into `metrics`.
    pub fn new(inner: Arc<dyn SessionStore>, metrics: StoreMetrics) -> Self {
        Self { inner, metrics }
    }

    fn timed<'a, T: Send + 'a>(
        &'a self,
        operation: StoreOperation,
        future: StoreFuture<'a, T>,
    ) -> StoreFuture<'a, T> {
        Box::pin(async move {
            let started = Instant::now();
            let result = future.await;
            self.metrics
                .observe(operation, started.elapsed(), result.is_ok());
            result
        })
    }
}

impl SessionStore for MeteredStore {
    fn create<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, bool> {
        self.timed(StoreOperation::Create, self.inner.create(key, value, ttl))
    }

    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.timed(StoreOperation::Load, self.inner.load(key))
    }

    fn touch<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, bool> {
        self.timed(StoreOperation::Touch, self.inner.touch(key, value, ttl))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.timed(StoreOperation::Delete, self.inner.delete(key))
    }

    fn incr<'a>(&'a self, key: &'a str, window: Duration) -> StoreFuture<'a, u64> {
        self.timed(StoreOperation::Incr, self.inner.incr(key, window))
    }

    fn decr<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.timed(StoreOperation::Decr, self.inner.decr(key))
    }

    fn ttl<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        self.timed(StoreOperation::Ttl, self.inner.ttl(key))
    }

    fn publish<'a>(&'a self, channel: &'a str, message: &'a str) -> StoreFuture<'a, ()> {
        self.timed(
            StoreOperation::Publish,
            self.inner.publish(channel, message),
        )
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        self.timed(StoreOperation::Ping, self.inner.ping())
    }

    fn sorted_add<'a>(
        &'a self,
        key: &'a str,
        member: &'a str,
        score: u64,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        self.timed(
            StoreOperation::SortedAdd,
            self.inner.sorted_add(key, member, score, ttl),
        )
    }

    fn sorted_range<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Vec<(String, u64)>> {
        self.timed(StoreOperation::SortedRange, self.inner.sorted_range(key))
    }

    fn sorted_remove<'a>(&'a self, key: &'a str, members: &'a [String]) -> StoreFuture<'a, ()> {
        self.timed(
            StoreOperation::SortedRemove,
            self.inner.sorted_remove(key, members),
        )
    }

    fn sorted_remove_through<'a>(&'a self, key: &'a str, max_score: u64) -> StoreFuture<'a, ()> {
        self.timed(
            StoreOperation::SortedRemoveThrough,
            self.inner.sorted_remove_through(key, max_score),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::session::store::MemoryStore;

    #[tokio::test]
    async fn every_operation_is_timed_under_its_own_name() {
        let metrics = Metrics::new();
        let store = MeteredStore::new(Arc::new(MemoryStore::new()), metrics.store().clone());
        let ttl = Duration::from_secs(60);
        assert!(store.create("k", b"v", ttl).await.unwrap());
        assert_eq!(store.load("k").await.unwrap().as_deref(), Some(&b"v"[..]));
        assert!(store.touch("k", b"w", ttl).await.unwrap());
        assert!(store.incr("k", ttl).await.is_err(), "not a counter");
        store.decr("k").await.unwrap();
        assert!(store.ttl("k").await.unwrap().is_some());
        store.delete("k").await.unwrap();
        store.ping().await.unwrap();
        store.publish("c", "m").await.unwrap();
        store.sorted_add("z", "m", 1, ttl).await.unwrap();
        assert_eq!(store.sorted_range("z").await.unwrap().len(), 1);
        store.sorted_remove("z", &["m".to_owned()]).await.unwrap();
        store.sorted_remove_through("z", 1).await.unwrap();
        let text = metrics.encode(true);
        for operation in StoreOperation::ALL {
            let name = operation.as_str();
            let line = format!(
                "portcullis_store_operation_duration_seconds_count{{operation=\"{name}\"}} 1"
            );
            assert!(text.lines().any(|l| l == line), "missing `{line}`");
            let errors = u8::from(operation == StoreOperation::Incr);
            let line = format!("portcullis_store_errors_total{{operation=\"{name}\"}} {errors}");
            assert!(text.lines().any(|l| l == line), "missing `{line}`");
        }
    }
}
