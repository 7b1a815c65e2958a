//! Validation of `session`: the store backend (its Redis keys in [`super::redis`]), signing
//! secrets, lifetimes and the cookie.
//!
//! The cookie checks enforce what browsers enforce for `__Host-` / `__Secure-` names, so a
//! misconfigured cookie fails at start-up instead of being silently dropped by every browser.

use std::net::SocketAddr;
use std::path::Path;

use super::{boolean, count, duration, invalid, is_tchar, positive_duration};
use crate::config::file::{RawCookie, RawSession};
use crate::config::{
    ConfigError, CookieConfig, Secret, SessionCacheConfig, SessionConfig, StoreConfig,
    MAX_CACHE_TTL, MIN_SECRET_LEN,
};

/// Validate `session`; `tls` and `public_https` decide what `cookie.secure: auto` means, and
/// `base_dir` resolves `redis_ca_file`.
pub(super) fn session(
    raw: &RawSession,
    base_dir: &Path,
    listen: SocketAddr,
    tls: bool,
    public_https: bool,
    warnings: &mut Vec<String>,
) -> Result<SessionConfig, ConfigError> {
    let redis_timeout = positive_duration("session.redis_timeout", &raw.redis_timeout)?;
    let redis_connect_timeout =
        positive_duration("session.redis_connect_timeout", &raw.redis_connect_timeout)?;
    let redis = match raw.store.as_deref() {
        Some("redis") => true,
        Some("memory") => false,
        None if listen.ip().is_loopback() => false,
        None => {
            return Err(invalid(
                "session.store",
                "required when listen is not loopback (redis | memory)",
            ))
        }
        Some(other) => {
            return Err(invalid(
                "session.store",
                format!("must be redis or memory, not `{other}`"),
            ))
        }
    };
    if !redis && !listen.ip().is_loopback() {
        warnings.push(
            "session.store: memory on a non-loopback listener: sessions live in this one process \
             and end at every restart; use redis in production"
                .into(),
        );
    }
    let store = if redis {
        StoreConfig::Redis(super::redis::redis(
            raw,
            base_dir,
            redis_timeout,
            redis_connect_timeout,
        )?)
    } else {
        for key in super::redis::keys_set(raw) {
            warnings.push(format!("{key}: ignored, session.store is memory"));
        }
        StoreConfig::Memory
    };
    let mut secrets = Vec::with_capacity(raw.secrets.len());
    for (i, secret) in raw.secrets.iter().enumerate() {
        if secret.len() < MIN_SECRET_LEN {
            return Err(invalid(
                format!("session.secrets[{i}]"),
                format!("must be at least {MIN_SECRET_LEN} bytes long"),
            ));
        }
        secrets.push(Secret::new(secret.as_bytes().to_vec()));
    }
    let secret_generated = secrets.is_empty();
    if secret_generated {
        if redis {
            return Err(invalid(
                "session.secrets",
                "at least one secret is required with the redis store \
                 (for example 32 random bytes, base64: `head -c 32 /dev/urandom | base64`)",
            ));
        }
        let mut bytes = vec![0u8; MIN_SECRET_LEN];
        getrandom::getrandom(&mut bytes)
            .map_err(|e| invalid("session.secrets", format!("cannot generate a secret: {e}")))?;
        secrets.push(Secret::new(bytes));
        warnings.push(
            "session.secrets: none configured, so a random secret is generated at start-up; \
             sessions will not survive a restart"
                .into(),
        );
    }
    let idle_timeout = positive_duration("session.idle_timeout", &raw.idle_timeout)?;
    let absolute_timeout = positive_duration("session.absolute_timeout", &raw.absolute_timeout)?;
    if idle_timeout > absolute_timeout {
        return Err(invalid(
            "session.idle_timeout",
            "must not exceed session.absolute_timeout",
        ));
    }
    Ok(SessionConfig {
        store,
        key_prefix: raw.key_prefix.clone(),
        secrets,
        secret_generated,
        idle_timeout,
        absolute_timeout,
        cookie: cookie(&raw.cookie, tls || public_https, warnings)?,
        max_per_user: raw
            .max_per_user
            .as_deref()
            .map(|n| count("session.max_per_user", n))
            .transpose()?,
        bearer: boolean("session.bearer", &raw.bearer)?,
        cache: cache(raw, redis, warnings)?,
    })
}

