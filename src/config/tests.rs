//! Tests for configuration loading and validation, fed YAML strings and a fake environment.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use argon2::{PasswordHash, PasswordVerifier};
use http::Method;

use super::*;
use crate::access::{Allow, PathPattern};

mod browser;
mod identity;
mod log;
mod redis;
mod regulation;
mod tls;
mod validation;

/// The demo user's hash from `config.example.yaml` (password `portcullis-demo`).
const DEMO_HASH: &str = concat!(
    "$argon2id$v=19$m=19456,t=2,p=1$GXoImXgfmHCRJn0cAAcq3A$",
    "+DzcMooRNpJTt0Gg2e1zrvKPjn1HDSIpM1Plu7bUh2s"
);
const SECRET_32: &str = "0123456789abcdef0123456789abcdef";

fn env(name: &str) -> Option<String> {
    match name {
        "SECRET" => Some(format!("{SECRET_32}-from-env")),
        "HOST" => Some("127.0.0.1".into()),
        "QUEUE" => Some("7".into()),
        "NESTED" => Some("${SECRET}".into()),
        _ => None,
    }
}

fn load(yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml_str_with(yaml, Path::new(""), &env)
}

fn load_ok(yaml: &str) -> Config {
    match load(yaml) {
        Ok(config) => config,
        Err(e) => panic!("config should load: {e}\n{yaml}"),
    }
}

/// `extra` appended to a minimal valid config (loopback listener, loopback upstream).
fn base(extra: &str) -> String {
    format!("listen: 127.0.0.1:4180\nupstream:\n  url: http://127.0.0.1:3000\n{extra}")
}

/// A minimal config whose `upstream` section holds `lines` (indented by two spaces).
fn with_upstream(lines: &str) -> String {
    format!("listen: 127.0.0.1:4180\nupstream:\n{lines}")
}

fn err_key(yaml: &str) -> String {
    match load(yaml) {
        Err(ConfigError::Invalid { key, .. }) => key,
        Err(other) => panic!("expected an Invalid error, got {other}\n{yaml}"),
        Ok(_) => panic!("expected an error\n{yaml}"),
    }
}

fn err_message(yaml: &str) -> String {
    match load(yaml) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("expected an error\n{yaml}"),
    }
}

fn user_yaml(name: &str, hash: &str) -> String {
    format!("  - username: {name}\n    password_hash: \"{hash}\"\n")
}

