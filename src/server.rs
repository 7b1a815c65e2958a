//! Listeners, the accept loops, per-connection TLS and HTTP, and graceful shutdown.
//!
//! Binding is separate from running so that tests (and `--check-config`) can bind port 0 and read
//! the address back. The accept loop hands each client connection to one of `workers` threads
//! ([`Workers`]), round robin; each runs a single-threaded runtime that serves its connections
//! whole, with its own upstream connection pool, so a request, its upstream exchange and their
//! wake-ups stay on one thread (as in nginx's worker processes) instead of crossing threads at
//! every step. Each connection is served in its own task; the TLS handshake happens inside
//! that task, under a timeout, so a slow handshake never blocks the accept loop. The handshake
//! uses the TLS config current when it starts ([`ListenerTls`]), which a file watcher (and
//! SIGHUP, through [`Listeners::tls`]) replaces when the certificate files change.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::config::{Config, ServerConfig};
use crate::response::Body;
use crate::state::{AppState, ConnInfo};
use crate::tls::{ListenerTls, TlsError};
use crate::watchdog::{TrackedBody, Watched};
use crate::{admin, router};

/// Most request header fields hyper parses; past [`crate::framing::MAX_HEADER_FIELDS`] the
/// router answers 431 with a JSON body, past this hyper answers 431 on its own.
const MAX_HEADERS: usize = 128;
/// Most concurrent HTTP/2 streams per connection.
const MAX_H2_STREAMS: u32 = 128;
/// Largest HTTP/1 read buffer, which bounds the size of a request head.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long `run` waits, after the grace period, for closed tunnels to drop their sockets.
const TUNNEL_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Why the listeners could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The bound proxy and admin listeners, plus the listener's TLS config when TLS is configured.
pub struct Listeners {
    proxy: TcpListener,
    admin: TcpListener,
    tls: Option<Arc<ListenerTls>>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("proxy", &self.proxy)
            .field("admin", &self.admin)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Listeners {
    /// Bind both listeners and load the TLS certificate, as configured.
    pub async fn bind(config: &Config) -> Result<Self, ServerError> {
        let tls = match &config.tls {
            Some(tls) => Some(Arc::new(ListenerTls::load(tls)?)),
            None => None,
        };
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })
        };
        Ok(Self {
            proxy: bind(config.listen).await?,
            admin: bind(config.admin_listen).await?,
            tls,
        })
    }

    /// The proxy listener's address.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The listener's TLS config, to reload it (on SIGHUP) while [`run`] serves.
    pub fn tls(&self) -> Option<Arc<ListenerTls>> {
        self.tls.clone()
    }
}

/// Serve until `shutdown` completes, then drain: readiness fails, after `drain_delay` the
/// listeners close, and in-flight requests and open WebSocket tunnels get `grace_period` to
/// finish; tunnels still open then are closed.
pub async fn run(listeners: Listeners, state: Arc<AppState>, shutdown: impl Future<Output = ()>) {
    let Listeners { proxy, admin, tls } = listeners;
    let store_watch = admin::spawn_store_watch(Arc::clone(&state));
    // Aborted when `run` ends or is dropped, so no watcher outlives its listener.
    let cert_watch = match (
        &tls,
        state.config.tls.as_ref().and_then(|t| t.reload_interval),
    ) {
        (Some(tls), Some(interval)) => {
            Some(AbortOnDrop(tokio::spawn(Arc::clone(tls).watch(interval))))
        }
        _ => None,
    };
    let graceful = GracefulShutdown::new();
    let http = http_builder(&state.config.server);
    tracing::info!(
        proxy = %proxy.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        admin = %admin.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        tls = tls.is_some(),
        "portcullis listening"
    );

    let slots = Arc::new(Semaphore::new(state.config.server.max_connections));
    let mut workers = Workers::start(&state, tls.as_ref(), &http);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = accept_within(&proxy, &slots) => match accepted {
                Ok((stream, peer, slot)) => workers.hand_off(stream, peer, slot, &graceful),
                Err(err) => accept_failed(err).await,
            },
            accepted = admin.accept() => match accepted {
                Ok((stream, _)) => serve_admin(stream, &state, &http, &graceful),
                Err(err) => accept_failed(err).await,
            },
            () = &mut shutdown => break,
        }
    }

    state.draining.store(true, Ordering::Relaxed);
    let shutdown_config = state.config.shutdown.clone();
    tracing::info!(drain_delay = ?shutdown_config.drain_delay, "shutting down: draining");
    if !shutdown_config.drain_delay.is_zero() {
        // Keep serving while load balancers notice the failing readiness.
        let deadline = tokio::time::sleep(shutdown_config.drain_delay);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                accepted = accept_within(&proxy, &slots) => if let Ok((stream, peer, slot)) = accepted {
                    workers.hand_off(stream, peer, slot, &graceful);
                },
                accepted = admin.accept() => if let Ok((stream, _)) = accepted {
                    serve_admin(stream, &state, &http, &graceful);
                },
                () = &mut deadline => break,
            }
        }
    }
    drop((proxy, admin));
    store_watch.abort();
    // No new handshakes from here on.
    drop(cert_watch);
    // Open WebSocket tunnels are in-flight work too: they get the grace period, then are closed.
    let drained = async {
        graceful.shutdown().await;
        state.tunnels.all_closed().await;
    };
    match tokio::time::timeout(shutdown_config.grace_period, drained).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!(
            tunnels = state.tunnels.count(),
            "grace period over; closing remaining connections"
        ),
    }
    state.tunnels.close_all();
    // Closing a tunnel only drops its two sockets; wait for that, briefly, so none outlives `run`.
    let _ = tokio::time::timeout(TUNNEL_CLOSE_WAIT, state.tunnels.all_closed()).await;
    // Every connection is done (or past the grace period): the workers end what is left.
    workers.stop().await;
}

