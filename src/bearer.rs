//! Bearer tokens in `Authorization` (RFC 6750 §2.1): finding the one a request carries and
//! removing the fields Portcullis consumed before a request goes upstream. Pure: no I/O; read
//! only with `session.bearer` on ([`crate::session::Sessions::find_credential`]).

use http::header::{self, HeaderMap, HeaderValue};

/// The token of an `Authorization: Bearer <token>` field (RFC 6750 §2.1; the scheme in any letter
/// case, spaces around the token ignored), or `None` for any other scheme or value.
pub fn bearer_value(field: &HeaderValue) -> Option<&[u8]> {
    let value = field.as_bytes().trim_ascii();
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, token) = value.split_at(space);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| token.trim_ascii())
}

/// A bearer token that is not the only `Authorization` field: several credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeveralAuthorizations;

/// The bearer token the request carries: `Ok(None)` without one, `Err` when it is not the only
/// `Authorization` field (several credentials: never pick one).
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&[u8]>, SeveralAuthorizations> {
    let mut fields = headers.get_all(header::AUTHORIZATION).iter();
    let Some(first) = fields.next() else {
        return Ok(None);
    };
    let rest: Vec<&HeaderValue> = fields.collect();
    if rest.is_empty() {
        return Ok(bearer_value(first));
    }
    if std::iter::once(first)
        .chain(rest)
        .any(|f| bearer_value(f).is_some())
    {
        return Err(SeveralAuthorizations);
    }
    Ok(None)
}

/// Remove every `Authorization` field carrying a bearer token for which `consumed` is true; any
/// other field (another scheme, another token) stays as it was.
pub fn remove_consumed_bearer(headers: &mut HeaderMap, consumed: impl Fn(&[u8]) -> bool) {
    let fields: Vec<HeaderValue> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .cloned()
        .collect();
    if !fields
        .iter()
        .any(|f| bearer_value(f).is_some_and(&consumed))
    {
        return;
    }
    headers.remove(header::AUTHORIZATION);
    for field in fields {
        if !bearer_value(&field).is_some_and(&consumed) {
            headers.append(header::AUTHORIZATION, field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::headers::testing::header_map as map;

    #[test]
    fn bearer_tokens_are_read_from_one_authorization_field_only() {
        let one = |v: &str| map(&[("authorization", v)]);
        assert_eq!(
            bearer_token(&one("Bearer abc.def")),
            Ok(Some(&b"abc.def"[..]))
        );
        assert_eq!(bearer_token(&one("bearer   abc ")), Ok(Some(&b"abc"[..])));
        assert_eq!(bearer_token(&one("BEARER abc")), Ok(Some(&b"abc"[..])));
        assert_eq!(
            bearer_token(&one("Bearer ")),
            Ok(None),
            "no space left after trim"
        );
        for other in ["Basic dXNlcjpwdw==", "Bearerabc", "Token abc", "Bearer"] {
            assert_eq!(bearer_token(&one(other)), Ok(None), "{other}");
        }
        assert_eq!(bearer_token(&HeaderMap::new()), Ok(None));
        let two = map(&[("authorization", "Bearer a"), ("authorization", "Basic b")]);
        assert_eq!(bearer_token(&two), Err(SeveralAuthorizations));
        let two_basic = map(&[("authorization", "Basic a"), ("authorization", "Basic b")]);
        assert_eq!(bearer_token(&two_basic), Ok(None));
    }

    #[test]
    fn only_consumed_bearer_fields_are_removed() {
        let ours = |token: &[u8]| token == b"ours";
        let mut h = map(&[("authorization", "Bearer ours")]);
        remove_consumed_bearer(&mut h, ours);
        assert!(h.get("authorization").is_none());
        for kept in ["Bearer theirs", "Basic b3Vycw==", "Digest ours"] {
            let mut h = map(&[("authorization", kept)]);
            remove_consumed_bearer(&mut h, ours);
            assert_eq!(h.get("authorization").unwrap(), kept);
        }
        let mut h = map(&[
            ("authorization", "Basic x"),
            ("authorization", "bearer ours"),
        ]);
        remove_consumed_bearer(&mut h, ours);
        let left: Vec<&HeaderValue> = h.get_all("authorization").iter().collect();
        assert_eq!(left, ["Basic x"]);
    }
}
