//! `identity.sources`, `identity.upstream_check`, the extra `identity_headers` and the hash
//! schemes of users entries (`users_file` in htpasswd form included).

use super::*;
use crate::identity::Source;

const BCRYPT_5: &str = "$2y$05$KrGrFvbmGGVy0BVsFcXPpOeNtTU2YPqsIS2sUVdrPJc7X50qYwXui";

fn check(lines: &str) -> String {
    base(&format!(
        "identity:\n  upstream_check:\n    url: http://127.0.0.1:3000/auth/check\n{lines}"
    ))
}

#[test]
fn upstream_check_gets_its_defaults_and_joins_the_sources() {
    let c = load_ok(&check(""));
    let upstream_check = c.identity.upstream_check.as_ref().unwrap();
    assert_eq!(upstream_check.url, "http://127.0.0.1:3000/auth/check");
    assert_eq!(upstream_check.timeout, Duration::from_secs(5));
    assert_eq!(upstream_check.max_session_age, Duration::from_secs(3600));
    assert_eq!(
        (
            upstream_check.user_field.as_str(),
            upstream_check.roles_field.as_str()
        ),
        ("user", "roles")
    );
    assert!(upstream_check.headers.is_empty());
    assert_eq!(c.identity.sources, [Source::Local, Source::UpstreamCheck]);
    assert_eq!(load_ok(&base("")).identity.sources, [Source::Local]);
    // Same origin as upstream.url: its path is denied on the proxy listener.
    assert_eq!(c.denied_paths.rules().len(), 1);
    assert!(load_ok(&base("")).denied_paths.rules().is_empty());
}

#[test]
fn upstream_check_headers_are_sensitive_and_never_quoted() {
    let c = load_ok(&check(
        "    headers:\n      X-Check-Secret: \"${SECRET}\"\n    user_field: login\n    roles_field: groups\n    timeout: 800ms\n    max_session_age: 10m\n",
    ));
    let upstream_check = c.identity.upstream_check.unwrap();
    let value = &upstream_check.headers["x-check-secret"];
    assert!(value.is_sensitive());
    assert!(!format!("{upstream_check:?}").contains("from-env"));
    assert_eq!(upstream_check.timeout, Duration::from_millis(800));
    assert_eq!(upstream_check.max_session_age, Duration::from_secs(600));
    assert_eq!(upstream_check.user_field, "login");
    let message = err_message(&check("    headers:\n      X-Bad: \"secret\\nvalue\"\n"));
    assert!(!message.contains("secret"), "{message}");
}

#[test]
fn upstream_check_and_sources_values_name_their_key() {
    let cases = [
        (
            check("    timeout: 0s\n"),
            "identity.upstream_check.timeout",
        ),
        (
            check("    max_session_age: soon\n"),
            "identity.upstream_check.max_session_age",
        ),
        (
            check("    headers:\n      Content-Type: text/plain\n"),
            "identity.upstream_check.headers.Content-Type",
        ),
        (
            check("    headers:\n      \"a b\": x\n"),
            "identity.upstream_check.headers.a b",
        ),
        (
            check("    user_field: \"\"\n"),
            "identity.upstream_check.user_field",
        ),
        (
            check("    roles_field: user\n"),
            "identity.upstream_check.roles_field",
        ),
        (
            check("  sources: [upstream_check, local]\n"),
            "identity.sources[1]",
        ),
        (check("  sources: [local, ldap]\n"), "identity.sources[1]"),
        (
            base("identity:\n  sources: [upstream_check]\n"),
            "identity.sources[0]",
        ),
        (base("identity:\n  sources: []\n"), "identity.sources"),
        (
            base("identity:\n  upstream_check:\n    url: https://127.0.0.1/check\n"),
            "identity.upstream_check.url",
        ),
        (
            base("identity:\n  upstream_check:\n    url: http://127.0.0.1/a%20b\n"),
            "identity.upstream_check.url",
        ),
    ];
    for (yaml, key) in cases {
        assert_eq!(err_key(&yaml), key, "{yaml}");
    }
}

