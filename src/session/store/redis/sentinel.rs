//! A connection to the primary that Redis Sentinel names, looked up again after every failure.
//!
//! The redis crate's [`SentinelClient`] finds the primary (it asks the sentinels with `SENTINEL
//! MASTERS`, then checks with `ROLE` that the node it names really is a primary) but hands back
//! a plain connection that never looks again. So this keeps one multiplexed connection to the
//! primary and drops it at the first error or timeout on it: a killed primary, a connection that
//! Sentinel closed while reconfiguring a demoted one (it sends `CLIENT KILL`), a `READONLY`
//! reply. The next command asks the sentinels again; until they name a reachable primary, every
//! command fails and the request gets 503. No reconnect ever goes back to an address on its own,
//! so a demoted primary is never used as if it still were one.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::sentinel::SentinelClient;
use redis::{AsyncConnectionConfig, FromRedisValue, RedisError, RedisResult};

use super::topology::Request;

/// The primary of a Sentinel-watched deployment.
#[derive(Clone)]
pub(super) struct SentinelConnection {
    inner: Arc<Inner>,
}

struct Inner {
    /// Held by the one lookup running at a time.
    sentinel: tokio::sync::Mutex<SentinelClient>,
    state: Mutex<State>,
    /// Timeouts of the connection to the primary.
    config: AsyncConnectionConfig,
    /// A whole lookup (sentinels, role check, connect) gives up after this long.
    lookup_timeout: Duration,
}

#[derive(Default)]
struct State {
    /// The connection in use, numbered by the lookup that made it.
    primary: Option<(u64, MultiplexedConnection)>,
    /// Lookups finished so far.
    lookups: u64,
    /// Why the last lookup failed, while no later one succeeded.
    last_failure: Option<RedisError>,
}

/// Drops the connection numbered `id` unless disarmed: a command that fails or is abandoned
/// (its caller's timeout) leaves the next one to look the primary up again.
struct ForgetUnlessDone<'a> {
    inner: &'a Inner,
    id: Option<u64>,
}

impl SentinelConnection {
    /// A connection that looks the primary up with `client` at its first command.
    pub(super) fn new(
        client: SentinelClient,
        config: AsyncConnectionConfig,
        lookup_timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                sentinel: tokio::sync::Mutex::new(client),
                state: Mutex::new(State::default()),
                config,
                lookup_timeout,
            }),
        }
    }

    /// Send `request` to the primary.
    pub(super) async fn send<T: FromRedisValue>(&self, request: Request<'_>) -> RedisResult<T> {
        let (id, mut conn) = self.primary().await?;
        let mut guard = ForgetUnlessDone {
            inner: &self.inner,
            id: Some(id),
        };
        let result = request.send(&mut conn).await;
        if result.is_ok() {
            guard.id = None;
        }
        result
    }

    async fn primary(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        let seen = {
            let state = self.inner.lock();
            if let Some(primary) = &state.primary {
                return Ok(primary.clone());
            }
            state.lookups
        };
        // In a task of its own, so that a request giving up (its timeout) does not cancel a
        // lookup that the next request would then have to start over.
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move { inner.look_up(seen).await })
            .await
            .unwrap_or_else(|e| Err(RedisError::from(std::io::Error::other(e))))
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of the state is a single assignment, so a panic cannot leave it torn.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Find the primary and connect to it, unless another lookup did while this one waited
    /// (`seen` is how many lookups had finished when the caller found no connection).
    async fn look_up(&self, seen: u64) -> RedisResult<(u64, MultiplexedConnection)> {
        let mut sentinel = self.sentinel.lock().await;
        {
            let state = self.lock();
            if let Some(primary) = &state.primary {
                return Ok(primary.clone());
            }
            // A lookup failed while this one waited for its turn: share its answer instead of
            // asking again at once, so an outage costs one lookup at a time, not one a request.
            if let (true, Some(err)) = (state.lookups != seen, &state.last_failure) {
                return Err(err.clone());
            }
        }
        let found = tokio::time::timeout(self.lookup_timeout, async {
            let client = sentinel.async_get_client().await?;
            let addr = client.get_connection_info().addr().to_string();
            let conn = client
                .get_multiplexed_async_connection_with_config(&self.config)
                .await?;
            Ok::<_, RedisError>((addr, conn))
        })
        .await
        .unwrap_or_else(|_| {
            Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "looking up the primary through the sentinels timed out",
            )))
        });
        let mut state = self.lock();
        state.lookups += 1;
        match found {
            Ok((addr, conn)) => {
                tracing::info!(primary = %addr, "redis sentinel: connected to the primary");
                let id = state.lookups;
                state.primary = Some((id, conn.clone()));
                state.last_failure = None;
                Ok((id, conn))
            }
            Err(err) => {
                tracing::warn!(error = %err, "redis sentinel: no reachable primary");
                state.last_failure = Some(err.clone());
                Err(err)
            }
        }
    }
}

impl Drop for ForgetUnlessDone<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        let mut state = self.inner.lock();
        if state
            .primary
            .as_ref()
            .is_some_and(|(current, _)| *current == id)
        {
            state.primary = None;
            tracing::warn!("redis sentinel: a command to the primary failed; looking it up again");
        }
    }
}
