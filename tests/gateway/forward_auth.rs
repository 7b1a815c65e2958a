//! The forward-auth endpoint (`/.portcullis/auth`): the forward-auth parts of C05, C06, C08, C11
//! and C17 against the real gateway and Redis (end to end behind a real nginx: `forward_auth_nginx`).
//!
//! The tests connect from 127.0.0.1: a gateway with `trusted_proxies: ["127.0.0.1/32"]` sees
//! them as the trusted proxy, any other gateway as an untrusted client.

use bytes::Bytes;
use http::Method;

use crate::support::{self, login, raw, Gateway, RedisServer, Store, Upstream, ADMIN_PW, USER_PW};

const ENDPOINT: &str = "/.portcullis/auth";
/// Fixture R plus an `optional` prefix and a GET-only prefix, with the test client trusted.
const TRUSTED: &str = "    - path: /opt/\n      allow: optional\n    - path: /reports/\n      methods: [GET, HEAD]\ntrusted_proxies: [\"127.0.0.1/32\"]\n";

/// One answer of the endpoint, read from the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn parse(text: &str) -> Answer {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Answer {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every header that could pass for identity: `x-auth-*` in any spelling.
    fn identity(&self) -> Vec<&(String, String)> {
        self.headers
            .iter()
            .filter(|(n, _)| n.replace('_', "-").starts_with("x-auth-"))
            .collect()
    }

    fn error_code(&self) -> String {
        let json: serde_json::Value =
            serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"));
        json["error"].as_str().unwrap_or_default().to_owned()
    }

    /// 200 with exactly `user` and `roles`, or with no identity header at all for `None`.
    fn assert_allowed(&self, identity: Option<(&str, &str)>, what: &str) {
        assert_eq!(self.status, 200, "{what}: {self:?}");
        assert_eq!(self.header("cache-control"), Some("no-store"), "{what}");
        match identity {
            Some((user, roles)) => {
                assert_eq!(self.header("x-auth-user"), Some(user), "{what}");
                assert_eq!(self.header("x-auth-roles"), Some(roles), "{what}");
                assert_eq!(self.identity().len(), 2, "{what}: {self:?}");
            }
            None => assert!(self.identity().is_empty(), "{what}: {self:?}"),
        }
    }

    /// A refusal: `status` with the JSON `code`, no identity header, not cached.
    fn assert_refused(&self, status: u16, code: &str, what: &str) {
        assert_eq!(self.status, status, "{what}: {self:?}");
        assert_eq!(self.error_code(), code, "{what}");
        assert_eq!(self.header("cache-control"), Some("no-store"), "{what}");
        assert!(self.identity().is_empty(), "{what}: {self:?}");
    }
}

/// The description headers nginx would send for `GET <uri>` on `https://gw.example.test`.
fn described(uri: &str) -> String {
    format!(
        "X-Forwarded-Method: GET\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: gw.example.test\r\nX-Forwarded-Uri: {uri}\r\n"
    )
}

/// Ask the endpoint with these raw header lines (each ending in CRLF).
async fn ask(gateway: &Gateway, lines: &str) -> Answer {
    ask_bytes(gateway, lines.as_bytes()).await
}

async fn ask_bytes(gateway: &Gateway, lines: &[u8]) -> Answer {
    let mut request =
        format!("GET {ENDPOINT} HTTP/1.1\r\nHost: portcullis.internal\r\n").into_bytes();
    request.extend_from_slice(lines);
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    let (_, text) = raw(gateway.addr, &request).await;
    Answer::parse(&text)
}

/// `Cookie: gw_sid=<sid>` as a header line.
fn cookie(sid: &str) -> String {
    format!("Cookie: gw_sid={sid}\r\n")
}

async fn trusted_gateway(store: Store<'_>) -> (Upstream, Gateway) {
    support::setup_with(store, TRUSTED).await
}

