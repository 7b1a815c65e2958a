//! The real `portcullis` binary: `--check-config` exit codes and messages, `hash-password`, and a
//! whole run from start to SIGTERM (and SIGINT) with a request in flight.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::binary::{self, PORTCULLIS};
use crate::support::{
    self, config_yaml, config_yaml_with, free_port, Binary, Client, ConfigOptions, Store, Upstream,
    SECRET_1, USER_PW,
};

/// sysexits `EX_CONFIG`.
const EX_CONFIG: i32 = 78;

/// Any address: `--check-config` never connects to the upstream.
fn some_upstream() -> SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

/// Run `--check-config` on `yaml` and insist on exit 78 with `keys` named on stderr and none of
/// `secrets` printed anywhere. Returns stderr.
fn assert_rejected(yaml: &str, env: &[(&str, &str)], keys: &[&str], secrets: &[&str]) -> String {
    let output = binary::check_config(yaml, env);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(EX_CONFIG),
        "stderr: {stderr}\n{yaml}"
    );
    for key in keys {
        assert!(
            stderr.contains(key),
            "stderr does not name `{key}`: {stderr}"
        );
    }
    for secret in secrets {
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "a secret was printed: {stderr}{stdout}"
        );
    }
    stderr
}

#[test]
fn check_config_accepts_the_fixture_config_and_the_shipped_example() {
    let output = binary::check_config(&config_yaml(some_upstream(), Store::Memory, ""), &[]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains(SECRET_1), "{stdout}");

    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml");
    let output = binary::check_config_file(&example);
    assert_eq!(
        output.status.code(),
        Some(0),
        "config.example.yaml: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn check_config_warns_about_shadowed_rules_and_still_exits_0() {
    // After fixture R's `/public/` and `/admin/`: `/admin/users/` and `/public` can never match
    // (first match wins); `/reports/` after a GET-only `/reports/` neither, as methods never make
    // a request fall through. `/administration/` is reachable.
    let yaml = config_yaml(
        some_upstream(),
        Store::Memory,
        "    - path: /admin/users/\n      allow: anonymous\n    - path: /public\n      allow: deny\n    - path: /administration/\n    - path: /reports/\n      methods: [GET]\n    - path: /reports/\n      allow: anonymous\n",
    );
    let output = binary::check_config(&yaml, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let shadowed: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("warning: ") && line.contains("never reached"))
        .collect();
    assert_eq!(shadowed.len(), 3, "{stderr}");
    for (later, earlier) in [(2, 1), (3, 0), (6, 5)] {
        let names = format!("access.rules[{later}] is never reached: access.rules[{earlier}]");
        assert!(
            shadowed.iter().any(|line| line.contains(&names)),
            "{names}: {stderr}"
        );
    }
    assert!(!stderr.contains("access.rules[4] is never"), "{stderr}");

    // Fixture R alone has no shadowed rule.
    let output = binary::check_config(&config_yaml(some_upstream(), Store::Memory, ""), &[]);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("never reached"));
}

#[test]
fn check_config_rejects_an_unknown_paths_key_or_value_with_78() {
    let yaml = config_yaml(
        some_upstream(),
        Store::Memory,
        "paths:\n  encoded_slashes: preserve\n",
    );
    assert_rejected(&yaml, &[], &["encoded_slashes"], &[SECRET_1]);
    let yaml = config_yaml(
        some_upstream(),
        Store::Memory,
        "paths:\n  semicolon: allow\n",
    );
    assert_rejected(&yaml, &[], &["paths.semicolon"], &[SECRET_1]);
}

#[test]
fn check_config_rejects_an_unknown_key_with_78_naming_it() {
    let yaml = config_yaml_with(
        some_upstream(),
        Store::Memory,
        &ConfigOptions {
            session: "  idle_timout: 5m\n",
            ..ConfigOptions::default()
        },
    );
    assert_rejected(&yaml, &[], &["idle_timout", "session"], &[SECRET_1]);
}

#[test]
fn check_config_rejects_a_bad_duration_with_78_naming_the_key() {
    let good = config_yaml(some_upstream(), Store::Memory, "");
    let yaml = good.replace("  timeout: 2s\n", "  timeout: soon\n");
    assert_ne!(yaml, good, "the fixture sets upstream.timeout");
    assert_rejected(&yaml, &[], &["upstream.timeout"], &[SECRET_1]);
}

