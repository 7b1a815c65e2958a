//! One behavioural suite for every session store backend.

use std::sync::Arc;
use std::time::Duration;

use portcullis::config::{RedisConfig, RedisTopology, Secret};
use portcullis::session::store::{MemoryStore, RedisStore, SessionStore};

use crate::support::{RedisCluster, RedisSentinel, RedisServer};

/// A store config for `topology`, with the timeouts the standalone tests use.
fn redis_config(topology: RedisTopology) -> RedisConfig {
    RedisConfig {
        topology,
        username: None,
        password: None,
        ca_pem: None,
        timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
    }
}

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

    // incr: a new counter is 1 and expires after its window; counting on never moves the expiry.
    let minute = Duration::from_secs(60);
    assert_eq!(store.incr("c1", minute).await.unwrap(), 1);
    assert_eq!(store.incr("c1", Duration::from_secs(1)).await.unwrap(), 2);
    assert_eq!(store.incr("c1", minute).await.unwrap(), 3);
    assert_eq!(store.load("c1").await.unwrap().as_deref(), Some(&b"3"[..]));
    let left = store.ttl("c1").await.unwrap().expect("a counter has a TTL");
    assert!(
        left > Duration::from_secs(58) && left <= minute,
        "the first window stands: {left:?}"
    );
    store.delete("c1").await.unwrap();
    assert_eq!(store.ttl("c1").await.unwrap(), None);
    assert_eq!(store.incr("c1", minute).await.unwrap(), 1, "counts anew");

    // decr: takes one back, never below zero, never creating a key, never moving the expiry.
    assert_eq!(store.incr("c1", minute).await.unwrap(), 2);
    store.decr("c1").await.unwrap();
    assert_eq!(store.load("c1").await.unwrap().as_deref(), Some(&b"1"[..]));
    store.decr("c1").await.unwrap();
    store.decr("c1").await.unwrap();
    assert_eq!(store.load("c1").await.unwrap().as_deref(), Some(&b"0"[..]));
    let left = store
        .ttl("c1")
        .await
        .unwrap()
        .expect("still the counter's TTL");
    assert!(left > Duration::from_secs(58) && left <= minute, "{left:?}");
    store.decr("never-counted").await.unwrap();
    assert_eq!(store.ttl("never-counted").await.unwrap(), None);
    assert_eq!(store.load("never-counted").await.unwrap(), None);

    // ttl: time left for any key, none for a missing one; create (NX) never extends it.
    assert_eq!(store.ttl("missing").await.unwrap(), None);
    assert!(store
        .create("ban", b"1", Duration::from_secs(30))
        .await
        .unwrap());
    assert!(!store.create("ban", b"1", minute).await.unwrap());
    let left = store.ttl("ban").await.unwrap().unwrap();
    assert!(
        left > Duration::from_secs(28) && left <= Duration::from_secs(30),
        "{left:?}"
    );

    // TTLs expire entries, counters included.
    assert!(store
        .create("short", b"x", Duration::from_millis(150))
        .await
        .unwrap());
    assert!(store.load("short").await.unwrap().is_some());
    assert_eq!(
        store
            .incr("short-count", Duration::from_millis(150))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.incr("short-count", minute).await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.load("short").await.unwrap(), None);
    assert_eq!(store.ttl("short").await.unwrap(), None);
    assert!(!store
        .touch("short", b"x", Duration::from_secs(60))
        .await
        .unwrap());
    assert_eq!(
        store.incr("short-count", minute).await.unwrap(),
        1,
        "an expired counter starts over"
    );

    store.ping().await.unwrap();
    behaves_like_a_sorted_set_store(store.as_ref()).await;
}

