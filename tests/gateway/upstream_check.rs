//! The delegated credential check (`identity.upstream_check`) against a real HTTP endpoint, and
//! the identity sources in order: what each answer of the endpoint becomes, what the endpoint
//! and the upstream receive, regulation, shadowing by local users, and the check path behind a
//! shared origin. The credentials never reach a log or the normal upstream.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use portcullis::config::Config;

use crate::support::{
    self, config_yaml, config_yaml_with, free_port, login, Binary, CheckEndpoint, Client,
    ConfigOptions, Gateway, Store, Upstream, CHECK_PW, DISABLED_PW, USER_PW,
};

/// `identity:` with the check at `url` (a shared secret header from a file) and `extra` lines
/// inside it (indented by two spaces).
fn identity_yaml(url: &str, secret_file: &std::path::Path, extra: &str) -> String {
    format!(
        "identity:\n  upstream_check:\n    url: \"{url}\"\n    timeout: 500ms\n    max_session_age: 10m\n    headers:\n      X-Check-Secret: \"${{file:{}}}\"\n{extra}",
        secret_file.display()
    )
}

struct Setup {
    upstream: Upstream,
    check: CheckEndpoint,
    gateway: Gateway,
    _dir: tempfile::TempDir,
}

/// Fixture R on the memory store, the check endpoint as a second source, `extra` inside
/// `identity:` and `more` top-level YAML.
async fn setup(extra: &str, more: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("check-secret");
    std::fs::write(&secret, "shared-check-secret\n").unwrap();
    let check = CheckEndpoint::start().await;
    let upstream = Upstream::start().await;
    let yaml = config_yaml(
        upstream.addr,
        Store::Memory,
        &format!("{}{more}", identity_yaml(&check.url(), &secret, extra)),
    );
    let gateway = Gateway::start(&yaml).await;
    Setup {
        upstream,
        check,
        gateway,
        _dir: dir,
    }
}

async fn attempt(client: &mut Client, user: &str, password: &str) -> crate::support::client::Reply {
    client
        .post_json(
            "/session",
            &serde_json::json!({ "username": user, "password": password }),
        )
        .await
}

#[tokio::test]
async fn a_checked_login_gets_a_session_with_the_returned_roles() {
    let s = setup("", "").await;
    let mut carol = s.gateway.client();
    let reply = attempt(&mut carol, "carol", CHECK_PW).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["user"], "carol");
    assert_eq!(body["roles"], serde_json::json!(["reader", "ops"]));
    // Capped by max_session_age (10m), not absolute_timeout (12h).
    let at = |key: &str| humantime::parse_rfc3339(body[key].as_str().unwrap()).unwrap();
    let lifetime = at("expires_at").duration_since(at("created_at")).unwrap();
    assert_eq!(lifetime, Duration::from_secs(600));
    assert!(
        reply.set_cookies()[0].contains("Max-Age=600"),
        "{:?}",
        reply.set_cookies()
    );

    // What the endpoint received: exactly the credentials, as JSON, with the static header.
    let checks = s.check.checks();
    assert_eq!(checks.len(), 1);
    let sent = &checks[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.header("x-check-secret"), Some("shared-check-secret"));
    let sent_body: serde_json::Value = serde_json::from_str(&sent.body).unwrap();
    assert_eq!(
        sent_body,
        serde_json::json!({ "username": "carol", "password": CHECK_PW })
    );

    // The session reaches the upstream with the returned identity.
    let reply = carol.get("/api/x").await;
    assert_eq!(reply.status, 200);
    let seen = s.upstream.only();
    assert_eq!(seen.header("x-auth-user"), Some("carol"));
    assert_eq!(seen.header("x-auth-roles"), Some("reader,ops"));
    assert_eq!(carol.get("/admin/x").await.status, 403);
    let status = carol.get("/session").await;
    assert_eq!(status.json()["roles"], serde_json::json!(["reader", "ops"]));
    // Logout ends it like any session.
    let cookie = carol.cookie("gw_sid").unwrap();
    assert_eq!(carol.delete("/session").await.status, 204);
    let mut replay = s.gateway.client();
    replay.set_cookie("gw_sid", &cookie);
    assert_eq!(replay.get("/api/x").await.status, 401);
}

