//! Message framing and size checks hyper leaves to the application: transfer codings other than
//! `chunked`, `Content-Length` together with `Transfer-Encoding`, and oversized header sections.
//!
//! Portcullis re-frames every forwarded body itself, so the upstream never sees the client's
//! framing; refusing anything unusual here keeps a request from meaning one thing to Portcullis
//! and another to whatever sits in front of it.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::HeaderMap;

/// Largest total size of a request's header names and values Portcullis accepts (431 beyond).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most header fields Portcullis accepts on one request (431 beyond).
pub const MAX_HEADER_FIELDS: usize = 100;

/// Why a request's framing or header section was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// `Transfer-Encoding` with a coding other than a single `chunked`.
    #[error("unsupported transfer coding")]
    UnsupportedCoding,
    /// Both `Content-Length` and `Transfer-Encoding`: a smuggling attempt or a broken client.
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndCoding,
    /// The header section is over [`MAX_HEADER_BYTES`] or [`MAX_HEADER_FIELDS`].
    #[error("request header section too large")]
    HeadersTooLarge,
}

/// Check a request's framing headers and header section size.
pub fn check_request(headers: &HeaderMap) -> Result<(), FramingError> {
    if headers.len() > MAX_HEADER_FIELDS {
        return Err(FramingError::HeadersTooLarge);
    }
    let bytes: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(FramingError::HeadersTooLarge);
    }
    check_framing(headers)
}

/// Whether a message's framing headers are unambiguous: at most a single `chunked` coding, and
/// never together with `Content-Length`. Used for requests and upstream responses alike.
pub fn check_framing(headers: &HeaderMap) -> Result<(), FramingError> {
    let mut codings = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii);
    match codings.next() {
        None => Ok(()),
        Some(first) => {
            if !first.eq_ignore_ascii_case(b"chunked") || codings.next().is_some() {
                Err(FramingError::UnsupportedCoding)
            } else if headers.contains_key(CONTENT_LENGTH) {
                Err(FramingError::LengthAndCoding)
            } else {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::headers::testing::header_map as headers;

    #[test]
    fn only_a_single_chunked_coding_without_length_passes() {
        assert_eq!(check_request(&headers(&[])), Ok(()));
        assert_eq!(
            check_request(&headers(&[("transfer-encoding", "chunked")])),
            Ok(())
        );
        assert_eq!(
            check_request(&headers(&[("transfer-encoding", "CHUNKED")])),
            Ok(())
        );
        assert_eq!(check_request(&headers(&[("content-length", "4")])), Ok(()));
        for te in [
            &[("transfer-encoding", "gzip, chunked")][..],
            &[("transfer-encoding", "xchunked")],
            &[("transfer-encoding", "chunked, identity")],
            &[("transfer-encoding", "identity, chunked")],
            &[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked"),
            ],
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
            &[("transfer-encoding", "")],
        ] {
            assert_eq!(
                check_request(&headers(te)),
                Err(FramingError::UnsupportedCoding),
                "{te:?}"
            );
        }
        assert_eq!(
            check_request(&headers(&[
                ("transfer-encoding", "chunked"),
                ("content-length", "4")
            ])),
            Err(FramingError::LengthAndCoding)
        );
    }

    #[test]
    fn oversized_header_sections_are_refused() {
        let many: Vec<(String, String)> = (0..=MAX_HEADER_FIELDS)
            .map(|i| (format!("x-h{i}"), "v".into()))
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(
            check_request(&headers(&many)),
            Err(FramingError::HeadersTooLarge)
        );
        let big = "a".repeat(MAX_HEADER_BYTES);
        assert_eq!(
            check_request(&headers(&[("cookie", &big)])),
            Err(FramingError::HeadersTooLarge)
        );
    }
}
