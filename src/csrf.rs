//! The origin check: another site's page must not act with a browser's session cookie.
//!
//! Browsers attach cookies to cross-site requests (forms, `fetch` with credentials, WebSocket
//! handshakes), so a request that would act under a cookie must show that it comes from a page of
//! our own origin, or of an origin the operator listed. The evidence is, in order:
//! `Sec-Fetch-Site` (`same-origin` or `none` passes), then `Origin` (must be the own origin or
//! listed; the literal `null` never matches), and `Referer` only when both are absent. A request
//! with none of the three is not from a browser that could be tricked, and passes.
//!
//! Pure: no I/O, unit-tested here; [`request_passes`] gathers the inputs from a request that
//! arrived inline, and the forward-auth endpoint gathers them from what a trusted proxy describes.

use http::header::{self, HeaderMap, HeaderName};
use http::uri::{Authority, Uri};

use crate::client_addr::is_trusted;
use crate::headers::NotSingle;
use crate::state::{AppState, ConnInfo};

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Whether the request described by `headers` may act under a cookie, given the origin the
/// gateway is reached on (`own`, if known) and the other origins allowed.
pub fn passes(headers: &HeaderMap, own: Option<&str>, allowed: &[String]) -> bool {
    let matches = |origin: &str| {
        origin != "null" && (own == Some(origin) || allowed.iter().any(|a| a == origin))
    };
    let site = single(headers, &SEC_FETCH_SITE);
    if let Some(Ok(site)) = site {
        if site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none") {
            return true;
        }
    }
    match single(headers, &header::ORIGIN) {
        Some(Ok(origin)) => return matches(&origin.to_ascii_lowercase()),
        Some(Err(NotSingle)) => return false,
        None => {}
    }
    if site.is_some() {
        // A browser that says the request is cross-site but names no origin: nothing vouches.
        return false;
    }
    match single(headers, &header::REFERER) {
        Some(Ok(referer)) => url_origin(referer).is_some_and(|o| matches(&o)),
        Some(Err(NotSingle)) => false,
        None => true,
    }
}

/// The origin a browser sees the gateway at: `public_url`'s when set, otherwise `scheme://`
/// plus the request authority, normalized like an `Origin` header (lower-case, default port
/// omitted). `None` when the authority is missing or unreadable.
pub fn own_origin(
    public_url: Option<&str>,
    https: bool,
    authority: Option<&str>,
) -> Option<String> {
    if let Some(origin) = public_url {
        return Some(origin.to_owned());
    }
    let authority: Authority = authority?.parse().ok()?;
    Some(origin_of(if https { "https" } else { "http" }, &authority))
}

/// Gather the inputs of [`passes`] from a request that arrived on `conn` and check them.
pub fn request_passes(state: &AppState, conn: &ConnInfo, uri: &Uri, headers: &HeaderMap) -> bool {
    let own = request_own_origin(state, conn, uri, headers);
    passes(headers, own.as_deref(), &state.config.csrf.allowed_origins)
}

/// The own origin of a request that arrived on `conn` ([`own_origin`]): the scheme follows the
/// listener's TLS, or `X-Forwarded-Proto` from a trusted proxy, and the authority is the request's
/// (`:authority` on HTTP/2, `Host` on HTTP/1.1).
pub fn request_own_origin(
    state: &AppState,
    conn: &ConnInfo,
    uri: &Uri,
    headers: &HeaderMap,
) -> Option<String> {
    let config = &state.config;
    let https = conn.tls
        || (is_trusted(conn.peer.ip(), &config.trusted_proxies)
            && forwarded_proto(headers).is_some_and(|p| p.eq_ignore_ascii_case("https")));
    let authority = match uri.authority() {
        Some(a) => Some(a.as_str()),
        None => headers.get(header::HOST).and_then(|h| h.to_str().ok()),
    };
    own_origin(
        config.public_url.as_ref().map(|u| u.origin.as_str()),
        https,
        authority,
    )
}

/// The value a trusted proxy wrote last: the right-most element of the last field.
fn forwarded_proto(headers: &HeaderMap) -> Option<&str> {
    let last = headers.get_all(&X_FORWARDED_PROTO).iter().next_back()?;
    last.to_str().ok()?.rsplit(',').next().map(str::trim)
}

