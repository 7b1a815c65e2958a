//! Request ids (kept from trusted proxies, generated otherwise, sent upstream and returned) and
//! the access log of the real binary: one line per request, its fields, and no secrets.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Method;

use crate::support::{
    self, config_yaml_with, free_port, Binary, Client, ConfigOptions, Store, Upstream, USER_PW,
};

/// Whether `id` looks generated: 32 lower-case hex digits.
fn is_generated(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

async fn get_with(client: &mut Client, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let reply = client.send(Method::GET, path, headers, Bytes::new()).await;
    let id = reply
        .header("x-request-id")
        .expect("X-Request-Id")
        .to_owned();
    (reply.status, id)
}

#[tokio::test]
async fn a_trusted_proxys_request_id_is_forwarded_upstream_and_returned() {
    let (upstream, gateway) =
        support::setup_with(Store::Memory, "trusted_proxies: [\"127.0.0.1/32\"]\n").await;
    let mut client = gateway.client();
    let (status, id) = get_with(
        &mut client,
        "/public/a",
        &[("x-request-id", "edge:42.a_b-c")],
    )
    .await;
    assert_eq!((status, id.as_str()), (200, "edge:42.a_b-c"));
    assert_eq!(upstream.only().all("x-request-id"), ["edge:42.a_b-c"]);

    // Portcullis's own answers return it too.
    let (status, id) = get_with(&mut client, "/api/x", &[("x-request-id", "edge-43")]).await;
    assert_eq!((status, id.as_str()), (401, "edge-43"));
}

#[tokio::test]
async fn an_untrusted_or_odd_request_id_is_replaced_by_a_generated_one() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let (status, id) = get_with(
        &mut gateway.client(),
        "/public/a",
        &[("x-request-id", "edge-42")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(is_generated(&id), "{id}");
    assert_eq!(upstream.only().all("x-request-id"), [id.as_str()]);

    // From a trusted proxy, only one plain token of at most 128 bytes is kept.
    let (upstream, gateway) =
        support::setup_with(Store::Memory, "trusted_proxies: [\"127.0.0.1/32\"]\n").await;
    let long = "x".repeat(129);
    for headers in [
        &[("x-request-id", long.as_str())][..],
        &[("x-request-id", "has space")],
        &[("x-request-id", "a\"b")],
        &[("x-request-id", "")],
        &[("x-request-id", "one"), ("x-request-id", "two")],
    ] {
        upstream.clear();
        let (status, id) = get_with(&mut gateway.client(), "/public/a", headers).await;
        assert_eq!(status, 200);
        assert!(is_generated(&id), "{headers:?}: {id}");
        assert_eq!(
            upstream.only().all("x-request-id"),
            [id.as_str()],
            "{headers:?}"
        );
    }
    let max = "y".repeat(128);
    let (_, id) = get_with(
        &mut gateway.client(),
        "/public/a",
        &[("x-request-id", &max)],
    )
    .await;
    assert_eq!(id, max);
}

#[tokio::test]
async fn every_answer_own_or_proxied_carries_its_own_request_id() {
    let (_upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    let login = client
        .post_json(
            "/session",
            &serde_json::json!({ "username": "user", "password": USER_PW }),
        )
        .await;
    assert_eq!(login.status, 201);
    let mut ids = vec![login.header("x-request-id").unwrap().to_owned()];
    for (path, want) in [
        ("/api/x", 200),
        ("/admin/x", 403),
        ("/session/nope", 404),
        ("/a%2Fb", 400),
    ] {
        let (status, id) = get_with(&mut client, path, &[]).await;
        assert_eq!(status, want, "{path}");
        ids.push(id);
    }
    let trace = client.send(Method::TRACE, "/", &[], Bytes::new()).await;
    assert_eq!(trace.status, 405);
    ids.push(trace.header("x-request-id").unwrap().to_owned());
    assert!(ids.iter().all(|id| is_generated(id)), "{ids:?}");
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
}

/// The fixture config for the real binary on fixed free ports, plus `extra`.
fn binary_config(upstream: &Upstream, extra: &str) -> (String, SocketAddr) {
    let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let yaml = config_yaml_with(
        upstream.addr,
        Store::Memory,
        &ConfigOptions {
            listen: Some(proxy),
            admin_listen: Some(admin),
            extra,
            ..ConfigOptions::default()
        },
    );
    (yaml, proxy)
}

/// Start the binary, wait for it, run `traffic` against its proxy address, stop it and return
/// its stderr.
async fn log_of<F, Fut>(yaml: &str, proxy: SocketAddr, env: &[(&str, &str)], traffic: F) -> String
where
    F: FnOnce(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut gateway = Binary::run(yaml, env);
    gateway.wait_listening(proxy).await;
    traffic(proxy).await;
    gateway.signal("-TERM");
    let status = gateway.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", gateway.stderr());
    gateway.stderr()
}

#[tokio::test]
async fn the_json_access_log_has_one_line_per_request_with_its_fields_and_no_secrets() {
    let upstream = Upstream::start().await;
    let (yaml, proxy) = binary_config(
        &upstream,
        "trusted_proxies: [\"127.0.0.1/32\"]\nlog:\n  format: json\n",
    );
    let mut cookie = String::new();
    let query_token = "querytoken0123456789";
    let wrong_password = format!("{USER_PW}-wrong");
    let log = log_of(&yaml, proxy, &[], |proxy| {
        let cookie = &mut cookie;
        let wrong_password = wrong_password.clone();
        async move {
            let mut client = Client::new(proxy);
            *cookie = support::login(&mut client, "user", USER_PW).await;
            let reply = client
                .send(
                    Method::GET,
                    &format!("/api/x?token={query_token}"),
                    &[("x-request-id", "edge-7")],
                    Bytes::new(),
                )
                .await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.header("x-request-id"), Some("edge-7"));
            let mut anonymous = Client::new(proxy);
            let reply = anonymous
                .post_json(
                    "/session",
                    &serde_json::json!({ "username": "user", "password": wrong_password }),
                )
                .await;
            assert_eq!(reply.status, 401);
            assert_eq!(anonymous.get("/a%2Fb").await.status, 400);
        }
    })
    .await;
    assert_eq!(upstream.only().all("x-request-id"), ["edge-7"]);

    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let access: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["target"] == "portcullis::access")
        .collect();
    assert_eq!(access.len(), 4, "{log}");
    let fields = |line: &serde_json::Value| {
        (
            line["method"].as_str().unwrap().to_owned(),
            line["path"].as_str().unwrap().to_owned(),
            line["status"].as_u64().unwrap(),
            line["user"].as_str().unwrap().to_owned(),
            line["outcome"].as_str().unwrap().to_owned(),
        )
    };
    let seen: Vec<_> = access.iter().map(|line| fields(line)).collect();
    let want = [
        ("POST", "/session", 201, "user", "own"),
        ("GET", "/api/x", 200, "user", "proxied"),
        ("POST", "/session", 401, "-", "invalid_credentials"),
        ("GET", "-", 400, "-", "bad_request"),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(m, p, s, u, o)| {
            (
                m.to_string(),
                p.to_string(),
                *s,
                u.to_string(),
                o.to_string(),
            )
        })
        .collect();
    assert_eq!(seen, want, "{log}");
    for line in &access {
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request");
        assert_eq!(line["client"], "127.0.0.1");
        assert!(line["timestamp"].is_string());
        let ms = line["duration_ms"]
            .as_f64()
            .expect("duration_ms is a number");
        assert!((0.0..10_000.0).contains(&ms), "{line}");
    }
    assert_eq!(access[1]["request_id"], "edge-7");
    for line in [access[0], access[2], access[3]] {
        assert!(is_generated(line["request_id"].as_str().unwrap()), "{line}");
    }

    let (id_part, mac_part) = cookie.split_once('.').expect("id.mac");
    for secret in [
        USER_PW,
        wrong_password.as_str(),
        cookie.as_str(),
        id_part,
        mac_part,
        query_token,
        "token=",
        "%2F",
    ] {
        assert!(!log.contains(secret), "the log contains `{secret}`:\n{log}");
    }
}

#[tokio::test]
async fn text_access_lines_and_the_configured_level() {
    let upstream = Upstream::start().await;
    let (yaml, proxy) = binary_config(&upstream, "");
    let log = log_of(&yaml, proxy, &[("NO_COLOR", "1")], |proxy| async move {
        assert_eq!(Client::new(proxy).get("/public/a").await.status, 200);
    })
    .await;
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("portcullis::access"))
        .collect();
    assert_eq!(access.len(), 1, "{log}");
    for field in [
        "method=\"GET\"",
        "path=\"/public/a\"",
        "status=200",
        "user=\"-\"",
        "client=127.0.0.1",
        "outcome=\"proxied\"",
        "duration_ms=",
        "request_id=",
    ] {
        assert!(access[0].contains(field), "{field} in {}", access[0]);
    }

    // log.level: warn drops the access lines (info) ...
    let (yaml, proxy) = binary_config(&upstream, "log:\n  level: warn\n");
    let log = log_of(&yaml, proxy, &[], |proxy| async move {
        assert_eq!(Client::new(proxy).get("/public/a").await.status, 200);
    })
    .await;
    assert!(!log.contains("portcullis::access"), "{log}");
    assert!(!log.contains("portcullis listening"), "{log}");

    // ... unless RUST_LOG says otherwise.
    let (yaml, proxy) = binary_config(&upstream, "log:\n  level: warn\n");
    let log = log_of(&yaml, proxy, &[("RUST_LOG", "info")], |proxy| async move {
        assert_eq!(Client::new(proxy).get("/public/a").await.status, 200);
    })
    .await;
    assert!(log.contains("portcullis::access"), "{log}");
}
