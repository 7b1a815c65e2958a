//! `portcullis --config FILE sessions list|revoke`: the real binary against a real Redis, beside a
//! real gateway on the same store.

use std::process::Output;

use bytes::Bytes;
use http::Method;

use crate::support::binary::run_to_end;
use crate::support::{
    self, config_yaml, cookie_digest, free_port, Client, Gateway, RedisServer, Store, Upstream,
    ADMIN_PW, USER_PW,
};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Exit status `code`, or fail showing both outputs.
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

async fn login_with_agent(gateway: &Gateway, user: &str, password: &str, agent: &str) -> Client {
    let mut client = gateway.client();
    let body = serde_json::json!({ "username": user, "password": password });
    let reply = client
        .send(
            Method::POST,
            "/session",
            &[("content-type", "application/json"), ("user-agent", agent)],
            Bytes::from(serde_json::to_vec(&body).unwrap()),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    client
}

#[tokio::test]
async fn sessions_list_prints_one_line_per_session_with_its_handle_and_nothing_secret() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let yaml = config_yaml(upstream.addr, Store::Redis(&redis), "");
    let gateway = Gateway::start(&yaml).await;
    let a = login_with_agent(&gateway, "user", USER_PW, "agent-a/1.0").await;
    let b = login_with_agent(&gateway, "user", USER_PW, "agent\tb 2.0").await;
    let _admin = login_with_agent(&gateway, "admin", ADMIN_PW, "admin-agent").await;

    let output = run_to_end(&yaml, &["sessions", "list", "--user", "user"]).await;
    assert_exit(&output, 0);
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (line, (client, agent)) in lines.iter().zip([(&a, "agent-a/1.0"), (&b, "agent b 2.0")]) {
        let columns: Vec<&str> = line.split('\t').collect();
        assert_eq!(columns.len(), 6, "{line:?}");
        let cookie = client.cookie("gw_sid").unwrap();
        let digest = cookie_digest(&cookie);
        assert_eq!(columns[0], &digest[..32], "handle first");
        for time in &columns[1..4] {
            assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
        }
        assert_eq!(columns[4], "127.0.0.1");
        assert_eq!(columns[5], agent);
        assert!(!text.contains(&digest), "whole store key printed");
        assert!(
            !text.contains(cookie.split('.').next().unwrap()),
            "id printed"
        );
    }
    assert!(!text.contains("admin-agent"), "only the user asked for");

    // A user without sessions: nothing listed, still success.
    let output = run_to_end(&yaml, &["sessions", "list", "--user", "nobody"]).await;
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "");
}

