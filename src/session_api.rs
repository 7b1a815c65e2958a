//! The session API: `POST`, `GET` and `DELETE` on its path (log in, tell the session, log out),
//! and under it `/all` (the caller's sessions: list them, log out everywhere) and `/all/{handle}`
//! (end one of them). With `session.bearer`, a login may ask for its session as a token too.

use std::net::IpAddr;

use bytes::Bytes;
use http::header;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::access::CanonicalPath;
use crate::context::RequestContext;
use crate::error::RequestError;
use crate::identity::{LoggedIn, LoginError};
use crate::metrics::LoginResult;
use crate::regulation::Admission;
use crate::response::{self, Body};
use crate::router::SessionEndpoint;
use crate::session::index::Revoked;
use crate::session::{rfc3339, ActiveSession, Credential, ListedSession, SessionRecord};
use crate::state::{AppState, ConnInfo};
use crate::{cors, csrf, login_redirect};

/// Largest login body accepted, in bytes.
pub const MAX_LOGIN_BODY: usize = 16 * 1024;
/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Longest user agent kept in a session record.
const MAX_USER_AGENT_LEN: usize = 256;
const ALLOW: &str = "GET, HEAD, POST, DELETE";
const ALLOW_ALL: &str = "GET, HEAD, DELETE";
const ALLOW_ONE: &str = "DELETE";

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
    /// The page the browser came from (`login_url`'s return parameter), to be checked.
    #[serde(default)]
    return_to: Option<String>,
    /// Also return the session as a bearer token (with `session.bearer`; ignored otherwise).
    #[serde(default)]
    token: bool,
}

/// Dispatch a request on one of the session API's endpoints by method; the user logged in or
/// shown is noted in `ctx`. `path` is the canonical path (for `/all/{handle}`, its last segment
/// is the handle).
pub async fn handle(
    state: &AppState,
    conn: ConnInfo,
    request: Request<Incoming>,
    endpoint: SessionEndpoint,
    path: &CanonicalPath,
    ctx: &mut RequestContext,
) -> Result<Response<Body>, RequestError> {
    let method = request.method();
    // Two credentials are never resolved by choosing one.
    let credential = state
        .sessions
        .find_credential(request.headers())
        .map_err(|_| RequestError::BadRequest("both a session cookie and a bearer token"))?;
    // Login CSRF and forced logout: checked before anything else, the content type included. A
    // bearer token is no browser's doing: a page can only send one by script, which CORS governs.
    if (method == Method::POST || method == Method::DELETE)
        && !matches!(credential, Credential::Bearer(_))
        && !csrf::request_passes(state, &conn, request.uri(), request.headers())
    {
        return Err(RequestError::Csrf);
    }
    let allow = match endpoint {
        SessionEndpoint::Session => ALLOW,
        SessionEndpoint::All => ALLOW_ALL,
        SessionEndpoint::One => ALLOW_ONE,
    };
    match (endpoint, method.clone()) {
        (SessionEndpoint::Session, Method::POST) => login(state, &conn, request, ctx).await,
        (SessionEndpoint::Session, Method::GET | Method::HEAD) => {
            status(state, &request, ctx).await
        }
        (SessionEndpoint::Session, Method::DELETE) => logout(state, &request).await,
        (SessionEndpoint::All, Method::GET | Method::HEAD) => list(state, &request, ctx).await,
        (SessionEndpoint::All, Method::DELETE) => end_everywhere(state, &request, ctx).await,
        (SessionEndpoint::One, Method::DELETE) => {
            let handle = path.as_str().rsplit('/').next().unwrap_or_default();
            revoke(state, &request, handle, ctx).await
        }
        (_, Method::OPTIONS)
            if cors::allowed_origin(request.headers(), &state.config.cors).is_some()
                && matches!(
                    cors::preflight_method(method, request.headers()),
                    Some(Ok(_))
                ) =>
        {
            Ok(cors::preflight_response(allow, &state.config.cors))
        }
        _ => Err(RequestError::MethodNotAllowed { allow }),
    }
}

