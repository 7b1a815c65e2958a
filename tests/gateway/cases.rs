//! The security cases C06, C07, C11 and C13: each listed input with the exact status and what the
//! upstream must or must not receive. The path cases (C01, C02, C05) are in `paths`.

use bytes::Bytes;
use http::Method;

use std::collections::BTreeMap;

use crate::support::{
    self, commands_between, login, raw, RedisServer, Store, Upstream, ADMIN_PW, USER_PW,
};

#[tokio::test]
async fn c06_identity_headers_from_the_client_never_reach_the_upstream() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut anon = gateway.client();
    let reply = anon
        .send(
            Method::GET,
            "/public/a",
            &[("X-Auth-User", "admin"), ("X-Auth-Roles", "admin")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert!(!upstream.only().has_prefix("x-auth-"));
    upstream.clear();

    let mut user = gateway.client();
    login(&mut user, "user", USER_PW).await;
    let reply = user
        .send(
            Method::GET,
            "/api/x",
            &[("X-Auth-Roles", "admin"), ("x-auth-user", "admin")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    assert_eq!(seen.all("x-auth-user"), ["user"]);
    assert_eq!(seen.all("x-auth-roles"), ["reader"]);
    upstream.clear();

    // Name variants, each alone; raw so the exact spellings (underscores, duplicates) arrive.
    let sid = user.cookie("gw_sid").unwrap();
    for variant in [
        "X_Auth_User: admin",
        "X-AUTH-ROLES: admin",
        "X-Auth-Roles: admin\r\nX-Auth-Roles: admin",
        "X-Auth-Roles:",
        "X-Auth-Foo: 1",
        "Remote-User: admin",
        "X_Forwarded_User: admin",
    ] {
        let request = format!(
            "GET /api/x HTTP/1.1\r\nHost: gw.example.test\r\nCookie: gw_sid={sid}\r\n{variant}\r\nConnection: close\r\n\r\n"
        );
        let (status, text) = raw(gateway.addr, request.as_bytes()).await;
        assert_eq!(status, 200, "{variant}: {text}");
        let seen = upstream.only();
        assert_eq!(seen.all("x-auth-user"), ["user"], "{variant}");
        assert_eq!(seen.all("x-auth-roles"), ["reader"], "{variant}");
        let idents: Vec<_> = seen
            .headers
            .iter()
            .filter(|(n, _)| {
                let n = n.to_ascii_lowercase().replace('_', "-");
                n.starts_with("x-auth-") || n == "remote-user" || n == "x-forwarded-user"
            })
            .collect();
        assert_eq!(idents.len(), 2, "{variant}: {idents:?}");
        upstream.clear();
    }
}

#[tokio::test]
async fn c07_connection_header_cannot_remove_what_the_gateway_adds() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut user = gateway.client();
    let sid = login(&mut user, "user", USER_PW).await;
    for extra in [
        "Connection: keep-alive, X-Auth-User, X-Auth-Roles, X-Forwarded-For",
        "Connection: close, x-auth-roles",
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
        "Connection: Cookie",
        "Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic dG9rZW4=\r\nProxy-Connection: keep-alive",
    ] {
        let request = format!(
            "GET /api/x HTTP/1.1\r\nHost: gw.example.test\r\nCookie: gw_sid={sid}\r\n{extra}\r\nConnection: close\r\n\r\n"
        );
        let (status, text) = raw(gateway.addr, request.as_bytes()).await;
        assert_eq!(status, 200, "{extra}: {text}");
        let seen = upstream.only();
        assert_eq!(seen.header("x-auth-user"), Some("user"), "{extra}");
        assert_eq!(seen.header("x-auth-roles"), Some("reader"), "{extra}");
        assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"), "{extra}");
        for hop in ["connection", "keep-alive", "te", "upgrade", "http2-settings", "proxy-authorization", "proxy-connection"] {
            assert_eq!(seen.header(hop), None, "{extra}: {hop} reached the upstream");
        }
        upstream.clear();
    }
}

#[tokio::test]
async fn c11_malformed_session_cookies_are_401_without_any_store_command() {
    let redis = RedisServer::start();
    let (upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let mut user = gateway.client();
    let sid = login(&mut user, "user", USER_PW).await;
    let keys_before = redis.keys();
    let mut counter = redis.command_counter();
    let before = counter.counts();
    for cookie in support::malformed_session_cookies(&sid) {
        let request = format!("GET /api/x HTTP/1.1\r\nHost: gw.example.test\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n");
        let (status, text) = raw(gateway.addr, request.as_bytes()).await;
        assert_eq!(status, 401, "{cookie}: {text}");
    }
    // Non-UTF-8 bytes in the value.
    let mut request =
        b"GET /api/x HTTP/1.1\r\nHost: gw.example.test\r\nCookie: gw_sid=\xff\xfe".to_vec();
    request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    assert!(matches!(raw(gateway.addr, &request).await.0, 400 | 401));
    // Two Cookie fields each carrying the session cookie.
    let request = format!("GET /api/x HTTP/1.1\r\nHost: gw.example.test\r\nCookie: gw_sid={sid}\r\nCookie: gw_sid={sid}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw(gateway.addr, request.as_bytes()).await.0, 401);

    // Not a read, nor any other command: only the store's health check may have run meanwhile.
    let after = counter.counts();
    assert_eq!(
        commands_between(&before, &after, &["ping", "info"]),
        BTreeMap::new(),
        "store commands for a bad cookie"
    );
    assert_eq!(redis.keys(), keys_before, "no key created");
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn anonymous_route_with_a_valid_session_cookie_sends_no_command_to_redis() {
    let redis = RedisServer::start();
    let (upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let mut counter = redis.command_counter();

    let before = counter.counts();
    let reply = client.get("/public/a").await;
    assert_eq!(reply.status, 200);
    assert!(!upstream.only().has_prefix("x-auth-"));
    let after = counter.counts();
    assert_eq!(
        commands_between(&before, &after, &["ping", "info"]),
        BTreeMap::new(),
        "an anonymous route never reads the session"
    );

    // The same cookie on a route that needs the session is seen reading it.
    assert_eq!(client.get("/api/x").await.status, 200);
    let read = commands_between(&after, &counter.counts(), &["ping", "info"]);
    assert_eq!(read.get("get"), Some(&1), "{read:?}");
}

#[tokio::test]
async fn c13_login_never_keeps_or_adopts_a_client_chosen_id() {
    let redis = RedisServer::start();
    let (upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let mut user = gateway.client();
    let sid_user = login(&mut user, "user", USER_PW).await;

    // 1. Logging in as admin while carrying the user's session.
    let mut client = gateway.client();
    client.set_cookie("gw_sid", &sid_user);
    let sid_admin = login(&mut client, "admin", ADMIN_PW).await;
    assert_ne!(sid_admin, sid_user);
    let mut replay = gateway.client();
    replay.set_cookie("gw_sid", &sid_user);
    assert_eq!(
        replay.get("/api/x").await.status,
        401,
        "the carried session was deleted"
    );
    assert_eq!(client.get("/session").await.json()["user"], "admin");

    // 2. A signed id that does not exist, and an unsigned attacker string.
    let unknown = support::unknown_signed_cookie();
    for planted in [unknown.as_str(), "attackerchosen"] {
        let mut client = gateway.client();
        client.set_cookie("gw_sid", planted);
        let fresh = login(&mut client, "user", USER_PW).await;
        assert_ne!(fresh, planted);
        let planted_id = planted.split('.').next().unwrap();
        assert!(redis.keys().iter().all(|k| !k.contains(planted_id)));
    }

    // 3. A public page with an unknown signed id creates nothing.
    let keys = redis.keys();
    let mut client = gateway.client();
    client.set_cookie("gw_sid", &unknown);
    assert_eq!(client.get("/public/a").await.status, 200);
    assert_eq!(redis.keys(), keys);
    let _ = upstream;
}

#[tokio::test]
async fn credentials_sent_to_any_spelling_of_the_session_path_never_reach_the_upstream() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let body = format!("{{\"username\":\"user\",\"password\":\"{USER_PW}\"}}");
    for target in [
        "//session",
        "/%73ession",
        "/./session",
        "/public/../session",
        "/SESSION",
        "/Session/x",
        "/session/",
    ] {
        let request = format!(
            "POST {target} HTTP/1.1\r\nHost: gw.example.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (status, text) = raw(gateway.addr, request.as_bytes()).await;
        assert!(matches!(status, 201 | 404), "{target}: {text}");
    }
    assert!(upstream.is_untouched());
    let _ = Upstream::start;
}

#[tokio::test]
async fn c11_a_comma_joined_cookie_field_is_no_session_and_never_carries_the_cookie_upstream() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    let sid = login(&mut client, "user", USER_PW).await;
    let joined = format!("a=b, gw_sid={sid}; c=3");
    let reply = client
        .send(Method::GET, "/api/x", &[("cookie", &joined)], Bytes::new())
        .await;
    assert_eq!(reply.status, 401);
    assert!(upstream.is_untouched());
    let reply = client
        .send(
            Method::GET,
            "/public/a",
            &[("cookie", &joined)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    assert_eq!(seen.all("cookie"), ["c=3"]);
    assert!(seen.headers.iter().all(|(_, v)| !v.contains(&sid)));
}
