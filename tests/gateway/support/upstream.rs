//! An echo upstream that records exactly what it received and answers with it as JSON, over
//! plain HTTP/1.1 or over TLS ([`Upstream::start_tls`], recording the SNI the client sent).
//!
//! Paths with special behaviour: `/api/slow` (holds the answer 1.5 s), `/hang` (never answers),
//! `/set-cookie` (answers with `Set-Cookie` for `gw_sid`, spelled several ways, and `theirs`), `/hop` (answers with
//! `Connection: X-Foo` and `X-Foo: 1`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
    /// The TLS server name the client sent (TLS upstreams only).
    pub sni: Option<String>,
}

impl Recorded {
    /// Every value of header `name` (case-insensitive).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of header `name`; panics if there are several.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(
            all.len() <= 1,
            "header {name} received {} times: {all:?}",
            all.len()
        );
        all.first().copied()
    }

    /// Whether any header name starts with `prefix` (case-insensitive, `_` read as `-`).
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.to_ascii_lowercase().replace('_', "-").starts_with(prefix))
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    records: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener)
    }

    /// An upstream on 127.0.0.1 that speaks TLS with `config` (HTTP/1.1 inside).
    pub async fn start_tls(config: Arc<rustls::ServerConfig>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve_with(listener, Some(TlsAcceptor::from(config)))
    }

    /// Serve on an already bound listener (to restart on the same port).
    pub fn serve(listener: TcpListener) -> Upstream {
        Self::serve_with(listener, None)
    }

    fn serve_with(listener: TcpListener, tls: Option<TlsAcceptor>) -> Upstream {
        let addr = listener.local_addr().unwrap();
        let records = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&records);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let records = Arc::clone(&shared);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = |sni: Option<String>| {
                        service_fn(move |req| {
                            let records = Arc::clone(&records);
                            let sni = sni.clone();
                            async move { Ok::<_, Infallible>(echo(req, records, sni).await) }
                        })
                    };
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http
                                .serve_connection(TokioIo::new(stream), service(None))
                                .await;
                        }
                        Some(acceptor) => {
                            let Ok(Ok(stream)) = tokio::time::timeout(
                                Duration::from_secs(5),
                                acceptor.accept(stream),
                            )
                            .await
                            else {
                                return;
                            };
                            let sni = stream.get_ref().1.server_name().map(str::to_owned);
                            let _ = http
                                .serve_connection(TokioIo::new(stream), service(sni))
                                .await;
                        }
                    }
                });
            }
        });
        Upstream {
            addr,
            records,
            task,
        }
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.records.lock().unwrap().clone()
    }

    /// The only request received; panics unless exactly one arrived.
    pub fn only(&self) -> Recorded {
        let all = self.requests();
        assert_eq!(
            all.len(),
            1,
            "upstream received {} requests: {all:#?}",
            all.len()
        );
        all.into_iter().next().unwrap()
    }

    /// Whether nothing was received.
    pub fn is_untouched(&self) -> bool {
        self.records.lock().unwrap().is_empty()
    }

    pub fn clear(&self) {
        self.records.lock().unwrap().clear();
    }

    /// Stop listening (connections are refused afterwards).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo(
    req: Request<Incoming>,
    records: Arc<Mutex<Vec<Recorded>>>,
    sni: Option<String>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let record = Recorded {
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
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
        body_len: body.len(),
        sni,
    };
    records.lock().unwrap().push(record.clone());
    let path = parts.uri.path();
    if path == "/api/slow" {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    if path == "/hang" {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let json = serde_json::json!({
        "method": record.method,
        "target": record.target,
        "headers": record.headers,
        "body_len": record.body_len,
    });
    let mut response = Response::new(Full::new(Bytes::from(serde_json::to_vec(&json).unwrap())));
    let h = response.headers_mut();
    h.insert("content-type", "application/json".parse().unwrap());
    if path == "/set-cookie" {
        h.append("set-cookie", "gw_sid=planted; Path=/".parse().unwrap());
        h.append("set-cookie", "theirs=1; Path=/".parse().unwrap());
        // Nameless cookies that browsers would send back as `gw_sid=...` / `gw_sid`.
        h.append("set-cookie", "=gw_sid=planted; Path=/".parse().unwrap());
        h.append("set-cookie", "gw_sid; Path=/session".parse().unwrap());
    }
    if path == "/hop" {
        h.insert("connection", "X-Foo".parse().unwrap());
        h.insert("x-foo", "1".parse().unwrap());
    }
    response
}

/// An upstream that answers every connection's first request with the same raw `response`
/// bytes (for responses hyper's server would never write).
pub async fn canned(response: &'static [u8]) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(response).await;
        }
    });
    addr
}