async fn login(
    state: &AppState,
    conn: &ConnInfo,
    request: Request<Incoming>,
    ctx: &mut RequestContext,
) -> Result<Response<Body>, RequestError> {
    if !is_json(request.headers()) {
        return Err(RequestError::UnsupportedMediaType);
    }
    let (parts, body) = request.into_parts();
    let body = read_limited(body, &parts.headers).await?;
    let login: LoginRequest = serde_json::from_slice(&body).map_err(|_| {
        RequestError::BadRequest("login body is not {\"username\",\"password\"[,\"token\"]}")
    })?;
    if login.password.len() > MAX_PASSWORD_LEN {
        return Err(RequestError::BadRequest("password too long"));
    }
    // From here on it is an attempt, and counts as one.
    let attempt = attempt_login(state, &parts.headers, &login, ctx.client).await;
    if let Some(result) = login_result(&attempt) {
        state.metrics.login_attempt(result);
    }
    let (login_user, cookie, record) = attempt?;
    let mut body = session_json(&record, &login_user.roles);
    if let Some(target) = &login.return_to {
        let own = csrf::request_own_origin(state, conn, &parts.uri, &parts.headers);
        let own_host = own
            .as_deref()
            .and_then(|o| o.split_once("://"))
            .map(|(_, h)| h);
        let allowed = state
            .config
            .login
            .as_ref()
            .map_or(&[][..], |l| &l.allowed_redirect_hosts[..]);
        body["return_to"] = login_redirect::safe_return(target, own_host, allowed).into();
    }
    if login.token && state.sessions.bearer_enabled() {
        body["token"] = cookie.clone().into();
    }
    let mut response = response::json(StatusCode::CREATED, &body);
    response.headers_mut().insert(
        header::SET_COOKIE,
        state.sessions.set_cookie_value(cookie, &record),
    );
    ctx.user = Some(login_user.user);
    Ok(response)
}

/// Regulation, the identity sources, then a new session: the login with the signed cookie value
/// and the record, or why not.
async fn attempt_login(
    state: &AppState,
    headers: &http::HeaderMap,
    login: &LoginRequest,
    client: IpAddr,
) -> Result<(LoggedIn, String, SessionRecord), RequestError> {
    // Before any hashing, and blind to whether the user exists or the password is right.
    let attempt = match state.regulator.admit(&login.username, client).await? {
        Admission::Admitted(attempt) => attempt,
        Admission::Refused { retry_after } => {
            return Err(RequestError::TooManyAttempts { retry_after })
        }
    };
    // Only names that exist locally are logged: a typed password in the username field stays
    // out (a delegated login's name is logged once the check has vouched for it).
    let policy = state.policy();
    let known = policy
        .users
        .get(&login.username)
        .map(|u| u.username.as_str());
    let user = match state
        .directory(&policy)
        .authenticate(&login.username, &login.password)
        .await
    {
        Ok(user) => user,
        Err(LoginError::InvalidCredentials) => {
            tracing::info!(user = known.unwrap_or("-"), %client, "login failed");
            for scope in state.regulator.failed(&attempt).await? {
                let ban_time = state.regulator.ban_time(scope);
                tracing::warn!(
                    user = known.unwrap_or("-"),
                    %client,
                    window = scope.name(),
                    ban_time = %humantime::format_duration(ban_time),
                    "login regulated"
                );
            }
            return Err(RequestError::InvalidCredentials);
        }
        Err(LoginError::Busy) => {
            state.regulator.withdrawn(&attempt).await?;
            return Err(RequestError::LoginBusy);
        }
        // Not a wrong password: an outage of the check endpoint must not ban anyone.
        Err(LoginError::SourceUnavailable(err)) => {
            state.regulator.withdrawn(&attempt).await?;
            return Err(RequestError::IdentitySourceUnavailable(err));
        }
    };
    state.regulator.succeeded(&attempt).await?;
    // A new id at every login; the session this request carried, if any, ends here.
    state
        .sessions
        .end_all(&state.sessions.verified_ids(headers))
        .await?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(MAX_USER_AGENT_LEN).collect())
        .unwrap_or_default();
    let (cookie, record) = state
        .sessions
        .create(&user, client.to_string(), user_agent)
        .await?;
    tracing::info!(user = %user.user, source = ?user.source, %client, "login succeeded");
    Ok((user, cookie, record))
}

/// How an attempt counts in `portcullis_login_attempts_total`.
fn login_result<T>(attempt: &Result<T, RequestError>) -> Option<LoginResult> {
    match attempt {
        Ok(_) => Some(LoginResult::Success),
        Err(RequestError::InvalidCredentials) => Some(LoginResult::Invalid),
        Err(RequestError::TooManyAttempts { .. }) => Some(LoginResult::Regulated),
        Err(RequestError::LoginBusy) => Some(LoginResult::Busy),
        Err(RequestError::Store(_)) => Some(LoginResult::StoreUnavailable),
        Err(RequestError::IdentitySourceUnavailable(_)) => Some(LoginResult::SourceUnavailable),
        Err(_) => None,
    }
}

async fn status(
    state: &AppState,
    request: &Request<Incoming>,
    ctx: &mut RequestContext,
) -> Result<Response<Body>, RequestError> {
    let Some(session) = state
        .sessions
        .resolve(
            request.headers(),
            &state.policy().users,
            &state.config.identity.sources,
        )
        .await?
    else {
        return Err(RequestError::Unauthenticated);
    };
    let mut response = response::json(
        StatusCode::OK,
        &session_json(&session.record, &session.roles),
    );
    // A token cannot be re-issued through a cookie: its holder keeps using it until it ends.
    if session.stale_key && !session.bearer {
        response.headers_mut().insert(
            header::SET_COOKIE,
            state.sessions.set_cookie(&session.id, &session.record),
        );
    }
    ctx.user = Some(session.record.user);
    Ok(response)
}

