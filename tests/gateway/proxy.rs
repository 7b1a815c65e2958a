//! What the upstream receives, and what the client gets back.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::support::{
    self, login, raw, ConfigOptions, RedisServer, Store, Upstream, ADMIN_PW, USER_PW,
};

/// Read from `stream` into `buf` until `buf[from..]` contains `needle`; returns the index just
/// past it. Panics if the stream ends first or 10 s pass (a hang guard, not a timing claim).
async fn read_until(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    from: usize,
    needle: &[u8],
) -> usize {
    let found = |buf: &[u8]| {
        buf[from.min(buf.len())..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|at| from + at + needle.len())
    };
    let wait = async {
        loop {
            if let Some(end) = found(buf) {
                return end;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(
                n > 0,
                "stream ended before {:?}: {}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("no {:?} within 10 s", String::from_utf8_lossy(needle)))
}

#[tokio::test]
async fn authenticated_request_reaches_upstream_with_identity_and_clean_headers() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    let sid = login(&mut client, "admin", ADMIN_PW).await;
    let reply = client
        .send(
            Method::GET,
            "/api/x?b=2&a=1",
            &[
                ("cookie", &format!("theirs=1; gw_sid={sid}; other=2")),
                ("x-auth-user", "mallory"),
                ("X-HTTP-Method-Override", "DELETE"),
                ("x-forwarded-for", "1.2.3.4"),
                ("forwarded", "for=1.2.3.4"),
                ("x-original-url", "/public/a"),
                ("accept", "application/json"),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = upstream.only();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.target, "/api/x?b=2&a=1");
    assert_eq!(seen.header("x-auth-user"), Some("admin"));
    assert_eq!(seen.header("x-auth-roles"), Some("reader,admin"));
    assert_eq!(seen.header("cookie"), Some("theirs=1; other=2"));
    assert_eq!(seen.header("x-http-method-override"), None);
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(gateway.addr.to_string().as_str())
    );
    assert_eq!(seen.header("forwarded"), None);
    assert_eq!(seen.header("x-original-url"), None);
    assert_eq!(seen.header("accept"), Some("application/json"));
    assert_eq!(
        seen.header("host"),
        Some(gateway.addr.to_string().as_str()),
        "host_header: preserve"
    );
}

#[tokio::test]
async fn method_override_headers_in_every_spelling_never_reach_the_upstream() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    for header in [
        "X-HTTP-Method",
        "X-Method-Override",
        "X-HTTP-Method-Override",
        "x-http-method",
        "X_Method_Override",
        "X_HTTP_Method",
    ] {
        let reply = client
            .send(Method::POST, "/api/x", &[(header, "DELETE")], Bytes::new())
            .await;
        assert_eq!(reply.status, 200, "{header}");
        let seen = upstream.only();
        assert_eq!(seen.method, "POST", "{header}");
        for name in [
            "x-http-method",
            "x-method-override",
            "x-http-method-override",
        ] {
            assert!(
                !seen.has_prefix(name),
                "{header}: {name} reached the upstream: {:?}",
                seen.headers
            );
        }
        upstream.clear();
    }
}

#[tokio::test]
async fn only_the_session_cookie_means_no_cookie_header_upstream() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    assert_eq!(client.get("/api/x").await.status, 200);
    assert_eq!(upstream.only().header("cookie"), None);
}

#[tokio::test]
async fn user_without_the_role_gets_403_and_nothing_is_forwarded() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let reply = client.get("/admin/users").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (403, "forbidden")
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn rules_methods_and_default_deny() {
    let extra = "";
    let upstream = Upstream::start().await;
    let yaml = support::config_yaml(upstream.addr, Store::Memory, extra).replace(
        "access:\n  default: authenticated\n  rules:\n",
        "access:\n  default: deny\n  rules:\n    - path: /reports/\n      methods: [GET]\n    - path: /exact\n      allow: anonymous\n    - path: /api/\n",
    );
    let gateway = support::Gateway::start(&yaml).await;
    let mut client = gateway.client();
    assert_eq!(client.get("/exact").await.status, 200);
    assert_eq!(
        client.get("/exact/more").await.status,
        401,
        "exact rule covers only itself"
    );
    assert_eq!(
        client.get("/unknown-area/x").await.status,
        401,
        "default deny without a session"
    );
    login(&mut client, "user", USER_PW).await;
    assert_eq!(
        client.get("/unknown-area/x").await.status,
        403,
        "default deny with a session"
    );
    assert_eq!(client.get("/reports/q1").await.status, 200);
    let reply = client
        .send(Method::POST, "/reports/q1", &[], Bytes::new())
        .await;
    assert_eq!(reply.status, 403, "methods: [GET] denies POST");
    let seen: Vec<String> = upstream
        .requests()
        .into_iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert_eq!(seen, ["GET /exact", "GET /reports/q1"]);
}

#[tokio::test]
async fn public_route_needs_no_session_and_never_carries_identity() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    login(&mut client, "admin", ADMIN_PW).await;
    let reply = client
        .send(
            Method::GET,
            "/public/a",
            &[("x-auth-user", "admin")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    assert!(!seen.has_prefix("x-auth-"), "{:?}", seen.headers);
}

#[tokio::test]
async fn optional_route_carries_identity_only_with_a_valid_session_and_survives_a_store_outage() {
    let mut redis = RedisServer::start();
    let upstream = Upstream::start().await;
    // The store path itself (cache off): with the session cache, a record read just before
    // Redis goes away may serve until the cache learns of the outage, within cache_ttl (see
    // session_cache::a_frozen_redis_empties_the_cache_and_requests_get_503).
    let options = ConfigOptions {
        session: "  cache_ttl: 0s\n",
        ..ConfigOptions::default()
    };
    let yaml = support::config_yaml_with(upstream.addr, Store::Redis(&redis), &options).replace(
        "  rules:\n",
        "  rules:\n    - path: /me/\n      allow: optional\n",
    );
    let gateway = support::Gateway::start(&yaml).await;
    let spoofed = [("x-auth-user", "admin"), ("x-auth-roles", "admin")];

    // No session: forwarded without identity, spoofed headers stripped.
    let mut client = gateway.client();
    let reply = client
        .send(Method::GET, "/me/x", &spoofed, Bytes::new())
        .await;
    assert_eq!(reply.status, 200);
    assert!(!upstream.only().has_prefix("x-auth-"));
    upstream.clear();

    // A session: identity injected, on every spelling of the route.
    let sid = login(&mut client, "user", USER_PW).await;
    for path in ["/me/x", "/ME/x", "/me"] {
        let reply = client.send(Method::GET, path, &spoofed, Bytes::new()).await;
        assert_eq!(reply.status, 200, "{path}");
        let seen = upstream.only();
        assert_eq!(seen.all("x-auth-user"), ["user"], "{path}");
        assert_eq!(seen.all("x-auth-roles"), ["reader"], "{path}");
        upstream.clear();
    }

    // An unknown or unsigned session is no session: forwarded without identity, never 401.
    for cookie in [support::unknown_signed_cookie(), "garbage".to_owned()] {
        let mut other = gateway.client();
        other.set_cookie("gw_sid", &cookie);
        assert_eq!(other.get("/me/x").await.status, 200);
        assert!(!upstream.only().has_prefix("x-auth-"));
        upstream.clear();
    }

    // Store down: the route keeps working, without identity.
    redis.stop();
    let mut client = gateway.client();
    client.set_cookie("gw_sid", &sid);
    let reply = client.get("/me/x").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(!upstream.only().has_prefix("x-auth-"));
    upstream.clear();
    // While a route that needs the session fails closed.
    let reply = client.get("/api/x").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (503, "session_store_unavailable")
    );
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn a_large_upload_streams_through_intact() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let body = Bytes::from(vec![b'x'; 5 * 1024 * 1024]);
    let reply = client
        .send(
            Method::PUT,
            "/api/upload",
            &[("content-type", "application/octet-stream")],
            body,
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.only().body_len, 5 * 1024 * 1024);
    assert_eq!(reply.json()["body_len"], 5 * 1024 * 1024);
}

#[tokio::test]
async fn an_upload_reaches_the_upstream_before_the_client_has_sent_the_rest() {
    // An upstream that reports the first part of the body as soon as it arrives.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (part_one_tx, part_one_rx) = oneshot::channel();
    let upstream_addr = listener.local_addr().unwrap();
    let upstream = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let head_end = read_until(&mut stream, &mut seen, 0, b"\r\n\r\n").await;
        let one = read_until(&mut stream, &mut seen, head_end, b"part-one").await;
        part_one_tx.send(()).unwrap();
        read_until(&mut stream, &mut seen, one, b"part-two").await;
        read_until(&mut stream, &mut seen, one, b"0\r\n\r\n").await;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase()
    });
    let gateway =
        support::Gateway::start(&support::config_yaml(upstream_addr, Store::Memory, "")).await;

    let mut client = TcpStream::connect(gateway.addr).await.unwrap();
    client
        .write_all(b"POST /public/upload HTTP/1.1\r\nHost: gw.example.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n8\r\npart-one\r\n")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), part_one_rx)
        .await
        .expect("the upstream got part one while the client held the rest back (10 s guard)")
        .unwrap();
    client
        .write_all(b"8\r\npart-two\r\n0\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let end = read_until(&mut client, &mut response, 0, b"\r\n\r\n").await;
    read_until(&mut client, &mut response, end, b"ok").await;
    let response = String::from_utf8_lossy(&response).into_owned();
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    let head = upstream.await.unwrap();
    assert!(
        head.starts_with("post /public/upload http/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{head}"
    );
}

#[tokio::test]
async fn a_response_reaches_the_client_before_the_upstream_has_sent_the_rest() {
    // An upstream that sends part one, then waits until the client has it before sending part two.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let upstream_addr = listener.local_addr().unwrap();
    let upstream = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_until(&mut stream, &mut Vec::new(), 0, b"\r\n\r\n").await;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n8\r\npart-one\r\n")
            .await
            .unwrap();
        go_rx.await.expect("the client got part one");
        stream
            .write_all(b"8\r\npart-two\r\n0\r\n\r\n")
            .await
            .unwrap();
    });
    let gateway =
        support::Gateway::start(&support::config_yaml(upstream_addr, Store::Memory, "")).await;

    let mut client = TcpStream::connect(gateway.addr).await.unwrap();
    client
        .write_all(
            b"GET /public/download HTTP/1.1\r\nHost: gw.example.test\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    let one = read_until(&mut client, &mut response, 0, b"part-one").await;
    go_tx.send(()).unwrap();
    read_until(&mut client, &mut response, one, b"part-two").await;
    upstream.await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("\r\ncontent-type: text/plain\r\n"),
        "{response}"
    );
}

