//! The typed, validated configuration.
//!
//! Two layers: [`file`] mirrors the YAML with serde (unknown keys rejected, defaults filled in),
//! and this module turns it into a [`Config`] with real types (socket addresses, durations,
//! header names, compiled rules), reporting every problem with the YAML key it concerns.
//! `${VAR}` / `${file:/path}` substitution ([`secret`]) runs on parsed scalar values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};
use ipnet::IpNet;
use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use serde_yaml::Value;

use crate::access::{PathOptions, RuleSet};
use crate::assertion::AssertionConfig;
use crate::identity::{Source, UpstreamCheckConfig, User};

mod file;
pub mod secret;
mod validate;

pub use secret::Secret;

/// Default proxy listener.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:4180";
/// Default admin listener.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9091";
/// Default session API path.
pub const DEFAULT_SESSION_API_PATH: &str = "/session";
/// Default forward-auth endpoint path.
pub const DEFAULT_FORWARD_AUTH_PATH: &str = "/.portcullis/auth";
/// Default `tls.reload_interval`: how often the certificate files are checked for new contents.
pub const DEFAULT_TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// Default session cookie name.
pub const DEFAULT_COOKIE_NAME: &str = "portcullis_session";
/// Default Redis key prefix.
pub const DEFAULT_KEY_PREFIX: &str = "portcullis:";
/// Minimum length of a session secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;
/// Default `regulation.per_user_and_address`: 5 failures in 2m ban for 5m.
pub const DEFAULT_REGULATION_PER_USER_AND_ADDRESS: RegulationWindow = RegulationWindow {
    max_retries: 5,
    find_time: Duration::from_secs(120),
    ban_time: Duration::from_secs(300),
};
/// Default `regulation.per_user`: 20 failures in 2m ban for 1m.
pub const DEFAULT_REGULATION_PER_USER: RegulationWindow = RegulationWindow {
    max_retries: 20,
    find_time: Duration::from_secs(120),
    ban_time: Duration::from_secs(60),
};
/// Default `regulation.per_address`: 50 failures in 2m ban for 5m.
pub const DEFAULT_REGULATION_PER_ADDRESS: RegulationWindow = RegulationWindow {
    max_retries: 50,
    find_time: Duration::from_secs(120),
    ban_time: Duration::from_secs(300),
};

/// A configuration problem, naming the YAML key it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The YAML does not parse or does not match the expected shape (including unknown keys).
    /// Holds the parser's message with every quoted value redacted: the value may be a secret
    /// written in the wrong place, so the parser's error is not kept as a source.
    #[error("invalid config: {0}")]
    Syntax(String),
    /// A value is wrong; `key` is the dotted YAML path (`session.cookie.same_site`).
    #[error("invalid config at `{key}`: {message}")]
    Invalid {
        /// Dotted YAML key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Proxy listener address.
    pub listen: SocketAddr,
    /// Admin listener address (`/healthz`, `/readyz`, `/metrics`).
    pub admin_listen: SocketAddr,
    /// The origin browsers use, when TLS is terminated in front of Portcullis.
    pub public_url: Option<PublicUrl>,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Certificate and key files when Portcullis terminates TLS itself.
    pub tls: Option<TlsConfig>,
    /// Where and how requests are forwarded.
    pub upstream: UpstreamConfig,
    /// Session storage and cookie.
    pub session: SessionConfig,
    /// The session API path (this path and everything under it belong to Portcullis).
    pub session_api_path: String,
    /// The forward-auth endpoint for other proxies.
    pub forward_auth: ForwardAuthConfig,
    /// Local users (from `users` and `users_file`).
    pub users: Vec<User>,
    /// `users_file`, resolved against the config file's directory: watched, and reloaded with
    /// the config when it changes.
    pub users_file: Option<PathBuf>,
    /// Identity header names and the client headers always stripped.
    pub identity_headers: IdentityHeaders,
    /// Access rules.
    pub access: RuleSet,
    /// Paths denied on the proxy listener whatever `access` says (the delegated check endpoint
    /// when it shares the upstream's origin); judged on every reading, like the rules.
    pub denied_paths: RuleSet,
    /// Which ambiguous path spellings are forwarded (and judged on every reading).
    pub paths: PathOptions,
    /// Password hashing limits.
    pub identity: IdentityConfig,
    /// Failed-login regulation.
    pub regulation: RegulationConfig,
    /// Shutdown timing.
    pub shutdown: ShutdownConfig,
    /// Admin listener behaviour.
    pub admin: AdminConfig,
    /// Client connection timeouts.
    pub server: ServerConfig,
    /// Cross-origin requests from browsers.
    pub cors: CorsConfig,
    /// The origin check on state-changing cookie requests.
    pub csrf: CsrfConfig,
    /// Where unauthenticated page loads are sent, when configured.
    pub login: Option<LoginConfig>,
    /// Log format and level.
    pub log: LogConfig,
    /// Warnings found while loading (printed at start-up and by `--check-config`).
    pub warnings: Vec<String>,
}

