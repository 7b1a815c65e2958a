//! Session lifetimes on Redis: the sliding idle timeout, the absolute timeout that use never
//! extends, TTLs that never outlive the absolute deadline, refreshes that are rare writes, and a
//! logout racing a slow request (C14, race).

use std::time::{Duration, Instant};

use portcullis::session::now_ms;

use crate::support::{
    self, login, only_session_key, ConfigOptions, RedisServer, Store, Upstream, USER_PW,
};
use crate::support::{Client, Gateway};

/// A Redis-backed gateway with `session` lines added (`idle_timeout`, `absolute_timeout`).
async fn setup_lifetimes(redis: &RedisServer, session: &str) -> (Upstream, Gateway) {
    support::setup_with_options(
        Store::Redis(redis),
        &ConfigOptions {
            session,
            ..ConfigOptions::default()
        },
    )
    .await
}

/// Check that the key's TTL does not reach past the record's absolute deadline. `sent_ms` is the
/// wall clock just before the latest request was sent. The gateway sets a relative TTL (PX)
/// computed a moment before Redis applies it, so the key may outlive the deadline by that moment;
/// 50 ms allows for it, far less than a refresh ignoring the absolute deadline would overshoot
/// (up to the whole idle timeout).
fn assert_ttl_within_absolute_deadline(redis: &RedisServer, key: &str, sent_ms: u64) {
    let record: String = redis.cmd(&["GET", key]);
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    let expires_at = record["expires_at"].as_u64().expect("expires_at in ms");
    let pttl = redis.pttl(key);
    assert!(pttl > 0, "the key has a TTL: {pttl}");
    let allowed = expires_at.saturating_sub(sent_ms);
    assert!(
        u64::try_from(pttl).unwrap() <= allowed + 50,
        "PTTL {pttl} ms reaches past the absolute deadline ({allowed} ms left when the request \
         was sent)"
    );
}

#[tokio::test]
async fn a_session_in_use_outlives_the_idle_timeout_but_ends_at_the_absolute_one() {
    let redis = RedisServer::start();
    let (upstream, gateway) =
        setup_lifetimes(&redis, "  idle_timeout: 2s\n  absolute_timeout: 4s\n").await;
    let mut client = gateway.client();
    let login_started = Instant::now();
    let sid = login(&mut client, "user", USER_PW).await;
    let login_done = Instant::now();
    let key = only_session_key(&redis);

    // Used every 500 ms well past the 2 s idle timeout, up to shortly before the absolute one
    // (counted from before the login, so from no later than the session's creation).
    let mut uses = 0;
    while login_started.elapsed() < Duration::from_millis(3300) {
        let sent = now_ms();
        let reply = client.get("/api/x").await;
        assert_eq!(
            reply.status,
            200,
            "use {uses} at {:?}: {}",
            login_started.elapsed(),
            reply.text()
        );
        assert_ttl_within_absolute_deadline(&redis, &key, sent);
        uses += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(uses >= 6, "only {uses} uses");

    // Counted from after the login, so from no earlier than the session's creation.
    let past_absolute = login_done + Duration::from_millis(4300);
    tokio::time::sleep_until(past_absolute.into()).await;
    let reply = client.get("/api/x").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (401, "unauthenticated")
    );
    assert_eq!(client.get("/session").await.status, 401);
    assert_eq!(redis.pttl(&key), -2, "the record expired with the session");
    assert_eq!(upstream.requests().len(), uses);
    let _ = sid;
}