#[tokio::test]
async fn sessions_revoke_by_handle_or_all_ends_sessions_the_gateway_then_refuses() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let yaml = config_yaml(upstream.addr, Store::Redis(&redis), "");
    let gateway = Gateway::start(&yaml).await;
    let mut a = login_with_agent(&gateway, "user", USER_PW, "a").await;
    let mut b = login_with_agent(&gateway, "user", USER_PW, "b").await;
    let mut c = login_with_agent(&gateway, "user", USER_PW, "c").await;
    let mut admin = login_with_agent(&gateway, "admin", ADMIN_PW, "d").await;
    let handle_a = cookie_digest(&a.cookie("gw_sid").unwrap())[..32].to_owned();
    let handle_admin = cookie_digest(&admin.cookie("gw_sid").unwrap())[..32].to_owned();
    assert_eq!(
        a.get("/api/x").await.status,
        200,
        "now in the gateway's cache"
    );
    let invalidations = || gateway.state.metrics.cache().invalidations.get();
    let heard = invalidations();

    let output = run_to_end(
        &yaml,
        &[
            "sessions", "revoke", "--user", "user", "--handle", &handle_a,
        ],
    )
    .await;
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("revoked session"),
        "{}",
        stdout(&output)
    );
    // The command announces the revocation: the gateway evicts the session from its cache.
    let announced = std::time::Instant::now();
    while invalidations() == heard {
        assert!(
            announced.elapsed() < std::time::Duration::from_secs(1),
            "the gateway hears of the revocation within 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(a.get("/api/x").await.status, 401, "revoked on the gateway");
    assert_eq!(b.get("/api/x").await.status, 200);

    // Gone now; another user's handle is no handle of this user's; both exit 3, change nothing.
    for handle in [&handle_a, &handle_admin] {
        let output = run_to_end(
            &yaml,
            &["sessions", "revoke", "--user", "user", "--handle", handle],
        )
        .await;
        assert_exit(&output, 3);
        assert!(
            stderr(&output).contains("no session"),
            "{}",
            stderr(&output)
        );
    }
    assert_eq!(admin.get("/api/x").await.status, 200);
    // Upper-case hex is read as the same handle; anything else is a usage error.
    let handle_b = cookie_digest(&b.cookie("gw_sid").unwrap())[..32].to_ascii_uppercase();
    let output = run_to_end(
        &yaml,
        &[
            "sessions", "revoke", "--user", "user", "--handle", &handle_b,
        ],
    )
    .await;
    assert_exit(&output, 0);
    assert_eq!(b.get("/api/x").await.status, 401);
    for (user, handle) in [
        ("user", "xyz"),
        ("user", &handle_admin[..31]),
        ("bad user", ""),
    ] {
        let mut args = vec!["sessions", "revoke", "--user", user];
        if !handle.is_empty() {
            args.extend(["--handle", handle]);
        }
        let output = run_to_end(&yaml, &args).await;
        assert_exit(&output, 2);
    }

    // Without --handle: every session of the user.
    let _d = login_with_agent(&gateway, "user", USER_PW, "e").await;
    let output = run_to_end(&yaml, &["sessions", "revoke", "--user", "user"]).await;
    assert_exit(&output, 0);
    assert_eq!(
        stdout(&output).trim(),
        "revoked 2 sessions of user user",
        "{}",
        stderr(&output)
    );
    assert_eq!(c.get("/api/x").await.status, 401);
    assert_eq!(admin.get("/api/x").await.status, 200, "other users stay");
    let output = run_to_end(&yaml, &["sessions", "list", "--user", "user"]).await;
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "");
    assert!(
        redis.scan_keys().iter().all(|k| redis.pttl(k) > 0),
        "every key has a TTL"
    );
}

#[tokio::test]
async fn sessions_with_the_memory_store_say_they_cannot_reach_it_and_exit_78() {
    let yaml = config_yaml("127.0.0.1:9".parse().unwrap(), Store::Memory, "");
    for args in [
        &["sessions", "list", "--user", "user"][..],
        &["sessions", "revoke", "--user", "user"][..],
    ] {
        let output = run_to_end(&yaml, args).await;
        assert_exit(&output, 78);
        let err = stderr(&output);
        assert!(
            err.contains("session.store is memory") && err.contains("cannot reach"),
            "{err}"
        );
        assert_eq!(stdout(&output), "");
    }
}

#[tokio::test]
async fn sessions_with_redis_down_exit_1_within_the_store_timeout() {
    let redis = RedisServer::start();
    let yaml = config_yaml("127.0.0.1:9".parse().unwrap(), Store::Redis(&redis), "");
    let down = yaml.replace(
        &format!("127.0.0.1:{}", redis.port),
        &format!("127.0.0.1:{}", free_port()),
    );
    assert_ne!(down, yaml);
    drop(redis);
    for args in [
        &["sessions", "list", "--user", "user"][..],
        &["sessions", "revoke", "--user", "user"][..],
    ] {
        let started = std::time::Instant::now();
        let output = run_to_end(&down, args).await;
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains("cannot reach the session store"),
            "{}",
            stderr(&output)
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
}

#[tokio::test]
async fn sessions_with_a_bad_config_exit_78_and_bad_usage_exits_2() {
    let yaml = config_yaml(
        "127.0.0.1:9".parse().unwrap(),
        Store::Memory,
        "no_such_key: 1\n",
    );
    let output = run_to_end(&yaml, &["sessions", "list", "--user", "user"]).await;
    assert_exit(&output, 78);
    assert!(
        stderr(&output).contains("no_such_key"),
        "{}",
        stderr(&output)
    );

    let yaml = config_yaml("127.0.0.1:9".parse().unwrap(), Store::Memory, "");
    for args in [
        &["sessions", "list"][..],
        &["sessions"][..],
        &["sessions", "forget", "--user", "user"][..],
        &["sessions", "list", "--user", "user", "--handle", "x"][..],
    ] {
        let output = run_to_end(&yaml, args).await;
        assert_exit(&output, 2);
    }
    // Without --config.
    let output = tokio::process::Command::new(support::binary::PORTCULLIS)
        .args(["sessions", "list", "--user", "user"])
        .output()
        .await
        .unwrap();
    assert_exit(&output, 2);
}
