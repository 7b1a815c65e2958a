//! The forward-auth endpoint (`forward_auth.path`, `/.portcullis/auth` by default): a decision
//! for another proxy (nginx `auth_request`, Traefik ForwardAuth, Caddy `forward_auth`) that builds
//! the upstream request itself.
//!
//! The proxy describes the client's request in `X-Forwarded-Method`, `-Proto`, `-Host` and `-Uri`
//! (or nginx's `X-Original-URI`), and passes the client's own headers (cookies, origin evidence)
//! as they are. The description is believed only from a peer in `trusted_proxies`; from anyone
//! else it is ignored, so there is no original request and the answer is 400. A description that
//! is missing, repeated or unreadable is 400 too: every proxy treats an answer other than 2xx,
//! 401 and 403 as an error, never as an allow. The described request is then routed and judged
//! exactly like an inline one ([`gateway::authorize`]): 200 with the identity headers, 200 without
//! them where the rules allow anonymous access (or `optional` without a session), or the inline
//! refusal (401, 403, 503). The answer never carries a header the client sent.

use http::header::{HeaderMap, HeaderName};
use http::uri::{Authority, PathAndQuery};
use http::{Method, Request, Response, StatusCode};

use crate::access::CanonicalPath;
use crate::client_addr::is_trusted;
use crate::context::RequestContext;
use crate::csrf;
use crate::error::RequestError;
use crate::gateway::{self, AccessRequest};
use crate::response::{self, Body};
use crate::state::{AppState, ConnInfo};

/// The methods the endpoint answers.
const ALLOW: &str = "GET, HEAD";

const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");

/// The client's request, as a trusted proxy describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalRequest {
    /// The client's method.
    pub method: Method,
    /// The client's path, canonical (the query plays no part in access).
    pub path: CanonicalPath,
    /// The origin the client addressed: `public_url`'s, else the described scheme and host.
    pub own_origin: Option<String>,
}

/// What the forwarding headers say, before any of it is interpreted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Described<'h> {
    method: Option<&'h str>,
    proto: Option<&'h str>,
    host: Option<&'h str>,
    uri: Option<&'h str>,
}

/// Read the client's request from a forward-auth request that arrived on `conn`: the method
/// first (405), then who may describe one (400 unless a trusted proxy), then the description.
pub fn describe<B>(
    state: &AppState,
    conn: &ConnInfo,
    request: &Request<B>,
) -> Result<OriginalRequest, RequestError> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return Err(RequestError::MethodNotAllowed { allow: ALLOW });
    }
    let config = &state.config;
    if !is_trusted(conn.peer.ip(), &config.trusted_proxies) {
        // Its forwarding headers are the client's own say: ignored, so nothing describes a request.
        return Err(RequestError::BadRequest(
            "forward-auth request from a peer not in trusted_proxies",
        ));
    }
    let described = read_headers(request.headers())?;
    let method = original_method(described.method)?;
    let uri = described
        .uri
        .ok_or(RequestError::BadRequest("no original URI"))?;
    let target = original_path(uri)?;
    let path = CanonicalPath::parse(target.path(), &config.paths)?;
    // The other proxy forwards the target as the client sent it, not the canonical path judged
    // here: a spelling the upstream could resolve differently (`/admin/../public/a`, `%2e`,
    // `%61dmin`, `//`) is refused rather than judged (escapes may differ only in hex case).
    if !path.as_str().eq_ignore_ascii_case(target.path()) {
        return Err(RequestError::BadRequest(
            "original URI is not in canonical form",
        ));
    }
    // What a method-override header asks for is not the method judged here, and the other proxy
    // passes the header on.
    if crate::headers::has_method_override(request.headers()) {
        return Err(RequestError::BadRequest(
            "method-override header in a forward-auth request",
        ));
    }
    let https = match described.proto {
        None => false,
        Some(p) if p.eq_ignore_ascii_case("http") => false,
        Some(p) if p.eq_ignore_ascii_case("https") => true,
        Some(_) => return Err(RequestError::BadRequest("unreadable X-Forwarded-Proto")),
    };
    let host = described.host.map(original_host).transpose()?;
    let own_origin = csrf::own_origin(
        config.public_url.as_ref().map(|u| u.origin.as_str()),
        https,
        host,
    );
    Ok(OriginalRequest {
        method,
        path,
        own_origin,
    })
}

/// Judge `original` as the gateway would, with the client's headers the proxy passed on, and
/// answer: 200 (with the identity headers when there is an identity) or the refusal.
pub async fn decide<B>(
    state: &AppState,
    request: &Request<B>,
    original: OriginalRequest,
    ctx: &mut RequestContext,
) -> Result<Response<Body>, RequestError> {
    // nginx does not pass `Upgrade` to its auth subrequest, but a WebSocket handshake's own
    // headers arrive: such a request is origin-checked like an inline upgrade.
    let headers = request.headers();
    let upgrade = headers.contains_key(http::header::UPGRADE)
        || headers.contains_key(http::header::SEC_WEBSOCKET_KEY)
        || headers.contains_key(http::header::SEC_WEBSOCKET_VERSION)
        || headers
            .get_all(SEC_FETCH_MODE)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if upgrade
        && !csrf::passes(
            headers,
            original.own_origin.as_deref(),
            &state.config.csrf.allowed_origins,
        )
    {
        return Err(RequestError::Csrf);
    }
    let access = AccessRequest {
        method: &original.method,
        path: &original.path,
        headers,
        own_origin: original.own_origin,
    };
    let identity = gateway::authorize(state, &access, ctx).await?;
    let mut response = response::empty(StatusCode::OK);
    if let Some(identity) = identity {
        gateway::inject_identity(state, response.headers_mut(), &identity);
        ctx.user = Some(identity.user);
    }
    Ok(response)
}

