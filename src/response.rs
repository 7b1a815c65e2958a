//! Responses Portcullis writes itself: the body type, JSON bodies and the headers every one of
//! them carries (`Cache-Control: no-store`).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Any boxed error a body may yield.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body type: generated bodies and streamed upstream bodies alike.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A response with a JSON body.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(value).expect("a JSON value always serializes");
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    no_store(response)
}

/// A response with a text body of `content_type`.
pub fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    no_store(response)
}

/// A response with no body.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    no_store(response)
}

/// The JSON error shape: `{"error": code, "message": text}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    /// Serialized straight from the two strings (no map built on the way).
    #[derive(serde::Serialize)]
    struct Error<'a> {
        error: &'a str,
        message: &'a str,
    }
    json(
        status,
        &Error {
            error: code,
            message,
        },
    )
}

/// A body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn no_store(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
