//! Validation tests: each rule rejects what it should and names the YAML key.

use super::*;

#[test]
fn identity_max_hash_memory_rejects_a_user_needing_more() {
    let yaml = base(&format!(
        "identity:\n  max_hash_memory: 16MiB\nusers:\n{}",
        user_yaml("demo", DEMO_HASH)
    ));
    assert_eq!(err_key(&yaml), "users[0].password_hash");
    assert!(err_message(&yaml).contains("demo"));
}

#[test]
fn upstream_url_prefix_loses_its_trailing_slash() {
    for (url, path) in [
        ("http://h:1/api/", "/api"),
        ("http://h:1", "/"),
        ("http://h:1/", "/"),
        ("http://h:1/a/b", "/a/b"),
    ] {
        let c = load_ok(&with_upstream(&format!("  url: {url}\n")));
        assert_eq!(c.upstream.url.path(), path, "{url}");
        assert_eq!(c.upstream.url.authority().unwrap().as_str(), "h:1");
    }
}

#[test]
fn non_loopback_upstream_warns_and_loopback_does_not() {
    let c = load_ok(&with_upstream("  url: http://backend.internal:3000\n"));
    assert!(c.warnings.iter().any(|w| w.starts_with("upstream.url")));
    for url in ["http://localhost:1", "http://127.0.0.2:1", "http://[::1]:1"] {
        let c = load_ok(&with_upstream(&format!("  url: \"{url}\"\n")));
        assert!(
            !c.warnings.iter().any(|w| w.starts_with("upstream.url")),
            "{url}: {:?}",
            c.warnings
        );
    }
}

#[test]
fn host_header_words_and_literals() {
    let c = load_ok(&with_upstream(
        "  url: http://127.0.0.1:1\n  host_header: upstream\n",
    ));
    assert_eq!(c.upstream.host_header, HostHeader::Upstream);
}

#[test]
fn store_defaults_to_memory_only_on_a_loopback_listener() {
    let c = load_ok(&base(""));
    assert!(matches!(c.session.store, StoreConfig::Memory));
    let yaml = "listen: 0.0.0.0:4180\nupstream:\n  url: http://127.0.0.1:1\n";
    assert_eq!(err_key(yaml), "session.store");
    assert!(err_message(yaml).contains("required when listen is not loopback"));
    let memory_in_public = |c: &Config| c.warnings.iter().any(|w| w.starts_with("session.store"));
    assert!(!memory_in_public(&c));
    let c = load_ok(
        "listen: 0.0.0.0:4180
upstream:
  url: http://127.0.0.1:1
session:
  store: memory
",
    );
    assert!(memory_in_public(&c), "{:?}", c.warnings);
}

#[test]
fn memory_store_without_secret_generates_one_and_warns() {
    let c = load_ok(&base(""));
    assert!(c.session.secret_generated);
    assert_eq!(c.session.secrets[0].expose().len(), MIN_SECRET_LEN);
    assert!(c
        .warnings
        .iter()
        .any(|w| w.contains("will not survive a restart")));
    let other = load_ok(&base(""));
    assert_ne!(c.session.secrets[0], other.session.secrets[0]);
}

#[test]
fn redis_store_requires_a_secret_and_a_url() {
    let yaml = base("session:\n  store: redis\n  redis_url: redis://127.0.0.1:6379\n");
    assert_eq!(err_key(&yaml), "session.secrets");
    let yaml = base(&format!(
        "session:\n  store: redis\n  secrets: [{SECRET_32}]\n"
    ));
    assert_eq!(err_key(&yaml), "session.redis_url");
    let yaml = base(&format!(
        "session:\n  store: redis\n  secrets: [{SECRET_32}]\n  redis_url: http://secretpw@h\n"
    ));
    assert_eq!(err_key(&yaml), "session.redis_url");
    assert!(!err_message(&yaml).contains("secretpw"));
}

