//! Header hygiene: small pure functions applied to every forwarded request and response.
//!
//! Names are compared after lower-casing and reading `_` as `-`, because some upstream servers
//! treat `X_Auth_User` as `X-Auth-User`. Hop-by-hop headers are removed before identity headers
//! are added, so a client's `Connection:` can never remove what Portcullis injects. The one
//! hop-by-hop pair ever passed on, `Connection: upgrade` + `Upgrade: websocket`, is put back
//! afterwards by [`crate::websocket`].

use std::borrow::Cow;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the legacy and HTTP/2 ones proxies must not pass.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// Headers that ask a server to treat the request as another method.
const METHOD_OVERRIDES: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Headers carrying forwarding context; believed only from trusted proxies.
const FORWARDING_EXACT: &[&str] = &[
    "forwarded",
    "forwarded-for",
    "x-forwarded",
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-original-method",
    "x-original-host",
    "x-host",
    "x-http-host-override",
    // Client-address headers other proxies and CDNs write, which upstream libraries read before
    // X-Forwarded-For.
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
];
/// Prefixes of forwarding headers: `X-Forwarded-*`, and the client-certificate headers TLS
/// terminators write (`X-SSL-Client-DN`, `SSL-Client-Cert`, `X-Client-Cert`, IIS's
/// `X-ARR-ClientCert`), which only a trusted proxy in front may vouch for.
const FORWARDING_PREFIXES: &[&str] = &[
    "x-forwarded-",
    "x-ssl-",
    "ssl-client-",
    "x-client-cert",
    "x-client-verify",
    "x-client-dn",
    "x-arr-clientcert",
];

/// Where a request came from, as far as the forwarding headers are concerned.
#[derive(Debug, Clone, Copy)]
pub struct ForwardedContext<'a> {
    /// The TCP peer.
    pub peer: IpAddr,
    /// Whether the peer is in `trusted_proxies` (its forwarding headers are believed and extended).
    pub peer_trusted: bool,
    /// `http` or `https`, as Portcullis received the request.
    pub proto: &'static str,
    /// The authority the client addressed, if any.
    pub host: Option<&'a HeaderValue>,
}

/// A header name lower-cased (already so in `http`) with `_` read as `-`.
fn normalized(name: &HeaderName) -> Cow<'_, str> {
    let s = name.as_str();
    if s.contains('_') {
        Cow::Owned(s.replace('_', "-"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Remove every header whose normalized name satisfies `doomed`.
fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&str) -> bool) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| doomed(&normalized(name)))
        .cloned()
        .collect();
    for name in names {
        headers.remove(&name);
    }
}

/// Remove hop-by-hop headers and every header named in `Connection` (framing headers excepted:
/// hyper owns those).
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let nominated: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase().replace('_', "-"))
        .filter(|t| !t.is_empty() && t != "content-length" && t != "host")
        .collect();
    remove_where(headers, |name| {
        HOP_BY_HOP.contains(&name) || nominated.iter().any(|n| n == name)
    });
}

/// Remove method-override headers.
pub fn remove_method_overrides(headers: &mut HeaderMap) {
    remove_where(headers, |name| METHOD_OVERRIDES.contains(&name));
}

/// Whether the request carries a method-override header (any spelling).
pub fn has_method_override(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|name| METHOD_OVERRIDES.contains(&normalized(name).as_ref()))
}

/// Whether `name` (normalized) matches one strip pattern: an exact name or `prefix*`.
fn matches_pattern(name: &str, pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

/// Remove every client header that could be mistaken for identity: the configured identity
/// header names and every `strip` pattern (patterns are lower-case with `-`).
pub fn strip_identity_headers(headers: &mut HeaderMap, names: &[&HeaderName], strip: &[String]) {
    let names: Vec<Cow<'_, str>> = names.iter().map(|n| normalized(n)).collect();
    remove_where(headers, |name| {
        names.iter().any(|n| n == name) || strip.iter().any(|p| matches_pattern(name, p))
    });
}

/// Set the identity headers: exactly one user header and one roles header (maybe empty).
pub fn inject_identity(
    headers: &mut HeaderMap,
    user_header: &HeaderName,
    roles_header: &HeaderName,
    user: &str,
    roles: &[String],
) {
    let user = HeaderValue::from_str(user).expect("usernames are validated header-safe");
    let roles = HeaderValue::from_str(&roles.join(",")).expect("roles are validated header-safe");
    headers.insert(user_header.clone(), user);
    headers.insert(roles_header.clone(), roles);
}

/// A header that may appear at most once was repeated or is not text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotSingle;

/// The one value of `name`, trimmed: `Ok(None)` when absent, `Err(NotSingle)` when repeated or
/// not visible text (an ambiguous answer is never guessed at).
pub fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h str>, NotSingle> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(NotSingle);
    }
    first
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| NotSingle)
}

