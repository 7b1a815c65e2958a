//! Redis over TLS with ACL credentials: `rediss://` checked against `session.redis_ca_file`,
//! `session.redis_username` / `session.redis_password` from the environment, and none of it in
//! the log.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{
    self, config_yaml_with, free_port, Binary, Client, ConfigOptions, RedisServer, Store, TestCert,
    Upstream, USER_PW,
};

const ACL_PASSWORD: &str = "acl-password-for-the-gateway-7f3a";

#[tokio::test]
async fn rediss_with_a_ca_file_and_acl_credentials_from_the_environment_works_and_logs_neither() {
    let cert = TestCert::generate();
    let tls_port = free_port().to_string();
    let (cert_file, key_file) = (
        cert.cert_file.display().to_string(),
        cert.key_file.display().to_string(),
    );
    // The plain port is the harness's (as the default user); the gateway gets only the TLS
    // port, and only as an ACL user limited to its own keys.
    let redis = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert_file,
        "--tls-key-file",
        &key_file,
        "--tls-ca-cert-file",
        &cert_file,
        "--tls-auth-clients",
        "no",
        "--user",
        "portcullis",
        "on",
        &format!(">{ACL_PASSWORD}"),
        "~portcullis:*",
        "+@all",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    let upstream = Upstream::start().await;
    let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let lines = format!(
        "  redis_url: \"rediss://localhost:{tls_port}/0\"\n  redis_username: portcullis\n  redis_password: \"${{REDIS_PASSWORD}}\"\n  redis_ca_file: \"{cert_file}\"\n"
    );
    let yaml = config_yaml_with(
        upstream.addr,
        Store::RedisWith(&lines),
        &ConfigOptions {
            listen: Some(proxy),
            admin_listen: Some(admin),
            ..ConfigOptions::default()
        },
    );
    let mut gateway = Binary::run(
        &yaml,
        &[("RUST_LOG", "debug"), ("REDIS_PASSWORD", ACL_PASSWORD)],
    );
    gateway.wait_listening(admin).await;
    gateway.wait_listening(proxy).await;

    let mut client = Client::new(proxy);
    let sid = support::login(&mut client, "user", USER_PW).await;
    assert_eq!(client.get("/api/x").await.status, 200);
    assert_eq!(upstream.only().header("x-auth-user"), Some("user"));
    let clients: String = redis.cmd(&["CLIENT", "LIST"]);
    assert!(
        clients.lines().any(|l| l.contains("user=portcullis")),
        "the gateway is connected as its ACL user: {clients}"
    );
    assert_eq!(
        support::only_session_key(&redis).len(),
        "portcullis:s:".len() + 64
    );
    assert_eq!(client.delete("/session").await.status, 204);
    assert!(
        !redis.keys().iter().any(|k| k.starts_with("portcullis:s:")),
        "logout deleted the record over TLS"
    );

    gateway.signal("-TERM");
    let status = gateway.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    let log = gateway.stderr();
    assert!(log.contains("SIGTERM"), "the log was captured: {log}");
    for secret in [ACL_PASSWORD, sid.as_str()] {
        assert!(!log.contains(secret), "the log contains `{secret}`:\n{log}");
    }
}

#[tokio::test]
async fn rediss_against_a_server_the_ca_file_does_not_vouch_for_is_503_never_a_pass() {
    let cert = TestCert::generate();
    let other_ca = TestCert::generate();
    let tls_port = free_port().to_string();
    let (cert_file, key_file) = (
        cert.cert_file.display().to_string(),
        cert.key_file.display().to_string(),
    );
    let _redis = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert_file,
        "--tls-key-file",
        &key_file,
        "--tls-ca-cert-file",
        &cert_file,
        "--tls-auth-clients",
        "no",
        "--save",
        "",
    ]);
    let lines = format!(
        "  redis_url: \"rediss://localhost:{tls_port}/0\"\n  redis_ca_file: \"{}\"\n",
        other_ca.cert_file.display()
    );
    let (upstream, gateway) =
        support::setup_with_options(Store::RedisWith(&lines), &ConfigOptions::default()).await;
    let reply = gateway
        .client()
        .post_json(
            "/session",
            &serde_json::json!({ "username": "user", "password": USER_PW }),
        )
        .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (503, "session_store_unavailable")
    );
    let mut forged = gateway.client();
    forged.set_cookie("gw_sid", &support::unknown_signed_cookie());
    assert_eq!(forged.get("/api/x").await.status, 503);
    assert!(upstream.is_untouched());
}
