//! An `https://` upstream: a TLS echo upstream with a test CA's certificate, trusted through
//! `upstream.ca_file`; the compiled-in webpki roots, a certificate for another name and a
//! handshake that never finishes all end in 502 `bad_gateway`.

use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use crate::support::tls::{Leaf, Usage, SERVER_NAMES};
use crate::support::{self, ConfigOptions, Gateway, Store, TestCa, Upstream, USER_PW};

/// A TLS echo upstream serving `leaf`.
async fn tls_upstream(leaf: &Leaf) -> Upstream {
    Upstream::start_tls(leaf.server_config()).await
}

/// A gateway (plain listener, memory store) in front of `https://<host>:<upstream port>` with
/// `lines` inside `upstream:`.
async fn gateway_to(upstream: &Upstream, host: &str, lines: &str) -> Gateway {
    let base = format!("https://{host}");
    let yaml = support::config_yaml_with(
        upstream.addr,
        Store::Memory,
        &ConfigOptions {
            upstream_base: Some(&base),
            upstream: lines,
            ..ConfigOptions::default()
        },
    );
    Gateway::start(&yaml).await
}

/// `upstream.ca_file` naming `ca`'s certificate, written into `dir`.
fn ca_file_line(ca: &TestCa, dir: &tempfile::TempDir) -> String {
    let path = ca.write(dir.path(), "upstream-ca.pem");
    format!("  ca_file: \"{}\"\n", path.display())
}

#[tokio::test]
async fn an_https_upstream_trusted_through_ca_file_gets_the_request_with_identity_and_sni() {
    let (ca, dir) = (
        TestCa::generate("upstream ca"),
        tempfile::tempdir().unwrap(),
    );
    let upstream = tls_upstream(&ca.issue("upstream", SERVER_NAMES, Usage::Server)).await;
    let gateway = gateway_to(&upstream, "localhost", &ca_file_line(&ca, &dir)).await;
    let mut client = gateway.client();
    support::login(&mut client, "user", USER_PW).await;

    let reply = client.get("/api/x?q=1").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = upstream.only();
    assert_eq!(seen.target, "/api/x?q=1");
    assert_eq!(
        seen.sni.as_deref(),
        Some("localhost"),
        "SNI from the URL host"
    );
    assert_eq!(seen.header("x-auth-user"), Some("user"));
    assert_eq!(seen.header("x-auth-roles"), Some("reader"));
    // `host_header: preserve` (the default) is unchanged by TLS: the client's Host goes up.
    assert_eq!(
        seen.header("host"),
        Some(format!("{}", gateway.addr).as_str())
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));

    // The pooled TLS connection carries the next request too.
    let reply = client.get("/public/a").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(upstream.requests().len(), 2);
}

#[tokio::test]
async fn an_https_upstream_from_a_private_ca_is_502_with_the_webpki_roots() {
    let ca = TestCa::generate("upstream ca");
    let upstream = tls_upstream(&ca.issue("upstream", SERVER_NAMES, Usage::Server)).await;
    let gateway = gateway_to(&upstream, "127.0.0.1", "").await;
    let reply = gateway.client().get("/public/a").await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(reply.error_code(), "bad_gateway");
    assert!(
        upstream.is_untouched(),
        "no request over an unverified connection"
    );
}

#[tokio::test]
async fn an_https_upstream_whose_certificate_names_another_host_is_502() {
    let (ca, dir) = (
        TestCa::generate("upstream ca"),
        tempfile::tempdir().unwrap(),
    );
    let upstream = tls_upstream(&ca.issue("other", &["other.test"], Usage::Server)).await;
    for host in ["127.0.0.1", "localhost"] {
        let gateway = gateway_to(&upstream, host, &ca_file_line(&ca, &dir)).await;
        let reply = gateway.client().get("/public/a").await;
        assert_eq!(reply.status, 502, "{host}: {}", reply.text());
        assert_eq!(reply.error_code(), "bad_gateway");
    }
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn tls_server_name_checks_the_upstream_certificate_against_that_name() {
    let (ca, dir) = (
        TestCa::generate("upstream ca"),
        tempfile::tempdir().unwrap(),
    );
    let upstream = tls_upstream(&ca.issue("other", &["api.internal"], Usage::Server)).await;
    let lines = format!(
        "{}  tls_server_name: api.internal\n",
        ca_file_line(&ca, &dir)
    );
    let gateway = gateway_to(&upstream, "127.0.0.1", &lines).await;
    let reply = gateway.client().get("/public/a").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(upstream.only().sni.as_deref(), Some("api.internal"));
}

#[tokio::test]
async fn connect_timeout_covers_a_tls_handshake_that_never_finishes() {
    // Accepts TCP connections and never answers the ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let yaml = support::config_yaml_with(
        addr,
        Store::Memory,
        &ConfigOptions {
            upstream_base: Some("https://127.0.0.1"),
            upstream: "  connect_timeout: 300ms\n",
            ..ConfigOptions::default()
        },
    );
    let gateway = Gateway::start(&yaml).await;
    let started = Instant::now();
    let reply = gateway.client().get("/public/a").await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(reply.error_code(), "bad_gateway");
    assert!(
        elapsed < Duration::from_millis(1500),
        "answered after {elapsed:?}: the 2 s upstream.timeout, not the 300ms connect_timeout"
    );
    silent.abort();
}
