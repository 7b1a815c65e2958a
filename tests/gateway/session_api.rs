//! Every row of the session API table, on the memory store and on Redis.

use bytes::Bytes;
use http::Method;

use crate::support::{self, login, ConfigOptions, RedisServer, Store, Upstream, ADMIN_PW, USER_PW};

/// The attributes of a `Set-Cookie` value after its `name=value`, sorted.
fn cookie_attributes(set_cookie: &str) -> Vec<&str> {
    let mut attributes: Vec<&str> = set_cookie.split(';').skip(1).map(str::trim).collect();
    attributes.sort_unstable();
    attributes
}

async fn login_status_logout_round_trip(store: Store<'_>) {
    let (upstream, gateway) = support::setup(store).await;
    let mut client = gateway.client();

    let reply = client
        .post_json(
            "/session",
            &serde_json::json!({ "username": "user", "password": USER_PW }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let set_cookie = reply.set_cookies()[0].to_owned();
    assert!(set_cookie.starts_with("gw_sid="), "{set_cookie}");
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Lax")
            && set_cookie.contains("Path=/")
    );
    let body = reply.json();
    assert_eq!(body["user"], "user");
    assert_eq!(body["roles"], serde_json::json!(["reader"]));
    for key in ["created_at", "expires_at", "idle_expires_at"] {
        assert!(body[key].as_str().unwrap().ends_with('Z'), "{key}: {body}");
    }

    let reply = client.get("/session").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.json()["user"], "user");
    assert!(
        reply.set_cookies().is_empty(),
        "no re-issue when signed with the first secret"
    );

    let cookie = client.cookie("gw_sid").unwrap();
    let reply = client.delete("/session").await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let cleared = reply.set_cookies()[0];
    assert!(
        cleared.starts_with("gw_sid=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );

    // The old cookie is refused everywhere afterwards.
    client.set_cookie("gw_sid", &cookie);
    assert_eq!(client.get("/session").await.status, 401);
    let reply = client.get("/api/x").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (401, "unauthenticated")
    );
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn login_status_logout_round_trip_on_memory() {
    login_status_logout_round_trip(Store::Memory).await;
}

#[tokio::test]
async fn login_status_logout_round_trip_on_redis() {
    let redis = RedisServer::start();
    login_status_logout_round_trip(Store::Redis(&redis)).await;
    // Logout deleted the record: no session keys remain.
    assert!(
        redis.keys().iter().all(|k| !k.starts_with("portcullis:s:")),
        "{:?}",
        redis.keys()
    );
}

#[tokio::test]
async fn unknown_user_wrong_password_and_disabled_user_get_the_same_401() {
    let (_upstream, gateway) = support::setup(Store::Memory).await;
    let mut replies = Vec::new();
    for (user, pw) in [
        ("user", "wrong"),
        ("nobody", USER_PW),
        ("disabled", crate::support::DISABLED_PW),
    ] {
        let mut client = gateway.client();
        let reply = client
            .post_json(
                "/session",
                &serde_json::json!({ "username": user, "password": pw }),
            )
            .await;
        assert_eq!(reply.status, 401);
        assert!(reply.set_cookies().is_empty());
        let mut headers: Vec<(String, String)> = reply
            .headers
            .iter()
            // The request id is new for every request, whoever sends it.
            .filter(|(n, _)| !matches!(n.as_str(), "date" | "x-request-id"))
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        replies.push((reply.body.clone(), headers));
    }
    assert_eq!(replies[0], replies[1]);
    assert_eq!(replies[0], replies[2]);
    let body: serde_json::Value = serde_json::from_slice(&replies[0].0).unwrap();
    assert_eq!(body["error"], "invalid_credentials");
}

#[tokio::test]
async fn malformed_logins_are_refused_with_their_own_codes() {
    let (_upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    let json = [("content-type", "application/json")];

    let reply = client
        .send(
            Method::POST,
            "/session",
            &json,
            Bytes::from_static(b"{not json"),
        )
        .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (400, "bad_request")
    );
    let reply = client
        .send(
            Method::POST,
            "/session",
            &json,
            Bytes::from_static(b"{\"username\":\"user\"}"),
        )
        .await;
    assert_eq!(reply.status, 400);

    let reply = client
        .send(
            Method::POST,
            "/session",
            &[("content-type", "text/plain")],
            Bytes::from_static(b"{}"),
        )
        .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (415, "unsupported_media_type")
    );
    let reply = client
        .send(Method::POST, "/session", &[], Bytes::from_static(b"{}"))
        .await;
    assert_eq!(reply.status, 415);
    let reply = client
        .send(
            Method::POST,
            "/session",
            &[("content-type", "application/json; charset=utf-8")],
            Bytes::from(
                serde_json::to_vec(&serde_json::json!({"username":"user","password":USER_PW}))
                    .unwrap(),
            ),
        )
        .await;
    assert_eq!(reply.status, 201, "charset parameter is allowed");

    let big = format!(
        "{{\"username\":\"user\",\"password\":\"{}\"}}",
        "a".repeat(20 * 1024)
    );
    let reply = client
        .send(Method::POST, "/session", &json, Bytes::from(big))
        .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (413, "payload_too_large")
    );

    let long_pw = serde_json::json!({"username":"user","password":"a".repeat(1025)});
    let reply = client.post_json("/session", &long_pw).await;
    assert_eq!(reply.status, 400);

    let reply = client
        .send(Method::PUT, "/session", &[], Bytes::new())
        .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (405, "method_not_allowed")
    );
    assert_eq!(reply.header("allow"), Some("GET, HEAD, POST, DELETE"));

    for path in ["/session/x", "/session/", "/SESSION"] {
        let reply = client.get(path).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (404, "not_found"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn get_and_delete_without_a_session() {
    let (_upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    let reply = client.get("/session").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (401, "unauthenticated")
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let reply = client.delete("/session").await;
    assert_eq!(reply.status, 204);
    assert!(reply.set_cookies()[0].contains("Max-Age=0"));
}

#[tokio::test]
async fn login_replaces_the_carried_session_with_a_new_id() {
    let redis = RedisServer::start();
    let (_upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let mut client = gateway.client();
    let first = login(&mut client, "user", USER_PW).await;
    let second = login(&mut client, "admin", ADMIN_PW).await;
    assert_ne!(first, second);
    assert_eq!(
        redis
            .keys()
            .iter()
            .filter(|k| k.starts_with("portcullis:s:"))
            .count(),
        1
    );
    assert_eq!(client.get("/session").await.json()["user"], "admin");
    client.set_cookie("gw_sid", &first);
    assert_eq!(client.get("/api/x").await.status, 401);
}

#[tokio::test]
async fn c16_secret_rotation_keeps_sessions_and_reissues_the_cookie() {
    let redis = RedisServer::start();
    let upstream = crate::support::Upstream::start().await;
    let yaml = support::config_yaml(upstream.addr, Store::Redis(&redis), "");
    let gateway = support::Gateway::start(&yaml).await;
    let mut client = gateway.client();
    let old = login(&mut client, "user", USER_PW).await;
    gateway.shutdown().await;

    // [K2, K1]: K2 signs, K1 still verifies.
    let rotated = yaml.replace(
        &format!("secrets: [\"{}\"]", support::SECRET_1),
        &format!(
            "secrets: [\"{}\", \"{}\"]",
            support::SECRET_2,
            support::SECRET_1
        ),
    );
    let gateway = support::Gateway::start(&rotated).await;
    let mut client = gateway.client();
    client.set_cookie("gw_sid", &old);
    let reply = client.get("/api/x").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.set_cookies().is_empty(),
        "proxied responses are unchanged"
    );
    let reply = client.get("/session").await;
    assert_eq!(reply.status, 200);
    let fresh = client.cookie("gw_sid").unwrap();
    assert_ne!(fresh, old, "GET /session re-signs with the first secret");
    gateway.shutdown().await;

    // [K2] only: the old cookie no longer verifies, the re-issued one does.
    let only_new = yaml.replace(
        &format!("secrets: [\"{}\"]", support::SECRET_1),
        &format!("secrets: [\"{}\"]", support::SECRET_2),
    );
    let gateway = support::Gateway::start(&only_new).await;
    let mut client = gateway.client();
    client.set_cookie("gw_sid", &old);
    assert_eq!(client.get("/api/x").await.status, 401);
    client.set_cookie("gw_sid", &fresh);
    assert_eq!(client.get("/api/x").await.status, 200);

    // The live session's own id, signed with a key never configured: 401, nothing forwarded.
    use portcullis::config::Secret;
    use portcullis::session::CookieSigner;
    let k2 = CookieSigner::new(&[Secret::new(support::SECRET_2.as_bytes().to_vec())]);
    let id = k2
        .verify(fresh.as_bytes())
        .expect("the fresh cookie is K2's")
        .id;
    let foreign = CookieSigner::new(&[Secret::new(
        b"never-configured-secret-0123456789abcdef".to_vec(),
    )])
    .sign(&id);
    upstream.clear();
    client.set_cookie("gw_sid", &foreign);
    assert_eq!(client.get("/api/x").await.status, 401);
    assert!(upstream.is_untouched());
    client.set_cookie("gw_sid", &fresh);
    assert_eq!(client.get("/api/x").await.status, 200);
}

#[tokio::test]
async fn logout_and_login_end_every_signed_session_the_request_carries() {
    let redis = RedisServer::start();
    let (_upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let mut a = gateway.client();
    let sid_a = login(&mut a, "user", USER_PW).await;
    let mut b = gateway.client();
    let sid_b = login(&mut b, "user", USER_PW).await;

    // Logout with the cookie twice (one junk, one real; or two real): every real one ends.
    let mut client = gateway.client();
    for cookie in [
        format!("gw_sid={sid_a}; gw_sid=junk"),
        format!("gw_sid; gw_sid={sid_b}"),
    ] {
        let reply = client
            .send(
                Method::DELETE,
                "/session",
                &[("cookie", &cookie)],
                Bytes::new(),
            )
            .await;
        assert_eq!(reply.status, 204);
    }
    for sid in [&sid_a, &sid_b] {
        let mut replay = gateway.client();
        replay.set_cookie("gw_sid", sid);
        assert_eq!(replay.get("/api/x").await.status, 401);
    }

    // A login carrying two cookies ends the signed one as well.
    let mut c = gateway.client();
    let sid_c = login(&mut c, "user", USER_PW).await;
    let cookie = format!("gw_sid={sid_c}; gw_sid=x");
    let body = format!("{{\"username\":\"admin\",\"password\":\"{ADMIN_PW}\"}}");
    let reply = gateway
        .client()
        .send(
            Method::POST,
            "/session",
            &[("cookie", &cookie), ("content-type", "application/json")],
            Bytes::from(body),
        )
        .await;
    assert_eq!(reply.status, 201);
    c.set_cookie("gw_sid", &sid_c);
    assert_eq!(c.get("/api/x").await.status, 401);
}

#[tokio::test]
async fn a_custom_session_api_path_answers_logins_and_leaves_session_to_the_upstream() {
    let (upstream, gateway) =
        support::setup_with(Store::Memory, "session_api:\n  path: /auth/session\n").await;
    let mut client = gateway.client();
    let reply = client
        .post_json(
            "/auth/session",
            &serde_json::json!({ "username": "user", "password": USER_PW }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert!(client.cookie("gw_sid").is_some());
    let reply = client.get("/auth/session").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["user"], "user");
    assert_eq!(client.get("/auth/session/x").await.status, 404);
    assert!(upstream.is_untouched());

    // `/session` is now an ordinary path under the default rule: a session is needed.
    let reply = gateway.client().get("/session").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (401, "unauthenticated")
    );
    assert!(upstream.is_untouched());
    let reply = client.get("/session").await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    assert_eq!(seen.target, "/session");
    assert_eq!(seen.header("x-auth-user"), Some("user"));
}

#[tokio::test]
async fn same_site_strict_and_the_cookie_path_are_on_the_login_and_the_logout_cookie() {
    let upstream = Upstream::start().await;
    let fixture = support::config_yaml(upstream.addr, Store::Memory, "");
    let yaml = fixture.replacen(
        "    name: gw_sid\n",
        "    name: gw_sid\n    same_site: strict\n    path: /app\n",
        1,
    );
    assert_ne!(yaml, fixture);
    let gateway = support::Gateway::start(&yaml).await;
    let mut client = gateway.client();
    let reply = client
        .post_json(
            "/session",
            &serde_json::json!({ "username": "user", "password": USER_PW }),
        )
        .await;
    assert_eq!(reply.status, 201);
    let set = reply.set_cookies();
    assert_eq!(set.len(), 1, "{set:?}");
    assert_eq!(
        cookie_attributes(set[0]),
        ["HttpOnly", "Max-Age=43200", "Path=/app", "SameSite=Strict"]
    );

    let reply = client.delete("/session").await;
    assert_eq!(reply.status, 204);
    let set = reply.set_cookies();
    assert_eq!(set.len(), 1, "{set:?}");
    assert!(set[0].starts_with("gw_sid=;"), "{set:?}");
    assert_eq!(
        cookie_attributes(set[0]),
        ["HttpOnly", "Max-Age=0", "Path=/app", "SameSite=Strict"],
        "the logout cookie must match the login cookie to replace it"
    );
}

#[tokio::test]
async fn sessions_are_stored_under_the_configured_key_prefix() {
    let redis = RedisServer::start();
    let (_upstream, gateway) = support::setup_with_options(
        Store::Redis(&redis),
        &ConfigOptions {
            session: "  key_prefix: \"edge:\"\n",
            ..ConfigOptions::default()
        },
    )
    .await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let keys = redis.keys();
    assert!(keys.iter().all(|k| k.starts_with("edge:")), "{keys:?}");
    let sessions: Vec<&String> = keys.iter().filter(|k| k.starts_with("edge:s:")).collect();
    assert_eq!(sessions.len(), 1, "{keys:?}");
    let digest = sessions[0].strip_prefix("edge:s:").unwrap();
    assert!(
        digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "{digest}"
    );
    assert!(redis.pttl(sessions[0]) > 0);

    assert_eq!(client.get("/session").await.status, 200);
    assert_eq!(client.delete("/session").await.status, 204);
    assert!(!redis.keys().contains(sessions[0]), "{:?}", redis.keys());
}