/// The description headers, each at most once (a repeated one is ambiguous: 400), as text. The
/// URI is `X-Forwarded-Uri`, or `X-Original-URI` without it; both, differing, is 400.
fn read_headers(headers: &HeaderMap) -> Result<Described<'_>, RequestError> {
    let forwarded_uri = single(headers, &X_FORWARDED_URI)?;
    let original_uri = single(headers, &X_ORIGINAL_URI)?;
    let uri = match (forwarded_uri, original_uri) {
        (Some(a), Some(b)) if a != b => {
            return Err(RequestError::BadRequest(
                "X-Forwarded-Uri and X-Original-URI disagree",
            ))
        }
        (Some(uri), _) | (None, Some(uri)) => Some(uri),
        (None, None) => None,
    };
    Ok(Described {
        method: single(headers, &X_FORWARDED_METHOD)?,
        proto: single(headers, &X_FORWARDED_PROTO)?,
        host: single(headers, &X_FORWARDED_HOST)?,
        uri,
    })
}

/// `Ok(None)` when absent; 400 when repeated or not visible ASCII.
fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h str>, RequestError> {
    crate::headers::single(headers, name)
        .map_err(|_| RequestError::BadRequest("repeated or unreadable forward-auth header"))
}

/// The described method: required, a valid token, and never one Portcullis refuses whatever the
/// target (TRACE, CONNECT), so a `methods:` rule cannot be bypassed by leaving it out.
fn original_method(method: Option<&str>) -> Result<Method, RequestError> {
    let text = method.ok_or(RequestError::BadRequest("no original method"))?;
    let method = Method::from_bytes(text.as_bytes())
        .map_err(|_| RequestError::BadRequest("unreadable original method"))?;
    if method == Method::TRACE || method == Method::CONNECT {
        return Err(RequestError::BadRequest("original method never allowed"));
    }
    Ok(method)
}

/// The described request target: origin form only (`/path?query`); an absolute URL, `*`, an
/// empty value, a fragment or anything that does not parse is 400.
fn original_path(uri: &str) -> Result<PathAndQuery, RequestError> {
    if !uri.starts_with('/') || uri.contains('#') {
        return Err(RequestError::BadRequest("original URI not in origin form"));
    }
    uri.parse::<PathAndQuery>()
        .map_err(|_| RequestError::BadRequest("unreadable original URI"))
}

/// The described host: one authority without userinfo.
fn original_host(host: &str) -> Result<&str, RequestError> {
    match host.parse::<Authority>() {
        Ok(authority) if !host.contains('@') && authority.as_str() == host => Ok(host),
        _ => Err(RequestError::BadRequest("unreadable X-Forwarded-Host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    use crate::headers::testing::header_map as map;

    #[test]
    fn the_uri_comes_from_either_header_and_they_must_agree() {
        let read =
            |pairs: &[(&str, &str)]| read_headers(&map(pairs)).map(|d| d.uri.map(str::to_owned));
        assert_eq!(
            read(&[("x-forwarded-uri", "/a")]).unwrap(),
            Some("/a".into())
        );
        assert_eq!(
            read(&[("x-original-uri", "/b")]).unwrap(),
            Some("/b".into())
        );
        assert_eq!(
            read(&[("x-forwarded-uri", "/a"), ("x-original-uri", "/a")]).unwrap(),
            Some("/a".into())
        );
        assert!(read(&[("x-forwarded-uri", "/a"), ("x-original-uri", "/b")]).is_err());
        assert_eq!(read(&[]).unwrap(), None);
    }

    #[test]
    fn repeated_or_unreadable_description_headers_are_refused() {
        for name in [
            "x-forwarded-method",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-forwarded-uri",
            "x-original-uri",
        ] {
            assert!(
                read_headers(&map(&[(name, "a"), (name, "a")])).is_err(),
                "{name}"
            );
            let mut h = HeaderMap::new();
            h.insert(
                HeaderName::from_static(name),
                HeaderValue::from_bytes(b"/\xff").unwrap(),
            );
            assert!(read_headers(&h).is_err(), "{name}");
        }
    }

    #[test]
    fn only_an_origin_form_uri_is_an_original_path() {
        for ok in ["/", "/a/b?x=/public/", "//admin/users", "/admin/%zz"] {
            assert!(original_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "http://[::1",
            "http://gw.example.test/a",
            "*",
            "admin/users",
            "/a#frag",
            "/a b",
        ] {
            assert!(original_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_method_is_required_and_a_token() {
        assert_eq!(original_method(Some("GET")).unwrap(), Method::GET);
        assert_eq!(original_method(Some("PATCH")).unwrap(), Method::PATCH);
        for bad in [None, Some(""), Some("G T"), Some("TRACE"), Some("CONNECT")] {
            assert!(original_method(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_host_is_one_authority_without_userinfo() {
        assert_eq!(
            original_host("gw.example.test:8443").unwrap(),
            "gw.example.test:8443"
        );
        assert_eq!(original_host("[::1]:80").unwrap(), "[::1]:80");
        for bad in ["", "evil@gw.example.test", "a, b", "gw/x", "a b"] {
            assert!(original_host(bad).is_err(), "{bad:?}");
        }
    }
}