/// `public_url`, reduced to what Portcullis uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `scheme://host[:port]`, lower-cased, default port omitted.
    pub origin: String,
    /// Whether the scheme is https.
    pub https: bool,
}

/// `tls`: the listener's certificate, reloaded when its files change, and optional client
/// certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// Client certificates (mTLS), when `tls.client_ca_file` is set.
    pub client_auth: Option<ClientAuth>,
    /// How often the files are checked for new contents; `None` (`0s`): only on SIGHUP.
    pub reload_interval: Option<Duration>,
}

/// `tls.client_ca_file` and `tls.client_auth`: which client certificates the listener accepts.
/// A client certificate only restricts who may connect; it never stands in for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// PEM bundle of the CAs whose client certificates are accepted (reloaded with the
    /// listener's certificate).
    pub ca_file: PathBuf,
    /// Whether a client without a certificate may connect.
    pub mode: ClientAuthMode,
}

/// `tls.client_auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMode {
    /// A client without a valid certificate fails the handshake (`required`, the default).
    Required,
    /// A client may connect without a certificate; one it presents must be valid (`optional`).
    Optional,
}

/// `upstream`.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Base URL (`http(s)://host:port[/prefix]`); the prefix, if any, is kept.
    pub url: Uri,
    /// Connection set-up timeout: TCP connect and, for `https://`, the TLS handshake.
    pub connect_timeout: Duration,
    /// From the last request-body byte to the response head.
    pub timeout: Duration,
    /// No bytes either way for this long: 504 before the head, reset after it.
    pub idle_timeout: Duration,
    /// How long an idle pooled upstream connection is kept.
    pub pool_idle_timeout: Duration,
    /// Which `Host` the upstream receives.
    pub host_header: HostHeader,
    /// An open WebSocket tunnel is closed after this long; `None`: no limit. The other upstream
    /// timeouts bound the handshake only, never an open tunnel.
    pub websocket_max_lifetime: Option<Duration>,
    /// Which CAs an `https://` upstream's certificate must chain to.
    pub trust: UpstreamTrust,
    /// The name the upstream's certificate is checked against (and sent as SNI) instead of the
    /// URL's host (`upstream.tls_server_name`).
    pub tls_server_name: Option<ServerName<'static>>,
}

/// The roots an `https://` upstream's certificate is verified against.
#[derive(Debug, Clone)]
pub enum UpstreamTrust {
    /// The Mozilla roots compiled in (`webpki-roots`): the same on every machine.
    WebpkiRoots,
    /// Only the CAs of `upstream.ca_file`, read and parsed at load.
    CaFile {
        /// The PEM bundle.
        path: PathBuf,
        /// Its certificates as trust anchors.
        roots: Arc<RootCertStore>,
    },
}

/// `upstream.host_header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostHeader {
    /// The client's `Host` (`preserve`).
    Preserve,
    /// The upstream URL's authority (`upstream`).
    Upstream,
    /// A fixed value.
    Literal(HeaderValue),
}

