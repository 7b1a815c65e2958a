//! Test harness: a real `redis-server`, a recording echo upstream and the real gateway, each on
//! an ephemeral loopback port, plus an HTTP client with a cookie jar and a raw-bytes client, the
//! real binary as a child process ([`binary`]), TLS certificates and clients ([`tls`]), a real
//! nginx doing forward-auth in front of them ([`nginx`]), a WebSocket echo upstream
//! ([`ws_upstream`]) and a credential check endpoint for delegated logins ([`check`]).

#![allow(dead_code)]

pub mod binary;
pub mod check;
pub mod client;
pub mod nginx;
pub mod redis;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod tls;
pub mod upstream;
pub mod ws_upstream;

use std::net::SocketAddr;
use std::sync::OnceLock;

use portcullis::config::Config;
use portcullis::server::{self, Listeners};
use portcullis::state::AppState;
use portcullis::tls::ListenerTls;
use tokio::sync::oneshot;

pub use binary::Binary;
pub use check::{CheckEndpoint, CHECK_PW};
pub use client::{raw, Client};
pub use nginx::Nginx;
pub use redis::{commands_between, RedisServer};
pub use redis_cluster::RedisCluster;
pub use redis_sentinel::RedisSentinel;
pub use tls::{Leaf, TestCa, TestCert};
pub use upstream::Upstream;
pub use ws_upstream::WsUpstream;

/// Passwords of the fixture users.
pub const USER_PW: &str = "reader-password-1";
pub const ADMIN_PW: &str = "admin-password-1";
pub const DISABLED_PW: &str = "disabled-password-1";
/// A 32-byte secret for tests (never a real one).
pub const SECRET_1: &str = "test-secret-one-0123456789abcdef0123";
pub const SECRET_2: &str = "test-secret-two-0123456789abcdef0123";

/// Argon2id hashes of the fixture passwords, computed once per test process.
pub fn hashes() -> &'static (String, String, String) {
    static HASHES: OnceLock<(String, String, String)> = OnceLock::new();
    HASHES.get_or_init(|| {
        use portcullis::identity::hash_password;
        (
            hash_password(USER_PW),
            hash_password(ADMIN_PW),
            hash_password(DISABLED_PW),
        )
    })
}

/// The users block of fixture R: `user` (reader), `admin` (reader, admin), `disabled`.
pub fn users_yaml() -> String {
    let (user, admin, disabled) = hashes();
    format!(
        "users:\n  - username: user\n    password_hash: \"{user}\"\n    roles: [reader]\n  - username: admin\n    password_hash: \"{admin}\"\n    roles: [reader, admin]\n  - username: disabled\n    password_hash: \"{disabled}\"\n    roles: [reader]\n    disabled: true\n"
    )
}

/// Fixture R: `/public/` anonymous, `/admin/` needs role admin, everything else a session.
pub const RULES_R: &str = "access:\n  default: authenticated\n  rules:\n    - path: /public/\n      allow: anonymous\n    - path: /admin/\n      roles: [admin]\n";