#[tokio::test]
async fn denied_request_with_expect_continue_gets_no_100_continue() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let request = "POST /api/upload HTTP/1.1\r\nHost: gw.example.test\r\nContent-Length: 1000\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n";
    let (status, text) = raw(gateway.addr, request.as_bytes()).await;
    assert_eq!(status, 401, "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn response_hop_by_hop_headers_and_our_cookie_are_not_relayed() {
    let (_upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let reply = client.get("/hop").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("x-foo"),
        None,
        "named in the upstream's Connection"
    );
    assert_eq!(
        reply.header("connection"),
        None,
        "the upstream's Connection itself"
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let reply = client.get("/set-cookie").await;
    assert_eq!(reply.set_cookies(), ["theirs=1; Path=/"]);
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_upstream_is_504() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let reply = client.get("/hang").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (504, "upstream_timeout")
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    upstream.stop();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let reply = client.get("/api/x").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (502, "bad_gateway")
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn upstream_path_prefix_is_kept() {
    let upstream = Upstream::start().await;
    let yaml = support::config_yaml(upstream.addr, Store::Memory, "").replace(
        &format!("url: \"http://{}\"", upstream.addr),
        &format!("url: \"http://{}/base/\"", upstream.addr),
    );
    let gateway = support::Gateway::start(&yaml).await;
    let mut client = gateway.client();
    assert_eq!(client.get("/public/a?q=1").await.status, 200);
    assert_eq!(upstream.only().target, "/base/public/a?q=1");
}

#[tokio::test]
async fn a_password_change_in_the_config_ends_old_sessions() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let yaml = support::config_yaml(upstream.addr, Store::Redis(&redis), "");
    let gateway = support::Gateway::start(&yaml).await;
    let mut client = gateway.client();
    let sid = login(&mut client, "user", USER_PW).await;
    gateway.shutdown().await;

    // Same config: a restart keeps the session (it lives in Redis).
    let gateway = support::Gateway::start(&yaml).await;
    let mut client = gateway.client();
    client.set_cookie("gw_sid", &sid);
    assert_eq!(client.get("/api/x").await.status, 200);
    gateway.shutdown().await;

    // New password hash for `user`: the old session ends and its record is deleted.
    let (old_hash, _, _) = support::hashes();
    let changed = yaml.replace(
        old_hash.as_str(),
        &portcullis::identity::hash_password("new-password-2"),
    );
    let gateway = support::Gateway::start(&changed).await;
    let mut client = gateway.client();
    client.set_cookie("gw_sid", &sid);
    assert_eq!(client.get("/api/x").await.status, 401);
    assert!(
        redis.keys().iter().all(|k| !k.starts_with("portcullis:s:")),
        "{:?}",
        redis.keys()
    );
}

#[tokio::test]
async fn requests_without_one_clear_host_are_400() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    for request in [
        "GET /public/a HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /public/a HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n",
        "GET /public/a HTTP/1.1\r\nHost: evil@gw.example.test\r\nConnection: close\r\n\r\n",
    ] {
        let (status, text) = raw(gateway.addr, request.as_bytes()).await;
        assert_eq!(status, 400, "{request:?}: {text}");
    }
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn a_malformed_client_body_is_the_clients_fault() {
    let (_upstream, gateway) = support::setup(Store::Memory).await;
    let request = "POST /public/echo HTTP/1.1\r\nHost: gw.example.test\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n";
    let (status, text) = raw(gateway.addr, request.as_bytes()).await;
    assert_eq!(status, 400, "{text}");
}

#[tokio::test]
async fn an_unrequested_101_from_the_upstream_is_a_502() {
    let addr = crate::support::upstream::canned(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n",
    )
    .await;
    let gateway = support::Gateway::start(&support::config_yaml(addr, Store::Memory, "")).await;
    let reply = gateway.client().get("/public/a").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (502, "bad_gateway")
    );
}

