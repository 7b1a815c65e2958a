//! The delegated credential check (`identity.upstream_check`): a login's username and password
//! are POSTed as JSON to an endpoint of the existing API, whose answer decides the login.
//!
//! `200` with `{"user": ..., "roles": [...]}` (field names configurable) accepts the login as
//! that user with those roles; `401` and `403` refuse it, exactly like a wrong local password.
//! Anything else (another status, no answer within the timeout, a body that is not such an
//! object, a user or role breaking the value rules) is the source being unavailable: a 503,
//! never a login. The password goes to this endpoint and nowhere else, and is never logged.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::{is_role, is_username};

/// Default `identity.upstream_check.timeout`.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `identity.upstream_check.max_session_age`.
pub const DEFAULT_MAX_SESSION_AGE: Duration = Duration::from_secs(3600);
/// Largest answer body read from the check endpoint.
pub const MAX_CHECK_ANSWER: usize = 64 * 1024;
/// How long an idle connection to the check endpoint is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// `identity.upstream_check`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamCheckConfig {
    /// The endpoint (`http://host:port/path`).
    pub url: Uri,
    /// Bound on the whole exchange: connecting, sending, and reading the answer.
    pub timeout: Duration,
    /// Static headers sent with every check (a shared secret, say); values are marked sensitive,
    /// so `Debug` never shows them.
    pub headers: HeaderMap,
    /// The answer's field holding the user name.
    pub user_field: String,
    /// The answer's field holding the roles.
    pub roles_field: String,
    /// Longest life of a session this source created (also capped by `absolute_timeout`).
    pub max_session_age: Duration,
}

/// What the check endpoint decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials are good: the session is this user's, with these roles.
    Accepted {
        /// User name, as the endpoint returned it.
        user: String,
        /// Roles, as the endpoint returned them.
        roles: Vec<String>,
    },
    /// 401 or 403: the credentials are wrong.
    Refused,
}

/// Why the check endpoint gave no usable answer (each is a 503 to the client).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamCheckError {
    /// No connection, or the exchange broke.
    #[error("the credential check endpoint cannot be reached")]
    Unreachable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No complete answer within the timeout.
    #[error("the credential check endpoint did not answer within the timeout")]
    Timeout,
    /// A status other than 200, 401 and 403.
    #[error("the credential check endpoint answered {0}")]
    Status(StatusCode),
    /// A 200 whose body is not what the contract says. The body is never quoted: it might echo
    /// the password.
    #[error("the credential check answer is unusable: {0}")]
    Answer(&'static str),
}

/// A client for the check endpoint.
#[derive(Debug, Clone)]
pub struct UpstreamCheck {
    client: Client<HttpConnector, Full<Bytes>>,
    config: UpstreamCheckConfig,
}

impl UpstreamCheck {
    /// A pooled client for `config.url`.
    pub fn new(config: &UpstreamCheckConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Self {
            client,
            config: config.clone(),
        }
    }

    /// Longest life of a session this source created.
    pub fn max_session_age(&self) -> Duration {
        self.config.max_session_age
    }

    /// Ask the endpoint about `username` and `password`.
    pub async fn check(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Verdict, UpstreamCheckError> {
        let body = serde_json::to_vec(&serde_json::json!({
            "username": username,
            "password": password,
        }))
        .expect("two strings always serialize");
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.config.url.clone())
            .body(Full::new(Bytes::from(body)))
            .expect("a validated URL makes a valid request");
        let headers = request.headers_mut();
        headers.extend(self.config.headers.clone());
        headers.insert(header::CONTENT_TYPE, json());
        headers.insert(header::ACCEPT, json());
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("portcullis/", env!("CARGO_PKG_VERSION"))),
        );
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| UpstreamCheckError::Unreachable(Box::new(e)))?;
            let status = response.status();
            if status != StatusCode::OK {
                // Only a 200's body matters; any other answer is decided by its status.
                return read_answer(status, &[], &self.config);
            }
            let body = Limited::new(response.into_body(), MAX_CHECK_ANSWER)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        UpstreamCheckError::Answer("the body is too large")
                    } else {
                        UpstreamCheckError::Unreachable(e)
                    }
                })?
                .to_bytes();
            read_answer(status, &body, &self.config)
        };
        tokio::time::timeout(self.config.timeout, exchange)
            .await
            .map_err(|_| UpstreamCheckError::Timeout)?
    }
}

