//! The first look at every proxied-listener request: refuse what is never valid, canonicalize the
//! path, then one match: the session API, the forward-auth endpoint, or the gateway.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use http::{header, Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use crate::access::{CanonicalPath, PathError};
use crate::config::Config;
use crate::context::RequestContext;
use crate::error::{rescue, RequestError};
use crate::metrics::Outcome;
use crate::request_id::X_REQUEST_ID;
use crate::response::Body;
use crate::state::{AppState, ConnInfo};
use crate::{cors, csrf, forward_auth, gateway, login_redirect, response, session_api};

/// Where a canonical path belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// One of the session API's endpoints.
    SessionApi(SessionEndpoint),
    /// The forward-auth endpoint itself.
    ForwardAuth,
    /// Under one of Portcullis's own paths but not an endpoint: 404, never forwarded.
    Unknown,
    /// Everything else: access rules, then the upstream.
    Gateway,
}

/// The endpoints of the session API, relative to `session_api.path` (`/session` here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEndpoint {
    /// `/session`: log in, tell the session, log out.
    Session,
    /// `/session/all`: the caller's sessions; log out everywhere.
    All,
    /// `/session/all/{handle}`: one of the caller's sessions (the last path segment).
    One,
}

/// The paths Portcullis answers itself; each owns its whole subtree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnPaths<'a> {
    /// `session_api.path`.
    pub session_api: &'a str,
    /// `forward_auth.path`, when the endpoint is served.
    pub forward_auth: Option<&'a str>,
}

impl<'a> OwnPaths<'a> {
    /// The own paths `config` sets.
    pub fn of(config: &'a Config) -> Self {
        Self {
            session_api: &config.session_api_path,
            forward_auth: config.forward_auth.served_path(),
        }
    }
}

/// Decide where `canonical_path` goes. Each own subtree is matched case-insensitively, so no
/// spelling of it is ever forwarded; only the exact paths are endpoints.
pub fn route(canonical_path: &str, own: OwnPaths<'_>) -> Route {
    if let Some(endpoint) = session_endpoint(canonical_path, own.session_api) {
        return Route::SessionApi(endpoint);
    }
    let endpoints = [
        (
            Some(own.session_api),
            Route::SessionApi(SessionEndpoint::Session),
        ),
        (own.forward_auth, Route::ForwardAuth),
    ];
    let mut route = Route::Gateway;
    for (path, endpoint) in endpoints {
        let Some(path) = path else { continue };
        if canonical_path == path {
            return endpoint;
        }
        if in_subtree_ignoring_case(canonical_path, path) {
            route = Route::Unknown;
        }
    }
    route
}

/// Whether `path` is `root` or under it, ASCII letters compared case-insensitively (without
/// lower-casing copies: this runs for every reading of every request).
fn in_subtree_ignoring_case(path: &str, root: &str) -> bool {
    let (path, root) = (path.as_bytes(), root.as_bytes());
    path.len() >= root.len()
        && path[..root.len()].eq_ignore_ascii_case(root)
        && (path.len() == root.len() || path[root.len()] == b'/')
}

/// The session API endpoint `canonical_path` names exactly, if any.
fn session_endpoint(canonical_path: &str, api: &str) -> Option<SessionEndpoint> {
    let rest = canonical_path.strip_prefix(api)?;
    match rest {
        "" => Some(SessionEndpoint::Session),
        "/all" => Some(SessionEndpoint::All),
        _ => rest
            .strip_prefix("/all/")
            .filter(|handle| !handle.is_empty() && !handle.contains('/'))
            .map(|_| SessionEndpoint::One),
    }
}

/// Decide where `path` goes: the forwarded path picks the endpoint, and a path any other of whose
/// readings falls in Portcullis's own subtrees is unknown there (404), so no reading of an own
/// path is ever forwarded.
pub fn route_path(path: &CanonicalPath, own: OwnPaths<'_>) -> Route {
    match route(path.as_str(), own) {
        Route::Gateway if path.readings().any(|r| route(r, own) != Route::Gateway) => {
            Route::Unknown
        }
        route => route,
    }
}

