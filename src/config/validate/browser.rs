//! Validation of `cors` and `csrf`: origin lists, preflight headers and lifetime.
//!
//! Origins are normalized the way browsers write `Origin`, so the request-time check is a plain
//! string comparison. `null` and `*` are refused: `null` is what sandboxed frames and `file:`
//! pages send, and a wildcard cannot be combined with credentials.

use super::{absolute_url, check_canonical_path, duration, header_name, invalid, origin};
use crate::config::file::{RawCors, RawCsrf};
use crate::config::{ConfigError, CorsConfig, CsrfConfig, LoginConfig, LoginUrl};
use http::HeaderValue;

use crate::access::{CanonicalPath, Decision, PathOptions, RuleSet};

/// Validate `cors` and `csrf`; `csrf.allowed_origins` defaults to `cors.allowed_origins`.
pub(super) fn cors_and_csrf(
    cors: &RawCors,
    csrf: &RawCsrf,
) -> Result<(CorsConfig, CsrfConfig), ConfigError> {
    let cors_origins = origins("cors.allowed_origins", &cors.allowed_origins)?;
    let csrf_origins = match &csrf.allowed_origins {
        Some(list) => origins("csrf.allowed_origins", list)?,
        None => cors_origins.clone(),
    };
    let mut names = Vec::with_capacity(cors.allowed_headers.len());
    for (i, name) in cors.allowed_headers.iter().enumerate() {
        names.push(header_name(&format!("cors.allowed_headers[{i}]"), name)?);
    }
    let allowed_headers = names
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let allowed_headers =
        HeaderValue::from_str(&allowed_headers).expect("header names are header-safe");
    let max_age = duration("cors.max_age", &cors.max_age)?.as_secs();
    Ok((
        CorsConfig {
            allowed_origins: cors_origins,
            allowed_headers,
            max_age,
        },
        CsrfConfig {
            allowed_origins: csrf_origins,
        },
    ))
}

fn origins(key: &str, list: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let key = format!("{key}[{i}]");
        if text.trim() == "null" || text.contains('*') {
            return Err(invalid(
                key,
                "must be a literal origin such as https://app.example.com (`null` and `*` never match)",
            ));
        }
        let (origin, _) = origin(&key, text)?;
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    Ok(out)
}

/// Validate `login_url`, `login_return_param` and `allowed_redirect_hosts`; `None` without a
/// `login_url` (the other two then have no effect).
pub(super) fn login(
    url: Option<&str>,
    return_param: &str,
    allowed: &[String],
) -> Result<Option<LoginConfig>, ConfigError> {
    if return_param.is_empty()
        || !return_param
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(invalid(
            "login_return_param",
            "must be a query parameter name (letters, digits, _ - .)",
        ));
    }
    let mut hosts = Vec::with_capacity(allowed.len());
    for (i, host) in allowed.iter().enumerate() {
        let key = format!("allowed_redirect_hosts[{i}]");
        let bare = host.strip_prefix('.').unwrap_or(host);
        let valid = !bare.is_empty()
            && bare.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            })
            && bare.parse::<http::uri::Authority>().is_ok();
        if !valid {
            return Err(invalid(
                key,
                "must be a host name, host:port or .domain (no scheme, path or wildcard)",
            ));
        }
        hosts.push(host.to_ascii_lowercase());
    }
    let Some(url) = url else {
        return Ok(None);
    };
    const KEY: &str = "login_url";
    let url = if url.starts_with('/') {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        check_canonical_path(path).map_err(|m| invalid(KEY, m))?;
        if url.contains('#') || query.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(invalid(KEY, "must be a path with an optional plain query"));
        }
        LoginUrl::Path(url.to_owned())
    } else {
        absolute_url(KEY, url)?;
        if url.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(invalid(KEY, "must be visible ASCII"));
        }
        LoginUrl::Absolute(url.to_owned())
    };
    Ok(Some(LoginConfig {
        url,
        return_param: return_param.to_owned(),
        allowed_redirect_hosts: hosts,
    }))
}

/// A login page on this origin must be reachable without a session, or every page load would be
/// sent there in a loop.
pub(super) fn warn_unless_login_page_is_public(
    login: Option<&LoginConfig>,
    access: &RuleSet,
    paths: &PathOptions,
    warnings: &mut Vec<String>,
) {
    let Some(LoginConfig {
        url: LoginUrl::Path(url),
        ..
    }) = login
    else {
        return;
    };
    let path = url.split('?').next().unwrap_or_default();
    let public = CanonicalPath::parse(path, paths).is_ok_and(|p| {
        matches!(
            access.decide(&p, &http::Method::GET),
            Decision::Anonymous | Decision::Optional
        )
    });
    if !public {
        warnings.push(format!(
            "login_url: the access rules do not allow `{path}` without a session; \
             browsers would be sent to it in a loop (add a rule with allow: anonymous)"
        ));
    }
}
