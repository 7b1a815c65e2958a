//! The listener that keeps a replica's [`SessionCache`] correct: it subscribes to the channel
//! on which every ended session's digest is published and evicts each one it hears of.
//!
//! The connection is watched with a `PING` every 250 ms that must be answered within 500 ms. On
//! a disconnect or a missed answer, the whole cache is emptied and bypassed (announcements may
//! have been missed) until a new subscription is confirmed; then it fills again from reads.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::{RedisError, RedisResult};

use super::topology::Subscriber;
use crate::config::RedisConfig;
use crate::session::SessionCache;

/// How often the subscription is checked.
const PING_EVERY: Duration = Duration::from_millis(250);
/// How long an answer to that check may take.
const PING_DEADLINE: Duration = Duration::from_millis(500);
/// First pause before subscribing again after a failure; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between attempts to subscribe.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Listen on `channel` of the deployment `config` describes for as long as the runtime runs,
/// keeping `cache` live while subscribed. Must run inside a Tokio runtime.
pub fn listen(
    config: &RedisConfig,
    channel: String,
    cache: Arc<SessionCache>,
) -> RedisResult<tokio::task::JoinHandle<()>> {
    let subscriber = Subscriber::open(config)?;
    let connect_timeout = config.connect_timeout;
    Ok(tokio::spawn(async move {
        let mut attempt = 0;
        let mut backoff = MIN_BACKOFF;
        let mut failing = false;
        loop {
            match subscribe(&subscriber, attempt, &channel, connect_timeout).await {
                Ok((sink, stream)) => {
                    cache.resume();
                    tracing::info!("session cache in use: listening for ended sessions");
                    failing = false;
                    backoff = MIN_BACKOFF;
                    let lost = watch(sink, stream, &cache).await;
                    cache.flush();
                    tracing::warn!(
                        reason = lost,
                        "session cache emptied and bypassed until the ended-sessions channel is \
                         subscribed again"
                    );
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "cannot subscribe to the ended-sessions channel; \
                            sessions are read from the store on every request until then");
                    }
                    failing = true;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            attempt += 1;
        }
    }))
}

/// Connect and subscribe, within `timeout` for each step.
async fn subscribe(
    subscriber: &Subscriber,
    attempt: usize,
    channel: &str,
    timeout: Duration,
) -> Result<(PubSubSink, PubSubStream), RedisError> {
    let timed_out = || RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
    let pubsub = tokio::time::timeout(timeout, subscriber.connect(attempt))
        .await
        .map_err(|_| timed_out())??;
    let (mut sink, stream) = pubsub.split();
    tokio::time::timeout(timeout, sink.subscribe(channel))
        .await
        .map_err(|_| timed_out())??;
    Ok((sink, stream))
}

type Ping = Pin<
    Box<dyn Future<Output = Result<RedisResult<redis::Value>, tokio::time::error::Elapsed>> + Send>,
>;

/// Evict every digest announced on the subscription until it fails; returns why it did.
async fn watch(sink: PubSubSink, mut stream: PubSubStream, cache: &SessionCache) -> &'static str {
    let mut ticks = tokio::time::interval(PING_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ping: Option<Ping> = None;
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else {
                    return "the connection closed";
                };
                match message.get_payload::<String>() {
                    Ok(digest) => cache.forget(&digest).await,
                    Err(_) => return "an unreadable announcement",
                }
            }
            _ = ticks.tick(), if ping.is_none() => {
                let mut sink = sink.clone();
                ping = Some(Box::pin(tokio::time::timeout(PING_DEADLINE, async move {
                    sink.ping::<redis::Value>().await
                })));
            }
            answer = async { ping.as_mut().expect("guarded by is_some").await }, if ping.is_some() => {
                ping = None;
                match answer {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return "the PING failed",
                    Err(_) => return "the PING went unanswered for 500 ms",
                }
            }
        }
    }
}