#[test]
fn check_config_rejects_a_short_secret_with_redis_without_printing_it() {
    let short = "short-but-secret-value";
    let yaml = config_yaml(some_upstream(), Store::Memory, "").replace(
        &format!("  store: memory\n  secrets: [\"{SECRET_1}\"]\n"),
        &format!(
            "  store: redis\n  redis_url: \"redis://127.0.0.1:9/0\"\n  secrets: [\"{short}\"]\n"
        ),
    );
    assert!(yaml.contains(short));
    assert_rejected(&yaml, &[], &["session.secrets[0]"], &[short]);

    // The same through the environment: the expanded value is never echoed either.
    let via_env = yaml.replace(short, "${PORTCULLIS_TEST_SHORT_SECRET}");
    assert_rejected(
        &via_env,
        &[("PORTCULLIS_TEST_SHORT_SECRET", short)],
        &["session.secrets[0]"],
        &[short],
    );

    // A valid first secret and a short second one: the key names the second, neither is shown.
    let second = yaml.replace(
        &format!("[\"{short}\"]"),
        &format!("[\"{SECRET_1}\", \"{short}\"]"),
    );
    assert_rejected(&second, &[], &["session.secrets[1]"], &[SECRET_1, short]);
}

#[test]
fn check_config_rejects_an_unset_variable_with_78_naming_the_key() {
    let yaml = config_yaml(some_upstream(), Store::Memory, "").replace(
        &format!("secrets: [\"{SECRET_1}\"]"),
        "secrets: [\"${PORTCULLIS_TEST_SURELY_UNSET}\"]",
    );
    let stderr = assert_rejected(&yaml, &[], &["session.secrets[0]"], &[SECRET_1]);
    assert!(stderr.contains("PORTCULLIS_TEST_SURELY_UNSET"), "{stderr}");
}

#[test]
fn check_config_never_echoes_a_secret_written_as_a_scalar_instead_of_a_list() {
    // A common slip: `secrets: "..."` instead of `secrets: ["..."]`.
    let yaml = config_yaml(some_upstream(), Store::Memory, "").replace(
        &format!("secrets: [\"{SECRET_1}\"]"),
        &format!("secrets: \"{SECRET_1}\""),
    );
    assert!(yaml.contains(&format!("secrets: \"{SECRET_1}\"")));
    assert_rejected(&yaml, &[], &["session.secrets"], &[SECRET_1]);
}

#[tokio::test]
async fn hash_password_prints_one_argon2id_line_that_verifies() {
    let password = "correct horse battery staple";
    let mut child = tokio::process::Command::new(PORTCULLIS)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run portcullis hash-password");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("hash-password finished within 10 s")
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {stdout:?}");
    assert!(stdout.ends_with('\n'));
    let phc = lines[0];
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert!(!phc.contains(password));
    let parsed = PasswordHash::new(phc).expect("a PHC string");
    assert!(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok());
    assert!(Argon2::default()
        .verify_password(b"correct horse battery stapler", &parsed)
        .is_err());
}

/// The fixture config for the real binary: fixed free ports (it cannot report port 0 back) in
/// front of `upstream`, memory store, plus `extra`.
fn binary_config(upstream: &Upstream, extra: &str) -> (String, SocketAddr, SocketAddr) {
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
    (yaml, proxy, admin)
}

/// Run the binary on `yaml` (debug logging, to give secrets every chance to leak) and wait until
/// both listeners accept.
async fn start_binary(yaml: &str, proxy: SocketAddr, admin: SocketAddr) -> Binary {
    let mut gateway = Binary::run(yaml, &[("RUST_LOG", "debug")]);
    gateway.wait_listening(admin).await;
    gateway.wait_listening(proxy).await;
    gateway
}

/// Wait until the upstream has received a request (it is then in flight through the gateway).
async fn wait_until_upstream_holds(upstream: &Upstream, target: &str) {
    for _ in 0..500 {
        if !upstream.is_untouched() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(upstream.only().target, target);
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_then_refuses_connections_and_exits_0() {
    let upstream = Upstream::start().await;
    let (yaml, proxy, admin) = binary_config(&upstream, "shutdown:\n  grace_period: 10s\n");
    let mut gateway = start_binary(&yaml, proxy, admin).await;
    assert_eq!(Client::new(admin).get("/healthz").await.status, 200);

    let mut client = Client::new(proxy);
    support::login(&mut client, "user", USER_PW).await;
    let slow = tokio::spawn(async move { client.get("/api/slow").await });
    wait_until_upstream_holds(&upstream, "/api/slow").await;
    gateway.signal("-TERM");

    // The listeners close at once (drain_delay 0s) while the slow request is still running.
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(proxy).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the proxy listener still accepts after SIGTERM");

    let reply = slow.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["target"], "/api/slow");
    assert_eq!(upstream.only().header("x-auth-user"), Some("user"));

    let status = gateway.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", gateway.stderr());
    assert!(TcpStream::connect(proxy).await.is_err());
    assert!(TcpStream::connect(admin).await.is_err());
}

#[tokio::test]
async fn sigint_also_lets_the_request_in_flight_finish_and_exits_0() {
    let upstream = Upstream::start().await;
    let (yaml, proxy, admin) = binary_config(&upstream, "shutdown:\n  grace_period: 10s\n");
    let mut gateway = start_binary(&yaml, proxy, admin).await;
    let mut client = Client::new(proxy);
    support::login(&mut client, "user", USER_PW).await;
    let slow = tokio::spawn(async move { client.get("/api/slow").await });
    wait_until_upstream_holds(&upstream, "/api/slow").await;
    gateway.signal("-INT");

    let reply = slow.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["target"], "/api/slow");
    let status = gateway.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", gateway.stderr());
    assert!(gateway.stderr().contains("SIGINT"), "{}", gateway.stderr());
    assert!(TcpStream::connect(proxy).await.is_err());
    assert!(TcpStream::connect(admin).await.is_err());
}