#[tokio::test]
async fn refusals_look_exactly_like_a_wrong_local_password() {
    let s = setup("", "").await;
    let local = attempt(&mut s.gateway.client(), "user", "wrong").await;
    assert_eq!(local.status, 401);
    for (user, password) in [("carol", "wrong"), ("forbidden", CHECK_PW)] {
        let reply = attempt(&mut s.gateway.client(), user, password).await;
        assert_eq!(reply.status, 401, "{user}");
        assert_eq!(reply.body, local.body, "{user}");
        assert!(reply.set_cookies().is_empty());
    }
    assert_eq!(
        s.check.checks().len(),
        2,
        "the local user was decided locally"
    );
}

#[tokio::test]
async fn unusable_answers_are_503_and_never_a_login() {
    let s = setup("", "").await;
    for user in ["broken", "garbage", "badrole", "baduser", "noroles", "slow"] {
        let started = Instant::now();
        let reply = attempt(&mut s.gateway.client(), user, CHECK_PW).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (503, "identity_source_unavailable"),
            "{user}: {}",
            reply.text()
        );
        assert!(reply.set_cookies().is_empty(), "{user}");
        // The 500 ms timeout bounds the slow endpoint.
        assert!(started.elapsed() < Duration::from_secs(2), "{user}");
    }
    // An endpoint that is down is unavailable too.
    s.check.stop();
    let reply = attempt(&mut s.gateway.client(), "carol", CHECK_PW).await;
    assert_eq!(reply.error_code(), "identity_source_unavailable");
    assert!(s.upstream.is_untouched());
}

#[tokio::test]
async fn regulation_counts_refusals_but_not_outages() {
    let s = setup(
        "",
        "regulation:\n  per_user_and_address:\n    max_retries: 2\n",
    )
    .await;
    let mut client = s.gateway.client();
    for _ in 0..4 {
        let reply = attempt(&mut client, "broken", CHECK_PW).await;
        assert_eq!(reply.status, 503, "an outage never bans");
    }
    assert_eq!(attempt(&mut client, "carol", "wrong-1").await.status, 401);
    assert_eq!(attempt(&mut client, "carol", "wrong-2").await.status, 401);
    let checks = s.check.checks().len();
    let reply = attempt(&mut client, "carol", CHECK_PW).await;
    assert_eq!(reply.status, 429);
    assert!(reply.header("retry-after").is_some());
    assert_eq!(
        s.check.checks().len(),
        checks,
        "a banned attempt is not checked"
    );
}

