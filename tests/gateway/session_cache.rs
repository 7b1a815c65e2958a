//! The session cache (`session.cache_ttl`, on by default with Redis): a warm session costs no
//! store read, a session ended anywhere is evicted everywhere (announced on a channel), and a
//! replica that may have missed an announcement (its listening connection killed, Redis frozen)
//! empties the cache and reads the store again, so an ended session is still refused and a store
//! that is down is still a 503.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::support::{
    self, login, Client, ConfigOptions, Gateway, RedisServer, Store, Upstream, USER_PW,
};

/// What the spec allows: an ended session is refused everywhere within 1 s (`cache_ttl`).
const REVOCATION_BOUND: Duration = Duration::from_secs(1);

/// Wait (at most `within`) until `done` holds; whether it did.
async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if done() {
            return true;
        }
        if started.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn is_live(gateway: &Gateway) -> bool {
    gateway
        .state
        .sessions
        .cache()
        .expect("the cache is on by default with Redis")
        .is_live()
}

/// A gateway on `redis` whose cache is in use (its listener subscribed).
async fn live_gateway(upstream: &Upstream, redis: &RedisServer, session: &str) -> Gateway {
    let yaml = support::config_yaml_with(
        upstream.addr,
        Store::Redis(redis),
        &ConfigOptions {
            session,
            ..ConfigOptions::default()
        },
    );
    let gateway = Gateway::start(&yaml).await;
    assert!(
        eventually(Duration::from_secs(5), || is_live(&gateway)).await,
        "the cache goes live once its listener subscribes"
    );
    gateway
}

fn invalidations(gateway: &Gateway) -> u64 {
    gateway.state.metrics.cache().invalidations.get()
}

fn flushes(gateway: &Gateway) -> u64 {
    gateway.state.metrics.cache().flushes.get()
}

fn with_cookie(gateway: &Gateway, sid: &str) -> Client {
    let mut client = gateway.client();
    client.set_cookie("gw_sid", sid);
    client
}

#[tokio::test]
async fn a_warm_session_reads_the_store_at_most_once_per_cache_ttl() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let gateway = live_gateway(&upstream, &redis, "").await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let mut counter = redis.command_counter();
    let before = counter.counts();

    let started = Instant::now();
    for _ in 0..50 {
        assert_eq!(client.get("/api/x").await.status, 200);
    }
    let elapsed = started.elapsed();
    let after = counter.counts();
    let reads = after.get("get").copied().unwrap_or(0) - before.get("get").copied().unwrap_or(0);
    // One read per started second of the run at most (each read is kept for cache_ttl = 1 s).
    let allowed = elapsed.as_secs() + 1;
    assert!(
        (1..=allowed).contains(&reads),
        "{reads} reads for 50 requests in {elapsed:?}"
    );
    assert_eq!(upstream.requests().len(), 50);
    assert!(gateway.state.metrics.cache().hits.get() >= 50 - allowed);
}

#[tokio::test]
async fn a_session_ended_on_one_replica_is_evicted_by_the_other_as_announced() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let a = live_gateway(&upstream, &redis, "").await;
    let b = live_gateway(&upstream, &redis, "").await;

    // A logout on A.
    let mut on_a = a.client();
    let sid = login(&mut on_a, "user", USER_PW).await;
    let mut on_b = with_cookie(&b, &sid);
    assert_eq!(on_b.get("/api/x").await.status, 200, "now cached on B");
    let heard = invalidations(&b);
    let ended = Instant::now();
    assert_eq!(on_a.delete("/session").await.status, 204);
    assert_eq!(
        with_cookie(&a, &sid).get("/api/x").await.status,
        401,
        "the replica that ended it refuses it at once"
    );
    assert!(
        eventually(REVOCATION_BOUND, || invalidations(&b) > heard).await,
        "B hears of the logout"
    );
    upstream.clear();
    assert_eq!(on_b.get("/api/x").await.status, 401, "and refuses it");
    assert!(ended.elapsed() < REVOCATION_BOUND, "{:?}", ended.elapsed());
    assert!(upstream.is_untouched());

    // A session revoked by handle on A, and all of a user's sessions ended on A.
    let mut revoker = a.client();
    login(&mut revoker, "user", USER_PW).await;
    let mut victim = a.client();
    let victim_sid = login(&mut victim, "user", USER_PW).await;
    let mut victim_on_b = with_cookie(&b, &victim_sid);
    assert_eq!(victim_on_b.get("/api/x").await.status, 200);
    let listing = revoker.get("/session/all").await.json();
    let handle = listing["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .expect("the victim's session")["handle"]
        .as_str()
        .unwrap()
        .to_owned();
    let heard = invalidations(&b);
    assert_eq!(
        revoker
            .delete(&format!("/session/all/{handle}"))
            .await
            .status,
        204
    );
    assert!(eventually(REVOCATION_BOUND, || invalidations(&b) > heard).await);
    assert_eq!(victim_on_b.get("/api/x").await.status, 401);

    let revoker_sid = revoker.jar.get("gw_sid").unwrap().clone();
    let mut revoker_on_b = with_cookie(&b, &revoker_sid);
    assert_eq!(revoker_on_b.get("/api/x").await.status, 200);
    let heard = invalidations(&b);
    assert_eq!(revoker.delete("/session/all").await.status, 204);
    assert!(eventually(REVOCATION_BOUND, || invalidations(&b) > heard).await);
    assert_eq!(revoker_on_b.get("/api/x").await.status, 401);
}

