//! Config reload: users, access rules and session secrets change without a restart; a broken
//! file changes nothing. In process through `AppState::reload`, and with SIGHUP on the real
//! binary.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use portcullis::config::Config;

use crate::support::{
    self, config_yaml_with, free_port, login, Binary, Client, ConfigOptions, Store, Upstream,
    ADMIN_PW, RULES_R, SECRET_1, SECRET_2, USER_PW,
};

/// The fixture without `user`, with `/public/` no longer anonymous, and K2 signing before K1.
fn changed(yaml: &str) -> String {
    let (user_hash, _, _) = support::hashes();
    let without_user =
        format!("  - username: user\n    password_hash: \"{user_hash}\"\n    roles: [reader]\n");
    assert!(yaml.contains(&without_user));
    yaml.replace(&without_user, "")
        .replace(
            RULES_R,
            "access:\n  default: authenticated\n  rules:\n    - path: /admin/\n      roles: [admin]\n",
        )
        .replace(
            &format!("secrets: [\"{SECRET_1}\"]"),
            &format!("secrets: [\"{SECRET_2}\", \"{SECRET_1}\"]"),
        )
}

#[tokio::test]
async fn a_reload_replaces_users_rules_and_secrets_and_keeps_other_sessions() {
    let upstream = Upstream::start().await;
    let yaml = config_yaml_with(upstream.addr, Store::Memory, &ConfigOptions::default());
    let gateway = support::Gateway::start(&yaml).await;
    let mut user = gateway.client();
    login(&mut user, "user", USER_PW).await;
    let mut admin = gateway.client();
    let admin_k1 = login(&mut admin, "admin", ADMIN_PW).await;
    assert_eq!(gateway.client().get("/public/a").await.status, 200);
    upstream.clear();

    gateway
        .state
        .reload(&Config::from_yaml_str(&changed(&yaml)).unwrap());

    // The removed user's session ends, and the user can no longer log in.
    assert_eq!(user.get("/api/x").await.status, 401);
    let reply = gateway
        .client()
        .post_json(
            "/session",
            &serde_json::json!({ "username": "user", "password": USER_PW }),
        )
        .await;
    assert_eq!(reply.status, 401);
    // The new rules: /public/ needs a session now.
    assert_eq!(gateway.client().get("/public/a").await.status, 401);
    assert!(upstream.is_untouched());
    // A cookie signed with K1 still verifies; a new login is signed with K2.
    assert_eq!(admin.get("/api/x").await.status, 200);
    let mut again = gateway.client();
    let admin_k2 = login(&mut again, "admin", ADMIN_PW).await;
    assert_ne!(admin_k1, admin_k2);
    let k1_only = portcullis::session::CookieSigner::new(&[portcullis::config::Secret::new(
        SECRET_1.as_bytes().to_vec(),
    )]);
    assert!(
        k1_only.verify(admin_k2.as_bytes()).is_none(),
        "signed with K2"
    );
    assert_eq!(again.get("/public/a").await.status, 200);
}

#[tokio::test]
async fn a_reload_keeps_a_generated_secret() {
    let upstream = Upstream::start().await;
    let yaml = config_yaml_with(upstream.addr, Store::Memory, &ConfigOptions::default())
        .replace(&format!("  secrets: [\"{SECRET_1}\"]\n"), "");
    let gateway = support::Gateway::start(&yaml).await;
    let mut admin = gateway.client();
    login(&mut admin, "admin", ADMIN_PW).await;
    gateway.state.reload(&Config::from_yaml_str(&yaml).unwrap());
    assert_eq!(admin.get("/api/x").await.status, 200);
}

async fn login_status(addr: SocketAddr, user: &str, password: &str) -> u16 {
    Client::new(addr)
        .post_json(
            "/session",
            &serde_json::json!({ "username": user, "password": password }),
        )
        .await
        .status
}

