//! The session management API: `GET /session/all`, `DELETE /session/all` and
//! `DELETE /session/all/{handle}`, each user's index of sessions behind them, and
//! `session.max_per_user`.

use bytes::Bytes;
use http::Method;

use crate::support::{
    self, cookie_digest, index_key, login, Client, ConfigOptions, Gateway, RedisServer, Store,
    ADMIN_PW, USER_PW,
};

/// Log in as `user` with `User-Agent: agent` on a fresh client; returns it with its cookie.
async fn login_with_agent(
    gateway: &Gateway,
    user: &str,
    password: &str,
    agent: &str,
) -> (Client, String) {
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
    assert_eq!(reply.status, 201, "login as {user}: {}", reply.text());
    let cookie = client.cookie("gw_sid").unwrap();
    (client, cookie)
}

/// The handles `GET /session/all` lists for `client`, in order.
async fn handles(client: &mut Client) -> Vec<String> {
    let reply = client.get("/session/all").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["handle"].as_str().unwrap().to_owned())
        .collect()
}

fn is_rfc3339(value: &serde_json::Value) -> bool {
    value
        .as_str()
        .is_some_and(|t| humantime::parse_rfc3339(t).is_ok())
}

async fn listing_shows_each_session_of_the_caller_and_marks_the_current_one(store: Store<'_>) {
    let (upstream, gateway) = support::setup(store).await;
    let (mut a, sid_a) = login_with_agent(&gateway, "user", USER_PW, "agent-a/1.0").await;
    let (mut b, sid_b) = login_with_agent(&gateway, "user", USER_PW, "agent-b/2.0").await;
    let (mut admin, sid_admin) = login_with_agent(&gateway, "admin", ADMIN_PW, "agent-c").await;

    let reply = a.get("/session/all").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let body = reply.json();
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{body}");
    // Oldest first: a logged in before b.
    for (session, (agent, current, sid)) in sessions.iter().zip([
        ("agent-a/1.0", true, &sid_a),
        ("agent-b/2.0", false, &sid_b),
    ]) {
        let keys: Vec<&str> = session
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "client_addr",
                "created_at",
                "current",
                "expires_at",
                "handle",
                "idle_expires_at",
                "last_seen_at",
                "user_agent"
            ],
            "{session}"
        );
        assert_eq!(session["user_agent"], agent);
        assert_eq!(session["current"], current);
        assert_eq!(session["client_addr"], "127.0.0.1");
        for key in [
            "created_at",
            "last_seen_at",
            "expires_at",
            "idle_expires_at",
        ] {
            assert!(is_rfc3339(&session[key]), "{key}: {session}");
        }
        // The handle is the first 32 hex digits of the store key's digest, and nothing more.
        let handle = session["handle"].as_str().unwrap();
        let digest = cookie_digest(sid);
        assert_eq!(handle.len(), 32);
        assert_eq!(handle, &digest[..32]);
        assert!(
            !body.to_string().contains(&digest),
            "whole store key leaked"
        );
        let id_part = sid.split('.').next().unwrap();
        assert!(!handle.contains(id_part) && !id_part.contains(handle));
        assert!(!body.to_string().contains(id_part), "session id leaked");
        assert!(!body.to_string().contains(sid.as_str()), "cookie leaked");
    }

    // The other client sees the same sessions, itself current; admin sees only its own.
    let reply = b.get("/session/all").await.json();
    let current: Vec<bool> = reply["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["current"].as_bool().unwrap())
        .collect();
    assert_eq!(current, [false, true]);
    let admin_handles = handles(&mut admin).await;
    assert_eq!(admin_handles, [cookie_digest(&sid_admin)[..32].to_owned()]);

    // HEAD answers like GET, without a body.
    let reply = a
        .send(Method::HEAD, "/session/all", &[], Bytes::new())
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty());
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn listing_shows_each_session_of_the_caller_and_marks_the_current_one_on_memory() {
    listing_shows_each_session_of_the_caller_and_marks_the_current_one(Store::Memory).await;
}

#[tokio::test]
async fn listing_shows_each_session_of_the_caller_and_marks_the_current_one_on_redis() {
    let redis = RedisServer::start();
    listing_shows_each_session_of_the_caller_and_marks_the_current_one(Store::Redis(&redis)).await;
}

