//! Forwarded context (C08, inline proxy part): client-sent forwarding headers never influence a
//! decision and never reach the upstream unless the peer is a trusted proxy.

use bytes::Bytes;
use http::Method;

use crate::support::{self, login, Store, USER_PW};

const SPOOFED: &[(&str, &str)] = &[
    ("X-Forwarded-Uri", "/public/a"),
    ("X-Original-URL", "/public/a"),
    ("X-Rewrite-URL", "/public/a"),
    ("X-Forwarded-Prefix", "/public"),
    ("X-Forwarded-Host", "public.example.test"),
    ("X-Forwarded-Method", "OPTIONS"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-For", "10.9.8.7"),
    (
        "Forwarded",
        "for=10.9.8.7;proto=https;host=public.example.test",
    ),
    ("X-Real-IP", "10.9.8.7"),
];

#[tokio::test]
async fn c08_spoofed_forwarding_headers_do_not_change_the_decision() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    let reply = client
        .send(Method::GET, "/admin/users", SPOOFED, Bytes::new())
        .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (401, "unauthenticated")
    );
    login(&mut client, "user", USER_PW).await;
    let reply = client
        .send(Method::GET, "/admin/users", SPOOFED, Bytes::new())
        .await;
    assert_eq!(reply.status, 403);
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn c08_untrusted_forwarding_headers_are_replaced_with_the_gateways_own() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let reply = gateway
        .client()
        .send(Method::GET, "/public/a", SPOOFED, Bytes::new())
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    assert_eq!(seen.target, "/public/a");
    assert_eq!(seen.all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.all("x-forwarded-proto"), ["http"]);
    assert_eq!(seen.all("x-forwarded-host"), [gateway.addr.to_string()]);
    for gone in [
        "x-forwarded-uri",
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-prefix",
        "x-forwarded-method",
        "forwarded",
        "x-real-ip",
    ] {
        assert_eq!(seen.header(gone), None, "{gone} reached the upstream");
    }
}

#[tokio::test]
async fn c08_client_address_and_host_override_headers_from_an_untrusted_peer_never_arrive() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let spoofed = [
        "X-Client-IP",
        "Client-IP",
        "True-Client-IP",
        "CF-Connecting-IP",
        "Fastly-Client-IP",
        "X-Cluster-Client-IP",
        "X_Real_IP",
        "X-Forwarded",
        "Forwarded-For",
        "X-Original-Method",
        "X-Original-Host",
        "X-Host",
        "X-HTTP-Host-Override",
        // Client-certificate headers of TLS terminators.
        "X-SSL-Client-DN",
        "X-SSL-Client-Verify",
        "SSL-Client-Cert",
        "X-Client-Cert",
        "X-Client-Verify",
        "X-ARR-ClientCert",
        "X-Forwarded-Client-Cert",
    ];
    let headers: Vec<(&str, &str)> = spoofed.iter().map(|n| (*n, "10.0.0.1")).collect();
    let reply = gateway
        .client()
        .send(Method::GET, "/public/a", &headers, Bytes::new())
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    for name in spoofed {
        let name = name.to_ascii_lowercase().replace('_', "-");
        let found = seen
            .headers
            .iter()
            .find(|(n, _)| n.to_ascii_lowercase().replace('_', "-") == name);
        assert_eq!(found, None, "{name} reached the upstream");
    }
    assert_eq!(seen.all("x-forwarded-for"), ["127.0.0.1"]);
}

#[tokio::test]
async fn c08_a_trusted_proxy_is_believed_and_extended_but_never_decides_access() {
    let (upstream, gateway) =
        support::setup_with(Store::Memory, "trusted_proxies: [\"127.0.0.1/32\"]\n").await;
    let mut client = gateway.client();
    let reply = client
        .send(Method::GET, "/admin/users", SPOOFED, Bytes::new())
        .await;
    assert_eq!(
        reply.status, 401,
        "forwarding headers never pick the path, even from a trusted proxy"
    );
    let reply = client
        .send(Method::GET, "/public/a", SPOOFED, Bytes::new())
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    assert_eq!(seen.all("x-forwarded-for"), ["10.9.8.7, 127.0.0.1"]);
    assert_eq!(seen.all("x-forwarded-proto"), ["https"]);
    assert_eq!(seen.all("x-forwarded-host"), ["public.example.test"]);
    assert_eq!(seen.target, "/public/a");
}

#[tokio::test]
async fn c08_a_trusted_proxys_forwarded_gets_the_peer_appended_and_none_is_invented() {
    let (upstream, gateway) =
        support::setup_with(Store::Memory, "trusted_proxies: [\"127.0.0.1/32\"]\n").await;
    let mut client = gateway.client();
    let reply = client
        .send(
            Method::GET,
            "/public/a",
            &[(
                "Forwarded",
                "for=10.9.8.7;proto=https;host=public.example.test",
            )],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        upstream.only().all("forwarded"),
        ["for=10.9.8.7;proto=https;host=public.example.test, for=127.0.0.1"]
    );
    upstream.clear();

    let reply = client.get("/public/a").await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    assert_eq!(
        seen.header("forwarded"),
        None,
        "only X-Forwarded-For is started"
    );
    assert_eq!(seen.all("x-forwarded-for"), ["127.0.0.1"]);
}
