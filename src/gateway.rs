//! The phases of a proxied request, top to bottom: authorize (rules first, then the session only
//! if the rules need one), prepare the headers, forward.
//!
//! Access is decided before the request body is touched, so a denied request never gets
//! `100 Continue` and its body is never read.

use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response};
use hyper::body::Incoming;

use crate::access::{CanonicalPath, Decision};
use crate::config::HostHeader;
use crate::error::RequestError;
use crate::headers::{self, ForwardedContext};
use crate::response::Body;
use crate::session::{ActiveSession, CookieLookup};
use crate::state::{AppState, ConnInfo};

/// The identity a forwarded request carries, if any.
#[derive(Debug)]
struct Identity {
    user: String,
    roles: Vec<String>,
}

/// Authorize, prepare and forward one request whose path is already canonical.
pub async fn proxy(
    state: &AppState,
    conn: ConnInfo,
    request: Request<Incoming>,
    canonical_path: CanonicalPath,
) -> Result<Response<Body>, RequestError> {
    let identity = authorize(state, &request, &canonical_path).await?;
    let request = prepare(
        state,
        conn,
        request,
        canonical_path.as_str(),
        identity.as_ref(),
    );
    let mut response = state.upstream.send(request).await?;
    headers::clean_response(response.headers_mut(), state.sessions.cookie_name());
    Ok(response)
}

/// Apply the rules; read the session only when they need it.
async fn authorize(
    state: &AppState,
    request: &Request<Incoming>,
    canonical_path: &CanonicalPath,
) -> Result<Option<Identity>, RequestError> {
    let decision = state.config.access.decide(canonical_path, request.method());
    match decision {
        Decision::Anonymous => Ok(None),
        // A store outage only costs the identity here: the route works without one.
        Decision::Optional => Ok(load_session(state, request.headers())
            .await
            .ok()
            .flatten()
            .map(identity)),
        Decision::Session { .. } => match load_session(state, request.headers()).await? {
            Some(session) if decision.permits(&session.roles) => Ok(Some(identity(session))),
            Some(_) => Err(RequestError::Forbidden),
            None => Err(RequestError::Unauthenticated),
        },
        // Never forwarded; the session is read only to tell 403 from 401.
        Decision::Deny => match state.sessions.find_cookie(request.headers()) {
            CookieLookup::Present(_) => match load_session(state, request.headers()).await? {
                Some(_) => Err(RequestError::Forbidden),
                None => Err(RequestError::Unauthenticated),
            },
            _ => Err(RequestError::Unauthenticated),
        },
    }
}

async fn load_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<ActiveSession>, crate::session::StoreError> {
    state.sessions.resolve(headers, &state.users).await
}

fn identity(session: ActiveSession) -> Identity {
    Identity {
        user: session.record.user,
        roles: session.roles,
    }
}

/// Rewrite the request for the upstream: canonical target, clean headers, identity, forwarding.
fn prepare(
    state: &AppState,
    conn: ConnInfo,
    request: Request<Incoming>,
    canonical_path: &str,
    identity: Option<&Identity>,
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
    headers::remove_method_overrides(h);
    h.remove(header::EXPECT);
    let ids = &config.identity_headers;
    headers::strip_identity_headers(h, &[&ids.user, &ids.roles], &ids.strip);
    headers::remove_session_cookie(h, state.sessions.cookie_name());
    let peer_trusted = config
        .trusted_proxies
        .iter()
        .any(|net| net.contains(&conn.peer.ip()));
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
        headers::inject_identity(h, &ids.user, &ids.roles, &identity.user, &identity.roles);
    }
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