#[test]
fn redis_urls_that_could_not_start_are_refused_without_echoing_them() {
    for url in [
        "rediss://:hunter2pw@127.0.0.1:6379/0#insecure",
        "redis://:hunter2pw@127.0.0.1:notaport/0",
        "redis://:hunter2pw@127.0.0.1:6379/zz",
    ] {
        let yaml = base(&format!(
            "session:\n  store: redis\n  secrets: [{SECRET_32}]\n  redis_url: \"{url}\"\n"
        ));
        assert_eq!(err_key(&yaml), "session.redis_url", "{url}");
        assert!(!err_message(&yaml).contains("hunter2pw"), "{url}");
    }
}

#[test]
fn redis_url_with_memory_store_warns() {
    let c = load_ok(&base("session:\n  store: memory\n  redis_url: redis://h\n"));
    assert!(c
        .warnings
        .iter()
        .any(|w| w.starts_with("session.redis_url")));
}

#[test]
fn short_secret_is_named_and_never_printed() {
    let yaml = base(&format!(
        "session:\n  secrets: [{SECRET_32}, tooshortsecret]\n"
    ));
    assert_eq!(err_key(&yaml), "session.secrets[1]");
    assert!(!err_message(&yaml).contains("tooshortsecret"));
}

#[test]
fn secure_auto_follows_tls_and_public_url() {
    let c = load_ok(&base("public_url: http://example.com\n"));
    assert!(!c.session.cookie.secure);
    let c = load_ok(&base("public_url: https://example.com\n"));
    assert!(c.session.cookie.secure);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), "cert").unwrap();
    std::fs::write(dir.path().join("k.pem"), "key").unwrap();
    let yaml = base("tls:\n  cert_file: c.pem\n  key_file: k.pem\n");
    let c = Config::from_yaml_str_with(&yaml, dir.path(), &env).unwrap();
    assert!(c.session.cookie.secure);
    assert_eq!(c.tls.unwrap().cert_file, dir.path().join("c.pem"));

    let yaml = base("public_url: https://e.com\nsession:\n  cookie:\n    secure: false\n");
    assert!(!load_ok(&yaml).session.cookie.secure);
    assert!(
        load_ok(&base("session:\n  cookie:\n    secure: true\n"))
            .session
            .cookie
            .secure
    );
}

#[test]
fn host_prefixed_cookie_rules() {
    let cookie = |attrs: &str| base(&format!("session:\n  cookie:\n    name: __Host-s\n{attrs}"));
    assert_eq!(err_key(&cookie("")), "session.cookie.secure");
    assert!(err_message(&cookie("")).contains("auto"));
    assert_eq!(
        err_key(&cookie("    secure: false\n")),
        "session.cookie.secure"
    );
    let secure = "    secure: true\n";
    assert!(load_ok(&cookie(secure)).session.cookie.secure);
    let bad_path = format!("{secure}    path: /app\n");
    assert_eq!(err_key(&cookie(&bad_path)), "session.cookie.path");
    let bad_domain = format!("{secure}    domain: example.com\n");
    assert_eq!(err_key(&cookie(&bad_domain)), "session.cookie.domain");
    // The prefix is recognised whatever its letter case.
    let lower = base("session:\n  cookie:\n    name: __host-s\n");
    assert_eq!(err_key(&lower), "session.cookie.secure");
}

#[test]
fn secure_prefixed_cookie_requires_secure() {
    let yaml = base("session:\n  cookie:\n    name: __Secure-s\n");
    assert_eq!(err_key(&yaml), "session.cookie.secure");
    let yaml = base("session:\n  cookie:\n    name: __Secure-s\n    secure: true\n    path: /a\n");
    assert_eq!(load_ok(&yaml).session.cookie.path, "/a");
}

#[test]
fn cookie_domain_warns() {
    let c = load_ok(&base("session:\n  cookie:\n    domain: example.com\n"));
    assert_eq!(c.session.cookie.domain.as_deref(), Some("example.com"));
    assert!(c
        .warnings
        .iter()
        .any(|w| w.starts_with("session.cookie.domain")));
}

