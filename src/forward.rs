//! The upstream client: pooled connections, timeouts, and bodies streamed both ways.
//!
//! `connect_timeout` covers the whole connection set-up, TCP and (for an `https://` upstream)
//! the TLS handshake; `timeout` runs from the last request-body byte to the response head;
//! `idle_timeout` bounds any stretch with no bytes either way (a 504 before the head, a reset
//! stream after it). A WebSocket handshake is bounded by both up to the upstream's `101`; the
//! open tunnel after it is not an HTTP exchange and is bounded by [`crate::tunnel`] instead. An
//! `https://` upstream is verified against the roots [`crate::tls`] builds, with SNI from the
//! URL's host (or `upstream.tls_server_name`), and spoken to in HTTP/1.1.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_rustls::{
    DefaultServerNameResolver, FixedServerNameResolver, HttpsConnector, MaybeHttpsStream,
    ResolveServerName,
};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::config::UpstreamConfig;
use crate::response::{Body, BoxError};
use crate::tls;

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No connection could be made (refused, unreachable, connect timeout).
    #[error("cannot connect to upstream")]
    Connect(#[source] BoxError),
    /// No response head in time.
    #[error("upstream timed out")]
    Timeout,
    /// The exchange failed after connecting.
    #[error("upstream exchange failed")]
    Exchange(#[source] BoxError),
    /// The upstream's response framing is ambiguous (`Content-Length` with `Transfer-Encoding`,
    /// or a coding other than `chunked`).
    #[error("ambiguous upstream response framing")]
    AmbiguousFraming(#[source] crate::framing::FramingError),
    /// The upstream switched protocols although no upgrade was forwarded, or to another protocol
    /// than the WebSocket one forwarded.
    #[error("upstream answered 101 Switching Protocols to a protocol nobody asked for")]
    UnexpectedUpgrade,
    /// The client's request body was malformed or cut short (the client's fault, not the
    /// upstream's).
    #[error("client request body failed")]
    ClientBody(#[source] BoxError),
}

/// Marks an error that came from the client's request body while it was being forwarded.
#[derive(Debug, thiserror::Error)]
#[error("client request body: {0}")]
pub struct ClientBodyError(#[source] BoxError);

/// The connection (TCP and TLS handshake) was not up within `upstream.connect_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("no connection within the connect timeout ({0:?})")]
pub struct ConnectTimeout(Duration);

/// A body went quiet for longer than `upstream.idle_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("no body bytes for the idle timeout")]
pub struct BodyIdle;

/// The request body type sent upstream.
pub type UpstreamBody = TimedBody<Incoming>;

/// The configured upstream and pooled clients for it: one per connection worker, so that a
/// request and the upstream connection it travels on are served by the same thread.
#[derive(Debug, Clone)]
pub struct Upstream {
    clients: Arc<[Client<UpstreamConnector, UpstreamBody>]>,
    scheme: Scheme,
    authority: Authority,
    prefix: String,
    timeout: Duration,
    idle_timeout: Duration,
}

impl Upstream {
    /// Clients for `config.url` with its timeouts and pool settings, one per worker.
    pub fn new(config: &UpstreamConfig, workers: usize) -> Self {
        let scheme = config.url.scheme().cloned().unwrap_or(Scheme::HTTP);
        let connector = UpstreamConnector::new(config, scheme == Scheme::HTTPS);
        let clients = (0..workers.max(1))
            .map(|_| {
                Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .pool_idle_timeout(config.pool_idle_timeout)
                    .build(connector.clone())
            })
            .collect();
        let prefix = config.url.path().trim_end_matches('/').to_owned();
        Self {
            clients,
            scheme,
            authority: config
                .url
                .authority()
                .cloned()
                .expect("upstream.url is validated to have a host"),
            prefix,
            timeout: config.timeout,
            idle_timeout: config.idle_timeout,
        }
    }

    /// The upstream authority (for `host_header: upstream`).
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The upstream URI for a canonical path and the client's query.
    pub fn target(&self, canonical_path: &str, query: Option<&str>) -> Uri {
        let mut pq = String::with_capacity(self.prefix.len() + canonical_path.len() + 64);
        pq.push_str(&self.prefix);
        pq.push_str(canonical_path);
        if let Some(query) = query {
            pq.push('?');
            pq.push_str(query);
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(
                PathAndQuery::try_from(pq)
                    .expect("a canonical path and a parsed query form a valid target"),
            )
            .build()
            .expect("scheme, authority and path form a valid URI")
    }

    /// Send `request` (whose URI is already the upstream target) and return the response with
    /// its body streaming under the idle timeout. With `websocket_handshake` (the request is a
    /// WebSocket handshake, forwarded with its upgrade headers), a `101` to WebSocket is a valid
    /// answer; it keeps the upstream side of the upgrade in its extensions
    /// ([`hyper::upgrade::on`]). `worker` picks the connection pool: the one of the worker
    /// serving the client connection, whose thread also runs the upstream connections it opens.
    pub async fn send(
        &self,
        request: Request<Incoming>,
        websocket_handshake: bool,
        worker: usize,
    ) -> Result<Response<Body>, ForwardError> {
        let progress = Arc::new(Progress::new());
        let (parts, body) = request.into_parts();
        if body.is_end_stream() {
            progress.finish();
        }
        let body = TimedBody::new(body, self.idle_timeout, Some(Arc::clone(&progress)));
        let client = &self.clients[worker % self.clients.len()];
        let exchange = client.request(Request::from_parts(parts, body));
        tokio::pin!(exchange);
        let result = loop {
            if progress.finished() {
                break tokio::time::timeout(self.timeout, &mut exchange)
                    .await
                    .map_err(|_| ForwardError::Timeout)?;
            }
            let idle_deadline = progress.last_activity() + self.idle_timeout;
            tokio::select! {
                result = &mut exchange => break result,
                () = progress.notify.notified() => {}
                () = tokio::time::sleep_until(idle_deadline) => {
                    if progress.last_activity() + self.idle_timeout <= Instant::now() {
                        return Err(ForwardError::Timeout);
                    }
                }
            }
        };
        let response = result.map_err(|err| {
            if err.is_connect() {
                ForwardError::Connect(Box::new(err))
            } else if has_source::<BodyIdle>(&err) {
                ForwardError::Timeout
            } else if has_source::<ClientBodyError>(&err) {
                ForwardError::ClientBody(Box::new(err))
            } else {
                ForwardError::Exchange(Box::new(err))
            }
        })?;
        // Only a WebSocket upgrade is ever forwarded, so any other 101 is the upstream's mistake;
        // relaying it would hand the client connection to a protocol nobody checked.
        if response.status() == http::StatusCode::SWITCHING_PROTOCOLS
            && !(websocket_handshake && crate::websocket::is_switch(response.headers()))
        {
            return Err(ForwardError::UnexpectedUpgrade);
        }
        crate::framing::check_framing(response.headers())
            .map_err(ForwardError::AmbiguousFraming)?;
        let idle = self.idle_timeout;
        Ok(response.map(|body| TimedBody::new(body, idle, None).boxed_unsync()))
    }
}

/// Connects to the upstream, over TLS for an `https://` URL, within `connect_timeout` in all.
#[derive(Clone)]
pub struct UpstreamConnector {
    inner: HttpsConnector<HttpConnector>,
    timeout: Duration,
}

impl std::fmt::Debug for UpstreamConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConnector")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl UpstreamConnector {
    fn new(config: &UpstreamConfig, https: bool) -> Self {
        let mut http = HttpConnector::new();
        // Per TCP attempt (split among the host's addresses); the handshake is bounded below.
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let server_name: Arc<dyn ResolveServerName + Send + Sync> = match &config.tls_server_name {
            Some(name) => Arc::new(FixedServerNameResolver::new(name.clone())),
            None => Arc::new(DefaultServerNameResolver::default()),
        };
        let tls = tls::upstream_client_config(&config.trust);
        Self {
            // With an https:// URL, a plain connection is never made.
            inner: HttpsConnector::new(http, tls, https, server_name),
            timeout: config.connect_timeout,
        }
    }
}

impl tower_service::Service<Uri> for UpstreamConnector {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected,
                Err(_) => Err(Box::new(ConnectTimeout(timeout)) as BoxError),
            }
        })
    }
}

