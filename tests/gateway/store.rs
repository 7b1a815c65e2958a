//! One behavioural suite for every session store backend.

use std::sync::Arc;
use std::time::Duration;

use portcullis::session::store::{MemoryStore, RedisStore, SessionStore};

use crate::support::RedisServer;

async fn behaves_like_a_session_store(store: Arc<dyn SessionStore>) {
    // create is NX: never overwrites.
    assert!(store
        .create("k1", b"v1", Duration::from_secs(60))
        .await
        .unwrap());
    assert!(!store
        .create("k1", b"other", Duration::from_secs(60))
        .await
        .unwrap());
    assert_eq!(store.load("k1").await.unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(store.load("missing").await.unwrap(), None);

    // touch is XX: updates an existing key, never recreates a deleted one.
    assert!(store
        .touch("k1", b"v2", Duration::from_secs(60))
        .await
        .unwrap());
    assert_eq!(store.load("k1").await.unwrap().as_deref(), Some(&b"v2"[..]));
    store.delete("k1").await.unwrap();
    assert!(!store
        .touch("k1", b"v3", Duration::from_secs(60))
        .await
        .unwrap());
    assert_eq!(store.load("k1").await.unwrap(), None);
    store.delete("k1").await.unwrap(); // deleting twice is fine

    // TTLs expire entries.
    assert!(store
        .create("short", b"x", Duration::from_millis(150))
        .await
        .unwrap());
    assert!(store.load("short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.load("short").await.unwrap(), None);
    assert!(!store
        .touch("short", b"x", Duration::from_secs(60))
        .await
        .unwrap());

    store.ping().await.unwrap();
}

#[tokio::test]
async fn memory_store_behaves_like_a_session_store() {
    behaves_like_a_session_store(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn redis_store_behaves_like_a_session_store() {
    let redis = RedisServer::start();
    let store = RedisStore::new(
        &redis.url(),
        Duration::from_millis(500),
        Duration::from_millis(500),
    )
    .unwrap();
    behaves_like_a_session_store(Arc::new(store)).await;
    // Every key written has a TTL.
    let store = RedisStore::new(
        &redis.url(),
        Duration::from_millis(500),
        Duration::from_millis(500),
    )
    .unwrap();
    store
        .create("ttl-check", b"x", Duration::from_secs(30))
        .await
        .unwrap();
    let ttl: i64 = redis.cmd(&["PTTL", "ttl-check"]);
    assert!(ttl > 0 && ttl <= 30_000, "ttl {ttl}");
}

#[tokio::test]
async fn redis_store_down_is_an_error_within_the_timeout() {
    let mut redis = RedisServer::start();
    let store = RedisStore::new(
        &redis.url(),
        Duration::from_millis(300),
        Duration::from_millis(300),
    )
    .unwrap();
    store.ping().await.unwrap();
    redis.stop();
    let started = std::time::Instant::now();
    assert!(store.load("x").await.is_err());
    assert!(store.ping().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    redis.restart();
    let mut ok = false;
    for _ in 0..50 {
        if store.ping().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the store reconnects after Redis comes back");
}
