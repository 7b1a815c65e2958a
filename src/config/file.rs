//! The configuration file as written: serde structs mirroring the YAML.
//!
//! Unknown keys are rejected and defaults are filled in here; nothing is interpreted. Every
//! scalar is kept as the text the user wrote (booleans, numbers and enum words included), so that
//! `${VAR}` substitution can supply any value and so that the validating layer in the parent
//! module can report a bad value with its YAML key rather than with a serde type error.

use serde::Deserialize;

use super::{
    DEFAULT_ADMIN_LISTEN, DEFAULT_COOKIE_NAME, DEFAULT_FORWARD_AUTH_PATH, DEFAULT_KEY_PREFIX,
    DEFAULT_LISTEN, DEFAULT_SESSION_API_PATH,
};

mod identity;

pub(crate) use identity::{
    RawAssertion, RawIdentity, RawIdentityHeaders, RawUpstreamCheck, RawUser,
};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// Proxy listener, `host:port` (`[::]:4180` for dual stack).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Admin listener for `/healthz`, `/readyz`, `/metrics`; must differ from `listen`.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// The origin browsers use when TLS is terminated in front (`https://api.example.com`).
    #[serde(default)]
    pub public_url: Option<String>,
    /// CIDRs or bare IPs whose forwarding headers are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Terminate TLS in Portcullis.
    #[serde(default)]
    pub tls: Option<RawTls>,
    /// Where requests go.
    pub upstream: RawUpstream,
    /// Session store, secrets, lifetimes and cookie.
    #[serde(default)]
    pub session: RawSession,
    /// The session API.
    #[serde(default)]
    pub session_api: RawSessionApi,
    /// The forward-auth endpoint for other proxies.
    #[serde(default)]
    pub forward_auth: RawForwardAuth,
    /// Local users.
    #[serde(default)]
    pub users: Vec<RawUser>,
    /// A YAML file holding a list of users of the same shape as `users`.
    #[serde(default)]
    pub users_file: Option<String>,
    /// Identity header names and the client headers always stripped.
    #[serde(default)]
    pub identity_headers: RawIdentityHeaders,
    /// Access rules.
    #[serde(default)]
    pub access: RawAccess,
    /// Ambiguous path spellings an API accepts.
    #[serde(default)]
    pub paths: RawPaths,
    /// Password hashing limits.
    #[serde(default)]
    pub identity: RawIdentity,
    /// Failed-login regulation.
    #[serde(default)]
    pub regulation: RawRegulation,
    /// Shutdown timing.
    #[serde(default)]
    pub shutdown: RawShutdown,
    /// Admin listener behaviour.
    #[serde(default)]
    pub admin: RawAdmin,
    /// Cross-origin requests from browsers: the origins allowed to call with credentials.
    #[serde(default)]
    pub cors: RawCors,
    /// The origin check on state-changing cookie requests.
    #[serde(default)]
    pub csrf: RawCsrf,
    /// Where unauthenticated page loads are sent (a path on this origin or an absolute URL).
    #[serde(default)]
    pub login_url: Option<String>,
    /// The query parameter of `login_url` that names the page to come back to.
    #[serde(default = "default_login_return_param")]
    pub login_return_param: String,
    /// Hosts (or `.domain` suffixes) besides the own host a login may return to.
    #[serde(default)]
    pub allowed_redirect_hosts: Vec<String>,
    /// Log format and level.
    #[serde(default)]
    pub log: RawLog,
    /// Idle client keep-alive connections are closed after this long (duration).
    #[serde(default = "default_keepalive_timeout")]
    pub keepalive_timeout: String,
    /// A client must send its request headers within this long (duration).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: String,
    /// A client TLS handshake must finish within this long (duration).
    #[serde(default = "default_tls_handshake_timeout")]
    pub tls_handshake_timeout: String,
    /// Most client connections open at once on the proxy listener (count).
    #[serde(default = "default_max_connections")]
    pub max_connections: String,
    /// Threads serving client connections (count, or `auto`: one per CPU).
    #[serde(default = "default_workers")]
    pub workers: String,
}

/// `tls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    /// PEM certificate chain file.
    pub cert_file: String,
    /// PEM private key file.
    pub key_file: String,
    /// PEM bundle of the CAs whose client certificates are accepted (mTLS).
    #[serde(default)]
    pub client_ca_file: Option<String>,
    /// `required` (the default with `client_ca_file`) or `optional`.
    #[serde(default)]
    pub client_auth: Option<String>,
    /// How often the files are checked for new contents (duration; `0s`: only on SIGHUP).
    #[serde(default)]
    pub reload_interval: Option<String>,
}

