//! The per-request context: what the router and the gateway's phases learn about a request on
//! the way (its id, client address, canonical path, user), read once at the end for the access
//! log line.
//!
//! The access log (target `portcullis::access`, one line per request on the proxy listener)
//! says who asked for what and how it ended, and nothing a client could turn into a credential:
//! never a cookie, a password, a session id or the query string (which may carry tokens), and a
//! path only once it parsed (`-` otherwise), so unparsable raw bytes never reach the log.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, StatusCode};
use ipnet::IpNet;

use crate::client_addr::{client_addr, is_trusted};
use crate::metrics::Outcome;
use crate::request_id::RequestId;

/// The tracing target of access log lines.
pub const ACCESS_LOG_TARGET: &str = "portcullis::access";

/// Facts about one request, filled in as it goes.
#[derive(Debug)]
pub struct RequestContext {
    /// The request id (the trusted client's or a new one).
    pub id: RequestId,
    /// The client address (see [`crate::client_addr`]).
    pub client: IpAddr,
    /// The canonical path, once the request target parsed.
    pub path: Option<String>,
    /// The user of the request's session, once one was found.
    pub user: Option<String>,
    started: Instant,
}

impl RequestContext {
    /// The context of a request that arrived from `peer` with `headers`; the clock starts now.
    pub fn new(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> Self {
        Self {
            id: RequestId::for_request(headers, is_trusted(peer, trusted_proxies)),
            client: client_addr(peer, headers, trusted_proxies),
            path: None,
            user: None,
            started: Instant::now(),
        }
    }

    /// Time since the request arrived.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Write the request's access log line.
    pub fn log_access(&self, method: &Method, status: StatusCode, outcome: Outcome) {
        tracing::info!(
            target: ACCESS_LOG_TARGET,
            method = method.as_str(),
            path = self.path.as_deref().unwrap_or("-"),
            status = status.as_u16(),
            duration_ms = duration_ms(self.elapsed()),
            user = self.user.as_deref().unwrap_or("-"),
            request_id = self.id.as_str(),
            client = %self.client,
            outcome = outcome.as_str(),
            "request"
        );
    }
}

/// Milliseconds with microsecond precision.
fn duration_ms(elapsed: Duration) -> f64 {
    // Whole microseconds fit an f64 exactly for any plausible request duration.
    elapsed.as_micros() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_milliseconds_with_microseconds() {
        assert_eq!(duration_ms(Duration::from_micros(1_234)), 1.234);
        assert_eq!(duration_ms(Duration::from_nanos(999)), 0.0);
        assert_eq!(duration_ms(Duration::from_secs(2)), 2000.0);
    }

    #[test]
    fn the_client_address_and_id_trust_only_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "198.51.100.7".parse().unwrap());
        headers.insert("x-request-id", "edge-1".parse().unwrap());
        let ctx = RequestContext::new("10.0.0.1".parse().unwrap(), &headers, &trusted);
        assert_eq!(ctx.client, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(ctx.id.as_str(), "edge-1");
        let ctx = RequestContext::new("203.0.113.9".parse().unwrap(), &headers, &trusted);
        assert_eq!(ctx.client, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_ne!(ctx.id.as_str(), "edge-1");
        assert_eq!((ctx.path, ctx.user), (None, None));
    }
}
