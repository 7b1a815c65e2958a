//! HTTP clients for tests: one with a cookie jar over hyper, and one that writes raw bytes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The `error` code of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Every `Set-Cookie` value.
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    /// Read a hyper response (from any connection, HTTP/1 or HTTP/2, plain or TLS) to the end.
    pub async fn read(response: http::Response<hyper::body::Incoming>) -> Reply {
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(Duration::from_secs(10), body.collect())
            .await
            .expect("response body within 10 s")
            .expect("response body")
            .to_bytes();
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }
}

/// An HTTP/1.1 client with a cookie jar.
pub struct Client {
    addr: SocketAddr,
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    pub jar: BTreeMap<String, String>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
        Client {
            addr,
            http,
            jar: BTreeMap::new(),
        }
    }

    /// A cookie from the jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.get(name).cloned()
    }

    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.jar.insert(name.to_owned(), value.to_owned());
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    pub async fn delete(&mut self, path: &str) -> Reply {
        self.send(Method::DELETE, path, &[], Bytes::new()).await
    }

    pub async fn post_json(&mut self, path: &str, body: &serde_json::Value) -> Reply {
        let body = Bytes::from(serde_json::to_vec(body).unwrap());
        self.send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            body,
        )
        .await
    }

    /// Send a request with extra headers; the jar's cookies are added unless a `cookie` header
    /// is given explicitly.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        let explicit_cookie = headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("cookie"));
        if !explicit_cookie && !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(n, v)| format!("{n}={v}")).collect();
            request = request.header("cookie", cookies.join("; "));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body)).expect("valid test request");
        let response = tokio::time::timeout(Duration::from_secs(10), self.http.request(request))
            .await
            .expect("gateway answered within 10 s")
            .expect("request sent");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        let reply = Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        };
        for value in reply.set_cookies() {
            let first = value.split(';').next().unwrap();
            let (name, val) = first.split_once('=').unwrap();
            if value.to_ascii_lowercase().contains("max-age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), val.to_owned());
            }
        }
        reply
    }
}

/// Write raw bytes on a fresh connection and read until the server closes it or 3 s pass.
/// Returns the status code of the first response (0 if none) and everything read.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}