/// `session`.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Which store backend.
    pub store: StoreConfig,
    /// Prefix of every store key.
    pub key_prefix: String,
    /// Signing secrets: the first signs, all verify. Raw bytes as configured (HKDF runs later).
    pub secrets: Vec<Secret<Vec<u8>>>,
    /// True when no secret was configured and one was generated at start-up (memory store only).
    pub secret_generated: bool,
    /// Sliding idle timeout.
    pub idle_timeout: Duration,
    /// Absolute lifetime, never extended.
    pub absolute_timeout: Duration,
    /// Cookie attributes.
    pub cookie: CookieConfig,
    /// Most sessions one user may hold at once; a login beyond it ends the oldest. `None`: no
    /// limit.
    pub max_per_user: Option<usize>,
    /// Whether `POST /session` with `"token": true` also returns the session as a token, and
    /// `Authorization: Bearer <token>` is read as the session. When false, `Authorization` is
    /// never read.
    pub bearer: bool,
    /// The in-process cache of session records read from Redis; `None` with the memory store or
    /// `session.cache_ttl: 0s`.
    pub cache: Option<SessionCacheConfig>,
}

/// `session.cache_ttl` and `session.cache_max_entries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCacheConfig {
    /// Longest a cached record is reused (never above [`MAX_CACHE_TTL`]).
    pub ttl: Duration,
    /// Most records kept.
    pub max_entries: u64,
}

/// The bound on `session.cache_ttl`: a session ended anywhere is refused everywhere within it,
/// even by a replica that missed the invalidation.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(1);

/// `session.store` with its backend's settings.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// In-process memory (one process, development).
    Memory,
    /// Redis.
    Redis(RedisConfig),
}

/// Redis connection settings.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Which deployment: one server, a Cluster or a Sentinel-watched primary.
    pub topology: RedisTopology,
    /// ACL user for the data nodes (`session.redis_username`); `None`: the URL's, if any.
    pub username: Option<Secret<String>>,
    /// Password for the data nodes (`session.redis_password`); `None`: the URL's, if any.
    pub password: Option<Secret<String>>,
    /// PEM CA certificates for `rediss://` (`session.redis_ca_file`); `None`: the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// Per-command timeout; past it the store counts as down.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
}

/// `session.redis_url`, `session.redis_cluster` or `session.redis_sentinel`. URLs may hold a
/// password, hence secret.
#[derive(Debug, Clone)]
pub enum RedisTopology {
    /// One server (`redis_url`).
    Standalone(Secret<String>),
    /// A Redis Cluster, reached through any of these nodes (`redis_cluster`).
    Cluster(Vec<Secret<String>>),
    /// The primary that these sentinels name `master_name` (`redis_sentinel`).
    Sentinel {
        /// The monitored primary's name.
        master_name: String,
        /// The sentinels' URLs.
        nodes: Vec<Secret<String>>,
    },
}

impl RedisTopology {
    /// `standalone`, `cluster` or `sentinel`, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Standalone(_) => "standalone",
            Self::Cluster(_) => "cluster",
            Self::Sentinel { .. } => "sentinel",
        }
    }
}

/// `session.cookie`, resolved (`secure: auto` already decided).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieConfig {
    /// Cookie name.
    pub name: String,
    /// Whether the cookie carries `Secure`.
    pub secure: bool,
    /// `SameSite` attribute.
    pub same_site: cookie::SameSite,
    /// `Domain` attribute (host-only when unset).
    pub domain: Option<String>,
    /// `Path` attribute.
    pub path: String,
}

/// `forward_auth`: the decision endpoint for nginx `auth_request`, Traefik ForwardAuth and Caddy
/// `forward_auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAuthConfig {
    /// Whether the endpoint is served; when off, its path is an ordinary proxied path.
    pub enabled: bool,
    /// The endpoint path; it and everything under it belong to Portcullis (when enabled).
    pub path: String,
}