#[test]
fn minimal_config_gets_every_default() {
    let c = load_ok("upstream:\n  url: http://127.0.0.1:3000\nsession:\n  store: memory\n");
    assert_eq!(c.listen, DEFAULT_LISTEN.parse::<SocketAddr>().unwrap());
    assert_eq!(
        c.admin_listen,
        DEFAULT_ADMIN_LISTEN.parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.public_url, None);
    assert!(c.trusted_proxies.is_empty());
    assert_eq!(c.tls, None);
    assert_eq!(c.upstream.url, "http://127.0.0.1:3000/");
    assert_eq!(c.upstream.connect_timeout, Duration::from_secs(2));
    assert_eq!(c.upstream.timeout, Duration::from_secs(30));
    assert_eq!(c.upstream.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.upstream.pool_idle_timeout, Duration::from_secs(4));
    assert_eq!(c.upstream.host_header, HostHeader::Preserve);
    assert_eq!(c.upstream.websocket_max_lifetime, None);
    let s = &c.session;
    assert!(matches!(s.store, StoreConfig::Memory));
    assert_eq!(s.key_prefix, DEFAULT_KEY_PREFIX);
    assert_eq!(s.idle_timeout, Duration::from_secs(30 * 60));
    assert_eq!(s.absolute_timeout, Duration::from_secs(12 * 3600));
    assert!(s.secret_generated);
    assert_eq!(s.secrets.len(), 1);
    assert_eq!(s.secrets[0].expose().len(), MIN_SECRET_LEN);
    let cookie = &s.cookie;
    assert_eq!(cookie.name, DEFAULT_COOKIE_NAME);
    assert!(!cookie.secure, "auto without TLS or https public_url");
    assert_eq!(cookie.same_site, cookie::SameSite::Lax);
    assert_eq!(cookie.domain, None);
    assert_eq!(cookie.path, "/");
    assert_eq!(s.max_per_user, None);
    assert!(!s.bearer, "bearer tokens are off by default");
    assert_eq!(s.cache, None, "nothing to cache with the memory store");
    assert_eq!(c.session_api_path, DEFAULT_SESSION_API_PATH);
    assert!(c.users.is_empty());
    assert_eq!(c.identity_headers.user, "x-auth-user");
    assert_eq!(c.identity_headers.roles, "x-auth-roles");
    assert_eq!(
        c.identity_headers.strip,
        [
            "x-auth-*",
            "x-forwarded-user",
            "x-forwarded-email",
            "x-forwarded-groups",
            "remote-user",
            "remote-groups",
            "remote-email",
            "remote-name",
            "x-remote-user"
        ]
    );
    assert!(c.access.rules().is_empty());
    assert_eq!(c.access.default_allow(), Allow::Authenticated);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(c.identity.max_concurrent_hashes, cpus);
    assert_eq!(c.identity.hash_queue, 32);
    assert_eq!(c.identity.max_hash_memory_kib, 64 * 1024);
    assert_eq!(
        c.regulation.per_user_and_address,
        DEFAULT_REGULATION_PER_USER_AND_ADDRESS
    );
    assert_eq!(c.regulation.per_user, DEFAULT_REGULATION_PER_USER);
    assert_eq!(c.regulation.per_address, DEFAULT_REGULATION_PER_ADDRESS);
    assert_eq!(c.shutdown.drain_delay, Duration::ZERO);
    assert_eq!(c.shutdown.grace_period, Duration::from_secs(30));
    assert!(!c.admin.ready_requires_store);
    assert_eq!(c.server.keepalive_timeout, Duration::from_secs(75));
    assert_eq!(c.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.server.tls_handshake_timeout, Duration::from_secs(10));
    assert!(c.cors.allowed_origins.is_empty() && c.csrf.allowed_origins.is_empty());
    assert_eq!(c.cors.max_age, 600);
    assert_eq!(
        c.warnings.len(),
        3,
        "only the generated secret, memory sessions and the empty trusted_proxies on 0.0.0.0: {:?}",
        c.warnings
    );
}