/// `upstream`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    /// Base URL, `http://host:port[/prefix]`.
    pub url: String,
    /// TCP connect timeout (duration).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: String,
    /// From the last request-body byte to the response head (duration).
    #[serde(default = "default_upstream_timeout")]
    pub timeout: String,
    /// No bytes either way for this long ends the exchange (duration).
    #[serde(default = "default_upstream_idle_timeout")]
    pub idle_timeout: String,
    /// How long an idle pooled connection is kept (duration).
    #[serde(default = "default_pool_idle_timeout")]
    pub pool_idle_timeout: String,
    /// `preserve`, `upstream`, or a literal host.
    #[serde(default = "default_host_header")]
    pub host_header: String,
    /// PEM bundle of the only CAs an `https://` upstream's certificate may chain to.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The name an `https://` upstream's certificate is checked against, instead of the URL's
    /// host.
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// An open WebSocket tunnel is closed after this long (duration); absent: no limit.
    #[serde(default)]
    pub websocket_max_lifetime: Option<String>,
}

/// `session`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawSession {
    /// `redis` or `memory`; absent means memory on a loopback listener, else an error.
    pub store: Option<String>,
    /// A standalone Redis: `redis://` or `rediss://` URL. With the redis store, exactly one of
    /// `redis_url`, `redis_cluster` and `redis_sentinel` is set.
    pub redis_url: Option<String>,
    /// A Redis Cluster: the URLs of some of its nodes (the rest are discovered).
    pub redis_cluster: Option<Vec<String>>,
    /// A primary watched by Redis Sentinel.
    pub redis_sentinel: Option<RawSentinel>,
    /// ACL user for the Redis data nodes (needs `redis_password`).
    pub redis_username: Option<String>,
    /// Password for the Redis data nodes (`AUTH`).
    pub redis_password: Option<String>,
    /// PEM file of the CA certificates that `rediss://` servers are checked against (default:
    /// the system's trust store).
    pub redis_ca_file: Option<String>,
    /// Per-command Redis timeout (duration).
    pub redis_timeout: String,
    /// Redis connect timeout (duration).
    pub redis_connect_timeout: String,
    /// Prefix of every store key.
    pub key_prefix: String,
    /// Signing secrets, at least 32 bytes each: the first signs, all verify.
    pub secrets: Vec<String>,
    /// Sliding idle timeout (duration).
    pub idle_timeout: String,
    /// Absolute session lifetime, never extended (duration).
    pub absolute_timeout: String,
    /// Cookie attributes.
    pub cookie: RawCookie,
    /// Most sessions one user may hold at once (a count); a login beyond it ends the oldest.
    pub max_per_user: Option<String>,
    /// `true` or `false`: whether a login may also get its session as a bearer token.
    pub bearer: String,
    /// How long a replica may reuse a session record it read from Redis (duration, at most 1s;
    /// `0s` turns the cache off). Default 1s.
    pub cache_ttl: Option<String>,
    /// Most session records one replica keeps cached (a count). Default 100000.
    pub cache_max_entries: Option<String>,
}

/// `session.redis_sentinel`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSentinel {
    /// The name the sentinels know the primary by (`sentinel monitor <name> ...`).
    pub master_name: String,
    /// The sentinels' URLs (`redis://host:26379`); credentials in them authenticate to the
    /// sentinels.
    pub nodes: Vec<String>,
}

/// `session.cookie`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawCookie {
    /// Cookie name (an RFC 6265 token; `__Host-` and `__Secure-` prefixes are enforced).
    pub name: String,
    /// `true`, `false` or `auto` (TLS listener or https `public_url`).
    pub secure: String,
    /// `strict`, `lax` or `none`.
    pub same_site: String,
    /// `Domain` attribute; host-only when absent.
    pub domain: Option<String>,
    /// `Path` attribute.
    pub path: String,
}

/// `session_api`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawSessionApi {
    /// The session API path; it and everything under it belong to Portcullis.
    pub path: String,
}

/// `forward_auth`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawForwardAuth {
    /// `true` or `false`: whether the endpoint is served.
    pub enabled: String,
    /// The endpoint path; it and everything under it belong to Portcullis.
    pub path: String,
}

/// `access`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawAccess {
    /// `authenticated`, `deny` or `anonymous`, for paths no rule covers.
    pub default: String,
    /// Rules, first match wins.
    pub rules: Vec<RawRule>,
}

/// One entry of `access.rules`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    /// `/x/` covers everything under `/x/`; `/x` exactly `/x`.
    pub path: String,
    /// `anonymous`, `optional`, `authenticated` or `deny`.
    #[serde(default = "default_rule_allow")]
    pub allow: String,
    /// Any one of these roles is required (only with `authenticated`).
    #[serde(default)]
    pub roles: Vec<String>,
    /// The only methods allowed on these paths.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
}

/// `paths`: each `reject` (400, the default) or `preserve` (forwarded as sent, every reading
/// judged).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawPaths {
    /// `%2F`, and `\` raw or as `%5C`.
    pub encoded_slash: String,
    /// `%25` followed by two hex digits.
    pub encoded_percent: String,
    /// `;` raw or as `%3B`.
    pub semicolon: String,
}

