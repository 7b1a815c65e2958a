//! The phases of a proxied request, top to bottom: authorize (rules first, then the session only
//! if the rules need one), prepare the headers, forward.
//!
//! Access is decided before the request body is touched, so a denied request never gets
//! `100 Continue` and its body is never read. [`authorize`] is the one access decision: the
//! forward-auth endpoint ([`crate::forward_auth`]) runs it on the request a trusted proxy
//! describes, so both shapes answer every request alike. The phases note what the access log
//! needs (the session's user) in the [`RequestContext`].
//!
//! With `session.bearer`, the session may also come as `Authorization: Bearer <token>`: such a
//! header-borne session skips the origin check (no browser attaches it by itself), a request
//! carrying both a session cookie and a token is 400, and a token of ours is removed before
//! forwarding while any other `Authorization` passes unchanged.
//!
//! A WebSocket handshake ([`websocket::is_handshake`]) takes the same phases and keeps its
//! `Connection: upgrade` + `Upgrade: websocket` pair; when the upstream switches protocols, the
//! `101` is relayed and [`crate::tunnel`] copies bytes both ways. Any other upgrade is a plain
//! request with its upgrade headers removed.

use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::access::{CanonicalPath, Decision, RuleSet};
use crate::config::HostHeader;
use crate::context::RequestContext;
use crate::error::RequestError;
use crate::headers::{self, ForwardedContext};
use crate::identity::Users;
use crate::request_id::{RequestId, X_REQUEST_ID};
use crate::response::Body;
use crate::session::{ActiveSession, Credential};
use crate::state::{AppState, ConnInfo};
use crate::{bearer, cors, csrf, websocket};

/// The identity an allowed request carries, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name.
    pub user: String,
    /// The user's current roles.
    pub roles: Vec<String>,
    /// The user's display name, when known.
    pub display_name: Option<String>,
    /// The user's e-mail address, when known.
    pub email: Option<String>,
}

/// What the access decision looks at: the request as the client sent it, whether it reached
/// Portcullis itself or was described by a trusted proxy to the forward-auth endpoint.
#[derive(Debug)]
pub struct AccessRequest<'a> {
    /// The client's method.
    pub method: &'a Method,
    /// The client's path, canonical.
    pub path: &'a CanonicalPath,
    /// The client's headers: cookies, origin evidence, CORS preflight headers.
    pub headers: &'a HeaderMap,
    /// The origin the client addressed (for the origin check), if known.
    pub own_origin: Option<String>,
}

/// Authorize, prepare and forward one request whose path is already canonical.
pub async fn proxy(
    state: &AppState,
    conn: ConnInfo,
    mut request: Request<Incoming>,
    canonical_path: CanonicalPath,
    ctx: &mut RequestContext,
) -> Result<Response<Body>, RequestError> {
    let access = AccessRequest {
        method: request.method(),
        path: &canonical_path,
        headers: request.headers(),
        // Only an unsafe method meets the origin check (see `authorize`): no origin to build
        // for the others.
        own_origin: (!is_safe(request.method()))
            .then(|| csrf::request_own_origin(state, &conn, request.uri(), request.headers()))
            .flatten(),
    };
    let identity = authorize(state, &access, ctx).await?;
    let handshake = websocket::is_handshake(request.method(), request.version(), request.headers());
    // Taken before the request goes upstream: the client's side of the switch, fulfilled by
    // hyper once the `101` is written.
    let client_side = handshake.then(|| hyper::upgrade::on(&mut request));
    let request = prepare(
        state,
        conn,
        request,
        canonical_path.as_str(),
        identity.as_ref(),
        &ctx.id,
        handshake,
    );
    ctx.user = identity.map(|identity| identity.user);
    let started = Instant::now();
    let response = state.upstream.send(request, handshake, conn.worker).await;
    state.metrics.observe_upstream(started.elapsed());
    let mut response = response?;
    headers::clean_response(response.headers_mut(), state.sessions.cookie_name());
    match client_side {
        // `send` lets a 101 through only for a WebSocket handshake, and only to WebSocket.
        Some(client_side) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
            let upstream_side = hyper::upgrade::on(&mut response);
            state.tunnels.open(client_side, upstream_side);
            let h = response.headers_mut();
            websocket::restore_upgrade_headers(h);
            // A 101 has no body (RFC 9110 §8.6): what follows it is the tunnel.
            h.remove(header::CONTENT_LENGTH);
            let (parts, _) = response.into_parts();
            Ok(Response::from_parts(parts, crate::response::full("")))
        }
        // Refused (any other status): relayed as the normal response it is.
        _ => Ok(response),
    }
}