#[tokio::test]
async fn sighup_reloads_the_file_and_a_broken_file_keeps_the_running_config() {
    let upstream = Upstream::start().await;
    let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let options = ConfigOptions {
        listen: Some(proxy),
        admin_listen: Some(admin),
        ..ConfigOptions::default()
    };
    let yaml = config_yaml_with(upstream.addr, Store::Memory, &options);
    let mut gateway = Binary::run(&yaml, &[]);
    gateway.wait_listening(admin).await;
    gateway.wait_listening(proxy).await;
    assert_eq!(login_status(proxy, "user", USER_PW).await, 201);

    std::fs::write(gateway.config_path(), changed(&yaml)).unwrap();
    gateway.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while login_status(proxy, "user", USER_PW).await != 401 {
        assert!(
            Instant::now() < deadline,
            "not reloaded after 5 s:\n{}",
            gateway.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gateway.stderr().contains("config reloaded"));

    // A broken file: logged, and the running config (the reloaded one) stays.
    std::fs::write(gateway.config_path(), "upstream: [not, a, mapping\n").unwrap();
    gateway.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gateway.stderr().contains("config reload failed") {
        assert!(Instant::now() < deadline, "{}", gateway.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(login_status(proxy, "user", USER_PW).await, 401);
    assert_eq!(login_status(proxy, "admin", ADMIN_PW).await, 201);
    let mut anon = Client::new(proxy);
    assert_eq!(anon.get("/public/a").await.status, 401);
    // Still running, and still stops cleanly.
    gateway.signal("-TERM");
    assert!(gateway.wait_exit(Duration::from_secs(10)).await.success());
}

#[tokio::test]
async fn sighup_reads_file_sources_and_the_users_file_again_and_logs_why_a_reload_fails() {
    let upstream = Upstream::start().await;
    let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let options = ConfigOptions {
        listen: Some(proxy),
        admin_listen: Some(admin),
        ..ConfigOptions::default()
    };
    let (user_hash, _, _) = support::hashes();
    let only_user =
        format!("- username: user\n  password_hash: \"{user_hash}\"\n  roles: [reader]\n");
    // The fixture's inline users go to users_file; the secret comes from a file.
    let base = config_yaml_with(upstream.addr, Store::Memory, &options);
    let users_start = base.find("users:\n").unwrap();
    let users_end = base.find(RULES_R).unwrap();
    let yaml = format!(
        "{}users_file: users.yaml\n{}",
        &base[..users_start],
        &base[users_end..]
    )
    .replace(
        &format!("secrets: [\"{SECRET_1}\"]"),
        "secrets: [\"${file:secret.txt}\"]",
    );
    let mut gateway = Binary::run_with_files(
        &yaml,
        &[
            ("users.yaml", &only_user),
            ("secret.txt", &format!("{SECRET_1}\n")),
        ],
    );
    gateway.wait_listening(admin).await;
    gateway.wait_listening(proxy).await;
    let mut user = Client::new(proxy);
    login(&mut user, "user", USER_PW).await;
    assert_eq!(login_status(proxy, "admin", ADMIN_PW).await, 401);

    // New secret file (K2 only) and a second user in the users file.
    let (_, admin_hash, _) = support::hashes();
    let dir = gateway.config_path().parent().unwrap().to_owned();
    std::fs::write(dir.join("secret.txt"), format!("{SECRET_2}\n")).unwrap();
    std::fs::write(
        dir.join("users.yaml"),
        format!("{only_user}- username: admin\n  password_hash: \"{admin_hash}\"\n  roles: [reader, admin]\n"),
    )
    .unwrap();
    gateway.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while login_status(proxy, "admin", ADMIN_PW).await != 201 {
        assert!(Instant::now() < deadline, "{}", gateway.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The old cookie was signed with the secret that is gone.
    assert_eq!(user.get("/api/x").await.status, 401);
    let mut again = Client::new(proxy);
    login(&mut again, "user", USER_PW).await;
    assert_eq!(again.get("/api/x").await.status, 200);

    // A file source that is now too short: refused, and the log names the key.
    std::fs::write(dir.join("secret.txt"), "short\n").unwrap();
    gateway.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gateway.stderr().contains("config reload failed") {
        assert!(Instant::now() < deadline, "{}", gateway.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = gateway.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("config reload failed"))
        .unwrap();
    assert!(line.contains("session.secrets"), "{line}");
    assert!(!log.contains(SECRET_2) && !log.contains("short"), "{log}");
    assert_eq!(again.get("/api/x").await.status, 200);
}
