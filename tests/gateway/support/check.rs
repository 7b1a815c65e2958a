//! A credential check endpoint, as an existing API would have one: `POST /auth/check` with
//! `{"username","password"}`, scripted by username. Every other path answers 200 with a small
//! JSON body, so the same server can stand in for the upstream too (a shared origin). Every
//! request is recorded, body included.
//!
//! Answers to `/auth/check`: the password [`CHECK_PW`] is right for every name; a wrong one is
//! 401. With the right password: `forbidden` 403, `broken` 500, `slow` answers after 3 s,
//! `garbage` a body that is not JSON, `badrole` a role breaking the value rules, `baduser` a user
//! breaking them, `noroles` no roles field, `impostor` claims to be the local user `user`,
//! `carol` is `{"user":"carol","roles":["reader","ops"]}`, and any other name gets role `reader`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The password the endpoint accepts for every name.
pub const CHECK_PW: &str = "check-endpoint-password-1";
/// The endpoint's path.
pub const CHECK_PATH: &str = "/auth/check";

/// One request as the endpoint saw it.
#[derive(Debug, Clone)]
pub struct CheckRecord {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl CheckRecord {
    /// The one value of header `name` (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct CheckEndpoint {
    pub addr: SocketAddr,
    records: Arc<Mutex<Vec<CheckRecord>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CheckEndpoint {
    pub async fn start() -> CheckEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let records = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&records);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let records = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let records = Arc::clone(&records);
                        async move { Ok::<_, Infallible>(answer(req, records).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        CheckEndpoint {
            addr,
            records,
            task,
        }
    }

    /// The check endpoint's URL.
    pub fn url(&self) -> String {
        format!("http://{}{CHECK_PATH}", self.addr)
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<CheckRecord> {
        self.records.lock().unwrap().clone()
    }

    /// The requests to the check path.
    pub fn checks(&self) -> Vec<CheckRecord> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == CHECK_PATH)
            .collect()
    }

    pub fn clear(&self) {
        self.records.lock().unwrap().clear();
    }

    /// Stop listening (connections are refused afterwards).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for CheckEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    req: Request<Incoming>,
    records: Arc<Mutex<Vec<CheckRecord>>>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let record = CheckRecord {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    records.lock().unwrap().push(record.clone());
    if record.path != CHECK_PATH {
        return reply(
            StatusCode::OK,
            &format!(r#"{{"served":"{}"}}"#, record.path),
        );
    }
    let login: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let user = login["username"].as_str().unwrap_or_default().to_owned();
    if login["password"] != CHECK_PW {
        return reply(StatusCode::UNAUTHORIZED, r#"{"error":"bad credentials"}"#);
    }
    match user.as_str() {
        "forbidden" => reply(StatusCode::FORBIDDEN, ""),
        "broken" => reply(StatusCode::INTERNAL_SERVER_ERROR, "oops"),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            reply(StatusCode::OK, r#"{"user":"slow","roles":[]}"#)
        }
        "garbage" => reply(StatusCode::OK, "{not json"),
        "badrole" => reply(StatusCode::OK, r#"{"user":"badrole","roles":["a b"]}"#),
        "baduser" => reply(StatusCode::OK, r#"{"user":"bad user","roles":[]}"#),
        "noroles" => reply(StatusCode::OK, r#"{"user":"noroles"}"#),
        "impostor" => reply(StatusCode::OK, r#"{"user":"user","roles":["admin"]}"#),
        "carol" => reply(
            StatusCode::OK,
            r#"{"user":"carol","roles":["reader","ops"]}"#,
        ),
        other => reply(
            StatusCode::OK,
            &serde_json::json!({ "user": other, "roles": ["reader"] }).to_string(),
        ),
    }
}

fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}