#[tokio::test]
async fn c14_disabling_a_user_or_removing_a_role_takes_effect_at_the_next_request() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let yaml = support::config_yaml(upstream.addr, Store::Redis(&redis), "");
    let gateway = support::Gateway::start(&yaml).await;
    let mut user = gateway.client();
    let sid_user = login(&mut user, "user", USER_PW).await;
    let mut admin = gateway.client();
    let sid_admin = login(&mut admin, "admin", ADMIN_PW).await;
    gateway.shutdown().await;

    // `user` disabled, `admin` loses the admin role; the users list is read at start-up.
    let changed = yaml
        .replace(
            "    roles: [reader]\n  - username: admin",
            "    roles: [reader]\n    disabled: true\n  - username: admin",
        )
        .replace("roles: [reader, admin]", "roles: [reader]");
    assert_ne!(changed, yaml);
    let gateway = support::Gateway::start(&changed).await;
    let mut user = gateway.client();
    user.set_cookie("gw_sid", &sid_user);
    assert_eq!(
        user.get("/api/x").await.status,
        401,
        "a disabled user's session ends"
    );
    let mut admin = gateway.client();
    admin.set_cookie("gw_sid", &sid_admin);
    assert_eq!(
        admin.get("/admin/users").await.status,
        403,
        "roles come from the current users entry"
    );
    assert_eq!(admin.get("/api/x").await.status, 200);
    let seen = upstream.only();
    assert_eq!(seen.header("x-auth-roles"), Some("reader"));
}