#[tokio::test]
async fn the_log_never_contains_the_password_or_the_session_cookie() {
    let upstream = Upstream::start().await;
    let (yaml, proxy, admin) = binary_config(&upstream, "");
    let mut gateway = start_binary(&yaml, proxy, admin).await;

    let mut client = Client::new(proxy);
    let sid = support::login(&mut client, "user", USER_PW).await;
    let (id_part, mac_part) = sid.split_once('.').expect("id.mac");
    assert_eq!(client.get("/api/x").await.status, 200);
    assert_eq!(client.get("/session").await.status, 200);
    // A wrong password, and the session cookie sent twice (which is logged as a warning).
    let reply = Client::new(proxy)
        .post_json(
            "/session",
            &serde_json::json!({ "username": "user", "password": format!("{USER_PW}-wrong") }),
        )
        .await;
    assert_eq!(reply.status, 401);
    let reply = Client::new(proxy)
        .send(
            http::Method::GET,
            "/api/x",
            &[("cookie", &format!("gw_sid={sid}; gw_sid={sid}"))],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(client.delete("/session").await.status, 204);

    gateway.signal("-TERM");
    let status = gateway.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    let log = gateway.stderr();
    assert!(
        log.contains("more than once") && log.contains("SIGTERM"),
        "the log was captured: {log}"
    );
    for secret in [USER_PW, SECRET_1, sid.as_str(), id_part, mac_part] {
        assert!(!log.contains(secret), "the log contains `{secret}`:\n{log}");
    }
}

#[tokio::test]
async fn a_request_outliving_the_grace_period_does_not_hold_the_exit() {
    let upstream = Upstream::start().await;
    let (fixture, proxy, admin) = binary_config(&upstream, "shutdown:\n  grace_period: 1s\n");
    // Upstream timeouts far beyond the grace period, so only the grace period can end `/hang`.
    let yaml = fixture.replace(
        "  timeout: 2s\n  idle_timeout: 2s\n",
        "  timeout: 60s\n  idle_timeout: 60s\n",
    );
    assert_ne!(yaml, fixture);
    let mut gateway = start_binary(&yaml, proxy, admin).await;
    let sid = support::login(&mut Client::new(proxy), "user", USER_PW).await;

    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let request = format!("GET /hang HTTP/1.1\r\nHost: gw\r\nCookie: gw_sid={sid}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    wait_until_upstream_holds(&upstream, "/hang").await;
    gateway.signal("-TERM");

    let status = gateway.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0), "{}", gateway.stderr());
    assert!(gateway.stderr().contains("grace period over"));
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the hanging request's connection was closed"
    );
}

#[tokio::test]
async fn sigterm_with_a_drain_delay_fails_readiness_at_once_and_keeps_serving_until_it_ends() {
    let upstream = Upstream::start().await;
    let (yaml, proxy, admin) = binary_config(
        &upstream,
        "shutdown:\n  drain_delay: 2s\n  grace_period: 10s\n",
    );
    let mut gateway = start_binary(&yaml, proxy, admin).await;
    let mut client = Client::new(proxy);
    support::login(&mut client, "user", USER_PW).await;
    assert_eq!(Client::new(admin).get("/readyz").await.status, 200);
    let mut slow_client = Client::new(proxy);
    slow_client.jar = client.jar.clone();
    let slow = tokio::spawn(async move { slow_client.get("/api/slow").await });
    wait_until_upstream_holds(&upstream, "/api/slow").await;
    upstream.clear();
    let signalled = std::time::Instant::now();
    gateway.signal("-TERM");

    // Readiness fails at once; new requests (a new connection too) are still served meanwhile.
    let mut ready = 200;
    for _ in 0..50 {
        ready = Client::new(admin).get("/readyz").await.status;
        if ready == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ready, 503, "readiness still passes after SIGTERM");
    let mut fresh = Client::new(proxy);
    fresh.jar = client.jar.clone();
    let reply = fresh.get("/api/during-drain").await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let reply = slow.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let status = gateway.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "{}", gateway.stderr());
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "the drain delay was kept"
    );
}
