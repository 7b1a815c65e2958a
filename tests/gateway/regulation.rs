//! Login regulation and login hardening (C20, C21): failed logins counted per user and address,
//! per user and per address in Redis, bans answered with 429 + `Retry-After` before any hashing,
//! `X-Forwarded-For` believed only from trusted proxies, and one identical 401 for every kind of
//! failed login.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Method;

use crate::support::client::Reply;
use crate::support::{
    self, config_yaml, config_yaml_with, free_port, Binary, Client, ConfigOptions, Gateway,
    RedisServer, Store, Upstream, DISABLED_PW, USER_PW,
};

/// A `regulation` block: the three windows' `max_retries`, each counting for a minute, banning
/// for 30 s (user and address), 20 s (user) and 40 s (address), so every Retry-After tells its
/// window.
fn regulation(per_user_and_address: u64, per_user: u64, per_address: u64) -> String {
    format!(
        "regulation:\n  per_user_and_address:\n    max_retries: {per_user_and_address}\n    find_time: 1m\n    ban_time: 30s\n  per_user:\n    max_retries: {per_user}\n    find_time: 1m\n    ban_time: 20s\n  per_address:\n    max_retries: {per_address}\n    find_time: 1m\n    ban_time: 40s\n"
    )
}

const TRUST_LOOPBACK: &str = "trusted_proxies: [\"127.0.0.1/32\"]\n";

/// One login attempt on a fresh connection, without cookies, optionally with `X-Forwarded-For`.
async fn attempt(
    addr: SocketAddr,
    user: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> Reply {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(xff) = forwarded_for {
        headers.push(("x-forwarded-for", xff));
    }
    let body = serde_json::json!({ "username": user, "password": password });
    Client::new(addr)
        .send(
            Method::POST,
            "/session",
            &headers,
            Bytes::from(serde_json::to_vec(&body).unwrap()),
        )
        .await
}

/// `Retry-After` as whole seconds; panics unless it is present and within 1..=`max`.
fn retry_after(reply: &Reply, max: u64) -> u64 {
    let value = reply
        .header("retry-after")
        .expect("429 carries Retry-After");
    let secs: u64 = value.parse().expect("Retry-After is whole seconds");
    assert!(
        (1..=max).contains(&secs),
        "Retry-After {secs}, expected 1..={max}"
    );
    secs
}

fn assert_regulated(reply: &Reply, max_retry_after: u64) {
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (429, "too_many_attempts"),
        "{}",
        reply.text()
    );
    assert!(reply.set_cookies().is_empty());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    retry_after(reply, max_retry_after);
}

/// Status, body and every header but `Date`, `Retry-After` (which counts down) and
/// `X-Request-Id` (new for every request, whoever sends it), sorted.
fn shape(reply: &Reply) -> (u16, Bytes, Vec<(String, String)>) {
    assert!(reply.header("x-request-id").is_some());
    let mut headers: Vec<(String, String)> = reply
        .headers
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "date" | "retry-after" | "x-request-id"))
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (reply.status, reply.body.clone(), headers)
}

/// The `client_addr` of the only session in `redis`.
fn session_client_addr(redis: &RedisServer) -> String {
    let key = support::only_session_key(redis);
    let value: String = redis.cmd(&["GET", &key]);
    let record: serde_json::Value = serde_json::from_str(&value).unwrap();
    record["client_addr"].as_str().unwrap().to_owned()
}

fn regulation_keys(redis: &RedisServer) -> Vec<String> {
    redis
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("portcullis:r:"))
        .collect()
}

