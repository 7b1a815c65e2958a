//! WebSocket tunnels: once the upstream has answered a handshake with `101` and the client has
//! been told so, bytes are copied both ways until either side closes.
//!
//! A tunnel is not an HTTP exchange, so no HTTP timer applies to it: not the upstream `timeout` /
//! `idle_timeout` (they bound the handshake only; WebSocket peers keep quiet connections alive
//! with their own pings), not the client connection's header or keep-alive limits (see
//! [`crate::watchdog`]). What ends one besides its peers: `upstream.websocket_max_lifetime`, and
//! shutdown, which waits for open tunnels as for in-flight requests and closes what is left when
//! the grace period ends. Portcullis does not parse frames, so it cannot write a WebSocket close
//! frame mid-stream: it closes both TCP connections, which clients see as an abnormal closure
//! (1006) and answer by reconnecting.

use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

/// The open tunnels: how long each may live and the signal that closes them all.
#[derive(Debug)]
pub struct Tunnels {
    /// `true` once every tunnel must close; each tunnel holds a receiver, so the receiver count
    /// is the number of open tunnels.
    closing: watch::Sender<bool>,
    max_lifetime: Option<Duration>,
}

/// How a tunnel ended.
#[derive(Debug)]
enum End {
    /// A side closed (or failed: the cause is logged).
    Closed(std::io::Result<(u64, u64)>),
    /// A side's upgrade failed before any byte was copied.
    NotUpgraded(hyper::Error),
    /// `upstream.websocket_max_lifetime` passed.
    MaxLifetime,
    /// Shutdown's grace period ended.
    Shutdown,
}

impl Tunnels {
    /// No tunnels yet; each one opened later lives at most `max_lifetime`, if set.
    pub fn new(max_lifetime: Option<Duration>) -> Self {
        Self {
            closing: watch::Sender::new(false),
            max_lifetime,
        }
    }

    /// Tunnel between the two sides of one switched connection, in a task of its own: `client`
    /// resolves once hyper has written the `101` to the client, `upstream` is the upstream's
    /// connection after its `101`.
    pub fn open(&self, client: OnUpgrade, upstream: OnUpgrade) {
        let mut closing = self.closing.subscribe();
        let max_lifetime = self.max_lifetime;
        tokio::spawn(async move {
            let copy = async {
                let (client, upstream) = match tokio::try_join!(client, upstream) {
                    Ok(sides) => sides,
                    Err(err) => return End::NotUpgraded(err),
                };
                let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
                End::Closed(tokio::io::copy_bidirectional(&mut client, &mut upstream).await)
            };
            let lifetime = async {
                match max_lifetime {
                    Some(limit) => tokio::time::sleep(limit).await,
                    None => std::future::pending().await,
                }
            };
            // Dropping `copy` drops both connections, which closes them.
            let end = tokio::select! {
                end = copy => end,
                () = lifetime => End::MaxLifetime,
                _ = closing.wait_for(|closing| *closing) => End::Shutdown,
            };
            match end {
                End::Closed(Ok((up, down))) => {
                    tracing::debug!(
                        client_to_upstream = up,
                        upstream_to_client = down,
                        "tunnel closed"
                    );
                }
                End::Closed(Err(err)) => {
                    tracing::debug!(error = %err, "tunnel ended with an error")
                }
                End::NotUpgraded(err) => tracing::debug!(error = %err, "tunnel never opened"),
                End::MaxLifetime => tracing::debug!("tunnel closed at websocket_max_lifetime"),
                End::Shutdown => tracing::debug!("tunnel closed by shutdown"),
            }
        });
    }

    /// How many tunnels are open.
    pub fn count(&self) -> usize {
        self.closing.receiver_count()
    }

    /// Resolves once no tunnel is open (at once when none is).
    pub async fn all_closed(&self) {
        self.closing.closed().await;
    }

    /// Close every open tunnel, and every one opened from now on, at once.
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }
}