#[test]
fn users_file_is_merged_after_users() {
    let dir = tempfile::tempdir().unwrap();
    let file = format!(
        "{}{}",
        user_yaml("bob", DEMO_HASH),
        user_yaml("carol", DEMO_HASH)
    );
    std::fs::write(dir.path().join("users.yaml"), file).unwrap();
    let yaml = base(&format!(
        "users_file: users.yaml\nusers:\n{}",
        user_yaml("alice", DEMO_HASH)
    ));
    let c = Config::from_yaml_str_with(&yaml, dir.path(), &env).unwrap();
    let names: Vec<_> = c.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);

    let yaml = base(&format!(
        "users_file: users.yaml\nusers:\n{}",
        user_yaml("carol", DEMO_HASH)
    ));
    let err = Config::from_yaml_str_with(&yaml, dir.path(), &env).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "users_file[1].username"),
        "{err}"
    );
    let err = Config::from_yaml_str_with(&base("users_file: nope.yaml\n"), dir.path(), &env);
    assert!(matches!(err, Err(ConfigError::Invalid { key, .. }) if key == "users_file"));
}

#[test]
fn user_entries_are_validated_and_named() {
    let users = |entries: &str| base(&format!("users:\n{}{entries}", user_yaml("ok", DEMO_HASH)));
    let scrypt = "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
    let no_hash = "$argon2id$v=19$m=19456,t=2,p=1$GXoImXgfmHCRJn0cAAcq3A";
    let cases = [
        (user_yaml("bad name", DEMO_HASH), "users[1].username"),
        (user_yaml(&"a".repeat(129), DEMO_HASH), "users[1].username"),
        (user_yaml("ok", DEMO_HASH), "users[1].username"),
        (user_yaml("x", "not-a-hash"), "users[1].password_hash"),
        (user_yaml("x", scrypt), "users[1].password_hash"),
        (user_yaml("x", no_hash), "users[1].password_hash"),
        (
            format!("{}    roles: [\"a b\"]\n", user_yaml("x", DEMO_HASH)),
            "users[1].roles[0]",
        ),
        (
            format!("{}    disabled: maybe\n", user_yaml("x", DEMO_HASH)),
            "users[1].disabled",
        ),
    ];
    for (entry, key) in cases {
        assert_eq!(err_key(&users(&entry)), key, "{entry}");
    }
    assert!(!err_message(&users(&user_yaml("x", no_hash))).contains("GXoImX"));
}