/// Set `name` to a free-text identity value (a display name, an e-mail address), sent as its
/// UTF-8 bytes. A value no header can carry (a control character) is left out rather than
/// mangled; the config layer refuses such values anyway.
pub fn inject_text(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
        headers.insert(name.clone(), value);
    }
}

/// Iterate over every `name=value` pair in every `Cookie` field, as raw bytes.
pub fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .map(|pair| {
            let pair = pair.trim_ascii();
            match pair.iter().position(|b| *b == b'=') {
                Some(i) => (pair[..i].trim_ascii(), pair[i + 1..].trim_ascii()),
                None => (pair, &pair[pair.len()..]),
            }
        })
        .filter(|(name, _)| !name.is_empty())
}

/// Merge every `Cookie` field into one, without the session cookie; none when nothing is left.
pub fn remove_session_cookie(headers: &mut HeaderMap, cookie_name: &str) {
    if !headers.contains_key(header::COOKIE) {
        return;
    }
    let mut kept: Vec<u8> = Vec::new();
    for field in headers.get_all(header::COOKIE) {
        for pair in field.as_bytes().split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            // Some intermediaries join Cookie fields with ", ": a pair that holds our cookie
            // after a comma goes whole (Portcullis never reads the cookie from there either).
            let ours = pair.split(|b| *b == b',').any(|part| {
                let name = part.split(|b| *b == b'=').next().unwrap_or_default();
                name.trim_ascii() == cookie_name.as_bytes()
            });
            if pair.is_empty() || ours {
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair);
        }
    }
    headers.remove(header::COOKIE);
    if let Ok(value) = HeaderValue::from_bytes(&kept) {
        if !kept.is_empty() {
            headers.insert(header::COOKIE, value);
        }
    }
}

/// Set `X-Forwarded-For`, `-Proto` and `-Host`. From an untrusted peer every client-sent
/// forwarding header is removed first; from a trusted proxy they are kept and the chains extended
/// with the peer: `X-Forwarded-For` always, `Forwarded` (RFC 7239) only when the proxy sent one,
/// as a new `for=` element.
pub fn set_forwarded(headers: &mut HeaderMap, ctx: ForwardedContext<'_>) {
    let xff = HeaderName::from_static("x-forwarded-for");
    let xfp = HeaderName::from_static("x-forwarded-proto");
    let xfh = HeaderName::from_static("x-forwarded-host");
    let peer = ctx.peer.to_string();
    if ctx.peer_trusted {
        extend_list(headers, xff, &peer);
        if headers.contains_key(header::FORWARDED) {
            extend_list(headers, header::FORWARDED, &forwarded_for(ctx.peer));
        }
    } else {
        remove_where(headers, |name| {
            FORWARDING_PREFIXES.iter().any(|p| name.starts_with(p))
                || FORWARDING_EXACT.contains(&name)
        });
        headers.insert(
            xff,
            HeaderValue::from_str(&peer).expect("an IP address is header-safe"),
        );
    }
    if !headers.contains_key(&xfp) {
        headers.insert(xfp, HeaderValue::from_static(ctx.proto));
    }
    if !headers.contains_key(&xfh) {
        if let Some(host) = ctx.host {
            headers.insert(xfh, host.clone());
        }
    }
}

/// Join every `name` field into one comma-separated list and append `element` as its last member.
fn extend_list(headers: &mut HeaderMap, name: HeaderName, element: &str) {
    let chain: Vec<&str> = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let mut value = chain.join(", ");
    if !value.is_empty() {
        value.push_str(", ");
    }
    value.push_str(element);
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(name, value);
    }
}