/// Apply the rules; read the session only when they need it. `Ok(None)` allows without identity,
/// `Ok(Some)` with it; a denial is an error (401 without a session, 403 with one, 403 `csrf`,
/// 503 when a needed session cannot be read). The user of a session that is refused is noted in
/// `ctx` for the access log (an allowed one travels in the identity).
pub async fn authorize(
    state: &AppState,
    request: &AccessRequest<'_>,
    ctx: &mut RequestContext,
) -> Result<Option<Identity>, RequestError> {
    let policy = state.policy();
    let access = &policy.access;
    let (method, headers) = (request.method, request.headers);
    // A listed origin's preflight carries no credentials and asks about another method: it is
    // allowed without identity unless the rules deny OPTIONS itself or the method asked about.
    if cors::allowed_origin(headers, &state.config.cors).is_some() {
        match cors::preflight_method(method, headers) {
            Some(Ok(asked)) => {
                let denied = [method, &asked]
                    .into_iter()
                    .any(|m| decide(state, access, request.path, m) == Decision::Deny);
                return if denied {
                    Err(RequestError::Unauthenticated)
                } else {
                    Ok(None)
                };
            }
            Some(Err(())) => return Err(RequestError::BadRequest("unreadable preflight method")),
            None => {}
        }
    }
    let decision = decide(state, access, request.path, method);
    if decision == Decision::Anonymous {
        return Ok(None);
    }
    let credential = state
        .sessions
        .find_credential(headers)
        .map_err(|_| RequestError::BadRequest("both a session cookie and a bearer token"))?;
    if !is_safe(method)
        && credential.is_cookie()
        && !csrf::passes(
            headers,
            request.own_origin.as_deref(),
            &state.config.csrf.allowed_origins,
        )
    {
        return Err(RequestError::Csrf);
    }
    match decision {
        Decision::Anonymous => Ok(None),
        // A store outage only costs the identity here: the route works without one.
        Decision::Optional => Ok(load_session(state, &policy.users, headers)
            .await
            .ok()
            .flatten()
            .map(identity)),
        Decision::Session { .. } => match load_session(state, &policy.users, headers).await? {
            Some(session) if decision.permits(&session.roles) => Ok(Some(identity(session))),
            Some(session) => {
                ctx.user = Some(session.record.user);
                Err(RequestError::Forbidden)
            }
            None => Err(RequestError::Unauthenticated),
        },
        // Never allowed; the session is read only to tell 403 from 401.
        Decision::Deny => match credential {
            Credential::Cookie(_) | Credential::Bearer(_) => {
                match load_session(state, &policy.users, headers).await? {
                    Some(session) => {
                        ctx.user = Some(session.record.user);
                        Err(RequestError::Forbidden)
                    }
                    None => Err(RequestError::Unauthenticated),
                }
            }
            _ => Err(RequestError::Unauthenticated),
        },
    }
}

/// The rules' decision, unless the path is one of `denied_paths` (the check endpoint behind the
/// upstream's origin), which no rule can open.
fn decide(state: &AppState, access: &RuleSet, path: &CanonicalPath, method: &Method) -> Decision {
    match state.config.denied_paths.decide(path, method) {
        Decision::Deny => Decision::Deny,
        _ => access.decide(path, method),
    }
}