#[test]
fn full_config_is_typed() {
    let yaml = format!(
        r#"
listen: "[::1]:8080"
admin_listen: 127.0.0.1:9999
public_url: "HTTPS://API.Example.com:443/"
trusted_proxies: ["10.1.2.3/8", "192.168.0.1", "::1"]
upstream:
  url: http://localhost:3000/api/
  connect_timeout: 500ms
  host_header: backend.internal:3000
  websocket_max_lifetime: 1h
session:
  store: redis
  redis_url: "redis://:pw@127.0.0.1:6379/0"
  redis_timeout: 250ms
  key_prefix: "app:"
  secrets: ["{SECRET_32}", "{SECRET_32}-old"]
  idle_timeout: 15m
  absolute_timeout: 1h
  cookie:
    name: __Host-portcullis
    same_site: strict
session_api:
  path: /auth/session
users:
  - username: alice@example.com
    password_hash: "{DEMO_HASH}"
    roles: [admin, "team:ops"]
    disabled: true
    display_name: Alice
    email: alice@example.com
identity_headers:
  user: X-User
  roles: X-Roles
  strip: ["X_Forwarded_*", "Remote-User"]
access:
  default: deny
  rules:
    - path: /public/
      allow: anonymous
    - path: /health
      allow: optional
    - path: /admin/
      roles: [admin]
      methods: [GET, POST]
identity:
  max_concurrent_hashes: 3
  hash_queue: 5
  max_hash_memory: 20MiB
shutdown: {{drain_delay: 5s, grace_period: 1m}}
admin: {{ready_requires_store: true}}
keepalive_timeout: 30s
header_read_timeout: 2s
tls_handshake_timeout: 3s
"#
    );
    let c = load_ok(&yaml);
    assert_eq!(c.listen, "[::1]:8080".parse::<SocketAddr>().unwrap());
    let public = c.public_url.as_ref().unwrap();
    assert_eq!(public.origin, "https://api.example.com");
    assert!(public.https);
    assert_eq!(c.trusted_proxies[0].to_string(), "10.0.0.0/8");
    assert_eq!(c.trusted_proxies[1].to_string(), "192.168.0.1/32");
    assert_eq!(c.trusted_proxies[2].to_string(), "::1/128");
    assert_eq!(c.upstream.url, "http://localhost:3000/api");
    assert_eq!(c.upstream.url.path(), "/api");
    assert_eq!(c.upstream.connect_timeout, Duration::from_millis(500));
    assert_eq!(
        c.upstream.websocket_max_lifetime,
        Some(Duration::from_secs(3600))
    );
    assert_eq!(
        c.upstream.host_header,
        HostHeader::Literal(http::HeaderValue::from_static("backend.internal:3000"))
    );
    let StoreConfig::Redis(redis) = &c.session.store else {
        panic!("redis store expected")
    };
    let RedisTopology::Standalone(url) = &redis.topology else {
        panic!("a standalone redis expected")
    };
    assert_eq!(url.expose(), "redis://:pw@127.0.0.1:6379/0");
    assert!(
        !format!("{c:?}").contains(":pw@"),
        "the redis URL is redacted"
    );
    assert!(
        !format!("{c:?}").contains(SECRET_32),
        "secrets are redacted"
    );
    assert_eq!(redis.timeout, Duration::from_millis(250));
    assert_eq!(redis.connect_timeout, Duration::from_secs(1));
    assert_eq!(c.session.secrets.len(), 2);
    assert_eq!(
        c.session.secrets[1].expose(),
        format!("{SECRET_32}-old").as_bytes()
    );
    assert!(!c.session.secret_generated);
    assert!(c.session.cookie.secure, "auto with an https public_url");
    assert_eq!(c.session.cookie.same_site, cookie::SameSite::Strict);
    assert_eq!(c.session_api_path, "/auth/session");
    let alice = &c.users[0];
    assert_eq!(alice.username, "alice@example.com");
    assert_eq!(alice.roles, ["admin", "team:ops"]);
    assert!(alice.disabled);
    assert_eq!(alice.display_name.as_deref(), Some("Alice"));
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert_eq!(c.identity_headers.user, "x-user");
    assert_eq!(c.identity_headers.strip, ["x-forwarded-*", "remote-user"]);
    assert_eq!(c.access.default_allow(), Allow::Deny);
    let rules = c.access.rules();
    assert_eq!(rules[0].path, PathPattern::Prefix("/public/".into()));
    assert_eq!(rules[0].allow, Allow::Anonymous);
    assert_eq!(rules[1].path, PathPattern::Exact("/health".into()));
    assert_eq!(rules[1].allow, Allow::Optional);
    assert_eq!(rules[2].allow, Allow::Authenticated);
    assert_eq!(rules[2].roles, ["admin"]);
    assert_eq!(rules[2].methods, Some(vec![Method::GET, Method::POST]));
    assert_eq!(c.identity.max_concurrent_hashes, 3);
    assert_eq!(c.identity.hash_queue, 5);
    assert_eq!(c.identity.max_hash_memory_kib, 20 * 1024);
    assert_eq!(c.shutdown.drain_delay, Duration::from_secs(5));
    assert_eq!(c.shutdown.grace_period, Duration::from_secs(60));
    assert!(c.admin.ready_requires_store);
    assert_eq!(c.server.keepalive_timeout, Duration::from_secs(30));
    assert_eq!(c.server.header_read_timeout, Duration::from_secs(2));
    assert_eq!(c.server.tls_handshake_timeout, Duration::from_secs(3));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn substitution_expands_env_and_files_anywhere_in_a_string() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), format!("{SECRET_32}-file\n")).unwrap();
    let yaml = r#"
listen: "${HOST}:4180"
upstream:
  url: "http://${HOST}:3000"