#[tokio::test]
async fn session_management_without_a_session_is_401_and_wrong_methods_are_405_with_allow() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut anonymous = gateway.client();
    let handle = "0123456789abcdef0123456789abcdef";
    for (method, path) in [
        (Method::GET, "/session/all".to_owned()),
        (Method::HEAD, "/session/all".to_owned()),
        (Method::DELETE, "/session/all".to_owned()),
        (Method::DELETE, format!("/session/all/{handle}")),
    ] {
        let reply = anonymous
            .send(method.clone(), &path, &[], Bytes::new())
            .await;
        assert_eq!(reply.status, 401, "{method} {path}");
        if method != Method::HEAD {
            assert_eq!(reply.error_code(), "unauthenticated", "{method} {path}");
        }
        assert!(reply.set_cookies().is_empty());
    }
    // A forged but well-signed cookie is no session either.
    anonymous.set_cookie("gw_sid", &support::unknown_signed_cookie());
    assert_eq!(anonymous.get("/session/all").await.status, 401);

    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    for (method, path, allow) in [
        (Method::POST, "/session/all".to_owned(), "GET, HEAD, DELETE"),
        (Method::PUT, "/session/all".to_owned(), "GET, HEAD, DELETE"),
        (
            Method::PATCH,
            "/session/all".to_owned(),
            "GET, HEAD, DELETE",
        ),
        (Method::GET, format!("/session/all/{handle}"), "DELETE"),
        (Method::POST, format!("/session/all/{handle}"), "DELETE"),
    ] {
        let reply = client.send(method.clone(), &path, &[], Bytes::new()).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (405, "method_not_allowed"),
            "{method} {path}"
        );
        assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
    }
    for path in [
        "/session/all/",
        "/session/all/a/b",
        "/session/ALL",
        "/Session/all",
        "/session/alls",
    ] {
        let reply = client.get(path).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (404, "not_found"),
            "{path}"
        );
    }
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn revoking_one_handle_ends_that_session_only_and_the_current_one_expires_the_cookie() {
    let redis = RedisServer::start();
    let (_upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let (mut a, sid_a) = login_with_agent(&gateway, "user", USER_PW, "a").await;
    let (mut b, sid_b) = login_with_agent(&gateway, "user", USER_PW, "b").await;
    let handle_b = cookie_digest(&sid_b)[..32].to_owned();

    let reply = a.delete(&format!("/session/all/{handle_b}")).await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(reply.set_cookies().is_empty(), "a's own cookie stays");
    assert_eq!(b.get("/api/x").await.status, 401, "b is refused");
    assert_eq!(a.get("/api/x").await.status, 200, "a goes on");
    assert_eq!(
        redis.zrange(&index_key("user")),
        [cookie_digest(&sid_a)],
        "revoke removes the index entry"
    );
    // Revoking it again: it is gone.
    let reply = a.delete(&format!("/session/all/{handle_b}")).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (404, "not_found")
    );

    // Revoking the calling session ends it and expires its cookie.
    let handle_a = handles(&mut a).await.remove(0);
    let reply = a.delete(&format!("/session/all/{handle_a}")).await;
    assert_eq!(reply.status, 204);
    assert!(reply.set_cookies()[0].contains("Max-Age=0"));
    a.set_cookie("gw_sid", &sid_a);
    assert_eq!(a.get("/api/x").await.status, 401);
    assert!(
        !redis.keys().iter().any(|k| k.starts_with("portcullis:s:")),
        "{:?}",
        redis.keys()
    );
    assert!(redis.zrange(&index_key("user")).is_empty());
}