#[tokio::test]
async fn local_users_decide_alone_and_shadow_delegated_ones() {
    let s = setup("", "").await;
    // Known locally (disabled included): decided here, never sent to the endpoint.
    assert_eq!(
        attempt(&mut s.gateway.client(), "user", CHECK_PW)
            .await
            .status,
        401
    );
    assert_eq!(
        attempt(&mut s.gateway.client(), "disabled", DISABLED_PW)
            .await
            .status,
        401
    );
    assert_eq!(
        attempt(&mut s.gateway.client(), "disabled", CHECK_PW)
            .await
            .status,
        401
    );
    assert!(s.check.checks().is_empty());
    let mut user = s.gateway.client();
    login(&mut user, "user", USER_PW).await;
    assert!(s.check.checks().is_empty());
    // An endpoint vouching for a local user's name does not make a session.
    assert_eq!(
        attempt(&mut s.gateway.client(), "impostor", CHECK_PW)
            .await
            .status,
        401
    );

    // A delegated session, then a local user of that name appears: the session ends.
    let mut carol = s.gateway.client();
    login(&mut carol, "carol", CHECK_PW).await;
    assert_eq!(carol.get("/api/x").await.status, 200);
    let (hash, _, _) = support::hashes();
    let with_carol = config_yaml(s.upstream.addr, Store::Memory, "").replace(
        "users:\n",
        &format!("users:\n  - username: carol\n    password_hash: \"{hash}\"\n"),
    );
    let with_carol = format!(
        "{with_carol}identity:\n  upstream_check:\n    url: \"{}\"\n",
        s.check.url()
    );
    s.gateway
        .state
        .reload(&Config::from_yaml_str(&with_carol).unwrap());
    assert_eq!(carol.get("/api/x").await.status, 401);
    // ... and carol is now decided locally: the endpoint's password no longer works.
    s.check.clear();
    assert_eq!(
        attempt(&mut s.gateway.client(), "carol", CHECK_PW)
            .await
            .status,
        401
    );
    assert!(s.check.checks().is_empty());
    assert_eq!(
        attempt(&mut s.gateway.client(), "carol", USER_PW)
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn with_only_the_check_as_source_every_login_goes_there() {
    let s = setup("  sources: [upstream_check]\n", "").await;
    assert_eq!(
        attempt(&mut s.gateway.client(), "user", USER_PW)
            .await
            .status,
        401
    );
    let reply = attempt(&mut s.gateway.client(), "user", CHECK_PW).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(s.check.checks().len(), 2);
}

#[tokio::test]
async fn the_check_path_behind_the_upstream_origin_is_denied_on_the_proxy() {
    // The check endpoint's server is the upstream as well.
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("s");
    std::fs::write(&secret, "x").unwrap();
    let api = CheckEndpoint::start().await;
    let url = format!("http://localhost:{}/auth/check", api.addr.port());
    let yaml = config_yaml(api.addr, Store::Memory, &identity_yaml(&url, &secret, ""));
    let gateway = Gateway::start(&yaml).await;
    let mut anonymous = gateway.client();
    let mut carol = gateway.client();
    login(&mut carol, "carol", CHECK_PW).await;
    let json = [("content-type", "application/json")];
    let body = Bytes::from(format!(r#"{{"username":"carol","password":"{CHECK_PW}"}}"#));
    for path in [
        "/auth/check",
        "/auth/check/",
        "/AUTH/Check",
        "/auth/./check",
        "/auth/check/x",
    ] {
        let reply = anonymous
            .send(Method::POST, path, &json, body.clone())
            .await;
        assert_eq!(reply.status, 401, "{path}");
        let reply = carol.send(Method::POST, path, &json, body.clone()).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (403, "forbidden"),
            "{path}"
        );
        assert_eq!(carol.get(path).await.status, 403, "{path}");
    }
    assert_eq!(
        api.checks().len(),
        1,
        "only the login reached the check path"
    );
    // Every other path of the same server is proxied as usual.
    assert_eq!(carol.get("/auth/checks").await.status, 200);
    assert_eq!(carol.get("/api/x").await.status, 200);
}

async fn login_status(addr: SocketAddr, user: &str, password: &str) -> u16 {
    attempt(&mut Client::new(addr), user, password).await.status
}

#[tokio::test]
async fn credentials_are_never_logged_and_never_reach_the_upstream() {
    let check = CheckEndpoint::start().await;
    let upstream = Upstream::start().await;
    let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("s");
    std::fs::write(&secret, "shared-secret-value-9").unwrap();
    let extra = format!(
        "{}log:\n  level: trace\n",
        identity_yaml(&check.url(), &secret, "")
    );
    let options = ConfigOptions {
        listen: Some(proxy),
        admin_listen: Some(admin),
        extra: &extra,
        ..ConfigOptions::default()
    };
    let yaml = config_yaml_with(upstream.addr, Store::Memory, &options);
    let mut gateway = Binary::run(&yaml, &[("RUST_LOG", "trace")]);
    gateway.wait_listening(admin).await;
    gateway.wait_listening(proxy).await;

    // A password typed into the username field must stay out of the log too.
    const TYPO: &str = "typo-in-the-username-field-7";
    let cases = [
        ("carol", CHECK_PW, 201),
        ("carol", "wrong-check-password-3", 401),
        ("broken", CHECK_PW, 503),
        ("garbage", CHECK_PW, 503),
        ("user", USER_PW, 201),
        ("user", "wrong-local-password-5", 401),
        (TYPO, "x", 401),
    ];
    for (user, password, status) in cases {
        assert_eq!(login_status(proxy, user, password).await, status, "{user}");
    }
    let mut carol = Client::new(proxy);
    login(&mut carol, "carol", CHECK_PW).await;
    let body = Bytes::from_static(b"{\"a\":1}");
    let json = [("content-type", "application/json")];
    assert_eq!(
        carol.send(Method::POST, "/api/x", &json, body).await.status,
        200
    );
    assert_eq!(carol.get("/api/y").await.status, 200);

    gateway.signal("-TERM");
    assert!(gateway.wait_exit(Duration::from_secs(10)).await.success());
    let log = gateway.stderr();
    assert!(
        log.contains("login succeeded"),
        "trace logs were written:\n{log}"
    );
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "{log}");
    let secrets = [
        CHECK_PW,
        "wrong-check-password-3",
        USER_PW,
        "wrong-local-password-5",
        TYPO,
        "shared-secret-value-9",
    ];
    for secret in secrets {
        assert!(!log.contains(secret), "`{secret}` is in the log:\n{log}");
        for seen in upstream.requests() {
            let all = format!("{} {:?} {}", seen.target, seen.headers, seen.body);
            assert!(
                !all.contains(secret),
                "`{secret}` reached the upstream: {all}"
            );
        }
    }
    assert_eq!(upstream.requests().len(), 2);
}
