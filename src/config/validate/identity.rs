//! Validation of `identity` (hashing limits, the sources, the delegated check) and
//! `identity_headers` (names, the optional display name, e-mail and signed assertion headers).
//!
//! Messages never quote a header value of the check (it may be a shared secret), the assertion
//! secret or the key.

use std::path::Path;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use super::{
    absolute_url, check_canonical_path, count, header_name, invalid, is_loopback_host, is_tchar,
    positive_duration, size_kib,
};
use crate::access::{Allow, PathPattern, Rule, RuleSet};
use crate::assertion::{AssertionConfig, AssertionSigner};
use crate::config::file::{RawAssertion, RawIdentity, RawIdentityHeaders, RawUpstreamCheck};
use crate::config::{ConfigError, IdentityConfig, IdentityHeaders, Secret};
use crate::identity::{Source, UpstreamCheckConfig};

/// Headers of the check request that Portcullis writes itself.
const CHECK_OWN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// `identity`, and the paths its check endpoint makes off-limits on the proxy listener
/// (`upstream_url`'s origin shared).
pub(super) fn identity(
    raw: &RawIdentity,
    upstream_url: &Uri,
    warnings: &mut Vec<String>,
) -> Result<(IdentityConfig, RuleSet), ConfigError> {
    let max_concurrent_hashes = match &raw.max_concurrent_hashes {
        Some(text) => count("identity.max_concurrent_hashes", text)?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let upstream_check = raw
        .upstream_check
        .as_ref()
        .map(|check| upstream_check(check, warnings))
        .transpose()?;
    let sources = sources(raw.sources.as_deref(), upstream_check.is_some(), warnings)?;
    let denied = match &upstream_check {
        Some(check) => denied_paths(&check.url, upstream_url),
        None => RuleSet::new(Vec::new(), Allow::Anonymous),
    };
    let config = IdentityConfig {
        max_concurrent_hashes,
        hash_queue: count("identity.hash_queue", &raw.hash_queue)?,
        max_hash_memory_kib: size_kib("identity.max_hash_memory", &raw.max_hash_memory)?,
        sources,
        upstream_check,
    };
    Ok((config, denied))
}

/// `identity.sources`: absent means `[local]`, plus `upstream_check` when it is configured.
fn sources(
    raw: Option<&[String]>,
    check_configured: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<Source>, ConfigError> {
    const KEY: &str = "identity.sources";
    let Some(raw) = raw else {
        return Ok(if check_configured {
            vec![Source::Local, Source::UpstreamCheck]
        } else {
            vec![Source::Local]
        });
    };
    if raw.is_empty() {
        return Err(invalid(KEY, "must name at least one source"));
    }
    let mut sources = Vec::with_capacity(raw.len());
    for (i, name) in raw.iter().enumerate() {
        let key = format!("{KEY}[{i}]");
        let source = match name.as_str() {
            "local" => Source::Local,
            "upstream_check" if check_configured => Source::UpstreamCheck,
            "upstream_check" => {
                return Err(invalid(key, "upstream_check needs identity.upstream_check"))
            }
            other => {
                return Err(invalid(
                    key,
                    format!("`{other}` is neither local nor upstream_check"),
                ))
            }
        };
        if sources.contains(&source) {
            return Err(invalid(key, format!("`{name}` is listed twice")));
        }
        if sources.contains(&Source::UpstreamCheck) {
            return Err(invalid(
                key,
                "upstream_check always decides, so nothing after it is ever consulted: \
                 list it last",
            ));
        }
        sources.push(source);
    }
    if check_configured && !sources.contains(&Source::UpstreamCheck) {
        warnings.push(format!(
            "identity.upstream_check: configured, but not in {KEY}; no login is checked there"
        ));
    }
    Ok(sources)
}

fn upstream_check(
    raw: &RawUpstreamCheck,
    warnings: &mut Vec<String>,
) -> Result<UpstreamCheckConfig, ConfigError> {
    const KEY: &str = "identity.upstream_check";
    let url_key = format!("{KEY}.url");
    let (url, https) = absolute_url(&url_key, &raw.url)?;
    if https {
        return Err(invalid(
            url_key,
            "https is not supported yet: use an http:// endpoint reachable only by Portcullis",
        ));
    }
    let path = match url.path() {
        "" => "/",
        path => path,
    };
    check_canonical_path(path).map_err(|m| invalid(&url_key, format!("path {m}")))?;
    let authority = url
        .authority()
        .ok_or_else(|| invalid(&url_key, "must name a host"))?;
    if !is_loopback_host(authority.host()) {
        warnings.push(format!(
            "{url_key}: `{}` is not loopback; passwords travel to it in clear text, so the \
             network in between must be trusted",
            authority.host()
        ));
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &raw.headers {
        let key = format!("{KEY}.headers.{name}");
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(&key, "is not a header name"))?;
        if CHECK_OWN_HEADERS.contains(&header.as_str()) {
            return Err(invalid(&key, "is written by Portcullis itself"));
        }
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| invalid(&key, "the value is not a valid header value"))?;
        value.set_sensitive(true);
        headers.append(header, value);
    }
    let field = |name: &str, text: &str| {
        if text.is_empty() {
            Err(invalid(format!("{KEY}.{name}"), "must not be empty"))
        } else {
            Ok(text.to_owned())
        }
    };
    let user_field = field("user_field", &raw.user_field)?;
    let roles_field = field("roles_field", &raw.roles_field)?;
    if user_field == roles_field {
        return Err(invalid(
            format!("{KEY}.roles_field"),
            "must differ from user_field",
        ));
    }
    Ok(UpstreamCheckConfig {
        url,
        timeout: positive_duration(&format!("{KEY}.timeout"), &raw.timeout)?,
        headers,
        user_field,
        roles_field,
        max_session_age: positive_duration(
            &format!("{KEY}.max_session_age"),
            &raw.max_session_age,
        )?,
    })
}

/// When the check endpoint shares `upstream`'s scheme, host and port (loopback names count as
/// one host), the proxy path that reaches it, and everything under it, is denied: nobody may try
/// passwords there around the regulation. An endpoint outside the upstream's path prefix cannot
/// be reached through the proxy at all.
fn denied_paths(check: &Uri, upstream: &Uri) -> RuleSet {
    let none = RuleSet::new(Vec::new(), Allow::Anonymous);
    let (Some(a), Some(b)) = (check.authority(), upstream.authority()) else {
        return none;
    };
    let same_host = a.host().eq_ignore_ascii_case(b.host())
        || (is_loopback_host(a.host()) && is_loopback_host(b.host()));
    if !same_host || a.port_u16().unwrap_or(80) != b.port_u16().unwrap_or(80) {
        return none;
    }
    let prefix = upstream.path().trim_end_matches('/');
    let Some(rest) = check.path().strip_prefix(prefix) else {
        return none;
    };
    let pattern = match rest.trim_end_matches('/') {
        "" => PathPattern::Exact("/".into()),
        path if path.starts_with('/') => PathPattern::Prefix(format!("{path}/")),
        // `/apix` is not under the prefix `/api`.
        _ => return none,
    };
    let rule = Rule {
        path: pattern,
        methods: None,
        roles: Vec::new(),
        allow: Allow::Deny,
    };
    RuleSet::new(vec![rule], Allow::Anonymous)
}

/// `identity_headers`; `session_secrets` may not double as the assertion secret.
pub(super) fn identity_headers(
    raw: &RawIdentityHeaders,
    base_dir: &Path,
    session_secrets: &[Secret<Vec<u8>>],
) -> Result<IdentityHeaders, ConfigError> {
    let user = header_name("identity_headers.user", &raw.user)?;
    let roles = header_name("identity_headers.roles", &raw.roles)?;
    let optional =
        |key: &str, text: &Option<String>| text.as_deref().map(|t| header_name(key, t)).transpose();
    let display_name = optional("identity_headers.display_name", &raw.display_name)?;
    let email = optional("identity_headers.email", &raw.email)?;
    let assertion = raw
        .assertion
        .as_ref()
        .map(|a| assertion(a, base_dir, session_secrets))
        .transpose()?;
    let mut named: Vec<(&str, &HeaderName)> = vec![
        ("identity_headers.user", &user),
        ("identity_headers.roles", &roles),
    ];
    named.extend(
        display_name
            .iter()
            .map(|n| ("identity_headers.display_name", n)),
    );
    named.extend(email.iter().map(|n| ("identity_headers.email", n)));
    named.extend(
        assertion
            .iter()
            .map(|a| ("identity_headers.assertion.header", &a.header)),
    );
    for (i, (key, name)) in named.iter().enumerate() {
        if let Some((other, _)) = named[..i].iter().find(|(_, n)| n == name) {
            return Err(invalid(*key, format!("must differ from {other}")));
        }
    }
    let mut strip = Vec::with_capacity(raw.strip.len());
    for (i, pattern) in raw.strip.iter().enumerate() {
        let normalized = pattern.to_ascii_lowercase().replace('_', "-");
        let name = normalized.strip_suffix('*').unwrap_or(&normalized);
        if name.is_empty() || !name.bytes().all(is_tchar) || name.contains('*') {
            return Err(invalid(
                format!("identity_headers.strip[{i}]"),
                format!("`{pattern}` is neither a header name nor a `prefix*` pattern"),
            ));
        }
        strip.push(normalized);
    }
    Ok(IdentityHeaders {
        user,
        roles,
        display_name,
        email,
        assertion,
        strip,
    })
}

fn assertion(
    raw: &RawAssertion,
    base_dir: &Path,
    session_secrets: &[Secret<Vec<u8>>],
) -> Result<AssertionConfig, ConfigError> {
    const KEY: &str = "identity_headers.assertion";
    let header = header_name(&format!("{KEY}.header"), &raw.header)?;
    let text = |name: &str, value: &str| {
        if value.is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
            Err(invalid(
                format!("{KEY}.{name}"),
                "must be 1 to 256 characters without control characters",
            ))
        } else {
            Ok(value.to_owned())
        }
    };
    let issuer = text("issuer", &raw.issuer)?;
    let audience = text("audience", &raw.audience)?;
    let kid = raw.kid.as_deref().map(|k| text("kid", k)).transpose()?;
    let signer = match raw.algorithm.as_str() {
        "HS256" => {
            if raw.key_file.is_some() {
                return Err(invalid(
                    format!("{KEY}.key_file"),
                    "is for EdDSA; HS256 uses secret",
                ));
            }
            let key = format!("{KEY}.secret");
            let secret = raw
                .secret
                .as_deref()
                .ok_or_else(|| invalid(&key, "is required with HS256"))?;
            if session_secrets
                .iter()
                .any(|s| s.expose().as_slice() == secret.as_bytes())
            {
                return Err(invalid(
                    &key,
                    "must differ from every session.secrets entry: the upstream holds this one",
                ));
            }
            AssertionSigner::hs256(secret.as_bytes(), kid)
                .map_err(|e| invalid(key, e.to_string()))?
        }
        "EdDSA" => {
            if raw.secret.is_some() {
                return Err(invalid(
                    format!("{KEY}.secret"),
                    "is for HS256; EdDSA uses key_file",
                ));
            }
            let key = format!("{KEY}.key_file");
            let name = raw
                .key_file
                .as_deref()
                .ok_or_else(|| invalid(&key, "is required with EdDSA"))?;
            let path = base_dir.join(name);
            let pem = std::fs::read(&path)
                .map_err(|e| invalid(&key, format!("cannot read `{}`: {e}", path.display())))?;
            AssertionSigner::ed25519_pem(&pem, kid)
                .map_err(|e| invalid(&key, format!("`{}`: {e}", path.display())))?
        }
        other => {
            return Err(invalid(
                format!("{KEY}.algorithm"),
                format!("must be HS256 or EdDSA, not `{other}`"),
            ))
        }
    };
    Ok(AssertionConfig {
        header,
        issuer,
        audience,
        signer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(check: &str, upstream: &str) -> Vec<Rule> {
        denied_paths(&check.parse().unwrap(), &upstream.parse().unwrap())
            .rules()
            .to_vec()
    }

    fn prefix(path: &str) -> Vec<Rule> {
        vec![Rule {
            path: PathPattern::Prefix(path.into()),
            methods: None,
            roles: Vec::new(),
            allow: Allow::Deny,
        }]
    }

    #[test]
    fn the_check_path_is_denied_only_behind_the_same_origin() {
        let up = "http://127.0.0.1:3000/";
        assert_eq!(
            denied("http://127.0.0.1:3000/auth/check", up),
            prefix("/auth/check/")
        );
        assert_eq!(
            denied("http://localhost:3000/auth/check", up),
            prefix("/auth/check/")
        );
        assert!(denied("http://127.0.0.1:3001/auth/check", up).is_empty());
        assert!(denied("http://10.0.0.1:3000/auth/check", up).is_empty());
        // Behind a path prefix: the proxy path is what follows the prefix.
        let api = "http://api.internal:80/api";
        assert_eq!(
            denied("http://API.internal/api/auth/check", api),
            prefix("/auth/check/")
        );
        assert!(denied("http://api.internal/auth/check", api).is_empty());
        assert!(denied("http://api.internal/apix/check", api).is_empty());
        assert_eq!(
            denied("http://api.internal/api", api)[0].path,
            PathPattern::Exact("/".into())
        );
    }

    #[test]
    fn sources_default_and_order() {
        let mut w = Vec::new();
        assert_eq!(sources(None, false, &mut w).unwrap(), [Source::Local]);
        assert_eq!(
            sources(None, true, &mut w).unwrap(),
            [Source::Local, Source::UpstreamCheck]
        );
        let list = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            sources(Some(&list(&["upstream_check"])), true, &mut w).unwrap(),
            [Source::UpstreamCheck]
        );
        assert!(w.is_empty());
        assert_eq!(
            sources(Some(&list(&["local"])), true, &mut w).unwrap(),
            [Source::Local]
        );
        assert_eq!(w.len(), 1, "configured but unused: {w:?}");
        for bad in [&[][..], &["ldap"], &["local", "local"], &["upstream_check"]] {
            assert!(sources(Some(&list(bad)), false, &mut w).is_err(), "{bad:?}");
        }
        assert!(sources(Some(&list(&["upstream_check", "local"])), true, &mut w).is_err());
    }
}