#[test]
fn unused_or_exposed_sources_warn() {
    let c = load_ok(&check("  sources: [local]\n"));
    assert!(c
        .warnings
        .iter()
        .any(|w| w.starts_with("identity.upstream_check:")));
    let c = load_ok(&base(&format!(
        "identity:\n  upstream_check:\n    url: http://10.1.2.3/check\n  sources: [upstream_check]\nusers:\n{}",
        user_yaml("alice", DEMO_HASH)
    )));
    assert!(c
        .warnings
        .iter()
        .any(|w| w.starts_with("identity.upstream_check.url:")));
    assert!(c
        .warnings
        .iter()
        .any(|w| w.starts_with("identity.sources:")));
    assert!(
        c.denied_paths.rules().is_empty(),
        "another host than upstream.url"
    );
}

fn assertion(lines: &str) -> String {
    base(&format!(
        "session:\n  store: memory\n  secrets: [\"{SECRET_32}\"]\nidentity_headers:\n  assertion:\n{lines}"
    ))
}

#[test]
fn assertion_hs256_takes_its_secret_from_the_environment() {
    let c = load_ok(&assertion(
        "    algorithm: HS256\n    secret: \"${SECRET}\"\n    audience: orders\n",
    ));
    let a = c.identity_headers.assertion.as_ref().unwrap();
    assert_eq!(a.header, "x-auth-assertion");
    assert_eq!(
        (a.issuer.as_str(), a.audience.as_str()),
        ("portcullis", "orders")
    );
    assert!(a.signer.jwks().is_none());
    assert!(!format!("{c:?}").contains("from-env"));
    assert!(c.identity_headers.names().contains(&&a.header));
}

#[test]
fn assertion_eddsa_reads_a_pkcs8_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    std::fs::write(dir.path().join("ed.pem"), key.serialize_pem()).unwrap();
    let yaml = assertion(
        "    algorithm: EdDSA\n    key_file: ed.pem\n    audience: orders\n    issuer: https://gw.example.test\n    kid: k1\n    header: X-Identity\n",
    );
    let c = Config::from_yaml_str_with(&yaml, dir.path(), &env).unwrap();
    let a = c.identity_headers.assertion.unwrap();
    assert_eq!(a.header, "x-identity");
    assert_eq!(a.signer.kid(), "k1");
    assert_eq!(a.signer.jwks().unwrap()["keys"][0]["kid"], "k1");
}

#[test]
fn assertion_values_name_their_key() {
    let cases = [
        ("    algorithm: RS256\n    audience: a\n", "identity_headers.assertion.algorithm"),
        ("    algorithm: HS256\n    audience: a\n", "identity_headers.assertion.secret"),
        (
            "    algorithm: HS256\n    secret: short\n    audience: a\n",
            "identity_headers.assertion.secret",
        ),
        (
            "    algorithm: HS256\n    secret: \"0123456789abcdef0123456789abcdef\"\n    audience: a\n",
            "identity_headers.assertion.secret",
        ),
        (
            "    algorithm: HS256\n    secret: \"${SECRET}\"\n    key_file: k.pem\n    audience: a\n",
            "identity_headers.assertion.key_file",
        ),
        ("    algorithm: EdDSA\n    audience: a\n", "identity_headers.assertion.key_file"),
        (
            "    algorithm: EdDSA\n    key_file: /nonexistent/k.pem\n    audience: a\n",
            "identity_headers.assertion.key_file",
        ),
        (
            "    algorithm: HS256\n    secret: \"${SECRET}\"\n    audience: \"\"\n",
            "identity_headers.assertion.audience",
        ),
        (
            "    algorithm: HS256\n    secret: \"${SECRET}\"\n    audience: a\n    header: X-Auth-User\n",
            "identity_headers.assertion.header",
        ),
    ];
    for (lines, key) in cases {
        assert_eq!(err_key(&assertion(lines)), key, "{lines}");
    }
    // The audience is required.
    assert!(matches!(
        load(&assertion(
            "    algorithm: HS256\n    secret: \"${SECRET}\"\n"
        )),
        Err(ConfigError::Syntax(_))
    ));
    assert!(!err_message(&assertion(
        "    algorithm: HS256\n    secret: \"0123456789abcdef0123456789abcdef\"\n    audience: a\n"
    ))
    .contains("0123456789"));
}

