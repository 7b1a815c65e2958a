//! The admin listener: liveness, readiness (with and without the store counting), that its paths
//! live only there, and that everything it answers is JSON marked `no-store`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;

use crate::support::client::Reply;
use crate::support::{self, login, Client, Gateway, RedisServer, Store, USER_PW};

/// GET `path` on the admin listener, checking the headers every admin answer carries.
async fn admin_get(gateway: &Gateway, path: &str) -> Reply {
    let reply = Client::new(gateway.admin).get(path).await;
    assert_eq!(
        reply.header("cache-control"),
        Some("no-store"),
        "{path}: {:?}",
        reply.headers
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{path}"
    );
    reply
}

/// Poll `/readyz?verbose` until its `store` field reads `want`; panics after `within`.
async fn wait_for_store(gateway: &Gateway, want: &str, within: Duration) -> Reply {
    let deadline = Instant::now() + within;
    loop {
        let reply = admin_get(gateway, "/readyz?verbose").await;
        if reply.json()["store"] == want {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "store not {want} after {within:?}: {}",
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn healthz_and_readyz_answer_200_with_json() {
    let (_upstream, gateway) = support::setup(Store::Memory).await;
    let reply = admin_get(&gateway, "/healthz").await;
    assert_eq!(reply.status, 200);
    let reply = admin_get(&gateway, "/readyz").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["ready"], true);
    let reply = admin_get(&gateway, "/readyz?verbose").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        serde_json::json!({ "ready": true, "draining": false, "store": "up" })
    );
}

#[tokio::test]
async fn unknown_admin_paths_and_methods_are_json_errors() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    for path in ["/nope", "/", "/session", "/healthz/x", "/api/x"] {
        let reply = admin_get(&gateway, path).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (404, "not_found"),
            "{path}"
        );
        assert!(reply.json()["message"].is_string(), "{path}");
    }
    let reply = Client::new(gateway.admin)
        .send(Method::POST, "/readyz", &[], Bytes::new())
        .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (405, "method_not_allowed")
    );
    assert!(reply.header("allow").is_some_and(|a| a.contains("GET")));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(
        upstream.is_untouched(),
        "the admin listener forwards nothing"
    );
}

#[tokio::test]
async fn admin_paths_are_not_served_on_the_proxy_listener() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut anonymous = gateway.client();
    for path in ["/healthz", "/readyz", "/readyz?verbose"] {
        let reply = anonymous.get(path).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (401, "unauthenticated"),
            "{path} goes through the rules (default: authenticated)"
        );
    }
    assert!(upstream.is_untouched());

    // With a session it is just another upstream path.
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let reply = client.get("/healthz").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["target"], "/healthz", "the upstream answered");
    assert_eq!(upstream.only().header("x-auth-user"), Some("user"));
}

#[tokio::test]
async fn redis_down_shows_in_verbose_readiness_but_does_not_fail_it_by_default() {
    let mut redis = RedisServer::start();
    let (_upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let reply = wait_for_store(&gateway, "up", Duration::from_secs(5)).await;
    assert_eq!(reply.status, 200);

    redis.stop();
    // The watcher pings every 2 s with a 300 ms timeout.
    let reply = wait_for_store(&gateway, "down", Duration::from_secs(5)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        serde_json::json!({ "ready": true, "draining": false, "store": "down" })
    );
    let reply = admin_get(&gateway, "/readyz").await;
    assert_eq!(reply.status, 200, "a Redis blip never fails readiness");
    assert_eq!(admin_get(&gateway, "/healthz").await.status, 200);
}

#[tokio::test]
async fn ready_requires_store_fails_readiness_while_redis_is_down_and_recovers() {
    let mut redis = RedisServer::start();
    let (_upstream, gateway) = support::setup_with(
        Store::Redis(&redis),
        "admin:\n  ready_requires_store: true\n",
    )
    .await;
    let reply = wait_for_store(&gateway, "up", Duration::from_secs(5)).await;
    assert_eq!(reply.status, 200);

    redis.stop();
    let reply = wait_for_store(&gateway, "down", Duration::from_secs(5)).await;
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.json(),
        serde_json::json!({ "ready": false, "draining": false, "store": "down" })
    );
    let reply = admin_get(&gateway, "/readyz").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["ready"], false);
    assert_eq!(
        admin_get(&gateway, "/healthz").await.status,
        200,
        "liveness never depends on the store"
    );

    redis.restart();
    let reply = wait_for_store(&gateway, "up", Duration::from_secs(6)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(admin_get(&gateway, "/readyz").await.status, 200);
}

#[tokio::test]
async fn draining_fails_readiness_during_the_drain_delay_then_the_listeners_close() {
    let (upstream, mut gateway) =
        support::setup_with(Store::Memory, "shutdown:\n  drain_delay: 1s\n").await;
    assert_eq!(admin_get(&gateway, "/readyz").await.status, 200);
    gateway.begin_shutdown();

    let deadline = Instant::now() + Duration::from_secs(5);
    let reply = loop {
        let reply = admin_get(&gateway, "/readyz?verbose").await;
        if reply.status == 503 {
            break reply;
        }
        assert!(Instant::now() < deadline, "readiness never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        reply.json(),
        serde_json::json!({ "ready": false, "draining": true, "store": "up" })
    );
    assert_eq!(admin_get(&gateway, "/readyz").await.status, 503);
    assert_eq!(admin_get(&gateway, "/healthz").await.status, 200);
    // Still serving while load balancers notice.
    let reply = gateway.client().get("/public/a").await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.only().target, "/public/a");

    // After the delay both listeners close.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(gateway.addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the proxy listener still accepts 5 s after a 1 s drain delay"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(tokio::net::TcpStream::connect(gateway.admin).await.is_err());
}