/// Which session store a gateway uses.
#[derive(Clone, Copy)]
pub enum Store<'a> {
    Memory,
    Redis(&'a RedisServer),
    Cluster(&'a RedisCluster),
    Sentinel(&'a RedisSentinel),
    /// Redis, connected as these `session:` lines say (topology, credentials, TLS).
    RedisWith(&'a str),
}

/// A config for fixture R in front of `upstream` with `store`, plus `extra` YAML lines.
pub fn config_yaml(upstream: SocketAddr, store: Store<'_>, extra: &str) -> String {
    config_yaml_with(
        upstream,
        store,
        &ConfigOptions {
            extra,
            ..ConfigOptions::default()
        },
    )
}

/// What [`config_yaml_with`] may change in the fixture config; the default builds exactly what
/// [`config_yaml`] builds.
#[derive(Default)]
pub struct ConfigOptions<'a> {
    /// Proxy listener (default `127.0.0.1:0`); the binary needs a fixed one.
    pub listen: Option<SocketAddr>,
    /// Admin listener (default `127.0.0.1:0`).
    pub admin_listen: Option<SocketAddr>,
    /// Extra lines inside `session:`, each indented by two spaces (`"  idle_timeout: 2s\n"`).
    pub session: &'a str,
    /// Extra top-level YAML appended at the end.
    pub extra: &'a str,
    /// The upstream URL's scheme and host instead of `http://<upstream address>`
    /// (`"https://localhost"`; the upstream's port is appended).
    pub upstream_base: Option<&'a str>,
    /// Extra lines inside `upstream:`, each indented by two spaces (`"  ca_file: ca.pem\n"`).
    pub upstream: &'a str,
}

/// A config for fixture R in front of `upstream` with `store`, changed as `options` says.
pub fn config_yaml_with(
    upstream: SocketAddr,
    store: Store<'_>,
    options: &ConfigOptions<'_>,
) -> String {
    let listen = options
        .listen
        .map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string());
    let admin_listen = options
        .admin_listen
        .map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string());
    let (session, extra) = (options.session, options.extra);
    let upstream_url = match options.upstream_base {
        Some(base) => format!("{base}:{}", upstream.port()),
        None => format!("http://{upstream}"),
    };
    let upstream_lines = options.upstream;
    let redis = match store {
        Store::Memory => None,
        Store::Redis(redis) => Some(format!("  redis_url: \"{}\"\n", redis.url())),
        Store::Cluster(cluster) => Some(cluster.session_yaml()),
        Store::Sentinel(sentinel) => Some(sentinel.session_yaml()),
        Store::RedisWith(lines) => Some(lines.to_owned()),
    };
    let store = match redis {
        None => format!("  store: memory\n  secrets: [\"{SECRET_1}\"]\n"),
        Some(redis) => format!(
            "  store: redis\n{redis}  redis_timeout: 300ms\n  redis_connect_timeout: 300ms\n  secrets: [\"{SECRET_1}\"]\n"
        ),
    };
    format!(
        "listen: \"{listen}\"\nadmin_listen: \"{admin_listen}\"\nupstream:\n  url: \"{upstream_url}\"\n  timeout: 2s\n  idle_timeout: 2s\n{upstream_lines}session:\n{store}{session}  cookie:\n    name: gw_sid\n{}{RULES_R}{extra}",
        users_yaml()
    )
}