fn json() -> HeaderValue {
    HeaderValue::from_static("application/json")
}

/// Decide on an answer: its status, and for a 200 its body, read with `config`'s field names.
pub fn read_answer(
    status: StatusCode,
    body: &[u8],
    config: &UpstreamCheckConfig,
) -> Result<Verdict, UpstreamCheckError> {
    use UpstreamCheckError::Answer;
    match status {
        StatusCode::OK => {}
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Ok(Verdict::Refused),
        other => return Err(UpstreamCheckError::Status(other)),
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| Answer("the body is not JSON"))?;
    let object = value
        .as_object()
        .ok_or(Answer("the body is not an object"))?;
    let user = object
        .get(&config.user_field)
        .and_then(|v| v.as_str())
        .ok_or(Answer("the user field is missing or not a string"))?;
    if !is_username(user) {
        return Err(Answer("the user breaks the username rule"));
    }
    let roles = object
        .get(&config.roles_field)
        .and_then(|v| v.as_array())
        .ok_or(Answer("the roles field is missing or not an array"))?
        .iter()
        .map(|role| match role.as_str() {
            Some(role) if is_role(role) => Ok(role.to_owned()),
            _ => Err(Answer("a role is not a string or breaks the role rule")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Verdict::Accepted {
        user: user.to_owned(),
        roles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> UpstreamCheckConfig {
        UpstreamCheckConfig {
            url: Uri::from_static("http://127.0.0.1:1/check"),
            timeout: DEFAULT_CHECK_TIMEOUT,
            headers: HeaderMap::new(),
            user_field: "user".into(),
            roles_field: "roles".into(),
            max_session_age: DEFAULT_MAX_SESSION_AGE,
        }
    }

    fn answer(status: u16, body: &str) -> Result<Verdict, UpstreamCheckError> {
        read_answer(
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
            &config(),
        )
    }

    #[test]
    fn a_200_with_user_and_roles_accepts() {
        assert_eq!(
            answer(
                200,
                r#"{"user":"carol","roles":["ops","team:a"],"other":1}"#
            )
            .unwrap(),
            Verdict::Accepted {
                user: "carol".into(),
                roles: vec!["ops".into(), "team:a".into()]
            }
        );
        assert_eq!(
            answer(200, r#"{"user":"carol","roles":[]}"#).unwrap(),
            Verdict::Accepted {
                user: "carol".into(),
                roles: vec![]
            }
        );
    }

    #[test]
    fn field_names_are_configurable() {
        let config = UpstreamCheckConfig {
            user_field: "login".into(),
            roles_field: "groups".into(),
            ..config()
        };
        let body = br#"{"login":"dave","groups":["x"]}"#;
        assert!(matches!(
            read_answer(StatusCode::OK, body, &config),
            Ok(Verdict::Accepted { user, .. }) if user == "dave"
        ));
        assert!(read_answer(StatusCode::OK, br#"{"user":"dave","roles":[]}"#, &config).is_err());
    }

    #[test]
    fn refusals_and_unusable_answers_are_told_apart() {
        assert_eq!(answer(401, "").unwrap(), Verdict::Refused);
        assert_eq!(answer(403, "whatever").unwrap(), Verdict::Refused);
        for status in [201, 204, 302, 400, 404, 429, 500, 502, 503] {
            assert!(
                matches!(answer(status, ""), Err(UpstreamCheckError::Status(_))),
                "{status}"
            );
        }
        for body in [
            "",
            "not json",
            "[]",
            r#""carol""#,
            r#"{"roles":["a"]}"#,
            r#"{"user":7,"roles":["a"]}"#,
            r#"{"user":"carol"}"#,
            r#"{"user":"carol","roles":null}"#,
            r#"{"user":"carol","roles":"admin"}"#,
            r#"{"user":"carol","roles":["a b"]}"#,
            r#"{"user":"carol","roles":[1]}"#,
            r#"{"user":"carol x","roles":[]}"#,
            r#"{"user":"","roles":[]}"#,
        ] {
            assert!(
                matches!(answer(200, body), Err(UpstreamCheckError::Answer(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn an_unusable_answer_never_quotes_the_body() {
        let err = answer(200, r#"{"user":"hunter2 secret","roles":[]}"#).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
