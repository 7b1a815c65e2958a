//! The `tls` block (client certificates, reload interval) and an `https://` upstream's trust.

use super::*;

/// A temp dir holding `c.pem`, `k.pem` (contents irrelevant: only checked to exist) and a real
/// CA certificate as `ca.pem`.
fn tls_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), "cert").unwrap();
    std::fs::write(dir.path().join("k.pem"), "key").unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_owned()]).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.cert.pem()).unwrap();
    dir
}

fn load_in(dir: &tempfile::TempDir, yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml_str_with(yaml, dir.path(), &env)
}

fn key_in(dir: &tempfile::TempDir, yaml: &str) -> String {
    match load_in(dir, yaml) {
        Err(ConfigError::Invalid { key, .. }) => key,
        Err(other) => panic!("expected an Invalid error, got {other}\n{yaml}"),
        Ok(_) => panic!("expected an error\n{yaml}"),
    }
}

fn tls_block(lines: &str) -> String {
    base(&format!(
        "tls:\n  cert_file: c.pem\n  key_file: k.pem\n{lines}"
    ))
}

#[test]
fn tls_defaults_to_no_client_auth_and_a_one_second_reload_poll() {
    let dir = tls_dir();
    let tls = load_in(&dir, &tls_block("")).unwrap().tls.unwrap();
    assert_eq!(tls.client_auth, None);
    assert_eq!(tls.reload_interval, Some(DEFAULT_TLS_RELOAD_INTERVAL));
    assert_eq!(tls.reload_interval, Some(Duration::from_secs(1)));

    let tls = load_in(&dir, &tls_block("  reload_interval: 0s\n"))
        .unwrap()
        .tls
        .unwrap();
    assert_eq!(tls.reload_interval, None, "0s: only SIGHUP reloads");
    let tls = load_in(&dir, &tls_block("  reload_interval: 250ms\n"))
        .unwrap()
        .tls
        .unwrap();
    assert_eq!(tls.reload_interval, Some(Duration::from_millis(250)));
    assert_eq!(
        key_in(&dir, &tls_block("  reload_interval: soon\n")),
        "tls.reload_interval"
    );
}

#[test]
fn client_ca_file_requires_client_certificates_unless_optional() {
    let dir = tls_dir();
    let tls = load_in(&dir, &tls_block("  client_ca_file: ca.pem\n"))
        .unwrap()
        .tls
        .unwrap();
    let auth = tls.client_auth.unwrap();
    assert_eq!(auth.ca_file, dir.path().join("ca.pem"));
    assert_eq!(auth.mode, ClientAuthMode::Required);

    for (word, mode) in [
        ("required", ClientAuthMode::Required),
        ("optional", ClientAuthMode::Optional),
    ] {
        let yaml = tls_block(&format!(
            "  client_ca_file: ca.pem\n  client_auth: {word}\n"
        ));
        let auth = load_in(&dir, &yaml)
            .unwrap()
            .tls
            .unwrap()
            .client_auth
            .unwrap();
        assert_eq!(auth.mode, mode, "{word}");
    }
}

#[test]
fn client_auth_errors_name_their_key() {
    let dir = tls_dir();
    for (lines, key) in [
        ("  client_auth: required\n", "tls.client_auth"),
        ("  client_auth: optional\n", "tls.client_auth"),
        (
            "  client_ca_file: ca.pem\n  client_auth: request\n",
            "tls.client_auth",
        ),
        (
            "  client_ca_file: ca.pem\n  client_auth: \"\"\n",
            "tls.client_auth",
        ),
        ("  client_ca_file: missing.pem\n", "tls.client_ca_file"),
        ("  client_ca_file: \"\"\n", "tls.client_ca_file"),
    ] {
        assert_eq!(key_in(&dir, &tls_block(lines)), key, "{lines}");
    }
    let message = load_in(&dir, &tls_block("  client_auth: required\n"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("tls.client_ca_file"), "{message}");
}

#[test]
fn an_https_upstream_is_kept_as_https_and_trusts_the_webpki_roots_by_default() {
    let c = load_ok(&with_upstream("  url: https://api.internal:8443/v1/\n"));
    assert_eq!(c.upstream.url, "https://api.internal:8443/v1");
    assert!(matches!(c.upstream.trust, UpstreamTrust::WebpkiRoots));
    assert_eq!(c.upstream.tls_server_name, None);
    let c = load_ok(&with_upstream("  url: HTTPS://127.0.0.1:8443\n"));
    assert_eq!(c.upstream.url.scheme_str(), Some("https"));
}

#[test]
fn upstream_ca_file_is_read_and_parsed_at_load() {
    let dir = tls_dir();
    let yaml = with_upstream("  url: https://127.0.0.1:8443\n  ca_file: ca.pem\n");
    let c = load_in(&dir, &yaml).unwrap();
    match &c.upstream.trust {
        UpstreamTrust::CaFile { path, roots } => {
            assert_eq!(path, &dir.path().join("ca.pem"));
            assert_eq!(roots.len(), 1);
        }
        other => panic!("expected the CA file, got {other:?}"),
    }

    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    std::fs::write(
        dir.path().join("junk.pem"),
        "-----BEGIN CERTIFICATE-----\n!!\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("notder.pem"),
        "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for file in [
        "missing.pem",
        "empty.pem",
        "junk.pem",
        "notder.pem",
        "k.pem",
    ] {
        let yaml = with_upstream(&format!(
            "  url: https://127.0.0.1:8443\n  ca_file: {file}\n"
        ));
        assert_eq!(key_in(&dir, &yaml), "upstream.ca_file", "{file}");
    }
}

#[test]
fn upstream_tls_keys_need_an_https_url_and_a_valid_name() {
    let dir = tls_dir();
    for (lines, key) in [
        (
            "  url: http://127.0.0.1:1\n  ca_file: ca.pem\n",
            "upstream.ca_file",
        ),
        (
            "  url: http://127.0.0.1:1\n  tls_server_name: api.internal\n",
            "upstream.tls_server_name",
        ),
        (
            "  url: https://127.0.0.1:1\n  tls_server_name: \"not a name\"\n",
            "upstream.tls_server_name",
        ),
        (
            "  url: https://127.0.0.1:1\n  tls_server_name: \"\"\n",
            "upstream.tls_server_name",
        ),
    ] {
        assert_eq!(key_in(&dir, &with_upstream(lines)), key, "{lines}");
    }
    let c = load_ok(&with_upstream(
        "  url: https://127.0.0.1:8443\n  tls_server_name: api.internal\n",
    ));
    assert_eq!(
        c.upstream.tls_server_name,
        Some(ServerName::try_from("api.internal").unwrap())
    );
}