async fn logout(
    state: &AppState,
    request: &Request<Incoming>,
) -> Result<Response<Body>, RequestError> {
    let clear = state.sessions.clear_cookie();
    let ended = state
        .sessions
        .end_all(&state.sessions.verified_ids(request.headers()))
        .await;
    let mut response = match ended {
        Ok(()) => response::empty(StatusCode::NO_CONTENT),
        // The cookie is still expired; the record lives on until its TTL.
        Err(err) => crate::error::rescue(&RequestError::Store(err)),
    };
    response.headers_mut().insert(header::SET_COOKIE, clear);
    Ok(response)
}

/// The caller's session, or 401.
async fn caller(
    state: &AppState,
    request: &Request<Incoming>,
    ctx: &mut RequestContext,
) -> Result<ActiveSession, RequestError> {
    let session = state
        .sessions
        .resolve(
            request.headers(),
            &state.policy().users,
            &state.config.identity.sources,
        )
        .await?
        .ok_or(RequestError::Unauthenticated)?;
    ctx.user = Some(session.record.user.clone());
    Ok(session)
}

/// `GET /session/all`: the caller's sessions, oldest first, the calling one marked `current`.
async fn list(
    state: &AppState,
    request: &Request<Incoming>,
    ctx: &mut RequestContext,
) -> Result<Response<Body>, RequestError> {
    let session = caller(state, request, ctx).await?;
    let current = session.id.handle();
    let listed = state.sessions.list(&session.record.user).await?;
    let sessions: Vec<serde_json::Value> = listed
        .iter()
        .map(|listed| listed_json(listed, listed.handle == current))
        .collect();
    Ok(response::json(
        StatusCode::OK,
        &serde_json::json!({ "sessions": sessions }),
    ))
}

/// `DELETE /session/all`: end every session of the caller, this one included.
async fn end_everywhere(
    state: &AppState,
    request: &Request<Incoming>,
    ctx: &mut RequestContext,
) -> Result<Response<Body>, RequestError> {
    let session = caller(state, request, ctx).await?;
    let user = &session.record.user;
    let ended = state.sessions.end_everywhere(user).await?;
    // Also when the index somehow missed the calling session: "everywhere" includes here.
    state.sessions.end(&session.id).await?;
    tracing::info!(user = %user, sessions = ended, "logged out everywhere");
    let mut response = response::empty(StatusCode::NO_CONTENT);
    response
        .headers_mut()
        .insert(header::SET_COOKIE, state.sessions.clear_cookie());
    Ok(response)
}

/// `DELETE /session/all/{handle}`: end one of the caller's sessions; 404 for any handle not in
/// the caller's own index. Ending the calling session also expires its cookie.
async fn revoke(
    state: &AppState,
    request: &Request<Incoming>,
    handle: &str,
    ctx: &mut RequestContext,
) -> Result<Response<Body>, RequestError> {
    let session = caller(state, request, ctx).await?;
    match state.sessions.revoke(&session.record.user, handle).await? {
        Revoked::NotFound => Err(RequestError::NotFound),
        Revoked::Ended => {
            tracing::info!(user = %session.record.user, "session revoked by its user");
            let mut response = response::empty(StatusCode::NO_CONTENT);
            if session.id.handle() == handle {
                response
                    .headers_mut()
                    .insert(header::SET_COOKIE, state.sessions.clear_cookie());
            }
            Ok(response)
        }
    }
}

/// One entry of `GET /session/all`.
fn listed_json(listed: &ListedSession, current: bool) -> serde_json::Value {
    let record = &listed.record;
    serde_json::json!({
        "handle": listed.handle,
        "created_at": rfc3339(record.created_at),
        "last_seen_at": rfc3339(record.last_seen_at),
        "expires_at": rfc3339(record.expires_at),
        "idle_expires_at": rfc3339(record.idle_expires_at),
        "client_addr": record.client_addr,
        "user_agent": record.user_agent,
        "current": current,
    })
}

/// `application/json`, parameters (such as `charset`) allowed.
fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

async fn read_limited(body: Incoming, headers: &http::HeaderMap) -> Result<Bytes, RequestError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_LOGIN_BODY as u64) {
        return Err(RequestError::PayloadTooLarge);
    }
    match Limited::new(body, MAX_LOGIN_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(RequestError::PayloadTooLarge)
        }
        Err(_) => Err(RequestError::BadRequest("could not read the request body")),
    }
}

fn session_json(record: &SessionRecord, roles: &[String]) -> serde_json::Value {
    serde_json::json!({
        "user": record.user,
        "roles": roles,
        "created_at": rfc3339(record.created_at),
        "expires_at": rfc3339(record.expires_at),
        "idle_expires_at": rfc3339(record.idle_expires_at),
    })
}