/// `session.cache_ttl` and `session.cache_max_entries`: on by default with Redis; the memory
/// store has nothing to cache.
fn cache(
    raw: &RawSession,
    redis: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<SessionCacheConfig>, ConfigError> {
    let ttl = match raw.cache_ttl.as_deref() {
        Some(text) => duration("session.cache_ttl", text)?,
        None => MAX_CACHE_TTL,
    };
    if ttl > MAX_CACHE_TTL {
        return Err(invalid(
            "session.cache_ttl",
            "must not exceed 1s: a session ended on one replica must be refused by every \
             replica within 1s, even one that missed the news",
        ));
    }
    let max_entries = match raw.cache_max_entries.as_deref() {
        Some(text) => count("session.cache_max_entries", text)?,
        None => DEFAULT_CACHE_MAX_ENTRIES,
    };
    if !redis {
        for (key, set) in [
            ("session.cache_ttl", raw.cache_ttl.is_some()),
            ("session.cache_max_entries", raw.cache_max_entries.is_some()),
        ] {
            if set {
                warnings.push(format!("{key}: ignored, session.store is memory"));
            }
        }
        return Ok(None);
    }
    if ttl.is_zero() {
        return Ok(None);
    }
    Ok(Some(SessionCacheConfig {
        ttl,
        max_entries: u64::try_from(max_entries).unwrap_or(u64::MAX),
    }))
}

/// `session.cache_max_entries` when not set.
const DEFAULT_CACHE_MAX_ENTRIES: usize = 100_000;

/// `secure_auto` is what `secure: auto` resolves to (a TLS listener or an https `public_url`).
fn cookie(
    raw: &RawCookie,
    secure_auto: bool,
    warnings: &mut Vec<String>,
) -> Result<CookieConfig, ConfigError> {
    let name = raw.name.as_str();
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(invalid(
            "session.cookie.name",
            format!("`{name}` is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)"),
        ));
    }
    let (secure, why) = match raw.secure.as_str() {
        "true" => (true, ""),
        "false" => (false, " (secure: false)"),
        "auto" => (
            secure_auto,
            " (secure: auto resolved to false: no tls and public_url is not https)",
        ),
        other => {
            return Err(invalid(
                "session.cookie.secure",
                format!("must be true, false or auto, not `{other}`"),
            ))
        }
    };
    let same_site = match raw.same_site.as_str() {
        "strict" => cookie::SameSite::Strict,
        "lax" => cookie::SameSite::Lax,
        "none" => cookie::SameSite::None,
        other => {
            return Err(invalid(
                "session.cookie.same_site",
                format!("must be strict, lax or none, not `{other}`"),
            ))
        }
    };
    let path = raw.path.as_str();
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic() && b != b';') {
        return Err(invalid(
            "session.cookie.path",
            "must start with / and hold only visible characters other than ;",
        ));
    }
    let domain = raw.domain.as_deref();
    if let Some(domain) = domain {
        let bare = domain.strip_prefix('.').unwrap_or(domain);
        if bare.is_empty()
            || !bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(invalid(
                "session.cookie.domain",
                format!("`{domain}` is not a domain name"),
            ));
        }
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("__host-") {
        if !secure {
            return Err(invalid(
                "session.cookie.secure",
                format!("a __Host- cookie must be Secure{why}"),
            ));
        }
        if path != "/" {
            return Err(invalid(
                "session.cookie.path",
                "a __Host- cookie must have path /",
            ));
        }
        if domain.is_some() {
            return Err(invalid(
                "session.cookie.domain",
                "a __Host- cookie must not set a domain",
            ));
        }
    } else if lower.starts_with("__secure-") && !secure {
        return Err(invalid(
            "session.cookie.secure",
            format!("a __Secure- cookie must be Secure{why}"),
        ));
    }
    if same_site == cookie::SameSite::None && !secure {
        return Err(invalid(
            "session.cookie.same_site",
            format!("none requires a Secure cookie{why}"),
        ));
    }
    if let Some(domain) = domain {
        warnings.push(format!(
            "session.cookie.domain: the cookie is sent to every host under `{domain}`, \
             and any of them can read or overwrite it"
        ));
    }
    Ok(CookieConfig {
        name: name.to_owned(),
        secure,
        same_site,
        domain: domain.map(str::to_owned),
        path: path.to_owned(),
    })
}
