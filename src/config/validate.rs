//! Validation: the raw file structs become a typed [`Config`].
//!
//! Every check reports the dotted YAML key it concerns (`session.cookie.same_site`,
//! `users[2].username`), so `--check-config` can point at the line to fix. Messages may quote a
//! rejected value, except for secrets, Redis URLs and password hashes, which are never printed.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Uri};
use ipnet::IpNet;

use super::file::{RawAccess, RawConfig, RawUpstream};
use super::{
    AdminConfig, Config, ConfigError, HostHeader, PublicUrl, ServerConfig, ShutdownConfig,
    UpstreamConfig,
};
use crate::access::{Allow, PathPattern, Rule, RuleSet};
use crate::identity::{is_role, Source};

mod browser;
mod endpoints;
mod identity;
mod log;
mod paths;
mod redis;
mod regulation;
mod session;
mod tls;
mod users;

/// Turn the raw file into a [`Config`]; relative file names resolve against `base_dir`.
pub(super) fn build(raw: RawConfig, base_dir: &Path) -> Result<Config, ConfigError> {
    let mut warnings = Vec::new();
    let listen = socket_addr("listen", &raw.listen)?;
    let admin_listen = socket_addr("admin_listen", &raw.admin_listen)?;
    // Port 0 (tests, "any free port") binds two different ports, so equal addresses are fine.
    if listen == admin_listen && listen.port() != 0 {
        return Err(invalid("admin_listen", "must differ from listen"));
    }
    let public_url = raw.public_url.as_deref().map(public_url).transpose()?;
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .enumerate()
        .map(|(i, s)| ip_net(&format!("trusted_proxies[{i}]"), s))
        .collect::<Result<_, _>>()?;
    regulation::warn_without_trusted_proxies(listen, &raw.trusted_proxies, &mut warnings);
    let tls = raw
        .tls
        .as_ref()
        .map(|tls| tls::listener(tls, base_dir))
        .transpose()?;
    let asserted = raw.identity_headers.assertion.is_some();
    let upstream = upstream(&raw.upstream, base_dir, asserted, &mut warnings)?;
    let public_https = public_url.as_ref().is_some_and(|u| u.https);
    let session = session::session(
        &raw.session,
        base_dir,
        listen,
        tls.is_some(),
        public_https,
        &mut warnings,
    )?;
    let session_api_path = endpoints::session_api_path(&raw.session_api.path)?;
    let forward_auth = endpoints::forward_auth(&raw.forward_auth, &session_api_path)?;
    let (identity, denied_paths) = identity::identity(&raw.identity, &upstream.url, &mut warnings)?;
    let regulation = regulation::regulation(&raw.regulation)?;
    let (users, users_file) = users::users(
        &raw.users,
        raw.users_file.as_deref(),
        base_dir,
        identity.max_hash_memory_kib,
        &mut warnings,
    )?;
    if !users.is_empty() && !identity.sources.contains(&Source::Local) {
        warnings.push(
            "identity.sources: `local` is not listed, so the users of users and users_file \
             cannot log in"
                .into(),
        );
    }
    let identity_headers =
        identity::identity_headers(&raw.identity_headers, base_dir, &session.secrets)?;
    let mut own_paths = vec![("session_api.path", session_api_path.as_str())];
    if let Some(path) = forward_auth.served_path() {
        own_paths.push(("forward_auth.path", path));
    }
    let access = access(&raw.access, &own_paths, &mut warnings)?;
    paths::warn_unreachable_rules(&access, &mut warnings);
    let paths = paths::options(&raw.paths)?;
    let shutdown = ShutdownConfig {
        drain_delay: duration("shutdown.drain_delay", &raw.shutdown.drain_delay)?,
        grace_period: duration("shutdown.grace_period", &raw.shutdown.grace_period)?,
    };
    let admin = AdminConfig {
        ready_requires_store: boolean(
            "admin.ready_requires_store",
            &raw.admin.ready_requires_store,
        )?,
    };
    let server = ServerConfig {
        keepalive_timeout: duration("keepalive_timeout", &raw.keepalive_timeout)?,
        header_read_timeout: positive_duration("header_read_timeout", &raw.header_read_timeout)?,
        tls_handshake_timeout: positive_duration(
            "tls_handshake_timeout",
            &raw.tls_handshake_timeout,
        )?,
        max_connections: count("max_connections", &raw.max_connections)?,
        workers: match raw.workers.as_str() {
            "auto" => std::thread::available_parallelism().map_or(1, |n| n.get()),
            text => match count("workers", text)? {
                n if n > MAX_WORKERS => {
                    return Err(invalid("workers", format!("at most {MAX_WORKERS}")))
                }
                n => n,
            },
        },
    };
    let (cors, csrf) = browser::cors_and_csrf(&raw.cors, &raw.csrf)?;
    let login = browser::login(
        raw.login_url.as_deref(),
        &raw.login_return_param,
        &raw.allowed_redirect_hosts,
    )?;
    browser::warn_unless_login_page_is_public(login.as_ref(), &access, &paths, &mut warnings);
    let log = log::log(&raw.log)?;
    Ok(Config {
        listen,
        admin_listen,
        public_url,
        trusted_proxies,
        tls,
        upstream,
        session,
        session_api_path,
        forward_auth,
        users,
        users_file,
        identity_headers,
        access,
        denied_paths,
        paths,
        identity,
        regulation,
        shutdown,
        admin,
        server,
        cors,
        csrf,
        login,
        log,
        warnings,
    })
}

