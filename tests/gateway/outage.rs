//! The session store going away (C17): fail closed where a session is needed, keep public routes
//! working, and recover on its own.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;

use crate::support::{self, login, ConfigOptions, RedisServer, Store, USER_PW};

#[tokio::test]
async fn frozen_redis_fails_closed_and_public_routes_keep_working() {
    let redis = RedisServer::start();
    let (upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let mut client = gateway.client();
    let sid = login(&mut client, "user", USER_PW).await;
    upstream.clear();
    redis.freeze();

    let reply = client.get("/api/x").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (503, "session_store_unavailable")
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let mut forged = gateway.client();
    forged.set_cookie("gw_sid", &support::unknown_signed_cookie());
    assert_eq!(forged.get("/api/x").await.status, 503);
    let mut unsigned = gateway.client();
    unsigned.set_cookie("gw_sid", "attackerchosen");
    assert_eq!(
        unsigned.get("/api/x").await.status,
        401,
        "a bad signature never reaches the store"
    );
    let mut anonymous = gateway.client();
    assert_eq!(anonymous.get("/public/a").await.status, 200);
    assert_eq!(upstream.only().target, "/public/a");

    let reply = anonymous
        .post_json(
            "/session",
            &serde_json::json!({ "username": "user", "password": USER_PW }),
        )
        .await;
    assert_eq!(reply.status, 503);
    assert!(
        reply.set_cookies().is_empty(),
        "no session that exists only in the cookie"
    );

    let reply = client.delete("/session").await;
    assert_eq!(reply.status, 503);
    assert!(
        reply.set_cookies()[0].contains("Max-Age=0"),
        "the cookie is still expired"
    );
    redis.thaw();
    let _ = sid;
}

#[tokio::test]
async fn protected_request_with_a_valid_cookie_is_503_within_1_5_s_while_redis_is_frozen() {
    let redis = RedisServer::start();
    // The store path itself; with the session cache on, see
    // session_cache::a_frozen_redis_empties_the_cache_and_requests_get_503.
    let (upstream, gateway) = support::setup_with_options(
        Store::Redis(&redis),
        &ConfigOptions {
            session: "  cache_ttl: 0s\n",
            ..ConfigOptions::default()
        },
    )
    .await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    assert_eq!(client.get("/api/x").await.status, 200);
    upstream.clear();
    redis.freeze();

    // redis_timeout is 300ms. The first request finds the open connection silent; the later ones
    // meet the store while it is reconnecting to a process that accepts but never answers.
    for attempt in 1..=3 {
        let started = Instant::now();
        let reply = client.get("/api/x").await;
        let elapsed = started.elapsed();
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (503, "session_store_unavailable"),
            "attempt {attempt}"
        );
        assert!(
            elapsed < Duration::from_millis(1500),
            "attempt {attempt} took {elapsed:?}"
        );
    }
    assert!(upstream.is_untouched());
    redis.thaw();
}

#[tokio::test]
async fn get_session_is_503_while_redis_is_frozen_and_while_it_is_stopped() {
    let mut redis = RedisServer::start();
    let (_upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;

    redis.freeze();
    let reply = client.get("/session").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (503, "session_store_unavailable"),
        "frozen"
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    redis.thaw();

    redis.stop();
    let reply = client.get("/session").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (503, "session_store_unavailable"),
        "stopped"
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn redis_stopped_then_restarted_recovers_and_a_refused_logout_leaves_the_record() {
    let mut redis = RedisServer::start();
    let (upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let mut client = gateway.client();
    let sid = login(&mut client, "user", USER_PW).await;
    redis.stop();
    assert_eq!(client.get("/api/x").await.status, 503);
    let admin = crate::support::Client::new(gateway.admin)
        .get("/readyz?verbose")
        .await;
    assert_eq!(
        admin.status, 200,
        "a store outage does not fail readiness by default"
    );

    let reply = client.delete("/session").await;
    assert_eq!(reply.status, 503);
    assert!(
        reply.set_cookies()[0].contains("Max-Age=0"),
        "the cookie is still expired"
    );

    redis.restart();
    // The record was left to its TTL: the replayed cookie works again, without a gateway restart.
    let mut replay = gateway.client();
    replay.set_cookie("gw_sid", &sid);
    let mut status = 0;
    for _ in 0..50 {
        status = replay.get("/api/x").await.status;
        if status != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
    assert_eq!(upstream.only().header("x-auth-user"), Some("user"));
    let reply = client
        .send(
            Method::POST,
            "/session",
            &[("content-type", "application/json")],
            Bytes::from(format!(
                "{{\"username\":\"user\",\"password\":\"{USER_PW}\"}}"
            )),
        )
        .await;
    assert_eq!(reply.status, 201);
}

#[tokio::test]
async fn corrupted_session_record_is_401_and_deleted() {
    let redis = RedisServer::start();
    let (upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let key = redis
        .keys()
        .into_iter()
        .find(|k| k.starts_with("portcullis:s:"))
        .unwrap();
    let _: () = redis.cmd(&["SET", &key, "not json at all", "EX", "60"]);
    let reply = client.get("/api/x").await;
    assert_eq!(reply.status, 401);
    assert!(upstream.is_untouched());
    assert!(!redis.keys().contains(&key));
}

#[tokio::test]
async fn a_record_past_its_own_deadline_is_401_and_deleted_whatever_its_ttl() {
    let redis = RedisServer::start();
    let (upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let key = support::only_session_key(&redis);
    for deadline in ["expires_at", "idle_expires_at"] {
        let raw: String = redis.cmd(&["GET", &key]);
        let mut record: serde_json::Value = serde_json::from_str(&raw).unwrap();
        record[deadline] = serde_json::json!(1_000);
        let _: () = redis.cmd(&["SET", &key, &record.to_string(), "EX", "600"]);
        let reply = client.get("/api/x").await;
        assert_eq!(reply.status, 401, "{deadline}");
        assert!(upstream.is_untouched(), "{deadline}");
        assert!(!redis.keys().contains(&key), "{deadline}");
        // Put the live record back for the next deadline.
        let _: () = redis.cmd(&["SET", &key, &raw, "EX", "600"]);
    }
}
