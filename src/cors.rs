//! CORS for single-page apps on other origins the operator listed (`cors.allowed_origins`).
//!
//! Portcullis answers preflights to its own paths and adds the allow-origin and
//! allow-credentials headers to the responses it writes itself (session API answers, and its
//! 401 / 403 / 429 refusals), so a listed app can read them. Preflights to upstream paths are
//! forwarded without a session lookup and answered by the upstream, which owns its CORS policy.
//! An origin not listed gets no CORS header at all. Pure: no I/O.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::config::CorsConfig;
use crate::response::{self, Body};

/// The request's `Origin` when it is exactly one value and listed in `cors.allowed_origins`.
pub fn allowed_origin<'h>(headers: &'h HeaderMap, cors: &CorsConfig) -> Option<&'h HeaderValue> {
    if cors.allowed_origins.is_empty() {
        return None;
    }
    let mut values = headers.get_all(header::ORIGIN).iter();
    let origin = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let text = origin.to_str().ok()?.to_ascii_lowercase();
    cors.allowed_origins.contains(&text).then_some(origin)
}

/// A CORS preflight: a bodiless `OPTIONS` with `Origin` and `Access-Control-Request-Method`
/// (browsers never send a preflight with a body; one that has a body is an ordinary `OPTIONS`).
/// Returns the method asked for; an unreadable one is `Err`.
pub fn preflight_method(method: &Method, headers: &HeaderMap) -> Option<Result<Method, ()>> {
    if method != Method::OPTIONS || !headers.contains_key(header::ORIGIN) {
        return None;
    }
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes() != b"0");
    if has_body {
        return None;
    }
    let requested = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    Some(Method::from_bytes(requested.as_bytes()).map_err(|_| ()))
}

/// Let `origin` read a response Portcullis wrote, with credentials.
pub fn decorate(headers: &mut HeaderMap, origin: &HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The answer to a preflight to one of Portcullis's own paths (the CORS headers themselves are
/// added by [`decorate`] like on every response Portcullis writes).
pub fn preflight_response(methods: &'static str, cors: &CorsConfig) -> Response<Body> {
    let mut response = response::empty(StatusCode::NO_CONTENT);
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        cors.allowed_headers.clone(),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(cors.max_age),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors() -> CorsConfig {
        CorsConfig {
            allowed_origins: vec!["https://app.example.test".into()],
            allowed_headers: HeaderValue::from_static("content-type"),
            max_age: 600,
        }
    }

    use crate::headers::testing::header_map as with;

    #[test]
    fn only_one_listed_origin_is_allowed() {
        let c = cors();
        assert!(allowed_origin(&with(&[("origin", "https://app.example.test")]), &c).is_some());
        assert!(allowed_origin(&with(&[("origin", "https://APP.example.test")]), &c).is_some());
        for h in [
            with(&[]),
            with(&[("origin", "https://attacker.example")]),
            with(&[("origin", "null")]),
            with(&[
                ("origin", "https://app.example.test"),
                ("origin", "https://app.example.test"),
            ]),
        ] {
            assert!(allowed_origin(&h, &c).is_none(), "{h:?}");
        }
        let none = CorsConfig {
            allowed_origins: vec![],
            ..cors()
        };
        assert!(allowed_origin(&with(&[("origin", "https://app.example.test")]), &none).is_none());
    }

    #[test]
    fn a_preflight_is_options_with_origin_and_a_requested_method() {
        let h = with(&[
            ("origin", "https://app.example.test"),
            ("access-control-request-method", "DELETE"),
        ]);
        assert_eq!(
            preflight_method(&Method::OPTIONS, &h),
            Some(Ok(Method::DELETE))
        );
        assert_eq!(preflight_method(&Method::GET, &h), None);
        let no_method = with(&[("origin", "https://app.example.test")]);
        assert_eq!(preflight_method(&Method::OPTIONS, &no_method), None);
        let bad = with(&[
            ("origin", "https://app.example.test"),
            ("access-control-request-method", "GE T"),
        ]);
        assert_eq!(preflight_method(&Method::OPTIONS, &bad), Some(Err(())));
        for body in [("content-length", "16"), ("transfer-encoding", "chunked")] {
            let mut with_body = h.clone();
            with_body.append(body.0, body.1.parse().unwrap());
            assert_eq!(
                preflight_method(&Method::OPTIONS, &with_body),
                None,
                "{body:?}"
            );
        }
        let mut empty = h.clone();
        empty.append("content-length", "0".parse().unwrap());
        assert_eq!(
            preflight_method(&Method::OPTIONS, &empty),
            Some(Ok(Method::DELETE))
        );
    }

    #[test]
    fn decorated_responses_name_the_origin_and_allow_credentials() {
        let mut h = HeaderMap::new();
        decorate(
            &mut h,
            &HeaderValue::from_static("https://app.example.test"),
        );
        assert_eq!(h["access-control-allow-origin"], "https://app.example.test");
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert_eq!(h["vary"], "Origin");
        let r = preflight_response("GET, POST", &cors());
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers()["access-control-allow-methods"], "GET, POST");
        assert_eq!(r.headers()["access-control-allow-headers"], "content-type");
        assert_eq!(r.headers()["access-control-max-age"], "600");
        assert_eq!(r.headers()["cache-control"], "no-store");
    }
}
