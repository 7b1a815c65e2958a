//! The raw YAML of who may log in and what the upstream is told about them: `users` entries,
//! `identity` (hashing limits, sources, the delegated check) and `identity_headers`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One entry of `users` or of the `users_file` list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUser {
    /// Login name.
    pub username: String,
    /// argon2 PHC string or bcrypt hash.
    pub password_hash: String,
    /// Roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// `true` or `false`.
    #[serde(default = "default_false")]
    pub disabled: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<String>,
}

/// `identity_headers`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawIdentityHeaders {
    /// Header carrying the user name.
    pub user: String,
    /// Header carrying the comma-separated roles.
    pub roles: String,
    /// Header carrying the display name (absent: not sent).
    pub display_name: Option<String>,
    /// Header carrying the e-mail address (absent: not sent).
    pub email: Option<String>,
    /// The signed identity assertion (absent: not sent).
    pub assertion: Option<RawAssertion>,
    /// Client header names or `prefix*` patterns always removed.
    pub strip: Vec<String>,
}

/// `identity_headers.assertion`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAssertion {
    /// Header carrying the JWT.
    #[serde(default = "default_assertion_header")]
    pub header: String,
    /// `HS256` or `EdDSA`.
    pub algorithm: String,
    /// HS256 secret, at least 32 bytes (use `${file:...}` or `${VAR}`).
    #[serde(default)]
    pub secret: Option<String>,
    /// EdDSA: an Ed25519 private key, PKCS#8 PEM.
    #[serde(default)]
    pub key_file: Option<String>,
    /// `iss`.
    #[serde(default = "default_assertion_issuer")]
    pub issuer: String,
    /// `aud` (required).
    pub audience: String,
    /// `kid`; absent: derived from the key.
    #[serde(default)]
    pub kid: Option<String>,
}

/// `identity`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawIdentity {
    /// Hashes computed at once; absent means the number of CPUs.
    pub max_concurrent_hashes: Option<String>,
    /// Logins waiting for a hashing slot before 503 `login_busy`.
    pub hash_queue: String,
    /// Largest memory cost a users entry may need (`64MiB`, `512KiB`, `1GiB`).
    pub max_hash_memory: String,
    /// `local` and/or `upstream_check`, in order; absent: `[local]`, plus `upstream_check`
    /// when it is configured.
    pub sources: Option<Vec<String>>,
    /// The delegated credential check.
    pub upstream_check: Option<RawUpstreamCheck>,
}

/// `identity.upstream_check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstreamCheck {
    /// The endpoint, `http://host:port/path`.
    pub url: String,
    /// Bound on the whole check (duration).
    #[serde(default = "default_check_timeout")]
    pub timeout: String,
    /// Static headers sent with each check, name to value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The answer's field holding the user name.
    #[serde(default = "default_user_field")]
    pub user_field: String,
    /// The answer's field holding the roles.
    #[serde(default = "default_roles_field")]
    pub roles_field: String,
    /// Longest life of a delegated session (duration).
    #[serde(default = "default_max_session_age")]
    pub max_session_age: String,
}

impl Default for RawIdentityHeaders {
    fn default() -> Self {
        Self {
            user: "X-Auth-User".into(),
            roles: "X-Auth-Roles".into(),
            display_name: None,
            email: None,
            assertion: None,
            strip: [
                "X-Auth-*",
                "X-Forwarded-User",
                "X-Forwarded-Email",
                "X-Forwarded-Groups",
                "Remote-User",
                "Remote-Groups",
                "Remote-Email",
                "Remote-Name",
                "X-Remote-User",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        }
    }
}

impl Default for RawIdentity {
    fn default() -> Self {
        Self {
            max_concurrent_hashes: None,
            hash_queue: "32".into(),
            max_hash_memory: "64MiB".into(),
            sources: None,
            upstream_check: None,
        }
    }
}

fn default_false() -> String {
    "false".into()
}
fn default_assertion_header() -> String {
    crate::assertion::DEFAULT_ASSERTION_HEADER.into()
}
fn default_assertion_issuer() -> String {
    crate::assertion::DEFAULT_ASSERTION_ISSUER.into()
}
fn default_check_timeout() -> String {
    "5s".into()
}
fn default_user_field() -> String {
    "user".into()
}
fn default_roles_field() -> String {
    "roles".into()
}
fn default_max_session_age() -> String {
    "1h".into()
}