/// A `Forwarded` element naming `peer` (RFC 7239 §6: an IPv6 address is bracketed, and then
/// quoted because `[`, `:` and `]` are not token characters).
fn forwarded_for(peer: IpAddr) -> String {
    match peer {
        IpAddr::V4(v4) => format!("for={v4}"),
        IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
    }
}

/// Clean an upstream response: hop-by-hop headers and any `Set-Cookie` for the session cookie.
pub fn clean_response(headers: &mut HeaderMap, cookie_name: &str) {
    remove_hop_by_hop(headers);
    let cookies: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    if cookies.is_empty() {
        return;
    }
    headers.remove(header::SET_COOKIE);
    for value in cookies {
        if !sets_cookie(value.as_bytes(), cookie_name.as_bytes()) {
            headers.append(header::SET_COOKIE, value);
        }
    }
}

/// Whether a `Set-Cookie` value would make a browser send a cookie called `name`, parsed as
/// browsers do (RFC 6265bis §5.6): the pair ends at the first `;`; without `=`, or with an empty
/// name, the cookie is nameless and is sent back as its bare value, which the server then reads
/// as `name=...` or `name`.
fn sets_cookie(set_cookie: &[u8], name: &[u8]) -> bool {
    let pair = set_cookie.split(|b| *b == b';').next().unwrap_or_default();
    let (cookie_name, value) = match pair.iter().position(|b| *b == b'=') {
        Some(i) => (pair[..i].trim_ascii(), pair[i + 1..].trim_ascii()),
        None => (&pair[..0], pair.trim_ascii()),
    };
    if cookie_name == name {
        return true;
    }
    let sent_as = value
        .split(|b| *b == b'=')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    cookie_name.is_empty() && sent_as == name
}

/// Test helpers shared by the modules that read headers.
#[cfg(test)]
pub(crate) mod testing {
    use http::header::{HeaderMap, HeaderName, HeaderValue};

