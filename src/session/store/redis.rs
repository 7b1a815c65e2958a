//! Redis session store: shared by every replica, on one server, a Redis Cluster or a
//! Sentinel-watched primary ([`topology`]), reconnecting on its own.
//!
//! Every command runs under the configured timeout; past it, or on any connection error, the
//! store reports itself unavailable and the request fails closed. Every command and script
//! touches exactly one key, named in its `KEYS` (never built inside a script), so each lands
//! whole on the one Cluster node owning that key's slot: nothing here needs hash tags, `KEYS`,
//! `MULTI` or any other cross-slot operation.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use redis::{Client, RedisError, Script, Value};
use tokio::runtime::Handle;

use super::{SessionStore, StoreError, StoreFuture};
use crate::config::RedisConfig;

mod listen;
mod sentinel;
mod topology;

pub use listen::listen;

use topology::{Connection, Request};

/// A Redis-backed [`SessionStore`].
#[derive(Clone)]
pub struct RedisStore {
    /// The runtime the store was made in, where its connections are driven ([`AtHome`]).
    home: Option<Handle>,
    conn: Connection,
    topology: &'static str,
    timeout: Duration,
    incr: Script,
    decr: Script,
    sorted_add: Script,
}

/// `INCR` and, when that left the key without expiry (it was new), `PEXPIRE`: one atomic step, so
/// a counter can never be left without a TTL. A script rather than `PEXPIRE ... NX` keeps Redis
/// versions before 7 working.
const INCR_SCRIPT: &str = r"
local count = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return count
";

/// `DECR` only on a positive counter that exists: a missing key is never created (so it can
/// never be left without a TTL) and the expiry stays where it was.
const DECR_SCRIPT: &str = r"
local count = tonumber(redis.call('GET', KEYS[1]))
if count and count > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
";

/// `ZADD`, then `PEXPIRE` when that leaves the key with less time than asked (or none, as a new
/// set has): one atomic step on one key, so a sorted set is never without a TTL and never has it
/// shortened. A script rather than `PEXPIRE ... GT` keeps Redis versions before 7 working.
const SORTED_ADD_SCRIPT: &str = r"
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 0
";

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("topology", &self.topology)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connect lazily to the deployment `config` describes: start-up never waits for Redis,
    /// and a Redis that is down at start is just a store that is down (503 where a session is
    /// needed) until it comes up. Must run inside a Tokio runtime.
    pub fn connect(config: &RedisConfig) -> Result<Self, RedisError> {
        Ok(Self::with(
            Connection::open(config)?,
            config.topology.kind(),
            config.timeout,
        ))
    }

    /// Connect lazily to the one server at `url` (`redis://`, credentials in the URL).
    pub fn new(
        url: &str,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, RedisError> {
        let conn = topology::standalone(Client::open(url)?, timeout, connect_timeout)?;
        Ok(Self::with(
            Connection::Standalone(conn),
            "standalone",
            timeout,
        ))
    }

    fn with(conn: Connection, topology: &'static str, timeout: Duration) -> Self {
        Self {
            home: Handle::try_current().ok(),
            conn,
            topology,
            timeout,
            incr: Script::new(INCR_SCRIPT),
            decr: Script::new(DECR_SCRIPT),
            sorted_add: Script::new(SORTED_ADD_SCRIPT),
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        self.bounded(self.conn.send(Request::Cmd(&cmd))).await
    }

    /// `query` under the command timeout, polled in the store's home runtime ([`AtHome`]).
    async fn bounded<T>(
        &self,
        query: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        let query = AtHome {
            home: self.home.clone(),
            inner: Box::pin(query),
        };
        match tokio::time::timeout(self.timeout, query).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) if err.is_timeout() => Err(StoreError::Timeout),
            Ok(Err(err)) => Err(StoreError::Unavailable(Box::new(err))),
            Err(_) => Err(StoreError::Timeout),
        }
    }
}