#[tokio::test]
async fn killing_the_listening_connection_empties_and_bypasses_the_cache() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let gateway = live_gateway(&upstream, &redis, "").await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    assert_eq!(client.get("/api/x").await.status, 200, "now cached");

    let listing: String = redis.cmd(&["CLIENT", "LIST", "TYPE", "pubsub"]);
    let ids: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.strip_prefix("id="))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    assert_eq!(ids.len(), 1, "one listening connection: {listing}");
    let killed = Instant::now();
    let _: i64 = redis.cmd(&["CLIENT", "KILL", "ID", ids[0]]);
    // The session ends with nobody announcing it (as when an announcement is lost).
    let key = support::only_session_key(&redis);
    let _: i64 = redis.cmd(&["DEL", &key]);

    assert!(
        eventually(REVOCATION_BOUND, || flushes(&gateway) == 1).await,
        "the lost connection empties the cache"
    );
    upstream.clear();
    assert_eq!(client.get("/api/x").await.status, 401);
    assert!(
        killed.elapsed() < REVOCATION_BOUND,
        "{:?}",
        killed.elapsed()
    );
    assert!(upstream.is_untouched());
    assert!(
        eventually(Duration::from_secs(5), || is_live(&gateway)).await,
        "and it subscribes again"
    );
    let mut again = gateway.client();
    login(&mut again, "user", USER_PW).await;
    assert_eq!(again.get("/api/x").await.status, 200);
}

#[tokio::test]
async fn a_frozen_redis_empties_the_cache_and_requests_get_503() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let gateway = live_gateway(&upstream, &redis, "").await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    assert_eq!(client.get("/api/x").await.status, 200, "now cached");

    redis.freeze();
    // A PING every 250 ms, answered within 500 ms, or the cache is emptied.
    assert!(
        eventually(REVOCATION_BOUND, || flushes(&gateway) == 1).await,
        "the silent connection empties the cache"
    );
    assert!(!is_live(&gateway));
    upstream.clear();
    for attempt in 1..=3 {
        let reply = client.get("/api/x").await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (503, "session_store_unavailable"),
            "attempt {attempt}"
        );
    }
    assert!(upstream.is_untouched());
    redis.thaw();
    assert!(
        eventually(Duration::from_secs(5), || is_live(&gateway)).await,
        "back in use once Redis answers"
    );
    assert_eq!(client.get("/api/x").await.status, 200);
}

#[tokio::test]
async fn concurrent_requests_write_the_idle_refresh_back_once() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    // A refresh is due once less than 3/4 of the idle timeout is left: 1 s after login here.
    let gateway = live_gateway(
        &upstream,
        &redis,
        "  idle_timeout: 4s\n  absolute_timeout: 1h\n",
    )
    .await;
    let mut client = gateway.client();
    let sid = login(&mut client, "user", USER_PW).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let mut counter = redis.command_counter();
    let before = counter.counts();
    let replies = join_all((0..16).map(|_| {
        let mut client = with_cookie(&gateway, &sid);
        async move { client.get("/api/x").await.status }
    }))
    .await;
    assert!(replies.iter().all(|&status| status == 200), "{replies:?}");
    let after = counter.counts();
    let calls = |command: &str| {
        after.get(command).copied().unwrap_or(0) - before.get(command).copied().unwrap_or(0)
    };
    assert_eq!(calls("set"), 1, "one refresh written for 16 requests");
    assert!(calls("get") <= 2, "{} reads", calls("get"));
    let key = support::only_session_key(&redis);
    assert!(
        redis.pttl(&key) > 3000,
        "the refresh moved the idle deadline"
    );
}
