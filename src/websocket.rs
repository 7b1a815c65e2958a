//! The WebSocket opening handshake (RFC 6455 §4), as far as a proxy must read it: which upgrade
//! requests are one, which `101` answers complete one, and the one pair of hop-by-hop headers that
//! crosses with it. Pure: no I/O. Every other upgrade (`h2c`, ...) is never passed on: its headers
//! are hop-by-hop and [`crate::headers::remove_hop_by_hop`] removes them.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Version};

/// Whether `name`'s fields, read as one comma-separated list, contain `token` (any case).
fn lists_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether a request is a WebSocket opening handshake (RFC 6455 §4.1): an HTTP/1.1 GET without a
/// body whose `Connection` names `upgrade`, whose `Upgrade` offers `websocket`, with one
/// `Sec-WebSocket-Key` and a `Sec-WebSocket-Version`. Any other upgrade (`h2c`, ...) is not one:
/// its headers are removed like every hop-by-hop header and the request goes on as a plain one.
/// Call before [`crate::headers::remove_hop_by_hop`], which removes what this reads.
pub fn is_handshake(method: &Method, version: Version, headers: &HeaderMap) -> bool {
    // A body would make the bytes after the head ambiguous: request body or tunnel data.
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes() != b"0");
    *method == Method::GET
        && version == Version::HTTP_11
        && !has_body
        && lists_token(headers, &header::CONNECTION, "upgrade")
        && lists_token(headers, &header::UPGRADE, "websocket")
        && headers.get_all(header::SEC_WEBSOCKET_KEY).iter().count() == 1
        && headers.contains_key(header::SEC_WEBSOCKET_VERSION)
}

/// Whether an upstream's `101` switches to WebSocket, the only protocol Portcullis forwards an
/// upgrade to (RFC 6455 §4.2.2: `Upgrade: websocket` alone, `Connection` naming `upgrade`).
pub fn is_switch(headers: &HeaderMap) -> bool {
    let mut upgrades = headers.get_all(header::UPGRADE).iter();
    let only_websocket = matches!(
        (upgrades.next(), upgrades.next()),
        (Some(v), None) if v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket")
    );
    only_websocket && lists_token(headers, &header::CONNECTION, "upgrade")
}

/// Put back exactly `Connection: upgrade` and `Upgrade: websocket` after
/// [`crate::headers::remove_hop_by_hop`] removed every hop-by-hop header of a WebSocket handshake
/// (request or `101` response).
pub fn restore_upgrade_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::headers::testing::header_map as map;

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut n: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        n.sort_unstable();
        n
    }

    fn handshake(extra: &[(&str, &str)]) -> HeaderMap {
        let mut h = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
        ]);
        for (n, v) in extra {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_an_http11_get_websocket_handshake_is_an_upgrade() {
        let ws = |m: Method, v: Version, h: &HeaderMap| is_handshake(&m, v, h);
        assert!(ws(Method::GET, Version::HTTP_11, &handshake(&[])));
        assert!(ws(
            Method::GET,
            Version::HTTP_11,
            &handshake(&[("content-length", "0")])
        ));
        let mut offered = handshake(&[]);
        offered.insert("upgrade", HeaderValue::from_static("h2c, WebSocket"));
        assert!(ws(Method::GET, Version::HTTP_11, &offered));

        assert!(!ws(Method::POST, Version::HTTP_11, &handshake(&[])));
        assert!(!ws(Method::GET, Version::HTTP_10, &handshake(&[])));
        assert!(!ws(Method::GET, Version::HTTP_2, &handshake(&[])));
        for body in [("content-length", "5"), ("transfer-encoding", "chunked")] {
            assert!(!ws(Method::GET, Version::HTTP_11, &handshake(&[body])));
        }
        assert!(!ws(
            Method::GET,
            Version::HTTP_11,
            &handshake(&[("sec-websocket-key", "second")])
        ));
        for (name, value) in [
            ("upgrade", "h2c"),
            ("upgrade", "websocketx"),
            ("connection", "keep-alive"),
        ] {
            let mut h = handshake(&[]);
            h.insert(name, HeaderValue::from_static(value));
            assert!(!ws(Method::GET, Version::HTTP_11, &h), "{name}: {value}");
        }
        for missing in ["sec-websocket-key", "sec-websocket-version"] {
            let mut h = handshake(&[]);
            h.remove(missing);
            assert!(!ws(Method::GET, Version::HTTP_11, &h), "{missing}");
        }
    }

    #[test]
    fn a_websocket_handshake_keeps_only_the_upgrade_pair_of_hop_by_hop_headers() {
        let mut h = handshake(&[
            ("connection", "X-Auth-User, TE"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("http2-settings", "AAA"),
            ("proxy-authorization", "Basic x"),
            ("x-auth-user", "mallory"),
        ]);
        crate::headers::remove_hop_by_hop(&mut h);
        restore_upgrade_headers(&mut h);
        assert_eq!(
            names(&h),
            [
                "connection",
                "sec-websocket-key",
                "sec-websocket-version",
                "upgrade"
            ]
        );
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
    }

    #[test]
    fn only_a_switch_to_websocket_is_a_websocket_switch() {
        assert!(is_switch(&map(&[
            ("connection", "Upgrade"),
            ("upgrade", "WebSocket")
        ])));
        for pairs in [
            &[("connection", "Upgrade"), ("upgrade", "h2c")][..],
            &[("connection", "Upgrade"), ("upgrade", "websocket, h2c")],
            &[("connection", "keep-alive"), ("upgrade", "websocket")],
            &[("upgrade", "websocket")],
            &[("connection", "Upgrade")],
        ] {
            assert!(!is_switch(&map(pairs)), "{pairs:?}");
        }
    }
}