session:
  key_prefix: "p-${QUEUE}-${QUEUE}:"
  secrets: ["${SECRET}", "${file:secret}", "${NESTED}-rotated-${QUEUE}-and-padded-to-length"]
identity:
  hash_queue: ${QUEUE}
"#;
    let c = Config::from_yaml_str_with(yaml, dir.path(), &env).unwrap();
    assert_eq!(c.listen, "127.0.0.1:4180".parse::<SocketAddr>().unwrap());
    assert_eq!(c.session.key_prefix, "p-7-7:");
    assert_eq!(
        c.session.secrets[0].expose(),
        format!("{SECRET_32}-from-env").as_bytes()
    );
    assert_eq!(
        c.session.secrets[1].expose(),
        format!("{SECRET_32}-file").as_bytes()
    );
    // Results are never expanded again.
    assert_eq!(
        c.session.secrets[2].expose(),
        b"${SECRET}-rotated-7-and-padded-to-length"
    );
    assert_eq!(c.identity.hash_queue, 7);
}

#[test]
fn substitution_double_dollar_is_a_literal() {
    let c = load_ok(&base("session:\n  key_prefix: \"$${QUEUE}:$$x:$y\"\n"));
    assert_eq!(c.session.key_prefix, "${QUEUE}:$$x:$y");
}

#[test]
fn substitution_unset_variable_names_the_key() {
    let yaml = base("session:\n  secrets: [\"${NOPE}\"]\n");
    assert_eq!(err_key(&yaml), "session.secrets[0]");
    assert!(err_message(&yaml).contains("NOPE"));
    let yaml = base(&format!(
        "users:\n{}  - username: bob\n    password_hash: \"${{NOPE}}\"\n",
        user_yaml("a", DEMO_HASH)
    ));
    assert_eq!(err_key(&yaml), "users[1].password_hash");
}

#[test]
fn substitution_unreadable_file_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = base("session:\n  secrets: [\"${file:missing}\"]\n");
    let err = Config::from_yaml_str_with(&yaml, dir.path(), &env).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "session.secrets[0]"),
        "{err}"
    );
}

#[test]
fn substitution_leaves_keys_alone() {
    let err = load(&base("\"${HOST}\": 1\n")).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax(_)));
    assert!(err.to_string().contains("${HOST}"), "{err}");
}

#[test]
fn unknown_keys_are_syntax_errors_naming_the_key() {
    let err = load(&base("lisen: 1.2.3.4:5\n")).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax(_)));
    assert!(err.to_string().contains("lisen"), "{err}");
    let err = load(&base("session:\n  cookie:\n    nmae: x\n")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("nmae") && text.contains("session.cookie"),
        "{text}"
    );
    let err = load(&base(
        "access:\n  rules:\n    - path: /x\n      role: [a]\n",
    ))
    .unwrap_err();
    assert!(err.to_string().contains("role"), "{err}");
}

#[test]
fn shape_errors_never_quote_an_expanded_secret() {
    let err = load(&base("session:\n  secrets: ${SECRET}\n")).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax(_)));
    assert!(!err.to_string().contains(SECRET_32), "{err}");
}

#[test]
fn shape_errors_never_quote_a_secret_written_in_the_wrong_place() {
    let yaml = base(&format!("session:\n  secrets: \"{SECRET_32}\"\n"));
    let err = load(&yaml).unwrap_err();
    let text = err.to_string();
    assert!(!text.contains(SECRET_32), "{text}");
    assert!(
        text.contains("session.secrets") && text.contains("expected a sequence"),
        "{text}"
    );
}

#[test]
fn missing_upstream_is_a_syntax_error() {
    let err = load("listen: 127.0.0.1:1\n").unwrap_err();
    assert!(err.to_string().contains("upstream"), "{err}");
}