#[tokio::test]
async fn c21_forwarded_for_from_an_untrusted_peer_is_ignored_and_the_peer_is_banned() {
    let redis = RedisServer::start();
    // per_user (10) would stop a believed header at attempt 11; the peer's own counter (3) must
    // stop it at attempt 4.
    let (_upstream, gateway) =
        support::setup_with(Store::Redis(&redis), &regulation(3, 10, 50)).await;
    for n in 1..=30 {
        let xff = format!("198.51.100.{n}");
        let reply = attempt(gateway.addr, "user", &format!("wrong-{n}"), Some(&xff)).await;
        if n <= 3 {
            assert_eq!(reply.status, 401, "attempt {n}: {}", reply.text());
        } else {
            assert_regulated(&reply, 30);
        }
    }
    let hashed = gateway.state.hasher.verifications();
    assert_eq!(hashed, 3, "banned attempts never reach the hash");

    // The right password during the ban: the same 429, still no hashing.
    let wrong = attempt(gateway.addr, "user", "wrong-again", Some("198.51.100.99")).await;
    let right = attempt(gateway.addr, "user", USER_PW, Some("198.51.100.100")).await;
    assert_regulated(&right, 30);
    assert_eq!(shape(&right), shape(&wrong));
    assert_eq!(gateway.state.hasher.verifications(), hashed);

    // State is in Redis, every key expires, and no key names the user or an address.
    let keys = regulation_keys(&redis);
    assert!(!keys.is_empty());
    for key in &keys {
        let ttl = redis.pttl(key);
        assert!(ttl > 0 && ttl <= 60_000, "{key}: {ttl}");
        assert!(!key.contains("user") && !key.contains("127.0.0.1"), "{key}");
    }
    // Another user from the same client is not under the user and address ban.
    support::login(&mut gateway.client(), "admin", support::ADMIN_PW).await;
    assert_eq!(session_client_addr(&redis), "127.0.0.1");
}

#[tokio::test]
async fn c21_distributed_attack_through_a_trusted_proxy_is_stopped_per_user_while_others_log_in() {
    let redis = RedisServer::start();
    let extra = format!("{TRUST_LOOPBACK}{}", regulation(3, 5, 50));
    let (_upstream, gateway) = support::setup_with(Store::Redis(&redis), &extra).await;
    for n in 1..=30 {
        // The proxy appends the address it saw; the client's own claim is further left.
        let xff = format!("10.9.9.9, 198.51.100.{n}");
        let reply = attempt(gateway.addr, "user", &format!("wrong-{n}"), Some(&xff)).await;
        if n <= 5 {
            assert_eq!(reply.status, 401, "attempt {n}: {}", reply.text());
        } else {
            // Only the per-user ban applies (20 s): no address reached its own limit.
            assert_regulated(&reply, 20);
        }
    }
    // The right password from yet another address: the same 429 (no oracle).
    let reply = attempt(gateway.addr, "user", USER_PW, Some("203.0.113.9")).await;
    assert_regulated(&reply, 20);

    // Another user through the same proxy logs in, and the session records the real client.
    let reply = attempt(
        gateway.addr,
        "admin",
        support::ADMIN_PW,
        Some("198.51.100.200"),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(session_client_addr(&redis), "198.51.100.200");
}

#[tokio::test]
async fn c21_unparsable_forwarded_for_from_a_trusted_proxy_counts_against_the_proxy() {
    let redis = RedisServer::start();
    let extra = format!("{TRUST_LOOPBACK}{}", regulation(2, 10, 50));
    let (_upstream, gateway) = support::setup_with(Store::Redis(&redis), &extra).await;
    // "a", an empty hop and "unknown" are all the unknown client: the peer, 127.0.0.1.
    for xff in ["a", "198.51.100.7, "] {
        let reply = attempt(gateway.addr, "user", "wrong", Some(xff)).await;
        assert_eq!(reply.status, 401, "{xff}");
    }
    for xff in [Some("unknown"), None, Some("")] {
        let reply = attempt(gateway.addr, "user", "wrong", xff).await;
        assert_regulated(&reply, 30);
    }
    // A well-formed client address through the proxy is someone else.
    let reply = attempt(gateway.addr, "user", USER_PW, Some("198.51.100.7")).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
}

#[tokio::test]
async fn c21_two_gateways_on_one_redis_share_failures_and_bans() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let yaml = config_yaml(upstream.addr, Store::Redis(&redis), &regulation(3, 10, 50));
    let a = Gateway::start(&yaml).await;
    let b = Gateway::start(&yaml).await;
    assert_eq!(attempt(a.addr, "user", "wrong-1", None).await.status, 401);
    assert_eq!(attempt(b.addr, "user", "wrong-2", None).await.status, 401);
    // The third failure, counted on A, bans on B, right password or not.
    assert_eq!(attempt(a.addr, "user", "wrong-3", None).await.status, 401);
    assert_regulated(&attempt(b.addr, "user", USER_PW, None).await, 30);
    assert_regulated(&attempt(a.addr, "user", USER_PW, None).await, 30);
    assert_eq!(
        b.state.hasher.verifications(),
        1,
        "B never hashed during the ban"
    );
}

