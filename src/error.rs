//! The request-level error and the one place that turns errors into responses.
//!
//! Status follows blame: client fault 4xx, policy 401/403, store down 503, upstream refused 502,
//! upstream slow 504, anything else 500. Bodies stay short and generic; causes go to the log.
//! The same table names each error's [`Outcome`] for the metrics and the access log.

use std::time::Duration;

use http::header::{HeaderValue, ALLOW, CONNECTION, RETRY_AFTER};
use http::{Response, StatusCode};

use crate::access::PathError;
use crate::forward::ForwardError;
use crate::framing::FramingError;
use crate::identity::UpstreamCheckError;
use crate::metrics::Outcome;
use crate::response::{self, Body};
use crate::session::StoreError;

/// Everything that can end a request with an error response.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request target is malformed or ambiguous.
    #[error("bad request target: {0}")]
    BadPath(#[from] PathError),
    /// Ambiguous framing or an oversized header section; the connection is closed after.
    #[error(transparent)]
    Framing(#[from] FramingError),
    /// Another malformed request.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// No valid session where one is needed.
    #[error("no valid session")]
    Unauthenticated,
    /// A login failed.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A session that may not do this.
    #[error("forbidden")]
    Forbidden,
    /// A request that would act under a cookie failed the origin check.
    #[error("cross-origin request refused")]
    Csrf,
    /// Nothing at this path.
    #[error("not found")]
    NotFound,
    /// Wrong method; `allow` lists the right ones.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// Value of the `Allow` header.
        allow: &'static str,
    },
    /// Body over the limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// Body of the wrong type.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// The session store is down.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The hashing queue is full.
    #[error("login busy")]
    LoginBusy,
    /// The delegated credential check gave no usable answer.
    #[error("identity source unavailable")]
    IdentitySourceUnavailable(#[source] UpstreamCheckError),
    /// Login regulated: too many failed attempts for this user, address or both.
    #[error("too many failed login attempts")]
    TooManyAttempts {
        /// Time until the ban ends (sent as `Retry-After`, whole seconds rounded up).
        retry_after: Duration,
    },
    /// The upstream failed.
    #[error(transparent)]
    Upstream(#[from] ForwardError),
    /// A bug: a panic or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RequestError {
    /// Status, error code, message and how the request counts in the metrics.
    fn parts(&self) -> (StatusCode, &'static str, &'static str, Outcome) {
        use RequestError::*;
        match self {
            Framing(FramingError::HeadersTooLarge) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "The request headers are too large.",
                Outcome::HeadersTooLarge,
            ),
            Framing(_) | BadPath(_) | BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The request is malformed.",
                Outcome::BadRequest,
            ),
            Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "A valid session is required.",
                Outcome::Unauthenticated,
            ),
            InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid username or password.",
                Outcome::InvalidCredentials,
            ),
            Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "This session may not access this resource.",
                Outcome::Forbidden,
            ),
            Csrf => (
                StatusCode::FORBIDDEN,
                "csrf",
                "Cross-origin request refused.",
                Outcome::Csrf,
            ),
            NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found.",
                Outcome::NotFound,
            ),
            MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed.",
                Outcome::MethodNotAllowed,
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is too large.",
                Outcome::PayloadTooLarge,
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "The request body must be application/json.",
                Outcome::UnsupportedMediaType,
            ),
            Store(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "session_store_unavailable",
                "The session store is unavailable.",
                Outcome::StoreUnavailable,
            ),
            LoginBusy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "login_busy",
                "Too many logins in progress; retry shortly.",
                Outcome::LoginBusy,
            ),
            IdentitySourceUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "identity_source_unavailable",
                "The identity source is unavailable; retry shortly.",
                Outcome::IdentitySourceUnavailable,
            ),
            TooManyAttempts { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "Too many failed logins; retry later.",
                Outcome::TooManyAttempts,
            ),
            Upstream(ForwardError::ClientBody(_)) => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The request body is malformed or incomplete.",
                Outcome::BadRequest,
            ),
            Upstream(ForwardError::Timeout) => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "The upstream did not answer in time.",
                Outcome::UpstreamTimeout,
            ),
            Upstream(_) => (
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "The upstream could not be reached.",
                Outcome::UpstreamError,
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Internal error.",
                Outcome::Internal,
            ),
        }
    }
}

/// Turn an error into the response the client gets, logging what the client is not told.
///
/// The response carries its [`Outcome`] as an extension, so that whoever finishes the request
/// (the router) counts it as this error, also when a handler answered with a rescued error of
/// its own (a logout while the store is down).
pub fn rescue(err: &RequestError) -> Response<Body> {
    let (status, code, message, outcome) = err.parts();
    if status.is_server_error() {
        tracing::warn!(error = %ErrorChain(err), status = status.as_u16(), "request failed");
    } else {
        tracing::debug!(error = %err, status = status.as_u16(), "request refused");
    }
    let mut response = response::error(status, code, message);
    response.extensions_mut().insert(outcome);
    if let RequestError::MethodNotAllowed { allow } = err {
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    if let RequestError::Framing(_) = err {
        // Whatever follows on this connection cannot be trusted to start where we think.
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if let RequestError::TooManyAttempts { retry_after } = err {
        response.headers_mut().insert(
            RETRY_AFTER,
            HeaderValue::from(retry_after_secs(*retry_after)),
        );
    }
    response
}

/// `Retry-After` in whole seconds, rounded up and at least 1: retrying at that moment finds the
/// ban over.
fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs();
    let secs = if wait.subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    };
    secs.max(1)
}

/// Displays an error with its whole `source()` chain.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rescued_response_carries_its_outcome() {
        for (err, outcome) in [
            (RequestError::Unauthenticated, Outcome::Unauthenticated),
            (RequestError::Forbidden, Outcome::Forbidden),
            (RequestError::BadRequest("x"), Outcome::BadRequest),
            (
                RequestError::Store(StoreError::Timeout),
                Outcome::StoreUnavailable,
            ),
            (
                RequestError::Upstream(ForwardError::Timeout),
                Outcome::UpstreamTimeout,
            ),
            (
                RequestError::Upstream(ForwardError::UnexpectedUpgrade),
                Outcome::UpstreamError,
            ),
            (
                RequestError::Upstream(ForwardError::ClientBody("cut".into())),
                Outcome::BadRequest,
            ),
            (
                RequestError::IdentitySourceUnavailable(UpstreamCheckError::Timeout),
                Outcome::IdentitySourceUnavailable,
            ),
        ] {
            let response = rescue(&err);
            assert_eq!(
                response.extensions().get::<Outcome>(),
                Some(&outcome),
                "{err}"
            );
        }
    }

    #[test]
    fn too_many_attempts_is_429_with_retry_after_rounded_up() {
        for (wait, header) in [
            (Duration::from_millis(1), "1"),
            (Duration::from_secs(30), "30"),
            (Duration::from_millis(29_001), "30"),
            (Duration::ZERO, "1"),
            (Duration::MAX, "18446744073709551615"),
        ] {
            let response = rescue(&RequestError::TooManyAttempts { retry_after: wait });
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(response.headers()[RETRY_AFTER], header, "{wait:?}");
        }
    }
}
