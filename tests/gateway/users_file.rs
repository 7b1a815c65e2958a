//! `users_file`: changed while the real binary runs (new users log in within 2 s, removed users
//! and their sessions are refused, a broken file keeps the old users), and bcrypt htpasswd files
//! made by Apache's own `htpasswd` tool.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::binary::check_config;
use crate::support::{
    config_yaml, config_yaml_with, free_port, login, Binary, Client, ConfigOptions, Gateway, Store,
    Upstream,
};

const FILED_PW: &str = "filed-user-password-1";
const NEWBIE_PW: &str = "newbie-user-password-1";

fn entry(name: &str, password: &str, roles: &str) -> String {
    let hash = portcullis::identity::hash_password(password);
    format!("- username: {name}\n  password_hash: \"{hash}\"\n  roles: [{roles}]\n")
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

/// Replace `path`'s content the way editors and `kubectl` do: a new file renamed over it.
fn replace(path: &Path, content: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, content).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// Wait until `stderr` of `gateway` has `count` lines containing `needle`, for at most 5 s.
async fn wait_for_log(gateway: &Binary, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while gateway.stderr().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "no `{needle}` in the log after 5 s:\n{}",
            gateway.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_changed_users_file_takes_effect_within_two_seconds_and_a_broken_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.yaml");
    std::fs::write(&users, entry("filed", FILED_PW, "reader")).unwrap();
    let upstream = Upstream::start().await;
    let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // The polling logins below fail until the change lands: keep regulation out of the way.
    let extra = format!(
        "users_file: \"{}\"\nregulation:\n  per_user_and_address:\n    max_retries: 1000\n  per_user:\n    max_retries: 1000\n  per_address:\n    max_retries: 1000\n",
        users.display()
    );
    let options = ConfigOptions {
        listen: Some(proxy),
        admin_listen: Some(admin),
        extra: &extra,
        ..ConfigOptions::default()
    };
    let mut gateway = Binary::run(
        &config_yaml_with(upstream.addr, Store::Memory, &options),
        &[],
    );
    gateway.wait_listening(admin).await;
    gateway.wait_listening(proxy).await;
    let mut filed = Client::new(proxy);
    login(&mut filed, "filed", FILED_PW).await;
    assert_eq!(filed.get("/api/x").await.status, 200);
    assert_eq!(login_status(proxy, "newbie", NEWBIE_PW).await, 401);

    // `filed` removed, `newbie` added.
    replace(&users, &entry("newbie", NEWBIE_PW, "reader"));
    let changed = Instant::now();
    while login_status(proxy, "newbie", NEWBIE_PW).await != 201 {
        assert!(
            changed.elapsed() < Duration::from_secs(5),
            "the new user cannot log in 5 s later:\n{}",
            gateway.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = changed.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(
        filed.get("/api/x").await.status,
        401,
        "the removed user's session"
    );
    assert_eq!(login_status(proxy, "filed", FILED_PW).await, 401);
    assert!(gateway.stderr().contains("users_file changed"));

    // Broken twice over: not YAML, then a hash of an unknown scheme. Each is logged with why,
    // and `newbie` (the last good file) keeps working.
    replace(&users, "- username: [not, closed\n");
    wait_for_log(&gateway, "config reload failed", 1).await;
    assert!(
        gateway.stderr().contains("users_file"),
        "{}",
        gateway.stderr()
    );
    replace(&users, "newbie:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n");
    wait_for_log(&gateway, "config reload failed", 2).await;
    let log = gateway.stderr();
    assert!(
        log.contains("user `newbie`") && log.contains("unknown hash scheme"),
        "{log}"
    );
    assert!(!log.contains("GpHWL3"), "the hash stays out of the log");
    assert_eq!(login_status(proxy, "newbie", NEWBIE_PW).await, 201);
    assert_eq!(login_status(proxy, "filed", FILED_PW).await, 401);

    // A good file again, and SIGHUP reads it too.
    replace(&users, &entry("filed", FILED_PW, "reader"));
    gateway.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while login_status(proxy, "filed", FILED_PW).await != 201 {
        assert!(Instant::now() < deadline, "{}", gateway.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gateway.signal("-TERM");
    assert!(gateway.wait_exit(Duration::from_secs(10)).await.success());
}

/// Run Apache's `htpasswd` with `args`; a missing tool fails the test with how to get it.
fn htpasswd(args: &[&str]) {
    let output = Command::new("htpasswd")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run htpasswd ({e}): install it from the OS packages (apache2-utils on \
             Debian/Ubuntu, httpd-tools on Fedora, httpd on Homebrew); tests/run.sh does"
            )
        });
    assert!(
        output.status.success(),
        "htpasswd {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn an_htpasswd_bcrypt_file_logs_in() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    let path = file.to_str().unwrap();
    htpasswd(&["-c", "-B", "-b", path, "alice", "correct horse battery"]);
    htpasswd(&["-B", "-C", "10", "-b", path, "bob", "tr0ub4dor&3"]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("alice:$2y$05$") && text.contains("bob:$2y$10$"),
        "{text}"
    );

    let upstream = Upstream::start().await;
    let extra = format!("users_file: \"{path}\"\n");
    let gateway = Gateway::start(&config_yaml(upstream.addr, Store::Memory, &extra)).await;
    let mut alice = gateway.client();
    login(&mut alice, "alice", "correct horse battery").await;
    let reply = alice.get("/api/x").await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    assert_eq!(seen.header("x-auth-user"), Some("alice"));
    assert_eq!(
        seen.header("x-auth-roles"),
        Some(""),
        "htpasswd users have no roles"
    );
    login(&mut gateway.client(), "bob", "tr0ub4dor&3").await;
    for (user, password) in [("alice", "correct horse batterz"), ("nobody", "x")] {
        assert_eq!(
            login_status(gateway.addr, user, password).await,
            401,
            "{user}"
        );
    }
}

/// `--check-config` on a loopback config whose only users come from `users_file`.
fn check_config_with_users(users_file: &str) -> std::process::Output {
    check_config(
        &format!(
            "listen: \"127.0.0.1:4180\"\nupstream:\n  url: \"http://127.0.0.1:3000\"\nsession:\n  store: memory\nusers_file: \"{users_file}\"\n"
        ),
        &[],
    )
}

#[test]
fn check_config_names_unknown_schemes_and_weak_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    let path = file.to_str().unwrap();
    htpasswd(&["-c", "-B", "-C", "5", "-b", path, "alice", "pw-a"]);
    let output = check_config_with_users(path);
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "warning: users_file[0].password_hash: user `alice`: bcrypt cost 5 is below the \
             recommended 10"
        ),
        "{stderr}"
    );
    // SHA-1, as `htpasswd -s` writes: refused, naming the user.
    htpasswd(&["-s", "-b", path, "bob", "pw-b"]);
    let output = check_config_with_users(path);
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("users_file[1].password_hash") && stderr.contains("user `bob`"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown hash scheme"), "{stderr}");
}
