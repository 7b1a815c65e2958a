//! Browsers: the origin check (CSRF, C25 included) and CORS for listed single-page apps, on the
//! real gateway. A refused request never reaches the upstream and never sets a cookie.

use bytes::Bytes;
use http::Method;

use crate::support::{self, login, raw, Client, Store, Upstream, USER_PW};

const ATTACKER: &str = "https://attacker.example";
const APP: &str = "https://app.example.test";
const CORS: &str = "cors:\n  allowed_origins: [\"https://app.example.test\"]\n  max_age: 5m\n";

fn credentials() -> Bytes {
    Bytes::from(r#"{"username":"user","password":"reader-password-1"}"#)
}

/// The origin a browser would send for a page served by the gateway at `client`'s address.
fn own_origin(gateway: &support::Gateway) -> String {
    format!("http://{}", gateway.addr)
}

async fn post_login(
    client: &mut Client,
    headers: &[(&str, &str)],
    body: Bytes,
) -> support::client::Reply {
    client.send(Method::POST, "/session", headers, body).await
}

#[tokio::test]
async fn c25_cross_origin_login_is_403_before_the_content_type_is_read() {
    let (_upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json",
    ] {
        let reply = post_login(
            &mut client,
            &[("origin", ATTACKER), ("content-type", content_type)],
            credentials(),
        )
        .await;
        assert_eq!(reply.status, 403, "{content_type}");
        assert_eq!(reply.error_code(), "csrf", "{content_type}");
        assert!(reply.set_cookies().is_empty(), "{content_type}");
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
    // Without Origin, only JSON is a login: 415 and no cookie for the rest.
    let form = Bytes::from(r#"{"username":"user","password":"reader-password-1","x":"=1"}"#);
    for headers in [
        vec![("content-type", "text/plain")],
        vec![("content-type", "application/x-www-form-urlencoded")],
        vec![("content-type", "multipart/form-data; boundary=x")],
        vec![],
    ] {
        let reply = post_login(&mut client, &headers, form.clone()).await;
        assert_eq!(reply.status, 415, "{headers:?}");
        assert_eq!(reply.error_code(), "unsupported_media_type");
        assert!(reply.set_cookies().is_empty());
    }
    // JSON with parameters, from our own origin: a login.
    let own = own_origin(&gateway);
    let reply = post_login(
        &mut client,
        &[
            ("origin", &own),
            ("content-type", "application/json; charset=utf-8"),
        ],
        credentials(),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let cookie = reply.set_cookies()[0].to_ascii_lowercase();
    assert!(cookie.contains("samesite=lax"), "{cookie}");
}

#[tokio::test]
async fn c25_cross_origin_logout_is_403_and_the_session_survives() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let reply = client
        .send(
            Method::DELETE,
            "/session",
            &[("origin", ATTACKER)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.error_code(), "csrf");
    assert!(reply.set_cookies().is_empty());
    assert_eq!(client.get("/api/x").await.status, 200);
    assert_eq!(upstream.requests().len(), 1);
    // Our own page may log out.
    let own = own_origin(&gateway);
    let reply = client
        .send(
            Method::DELETE,
            "/session",
            &[("origin", &own)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 204);
}

#[tokio::test]
async fn cookie_requests_that_change_state_need_an_allowed_origin() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let own = own_origin(&gateway);
    let own_page = format!("{own}/app/page?x=1");
    let refused: [&[(&str, &str)]; 7] = [
        &[("origin", ATTACKER)],
        &[("origin", "null")],
        &[("origin", "http://localhost.attacker.example")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site"), ("referer", &own_page)],
        &[("referer", "https://attacker.example/page")],
        &[("origin", &own), ("origin", &own)],
    ];
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        for headers in refused {
            let reply = client
                .send(method.clone(), "/api/x", headers, Bytes::from_static(b"{}"))
                .await;
            assert_eq!(reply.status, 403, "{method} {headers:?}");
            assert_eq!(reply.error_code(), "csrf", "{method} {headers:?}");
        }
    }
    assert!(upstream.is_untouched());
    let passed: [&[(&str, &str)]; 5] = [
        &[("origin", &own)],
        &[("sec-fetch-site", "same-origin")],
        &[("sec-fetch-site", "none")],
        &[("referer", &own_page)],
        // Not a browser: nothing to be tricked.
        &[],
    ];
    for headers in passed {
        let reply = client
            .send(Method::POST, "/api/x", headers, Bytes::from_static(b"{}"))
            .await;
        assert_eq!(reply.status, 200, "{headers:?}");
        assert_eq!(upstream.only().header("x-auth-user"), Some("user"));
        upstream.clear();
    }
    // Safe methods and cookie-less requests are not the origin check's business.
    let reply = client
        .send(Method::GET, "/api/x", &[("origin", ATTACKER)], Bytes::new())
        .await;
    assert_eq!(reply.status, 200);
    upstream.clear();
    let mut anon = gateway.client();
    let reply = anon
        .send(
            Method::POST,
            "/public/form",
            &[("origin", ATTACKER)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert!(upstream.only().header("x-auth-user").is_none());
}

#[tokio::test]
async fn a_foreign_upgrade_is_403_on_every_route_and_never_forwarded() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    let sid = login(&mut client, "user", USER_PW).await;
    for (path, cookie) in [
        ("/public/ws", String::new()),
        ("/api/ws", format!("Cookie: gw_sid={sid}\r\n")),
    ] {
        for origin in [
            "Origin: https://attacker.example\r\n",
            "Origin: null\r\n",
            "Sec-Fetch-Site: cross-site\r\n",
        ] {
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: gw.example.test\r\n{cookie}{origin}Connection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            );
            let (status, text) = raw(gateway.addr, request.as_bytes()).await;
            assert_eq!(status, 403, "{path} {origin}: {text}");
            assert!(text.contains(r#""error":"csrf""#), "{text}");
        }
    }
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn trace_and_connect_are_405_whatever_the_target() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    for request in [
        "TRACE /public/a HTTP/1.1\r\nHost: gw.example.test\r\nConnection: close\r\n\r\n",
        "TRACE * HTTP/1.1\r\nHost: gw.example.test\r\nConnection: close\r\n\r\n",
        "CONNECT gw.example.test:443 HTTP/1.1\r\nHost: gw.example.test:443\r\nConnection: close\r\n\r\n",
        "CONNECT /api/x HTTP/1.1\r\nHost: gw.example.test\r\nConnection: close\r\n\r\n",
    ] {
        let (status, text) = raw(gateway.addr, request.as_bytes()).await;
        assert_eq!(status, 405, "{request}: {text}");
        assert!(text.contains(r#""error":"method_not_allowed""#), "{text}");
    }
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn the_own_origin_follows_public_url_and_a_trusted_forwarded_proto() {
    // public_url: the origin browsers use in front of a TLS terminator.
    let upstream = Upstream::start().await;
    let yaml = support::config_yaml(
        upstream.addr,
        Store::Memory,
        "public_url: \"https://api.example.test\"\n",
    );
    let gateway = support::Gateway::start(&yaml).await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let via_host = own_origin(&gateway);
    let post = |origin: String| {
        let mut c = Client::new(gateway.addr);
        c.jar = client.jar.clone();
        async move {
            c.send(Method::POST, "/api/x", &[("origin", &origin)], Bytes::new())
                .await
                .status
        }
    };
    assert_eq!(post("https://api.example.test".into()).await, 200);
    assert_eq!(post(via_host).await, 403);

    // Behind a trusted proxy, X-Forwarded-Proto says the browser used https.
    let (_upstream, gateway) =
        support::setup_with(Store::Memory, "trusted_proxies: [\"127.0.0.1/32\"]\n").await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let https_own = format!("https://{}", gateway.addr);
    let reply = client
        .send(
            Method::POST,
            "/api/x",
            &[("origin", &https_own), ("x-forwarded-proto", "https")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let reply = client
        .send(
            Method::POST,
            "/api/x",
            &[("origin", &https_own)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 403);

    // From an untrusted peer the header is the client's say and changes nothing.
    let (_upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let https_own = format!("https://{}", gateway.addr);
    let reply = client
        .send(
            Method::POST,
            "/api/x",
            &[("origin", &https_own), ("x-forwarded-proto", "https")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 403);
}

#[tokio::test]
async fn a_listed_app_logs_in_across_origins_and_reads_portcullis_answers() {
    let (upstream, gateway) = support::setup_with(Store::Memory, CORS).await;
    let mut client = gateway.client();

    // The preflight to the session API is answered by Portcullis.
    let reply = client
        .send(
            Method::OPTIONS,
            "/session",
            &[
                ("origin", APP),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        reply.header("access-control-allow-methods"),
        Some("GET, HEAD, POST, DELETE")
    );
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("300"));
    assert_eq!(reply.header("vary"), Some("Origin"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));

    // The login itself passes the origin check (csrf.allowed_origins defaults to cors's).
    let reply = post_login(
        &mut client,
        &[
            ("origin", APP),
            ("sec-fetch-site", "cross-site"),
            ("content-type", "application/json"),
        ],
        credentials(),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );

    // State-changing calls from the app pass; Portcullis's own refusals are readable by it.
    let reply = client
        .send(Method::POST, "/api/x", &[("origin", APP)], Bytes::new())
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.only().header("x-auth-user"), Some("user"));
    // The upstream's answer is relayed as it is: it owns its CORS policy.
    assert_eq!(reply.header("access-control-allow-origin"), None);
    upstream.clear();
    let reply = client
        .send(Method::GET, "/admin/x", &[("origin", APP)], Bytes::new())
        .await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    let mut anon = gateway.client();
    let reply = anon
        .send(Method::GET, "/api/x", &[("origin", APP)], Bytes::new())
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );

    // An origin not listed gets no CORS header and no preflight answer.
    let reply = anon
        .send(Method::GET, "/api/x", &[("origin", ATTACKER)], Bytes::new())
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("access-control-allow-origin"), None);
    let reply = anon
        .send(
            Method::OPTIONS,
            "/session",
            &[
                ("origin", ATTACKER),
                ("access-control-request-method", "POST"),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("access-control-allow-origin"), None);
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn a_listed_apps_preflight_to_the_api_is_forwarded_without_a_session_lookup() {
    let redis = support::RedisServer::start();
    let upstream = Upstream::start().await;
    let rules = format!(
        "{}    - path: /reports/\n      methods: [GET]\n",
        support::RULES_R
    );
    let yaml = support::config_yaml(upstream.addr, Store::Redis(&redis), CORS)
        .replace(support::RULES_R, &rules);
    let gateway = support::Gateway::start(&yaml).await;
    let mut client = gateway.client();
    let sid = login(&mut client, "user", USER_PW).await;
    redis.reset_stats();
    let reply = client
        .send(
            Method::OPTIONS,
            "/api/x",
            &[
                ("origin", APP),
                ("access-control-request-method", "PUT"),
                ("x-auth-user", "admin"),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    assert_eq!(seen.method, "OPTIONS");
    assert!(!seen.has_prefix("x-auth-"), "{:?}", seen.headers);
    assert!(seen.header("cookie").is_none_or(|c| !c.contains(&sid)));
    assert_eq!(redis.command_calls("get"), 0);
    upstream.clear();

    // Asking about a method the rules deny, or where OPTIONS itself is not among a rule's
    // methods, is refused here.
    for asked in ["DELETE", "GET"] {
        let reply = client
            .send(
                Method::OPTIONS,
                "/reports/x",
                &[("origin", APP), ("access-control-request-method", asked)],
                Bytes::new(),
            )
            .await;
        assert_eq!(reply.status, 401, "{asked}");
        assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    }
    assert!(upstream.is_untouched());
    // A preflight has no body: with one it is an ordinary OPTIONS, which needs a session.
    let mut anon = gateway.client();
    let reply = anon
        .send(
            Method::OPTIONS,
            "/api/x?op=delete",
            &[
                ("origin", APP),
                ("access-control-request-method", "GET"),
                ("content-type", "application/json"),
            ],
            Bytes::from_static(br#"{"role":"admin"}"#),
        )
        .await;
    assert_eq!(reply.status, 401);
    assert!(upstream.is_untouched());
    // A preflight from an origin not listed is an ordinary OPTIONS: it needs a session.
    let mut anon = gateway.client();
    let reply = anon
        .send(
            Method::OPTIONS,
            "/api/x",
            &[
                ("origin", ATTACKER),
                ("access-control-request-method", "PUT"),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 401);
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn too_many_attempts_carries_cors_headers_for_a_listed_app() {
    let extra = format!(
        "{CORS}regulation:\n  per_user_and_address:\n    max_retries: 1\n    ban_time: 1m\n"
    );
    let (_upstream, gateway) = support::setup_with(Store::Memory, &extra).await;
    let mut client = gateway.client();
    let wrong = Bytes::from(r#"{"username":"user","password":"wrong"}"#);
    let headers = [("origin", APP), ("content-type", "application/json")];
    let first = post_login(&mut client, &headers, wrong.clone()).await;
    assert_eq!(first.status, 401);
    assert_eq!(first.header("access-control-allow-origin"), Some(APP));
    let banned = post_login(&mut client, &headers, wrong).await;
    assert_eq!(banned.status, 429);
    assert!(banned.header("retry-after").is_some());
    assert_eq!(banned.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        banned.header("access-control-allow-credentials"),
        Some("true")
    );
}

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

#[tokio::test]
async fn an_unauthenticated_page_load_is_sent_to_the_login_page_and_apis_keep_their_401() {
    let upstream = Upstream::start().await;
    let rules = format!(
        "{}    - path: /login\n      allow: anonymous\n",
        support::RULES_R
    );
    let yaml = support::config_yaml(upstream.addr, Store::Memory, "login_url: /login\n")
        .replace(support::RULES_R, &rules);
    let gateway = support::Gateway::start(&yaml).await;
    let mut anon = gateway.client();
    for method in [Method::GET, Method::HEAD] {
        let reply = anon
            .send(
                method.clone(),
                "/api/x?a=1&b=%2F",
                &[("accept", BROWSER_ACCEPT)],
                Bytes::new(),
            )
            .await;
        assert_eq!(reply.status, 303, "{method}");
        assert_eq!(
            reply.header("location"),
            Some("/login?return_to=/api/x%3Fa%3D1%26b%3D%252F"),
            "{method}"
        );
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        assert!(reply.set_cookies().is_empty());
    }
    // APIs, other methods and refusals that a login cannot cure keep their JSON answers.
    for (method, path, accept, status) in [
        (Method::GET, "/api/x", "application/json", 401),
        (Method::GET, "/api/x", "*/*", 401),
        (Method::POST, "/api/x", BROWSER_ACCEPT, 401),
    ] {
        let reply = anon
            .send(method.clone(), path, &[("accept", accept)], Bytes::new())
            .await;
        assert_eq!(reply.status, status, "{method} {path} {accept}");
        assert_eq!(reply.error_code(), "unauthenticated");
    }
    assert!(upstream.is_untouched());
    // The login page itself is public, and a session's page loads go through.
    let reply = anon
        .send(
            Method::GET,
            "/login?return_to=/api/x",
            &[("accept", BROWSER_ACCEPT)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    upstream.clear();
    let mut user = gateway.client();
    login(&mut user, "user", USER_PW).await;
    let reply = user
        .send(
            Method::GET,
            "/api/x",
            &[("accept", BROWSER_ACCEPT)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let reply = user
        .send(
            Method::GET,
            "/admin/x",
            &[("accept", BROWSER_ACCEPT)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 403);
}

#[tokio::test]
async fn a_login_returns_only_to_its_own_origin_or_an_allowed_host() {
    let (_upstream, gateway) = support::setup_with(
        Store::Memory,
        "login_url: \"https://sso.example.test/login\"\nallowed_redirect_hosts: [app.example.test]\n",
    )
    .await;
    // A login page elsewhere gets the full URL of the page to come back to.
    let reply = gateway
        .client()
        .send(
            Method::GET,
            "/api/x",
            &[("accept", BROWSER_ACCEPT)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 303);
    let own = own_origin(&gateway);
    let back = format!("{own}/api/x").replace(':', "%3A");
    assert_eq!(
        reply.header("location"),
        Some(format!("https://sso.example.test/login?return_to={back}").as_str())
    );
    let own_page = format!("{own}/api/x?y=1");
    for (asked, answered) in [
        ("/api/x?y=1", "/api/x?y=1"),
        (own_page.as_str(), own_page.as_str()),
        (
            "https://app.example.test/home",
            "https://app.example.test/home",
        ),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("https://app.example.test@evil.example/", "/"),
        ("javascript:alert(1)", "/"),
    ] {
        let body = serde_json::json!({
            "username": "user",
            "password": USER_PW,
            "return_to": asked,
        });
        let reply = gateway.client().post_json("/session", &body).await;
        assert_eq!(reply.status, 201, "{asked}");
        assert_eq!(reply.json()["return_to"], answered, "{asked}");
    }
    let reply = gateway
        .client()
        .post_json(
            "/session",
            &serde_json::json!({ "username": "user", "password": USER_PW }),
        )
        .await;
    assert_eq!(reply.status, 201);
    assert!(reply.json().get("return_to").is_none());
}