#[test]
fn display_name_and_email_headers_are_optional_and_distinct() {
    let c = load_ok(&base(
        "identity_headers:\n  display_name: X-Auth-Name\n  email: X-Auth-Email\n",
    ));
    let ids = &c.identity_headers;
    assert_eq!(ids.display_name.as_ref().unwrap(), "x-auth-name");
    assert_eq!(ids.email.as_ref().unwrap(), "x-auth-email");
    assert_eq!(ids.names().len(), 4);
    assert_eq!(load_ok(&base("")).identity_headers.names().len(), 2);
    assert_eq!(
        err_key(&base("identity_headers:\n  email: X-Auth-Roles\n")),
        "identity_headers.email"
    );
}

#[test]
fn non_loopback_upstream_does_not_warn_when_asserted() {
    let yaml = |extra: &str| {
        format!(
            "listen: 127.0.0.1:4180\nupstream:\n  url: http://10.0.0.5:3000\nsession:\n  store: memory\n  secrets: [\"{SECRET_32}\"]\n{extra}"
        )
    };
    let warned = |c: &Config| c.warnings.iter().any(|w| w.starts_with("upstream.url"));
    assert!(warned(&load_ok(&yaml(""))));
    let asserted = "identity_headers:\n  assertion:\n    algorithm: HS256\n    secret: \"${SECRET}\"\n    audience: a\n";
    assert!(!warned(&load_ok(&yaml(asserted))));
}

#[test]
fn bcrypt_hashes_and_htpasswd_files_are_users() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("htpasswd"),
        format!("# htpasswd -B\nalice:{BCRYPT_5}\nbob:{DEMO_HASH}\n"),
    )
    .unwrap();
    let c = Config::from_yaml_str_with(&base("users_file: htpasswd\n"), dir.path(), &env).unwrap();
    let names: Vec<_> = c.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(c.users.iter().all(|u| u.roles.is_empty() && !u.disabled));
    assert_eq!(
        c.users_file.as_deref(),
        Some(dir.path().join("htpasswd").as_path())
    );
    // Cost 5 is below the advice: a warning naming the user, not an error.
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("users_file[0].password_hash: user `alice`: bcrypt cost 5")),
        "{:?}",
        c.warnings
    );
    std::fs::write(
        dir.path().join("htpasswd"),
        "carol:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n",
    )
    .unwrap();
    let err = Config::from_yaml_str_with(&base("users_file: htpasswd\n"), dir.path(), &env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("users_file[0].password_hash")
            && err.contains("user `carol`: unknown hash scheme"),
        "{err}"
    );
    assert!(!err.contains("GpHWL3"), "{err}");
}

#[test]
fn weak_argon2_parameters_warn_and_strong_ones_do_not() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let weak = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(4096, 1, 1, None).unwrap(),
    )
    .hash_password(b"pw", &SaltString::encode_b64(b"0123456789abcdef").unwrap())
    .unwrap()
    .to_string();
    let c = load_ok(&base(&format!(
        "users:\n{}{}",
        user_yaml("weak", &weak),
        user_yaml("strong", DEMO_HASH)
    )));
    let advice: Vec<_> = c.warnings.iter().filter(|w| w.contains("rehash")).collect();
    assert_eq!(advice.len(), 1, "{advice:?}");
    assert!(
        advice[0].starts_with("users[0].password_hash: user `weak`: argon2 parameters m=4096,t=1")
    );
}

#[test]
fn user_profiles_must_fit_a_header() {
    let entry = |extra: &str| base(&format!("users:\n{}{extra}", user_yaml("a", DEMO_HASH)));
    assert!(load(&entry(
        "    display_name: \"José Núñez\"\n    email: a@example.com\n"
    ))
    .is_ok());
    assert_eq!(
        err_key(&entry("    email: \"a b@example.com\"\n")),
        "users[0].email"
    );
    assert_eq!(
        err_key(&entry("    display_name: \"a\\nb\"\n")),
        "users[0].display_name"
    );
}