#[test]
fn invalid_values_name_their_key() {
    let cases: &[(&str, &str)] = &[
        ("admin_listen: 127.0.0.1:4180\n", "admin_listen"),
        ("admin_listen: nowhere\n", "admin_listen"),
        ("public_url: https://e.com/app\n", "public_url"),
        ("public_url: https://e.com/?q=1\n", "public_url"),
        ("public_url: ftp://e.com\n", "public_url"),
        ("public_url: e.com\n", "public_url"),
        ("public_url: https://user@e.com\n", "public_url"),
        (
            "trusted_proxies: [10.0.0.0/8, 10.0.0.0/99]\n",
            "trusted_proxies[1]",
        ),
        (
            "tls:\n  cert_file: /nonexistent/c\n  key_file: /nonexistent/k\n",
            "tls.cert_file",
        ),
        ("session:\n  store: postgres\n", "session.store"),
        ("session:\n  idle_timeout: 0s\n", "session.idle_timeout"),
        ("session:\n  idle_timeout: 13h\n", "session.idle_timeout"),
        (
            "session:\n  absolute_timeout: soon\n",
            "session.absolute_timeout",
        ),
        ("session:\n  redis_timeout: 0s\n", "session.redis_timeout"),
        (
            "session:\n  cookie:\n    name: \"a b\"\n",
            "session.cookie.name",
        ),
        (
            "session:\n  cookie:\n    name: \"a=b\"\n",
            "session.cookie.name",
        ),
        (
            "session:\n  cookie:\n    secure: yes\n",
            "session.cookie.secure",
        ),
        (
            "session:\n  cookie:\n    same_site: none\n",
            "session.cookie.same_site",
        ),
        (
            "session:\n  cookie:\n    same_site: Lax\n",
            "session.cookie.same_site",
        ),
        (
            "session:\n  cookie:\n    path: app\n",
            "session.cookie.path",
        ),
        (
            "session:\n  cookie:\n    domain: \"a b\"\n",
            "session.cookie.domain",
        ),
        ("session_api:\n  path: /\n", "session_api.path"),
        ("session_api:\n  path: /session/\n", "session_api.path"),
        ("session_api:\n  path: session\n", "session_api.path"),
        ("session_api:\n  path: /a//b\n", "session_api.path"),
        ("session_api:\n  path: /a/../b\n", "session_api.path"),
        ("session_api:\n  path: /a%2Fb\n", "session_api.path"),
        ("session_api:\n  path: /a;b\n", "session_api.path"),
        ("forward_auth:\n  path: /\n", "forward_auth.path"),
        ("forward_auth:\n  path: /auth/\n", "forward_auth.path"),
        ("forward_auth:\n  path: auth\n", "forward_auth.path"),
        ("forward_auth:\n  path: /a/./b\n", "forward_auth.path"),
        ("forward_auth:\n  path: /a%2Fb\n", "forward_auth.path"),
        ("forward_auth:\n  path: /session\n", "forward_auth.path"),
        (
            "forward_auth:\n  path: /Session/auth\n",
            "forward_auth.path",
        ),
        ("session_api:\n  path: /.portcullis\n", "forward_auth.path"),
        ("forward_auth:\n  enabled: yes\n", "forward_auth.enabled"),
        (
            "identity_headers:\n  user: \"X User\"\n",
            "identity_headers.user",
        ),
        (
            "identity_headers:\n  roles: X-Auth-User\n",
            "identity_headers.roles",
        ),
        (
            "identity_headers:\n  strip: [ok, \"*\"]\n",
            "identity_headers.strip[1]",
        ),
        (
            "identity_headers:\n  strip: [\"a*b*\"]\n",
            "identity_headers.strip[0]",
        ),
        ("access:\n  default: optional\n", "access.default"),
        ("access:\n  default: open\n", "access.default"),
        (
            "access:\n  rules:\n    - path: x/\n",
            "access.rules[0].path",
        ),
        (
            "access:\n  rules:\n    - path: /a/./b\n",
            "access.rules[0].path",
        ),
        (
            "access:\n  rules:\n    - path: /a?b\n",
            "access.rules[0].path",
        ),
        (
            "access:\n  rules:\n    - path: /a\\b\n",
            "access.rules[0].path",
        ),
        (
            "access:\n  rules:\n    - path: /a b\n",
            "access.rules[0].path",
        ),
        (
            "access:\n  rules:\n    - path: /a\n      allow: everyone\n",
            "access.rules[0].allow",
        ),
        (
            "access:\n  rules:\n    - path: /a\n      allow: anonymous\n      roles: [x]\n",
            "access.rules[0].roles",
        ),
        (
            "access:\n  rules:\n    - path: /a\n      roles: [ok, \"b/c\"]\n",
            "access.rules[0].roles[1]",
        ),
        (
            "access:\n  rules:\n    - path: /a\n      methods: [get]\n",
            "access.rules[0].methods[0]",
        ),
        (
            "access:\n  rules:\n    - path: /a\n      methods: [\"G T\"]\n",
            "access.rules[0].methods[0]",
        ),
        (
            "access:\n  rules:\n    - path: /a\n      methods: []\n",
            "access.rules[0].methods",
        ),
        (
            "identity:\n  max_concurrent_hashes: 0\n",
            "identity.max_concurrent_hashes",
        ),
        ("identity:\n  hash_queue: 0\n", "identity.hash_queue"),
        ("identity:\n  hash_queue: many\n", "identity.hash_queue"),
        (
            "identity:\n  max_hash_memory: 64MB\n",
            "identity.max_hash_memory",
        ),
        (
            "identity:\n  max_hash_memory: 0KiB\n",
            "identity.max_hash_memory",
        ),
        (
            "identity:\n  max_hash_memory: 99999GiB\n",
            "identity.max_hash_memory",
        ),
        ("shutdown:\n  grace_period: long\n", "shutdown.grace_period"),
        (
            "admin:\n  ready_requires_store: 1\n",
            "admin.ready_requires_store",
        ),
        ("keepalive_timeout: 5\n", "keepalive_timeout"),
        ("header_read_timeout: 0s\n", "header_read_timeout"),
        ("tls_handshake_timeout: x\n", "tls_handshake_timeout"),
    ];
    for (extra, key) in cases {
        assert_eq!(err_key(&base(extra)), *key, "{extra}");
    }
    let upstream_cases: &[(&str, &str)] = &[
        ("  url: 127.0.0.1:3000\n", "upstream.url"),
        ("  url: ftp://127.0.0.1\n", "upstream.url"),
        ("  url: http://127.0.0.1/?q=1\n", "upstream.url"),
        ("  url: http://127.0.0.1/a#f\n", "upstream.url"),
        ("  url: http://127.0.0.1/a/../b\n", "upstream.url"),
        (
            "  url: http://127.0.0.1\n  host_header: \"a\\nb\"\n",
            "upstream.host_header",
        ),
        (
            "  url: http://127.0.0.1\n  host_header: \"\"\n",
            "upstream.host_header",
        ),
        (
            "  url: http://127.0.0.1\n  timeout: 0s\n",
            "upstream.timeout",
        ),
        (
            "  url: http://127.0.0.1\n  connect_timeout: 2\n",
            "upstream.connect_timeout",
        ),
        (
            "  url: http://127.0.0.1\n  pool_idle_timeout: x\n",
            "upstream.pool_idle_timeout",
        ),
    ];
    for (lines, key) in upstream_cases {
        assert_eq!(err_key(&with_upstream(lines)), *key, "{lines}");
    }
}

