//! Connection timers hyper does not provide on its own: a limit on how long a client may take to
//! send a request head, and a separate, longer limit on idle keep-alive connections.
//!
//! hyper's own header read timeout also runs while a keep-alive connection waits for its next
//! request, so one value cannot both stop slow-header clients quickly (10 s) and keep idle
//! connections open longer than load balancers do (75 s). The watchdog wraps the connection's
//! I/O and knows which of the two waits it is in: a request is in flight (no limit: a streaming
//! response is never cut), the client has started a head (header limit), or nothing is happening
//! (keep-alive limit). HTTP/2 connections are left to HTTP/2's own keep-alive pings. A connection
//! that switched protocols (a WebSocket tunnel, [`ConnState::switched`]) is no longer HTTP: no
//! limit applies to it again, and the server keeps its connection slot until its I/O is dropped
//! ([`ConnState::released`]).

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// The HTTP/2 connection preface starts with these bytes.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// Shared between a connection's I/O and the requests served on it.
#[derive(Debug)]
pub struct ConnState {
    start: Instant,
    /// Requests whose response body has not been dropped yet.
    in_flight: AtomicUsize,
    /// Bytes of a new request head have arrived and no request has been dispatched since.
    reading_head: AtomicBool,
    /// When the current wait began, in ms since `start`.
    since_ms: AtomicU64,
    h2: AtomicBool,
    /// A `101` was answered: the connection carries a tunnel from then on.
    switched: AtomicBool,
    /// The connection's I/O has been dropped (closed).
    dropped: AtomicBool,
    /// Notified when the I/O is dropped.
    on_drop: Notify,
    /// The task reading the connection, woken when the last request in flight ends.
    reader: AtomicWaker,
}

impl ConnState {
    fn new() -> Arc<Self> {
        // A new connection waits for its first head: a client that sends nothing is cut at the
        // header limit, not the keep-alive one.
        Arc::new(Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            reading_head: AtomicBool::new(true),
            since_ms: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            switched: AtomicBool::new(false),
            dropped: AtomicBool::new(false),
            on_drop: Notify::new(),
            reader: AtomicWaker::new(),
        })
    }

    fn mark_now(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.since_ms.store(ms, Ordering::Relaxed);
    }

    /// A request head has been parsed and handed to the service.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.reading_head.store(false, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// The connection answered `101 Switching Protocols`: what follows is a tunnel, which no
    /// header or keep-alive limit may cut.
    pub fn switch_protocols(&self) {
        self.switched.store(true, Ordering::Release);
    }

    /// Whether the connection switched protocols.
    pub fn switched(&self) -> bool {
        self.switched.load(Ordering::Acquire)
    }

    /// Resolves once the connection's I/O has been dropped: after a switch, hyper hands it to
    /// the tunnel, which drops it when the tunnel ends.
    pub async fn released(&self) {
        let notified = self.on_drop.notified();
        tokio::pin!(notified);
        // Registered before the check, so a drop between the two still wakes us.
        notified.as_mut().enable();
        if !self.dropped.load(Ordering::Acquire) {
            notified.await;
        }
    }
}

/// Held by a response body: while any exists, the connection has no deadline.
#[derive(Debug)]
pub struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.mark_now();
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The reader may be parked without a deadline; let it arm the keep-alive one.
            self.0.reader.wake();
        }
    }
}

/// A response body that keeps its request counted as in flight until it is dropped.
pub struct TrackedBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> TrackedBody<B> {
    /// Tie `inner` to the request `in_flight` stands for.
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: HttpBody<Data = Bytes> + Unpin> HttpBody for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Connection I/O that fails reads with `TimedOut` when the current wait runs too long.
pub struct Watched<I> {
    inner: I,
    state: Arc<ConnState>,
    header_timeout: Duration,
    keepalive_timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    first_read: bool,
}

impl<I> Watched<I> {
    /// Watch `inner` with the two limits; returns the I/O and the state requests report to.
    pub fn new(
        inner: I,
        header_timeout: Duration,
        keepalive_timeout: Duration,
    ) -> (Self, Arc<ConnState>) {
        let state = ConnState::new();
        let watched = Self {
            inner,
            state: Arc::clone(&state),
            header_timeout,
            keepalive_timeout,
            sleep: Box::pin(tokio::time::sleep(header_timeout)),
            first_read: true,
        };
        (watched, state)
    }

    fn deadline(&self) -> Option<Instant> {
        let state = &self.state;
        if state.h2.load(Ordering::Relaxed)
            || state.switched()
            || state.in_flight.load(Ordering::Acquire) > 0
        {
            return None;
        }
        let limit = if state.reading_head.load(Ordering::Relaxed) {
            self.header_timeout
        } else {
            self.keepalive_timeout
        };
        Some(state.start + Duration::from_millis(state.since_ms.load(Ordering::Relaxed)) + limit)
    }
}

impl<I> Drop for Watched<I> {
    fn drop(&mut self) {
        self.state.dropped.store(true, Ordering::Release);
        self.state.on_drop.notify_waiters();
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if !read.is_empty() {
                    // Three bytes tell an HTTP/2 preface from any HTTP/1 method.
                    if this.first_read && read.len() >= 3 {
                        this.first_read = false;
                        if H2_PREFACE.starts_with(&read[..3]) {
                            this.state.h2.store(true, Ordering::Relaxed);
                        }
                    }
                    let state = &this.state;
                    if state.in_flight.load(Ordering::Acquire) == 0
                        && !state.reading_head.swap(true, Ordering::Relaxed)
                    {
                        state.mark_now();
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                this.state.reader.register(cx.waker());
                let Some(deadline) = this.deadline() else {
                    return Poll::Pending;
                };
                if deadline <= Instant::now() {
                    return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
                }
                this.sleep.as_mut().reset(deadline);
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