#[tokio::test]
async fn revoking_another_users_handle_or_a_malformed_one_is_404_and_changes_nothing() {
    let redis = RedisServer::start();
    let (_upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let (mut user, sid_user) = login_with_agent(&gateway, "user", USER_PW, "u").await;
    let (mut admin, _) = login_with_agent(&gateway, "admin", ADMIN_PW, "a").await;
    let handle_user = cookie_digest(&sid_user)[..32].to_owned();
    let before: Vec<(String, String)> = redis
        .keys()
        .into_iter()
        .filter(|k| !k.starts_with("portcullis:r:"))
        .map(|k| {
            let kind: String = redis.cmd(&["TYPE", &k]);
            (k, kind)
        })
        .collect();
    let zsets_before: Vec<Vec<String>> = before
        .iter()
        .filter(|(_, kind)| kind == "zset")
        .map(|(k, _)| redis.zrange(k))
        .collect();

    let digest = cookie_digest(&sid_user);
    for target in [
        handle_user.clone(),
        // The whole digest, its other half, the id and the cookie are not handles either.
        digest.clone(),
        digest[32..].to_owned(),
        sid_user.split('.').next().unwrap().to_owned(),
        handle_user.to_ascii_uppercase(),
        handle_user[..31].to_owned(),
        "0123456789abcdef0123456789abcdef".to_owned(),
        "x".to_owned(),
    ] {
        let reply = admin.delete(&format!("/session/all/{target}")).await;
        assert!(
            matches!(reply.status, 404 | 400),
            "{target}: {} {}",
            reply.status,
            reply.text()
        );
    }
    let reply = admin.delete(&format!("/session/all/{handle_user}")).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (404, "not_found")
    );
    assert_eq!(user.get("/api/x").await.status, 200, "user's session lives");
    assert_eq!(admin.get("/api/x").await.status, 200);
    let after: Vec<(String, String)> = redis
        .keys()
        .into_iter()
        .filter(|k| !k.starts_with("portcullis:r:"))
        .map(|k| {
            let kind: String = redis.cmd(&["TYPE", &k]);
            (k, kind)
        })
        .collect();
    assert_eq!(before, after, "no session key or index changed");
    let zsets_after: Vec<Vec<String>> = after
        .iter()
        .filter(|(_, kind)| kind == "zset")
        .map(|(k, _)| redis.zrange(k))
        .collect();
    assert_eq!(zsets_before, zsets_after);
}

#[tokio::test]
async fn logging_out_everywhere_ends_every_session_of_the_caller_but_not_other_users() {
    let redis = RedisServer::start();
    let (upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let mut users = Vec::new();
    for agent in ["a", "b", "c"] {
        users.push(login_with_agent(&gateway, "user", USER_PW, agent).await);
    }
    let (mut admin, _) = login_with_agent(&gateway, "admin", ADMIN_PW, "d").await;

    let reply = users[0].0.delete("/session/all").await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let cleared = reply.set_cookies();
    assert!(
        cleared.len() == 1
            && cleared[0].starts_with("gw_sid=;")
            && cleared[0].contains("Max-Age=0"),
        "{cleared:?}"
    );
    upstream.clear();
    for (_, sid) in &users {
        let mut replay = gateway.client();
        replay.set_cookie("gw_sid", sid);
        assert_eq!(replay.get("/api/x").await.status, 401);
        assert_eq!(replay.get("/session").await.status, 401);
    }
    assert!(upstream.is_untouched());
    assert_eq!(admin.get("/api/x").await.status, 200, "other users stay");
    assert_eq!(handles(&mut admin).await.len(), 1);
    let keys = redis.keys();
    assert!(!keys.contains(&index_key("user")), "{keys:?}");
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("portcullis:s:"))
            .count(),
        1,
        "{keys:?}"
    );
    // A fresh login afterwards is a session like any other.
    let (mut again, _) = login_with_agent(&gateway, "user", USER_PW, "e").await;
    assert_eq!(handles(&mut again).await.len(), 1);
}

#[tokio::test]
async fn logout_and_a_disabled_user_take_their_sessions_out_of_the_index() {
    let redis = RedisServer::start();
    let upstream = support::Upstream::start().await;
    let yaml = support::config_yaml(upstream.addr, Store::Redis(&redis), "");
    let gateway = Gateway::start(&yaml).await;
    let (mut a, _) = login_with_agent(&gateway, "user", USER_PW, "a").await;
    let (_b, sid_b) = login_with_agent(&gateway, "user", USER_PW, "b").await;
    assert_eq!(redis.zrange(&index_key("user")).len(), 2);
    assert_eq!(a.delete("/session").await.status, 204);
    assert_eq!(redis.zrange(&index_key("user")), [cookie_digest(&sid_b)]);
    gateway.shutdown().await;

    let disabled = yaml.replace(
        "    roles: [reader]\n  - username: admin",
        "    roles: [reader]\n    disabled: true\n  - username: admin",
    );
    assert_ne!(disabled, yaml);
    let gateway = Gateway::start(&disabled).await;
    let mut b = gateway.client();
    b.set_cookie("gw_sid", &sid_b);
    assert_eq!(b.get("/api/x").await.status, 401);
    assert!(
        !redis.keys().contains(&index_key("user")),
        "{:?}",
        redis.keys()
    );
}

