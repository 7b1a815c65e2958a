//! `session.bearer`: a login may also get its session as a token, sent as
//! `Authorization: Bearer <token>` (as oha and curl send it): the same session, timeouts and
//! revocation, no origin check, never together with the cookie, and never passed upstream.

use std::time::Duration;

use bytes::Bytes;
use http::Method;

use crate::support::{
    self, login, ConfigOptions, Gateway, RedisServer, Store, Upstream, ADMIN_PW, USER_PW,
};

const BEARER_ON: &str = "  bearer: true\n";
/// An optional route besides fixture R's rules.
const OPTIONAL: &str = "    - path: /opt/\n      allow: optional\n";

async fn setup(store: Store<'_>, session: &str) -> (Upstream, Gateway) {
    support::setup_with_options(
        store,
        &ConfigOptions {
            session,
            extra: OPTIONAL,
            ..ConfigOptions::default()
        },
    )
    .await
}

/// Log in with `"token": true` on a fresh client; returns the whole 201 JSON and the cookie.
async fn token_login(gateway: &Gateway, user: &str, password: &str) -> (serde_json::Value, String) {
    let mut client = gateway.client();
    let reply = client
        .post_json(
            "/session",
            &serde_json::json!({ "username": user, "password": password, "token": true }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    (reply.json(), client.cookie("gw_sid").unwrap())
}

/// Send with `Authorization: Bearer <token>` (and `extra` headers) from a client without cookies.
async fn with_token(
    gateway: &Gateway,
    method: Method,
    path: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> support::client::Reply {
    let authorization = format!("Bearer {token}");
    let mut headers = vec![("authorization", authorization.as_str())];
    headers.extend_from_slice(extra);
    gateway
        .client()
        .send(method, path, &headers, Bytes::new())
        .await
}

#[tokio::test]
async fn a_token_login_returns_the_signed_cookie_value_only_when_asked_and_enabled() {
    let (_upstream, gateway) = setup(Store::Memory, BEARER_ON).await;
    let (body, cookie) = token_login(&gateway, "user", USER_PW).await;
    assert_eq!(
        body["token"],
        cookie.as_str(),
        "the token is the cookie value"
    );
    assert_eq!(body["user"], "user");
    let mut plain = gateway.client();
    login(&mut plain, "user", USER_PW).await;
    let reply = gateway
        .client()
        .post_json(
            "/session",
            &serde_json::json!({ "username": "user", "password": USER_PW }),
        )
        .await;
    assert_eq!(reply.status, 201);
    assert!(reply.json().get("token").is_none(), "not asked for");
    let reply = gateway
        .client()
        .post_json(
            "/session",
            &serde_json::json!({ "username": "user", "password": USER_PW, "token": "yes" }),
        )
        .await;
    assert_eq!(reply.status, 400, "token must be a boolean");

    let (_upstream, off) = setup(Store::Memory, "").await;
    let (body, _) = token_login(&off, "user", USER_PW).await;
    assert!(body.get("token").is_none(), "bearer off: no token: {body}");
}

async fn a_bearer_token_is_the_session_like_a_cookie(store: Store<'_>) {
    let (upstream, gateway) = setup(store, BEARER_ON).await;
    let (body, _) = token_login(&gateway, "user", USER_PW).await;
    let token = body["token"].as_str().unwrap();

    // As oha sends it: `-H "Authorization: Bearer $TOKEN"`.
    let reply = with_token(&gateway, Method::GET, "/api/x", token, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = upstream.only();
    assert_eq!(seen.header("x-auth-user"), Some("user"));
    assert_eq!(seen.header("x-auth-roles"), Some("reader"));
    assert_eq!(
        seen.header("authorization"),
        None,
        "the consumed token is removed"
    );
    assert!(seen.all("cookie").is_empty());
    upstream.clear();

    let reply = with_token(&gateway, Method::GET, "/session", token, &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["user"], "user");
    assert!(reply.set_cookies().is_empty());
    let reply = with_token(&gateway, Method::GET, "/session/all", token, &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["sessions"][0]["current"], true);
    let reply = with_token(&gateway, Method::GET, "/admin/x", token, &[]).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (403, "forbidden")
    );
    let reply = with_token(&gateway, Method::GET, "/opt/x", token, &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.only().header("x-auth-user"), Some("user"));
    upstream.clear();

    // Tokens that are not ours, or not tokens: no session where one is needed.
    let unknown = support::unknown_signed_cookie();
    for bad in [unknown.as_str(), "junk", "", &token[..token.len() - 1]] {
        let reply = with_token(&gateway, Method::GET, "/api/x", bad, &[]).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (401, "unauthenticated"),
            "{bad:?}"
        );
    }
    assert!(upstream.is_untouched());

    // Logout with the token ends the session: the token is refused afterwards.
    let reply = with_token(&gateway, Method::DELETE, "/session", token, &[]).await;
    assert_eq!(reply.status, 204);
    let reply = with_token(&gateway, Method::GET, "/api/x", token, &[]).await;
    assert_eq!(reply.status, 401);
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn a_bearer_token_is_the_session_like_a_cookie_on_memory() {
    a_bearer_token_is_the_session_like_a_cookie(Store::Memory).await;
}

#[tokio::test]
async fn a_bearer_token_is_the_session_like_a_cookie_on_redis() {
    let redis = RedisServer::start();
    a_bearer_token_is_the_session_like_a_cookie(Store::Redis(&redis)).await;
}

#[tokio::test]
async fn a_token_is_revoked_and_listed_like_any_session_and_ends_at_its_timeouts() {
    let redis = RedisServer::start();
    let (_upstream, gateway) = setup(Store::Redis(&redis), BEARER_ON).await;
    // Revoked from a cookie session of the same user: refused.
    let (body, _) = token_login(&gateway, "user", USER_PW).await;
    let token = body["token"].as_str().unwrap().to_owned();
    let mut browser = gateway.client();
    login(&mut browser, "user", USER_PW).await;
    let reply = browser.get("/session/all").await;
    let listed = reply.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2);
    let handle = listed.iter().find(|s| s["current"] == false).unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        browser
            .delete(&format!("/session/all/{handle}"))
            .await
            .status,
        204
    );
    assert_eq!(
        with_token(&gateway, Method::GET, "/api/x", &token, &[])
            .await
            .status,
        401
    );

    // Log out everywhere with a token: the cookie session ends too.
    let (body, _) = token_login(&gateway, "user", USER_PW).await;
    let token = body["token"].as_str().unwrap().to_owned();
    let reply = with_token(&gateway, Method::DELETE, "/session/all", &token, &[]).await;
    assert_eq!(reply.status, 204);
    assert_eq!(browser.get("/api/x").await.status, 401);
    assert_eq!(
        with_token(&gateway, Method::GET, "/api/x", &token, &[])
            .await
            .status,
        401
    );

    // The same timeouts.
    let (_upstream, gateway) = setup(
        Store::Redis(&redis),
        "  bearer: true\n  idle_timeout: 1s\n  absolute_timeout: 1s\n",
    )
    .await;
    let (body, _) = token_login(&gateway, "user", USER_PW).await;
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        with_token(&gateway, Method::GET, "/api/x", &token, &[])
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        with_token(&gateway, Method::GET, "/api/x", &token, &[])
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn a_cookie_and_a_bearer_token_together_are_400_and_nothing_is_forwarded() {
    let (upstream, gateway) = setup(Store::Memory, BEARER_ON).await;
    let (body, cookie) = token_login(&gateway, "user", USER_PW).await;
    let token = body["token"].as_str().unwrap();
    let (other, _) = token_login(&gateway, "admin", ADMIN_PW).await;
    let cookie_header = format!("gw_sid={cookie}");
    let json = [("content-type", "application/json")];
    for (method, path, bearer) in [
        (Method::GET, "/api/x", token),
        (Method::GET, "/api/x", other["token"].as_str().unwrap()),
        (Method::GET, "/api/x", "not-ours"),
        (Method::GET, "/admin/x", token),
        (Method::GET, "/opt/x", token),
        (Method::POST, "/api/x", token),
        (Method::GET, "/session", token),
        (Method::DELETE, "/session", token),
        (Method::GET, "/session/all", token),
        (Method::DELETE, "/session/all", token),
        (Method::POST, "/session", token),
    ] {
        let authorization = format!("Bearer {bearer}");
        let mut headers = vec![
            ("cookie", cookie_header.as_str()),
            ("authorization", authorization.as_str()),
        ];
        if method == Method::POST {
            headers.extend_from_slice(&json);
        }
        let reply = gateway
            .client()
            .send(method.clone(), path, &headers, Bytes::from_static(b"{}"))
            .await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (400, "bad_request"),
            "{method} {path}"
        );
        assert!(reply.set_cookies().is_empty(), "{method} {path}");
    }
    // A token beside another Authorization field is two credentials too.
    let reply = gateway
        .client()
        .send(
            Method::GET,
            "/api/x",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("authorization", "Basic dXNlcjpwdw=="),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert!(upstream.is_untouched());
    // Nothing ended: both still work alone.
    let mut client = gateway.client();
    client.set_cookie("gw_sid", &cookie);
    assert_eq!(client.get("/api/x").await.status, 200);
    assert_eq!(
        with_token(&gateway, Method::GET, "/api/x", token, &[])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn only_a_consumed_authorization_header_is_removed_before_forwarding() {
    let (upstream, gateway) = setup(Store::Memory, BEARER_ON).await;
    let (body, cookie) = token_login(&gateway, "user", USER_PW).await;
    let token = body["token"].as_str().unwrap();
    let ours = format!("Bearer {token}");
    let basic = "Basic dXNlcjpwYXNzd29yZA==";
    let foreign = "Bearer upstream-api-token-123";
    let mut browser = gateway.client();
    browser.set_cookie("gw_sid", &cookie);

    // With a cookie session: another scheme goes through as sent.
    let reply = browser
        .send(
            Method::GET,
            "/api/x",
            &[("authorization", basic)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    assert_eq!(seen.header("authorization"), Some(basic));
    assert_eq!(seen.header("x-auth-user"), Some("user"));
    upstream.clear();

    // Where no session is needed: a foreign token or Basic passes unchanged, ours never does.
    for (path, value, forwarded) in [
        ("/public/a", foreign, Some(foreign)),
        ("/public/a", basic, Some(basic)),
        ("/public/a", ours.as_str(), None),
        ("/opt/a", foreign, Some(foreign)),
        ("/opt/a", ours.as_str(), None),
    ] {
        let reply = gateway
            .client()
            .send(Method::GET, path, &[("authorization", value)], Bytes::new())
            .await;
        assert_eq!(reply.status, 200, "{path} {value}");
        let seen = upstream.only();
        assert_eq!(seen.header("authorization"), forwarded, "{path} {value}");
        let identity = seen.header("x-auth-user");
        let expected = (path == "/opt/a" && value == ours).then_some("user");
        assert_eq!(identity, expected, "{path} {value}");
        upstream.clear();
    }
    // A token of ours whose session ended is still ours: never forwarded.
    let reply = with_token(&gateway, Method::DELETE, "/session", token, &[]).await;
    assert_eq!(reply.status, 204);
    let reply = with_token(&gateway, Method::GET, "/public/a", token, &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.only().header("authorization"), None);
    upstream.clear();
    // Where a session is needed, a foreign token is no session: 401, nothing forwarded.
    let reply = gateway
        .client()
        .send(
            Method::GET,
            "/api/x",
            &[("authorization", foreign)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 401);
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn bearer_requests_skip_the_origin_check_and_cookie_requests_keep_it() {
    let (upstream, gateway) = setup(Store::Memory, BEARER_ON).await;
    let (body, cookie) = token_login(&gateway, "user", USER_PW).await;
    let token = body["token"].as_str().unwrap();
    let foreign = [("origin", "https://attacker.example")];

    let reply = with_token(&gateway, Method::POST, "/api/x", token, &foreign).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(upstream.only().header("x-auth-user"), Some("user"));
    upstream.clear();
    let mut browser = gateway.client();
    browser.set_cookie("gw_sid", &cookie);
    let reply = browser
        .send(Method::POST, "/api/x", &foreign, Bytes::new())
        .await;
    assert_eq!((reply.status, reply.error_code().as_str()), (403, "csrf"));
    let reply = browser
        .send(Method::DELETE, "/session/all", &foreign, Bytes::new())
        .await;
    assert_eq!((reply.status, reply.error_code().as_str()), (403, "csrf"));
    assert!(upstream.is_untouched());

    // The session API's writes too: a token-borne logout everywhere from anywhere.
    let reply = with_token(&gateway, Method::DELETE, "/session/all", token, &foreign).await;
    assert_eq!(reply.status, 204);
    assert_eq!(browser.get("/api/x").await.status, 401);
    // A login without any session is still origin-checked (login CSRF).
    let reply = gateway
        .client()
        .send(
            Method::POST,
            "/session",
            &[
                ("origin", "https://attacker.example"),
                ("content-type", "application/json"),
            ],
            Bytes::from(
                serde_json::to_vec(&serde_json::json!({"username": "user", "password": USER_PW}))
                    .unwrap(),
            ),
        )
        .await;
    assert_eq!((reply.status, reply.error_code().as_str()), (403, "csrf"));
}

#[tokio::test]
async fn with_bearer_off_the_authorization_header_is_never_read() {
    let (upstream, gateway) = setup(Store::Memory, "").await;
    let mut browser = gateway.client();
    let cookie = login(&mut browser, "user", USER_PW).await;
    let as_token = format!("Bearer {cookie}");

    // The session's own value as a token: no session, and not ours to remove.
    let reply = gateway
        .client()
        .send(
            Method::GET,
            "/api/x",
            &[("authorization", &as_token)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 401);
    assert!(upstream.is_untouched());
    let reply = gateway
        .client()
        .send(
            Method::GET,
            "/public/a",
            &[("authorization", &as_token)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        upstream.only().header("authorization"),
        Some(as_token.as_str())
    );
    upstream.clear();
    // A cookie beside it is simply the session; the header passes unchanged.
    let reply = browser
        .send(
            Method::GET,
            "/api/x",
            &[("authorization", &as_token)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    assert_eq!(seen.header("authorization"), Some(as_token.as_str()));
    assert_eq!(seen.header("x-auth-user"), Some("user"));
    // And a header never skips the origin check.
    let reply = gateway
        .client()
        .send(
            Method::DELETE,
            "/session",
            &[
                ("authorization", &as_token),
                ("origin", "https://attacker.example"),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!((reply.status, reply.error_code().as_str()), (403, "csrf"));
    assert_eq!(browser.get("/api/x").await.status, 200, "still logged in");
}