fn has_source<E: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<E>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// Shared between a request body and the task waiting for the response: when the body ended
/// and when it last moved.
#[derive(Debug)]
struct Progress {
    start: Instant,
    last_ms: AtomicU64,
    done: AtomicBool,
    notify: Notify,
}

impl Progress {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            done: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last_activity(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    fn finish(&self) {
        self.done.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    fn finished(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
}

/// A body that fails with [`BodyIdle`] when no frame arrives for the idle timeout.
pub struct TimedBody<B> {
    inner: B,
    sleep: Pin<Box<Sleep>>,
    idle: Duration,
    progress: Option<Arc<Progress>>,
}

impl<B> std::fmt::Debug for TimedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedBody")
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl<B> TimedBody<B> {
    fn new(inner: B, idle: Duration, progress: Option<Arc<Progress>>) -> Self {
        Self {
            inner,
            sleep: Box::pin(tokio::time::sleep(idle)),
            idle,
            progress,
        }
    }
}

impl<B> HttpBody for TimedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.sleep.as_mut().reset(Instant::now() + this.idle);
                if let Some(progress) = &this.progress {
                    progress.touch();
                    if this.inner.is_end_stream() {
                        progress.finish();
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                let err: BoxError = err.into();
                match this.progress {
                    Some(_) => Poll::Ready(Some(Err(Box::new(ClientBodyError(err))))),
                    None => Poll::Ready(Some(Err(err))),
                }
            }
            Poll::Ready(None) => {
                if let Some(progress) = &this.progress {
                    progress.finish();
                }
                Poll::Ready(None)
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyIdle)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