#[tokio::test]
async fn stale_index_entries_are_ignored_and_pruned_when_the_index_is_read() {
    let redis = RedisServer::start();
    let (_upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let (mut a, sid_a) = login_with_agent(&gateway, "user", USER_PW, "a").await;
    let (_b, sid_b) = login_with_agent(&gateway, "user", USER_PW, "b").await;
    let (_c, sid_c) = login_with_agent(&gateway, "user", USER_PW, "c").await;
    // b's session key is gone (as after its idle timeout); c's record belongs to someone else
    // (never written by Portcullis); an entry that names nothing at all.
    let _: i64 = redis.cmd(&["DEL", &format!("portcullis:s:{}", cookie_digest(&sid_b))]);
    let key_c = format!("portcullis:s:{}", cookie_digest(&sid_c));
    let record: String = redis.cmd(&["GET", &key_c]);
    let foreign = record.replace("\"user\":\"user\"", "\"user\":\"admin\"");
    assert_ne!(foreign, record);
    let _: () = redis.cmd(&["SET", &key_c, &foreign, "KEEPTTL"]);
    let index = index_key("user");
    let bogus = "f".repeat(64);
    let _: i64 = redis.cmd(&["ZADD", &index, "99999999999999", &bogus]);
    assert_eq!(redis.zrange(&index).len(), 4);

    assert_eq!(
        handles(&mut a).await,
        [cookie_digest(&sid_a)[..32].to_owned()]
    );
    assert_eq!(
        redis.zrange(&index),
        [cookie_digest(&sid_a)],
        "stale entries pruned on read"
    );
    // A stale handle cannot be revoked (404), and a pruned one is simply unknown.
    let reply = a
        .delete(&format!("/session/all/{}", &cookie_digest(&sid_b)[..32]))
        .await;
    assert_eq!(reply.status, 404);
    let reply = a.delete(&format!("/session/all/{}", &bogus[..32])).await;
    assert_eq!(reply.status, 404);
    assert!(
        redis.pttl(&key_c) > 0,
        "someone else's record is left alone"
    );
}

#[tokio::test]
async fn every_key_under_the_prefix_has_a_ttl_and_the_index_outlives_its_sessions() {
    let redis = RedisServer::start();
    let (_upstream, gateway) = support::setup_with_options(
        Store::Redis(&redis),
        &ConfigOptions {
            session: "  max_per_user: 2\n",
            ..ConfigOptions::default()
        },
    )
    .await;
    let mut clients = Vec::new();
    for agent in ["a", "b", "c"] {
        clients.push(login_with_agent(&gateway, "user", USER_PW, agent).await);
    }
    let (mut admin, _) = login_with_agent(&gateway, "admin", ADMIN_PW, "d").await;
    let mut wrong = gateway.client();
    let reply = wrong
        .post_json(
            "/session",
            &serde_json::json!({"username": "user", "password": "wrong"}),
        )
        .await;
    assert_eq!(reply.status, 401);
    handles(&mut clients[2].0).await;
    let handle = handles(&mut admin).await.remove(0);
    assert_eq!(
        clients[2]
            .0
            .delete(&format!("/session/all/{handle}"))
            .await
            .status,
        404
    );
    assert_eq!(clients[1].0.delete("/session").await.status, 204);

    let keys = redis.scan_keys();
    assert!(
        keys.iter().any(|k| k.starts_with("portcullis:u:{")),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.starts_with("portcullis:s:")),
        "{keys:?}"
    );
    for key in &keys {
        assert!(key.starts_with("portcullis:"), "{key}");
        let ttl = redis.pttl(key);
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
    }
    // Each index lives at least as long as the longest-lived session it lists.
    for user in ["user", "admin"] {
        let index = index_key(user);
        for member in redis.zrange(&index) {
            let session = redis.pttl(&format!("portcullis:s:{member}"));
            assert!(redis.pttl(&index) >= session, "{user}: index dies first");
        }
    }
}