    /// A header map with `pairs` appended in order (repeated names kept).
    pub(crate) fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::testing::header_map as map;
    use super::*;

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut n: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        n.sort_unstable();
        n
    }

    #[test]
    fn connection_nominated_and_standard_hop_by_hop_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Auth-User, x_custom"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAA"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("x-auth-user", "mallory"),
            ("x-custom", "1"),
            ("content-length", "4"),
            ("accept", "*/*"),
        ]);
        remove_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["accept", "content-length"]);
    }

    #[test]
    fn identity_headers_are_stripped_in_every_spelling() {
        let mut h = map(&[
            ("x-auth-user", "a"),
            ("X_Auth_User", "b"),
            ("x-auth-roles", "admin"),
            ("x-auth-foo", "1"),
            ("remote-user", "c"),
            ("x_forwarded_user", "d"),
            ("accept", "*/*"),
        ]);
        let user = HeaderName::from_static("x-auth-user");
        let roles = HeaderName::from_static("x-auth-roles");
        let strip = vec![
            "x-auth-*".to_owned(),
            "remote-user".to_owned(),
            "x-forwarded-user".to_owned(),
        ];
        strip_identity_headers(&mut h, &[&user, &roles], &strip);
        assert_eq!(names(&h), ["accept"]);
        inject_identity(
            &mut h,
            &user,
            &roles,
            "alice",
            &["reader".into(), "x".into()],
        );
        assert_eq!(h.get_all(&user).iter().count(), 1);
        assert_eq!(h[&roles], "reader,x");
    }

    #[test]
    fn session_cookie_is_removed_and_fields_merged() {
        let mut h = map(&[
            ("cookie", "a=1; sid=secret"),
            ("cookie", "b=2"),
            ("cookie", "sid=x;c=3"),
        ]);
        remove_session_cookie(&mut h, "sid");
        assert_eq!(
            h.get_all(header::COOKIE).iter().collect::<Vec<_>>(),
            ["a=1; b=2; c=3"]
        );
        let mut h = map(&[("cookie", "sid=only")]);
        remove_session_cookie(&mut h, "sid");
        assert!(!h.contains_key(header::COOKIE));
        // Comma-joined fields: the part holding the session cookie never reaches the upstream.
        let mut h = map(&[("cookie", "a=b, sid=secret; c=3; prefs=x,y")]);
        remove_session_cookie(&mut h, "sid");
        assert_eq!(h[header::COOKIE], "c=3; prefs=x,y");
    }

    #[test]
    fn cookie_pairs_reads_every_field() {
        let h = map(&[
            ("cookie", "a=1;  sid=x ; ;;"),
            ("cookie", "sid"),
            ("cookie", "b="),
        ]);
        let pairs: Vec<_> = cookie_pairs(&h).collect();
        assert_eq!(
            pairs,
            [
                (&b"a"[..], &b"1"[..]),
                (b"sid", b"x"),
                (b"sid", b""),
                (b"b", b"")
            ]
        );
    }

    #[test]
    fn untrusted_forwarding_headers_are_replaced() {
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-host", "evil"),
            ("x-forwarded-prefix", "/public"),
            ("x_forwarded_uri", "/public"),
            ("x-original-url", "/public/a"),
            ("forwarded", "for=1.2.3.4"),
        ]);
        let host = HeaderValue::from_static("gw.example.test");
        let ctx = ForwardedContext {
            peer: "10.0.0.9".parse().unwrap(),
            peer_trusted: false,
            proto: "http",
            host: Some(&host),
        };
        set_forwarded(&mut h, ctx);
        assert_eq!(
            names(&h),
            ["x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"]
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert_eq!(h["x-forwarded-host"], "gw.example.test");
    }

    #[test]
    fn trusted_forwarding_chain_is_extended() {
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        let ctx = ForwardedContext {
            peer: "10.0.0.9".parse().unwrap(),
            peer_trusted: true,
            proto: "http",
            host: None,
        };
        set_forwarded(&mut h, ctx);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn trusted_forwarded_header_gets_the_peer_as_a_new_element() {
        let trusted = |peer: &str| ForwardedContext {
            peer: peer.parse().unwrap(),
            peer_trusted: true,
            proto: "http",
            host: None,
        };
        let mut h = map(&[("forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43")]);
        set_forwarded(&mut h, trusted("10.0.0.9"));
        assert_eq!(
            h.get_all("forwarded").iter().collect::<Vec<_>>(),
            ["for=192.0.2.60;proto=https;by=203.0.113.43, for=10.0.0.9"]
        );

        // Several fields are one list; an IPv6 peer is bracketed and quoted.
        let mut h = map(&[
            ("forwarded", "for=192.0.2.43"),
            ("forwarded", "for=\"[2001:db8:cafe::17]:4711\""),
        ]);
        set_forwarded(&mut h, trusted("::1"));
        assert_eq!(
            h.get_all("forwarded").iter().collect::<Vec<_>>(),
            ["for=192.0.2.43, for=\"[2001:db8:cafe::17]:4711\", for=\"[::1]\""]
        );
        assert_eq!(h["x-forwarded-for"], "::1");
    }

    #[test]
    fn trusted_peer_without_forwarded_gets_none_added() {
        let mut h = map(&[("x-forwarded-for", "1.2.3.4")]);
        let ctx = ForwardedContext {
            peer: "10.0.0.9".parse().unwrap(),
            peer_trusted: true,
            proto: "http",
            host: None,
        };
        set_forwarded(&mut h, ctx);
        assert!(!h.contains_key("forwarded"));
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 10.0.0.9");
    }

    #[test]
    fn response_loses_hop_by_hop_and_our_cookie_only() {
        let mut h = map(&[
            ("connection", "X-Foo"),
            ("x-foo", "1"),
            ("set-cookie", "sid=evil; Path=/"),
            ("set-cookie", "theirs=1"),
            ("content-type", "text/plain"),
        ]);
        clean_response(&mut h, "sid");
        assert_eq!(names(&h), ["content-type", "set-cookie"]);
        assert_eq!(h["set-cookie"], "theirs=1");
    }

    #[test]
    fn nameless_set_cookie_spellings_of_our_cookie_are_caught() {
        for ours in [
            "sid=x",
            " sid = x; Path=/",
            "=sid=evil; Path=/",
            "sid; Path=/session",
            "sid;=evil",
            "=sid",
        ] {
            assert!(sets_cookie(ours.as_bytes(), b"sid"), "{ours}");
        }
        for theirs in [
            "sidx=1",
            "other=sid",
            "=other=sid",
            "Sid=1",
            "x; sid=1",
            "sidecar",
        ] {
            assert!(!sets_cookie(theirs.as_bytes(), b"sid"), "{theirs}");
        }
    }
}