#[tokio::test]
async fn an_unused_session_ends_after_the_idle_timeout() {
    let redis = RedisServer::start();
    let (upstream, gateway) =
        setup_lifetimes(&redis, "  idle_timeout: 2s\n  absolute_timeout: 60s\n").await;
    let mut client = gateway.client();
    let sent = now_ms();
    login(&mut client, "user", USER_PW).await;
    let login_done = Instant::now();
    let key = only_session_key(&redis);
    assert_ttl_within_absolute_deadline(&redis, &key, sent);
    let pttl = redis.pttl(&key);
    assert!(pttl <= 2000, "TTL follows the idle deadline: {pttl} ms");

    tokio::time::sleep_until((login_done + Duration::from_millis(2300)).into()).await;
    let reply = client.get("/api/x").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (401, "unauthenticated")
    );
    assert_eq!(client.get("/session").await.status, 401);
    assert_eq!(redis.pttl(&key), -2);
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn the_idle_refresh_does_not_write_on_every_request() {
    let redis = RedisServer::start();
    let (upstream, gateway) =
        // Without the session cache, which is what makes reads rarer (tests/gateway/session_cache.rs).
        setup_lifetimes(&redis, "  idle_timeout: 10s\n  absolute_timeout: 1h\n  cache_ttl: 0s\n")
            .await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let key = only_session_key(&redis);
    let pttl_before = redis.pttl(&key);

    redis.reset_stats();
    let started = Instant::now();
    for _ in 0..8 {
        assert_eq!(client.get("/api/x").await.status, 200);
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(2500),
        "premise: all requests within a quarter of the idle timeout (took {elapsed:?})"
    );
    assert_eq!(upstream.requests().len(), 8);
    assert_eq!(redis.command_calls("get"), 8, "one read per request");
    assert_eq!(
        redis.command_calls("set"),
        0,
        "no refresh while more than 3/4 of the idle timeout remains"
    );
    assert!(redis.pttl(&key) <= pttl_before, "the TTL was not extended");
}

#[tokio::test]
async fn a_logout_during_a_slow_request_stays_a_logout() {
    let redis = RedisServer::start();
    // A short idle timeout so that the slow request itself refreshes the record.
    let (upstream, gateway) =
        setup_lifetimes(&redis, "  idle_timeout: 2s\n  absolute_timeout: 60s\n").await;
    let mut client = gateway.client();
    let sid = login(&mut client, "user", USER_PW).await;
    let key = only_session_key(&redis);
    tokio::time::sleep(Duration::from_millis(600)).await;

    let mut slow_client = gateway.client();
    slow_client.set_cookie("gw_sid", &sid);
    let slow = tokio::spawn(async move { slow_client.get("/api/slow").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The upstream holds /api/slow for 1.5 s: the logout lands while it is in flight.
    assert_eq!(upstream.only().target, "/api/slow");
    let reply = client.delete("/session").await;
    assert_eq!(reply.status, 204);
    assert!(
        !slow.is_finished(),
        "the logout ran during the slow request"
    );
    assert_eq!(redis.pttl(&key), -2, "logout deleted the record");

    let reply = slow.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        redis.pttl(&key),
        -2,
        "the slow request did not bring it back"
    );
    assert!(
        redis.keys().iter().all(|k| !k.starts_with("portcullis:s:")),
        "{:?}",
        redis.keys()
    );

    let mut replay = Client::new(gateway.addr);
    replay.set_cookie("gw_sid", &sid);
    let reply = replay.get("/api/x").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (401, "unauthenticated")
    );
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn near_the_absolute_deadline_requests_do_not_each_rewrite_the_session() {
    let redis = RedisServer::start();
    let (_upstream, gateway) =
        setup_lifetimes(&redis, "  idle_timeout: 8s\n  absolute_timeout: 8s\n").await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let login_done = Instant::now();
    let key = only_session_key(&redis);

    // 2.3 s in, less than 3/4 of the idle timeout is left (5.7 s < 6 s), and no refresh can
    // extend the idle deadline any more: it already equals the absolute one. From here on a
    // refresh has nothing to write.
    tokio::time::sleep_until((login_done + Duration::from_millis(2300)).into()).await;
    redis.reset_stats();
    let started = Instant::now();
    for _ in 0..9 {
        let sent = now_ms();
        assert_eq!(client.get("/api/x").await.status, 200);
        assert_ttl_within_absolute_deadline(&redis, &key, sent);
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "premise: all requests within a quarter of the idle timeout (took {elapsed:?})"
    );
    let sets = redis.command_calls("set");
    assert!(
        sets <= 2,
        "{sets} SETs for 9 requests within a quarter of the idle timeout: at most one write \
         per quarter idle timeout (DESIGN, Sessions)"
    );
}