#[tokio::test]
async fn max_per_user_ends_the_oldest_sessions_at_login() {
    let redis = RedisServer::start();
    let (_upstream, gateway) = support::setup_with_options(
        Store::Redis(&redis),
        &ConfigOptions {
            session: "  max_per_user: 2\n",
            ..ConfigOptions::default()
        },
    )
    .await;
    let (mut first, _) = login_with_agent(&gateway, "user", USER_PW, "1").await;
    let (mut second, _) = login_with_agent(&gateway, "user", USER_PW, "2").await;
    let (mut admin, _) = login_with_agent(&gateway, "admin", ADMIN_PW, "x").await;
    assert_eq!(first.get("/api/x").await.status, 200);
    let (mut third, sid_third) = login_with_agent(&gateway, "user", USER_PW, "3").await;
    assert_eq!(first.get("/api/x").await.status, 401, "the oldest ends");
    assert_eq!(second.get("/api/x").await.status, 200);
    assert_eq!(third.get("/api/x").await.status, 200);
    assert_eq!(
        admin.get("/api/x").await.status,
        200,
        "other users untouched"
    );
    let listed = handles(&mut third).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1], cookie_digest(&sid_third)[..32]);
    let (mut fourth, _) = login_with_agent(&gateway, "user", USER_PW, "4").await;
    assert_eq!(second.get("/api/x").await.status, 401);
    assert_eq!(third.get("/api/x").await.status, 200);
    assert_eq!(handles(&mut fourth).await.len(), 2);
    assert_eq!(
        redis
            .keys()
            .iter()
            .filter(|k| k.starts_with("portcullis:s:"))
            .count(),
        3,
        "two of user's, one of admin's"
    );
}

#[tokio::test]
async fn cross_origin_deletes_on_session_all_are_403_csrf_and_end_nothing() {
    let (_upstream, gateway) = support::setup(Store::Memory).await;
    let (mut a, _) = login_with_agent(&gateway, "user", USER_PW, "a").await;
    let (mut b, _) = login_with_agent(&gateway, "user", USER_PW, "b").await;
    let handle_b = handles(&mut b).await.remove(1);
    for path in [
        "/session/all".to_owned(),
        format!("/session/all/{handle_b}"),
    ] {
        for evidence in [
            ("origin", "https://attacker.example"),
            ("sec-fetch-site", "cross-site"),
            ("referer", "https://attacker.example/page"),
        ] {
            let reply = a
                .send(Method::DELETE, &path, &[evidence], Bytes::new())
                .await;
            assert_eq!(
                (reply.status, reply.error_code().as_str()),
                (403, "csrf"),
                "{path} {evidence:?}"
            );
            assert!(reply.set_cookies().is_empty());
        }
    }
    assert_eq!(handles(&mut a).await.len(), 2, "nothing ended");
    assert_eq!(b.get("/api/x").await.status, 200);
    // A cross-origin read is no write: the listing is the browser's to withhold (no CORS).
    let reply = a
        .send(
            Method::GET,
            "/session/all",
            &[("origin", "https://attacker.example")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("access-control-allow-origin").is_none());
    // Same-origin writes pass.
    let reply = a
        .send(
            Method::DELETE,
            "/session/all",
            &[("sec-fetch-site", "same-origin")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 204);
    assert_eq!(b.get("/api/x").await.status, 401);
}

#[tokio::test]
async fn two_gateways_on_one_redis_log_out_everywhere_on_b_is_refused_on_a() {
    let redis = RedisServer::start();
    let upstream = support::Upstream::start().await;
    let yaml = support::config_yaml(upstream.addr, Store::Redis(&redis), "");
    let gateway_a = Gateway::start(&yaml).await;
    let gateway_b = Gateway::start(&yaml).await;
    let (mut on_a, sid) = login_with_agent(&gateway_a, "user", USER_PW, "a").await;
    let (_other, other_sid) = login_with_agent(&gateway_a, "user", USER_PW, "a2").await;
    assert_eq!(on_a.get("/api/x").await.status, 200);

    let mut on_b = gateway_b.client();
    on_b.set_cookie("gw_sid", &sid);
    assert_eq!(handles(&mut on_b).await.len(), 2, "B lists what A created");
    assert_eq!(on_b.delete("/session/all").await.status, 204);

    assert_eq!(on_a.get("/api/x").await.status, 401);
    let mut other = gateway_a.client();
    other.set_cookie("gw_sid", &other_sid);
    assert_eq!(other.get("/api/x").await.status, 401);
}

#[tokio::test]
async fn listing_with_the_store_down_is_503_never_an_empty_list() {
    let redis = RedisServer::start();
    let (_upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let (mut a, _) = login_with_agent(&gateway, "user", USER_PW, "a").await;
    redis.freeze();
    for method in [Method::GET, Method::DELETE] {
        let reply = a
            .send(method.clone(), "/session/all", &[], Bytes::new())
            .await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (503, "session_store_unavailable"),
            "{method}"
        );
    }
    redis.thaw();
    assert_eq!(handles(&mut a).await.len(), 1);
}