/// The sorted-set operations behind each user's index of sessions.
async fn behaves_like_a_sorted_set_store(store: &dyn SessionStore) {
    let minute = Duration::from_secs(60);
    let members = |range: Vec<(String, u64)>| -> Vec<String> {
        range.into_iter().map(|(member, _)| member).collect()
    };
    // A missing set reads as empty; removing from it creates nothing.
    assert_eq!(store.sorted_range("z").await.unwrap(), vec![]);
    store.sorted_remove("z", &["a".into()]).await.unwrap();
    store.sorted_remove_through("z", u64::MAX).await.unwrap();
    assert_eq!(store.ttl("z").await.unwrap(), None);

    // Lowest score first, equal scores by member; re-adding a member moves it.
    let epoch_ms = 1_700_000_000_123;
    store
        .sorted_add("z", "c", epoch_ms + 2, minute)
        .await
        .unwrap();
    store.sorted_add("z", "b", epoch_ms, minute).await.unwrap();
    store
        .sorted_add("z", "a", epoch_ms + 1, minute)
        .await
        .unwrap();
    store.sorted_add("z", "d", epoch_ms, minute).await.unwrap();
    assert_eq!(
        store.sorted_range("z").await.unwrap(),
        vec![
            ("b".to_owned(), epoch_ms),
            ("d".to_owned(), epoch_ms),
            ("a".to_owned(), epoch_ms + 1),
            ("c".to_owned(), epoch_ms + 2),
        ],
        "scores are kept exactly"
    );
    store
        .sorted_add("z", "b", epoch_ms + 3, minute)
        .await
        .unwrap();
    assert_eq!(
        members(store.sorted_range("z").await.unwrap()),
        ["d", "a", "c", "b"]
    );

    // The key always has a TTL: set by the first add, extended by a longer one, never shortened.
    let left = store
        .ttl("z")
        .await
        .unwrap()
        .expect("a sorted set has a TTL");
    assert!(left > Duration::from_secs(58) && left <= minute, "{left:?}");
    store
        .sorted_add("z", "e", epoch_ms + 4, Duration::from_secs(1))
        .await
        .unwrap();
    let left = store.ttl("z").await.unwrap().unwrap();
    assert!(left > Duration::from_secs(58), "never shortened: {left:?}");
    store
        .sorted_add("z", "e", epoch_ms + 4, Duration::from_secs(600))
        .await
        .unwrap();
    let left = store.ttl("z").await.unwrap().unwrap();
    assert!(left > Duration::from_secs(598), "extended: {left:?}");

    // Removing members (absent ones ignored) and everything scored at or below a bound.
    store
        .sorted_remove("z", &["a".into(), "nope".into()])
        .await
        .unwrap();
    assert_eq!(
        members(store.sorted_range("z").await.unwrap()),
        ["d", "c", "b", "e"]
    );
    store
        .sorted_remove_through("z", epoch_ms + 2)
        .await
        .unwrap();
    assert_eq!(members(store.sorted_range("z").await.unwrap()), ["b", "e"]);
    let left = store.ttl("z").await.unwrap().unwrap();
    assert!(
        left > Duration::from_secs(598),
        "removal keeps the TTL: {left:?}"
    );
    // A set left empty is gone.
    store
        .sorted_remove("z", &["b".into(), "e".into()])
        .await
        .unwrap();
    assert_eq!(store.ttl("z").await.unwrap(), None);
    assert_eq!(store.sorted_range("z").await.unwrap(), vec![]);
    store.sorted_add("z", "x", 5, minute).await.unwrap();
    store.sorted_remove_through("z", 5).await.unwrap();
    assert_eq!(store.ttl("z").await.unwrap(), None);

    // A set and a value are different kinds: using one as the other is an error, never a reset.
    assert!(store.create("plain", b"v", minute).await.unwrap());
    assert!(store.sorted_add("plain", "m", 1, minute).await.is_err());
    assert!(store.sorted_range("plain").await.is_err());
    assert_eq!(
        store.load("plain").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    store.sorted_add("set", "m", 1, minute).await.unwrap();
    assert!(store.load("set").await.is_err());
    assert!(store.incr("set", minute).await.is_err());
    assert_eq!(store.sorted_range("set").await.unwrap().len(), 1);
    store.delete("set").await.unwrap();
    assert_eq!(store.sorted_range("set").await.unwrap(), vec![]);
    store.delete("plain").await.unwrap();

    // The TTL ends the set with everything in it.
    store
        .sorted_add("short-set", "m", 1, Duration::from_millis(150))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.sorted_range("short-set").await.unwrap(), vec![]);
    assert_eq!(store.ttl("short-set").await.unwrap(), None);
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
    store
        .incr("count-check", Duration::from_secs(30))
        .await
        .unwrap();
    let ttl = redis.pttl("count-check");
    assert!(ttl > 0 && ttl <= 30_000, "counter ttl {ttl}");
    // A counter found without expiry (written by something else) gets one on its next count,
    // and until then reports an unbounded lifetime rather than none.
    let _: () = redis.cmd(&["SET", "stray", "5"]);
    assert_eq!(store.ttl("stray").await.unwrap(), Some(Duration::MAX));
    assert_eq!(
        store.incr("stray", Duration::from_secs(30)).await.unwrap(),
        6
    );
    let ttl = redis.pttl("stray");
    assert!(ttl > 0 && ttl <= 30_000, "stray ttl {ttl}");
    // A sorted set found without expiry gets one on its next add.
    let _: i64 = redis.cmd(&["ZADD", "stray-set", "1", "m"]);
    store
        .sorted_add("stray-set", "n", 2, Duration::from_secs(30))
        .await
        .unwrap();
    let ttl = redis.pttl("stray-set");
    assert!(ttl > 0 && ttl <= 30_000, "stray set ttl {ttl}");
    // The counter script survives a flushed script cache (NOSCRIPT is answered by loading it).
    let _: () = redis.cmd(&["SCRIPT", "FLUSH"]);
    assert_eq!(
        store.incr("stray", Duration::from_secs(30)).await.unwrap(),
        7
    );
}