#[tokio::test]
async fn forward_auth_allows_only_explicitly_and_names_the_identity() {
    let (upstream, gateway) = trusted_gateway(Store::Memory).await;
    let sid_user = login(&mut gateway.client(), "user", USER_PW).await;
    let sid_admin = login(&mut gateway.client(), "admin", ADMIN_PW).await;

    ask(&gateway, &described("/public/a"))
        .await
        .assert_allowed(None, "anonymous path");
    ask(
        &gateway,
        &format!("{}{}", described("/public/a"), cookie(&sid_user)),
    )
    .await
    .assert_allowed(None, "anonymous path never reads the session");
    ask(
        &gateway,
        &format!("{}{}", described("/api/x?q=1"), cookie(&sid_user)),
    )
    .await
    .assert_allowed(Some(("user", "reader")), "authenticated path");
    ask(
        &gateway,
        &format!("{}{}", described("/admin/users"), cookie(&sid_admin)),
    )
    .await
    .assert_allowed(Some(("admin", "reader,admin")), "admin path");
    ask(&gateway, &described("/opt/x"))
        .await
        .assert_allowed(None, "optional path without a session");
    ask(
        &gateway,
        &format!("{}{}", described("/opt/x"), cookie(&sid_user)),
    )
    .await
    .assert_allowed(Some(("user", "reader")), "optional path with a session");
    ask(&gateway, &described("/api/x"))
        .await
        .assert_refused(401, "unauthenticated", "no session");
    ask(&gateway, &described("/unknown-area/x"))
        .await
        .assert_refused(401, "unauthenticated", "no rule: the default");
    ask(
        &gateway,
        &format!("{}{}", described("/admin/users"), cookie(&sid_user)),
    )
    .await
    .assert_refused(403, "forbidden", "reader on an admin path");

    // nginx's X-Original-URI stands in for X-Forwarded-Uri.
    let nginx_style = format!(
        "X-Forwarded-Method: GET\r\nX-Original-URI: /api/x\r\n{}",
        cookie(&sid_user)
    );
    ask(&gateway, &nginx_style)
        .await
        .assert_allowed(Some(("user", "reader")), "X-Original-URI");

    // The described method is judged: a GET-only path refuses POST, with or without a session.
    let post = |sid: &str| {
        format!(
            "X-Forwarded-Method: POST\r\nX-Forwarded-Uri: /reports/x\r\n{}",
            cookie(sid)
        )
    };
    ask(&gateway, &post(&sid_user)).await.assert_refused(
        403,
        "forbidden",
        "method outside methods:",
    );
    let head_described = format!(
        "X-Forwarded-Method: HEAD\r\nX-Forwarded-Uri: /reports/x\r\n{}",
        cookie(&sid_user)
    );
    ask(&gateway, &head_described)
        .await
        .assert_allowed(Some(("user", "reader")), "HEAD on a GET, HEAD path");

    // The origin check runs on the described method, against the described origin.
    let unsafe_from = |origin: &str| {
        format!(
            "X-Forwarded-Method: DELETE\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: gw.example.test\r\nX-Forwarded-Uri: /api/x\r\nOrigin: {origin}\r\n{}",
            cookie(&sid_user)
        )
    };
    ask(&gateway, &unsafe_from("https://attacker.example"))
        .await
        .assert_refused(403, "csrf", "foreign origin");
    ask(&gateway, &unsafe_from("http://gw.example.test"))
        .await
        .assert_refused(403, "csrf", "the scheme follows X-Forwarded-Proto");
    ask(&gateway, &unsafe_from("https://gw.example.test"))
        .await
        .assert_allowed(Some(("user", "reader")), "own origin");

    // HEAD on the endpoint answers the same; other methods are 405 with Allow.
    let head = format!(
        "HEAD {ENDPOINT} HTTP/1.1\r\nHost: portcullis.internal\r\n{}{}Connection: close\r\n\r\n",
        described("/api/x"),
        cookie(&sid_user)
    );
    let answer = Answer::parse(&raw(gateway.addr, head.as_bytes()).await.1);
    answer.assert_allowed(Some(("user", "reader")), "HEAD on the endpoint");
    let reply = gateway
        .client()
        .send(Method::POST, ENDPOINT, &[], Bytes::new())
        .await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(upstream.is_untouched(), "the endpoint never forwards");
}