/// `regulation`; an absent window or field takes its default in the validating layer.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawRegulation {
    /// One username from one client address.
    pub per_user_and_address: RawRegulationWindow,
    /// One username from any address.
    pub per_user: RawRegulationWindow,
    /// One client address, whatever the username.
    pub per_address: RawRegulationWindow,
}

/// One window of `regulation`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawRegulationWindow {
    /// Failures within `find_time` that start a ban.
    pub max_retries: Option<String>,
    /// How long failures are counted (duration).
    pub find_time: Option<String>,
    /// How long a ban lasts (duration).
    pub ban_time: Option<String>,
}

/// `shutdown`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawShutdown {
    /// Between the signal (readiness failing) and closing the listeners (duration).
    pub drain_delay: String,
    /// Time in-flight requests get to finish (duration).
    pub grace_period: String,
}

/// `admin`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawAdmin {
    /// `true` or `false`: whether `/readyz` fails while the store is down.
    pub ready_requires_store: String,
}

/// `cors`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawCors {
    /// Origins (`https://app.example.com`) whose browsers may call with credentials.
    pub allowed_origins: Vec<String>,
    /// Request headers a preflight to Portcullis's own paths may ask for.
    pub allowed_headers: Vec<String>,
    /// How long a browser may cache a preflight answer (duration).
    pub max_age: String,
}

/// `csrf`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawCsrf {
    /// Origins besides the own origin whose state-changing requests pass; absent means
    /// `cors.allowed_origins`.
    pub allowed_origins: Option<Vec<String>>,
}

/// `log`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawLog {
    /// `text` or `json`.
    pub format: String,
    /// `trace`, `debug`, `info`, `warn`, `error` or `off`; `RUST_LOG`, when set, overrides it.
    pub level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Default for RawCors {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allowed_headers: vec!["Content-Type".into()],
            max_age: "10m".into(),
        }
    }
}

impl Default for RawSession {
    fn default() -> Self {
        Self {
            store: None,
            redis_url: None,
            redis_cluster: None,
            redis_sentinel: None,
            redis_username: None,
            redis_password: None,
            redis_ca_file: None,
            redis_timeout: "500ms".into(),
            redis_connect_timeout: "1s".into(),
            key_prefix: DEFAULT_KEY_PREFIX.into(),
            secrets: Vec::new(),
            idle_timeout: "30m".into(),
            absolute_timeout: "12h".into(),
            cookie: RawCookie::default(),
            max_per_user: None,
            bearer: "false".into(),
            cache_ttl: None,
            cache_max_entries: None,
        }
    }
}

impl Default for RawCookie {
    fn default() -> Self {
        Self {
            name: DEFAULT_COOKIE_NAME.into(),
            secure: "auto".into(),
            same_site: "lax".into(),
            domain: None,
            path: "/".into(),
        }
    }
}

impl Default for RawSessionApi {
    fn default() -> Self {
        Self {
            path: DEFAULT_SESSION_API_PATH.into(),
        }
    }
}

impl Default for RawForwardAuth {
    fn default() -> Self {
        Self {
            enabled: "true".into(),
            path: DEFAULT_FORWARD_AUTH_PATH.into(),
        }
    }
}

impl Default for RawAccess {
    fn default() -> Self {
        Self {
            default: "authenticated".into(),
            rules: Vec::new(),
        }
    }
}

impl Default for RawPaths {
    fn default() -> Self {
        Self {
            encoded_slash: "reject".into(),
            encoded_percent: "reject".into(),
            semicolon: "reject".into(),
        }
    }
}

impl Default for RawShutdown {
    fn default() -> Self {
        Self {
            drain_delay: "0s".into(),
            grace_period: "30s".into(),
        }
    }
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            ready_requires_store: default_false(),
        }
    }
}

fn default_login_return_param() -> String {
    "return_to".into()
}
fn default_listen() -> String {
    DEFAULT_LISTEN.into()
}
fn default_admin_listen() -> String {
    DEFAULT_ADMIN_LISTEN.into()
}
fn default_keepalive_timeout() -> String {
    "75s".into()
}
fn default_header_read_timeout() -> String {
    "10s".into()
}
fn default_tls_handshake_timeout() -> String {
    "10s".into()
}
fn default_max_connections() -> String {
    "10000".into()
}
fn default_workers() -> String {
    "auto".into()
}
fn default_connect_timeout() -> String {
    "2s".into()
}
fn default_upstream_timeout() -> String {
    "30s".into()
}
fn default_upstream_idle_timeout() -> String {
    "60s".into()
}
fn default_pool_idle_timeout() -> String {
    "4s".into()
}
fn default_host_header() -> String {
    "preserve".into()
}
fn default_rule_allow() -> String {
    "authenticated".into()
}
fn default_false() -> String {
    "false".into()
}