/// Who wrote a successful response.
enum Reply {
    /// Portcullis itself: CORS headers are added for a listed origin. The outcome says which of
    /// its endpoints answered.
    Own(Response<Body>, Outcome),
    /// The upstream: relayed as it is (it owns its CORS policy).
    Upstream(Response<Body>),
}

/// Handle one request on the proxy listener. Never panics outward: a panic becomes a 500 and
/// nothing is forwarded after it. Every request ends here: it gets its `X-Request-Id`, is
/// counted in the metrics and gets its access log line.
pub async fn handle(
    state: &AppState,
    conn: ConnInfo,
    request: Request<Incoming>,
) -> Response<Body> {
    let mut ctx = RequestContext::new(
        conn.peer.ip(),
        request.headers(),
        &state.config.trusted_proxies,
    );
    let method = request.method().clone();
    let cors_origin = cors::allowed_origin(request.headers(), &state.config.cors).cloned();
    let result = AssertUnwindSafe(dispatch(state, conn, request, &mut ctx))
        .catch_unwind()
        .await;
    let reply = result
        .unwrap_or_else(|_panic| Err(RequestError::Internal("request handler panicked".into())));
    let (mut response, outcome) = match reply {
        Ok(Reply::Upstream(response)) => (response, Outcome::Proxied),
        Ok(Reply::Own(response, outcome)) => own(response, outcome, cors_origin.as_ref()),
        Err(err) => own(rescue(&err), Outcome::Internal, cors_origin.as_ref()),
    };
    // Ours, replacing any the upstream sent: the client can match it with our log line.
    response
        .headers_mut()
        .insert(X_REQUEST_ID, ctx.id.header_value());
    state
        .metrics
        .record_request(outcome, response.status(), ctx.elapsed());
    ctx.log_access(&method, response.status(), outcome);
    response
}

/// Finish a response Portcullis wrote: CORS headers for a listed origin, and its outcome: the
/// one a rescued error carries (also inside an endpoint's answer, such as a logout while the
/// store is down), else `outcome`.
fn own(
    mut response: Response<Body>,
    outcome: Outcome,
    cors_origin: Option<&http::HeaderValue>,
) -> (Response<Body>, Outcome) {
    if let Some(origin) = cors_origin {
        cors::decorate(response.headers_mut(), origin);
    }
    let outcome = response.extensions().get().copied().unwrap_or(outcome);
    (response, outcome)
}

