//! Many replicas: gateways sharing one store behave as one, on every Redis topology (sessions,
//! the per-user session index and regulation). Each replica caches session records for at most
//! `session.cache_ttl` (1 s) and evicts a session as soon as another replica announces its end,
//! so a session ended on one replica is refused by the others within 1 s, and by the replica
//! that ended it at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::{
    self, login, Client, Gateway, RedisCluster, RedisSentinel, RedisServer, Store, Upstream,
    USER_PW,
};

/// Three failed logins for one user from one address ban it (for 30 s).
const REGULATION: &str = "regulation:\n  per_user_and_address:\n    max_retries: 3\n    find_time: 1m\n    ban_time: 30s\n";

async fn login_attempt(addr: SocketAddr, user: &str, password: &str) -> u16 {
    Client::new(addr)
        .post_json(
            "/session",
            &serde_json::json!({ "username": user, "password": password }),
        )
        .await
        .status
}

/// A session ended elsewhere is refused by every replica within this long (`cache_ttl`), plus
/// the time of one request.
const REVOCATION_BOUND: Duration = Duration::from_millis(1250);

/// Whether `client`'s requests to `path` turn from 200 to 401 within [`REVOCATION_BOUND`].
async fn refused_within_the_bound(client: &mut Client, path: &str) -> bool {
    let ended = Instant::now();
    loop {
        match client.get(path).await.status {
            401 => return true,
            200 if ended.elapsed() < REVOCATION_BOUND => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => return false,
        }
    }
}

/// Sessions made on A are used on B, logged out on B and then refused on A; failures counted on
/// either ban on both.
async fn two_gateways_behave_as_one(store: Store<'_>) {
    let upstream = Upstream::start().await;
    let yaml = support::config_yaml(upstream.addr, store, REGULATION);
    let a = Gateway::start(&yaml).await;
    let b = Gateway::start(&yaml).await;
    // Both caches in use: each replica's listener subscribed on this topology.
    for gateway in [&a, &b] {
        let cache = gateway.state.sessions.cache().expect("on by default");
        let started = Instant::now();
        while !cache.is_live() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the cache goes live"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // Several sessions, so that on a Cluster their keys land on different nodes.
    let mut sessions = Vec::new();
    for _ in 0..6 {
        let mut on_a = a.client();
        let sid = login(&mut on_a, "user", USER_PW).await;
        sessions.push((on_a, sid));
    }
    for (_, sid) in &sessions {
        let mut on_b = b.client();
        on_b.set_cookie("gw_sid", sid);
        upstream.clear();
        assert_eq!(on_b.get("/api/x").await.status, 200, "login on A, use on B");
        assert_eq!(upstream.only().header("x-auth-user"), Some("user"));
        let reply = on_b.get("/session").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["user"], "user");
    }

    // Logout on B: B refuses the cookie at once, A within the bound.
    let (mut on_a, sid) = sessions.pop().unwrap();
    let mut on_b = b.client();
    on_b.set_cookie("gw_sid", &sid);
    assert_eq!(on_a.get("/api/x").await.status, 200, "cached on A");
    assert_eq!(on_b.delete("/session").await.status, 204);
    let mut again_on_b = b.client();
    again_on_b.set_cookie("gw_sid", &sid);
    assert_eq!(
        again_on_b.get("/api/x").await.status,
        401,
        "refused at once on B"
    );
    assert!(
        refused_within_the_bound(&mut on_a, "/api/x").await,
        "logged out on B, refused on A"
    );
    for (on_a, _) in &mut sessions {
        assert_eq!(
            on_a.get("/api/x").await.status,
            200,
            "the other sessions live on"
        );
    }

    // The session index is shared too: B lists the sessions made on A, revokes one by its
    // handle and then all of them, and A refuses each at once.
    let (mut revoker, _) = sessions.pop().unwrap();
    let mut on_b = b.client();
    on_b.jar = revoker.jar.clone();
    let listing = on_b.get("/session/all").await;
    assert_eq!(listing.status, 200, "{}", listing.text());
    let listed = listing.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(listed.len(), sessions.len() + 1, "{listed:?}");
    let other = listed
        .iter()
        .find(|s| s["current"] == false)
        .expect("another session")["handle"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        on_b.delete(&format!("/session/all/{other}")).await.status,
        204
    );
    tokio::time::sleep(REVOCATION_BOUND).await;
    let refused = {
        let mut refused = 0;
        for (on_a, _) in &mut sessions {
            if on_a.get("/api/x").await.status == 401 {
                refused += 1;
            }
        }
        refused
    };
    assert_eq!(refused, 1, "the revoked handle is refused on A");
    assert_eq!(on_b.delete("/session/all").await.status, 204);
    for (on_a, _) in &mut sessions {
        assert!(
            refused_within_the_bound(on_a, "/api/x").await,
            "logged out everywhere"
        );
    }
    assert_eq!(revoker.get("/api/x").await.status, 401);

    // Failed logins counted on either replica ban on both.
    assert_eq!(login_attempt(a.addr, "admin", "wrong-1").await, 401);
    assert_eq!(login_attempt(b.addr, "admin", "wrong-2").await, 401);
    assert_eq!(login_attempt(a.addr, "admin", "wrong-3").await, 401);
    assert_eq!(login_attempt(b.addr, "admin", support::ADMIN_PW).await, 429);
    assert_eq!(login_attempt(a.addr, "admin", support::ADMIN_PW).await, 429);
}

#[tokio::test]
async fn two_gateways_on_one_redis_behave_as_one() {
    let redis = RedisServer::start();
    two_gateways_behave_as_one(Store::Redis(&redis)).await;
}

#[tokio::test]
async fn two_gateways_on_a_redis_cluster_behave_as_one() {
    let cluster = RedisCluster::start(3, 0);
    two_gateways_behave_as_one(Store::Cluster(&cluster)).await;
    // Every key the gateways wrote is a hash (never a session id) with a TTL, on whichever
    // primary owns its slot.
    let keys = cluster.keys();
    // Everyone was logged out everywhere: no session key is left behind on any node.
    assert!(
        !keys.iter().any(|k| k.starts_with("portcullis:s:")),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k.starts_with("portcullis:r:")));
    for key in &keys {
        assert!(key.starts_with("portcullis:"), "{key}");
        assert!(cluster.pttl(key) > 0, "{key} has a TTL");
    }
}

#[tokio::test]
async fn two_gateways_on_redis_sentinel_behave_as_one() {
    let sentinel = RedisSentinel::start();
    two_gateways_behave_as_one(Store::Sentinel(&sentinel)).await;
    let primary = &sentinel.nodes[sentinel.primary()];
    for key in primary.keys() {
        assert!(primary.pttl(&key) > 0, "{key} has a TTL");
    }
}