#[tokio::test]
async fn cluster_store_behaves_like_a_session_store() {
    let cluster = RedisCluster::start(3, 0);
    let nodes = cluster.urls().into_iter().map(Secret::new).collect();
    let config = redis_config(RedisTopology::Cluster(nodes));
    let store = Arc::new(RedisStore::connect(&config).unwrap());
    behaves_like_a_session_store(Arc::clone(&store) as Arc<dyn SessionStore>).await;
    // Keys land on every primary, each command on the node owning its key's slot.
    let keys: Vec<String> = (0..30).map(|i| format!("portcullis:s:{i:02}")).collect();
    for key in &keys {
        assert!(store
            .create(key, b"v", Duration::from_secs(30))
            .await
            .unwrap());
        assert_eq!(
            store
                .incr(&format!("{key}:n"), Duration::from_secs(30))
                .await
                .unwrap(),
            1
        );
    }
    let owners: std::collections::BTreeSet<usize> =
        keys.iter().map(|k| cluster.primary_for(k)).collect();
    assert_eq!(owners.len(), 3, "30 keys spread over the three primaries");
    for key in cluster.keys() {
        let ttl = cluster.pttl(&key);
        assert!(ttl > 0, "{key} has a TTL: {ttl}");
    }
    // The counter script survives flushed script caches on every node (NOSCRIPT: loaded again).
    for i in cluster.primaries() {
        let _: () = cluster.nodes[i].cmd(&["SCRIPT", "FLUSH"]);
    }
    for key in &keys {
        assert_eq!(
            store
                .incr(&format!("{key}:n"), Duration::from_secs(30))
                .await
                .unwrap(),
            2
        );
    }
}

#[tokio::test]
async fn sentinel_store_behaves_like_a_session_store() {
    let sentinel = RedisSentinel::start();
    let nodes = sentinel
        .sentinels
        .iter()
        .map(|s| Secret::new(format!("redis://{}", s.addr())))
        .collect();
    let config = redis_config(RedisTopology::Sentinel {
        master_name: crate::support::redis_sentinel::MASTER_NAME.into(),
        nodes,
    });
    let store = Arc::new(RedisStore::connect(&config).unwrap());
    behaves_like_a_session_store(Arc::clone(&store) as Arc<dyn SessionStore>).await;
    // Everything went to the primary, and reaches the replica.
    assert!(store
        .create("on-primary", b"v", Duration::from_secs(30))
        .await
        .unwrap());
    let primary = &sentinel.nodes[sentinel.primary()];
    let keys = primary.keys();
    assert_eq!(keys, ["ban", "c1", "on-primary", "short-count"]);
    primary.wait_replicas_caught_up(Duration::from_secs(5));
    let replica = &sentinel.nodes[1 - sentinel.primary()];
    assert_eq!(replica.keys(), keys);
}

#[tokio::test]
async fn memory_store_counters_refuse_a_value_that_is_not_a_count() {
    let store = MemoryStore::new();
    store
        .create("k", b"not a number", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(store.incr("k", Duration::from_secs(60)).await.is_err());
    assert_eq!(
        store.load("k").await.unwrap().as_deref(),
        Some(&b"not a number"[..])
    );
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