/// Check that `path` is already canonical (what `access::canonicalize` would return unchanged):
/// starts with `/`, no empty, `.` or `..` segments, and only characters that need no escaping.
fn check_canonical_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("must start with /".into());
    }
    if path.contains("//") {
        return Err("must not contain empty segments (//)".into());
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err("must not contain . or .. segments".into());
    }
    match path.chars().find(|&c| !is_path_char(c)) {
        Some(c) => Err(format!(
            "must not contain {c:?} (percent escapes, ;, \\, ?, #, spaces and controls \
             are not allowed)"
        )),
        None => Ok(()),
    }
}

/// RFC 3986 `pchar` and `/`, minus `%` (no escapes) and `;` (path parameters).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,=:@/".contains(c)
}

/// RFC 9110 `tchar` (also RFC 6265 cookie-name characters).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

fn socket_addr(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse()
        .map_err(|_| invalid(key, format!("`{text}` is not an address:port")))
}

fn duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    parse_duration(text).ok_or_else(|| {
        invalid(
            key,
            format!("`{text}` is not a duration (a whole number and ms, s, m or h: 500ms, 30s, 15m, 12h)"),
        )
    })
}

/// `<digits><unit>` with unit `ms`, `s`, `m` or `h`, nothing else: no spaces, no months, no sums.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return None;
    }
    let n: u64 = number.parse().ok()?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }?;
    Some(Duration::from_millis(millis))
}

/// A duration that makes no sense as zero (a timeout that always fires).
fn positive_duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let value = duration(key, text)?;
    if value.is_zero() {
        return Err(invalid(key, "must be greater than zero"));
    }
    Ok(value)
}

fn boolean(key: &str, text: &str) -> Result<bool, ConfigError> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, format!("must be true or false, not `{text}`"))),
    }
}

/// A count that must be at least 1.
/// Most connection worker threads (`workers`).
const MAX_WORKERS: usize = 1024;

fn count(key: &str, text: &str) -> Result<usize, ConfigError> {
    match text.parse::<usize>() {
        Ok(0) => Err(invalid(key, "must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(invalid(key, format!("`{text}` is not a whole number"))),
    }
}

/// `512KiB`, `64MiB`, `1GiB` in KiB.
fn size_kib(key: &str, text: &str) -> Result<u32, ConfigError> {
    let bad = || {
        invalid(
            key,
            format!("`{text}` is not a size (examples: 512KiB, 64MiB, 1GiB)"),
        )
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let number: u64 = text[..digits].parse().map_err(|_| bad())?;
    let factor: u64 = match text[digits..].trim_start() {
        "KiB" => 1,
        "MiB" => 1024,
        "GiB" => 1024 * 1024,
        _ => return Err(bad()),
    };
    let kib = number
        .checked_mul(factor)
        .and_then(|k| u32::try_from(k).ok())
        .ok_or_else(|| invalid(key, "is too large"))?;
    if kib == 0 {
        return Err(invalid(key, "must be greater than zero"));
    }
    Ok(kib)
}

fn ip_net(key: &str, text: &str) -> Result<IpNet, ConfigError> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| invalid(key, format!("`{text}` is not an IP address or CIDR")))
}

fn existing_file(key: &str, base_dir: &Path, name: &str) -> Result<PathBuf, ConfigError> {
    let path = base_dir.join(name);
    if name.is_empty() || !path.is_file() {
        return Err(invalid(
            key,
            format!("`{}` does not exist or is not a file", path.display()),
        ));
    }
    Ok(path)
}

/// An absolute http(s) URL, rejecting what the `http` crate would silently drop or accept.
fn absolute_url(key: &str, text: &str) -> Result<(Uri, bool), ConfigError> {
    if text.contains('#') {
        return Err(invalid(key, "must not have a fragment"));
    }
    let uri: Uri = text
        .parse()
        .map_err(|e| invalid(key, format!("`{text}` is not a URL: {e}")))?;
    let https = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") => false,
        Some(s) if s.eq_ignore_ascii_case("https") => true,
        _ => return Err(invalid(key, "must be an absolute http:// or https:// URL")),
    };
    match uri.authority() {
        Some(a) if a.as_str().contains('@') => {
            Err(invalid(key, "must not contain user information (user@)"))
        }
        Some(a) if !a.host().is_empty() => Ok((uri, https)),
        _ => Err(invalid(key, "must name a host")),
    }
}