impl ForwardAuthConfig {
    /// The endpoint path when the endpoint is served.
    pub fn served_path(&self) -> Option<&str> {
        self.enabled.then_some(self.path.as_str())
    }
}

/// `identity_headers`.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    /// Header carrying the user name.
    pub user: HeaderName,
    /// Header carrying the comma-separated roles.
    pub roles: HeaderName,
    /// Header carrying the display name, when configured.
    pub display_name: Option<HeaderName>,
    /// Header carrying the e-mail address, when configured.
    pub email: Option<HeaderName>,
    /// The signed identity assertion, when configured.
    pub assertion: Option<AssertionConfig>,
    /// Client header patterns always removed (exact names or `prefix*`), lower-cased, `_` as `-`.
    pub strip: Vec<String>,
}

/// `identity`: password hashing limits and the identity sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Hashes computed at once.
    pub max_concurrent_hashes: usize,
    /// Logins waiting for a hashing slot before 503 `login_busy`.
    pub hash_queue: usize,
    /// Largest memory cost a users entry may need, in KiB.
    pub max_hash_memory_kib: u32,
    /// The sources a login is tried against, in order (`upstream_check`, if present, last).
    pub sources: Vec<Source>,
    /// The delegated credential check, when configured.
    pub upstream_check: Option<UpstreamCheckConfig>,
}

impl IdentityHeaders {
    /// Every configured identity header name: what the upstream receives only from Portcullis.
    pub fn names(&self) -> Vec<&HeaderName> {
        let mut names = vec![&self.user, &self.roles];
        names.extend(self.display_name.iter());
        names.extend(self.email.iter());
        names.extend(self.assertion.iter().map(|a| &a.header));
        names
    }
}

/// `regulation`: failed logins are counted in three windows; reaching a window's `max_retries`
/// bans further attempts in its scope for its `ban_time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegulationConfig {
    /// One username from one client address.
    pub per_user_and_address: RegulationWindow,
    /// One username from any address (a distributed attack on one account).
    pub per_user: RegulationWindow,
    /// One client address, whatever the username (one client trying many accounts).
    pub per_address: RegulationWindow,
}

/// One `regulation` window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegulationWindow {
    /// Failures within `find_time` that start a ban (at least 1).
    pub max_retries: u64,
    /// How long failures are counted, from the first one.
    pub find_time: Duration,
    /// How long a ban lasts.
    pub ban_time: Duration,
}

/// `shutdown`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// Time between the signal (readiness failing) and closing the listeners.
    pub drain_delay: Duration,
    /// Time in-flight requests get to finish.
    pub grace_period: Duration,
}

/// `admin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Whether `/readyz` fails while the store is down.
    pub ready_requires_store: bool,
}

/// Client connection limits (`keepalive_timeout`, `header_read_timeout`,
/// `tls_handshake_timeout`, `max_connections`, `workers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Idle keep-alive connections are closed after this long.
    pub keepalive_timeout: Duration,
    /// A client must finish sending request headers within this long.
    pub header_read_timeout: Duration,
    /// A TLS handshake must finish within this long.
    pub tls_handshake_timeout: Duration,
    /// Most client connections open at once on the proxy listener; past it, new connections
    /// wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Threads serving client connections, each with its own single-threaded runtime and
    /// upstream connection pool (`auto`: one per CPU the process may use).
    pub workers: usize,
}

/// `cors`: browsers on these origins may call with credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfig {
    /// Allowed origins, each `scheme://host[:port]`, lower-cased, default port omitted.
    pub allowed_origins: Vec<String>,
    /// `Access-Control-Allow-Headers` for preflights to Portcullis's own paths.
    pub allowed_headers: HeaderValue,
    /// `Access-Control-Max-Age`, in seconds.
    pub max_age: u64,
}

/// `csrf`: origins besides the own origin whose state-changing requests pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfConfig {
    /// Allowed origins, normalized like [`CorsConfig::allowed_origins`].
    pub allowed_origins: Vec<String>,
}