/// A future polled inside the store's home runtime (the one the store was made in): whatever
/// the redis crate spawns or registers while polling it (a reconnection and the new connection's
/// driver, a Sentinel look-up) lives there, not on the connection worker that happened to ask,
/// where it would make every other worker's commands wait for that one thread.
struct AtHome<F> {
    home: Option<Handle>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for AtHome<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let _home = this.home.as_ref().map(Handle::enter);
        this.inner.as_mut().poll(cx)
    }
}

fn set(key: &str, value: &[u8], ttl: Duration, condition: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key)
        .arg(value)
        .arg(condition)
        .arg("PX")
        .arg(millis(ttl));
    cmd
}

/// A TTL in whole milliseconds, at least 1 (Redis refuses 0).
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl SessionStore for RedisStore {
    fn create<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let reply: Value = self.run(set(key, value, ttl, "NX")).await?;
            Ok(!matches!(reply, Value::Nil))
        })
    }

    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("GET");
            cmd.arg(key);
            self.run(cmd).await
        })
    }

    fn touch<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let reply: Value = self.run(set(key, value, ttl, "XX")).await?;
            Ok(!matches!(reply, Value::Nil))
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(key);
            let _: i64 = self.run(cmd).await?;
            Ok(())
        })
    }

    fn incr<'a>(&'a self, key: &'a str, window: Duration) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let mut invocation = self.incr.key(key);
            invocation.arg(millis(window));
            self.bounded(self.conn.send(Request::Script(&invocation)))
                .await
        })
    }

    fn decr<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let invocation = self.decr.key(key);
            let query = self.conn.send::<i64>(Request::Script(&invocation));
            self.bounded(query).await.map(drop)
        })
    }

    fn ttl<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("PTTL");
            cmd.arg(key);
            let ms: i64 = self.run(cmd).await?;
            Ok(match ms {
                -1 => Some(Duration::MAX),
                ms => u64::try_from(ms).ok().map(Duration::from_millis),
            })
        })
    }

    /// `PING`: on a Cluster, to every primary the client holds a connection to (the crate's
    /// fan-out skips one it cannot connect to at all), on Sentinel to the primary.
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let _: String = self.run(redis::cmd("PING")).await?;
            Ok(())
        })
    }

    fn publish<'a>(&'a self, channel: &'a str, message: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _: i64 = self
                .run(redis::cmd("PUBLISH").arg(channel).arg(message).clone())
                .await?;
            Ok(())
        })
    }

    fn sorted_add<'a>(
        &'a self,
        key: &'a str,
        member: &'a str,
        score: u64,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut invocation = self.sorted_add.key(key);
            invocation.arg(score).arg(member).arg(millis(ttl));
            let query = self.conn.send::<i64>(Request::Script(&invocation));
            self.bounded(query).await.map(drop)
        })
    }

    fn sorted_range<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Vec<(String, u64)>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("ZRANGE");
            cmd.arg(key).arg(0).arg(-1).arg("WITHSCORES");
            let flat: Vec<String> = self.run(cmd).await?;
            flat.chunks_exact(2)
                .map(|pair| Ok((pair[0].clone(), score(&pair[1])?)))
                .collect()
        })
    }

    fn sorted_remove<'a>(&'a self, key: &'a str, members: &'a [String]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if members.is_empty() {
                return Ok(());
            }
            let mut cmd = redis::cmd("ZREM");
            cmd.arg(key).arg(members);
            let _: i64 = self.run(cmd).await?;
            Ok(())
        })
    }

    fn sorted_remove_through<'a>(&'a self, key: &'a str, max_score: u64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut cmd = redis::cmd("ZREMRANGEBYSCORE");
            cmd.arg(key).arg("-inf").arg(max_score);
            let _: i64 = self.run(cmd).await?;
            Ok(())
        })
    }
}

/// A score as Redis writes it back (a double, integral for the scores Portcullis writes).
fn score(text: &str) -> Result<u64, StoreError> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        // Scores are milliseconds since the epoch, well inside an f64's exact integers.
        .map(|s| s as u64)
        .ok_or_else(|| {
            StoreError::Unavailable(format!("unreadable sorted-set score `{text}`").into())
        })
}