fn public_url(text: &str) -> Result<PublicUrl, ConfigError> {
    let (origin, https) = origin("public_url", text)?;
    Ok(PublicUrl { origin, https })
}

/// An http(s) origin as browsers serialize it in `Origin`: `scheme://host[:port]`, lower-cased,
/// default port omitted; and whether it is https. A path (beyond `/`) or a query is an error.
fn origin(key: &str, text: &str) -> Result<(String, bool), ConfigError> {
    let (uri, https) = absolute_url(key, text)?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid(
            key,
            "must be an origin: no path (beyond /) and no query",
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| invalid(key, "must name a host"))?;
    let scheme = if https { "https" } else { "http" };
    let host = authority.host().to_ascii_lowercase();
    let origin = match authority.port_u16() {
        Some(port) if port != if https { 443 } else { 80 } => {
            format!("{scheme}://{host}:{port}")
        }
        _ => format!("{scheme}://{host}"),
    };
    Ok((origin, https))
}

fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `upstream`; `asserted`: a signed identity assertion is configured, so an upstream that is not
/// loopback can still tell requests that came through Portcullis.
fn upstream(
    raw: &RawUpstream,
    base_dir: &Path,
    asserted: bool,
    warnings: &mut Vec<String>,
) -> Result<UpstreamConfig, ConfigError> {
    const KEY: &str = "upstream.url";
    let (uri, https) = absolute_url(KEY, &raw.url)?;
    let (trust, tls_server_name) = tls::upstream(raw, https, base_dir)?;
    if uri.query().is_some() {
        return Err(invalid(KEY, "must not have a query"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| invalid(KEY, "must name a host"))?;
    let prefix = match uri.path().trim_end_matches('/') {
        "" => "/",
        prefix => {
            check_canonical_path(prefix).map_err(|m| invalid(KEY, format!("path prefix {m}")))?;
            prefix
        }
    };
    let url = Uri::builder()
        .scheme(if https { "https" } else { "http" })
        .authority(authority.as_str())
        .path_and_query(prefix)
        .build()
        .map_err(|e| invalid(KEY, e.to_string()))?;
    if !asserted && !is_loopback_host(authority.host()) {
        warnings.push(format!(
            "upstream.url: `{}` is not loopback; identity headers are only trustworthy if the \
             upstream accepts connections only from Portcullis (firewall or NetworkPolicy) or \
             checks identity_headers.assertion",
            authority.host()
        ));
    }
    let host_header = match raw.host_header.as_str() {
        "preserve" => HostHeader::Preserve,
        "upstream" => HostHeader::Upstream,
        literal => match HeaderValue::from_str(literal) {
            Ok(value) if !literal.is_empty() => HostHeader::Literal(value),
            _ => {
                return Err(invalid(
                    "upstream.host_header",
                    format!("`{literal}` is neither preserve, upstream nor a valid host value"),
                ))
            }
        },
    };
    Ok(UpstreamConfig {
        url,
        connect_timeout: positive_duration("upstream.connect_timeout", &raw.connect_timeout)?,
        timeout: positive_duration("upstream.timeout", &raw.timeout)?,
        idle_timeout: positive_duration("upstream.idle_timeout", &raw.idle_timeout)?,
        pool_idle_timeout: duration("upstream.pool_idle_timeout", &raw.pool_idle_timeout)?,
        host_header,
        websocket_max_lifetime: raw
            .websocket_max_lifetime
            .as_deref()
            .map(|text| positive_duration("upstream.websocket_max_lifetime", text))
            .transpose()?,
        trust,
        tls_server_name,
    })
}

fn header_name(key: &str, text: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(text.as_bytes())
        .map_err(|_| invalid(key, format!("`{text}` is not a header name")))
}

fn allow(key: &str, text: &str) -> Result<Allow, ConfigError> {
    match text {
        "anonymous" => Ok(Allow::Anonymous),
        "optional" => Ok(Allow::Optional),
        "authenticated" => Ok(Allow::Authenticated),
        "deny" => Ok(Allow::Deny),
        other => Err(invalid(
            key,
            format!("must be anonymous, optional, authenticated or deny, not `{other}`"),
        )),
    }
}

/// The access rules; a rule inside one of `own_paths` (`(key, path)`: Portcullis answers them
/// itself) warns, as it never applies.
fn access(
    raw: &RawAccess,
    own_paths: &[(&str, &str)],
    warnings: &mut Vec<String>,
) -> Result<RuleSet, ConfigError> {
    let default = match allow("access.default", &raw.default)? {
        Allow::Optional => {
            return Err(invalid(
                "access.default",
                "must be authenticated, deny or anonymous (optional is for rules)",
            ))
        }
        default => default,
    };
    let mut rules = Vec::with_capacity(raw.rules.len());
    for (i, rule) in raw.rules.iter().enumerate() {
        let key = format!("access.rules[{i}]");
        let path = rule.path.as_str();
        check_canonical_path(path).map_err(|m| invalid(format!("{key}.path"), m))?;
        let allow = allow(&format!("{key}.allow"), &rule.allow)?;
        if !rule.roles.is_empty() && allow != Allow::Authenticated {
            return Err(invalid(
                format!("{key}.roles"),
                "roles only apply with allow: authenticated",
            ));
        }
        for (j, role) in rule.roles.iter().enumerate() {
            if !is_role(role) {
                return Err(invalid(
                    format!("{key}.roles[{j}]"),
                    format!("{role:?} is not a valid role (1 to 64 of A-Z a-z 0-9 . _ : -)"),
                ));
            }
        }
        let methods = match &rule.methods {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(invalid(
                    format!("{key}.methods"),
                    "must not be empty (use allow: deny to refuse every method)",
                ))
            }
            Some(list) => Some(methods(&key, list)?),
        };
        let pattern = if path.ends_with('/') {
            PathPattern::Prefix(path.to_owned())
        } else {
            PathPattern::Exact(path.to_owned())
        };
        let covered = path.trim_end_matches('/');
        for (own_key, own) in own_paths {
            if endpoints::is_under(covered, own) {
                warnings.push(format!(
                    "{key}.path: `{path}` belongs to {own_key} `{own}`, \
                     which Portcullis answers itself; this rule never applies"
                ));
            }
        }
        rules.push(Rule {
            path: pattern,
            methods,
            roles: rule.roles.clone(),
            allow,
        });
    }
    Ok(RuleSet::new(rules, default))
}

fn methods(key: &str, list: &[String]) -> Result<Vec<Method>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(j, text)| {
            let upper_token =
                !text.is_empty() && text.bytes().all(|b| is_tchar(b) && !b.is_ascii_lowercase());
            Method::from_bytes(text.as_bytes())
                .ok()
                .filter(|_| upper_token)
                .ok_or_else(|| {
                    invalid(
                        format!("{key}.methods[{j}]"),
                        format!("`{text}` is not an upper-case method name"),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_are_accepted_and_others_rejected() {
        for ok in [
            "/",
            "/a",
            "/a/",
            "/a-b_c.d~e/f:g@h!$&'()*+,=",
            "/.well-known/x",
        ] {
            assert_eq!(check_canonical_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "a", "//", "/a//b", "/.", "/./a", "/a/..", "/a%20b", "/a;b", "/a\\b", "/a?b",
            "/a#b", "/a b", "/a\tb", "/a\u{0}", "/é", "/a\"b",
        ] {
            assert!(check_canonical_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_are_a_number_and_one_unit() {
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(parse_duration("500ms"), ms(500));
        assert_eq!(parse_duration("30s"), ms(30_000));
        assert_eq!(parse_duration("15m"), ms(900_000));
        assert_eq!(parse_duration("12h"), ms(43_200_000));
        assert_eq!(parse_duration("0s"), ms(0));
        for bad in [
            "30 seconds",
            "30 s",
            "30sec",
            "2 minutes",
            "1h30m",
            "12M",
            "30S",
            "s",
            "",
            "-1s",
            "1.5s",
            "30",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes_are_read_in_kib() {
        assert_eq!(size_kib("k", "512KiB").unwrap(), 512);
        assert_eq!(size_kib("k", "64MiB").unwrap(), 65536);
        assert_eq!(size_kib("k", "1 GiB").unwrap(), 1024 * 1024);
        for bad in ["64", "MiB", "64mb", "-1KiB", "4096GiB", "1.5MiB"] {
            assert!(size_kib("k", bad).is_err(), "{bad}");
        }
    }
}