#[tokio::test]
async fn host_header_upstream_or_a_literal_is_the_host_the_upstream_sees() {
    let upstream = Upstream::start().await;
    let fixture = support::config_yaml(upstream.addr, Store::Memory, "");
    for (setting, expected) in [
        ("upstream", upstream.addr.to_string()),
        (
            "api.internal.test:8443",
            "api.internal.test:8443".to_owned(),
        ),
    ] {
        let yaml = fixture.replacen(
            "  timeout: 2s\n",
            &format!("  timeout: 2s\n  host_header: {setting}\n"),
            1,
        );
        assert_ne!(yaml, fixture);
        let gateway = support::Gateway::start(&yaml).await;
        let reply = gateway.client().get("/public/a").await;
        assert_eq!(reply.status, 200, "{setting}");
        let seen = upstream.only();
        assert_eq!(seen.header("host"), Some(expected.as_str()), "{setting}");
        assert_eq!(
            seen.header("x-forwarded-host"),
            Some(gateway.addr.to_string().as_str()),
            "{setting}: the client's host is still told"
        );
        upstream.clear();
    }
}

#[tokio::test]
async fn custom_identity_header_names_are_injected_and_client_copies_stripped() {
    let (upstream, gateway) = support::setup_with(
        Store::Memory,
        "identity_headers:\n  user: X-Portal-User\n  roles: X-Portal-Roles\n",
    )
    .await;
    let spoofed = [
        ("X-Portal-User", "admin"),
        ("x_portal_roles", "admin"),
        ("X-Auth-User", "admin"),
    ];
    let mut client = gateway.client();
    let reply = client
        .send(Method::GET, "/public/a", &spoofed, Bytes::new())
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    assert!(
        !seen.has_prefix("x-portal-") && !seen.has_prefix("x-auth-"),
        "{:?}",
        seen.headers
    );
    upstream.clear();

    login(&mut client, "admin", ADMIN_PW).await;
    let reply = client
        .send(Method::GET, "/api/x", &spoofed, Bytes::new())
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    assert_eq!(seen.all("x-portal-user"), ["admin"]);
    assert_eq!(seen.all("x-portal-roles"), ["reader,admin"]);
    let mut portal: Vec<String> = seen
        .headers
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase().replace('_', "-"))
        .filter(|name| name.starts_with("x-portal-"))
        .collect();
    portal.sort();
    assert_eq!(
        portal,
        ["x-portal-roles", "x-portal-user"],
        "no client copy is left"
    );
    assert!(
        !seen.has_prefix("x-auth-"),
        "the default names are not sent"
    );
}

#[tokio::test]
async fn a_user_without_roles_gets_an_empty_roles_header() {
    let upstream = Upstream::start().await;
    let (user_hash, _, _) = support::hashes();
    let fixture = support::config_yaml(upstream.addr, Store::Memory, "");
    let yaml = fixture.replacen(
        "access:\n",
        &format!(
            "  - username: nobody\n    password_hash: \"{user_hash}\"\n    roles: []\naccess:\n"
        ),
        1,
    );
    assert_ne!(yaml, fixture);
    let gateway = support::Gateway::start(&yaml).await;
    let mut client = gateway.client();
    login(&mut client, "nobody", USER_PW).await;
    let reply = client
        .send(
            Method::GET,
            "/api/x",
            &[("x-auth-roles", "admin")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    assert_eq!(seen.all("x-auth-user"), ["nobody"]);
    assert_eq!(seen.all("x-auth-roles"), [""]);
    assert_eq!(client.get("/admin/users").await.status, 403);
}
