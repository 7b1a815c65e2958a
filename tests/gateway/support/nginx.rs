//! A real `nginx` in front of the gateway and the echo upstream, as the README's forward-auth
//! snippet sets it up: `auth_request` to the gateway's forward-auth endpoint on every proxied
//! location (public ones included), the identity headers overwritten from `auth_request_set`
//! variables (empty, so not sent, when there is no identity), and `/session` proxied to the
//! gateway on the same host; [`server_block`] is the README's snippet. Everything it writes (pid, logs, temp files) stays in a temp dir; it
//! runs in the foreground as the current user, on a free loopback port, and is killed on drop.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

pub struct Nginx {
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// The nginx.conf for `listen`, with the gateway at `gateway` and the upstream at `upstream`,
/// keeping every file nginx writes under `dir`.
pub fn config(listen: SocketAddr, gateway: SocketAddr, upstream: SocketAddr, dir: &Path) -> String {
    let server = server_block(
        &listen.to_string(),
        &gateway.to_string(),
        &upstream.to_string(),
    );
    let dir = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;

events {{
    worker_connections 64;
}}

http {{
access_log {dir}/access.log;
client_body_temp_path {dir}/client_body;
proxy_temp_path {dir}/proxy;
fastcgi_temp_path {dir}/fastcgi;
uwsgi_temp_path {dir}/uwsgi;
scgi_temp_path {dir}/scgi;

{server}}}
"#
    )
}

/// The `server` block, exactly as the README shows it (there with `listen 80`, the gateway at
/// `127.0.0.1:4180` and the app at `127.0.0.1:3000`).
pub fn server_block(listen: &str, gateway: &str, upstream: &str) -> String {
    format!(
        r#"server {{
    listen {listen};

    # The default, stated because it matters: a header with an underscore (X_Auth_User) is
    # dropped instead of reaching an upstream that may read it as X-Auth-User.
    underscores_in_headers off;

    # The decision. Internal: clients cannot call it through nginx.
    location = /.portcullis/auth {{
        internal;
        proxy_pass http://{gateway};
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Forwarded-Method $request_method;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $http_host;
        proxy_set_header X-Forwarded-Uri $request_uri;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}

    # The session API on the same host, so the browser sends the cookie to both.
    location /session {{
        proxy_pass http://{gateway};
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Auth-User "";
        proxy_set_header X-Auth-Roles "";
    }}

    # Public pages still ask (Portcullis answers 200 without identity) and still overwrite
    # the identity headers, so a client's own X-Auth-User never reaches the upstream.
    location /public/ {{
        auth_request /.portcullis/auth;
        auth_request_set $auth_user $upstream_http_x_auth_user;
        auth_request_set $auth_roles $upstream_http_x_auth_roles;
        proxy_pass http://{upstream};
        proxy_set_header X-Auth-User $auth_user;
        proxy_set_header X-Auth-Roles $auth_roles;
    }}

    location / {{
        auth_request /.portcullis/auth;
        auth_request_set $auth_user $upstream_http_x_auth_user;
        auth_request_set $auth_roles $upstream_http_x_auth_roles;
        proxy_pass http://{upstream};
        proxy_set_header X-Auth-User $auth_user;
        proxy_set_header X-Auth-Roles $auth_roles;
    }}
}}
"#
    )
}

impl Nginx {
    /// Start nginx in front of `gateway` (forward-auth and `/session`) and `upstream`. A missing
    /// `nginx` binary fails the test with how to install it.
    pub async fn start(gateway: SocketAddr, upstream: SocketAddr) -> Nginx {
        let binary = binary();
        let mut nginx = Nginx {
            addr: "127.0.0.1:0".parse().unwrap(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        // The port is free when picked but nginx binds it later: retry on a lost race.
        for _ in 0..5 {
            nginx.addr = SocketAddr::from(([127, 0, 0, 1], super::free_port()));
            if nginx.spawn(&binary, gateway, upstream).await {
                return nginx;
            }
        }
        panic!("nginx did not start on any port:\n{}", nginx.error_log());
    }

    /// Everything nginx logged so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    async fn spawn(&mut self, binary: &Path, gateway: SocketAddr, upstream: SocketAddr) -> bool {
        let conf = self.dir.path().join("nginx.conf");
        std::fs::write(&conf, config(self.addr, gateway, upstream, self.dir.path()))
            .expect("write nginx.conf");
        let stderr = File::create(self.dir.path().join("stderr.log")).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(self.dir.path())
            .arg("-e")
            .arg(self.dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} ({e}): {INSTALL}", binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                let stderr =
                    std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default();
                eprintln!("nginx exited ({status}):\n{stderr}\n{}", self.error_log());
                return false;
            }
            if TcpStream::connect(self.addr).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill();
        false
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
    }
}

const INSTALL: &str = "install nginx (Debian/Ubuntu: `apt-get install nginx`) or run \
                       `bash tests/run.sh`, which installs it";

/// `nginx` on `PATH`, or where Debian puts it (`/usr/sbin` is not on every user's `PATH`).
fn binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nginx"))
            .find(|candidate| candidate.is_file())
    });
    let binary = on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"));
    assert!(binary.is_file(), "nginx not found: {INSTALL}");
    binary
}