/// `login_url`, `login_return_param` and `allowed_redirect_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginConfig {
    /// The login page.
    pub url: LoginUrl,
    /// The query parameter naming the page to come back to.
    pub return_param: String,
    /// Hosts (`host` or `host:port`, lower-case) or `.domain` suffixes a login may return to
    /// besides the own host.
    pub allowed_redirect_hosts: Vec<String>,
}

/// Where the login page is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginUrl {
    /// A path on this origin (maybe with a query).
    Path(String),
    /// An absolute http(s) URL elsewhere.
    Absolute(String),
}

/// `log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// How log lines are written.
    pub format: LogFormat,
    /// The most verbose level written, unless `RUST_LOG` says otherwise.
    pub level: tracing::level_filters::LevelFilter,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (`text`).
    Text,
    /// One JSON object per line (`json`), fields at the top level.
    Json,
}

impl Config {
    /// Read and validate the file at `path`. Relative file names inside it (`users_file`,
    /// `${file:...}`, `tls`) resolve against the file's directory; `${VAR}` reads the process
    /// environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let yaml = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base_dir = path.parent().unwrap_or(Path::new(""));
        Self::from_yaml_str_with(&yaml, base_dir, &process_env)
    }

    /// Validate a YAML document; relative file names resolve against the current directory and
    /// `${VAR}` reads the process environment.
    pub fn from_yaml_str(yaml: &str) -> Result<Config, ConfigError> {
        Self::from_yaml_str_with(yaml, Path::new(""), &process_env)
    }

    /// Validate a YAML document, resolving relative file names against `base_dir` and `${VAR}`
    /// with `env`.
    pub fn from_yaml_str_with(
        yaml: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        // The shape is checked on the text as written: serde_yaml then names the key path and
        // line of an unknown key or misplaced value, and its message can only quote what the
        // user wrote, never an expanded secret.
        serde_yaml::from_str::<file::RawConfig>(yaml).map_err(syntax)?;
        let mut value: Value = serde_yaml::from_str(yaml).map_err(syntax)?;
        prepare_scalars(&mut value, "", base_dir, env)?;
        let raw: file::RawConfig = serde_yaml::from_value(value).map_err(syntax)?;
        validate::build(raw, base_dir)
    }
}

/// A syntax error with every `"quoted"` value in the parser's message replaced, keeping the key
/// path, the expected shape and the position.
fn syntax(err: serde_yaml::Error) -> ConfigError {
    let message = err.to_string();
    let mut redacted = String::with_capacity(message.len());
    let mut parts = message.split('"');
    redacted.push_str(parts.next().unwrap_or_default());
    let mut inside = true;
    for part in parts {
        redacted.push('"');
        redacted.push_str(if inside { "[redacted]" } else { part });
        inside = !inside;
    }
    ConfigError::Syntax(redacted)
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Expand `${...}` in every string value under `value` (`key` is its dotted path), and write
/// numbers and booleans as text, which is how the raw layer reads every scalar (as the text
/// deserializer used for the shape check does).
fn prepare_scalars(
    value: &mut Value,
    key: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(text) => {
            *text = secret::expand(text, base_dir, env).map_err(|e| ConfigError::Invalid {
                key: key.to_owned(),
                message: e.to_string(),
            })?;
        }
        Value::Bool(b) => *value = Value::String(b.to_string()),
        Value::Number(n) => *value = Value::String(n.to_string()),
        Value::Null => {}
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                prepare_scalars(item, &format!("{key}[{i}]"), base_dir, env)?;
            }
        }
        Value::Mapping(map) => {
            for (name, item) in map.iter_mut() {
                let name = match name {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => b.to_string(),
                    Value::Number(n) => n.to_string(),
                    _ => "?".to_owned(),
                };
                let child = if key.is_empty() {
                    name
                } else {
                    format!("{key}.{name}")
                };
                prepare_scalars(item, &child, base_dir, env)?;
            }
        }
        Value::Tagged(tagged) => prepare_scalars(&mut tagged.value, key, base_dir, env)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests;