#[test]
fn tls_key_file_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), "cert").unwrap();
    let yaml = base("tls:\n  cert_file: c.pem\n  key_file: k.pem\n");
    let err = Config::from_yaml_str_with(&yaml, dir.path(), &env).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "tls.key_file"),
        "{err}"
    );
}

#[test]
fn listeners_on_port_zero_may_be_equal() {
    let c = load_ok(&format!(
        "admin_listen: 127.0.0.1:0\n{}",
        base("").replace("4180", "0")
    ));
    assert_eq!(c.listen, c.admin_listen);
}

#[test]
fn public_url_origin_keeps_only_a_non_default_port() {
    let c = load_ok(&base("public_url: http://Example.COM:8080\n"));
    let public = c.public_url.unwrap();
    assert_eq!(public.origin, "http://example.com:8080");
    assert!(!public.https);
    let c = load_ok(&base("public_url: http://example.com:80/\n"));
    assert_eq!(c.public_url.unwrap().origin, "http://example.com");
}

#[test]
fn rule_under_the_session_api_warns() {
    let yaml = base(
        "access:\n  rules:\n    - path: /session\n    - path: /session/x/\n    \
         - path: /sessions\n    - path: /\n",
    );
    let c = load_ok(&yaml);
    let warned: Vec<_> = c
        .warnings
        .iter()
        .filter(|w| w.starts_with("access.rules"))
        .collect();
    assert_eq!(warned.len(), 2, "{warned:?}");
    assert!(warned[0].starts_with("access.rules[0]"));
    assert!(warned[1].starts_with("access.rules[1]"));
    assert_eq!(c.access.rules()[3].path, PathPattern::Prefix("/".into()));
}