/// A running gateway; shut down (gracefully) when dropped.
pub struct Gateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub state: std::sync::Arc<AppState>,
    /// The listener's TLS config, when it has one (to watch reloads).
    pub tls: Option<std::sync::Arc<ListenerTls>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// Start the real gateway from YAML (listeners on port 0).
    pub async fn start(yaml: &str) -> Gateway {
        let config = Config::from_yaml_str(yaml)
            .unwrap_or_else(|e| panic!("test config invalid: {e}\n{yaml}"));
        let listeners = Listeners::bind(&config).await.expect("bind gateway");
        let (addr, admin) = (listeners.proxy_addr(), listeners.admin_addr());
        let tls = listeners.tls();
        let state = AppState::new(config).expect("gateway state");
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server::run(
            listeners,
            std::sync::Arc::clone(&state),
            async {
                let _ = stopped.await;
            },
        ));
        Gateway {
            addr,
            admin,
            state,
            tls,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A client for the proxy listener.
    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    /// Start the shutdown (as a signal would) without waiting for it to finish.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stop accepting and wait for the drain to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Start an upstream and a gateway with fixture R and `store`.
pub async fn setup(store: Store<'_>) -> (Upstream, Gateway) {
    setup_with(store, "").await
}

/// [`setup`] with extra YAML appended.
pub async fn setup_with(store: Store<'_>, extra: &str) -> (Upstream, Gateway) {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&config_yaml(upstream.addr, store, extra)).await;
    (upstream, gateway)
}

/// A correctly signed cookie value (test secret) for an id that was never stored.
pub fn unknown_signed_cookie() -> String {
    use portcullis::config::Secret;
    use portcullis::session::{CookieSigner, SessionId};
    CookieSigner::new(&[Secret::new(SECRET_1.as_bytes().to_vec())]).sign(&SessionId::generate())
}

/// The `Cookie` values of case C11, built around the valid cookie `sid`: empty, unsigned, empty
/// or foreign MAC, wildcards, paths, NUL, quoted, 8 KB, signed by a key never configured,
/// nameless, only separators, and the cookie twice. None of them may authenticate or cost a
/// store command.
pub fn malformed_session_cookies(sid: &str) -> Vec<String> {
    use portcullis::config::Secret;
    use portcullis::session::{CookieSigner, SessionId};
    let (id, mac) = sid.split_once('.').expect("a signed cookie value");
    let other = unknown_signed_cookie();
    let other_mac = other.split_once('.').unwrap().1;
    let foreign =
        CookieSigner::new(&[Secret::new(b"a-key-that-was-never-configured-000".to_vec())])
            .sign(&SessionId::generate());
    let long = "a".repeat(8 * 1024);
    vec![
        "gw_sid=".to_owned(),
        format!("gw_sid={id}"),
        format!("gw_sid={id}."),
        format!("gw_sid=.{mac}"),
        format!("gw_sid={id}.{other_mac}"),
        "gw_sid=*".to_owned(),
        "gw_sid=sess:*".to_owned(),
        "gw_sid=../../x".to_owned(),
        "gw_sid=%00".to_owned(),
        format!("gw_sid=\"{sid}\""),
        format!("gw_sid={long}"),
        format!("gw_sid={foreign}"),
        "gw_sid".to_owned(),
        ";;;".to_owned(),
        // The cookie twice (even both valid): never pick one.
        format!("gw_sid={sid}; gw_sid={sid}"),
    ]
}

/// [`setup`] with the fixture config changed as `options` says.
pub async fn setup_with_options(
    store: Store<'_>,
    options: &ConfigOptions<'_>,
) -> (Upstream, Gateway) {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&config_yaml_with(upstream.addr, store, options)).await;
    (upstream, gateway)
}

/// A loopback port that was free a moment ago (bind port 0, read it, release it). For the real
/// binary, whose config needs fixed ports; in-process gateways bind port 0 instead.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// The store key of the only session in `redis`; panics unless there is exactly one.
pub fn only_session_key(redis: &RedisServer) -> String {
    let keys: Vec<String> = redis
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("portcullis:s:"))
        .collect();
    assert_eq!(keys.len(), 1, "session keys: {keys:?}");
    keys.into_iter().next().unwrap()
}

/// The key of `user`'s index of sessions under the default key prefix.
pub fn index_key(user: &str) -> String {
    use sha2::Digest as _;
    format!(
        "portcullis:u:{{{}}}",
        hex::encode(sha2::Sha256::digest(user.as_bytes()))
    )
}

/// `hex(SHA-256(id))` of the session a signed cookie value carries (test secret): its store key
/// is `portcullis:s:` followed by it.
pub fn cookie_digest(cookie: &str) -> String {
    use portcullis::config::Secret;
    use portcullis::session::CookieSigner;
    CookieSigner::new(&[Secret::new(SECRET_1.as_bytes().to_vec())])
        .verify(cookie.as_bytes())
        .expect("a cookie signed with the test secret")
        .id
        .digest_hex()
}

/// Log in through `client` and return its session cookie value.
pub async fn login(client: &mut Client, user: &str, password: &str) -> String {
    let reply = client
        .post_json(
            "/session",
            &serde_json::json!({ "username": user, "password": password }),
        )
        .await;
    assert_eq!(reply.status, 201, "login as {user}: {}", reply.text());
    client
        .cookie("gw_sid")
        .expect("login sets the session cookie")
}