#[test]
fn load_resolves_files_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), SECRET_32).unwrap();
    std::fs::write(dir.path().join("users.yaml"), user_yaml("bob", DEMO_HASH)).unwrap();
    let yaml = base("users_file: users.yaml\nsession:\n  secrets: [\"${file:secret}\"]\n");
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, yaml).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.session.secrets[0].expose(), SECRET_32.as_bytes());
    assert_eq!(c.users[0].username, "bob");
    let missing = Config::load(&dir.path().join("nope.yaml")).unwrap_err();
    assert!(matches!(missing, ConfigError::Read { .. }));
}

#[test]
fn example_config_loads_and_demo_password_verifies() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml");
    let c = Config::load(&path).unwrap();
    assert!(matches!(c.session.store, StoreConfig::Memory));
    assert_eq!(c.listen, "127.0.0.1:4180".parse::<SocketAddr>().unwrap());
    let demo = &c.users[0];
    assert_eq!(demo.username, "demo");
    assert_eq!(demo.roles, ["admin"]);
    assert_eq!(demo.password_hash, DEMO_HASH);
    let hash = PasswordHash::new(&demo.password_hash).unwrap();
    argon2::Argon2::default()
        .verify_password(b"portcullis-demo", &hash)
        .unwrap();
    let rules = c.access.rules();
    assert_eq!(rules[0].allow, Allow::Anonymous);
    assert_eq!(rules[1].roles, ["admin"]);
}

#[test]
fn websocket_max_lifetime_must_be_a_positive_duration() {
    for bad in ["0s", "forever", "\"\""] {
        let yaml = with_upstream(&format!(
            "  url: http://127.0.0.1:3000\n  websocket_max_lifetime: {bad}\n"
        ));
        assert_eq!(err_key(&yaml), "upstream.websocket_max_lifetime", "{bad}");
    }
}

#[test]
fn max_per_user_is_a_count_of_at_least_one() {
    let c = load_ok(&base("session:\n  store: memory\n  max_per_user: 3\n"));
    assert_eq!(c.session.max_per_user, Some(3));
    for bad in ["0", "-1", "many", "1.5"] {
        let yaml = base(&format!(
            "session:\n  store: memory\n  max_per_user: {bad}\n"
        ));
        assert_eq!(err_key(&yaml), "session.max_per_user", "{bad}");
    }
}

#[test]
fn the_session_cache_is_on_with_redis_for_at_most_a_second() {
    let redis = "session:\n  store: redis\n  redis_url: redis://127.0.0.1:6379\n  secrets: [\"0123456789abcdef0123456789abcdef\"]\n";
    let c = load_ok(&base(redis));
    assert_eq!(
        c.session.cache,
        Some(SessionCacheConfig {
            ttl: Duration::from_secs(1),
            max_entries: 100_000
        })
    );
    let c = load_ok(&base(&format!(
        "{redis}  cache_ttl: 250ms\n  cache_max_entries: 500\n"
    )));
    assert_eq!(
        c.session.cache,
        Some(SessionCacheConfig {
            ttl: Duration::from_millis(250),
            max_entries: 500
        })
    );
    let c = load_ok(&base(&format!("{redis}  cache_ttl: 0s\n")));
    assert_eq!(c.session.cache, None, "0s turns it off");
    for bad in ["1001ms", "2s", "1m", "soon"] {
        let yaml = base(&format!("{redis}  cache_ttl: {bad}\n"));
        assert_eq!(err_key(&yaml), "session.cache_ttl", "{bad}");
    }
    for bad in ["0", "-1", "lots"] {
        let yaml = base(&format!("{redis}  cache_max_entries: {bad}\n"));
        assert_eq!(err_key(&yaml), "session.cache_max_entries", "{bad}");
    }
    let c = load_ok(&base("session:\n  store: memory\n  cache_ttl: 500ms\n"));
    assert_eq!(c.session.cache, None);
    assert!(
        c.warnings
            .iter()
            .any(|w| w == "session.cache_ttl: ignored, session.store is memory"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn bearer_is_true_or_false() {
    let c = load_ok(&base("session:\n  store: memory\n  bearer: true\n"));
    assert!(c.session.bearer);
    let yaml = base("session:\n  store: memory\n  bearer: yes\n");
    assert_eq!(err_key(&yaml), "session.bearer");
}