#[test]
fn forward_auth_is_on_by_default_and_its_subtree_warns_like_the_session_api() {
    let c = load_ok(&base(""));
    assert_eq!(
        c.forward_auth.served_path(),
        Some(DEFAULT_FORWARD_AUTH_PATH)
    );
    let c = load_ok(&base(
        "forward_auth:\n  path: /_auth/verify\naccess:\n  rules:\n    - path: /_auth/\n    \
         - path: /_Auth/verify/x\n    - path: /_auth/verifyx\n",
    ));
    assert_eq!(c.forward_auth.served_path(), Some("/_auth/verify"));
    let warned: Vec<_> = c
        .warnings
        .iter()
        .filter(|w| w.contains("answers itself"))
        .collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].starts_with("access.rules[1]") && warned[0].contains("forward_auth.path"));
    // Off, the path is an ordinary one: no overlap to refuse, no rule to warn about.
    let c = load_ok(&base(
        "forward_auth:\n  enabled: false\n  path: /session/auth\naccess:\n  rules:\n    \
         - path: /.portcullis/\n",
    ));
    assert_eq!(c.forward_auth.served_path(), None);
    assert!(c.warnings.iter().all(|w| !w.contains("answers itself")));
}

#[test]
fn paths_options_default_to_reject_and_accept_preserve() {
    use crate::access::{PathOptions, PathPolicy};
    assert_eq!(load_ok(&base("")).paths, PathOptions::default());
    let c = load_ok(&base(
        "paths:\n  encoded_slash: preserve\n  encoded_percent: reject\n  semicolon: preserve\n",
    ));
    assert_eq!(c.paths.encoded_slash, PathPolicy::Preserve);
    assert_eq!(c.paths.encoded_percent, PathPolicy::Reject);
    assert_eq!(c.paths.semicolon, PathPolicy::Preserve);
    for key in ["encoded_slash", "encoded_percent", "semicolon"] {
        let yaml = base(&format!("paths:\n  {key}: decode\n"));
        assert_eq!(err_key(&yaml), format!("paths.{key}"));
    }
    let err = load(&base("paths:\n  encoded_slashes: preserve\n")).unwrap_err();
    assert!(err.to_string().contains("encoded_slashes"), "{err}");
}

#[test]
fn shadowed_rules_warn_naming_both() {
    let c = load_ok(&base(
        "access:\n  rules:\n    - path: /api/\n      methods: [GET]\n    - path: /api/admin/\n      roles: [admin]\n    - path: /public/\n      allow: anonymous\n    - path: /public\n      allow: anonymous\n    - path: /apis/\n      allow: anonymous\n",
    ));
    let shadowed: Vec<&String> = c
        .warnings
        .iter()
        .filter(|w| w.contains("never reached"))
        .collect();
    assert_eq!(shadowed.len(), 2, "{:?}", c.warnings);
    assert!(shadowed[0].starts_with("access.rules[1]") && shadowed[0].contains("access.rules[0]"));
    assert!(shadowed[1].starts_with("access.rules[3]") && shadowed[1].contains("access.rules[2]"));
    let c = load_ok(&base(
        "access:\n  rules:\n    - path: /public/\n      allow: anonymous\n    - path: /admin/\n      roles: [admin]\n",
    ));
    assert!(!c.warnings.iter().any(|w| w.contains("never reached")));
}

#[test]
fn workers_is_auto_by_default_a_count_otherwise() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(load_ok(&base("")).server.workers, cpus);
    assert_eq!(load_ok(&base("workers: auto\n")).server.workers, cpus);
    assert_eq!(load_ok(&base("workers: 3\n")).server.workers, 3);
    assert_eq!(load_ok(&base("workers: 1024\n")).server.workers, 1024);
    for bad in ["0", "-1", "two", "1.5", "1025"] {
        assert_eq!(
            err_key(&base(&format!("workers: \"{bad}\"\n"))),
            "workers",
            "{bad}"
        );
    }
}