/// Methods a browser page may send across origins without acting (RFC 9110 §9.2.1, as CSRF
/// defences read it).
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The request's session, judged against `users` from the same policy version as the rules.
async fn load_session(
    state: &AppState,
    users: &Users,
    headers: &HeaderMap,
) -> Result<Option<ActiveSession>, crate::session::StoreError> {
    state
        .sessions
        .resolve(headers, users, &state.config.identity.sources)
        .await
}

fn identity(session: ActiveSession) -> Identity {
    Identity {
        user: session.record.user,
        roles: session.roles,
        display_name: session.display_name,
        email: session.email,
    }
}

/// Set every configured identity header for `identity` in `h`: user, roles, the display name
/// and e-mail address when both configured and known, and the signed assertion. `h` holds no
/// client copy of any of them (the request was stripped; a forward-auth answer starts empty).
pub fn inject_identity(state: &AppState, h: &mut HeaderMap, identity: &Identity) {
    let ids = &state.config.identity_headers;
    headers::inject_identity(h, &ids.user, &ids.roles, &identity.user, &identity.roles);
    for (name, value) in [
        (&ids.display_name, &identity.display_name),
        (&ids.email, &identity.email),
    ] {
        if let (Some(name), Some(value)) = (name, value) {
            headers::inject_text(h, name, value);
        }
    }
    if let Some(assertion) = &ids.assertion {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let value = assertion.assert(&identity.user, &identity.roles, now);
        h.insert(assertion.header.clone(), value);
    }
}

/// Rewrite the request for the upstream: canonical target, clean headers, identity, forwarding,
/// request id; a WebSocket handshake keeps its upgrade pair.
fn prepare(
    state: &AppState,
    conn: ConnInfo,
    request: Request<Incoming>,
    canonical_path: &str,
    identity: Option<&Identity>,
    request_id: &RequestId,
    websocket_handshake: bool,
) -> Request<Incoming> {
    let (mut parts, body) = request.into_parts();
    let config = &state.config;
    let client_host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    parts.uri = state.upstream.target(canonical_path, parts.uri.query());
    parts.version = http::Version::HTTP_11;

    let h = &mut parts.headers;
    // Hop-by-hop first: a client's `Connection:` may only remove what the client sent.
    headers::remove_hop_by_hop(h);
    if websocket_handshake {
        websocket::restore_upgrade_headers(h);
    }
    headers::remove_method_overrides(h);
    h.remove(header::EXPECT);
    let ids = &config.identity_headers;
    headers::strip_identity_headers(h, &ids.names(), &ids.strip);
    headers::remove_session_cookie(h, state.sessions.cookie_name());
    if state.sessions.bearer_enabled() {
        bearer::remove_consumed_bearer(h, |token| state.sessions.is_own_token(token));
    }
    let peer_trusted = crate::client_addr::is_trusted(conn.peer.ip(), &config.trusted_proxies);
    let proto = if conn.tls { "https" } else { "http" };
    headers::set_forwarded(
        h,
        ForwardedContext {
            peer: conn.peer.ip(),
            peer_trusted,
            proto,
            host: client_host.as_ref(),
        },
    );
    if let Some(identity) = identity {
        inject_identity(state, h, identity);
    }
    // Replaces whatever the client sent: the id is the client's only if it was kept.
    h.insert(X_REQUEST_ID, request_id.header_value());
    let host = match &config.upstream.host_header {
        HostHeader::Preserve => client_host,
        HostHeader::Upstream => HeaderValue::from_str(state.upstream.authority().as_str()).ok(),
        HostHeader::Literal(value) => Some(value.clone()),
    };
    match host {
        Some(host) => h.insert(header::HOST, host),
        None => h.remove(header::HOST),
    };
    Request::from_parts(parts, body)
}
