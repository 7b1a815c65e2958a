//! Request ids: one per request on the proxy listener, in the access log, sent upstream and
//! returned to the client as `X-Request-Id`.
//!
//! A client's `X-Request-Id` is kept only from a peer in `trusted_proxies` (a proxy in front that
//! already assigned one), and only when it is one short, plain token: anything else could forge
//! another request's id in the logs or smuggle odd bytes into them. Otherwise the id is 128
//! random bits in hex.

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The header that carries the id, both ways.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest client id kept, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The id of one request: always a sane value (see [`is_sane`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The client's id when the peer is trusted and it sent exactly one sane value; otherwise a
    /// new one.
    pub fn for_request(headers: &HeaderMap, peer_trusted: bool) -> Self {
        if peer_trusted {
            let mut sent = headers.get_all(X_REQUEST_ID).iter();
            if let (Some(value), None) = (sent.next(), sent.next()) {
                if is_sane(value.as_bytes()) {
                    return Self(value.clone());
                }
            }
        }
        Self::generate()
    }

    /// A new random id: 32 lower-case hex digits, from the thread's CSPRNG (seeded from the
    /// OS), so a request costs no `getrandom` system call.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::fill(&mut bytes);
        let hex = bytes::Bytes::from(hex::encode(bytes));
        Self(HeaderValue::from_maybe_shared(hex).expect("hex is a valid header value"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Sane ids are ASCII by construction.
        self.0.to_str().unwrap_or("-")
    }

    /// The id as a header value.
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

/// Whether a client-sent id may be kept: 1 to [`MAX_REQUEST_ID_LEN`] bytes of
/// `[A-Za-z0-9._:-]`.
pub fn is_sane(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(X_REQUEST_ID, HeaderValue::from_bytes(value).unwrap());
        }
        headers
    }

    #[test]
    fn plain_short_tokens_are_sane_and_nothing_else() {
        for ok in [
            &b"a"[..],
            b"abc-123",
            b"0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c",
            b"9b2c1a4e-7d3f-4c2a-8b1e-0f6d5c4b3a21",
            b"trace:42.span_7",
            &[b'x'; MAX_REQUEST_ID_LEN],
        ] {
            assert!(is_sane(ok), "{:?}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b""[..],
            &[b'x'; MAX_REQUEST_ID_LEN + 1],
            b"has space",
            b"quote\"d",
            b"semi;colon",
            b"a/b",
            b"a=b",
            b"tab\there",
            b"caf\xc3\xa9",
            b"\x7f",
            b"a,b",
        ] {
            assert!(!is_sane(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_trusted_peer_keeps_one_sane_id() {
        let id = RequestId::for_request(&headers(&[b"edge-7"]), true);
        assert_eq!(id.as_str(), "edge-7");
        assert_eq!(id.header_value(), "edge-7");
    }

    #[test]
    fn untrusted_peers_duplicates_and_odd_values_get_a_new_id() {
        for (values, trusted) in [
            (&[&b"edge-7"[..]][..], false),
            (&[b"edge-7", b"edge-8"], true),
            (&[b"not sane"], true),
            (&[&[b'x'; MAX_REQUEST_ID_LEN + 1][..]], true),
            (&[], true),
        ] {
            let id = RequestId::for_request(&headers(values), trusted);
            assert_eq!(id.as_str().len(), 32, "{values:?}");
            assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(is_sane(id.as_str().as_bytes()));
        }
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(RequestId::generate(), RequestId::generate());
    }
}
