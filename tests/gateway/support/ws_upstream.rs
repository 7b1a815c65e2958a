//! A WebSocket echo upstream (tokio-tungstenite: a real RFC 6455 handshake and real frames) that
//! records every connection and every handshake it received, and echoes every data message.
//!
//! It chooses the first subprotocol a client offers. `/api/refuse` refuses the handshake with a
//! plain `403` of its own (`X-Refused: 1`, a text body).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use super::upstream::Recorded;

/// What the upstream saw, shared with its connection tasks.
#[derive(Default)]
struct Seen {
    /// TCP connections accepted.
    connections: AtomicUsize,
    /// Connections whose WebSocket ended (closed, failed or cut).
    ended: AtomicUsize,
    handshakes: Mutex<Vec<Recorded>>,
}

pub struct WsUpstream {
    pub addr: SocketAddr,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl WsUpstream {
    // The handshake callback's error type is tungstenite's, a whole response.
    #[allow(clippy::result_large_err)]
    pub async fn start() -> WsUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let shared = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let seen = Arc::clone(&shared);
                tokio::spawn(async move {
                    let record =
                        |request: &Request, response: Response| handshake(&seen, request, response);
                    if let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await {
                        // Bounded by the peer: each turn needs a message from it.
                        while let Some(Ok(message)) = ws.next().await {
                            if (message.is_text() || message.is_binary())
                                && ws.send(message).await.is_err()
                            {
                                break;
                            }
                        }
                        seen.ended.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        WsUpstream { addr, seen, task }
    }

    /// Every handshake request received so far.
    pub fn handshakes(&self) -> Vec<Recorded> {
        self.seen.handshakes.lock().unwrap().clone()
    }

    /// The only handshake received; panics unless exactly one arrived.
    pub fn only(&self) -> Recorded {
        let all = self.handshakes();
        assert_eq!(
            all.len(),
            1,
            "upstream received {} handshakes: {all:#?}",
            all.len()
        );
        all.into_iter().next().unwrap()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }

    /// Whether nothing at all reached the upstream, not even a TCP connection.
    pub fn is_untouched(&self) -> bool {
        self.connections() == 0 && self.handshakes().is_empty()
    }

    /// Wait (at most `limit`) until `n` WebSockets have ended on the upstream's side.
    pub async fn ended_within(&self, n: usize, limit: Duration) -> bool {
        let step = Duration::from_millis(20);
        for _ in 0..(limit.as_millis() / step.as_millis()).max(1) {
            if self.seen.ended.load(Ordering::SeqCst) >= n {
                return true;
            }
            tokio::time::sleep(step).await;
        }
        self.seen.ended.load(Ordering::SeqCst) >= n
    }
}

impl Drop for WsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[allow(clippy::result_large_err)]
fn handshake(
    seen: &Seen,
    request: &Request,
    mut response: Response,
) -> Result<Response, ErrorResponse> {
    seen.handshakes.lock().unwrap().push(Recorded {
        method: request.method().to_string(),
        target: request.uri().to_string(),
        headers: request
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body_len: 0,
        sni: None,
    });
    if request.uri().path() == "/api/refuse" {
        let body = "no websocket here";
        let refusal = http::Response::builder()
            .status(403)
            .header("content-type", "text/plain")
            .header("content-length", body.len())
            .header("x-refused", "1")
            .body(Some(body.to_owned()))
            .unwrap();
        return Err(refusal);
    }
    let offered = request
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|p| p.trim().to_owned());
    if let Some(protocol) = offered {
        response
            .headers_mut()
            .insert("sec-websocket-protocol", protocol.parse().unwrap());
    }
    Ok(response)
}