#[tokio::test]
async fn forward_auth_never_allows_portcullis_own_paths_and_its_subtree_is_404() {
    let (upstream, gateway) = trusted_gateway(Store::Memory).await;
    let sid = login(&mut gateway.client(), "admin", ADMIN_PW).await;
    for uri in ["/%73ession", "/public/../session"] {
        ask(&gateway, &format!("{}{}", described(uri), cookie(&sid)))
            .await
            .assert_refused(400, "bad_request", uri);
    }
    for uri in [
        "/session",
        "/session/x",
        "/SESSION",
        ENDPOINT,
        "/.portcullis/auth/x",
        "/.Portcullis/Auth",
    ] {
        ask(&gateway, &format!("{}{}", described(uri), cookie(&sid)))
            .await
            .assert_refused(404, "not_found", uri);
    }
    for path in [
        "/.portcullis/auth/",
        "/.portcullis/auth/x",
        "/.PORTCULLIS/auth",
    ] {
        let reply = gateway.client().get(path).await;
        assert_eq!(reply.status, 404, "{path}");
    }
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn c05_forward_auth_missing_or_unparsable_original_requests_are_400_never_2xx() {
    let (upstream, gateway) = trusted_gateway(Store::Memory).await;
    let sid = login(&mut gateway.client(), "admin", ADMIN_PW).await;
    let head = "X-Forwarded-Method: GET\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: gw.example.test\r\n";
    for (what, lines) in [
        ("%zz", described("/admin/%zz")),
        ("missing URI", head.to_owned()),
        ("empty URI", format!("{head}X-Forwarded-Uri:\r\n")),
        ("unterminated IPv6", described("http://[::1")),
        ("absolute form", described("http://gw.example.test/api/x")),
        ("no leading slash", described("admin/users")),
        ("asterisk", described("*")),
        ("fragment", described("/public/a#x")),
        ("NUL", described("/admin/%00users")),
        ("encoded slash", described("/public/..%2fadmin/users")),
        (
            "X-Original-URI disagrees",
            format!("{}X-Original-URI: /public/a\r\n", described("/api/x")),
        ),
        (
            "X-Original-URI invalid",
            format!("{head}X-Original-URI: /admin/%\r\n"),
        ),
        (
            "URI twice",
            format!("{}X-Forwarded-Uri: /public/a\r\n", described("/public/a")),
        ),
        (
            "missing method",
            "X-Forwarded-Uri: /public/a\r\n".to_owned(),
        ),
        (
            "empty method",
            "X-Forwarded-Method:\r\nX-Forwarded-Uri: /public/a\r\n".to_owned(),
        ),
        (
            "invalid method",
            "X-Forwarded-Method: G(T\r\nX-Forwarded-Uri: /public/a\r\n".to_owned(),
        ),
        (
            "TRACE",
            "X-Forwarded-Method: TRACE\r\nX-Forwarded-Uri: /public/a\r\n".to_owned(),
        ),
        (
            "method twice",
            "X-Forwarded-Method: GET\r\nX-Forwarded-Method: POST\r\nX-Forwarded-Uri: /reports/x\r\n"
                .to_owned(),
        ),
        (
            "host twice",
            format!("{}X-Forwarded-Host: public.example.test\r\n", described("/public/a")),
        ),
        (
            "unreadable host",
            "X-Forwarded-Method: GET\r\nX-Forwarded-Host: evil@gw.example.test\r\nX-Forwarded-Uri: /public/a\r\n"
                .to_owned(),
        ),
        (
            "unreadable proto",
            "X-Forwarded-Method: GET\r\nX-Forwarded-Proto: gopher\r\nX-Forwarded-Uri: /public/a\r\n"
                .to_owned(),
        ),
    ] {
        for with_cookie in [String::new(), cookie(&sid)] {
            ask(&gateway, &format!("{lines}{with_cookie}"))
                .await
                .assert_refused(400, "bad_request", what);
        }
    }
    // Bytes that are not text in the URI.
    let mut lines = head.as_bytes().to_vec();
    lines.extend_from_slice(b"X-Forwarded-Uri: /public/\xff\r\n");
    ask_bytes(&gateway, &lines)
        .await
        .assert_refused(400, "bad_request", "non-UTF-8 URI");
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn c05_forward_auth_with_an_unparsable_forwarded_for_still_needs_a_session() {
    let (_upstream, gateway) = trusted_gateway(Store::Memory).await;
    let sid = login(&mut gateway.client(), "user", USER_PW).await;
    for xff in ["a", "unknown", "198.51.100.7, a", ""] {
        let lines = format!("{}X-Forwarded-For: {xff}\r\n", described("/api/x"));
        ask(&gateway, &lines)
            .await
            .assert_refused(401, "unauthenticated", xff);
        ask(
            &gateway,
            &format!("{}X-Forwarded-For: {xff}\r\n", described("/admin/users")),
        )
        .await
        .assert_refused(401, "unauthenticated", xff);
        ask(&gateway, &format!("{lines}{}", cookie(&sid)))
            .await
            .assert_allowed(Some(("user", "reader")), xff);
    }
}

#[tokio::test]
async fn c06_forward_auth_with_a_non_authenticating_cookie_is_401_and_echoes_no_identity() {
    let (_upstream, gateway) = trusted_gateway(Store::Memory).await;
    let spoofed =
        "X-Auth-User: admin\r\nX-Auth-Roles: admin\r\nX_Auth_User: admin\r\nx-auth-foo: 1\r\n";
    for sid in [
        "attackerchosen".to_owned(),
        support::unknown_signed_cookie(),
        String::new(),
    ] {
        let lines = format!("{}{}{spoofed}", described("/api/x"), cookie(&sid));
        ask(&gateway, &lines)
            .await
            .assert_refused(401, "unauthenticated", &sid);
    }
    let lines = format!("{}{spoofed}", described("/admin/users"));
    ask(&gateway, &lines)
        .await
        .assert_refused(401, "unauthenticated", "no cookie");
    // An anonymous path allows, still without echoing anything the client sent.
    let lines = format!("{}{spoofed}", described("/public/a"));
    ask(&gateway, &lines)
        .await
        .assert_allowed(None, "anonymous path with spoofed headers");
}

#[tokio::test]
async fn c08_forward_auth_from_an_untrusted_peer_is_400() {
    // Some proxy is trusted, just not the test client.
    let (upstream, gateway) =
        support::setup_with(Store::Memory, "trusted_proxies: [\"10.0.0.0/8\"]\n").await;
    let sid = login(&mut gateway.client(), "admin", ADMIN_PW).await;
    for with_cookie in [String::new(), cookie(&sid)] {
        for uri in ["/public/a", "/api/x"] {
            ask(&gateway, &format!("{}{with_cookie}", described(uri)))
                .await
                .assert_refused(400, "bad_request", uri);
        }
    }
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn c08_forward_auth_with_no_trusted_proxies_configured_is_400() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let sid = login(&mut gateway.client(), "admin", ADMIN_PW).await;
    for with_cookie in [String::new(), cookie(&sid)] {
        ask(
            &gateway,
            &format!("{}{with_cookie}", described("/public/a")),
        )
        .await
        .assert_refused(400, "bad_request", "nobody is trusted by default");
    }
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn c08_forward_auth_parses_the_original_uri_like_an_inline_target() {
    let (_upstream, gateway) = trusted_gateway(Store::Memory).await;
    let sid = login(&mut gateway.client(), "user", USER_PW).await;
    let with = |uri: &str| format!("{}{}", described(uri), cookie(&sid));
    for uri in ["/admin/users?x=/public/", "/ADMIN/users", "/admin./users"] {
        ask(&gateway, &with(uri))
            .await
            .assert_refused(403, "forbidden", uri);
    }
    // The other proxy forwards the target as sent: a spelling canonicalization would change is
    // refused, never judged on a path the upstream may not see (the C01 kind, through nginx).
    for uri in [
        "/public/../admin/users",
        "/admin/users/../../public/a",
        "/admin/users/%2E%2E/%2e%2E/public/a",
        "//admin/users",
        "/%61dmin/users",
        "/public/./a",
        "/admin%2E/users",
        "/public/..%2fadmin/users",
        "/public/%252e%252e/admin/users",
        "/public/..;/admin/users",
        "/public/..%5cadmin/users",
    ] {
        ask(&gateway, &with(uri))
            .await
            .assert_refused(400, "bad_request", uri);
    }
}

#[tokio::test]
async fn c11_malformed_session_cookies_at_forward_auth_are_401_without_identity_headers() {
    let redis = RedisServer::start();
    let (upstream, gateway) = trusted_gateway(Store::Redis(&redis)).await;
    let sid = login(&mut gateway.client(), "user", USER_PW).await;
    // Listed first: KEYS is the test's own command, not the gateway's.
    let keys_before = redis.keys();
    let mut counter = redis.command_counter();
    let before = counter.counts();
    let uri = described("/api/x");
    for cookie in support::malformed_session_cookies(&sid) {
        ask(&gateway, &format!("{uri}Cookie: {cookie}\r\n"))
            .await
            .assert_refused(401, "unauthenticated", &cookie);
    }
    let mut lines = uri.as_bytes().to_vec();
    lines.extend_from_slice(b"Cookie: gw_sid=\xff\xfe\r\n");
    let answer = ask_bytes(&gateway, &lines).await;
    assert!(matches!(answer.status, 400 | 401), "{answer:?}");
    assert!(answer.identity().is_empty(), "{answer:?}");
    let twice = format!("{uri}Cookie: gw_sid={sid}\r\nCookie: gw_sid={sid}\r\n");
    ask(&gateway, &twice)
        .await
        .assert_refused(401, "unauthenticated", "two Cookie fields");

    let after = counter.counts();
    assert_eq!(
        support::commands_between(&before, &after, &["ping", "info"]),
        Default::default(),
        "no store command at all for a bad cookie"
    );
    assert_eq!(redis.keys(), keys_before, "no key created");
    // The real cookie still works: the 401s were the cookies', not the endpoint's.
    ask(&gateway, &format!("{uri}{}", cookie(&sid)))
        .await
        .assert_allowed(Some(("user", "reader")), "the valid cookie");
    assert!(upstream.is_untouched());
}

/// C17 at forward-auth while the store does not answer: 503 where a session is needed (never a
/// 2xx), anonymous paths keep working, `optional` ones lose only the identity.
async fn assert_store_down_answers(gateway: &Gateway, sid: &str) {
    let started = std::time::Instant::now();
    ask(gateway, &format!("{}{}", described("/api/x"), cookie(sid)))
        .await
        .assert_refused(503, "session_store_unavailable", "real session");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "within the store timeout"
    );
    let made_up = support::unknown_signed_cookie();
    ask(
        gateway,
        &format!("{}{}", described("/api/x"), cookie(&made_up)),
    )
    .await
    .assert_refused(503, "session_store_unavailable", "made-up id");
    ask(
        gateway,
        &format!("{}{}", described("/admin/users"), cookie(sid)),
    )
    .await
    .assert_refused(503, "session_store_unavailable", "admin path");
    ask(
        gateway,
        &format!("{}{}", described("/public/a"), cookie(sid)),
    )
    .await
    .assert_allowed(None, "anonymous path");
    ask(gateway, &format!("{}{}", described("/opt/x"), cookie(sid)))
        .await
        .assert_allowed(None, "optional path: no identity while the store is down");
    ask(
        gateway,
        &format!("{}Cookie: gw_sid=attackerchosen\r\n", described("/api/x")),
    )
    .await
    .assert_refused(
        401,
        "unauthenticated",
        "a bad signature never reaches the store",
    );
}

#[tokio::test]
async fn c17_forward_auth_with_redis_frozen_is_503_never_2xx() {
    let redis = RedisServer::start();
    let (_upstream, gateway) = trusted_gateway(Store::Redis(&redis)).await;
    let sid = login(&mut gateway.client(), "user", USER_PW).await;
    redis.freeze();
    assert_store_down_answers(&gateway, &sid).await;
    redis.thaw();
}

#[tokio::test]
async fn c17_forward_auth_with_redis_stopped_is_503_never_2xx_and_recovers() {
    let mut redis = RedisServer::start();
    let (_upstream, gateway) = trusted_gateway(Store::Redis(&redis)).await;
    let sid = login(&mut gateway.client(), "user", USER_PW).await;
    redis.stop();
    assert_store_down_answers(&gateway, &sid).await;
    redis.restart();
    // The connection manager reconnects on its own; allow it a moment.
    let mut answer = ask(
        &gateway,
        &format!("{}{}", described("/api/x"), cookie(&sid)),
    )
    .await;
    for _ in 0..50 {
        if answer.status != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        answer = ask(
            &gateway,
            &format!("{}{}", described("/api/x"), cookie(&sid)),
        )
        .await;
    }
    answer.assert_allowed(Some(("user", "reader")), "after Redis is back");
}

#[tokio::test]
async fn a_configured_endpoint_path_answers_there_and_a_disabled_one_is_an_ordinary_path() {
    let extra = format!("{TRUSTED}forward_auth:\n  path: /_auth/verify\n");
    let (upstream, gateway) = support::setup_with(Store::Memory, &extra).await;
    let request = format!(
        "GET /_auth/verify HTTP/1.1\r\nHost: portcullis.internal\r\n{}Connection: close\r\n\r\n",
        described("/public/a")
    );
    let (_, text) = raw(gateway.addr, request.as_bytes()).await;
    Answer::parse(&text).assert_allowed(None, "the configured path");
    // The default path is then nobody's: an ordinary protected path, never the endpoint.
    let request = format!(
        "GET {ENDPOINT} HTTP/1.1\r\nHost: portcullis.internal\r\n{}Connection: close\r\n\r\n",
        described("/public/a")
    );
    let (_, text) = raw(gateway.addr, request.as_bytes()).await;
    Answer::parse(&text).assert_refused(401, "unauthenticated", "the default path");
    assert!(upstream.is_untouched());

    let extra = format!("{TRUSTED}forward_auth:\n  enabled: false\n");
    let (upstream, gateway) = support::setup_with(Store::Memory, &extra).await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let reply = client.get(ENDPOINT).await;
    assert_eq!(reply.status, 200, "proxied like any path");
    assert_eq!(upstream.only().target, ENDPOINT);
}

#[tokio::test]
async fn forward_auth_refuses_method_overrides_and_origin_checks_websocket_handshakes() {
    let (_upstream, gateway) = trusted_gateway(Store::Memory).await;
    let sid = login(&mut gateway.client(), "user", USER_PW).await;
    let base = format!("{}{}", described("/api/x"), cookie(&sid));
    for header in [
        "X-HTTP-Method-Override: DELETE",
        "X-HTTP-Method: DELETE",
        "X_Method_Override: DELETE",
    ] {
        ask(&gateway, &format!("{base}{header}\r\n"))
            .await
            .assert_refused(400, "bad_request", header);
    }
    // nginx drops Upgrade from the subrequest; the handshake's own headers still arrive.
    for handshake in [
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        "Sec-Fetch-Mode: websocket\r\n",
        "Upgrade: websocket\r\n",
    ] {
        let foreign = format!("{base}{handshake}Origin: https://evil.example\r\n");
        ask(&gateway, &foreign)
            .await
            .assert_refused(403, "csrf", handshake);
        let own = format!("{base}{handshake}Origin: https://gw.example.test\r\n");
        ask(&gateway, &own)
            .await
            .assert_allowed(Some(("user", "reader")), handshake);
    }
}