#[tokio::test]
async fn c20_unknown_wrong_and_disabled_logins_get_identical_401s_and_the_same_hashing_work() {
    let redis = RedisServer::start();
    let (_upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let hasher = &gateway.state.hasher;

    // The baseline: a successful login costs one verification.
    let before = hasher.verifications();
    support::login(&mut gateway.client(), "user", USER_PW).await;
    assert_eq!(hasher.verifications(), before + 1);

    let mut shapes = Vec::new();
    for round in 0..3 {
        for (user, pw) in [
            ("user", "not-the-password"),
            ("no-such-user", USER_PW),
            ("disabled", DISABLED_PW),
        ] {
            let before = hasher.verifications();
            let reply = attempt(gateway.addr, user, pw, None).await;
            assert_eq!(
                hasher.verifications(),
                before + 1,
                "{user}: exactly one verification, like a real login"
            );
            assert_eq!(
                (reply.status, reply.error_code().as_str()),
                (401, "invalid_credentials"),
                "{user} round {round}"
            );
            assert!(reply.set_cookies().is_empty());
            assert!(reply.header("retry-after").is_none());
            shapes.push(shape(&reply));
        }
    }
    assert!(
        shapes.iter().all(|s| *s == shapes[0]),
        "every failed login looks the same: {shapes:?}"
    );
}

#[tokio::test]
async fn c20_banned_existing_and_unknown_names_get_the_same_429_without_hashing() {
    let redis = RedisServer::start();
    let (_upstream, gateway) =
        support::setup_with(Store::Redis(&redis), &regulation(2, 10, 50)).await;
    for user in ["user", "no-such-user"] {
        for n in 0..2 {
            let reply = attempt(gateway.addr, user, &format!("wrong-{n}"), None).await;
            assert_eq!(reply.status, 401, "{user}");
        }
    }
    let hashed = gateway.state.hasher.verifications();
    let replies = [
        attempt(gateway.addr, "user", "wrong", None).await,
        attempt(gateway.addr, "user", USER_PW, None).await,
        attempt(gateway.addr, "no-such-user", "wrong", None).await,
        attempt(gateway.addr, "no-such-user", USER_PW, None).await,
    ];
    assert_eq!(gateway.state.hasher.verifications(), hashed);
    let waits: Vec<u64> = replies
        .iter()
        .map(|reply| {
            assert_regulated(reply, 30);
            retry_after(reply, 30)
        })
        .collect();
    for reply in &replies[1..] {
        assert_eq!(shape(reply), shape(&replies[0]));
    }
    // Both bans started within the same moment; their countdowns agree to the second.
    let (min, max) = (waits.iter().min().unwrap(), waits.iter().max().unwrap());
    assert!(max - min <= 1, "{waits:?}");
}

#[tokio::test]
async fn a_successful_login_forgets_the_failures_from_that_address() {
    let redis = RedisServer::start();
    let (_upstream, gateway) =
        support::setup_with(Store::Redis(&redis), &regulation(3, 10, 50)).await;
    for _ in 0..2 {
        for _ in 0..2 {
            assert_eq!(
                attempt(gateway.addr, "user", "wrong", None).await.status,
                401
            );
        }
        // Without the reset, the second round's failures would be the 3rd and 4th: a ban.
        let reply = attempt(gateway.addr, "user", USER_PW, None).await;
        assert_eq!(reply.status, 201, "{}", reply.text());
    }
}

#[tokio::test]
async fn a_ban_ends_after_its_ban_time_as_retry_after_says() {
    let redis = RedisServer::start();
    let extra = "regulation:\n  per_user_and_address:\n    max_retries: 1\n    ban_time: 1500ms\n";
    let (_upstream, gateway) = support::setup_with(Store::Redis(&redis), extra).await;
    assert_eq!(
        attempt(gateway.addr, "user", "wrong", None).await.status,
        401
    );
    let reply = attempt(gateway.addr, "user", USER_PW, None).await;
    assert_regulated(&reply, 2);
    let wait = retry_after(&reply, 2);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let reply = attempt(gateway.addr, "user", USER_PW, None).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
}

#[tokio::test]
async fn store_down_during_regulation_is_503_and_no_hash_runs() {
    let mut redis = RedisServer::start();
    let (_upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    redis.stop();
    for (user, pw) in [("user", USER_PW), ("user", "wrong"), ("no-such-user", "x")] {
        let reply = attempt(gateway.addr, user, pw, None).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (503, "session_store_unavailable"),
            "{user}"
        );
        assert!(reply.set_cookies().is_empty());
    }
    assert_eq!(
        gateway.state.hasher.verifications(),
        0,
        "fail closed before any hashing: an outage is never a free guess"
    );
}

#[tokio::test]
async fn c21_reaching_the_limit_is_logged_naming_known_users_only_and_never_a_password() {
    let upstream = Upstream::start().await;
    let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let extra = regulation(2, 10, 50);
    let yaml = config_yaml_with(
        upstream.addr,
        Store::Memory,
        &ConfigOptions {
            listen: Some(proxy),
            admin_listen: Some(admin),
            extra: &extra,
            ..ConfigOptions::default()
        },
    );
    let mut gateway = Binary::run(&yaml, &[("RUST_LOG", "debug"), ("NO_COLOR", "1")]);
    gateway.wait_listening(admin).await;
    gateway.wait_listening(proxy).await;

    let guesses = ["Guess-One-7d1c", "Guess-Two-7d1c"];
    for user in ["user", "unknown-name-7d1c"] {
        for pw in guesses {
            assert_eq!(attempt(proxy, user, pw, None).await.status, 401);
        }
        assert_eq!(attempt(proxy, user, USER_PW, None).await.status, 429);
    }

    gateway.signal("-TERM");
    gateway.wait_exit(Duration::from_secs(10)).await;
    let log = gateway.stderr();
    let regulated: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("login regulated"))
        .collect();
    assert_eq!(regulated.len(), 2, "one line per ban:\n{log}");
    assert!(
        regulated[0].contains("user=\"user\"")
            && regulated[0].contains("127.0.0.1")
            && regulated[0].contains("per_user_and_address"),
        "{}",
        regulated[0]
    );
    assert!(regulated[1].contains("user=\"-\""), "{}", regulated[1]);
    for secret in [guesses[0], guesses[1], USER_PW, "unknown-name-7d1c"] {
        assert!(!log.contains(secret), "the log contains `{secret}`:\n{log}");
    }
}

#[tokio::test]
async fn c21_a_burst_of_concurrent_guesses_gets_no_more_verifications_than_max_retries() {
    let redis = RedisServer::start();
    let (_upstream, gateway) =
        support::setup_with(Store::Redis(&redis), &regulation(5, 100, 100)).await;
    let before = gateway.state.hasher.verifications();
    let addr = gateway.addr;
    let guesses: Vec<_> = (0..30)
        .map(|n| {
            tokio::spawn(async move { attempt(addr, "user", &format!("guess-{n}"), None).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.unwrap().status);
    }
    // The hashing queue (32) holds them all: each guess is verified (401) or regulated (429).
    let verified = statuses.iter().filter(|&&s| s == 401).count();
    let regulated = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!((verified, regulated), (5, 25), "{statuses:?}");
    assert_eq!(gateway.state.hasher.verifications() - before, 5);
    // The ban stands, for the right password too.
    assert_regulated(&attempt(addr, "user", USER_PW, None).await, 30);
}
