//! Forward-auth end to end behind a real nginx (OS package): `auth_request` + `auth_request_set`
//! in front of the echo upstream, the session API on the same host, exactly the README's snippet.

use bytes::Bytes;
use http::Method;

use crate::support::nginx::server_block;
use crate::support::{self, login, Gateway, Nginx, RedisServer, Store, Upstream, USER_PW};

/// End to end: nginx `auth_request` in front of the echo upstream, the session API proxied on the
/// same host, spoofed identity headers on an anonymous and an authenticated path.
#[tokio::test]
async fn nginx_auth_request_passes_only_the_gateways_identity_to_the_upstream() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&support::config_yaml(
        upstream.addr,
        Store::Redis(&redis),
        "trusted_proxies: [\"127.0.0.1/32\"]\n",
    ))
    .await;
    let nginx = Nginx::start(gateway.addr, upstream.addr).await;
    let spoofed: &[(&str, &str)] = &[
        ("X-Auth-User", "admin"),
        ("X-Auth-Roles", "admin"),
        ("X_Auth_User", "admin"),
    ];
    let mut client = support::Client::new(nginx.addr);
    let log = || nginx.error_log();

    // Anonymous path, no session: allowed, and the upstream sees no identity at all.
    let reply = client
        .send(Method::GET, "/public/a", spoofed, Bytes::new())
        .await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), log());
    let seen = upstream.only();
    assert_eq!(seen.target, "/public/a");
    assert!(!seen.has_prefix("x-auth-"), "{seen:#?}");
    upstream.clear();

    // Authenticated path, no session: 401 from nginx, nothing forwarded.
    let reply = client
        .send(Method::GET, "/api/x", spoofed, Bytes::new())
        .await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert!(upstream.is_untouched());

    // Log in through nginx: the session API on the same host sets the cookie.
    let sid = login(&mut client, "user", USER_PW).await;
    assert!(
        upstream.is_untouched(),
        "the session API is never the upstream's"
    );
    assert_eq!(client.get("/session").await.json()["user"], "user");

    // Authenticated path with the session: exactly the gateway's identity.
    let reply = client
        .send(Method::GET, "/api/x?q=1", spoofed, Bytes::new())
        .await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), log());
    let seen = upstream.only();
    assert_eq!(seen.target, "/api/x?q=1");
    assert_eq!(seen.all("x-auth-user"), ["user"]);
    assert_eq!(seen.all("x-auth-roles"), ["reader"]);
    let identity: Vec<_> = seen
        .headers
        .iter()
        .filter(|(n, _)| {
            n.to_ascii_lowercase()
                .replace('_', "-")
                .starts_with("x-auth-")
        })
        .collect();
    assert_eq!(identity.len(), 2, "{identity:?}");
    upstream.clear();

    // Anonymous path with the session: still no identity, and no spoofed header.
    let reply = client
        .send(Method::GET, "/public/a", spoofed, Bytes::new())
        .await;
    assert_eq!(reply.status, 200);
    assert!(!upstream.only().has_prefix("x-auth-"));
    upstream.clear();

    // A reader on an admin path: 403, nothing forwarded.
    let reply = client
        .send(Method::GET, "/admin/users", spoofed, Bytes::new())
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(upstream.is_untouched());

    // The endpoint itself is internal to nginx.
    let reply = client.get("/.portcullis/auth").await;
    assert_eq!(reply.status, 404);
    assert!(upstream.is_untouched());

    // Log out through nginx: the same cookie is refused afterwards.
    assert_eq!(client.delete("/session").await.status, 204);
    let mut replay = support::Client::new(nginx.addr);
    replay.set_cookie("gw_sid", &sid);
    assert_eq!(replay.get("/api/x").await.status, 401);
    assert!(upstream.is_untouched());
}

#[test]
fn the_readme_nginx_snippet_is_the_tested_config() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```nginx\n")
        .expect("README has an nginx snippet")
        + "```nginx\n".len();
    let end = start + readme[start..].find("```").expect("the snippet ends");
    assert_eq!(
        &readme[start..end],
        server_block("80", "127.0.0.1:4180", "127.0.0.1:3000"),
        "README.md's nginx snippet must be the config tests/gateway/support/nginx.rs runs"
    );
}