async fn dispatch(
    state: &AppState,
    conn: ConnInfo,
    request: Request<Incoming>,
    ctx: &mut RequestContext,
) -> Result<Reply, RequestError> {
    // Checked before the path: these methods have target forms of their own.
    if request.method() == Method::TRACE || request.method() == Method::CONNECT {
        return Err(RequestError::MethodNotAllowed {
            allow: "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        });
    }
    let uri = request.uri();
    // HTTP/2 always carries scheme and authority; on HTTP/1 they mean absolute-form.
    if request.version() < Version::HTTP_2 && (uri.scheme().is_some() || uri.authority().is_some())
    {
        return Err(PathError::NotOriginForm.into());
    }
    check_host(&request)?;
    crate::framing::check_request(request.headers())?;
    let path = CanonicalPath::parse(uri.path(), &state.config.paths)?;
    ctx.path = Some(path.as_str().to_owned());
    let own = OwnPaths::of(&state.config);
    let route = route_path(&path, own);
    // A WebSocket handshake carries the browser's cookies from any page (no preflight): it must
    // come from an allowed origin whatever the route. (A forward-auth request is checked against
    // the origin of the request it describes, in `forward_auth::decide`.)
    if route != Route::ForwardAuth
        && request.headers().contains_key(http::header::UPGRADE)
        && !csrf::request_passes(state, &conn, request.uri(), request.headers())
    {
        return Err(RequestError::Csrf);
    }
    match route {
        Route::SessionApi(endpoint) => {
            // The session API and forward-auth futures are boxed: every proxied request's
            // future would otherwise be as large as theirs, and is moved several times.
            Box::pin(session_api::handle(
                state, conn, request, endpoint, &path, ctx,
            ))
            .await
            .map(|response| Reply::Own(response, Outcome::Own))
        }
        Route::ForwardAuth => {
            let original = forward_auth::describe(state, &conn, &request)?;
            // The described request is routed like an inline one: Portcullis's own paths are
            // never the upstream's, so no proxy is ever told to let a request for them through.
            if route_path(&original.path, own) != Route::Gateway {
                return Err(RequestError::NotFound);
            }
            Box::pin(forward_auth::decide(state, &request, original, ctx))
                .await
                .map(|response| Reply::Own(response, Outcome::Allowed))
        }
        Route::Unknown => Err(RequestError::NotFound),
        Route::Gateway => {
            let login_page = login_page(state, &conn, &request, &path);
            match gateway::proxy(state, conn, request, path, ctx).await {
                Err(RequestError::Unauthenticated) if login_page.is_some() => {
                    let mut response = response::empty(StatusCode::SEE_OTHER);
                    let location = login_page.expect("checked above");
                    response.headers_mut().insert(header::LOCATION, location);
                    Ok(Reply::Own(response, Outcome::Unauthenticated))
                }
                result => result.map(Reply::Upstream),
            }
        }
    }
}

/// Where an unauthenticated page load of `path` would be sent: only with `login_url`
/// configured, for `GET`/`HEAD` that prefer HTML. Computed before the request is judged, since
/// judging consumes it; costs nothing without `login_url`.
fn login_page<B>(
    state: &AppState,
    conn: &ConnInfo,
    request: &Request<B>,
    path: &CanonicalPath,
) -> Option<http::HeaderValue> {
    let login = state.config.login.as_ref()?;
    if !matches!(*request.method(), Method::GET | Method::HEAD)
        || !login_redirect::prefers_html(request.headers())
    {
        return None;
    }
    let target = match request.uri().query() {
        Some(query) => format!("{}?{query}", path.as_str()),
        None => path.as_str().to_owned(),
    };
    let own = csrf::request_own_origin(state, conn, request.uri(), request.headers());
    Some(login_redirect::location(login, &target, own.as_deref()))
}

/// One unambiguous authority per request (RFC 9112 §3.2, RFC 9113 §8.3.1): HTTP/1.1 needs
/// exactly one `Host`; HTTP/2's `host`, if sent, must equal `:authority`; no userinfo anywhere.
fn check_host<B>(request: &Request<B>) -> Result<(), RequestError> {
    let mut hosts = request.headers().get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(RequestError::BadRequest("more than one Host header"));
    }
    if request.version() == Version::HTTP_11 && host.is_none() {
        return Err(RequestError::BadRequest("HTTP/1.1 request without Host"));
    }
    let authority = request.uri().authority();
    if authority.is_some_and(|a| a.as_str().contains('@')) {
        return Err(RequestError::BadRequest(
            "userinfo in the request authority",
        ));
    }
    if let Some(host) = host {
        let parsed = host
            .to_str()
            .ok()
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
            .filter(|a| !a.as_str().contains('@'))
            .ok_or(RequestError::BadRequest("malformed Host header"))?;
        if authority.is_some_and(|a| !a.as_str().eq_ignore_ascii_case(parsed.as_str())) {
            return Err(RequestError::BadRequest(
                "Host differs from the request authority",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, uri: &str, hosts: &[&str]) -> Request<()> {
        let mut builder = Request::builder().version(version).uri(uri);
        for h in hosts {
            builder = builder.header("host", *h);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn host_must_be_one_and_agree_with_the_authority() {
        assert!(check_host(&request(Version::HTTP_11, "/a", &["gw.test"])).is_ok());
        assert!(check_host(&request(Version::HTTP_11, "/a", &[])).is_err());
        assert!(check_host(&request(Version::HTTP_11, "/a", &["a.test", "b.test"])).is_err());
        assert!(check_host(&request(Version::HTTP_11, "/a", &["evil@gw.test"])).is_err());
        assert!(check_host(&request(Version::HTTP_11, "/a", &["gw.test/x"])).is_err());
        assert!(check_host(&request(Version::HTTP_10, "/a", &[])).is_ok());
        assert!(check_host(&request(Version::HTTP_2, "https://gw.test/a", &[])).is_ok());
        assert!(check_host(&request(Version::HTTP_2, "https://gw.test/a", &["GW.test"])).is_ok());
        assert!(check_host(&request(
            Version::HTTP_2,
            "https://gw.test/a",
            &["other.test"]
        ))
        .is_err());
        assert!(check_host(&request(Version::HTTP_2, "https://evil@gw.test/a", &[])).is_err());
    }

    const OWN: OwnPaths<'static> = OwnPaths {
        session_api: "/session",
        forward_auth: Some("/.portcullis/auth"),
    };

    #[test]
    fn session_api_subtree_is_never_the_gateway() {
        use SessionEndpoint::{All, One, Session};
        assert_eq!(route("/session", OWN), Route::SessionApi(Session));
        assert_eq!(route("/session/all", OWN), Route::SessionApi(All));
        assert_eq!(route("/session/all/0a1b", OWN), Route::SessionApi(One));
        for p in [
            "/Session",
            "/SESSION",
            "/session/",
            "/session/x",
            "/Session/all",
            "/session/ALL",
            "/session/all/",
            "/session/all/a/b",
            "/session/allx",
            "/session/all/a/",
        ] {
            assert_eq!(route(p, OWN), Route::Unknown, "{p}");
        }
        for p in ["/sessions", "/api/session", "/", "/sessionx/y"] {
            assert_eq!(route(p, OWN), Route::Gateway, "{p}");
        }
    }

    #[test]
    fn forward_auth_subtree_is_never_the_gateway_and_off_means_ordinary() {
        assert_eq!(route("/.portcullis/auth", OWN), Route::ForwardAuth);
        for p in [
            "/.portcullis/auth/",
            "/.portcullis/auth/x",
            "/.Portcullis/AUTH",
        ] {
            assert_eq!(route(p, OWN), Route::Unknown, "{p}");
        }
        for p in ["/.portcullis", "/.portcullis/authz", "/.portcullis/x"] {
            assert_eq!(route(p, OWN), Route::Gateway, "{p}");
        }
        let off = OwnPaths {
            forward_auth: None,
            ..OWN
        };
        assert_eq!(route("/.portcullis/auth", off), Route::Gateway);
        assert_eq!(route("/session/x", off), Route::Unknown);
    }

    #[test]
    fn no_reading_of_the_session_api_path_is_forwarded() {
        use crate::access::{PathOptions, PathPolicy};
        let options = PathOptions {
            encoded_slash: PathPolicy::Preserve,
            encoded_percent: PathPolicy::Preserve,
            semicolon: PathPolicy::Preserve,
        };
        let route = |p: &str| route_path(&CanonicalPath::parse(p, &options).unwrap(), OWN);
        assert_eq!(
            route("/session"),
            Route::SessionApi(SessionEndpoint::Session)
        );
        for p in [
            "/session.",
            "/session%20",
            "/%C5%BFession",
            "/%EF%BD%93ession",
            "/session;x",
            "/public/..%2Fsession",
            "/x/..%5CSession/all",
            "/%2573ession",
            "/.portcullis/auth.",
            "/.portcullis/%41uth",
            "/x/..%2F.portcullis/auth",
        ] {
            assert_eq!(route(p), Route::Unknown, "{p}");
        }
        assert_eq!(route("/sessions"), Route::Gateway);
    }
}