/// A client connection on its way to a worker.
struct Handoff {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
    watcher: Watcher,
}

/// The connection workers: threads with a single-threaded runtime each, fed by the accept loop.
/// Dropping them (or [`Workers::stop`]) closes their queues; each thread then drops its runtime,
/// ending what still runs there (idle upstream connections, connections past the grace period).
struct Workers {
    queues: Vec<mpsc::UnboundedSender<Handoff>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    next: usize,
}

impl Workers {
    /// Start `server.workers` threads serving proxy connections with `state`.
    fn start(
        state: &Arc<AppState>,
        tls: Option<&Arc<ListenerTls>>,
        http: &auto::Builder<TokioExecutor>,
    ) -> Self {
        let count = state.config.server.workers.max(1);
        let mut queues = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for worker in 0..count {
            let (queue, handoffs) = mpsc::unbounded_channel::<Handoff>();
            let (state, tls, http) = (Arc::clone(state), tls.cloned(), http.clone());
            let thread = std::thread::Builder::new()
                .name(format!("portcullis-worker-{worker}"))
                .spawn(move || serve_handoffs(worker, handoffs, &state, tls.as_ref(), &http))
                .expect("cannot start a connection worker thread");
            queues.push(queue);
            threads.push(thread);
        }
        Self {
            queues,
            threads,
            next: 0,
        }
    }

    /// Give an accepted connection to the next worker, round robin (skipping a worker that is
    /// gone, which only a panic outside any request could cause).
    fn hand_off(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        slot: OwnedSemaphorePermit,
        graceful: &GracefulShutdown,
    ) {
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "cannot hand over a connection");
                return;
            }
        };
        let mut handoff = Handoff {
            stream,
            peer,
            slot,
            watcher: graceful.watcher(),
        };
        for _ in 0..self.queues.len() {
            let queue = &self.queues[self.next];
            self.next = (self.next + 1) % self.queues.len();
            match queue.send(handoff) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => handoff = back,
            }
        }
        tracing::error!("no connection worker is running; connection closed");
    }

    /// Close the queues and wait, briefly, for the threads to end.
    async fn stop(self) {
        let Self {
            queues, threads, ..
        } = self;
        drop(queues);
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                if thread.join().is_err() {
                    tracing::error!("a connection worker had panicked");
                }
            }
        });
        let _ = tokio::time::timeout(TUNNEL_CLOSE_WAIT, joined).await;
    }
}

/// A background task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn http_builder(config: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watchdog enforces the header and keep-alive limits separately (see watchdog.rs).
        .header_read_timeout(None)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(MAX_HEAD_BYTES).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_H2_STREAMS)
        // Reset floods (CVE-2023-44487 family): bounded on both sides.
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(1024))
        .keep_alive_interval(Some(config.keepalive_timeout / 3))
        .keep_alive_timeout(config.keepalive_timeout / 3);
    builder
}