/// `None` when the header is absent, `Some(Err)` when it is repeated or not text.
fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<Result<&'h str, NotSingle>> {
    crate::headers::single(headers, name).transpose()
}

/// The origin of an absolute http(s) URL, as [`origin_of`] writes it.
fn url_origin(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    Some(origin_of(&scheme, authority))
}

fn origin_of(scheme: &str, authority: &Authority) -> String {
    let host = authority.host().to_ascii_lowercase();
    let default = if scheme == "https" { 443 } else { 80 };
    match authority.port_u16() {
        Some(port) if port != default => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: Option<&str> = Some("https://gw.example.test");

    use crate::headers::testing::header_map as headers;

    fn check(pairs: &[(&str, &str)]) -> bool {
        passes(
            &headers(pairs),
            OWN,
            &["https://app.example.test".to_owned()],
        )
    }

    #[test]
    fn fetch_metadata_same_origin_or_none_passes() {
        assert!(check(&[("sec-fetch-site", "same-origin")]));
        assert!(check(&[("sec-fetch-site", "none")]));
        assert!(check(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://attacker.example")
        ]));
        assert!(!check(&[("sec-fetch-site", "cross-site")]));
        assert!(!check(&[("sec-fetch-site", "same-site")]));
        assert!(!check(&[
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-site", "same-origin")
        ]));
        // Cross-site fetch metadata with a Referer of our own: only Origin could vouch.
        assert!(!check(&[
            ("sec-fetch-site", "cross-site"),
            ("referer", "https://gw.example.test/x")
        ]));
    }

    #[test]
    fn origin_must_be_own_or_listed_and_never_null() {
        assert!(check(&[("origin", "https://gw.example.test")]));
        assert!(check(&[("origin", "https://GW.example.test")]));
        assert!(check(&[("origin", "https://app.example.test")]));
        assert!(check(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://app.example.test")
        ]));
        for bad in [
            "https://attacker.example",
            "http://gw.example.test",
            "https://gw.example.test:8443",
            "https://gw.example.test.attacker.example",
            "null",
            "",
        ] {
            assert!(!check(&[("origin", bad)]), "{bad}");
        }
        assert!(!check(&[
            ("origin", "https://gw.example.test"),
            ("origin", "https://gw.example.test")
        ]));
        // Origin decides alone: a matching Referer does not rescue a foreign Origin.
        assert!(!check(&[
            ("origin", "https://attacker.example"),
            ("referer", "https://gw.example.test/")
        ]));
    }

    #[test]
    fn referer_is_read_only_without_fetch_metadata_and_origin() {
        assert!(check(&[("referer", "https://gw.example.test/page?q=1")]));
        assert!(check(&[("referer", "https://app.example.test:443/")]));
        assert!(!check(&[("referer", "https://attacker.example/")]));
        assert!(!check(&[(
            "referer",
            "https://gw.example.test@attacker.example/"
        )]));
        assert!(!check(&[("referer", "/relative")]));
        assert!(!check(&[("referer", "android-app://gw.example.test/")]));
    }

    #[test]
    fn no_browser_evidence_at_all_passes() {
        assert!(check(&[]));
        assert!(check(&[("user-agent", "curl/8")]));
    }

    #[test]
    fn own_origin_follows_public_url_then_scheme_and_authority() {
        assert_eq!(
            own_origin(
                Some("https://api.example.com"),
                false,
                Some("10.0.0.1:4180")
            )
            .as_deref(),
            Some("https://api.example.com")
        );
        assert_eq!(
            own_origin(None, true, Some("GW.example.test:443")).as_deref(),
            Some("https://gw.example.test")
        );
        assert_eq!(
            own_origin(None, false, Some("127.0.0.1:4180")).as_deref(),
            Some("http://127.0.0.1:4180")
        );
        assert_eq!(
            own_origin(None, false, Some("[::1]:80")).as_deref(),
            Some("http://[::1]")
        );
        assert_eq!(own_origin(None, false, None), None);
        assert_eq!(own_origin(None, false, Some("a b")), None);
    }

    #[test]
    fn forwarded_proto_is_the_last_value_written() {
        let h = headers(&[("x-forwarded-proto", "http, https")]);
        assert_eq!(forwarded_proto(&h), Some("https"));
        let h = headers(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-proto", "http"),
        ]);
        assert_eq!(forwarded_proto(&h), Some("http"));
    }
}
