//! Sending a browser to the login page: an unauthenticated page load (`GET`/`HEAD` whose
//! `Accept` prefers `text/html`) gets `303 See Other` to `login_url` with the page to come back
//! to; APIs keep getting the 401 JSON. After logging in, the page hands the return target to
//! `POST /session` (`"return_to"`), and Portcullis answers with it only if it is safe to follow:
//! a path of this origin, or a URL on the own host or an `allowed_redirect_hosts` entry;
//! anything else becomes `/`, so the login flow can never be made an open redirect.
//!
//! Pure: no I/O, unit-tested here.

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{Authority, Uri};

use crate::access::{is_unreserved, push_escape};
use crate::config::{LoginConfig, LoginUrl};

/// Whether the client would rather have an HTML page than JSON: `text/html` listed with a
/// quality above zero and at least that of `application/json` (a `*/*` is not a preference).
pub fn prefers_html(headers: &HeaderMap) -> bool {
    let (mut html, mut json) = (None, None);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if media.eq_ignore_ascii_case("text/html") {
                html = Some(html.map_or(q, |h: f32| h.max(q)));
            } else if media.eq_ignore_ascii_case("application/json") {
                json = Some(json.map_or(q, |j: f32| j.max(q)));
            }
        }
    }
    html.is_some_and(|h| h > 0.0 && h >= json.unwrap_or(0.0))
}

/// The `Location` of the login page for a page load of `target` (`/path?query`), coming back
/// to it: the bare target when the login page is on this origin, `own_origin` + target when it is
/// elsewhere (falling back to the bare target when the own origin is unknown).
pub fn location(login: &LoginConfig, target: &str, own_origin: Option<&str>) -> HeaderValue {
    let (base, back) = match &login.url {
        LoginUrl::Path(path) => (path.as_str(), target.to_owned()),
        LoginUrl::Absolute(url) => (
            url.as_str(),
            own_origin.map_or_else(|| target.to_owned(), |o| format!("{o}{target}")),
        ),
    };
    let separator = if base.contains('?') { '&' } else { '?' };
    let value = format!(
        "{base}{separator}{}={}",
        login.return_param,
        form_encode(&back)
    );
    HeaderValue::from_str(&value).expect("only visible ASCII is written")
}

/// The return target a login may send the browser to: `target` itself when it is a path on this
/// origin (one leading `/`, no `\`, no control or space) or an http(s) URL whose host is
/// `own_host` or allowed, otherwise `/`.
pub fn safe_return<'a>(target: &'a str, own_host: Option<&str>, allowed: &[String]) -> &'a str {
    const HOME: &str = "/";
    if target
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'\\' || !b.is_ascii())
    {
        return HOME;
    }
    if target.starts_with('/') {
        // `//host` and `/\host` are other origins to a browser.
        return if target.starts_with("//") {
            HOME
        } else {
            target
        };
    }
    let Ok(uri) = target.parse::<Uri>() else {
        return HOME;
    };
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri
        .authority()
        .is_some_and(|a| !a.as_str().contains('@') && host_allowed(a, own_host, allowed));
    if scheme_ok && host_ok {
        target
    } else {
        HOME
    }
}

fn host_allowed(authority: &Authority, own_host: Option<&str>, allowed: &[String]) -> bool {
    let host = authority.host().to_ascii_lowercase();
    let with_port = authority.as_str().to_ascii_lowercase();
    own_host
        .is_some_and(|own| own.eq_ignore_ascii_case(&with_port) || own.eq_ignore_ascii_case(&host))
        || allowed.iter().any(|entry| match entry.strip_prefix('.') {
            Some(domain) => host.ends_with(&format!(".{domain}")) || host == domain,
            None => *entry == host || *entry == with_port,
        })
}

/// Percent-encode everything but unreserved characters, so the target survives as one value.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if is_unreserved(byte) || byte == b'/' {
            out.push(char::from(byte));
        } else {
            push_escape(&mut out, byte);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, value.parse().unwrap());
        h
    }

    #[test]
    fn browsers_prefer_html_and_api_clients_do_not() {
        for browser in [
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "text/html",
            "application/json;q=0.5, text/html",
            "TEXT/HTML; charset=utf-8",
        ] {
            assert!(prefers_html(&accept(browser)), "{browser}");
        }
        for api in [
            "*/*",
            "application/json",
            "application/json, text/plain, */*",
            "text/html;q=0",
            "text/html;q=0.5, application/json",
            "text/*",
        ] {
            assert!(!prefers_html(&accept(api)), "{api}");
        }
        assert!(!prefers_html(&HeaderMap::new()));
    }

    fn login(url: LoginUrl) -> LoginConfig {
        LoginConfig {
            url,
            return_param: "return_to".into(),
            allowed_redirect_hosts: vec!["app.example.test".into(), ".corp.example".into()],
        }
    }

    #[test]
    fn the_location_names_the_page_to_come_back_to() {
        let here = login(LoginUrl::Path("/login".into()));
        assert_eq!(
            location(&here, "/api/x?a=1&b=2", Some("https://gw.test")),
            "/login?return_to=/api/x%3Fa%3D1%26b%3D2"
        );
        let away = login(LoginUrl::Absolute("https://sso.example/start?app=1".into()));
        assert_eq!(
            location(&away, "/x", Some("https://gw.test")),
            "https://sso.example/start?app=1&return_to=https%3A//gw.test/x"
        );
        assert_eq!(
            location(&away, "/x", None),
            "https://sso.example/start?app=1&return_to=/x"
        );
    }

    #[test]
    fn only_own_or_allowed_targets_are_returned() {
        let allowed = login(LoginUrl::Path("/login".into())).allowed_redirect_hosts;
        let safe = |t| safe_return(t, Some("gw.test:8443"), &allowed);
        for ok in [
            "/",
            "/api/x?y=1",
            "https://gw.test:8443/page",
            "https://app.example.test/",
            "http://a.corp.example/x",
            "https://corp.example/",
        ] {
            assert_eq!(safe(ok), ok, "{ok}");
        }
        for bad in [
            "//evil.example/",
            "/\\evil.example/",
            "https://evil.example/",
            "https://gw.test.evil.example/",
            "https://app.example.test@evil.example/",
            "https://evilcorp.example/",
            "javascript:alert(1)",
            "data:text/html,x",
            "gw.test/x",
            "/x\r\nSet-Cookie: a=b",
            "/caf\u{e9}",
            "",
        ] {
            assert_eq!(safe(bad), "/", "{bad:?}");
        }
        assert_eq!(safe_return("https://gw.test/", None, &[]), "/");
    }
}