/// Accept once a connection slot is free: at the cap, new clients wait in the kernel's accept
/// queue instead of costing memory here. The slot is released when the connection ends.
async fn accept_within(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> std::io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = Arc::clone(slots)
        .acquire_owned()
        .await
        .expect("the connection semaphore is never closed");
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, slot))
}

async fn accept_failed(err: std::io::Error) {
    // Usually EMFILE: back off briefly instead of spinning.
    tracing::warn!(error = %err, "accept failed");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

/// A worker thread's life: serve the connections handed to it until its queue closes, then end
/// what is left on its runtime.
fn serve_handoffs(
    worker: usize,
    mut handoffs: mpsc::UnboundedReceiver<Handoff>,
    state: &Arc<AppState>,
    tls: Option<&Arc<ListenerTls>>,
    http: &auto::Builder<TokioExecutor>,
) {
    // Log lines wait while the worker has work, and go out when it runs out.
    crate::log_output::gather_on_this_thread();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(crate::log_output::flush)
        .build()
        .expect("cannot start a worker's Tokio runtime");
    runtime.block_on(async {
        while let Some(handoff) = handoffs.recv().await {
            serve_proxy(handoff, tls.cloned(), state, http, worker);
        }
    });
    // Blocking tasks left (a slow DNS look-up, say) get a moment, not a hold on the exit.
    runtime.shutdown_timeout(TUNNEL_CLOSE_WAIT);
    crate::log_output::flush();
}

/// Serve one client connection in a task of the current (worker's) runtime.
fn serve_proxy(
    handoff: Handoff,
    tls: Option<Arc<ListenerTls>>,
    state: &Arc<AppState>,
    http: &auto::Builder<TokioExecutor>,
    worker: usize,
) {
    let Handoff {
        stream,
        peer,
        slot,
        watcher,
    } = handoff;
    let stream = match TcpStream::from_std(stream) {
        Ok(stream) => stream,
        Err(err) => return tracing::warn!(error = %err, "cannot take over a connection"),
    };
    let _ = stream.set_nodelay(true);
    let state = Arc::clone(state);
    let http = http.clone();
    tokio::spawn(async move {
        // Held for the connection's whole life, TLS handshake included.
        let _slot = slot;
        let _open = state.metrics.connection_opened();
        let conn = ConnInfo {
            peer,
            tls: tls.is_some(),
            worker,
        };
        let timeouts = state.config.server.clone();
        let handler = {
            let state = Arc::clone(&state);
            move |request| {
                let state = Arc::clone(&state);
                async move { router::handle(&state, conn, request).await }
            }
        };
        // The config current now serves this whole handshake, whatever reloads meanwhile.
        let Some(acceptor) = tls.map(|tls| tls.acceptor()) else {
            return serve_io(stream, handler, &http, watcher, &timeouts).await;
        };
        match tokio::time::timeout(timeouts.tls_handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => serve_io(stream, handler, &http, watcher, &timeouts).await,
            Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    });
}

fn serve_admin(
    stream: TcpStream,
    state: &Arc<AppState>,
    http: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
) {
    let state = Arc::clone(state);
    let http = http.clone();
    let watcher = graceful.watcher();
    tokio::spawn(async move {
        let timeouts = state.config.server.clone();
        let handler = move |request: Request<Incoming>| {
            let response = admin::handle(&state, &request);
            async move { response }
        };
        serve_io(stream, handler, &http, watcher, &timeouts).await;
    });
}

/// Serve HTTP on one connection under the watchdog, until it closes or shutdown ends it.
async fn serve_io<I, H, F>(
    io: I,
    handler: H,
    http: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    timeouts: &ServerConfig,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let (io, conn_state) =
        Watched::new(io, timeouts.header_read_timeout, timeouts.keepalive_timeout);
    let service = {
        let conn_state = Arc::clone(&conn_state);
        service_fn(move |request| {
            let in_flight = conn_state.request_started();
            // Boxed once here, so hyper moves a pointer instead of the handler's whole future.
            let response = Box::pin(handler(request));
            let conn_state = Arc::clone(&conn_state);
            async move {
                let response = response.await;
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    conn_state.switch_protocols();
                }
                Ok::<_, Infallible>(response.map(|body| TrackedBody::new(body, in_flight)))
            }
        })
    };
    let conn = http.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(err) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %err, "connection ended with an error");
    }
    // After a switch hyper is done but the connection is not: it carries a tunnel, which keeps
    // holding this connection's slot until it ends (it ends at shutdown at the latest).
    if conn_state.switched() {
        conn_state.released().await;
    }
}
