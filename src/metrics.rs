//! Prometheus metrics: what the gateway counts and times, and their text exposition, which the
//! admin listener serves at `/metrics` (never the proxy listener).
//!
//! One [`Metrics`] is built with the [`crate::state::AppState`]; there is no global registry.
//! Labels are small `Copy` enums written as fixed strings, so recording a request allocates
//! nothing; the label sets of the fixed families (login results, store operations) are resolved
//! once at start, which also makes their zero values visible from the first scrape.
//! Pure: no I/O.

use std::fmt::Write as _;
use std::time::Duration;

use http::StatusCode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`Metrics::encode`]'s output (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Buckets for whole requests and upstream exchanges, in seconds: 1 ms to 30 s (the default
/// upstream timeout).
const REQUEST_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets for session store operations, in seconds: 100 µs to the store timeout's range.
const STORE_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// How a request on the proxy listener ended: forwarded, answered by the session API, or the
/// error that answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Forwarded; the upstream answered (any status).
    Proxied,
    /// Answered by the session API (a login, the session, a logout, a preflight).
    Own,
    /// The forward-auth endpoint allowed the request a proxy described (200).
    Allowed,
    /// Malformed or ambiguous request (400).
    BadRequest,
    /// Header section over the limit (431).
    HeadersTooLarge,
    /// No valid session where one is needed (401).
    Unauthenticated,
    /// A failed login (401).
    InvalidCredentials,
    /// A session that may not do this (403).
    Forbidden,
    /// Failed the origin check (403).
    Csrf,
    /// Unknown path under the session API (404).
    NotFound,
    /// Wrong method (405).
    MethodNotAllowed,
    /// Body over the limit (413).
    PayloadTooLarge,
    /// Body not JSON (415).
    UnsupportedMediaType,
    /// Login regulated (429).
    TooManyAttempts,
    /// The session store is down (503).
    StoreUnavailable,
    /// The hashing queue is full (503).
    LoginBusy,
    /// The delegated credential check gave no usable answer (503).
    IdentitySourceUnavailable,
    /// The upstream could not be reached or failed (502).
    UpstreamError,
    /// The upstream did not answer in time (504).
    UpstreamTimeout,
    /// A bug: a panic or an impossible state (500).
    Internal,
}

/// A status code's class, as in `2xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// 1xx.
    Informational,
    /// 2xx.
    Success,
    /// 3xx.
    Redirection,
    /// 4xx.
    ClientError,
    /// 5xx (and the unassigned codes above).
    ServerError,
}

/// The result of one login attempt (a `POST` to the session API that got as far as a username
/// and a password).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginResult {
    /// Logged in.
    Success,
    /// Unknown user, wrong password or disabled user.
    Invalid,
    /// Refused by login regulation before the password was checked.
    Regulated,
    /// The hashing queue was full.
    Busy,
    /// The session store could not be reached.
    StoreUnavailable,
    /// The delegated credential check gave no usable answer.
    SourceUnavailable,
}

/// One session store operation (see [`crate::session::SessionStore`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOperation {
    /// Write a new key.
    Create,
    /// Read a key.
    Load,
    /// Replace an existing key.
    Touch,
    /// Remove a key.
    Delete,
    /// Count up (login regulation).
    Incr,
    /// Count down (login regulation).
    Decr,
    /// Time left on a key (login regulation).
    Ttl,
    /// The health check.
    Ping,
    /// Add to a user's index of sessions.
    SortedAdd,
    /// Read a user's index of sessions.
    SortedRange,
    /// Remove from a user's index of sessions.
    SortedRemove,
    /// Drop the expired part of a user's index of sessions.
    SortedRemoveThrough,
    /// Tell every replica that a session ended (the cache invalidation channel).
    Publish,
}

/// `{outcome, status_class}` of `portcullis_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    outcome: Outcome,
    status_class: StatusClass,
}

/// `{outcome}` of `portcullis_request_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: Outcome,
}

/// `{result}` of `portcullis_login_attempts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LoginLabels {
    result: LoginResult,
}

/// `{operation}` of the store metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OperationLabels {
    operation: StoreOperation,
}

/// `{version}` of `portcullis_build_info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

/// Every metric the gateway keeps, and the registry that writes them out.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<OutcomeLabels>,
    upstream_duration: Histogram,
    login_attempts: [Counter; LoginResult::ALL.len()],
    store: StoreMetrics,
    cache: CacheMetrics,
    open_connections: Gauge,
    store_up: Gauge,
}

/// The session cache's share of the metrics ([`crate::session::SessionCache`]). Clones record
/// into the same series.
#[derive(Debug, Clone, Default)]
pub struct CacheMetrics {
    /// Requests whose session record came from the cache.
    pub hits: Counter,
    /// Requests whose session record was read from the store while the cache was live.
    pub misses: Counter,
    /// Sessions evicted because some replica ended them (messages on the channel, and this
    /// replica's own ends).
    pub invalidations: Counter,
    /// Times the whole cache was emptied because the invalidation connection was lost.
    pub flushes: Counter,
    /// 1 while the invalidation connection is subscribed and the cache in use, else 0.
    pub live: Gauge,
}

/// The store's share of the metrics, handed to the store wrapper that times every operation
/// ([`crate::session::store::MeteredStore`]). Clones record into the same series.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    durations: [Histogram; StoreOperation::ALL.len()],
    errors: [Counter; StoreOperation::ALL.len()],
}

/// Counts one open client connection until dropped.
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Proxied => "proxied",
            Outcome::Own => "own",
            Outcome::Allowed => "allowed",
            Outcome::BadRequest => "bad_request",
            Outcome::HeadersTooLarge => "headers_too_large",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::InvalidCredentials => "invalid_credentials",
            Outcome::Forbidden => "forbidden",
            Outcome::Csrf => "csrf",
            Outcome::NotFound => "not_found",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::PayloadTooLarge => "payload_too_large",
            Outcome::UnsupportedMediaType => "unsupported_media_type",
            Outcome::TooManyAttempts => "too_many_attempts",
            Outcome::StoreUnavailable => "store_unavailable",
            Outcome::LoginBusy => "login_busy",
            Outcome::IdentitySourceUnavailable => "identity_source_unavailable",
            Outcome::UpstreamError => "upstream_error",
            Outcome::UpstreamTimeout => "upstream_timeout",
            Outcome::Internal => "internal",
        }
    }
}

impl StatusClass {
    /// The class of `status`.
    pub fn of(status: StatusCode) -> Self {
        match status.as_u16() {
            ..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
        }
    }
}

impl LoginResult {
    /// Every result, in the order the login counters are kept.
    pub const ALL: [LoginResult; 6] = [
        LoginResult::Success,
        LoginResult::Invalid,
        LoginResult::Regulated,
        LoginResult::Busy,
        LoginResult::StoreUnavailable,
        LoginResult::SourceUnavailable,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginResult::Success => "success",
            LoginResult::Invalid => "invalid",
            LoginResult::Regulated => "regulated",
            LoginResult::Busy => "busy",
            LoginResult::StoreUnavailable => "store_unavailable",
            LoginResult::SourceUnavailable => "source_unavailable",
        }
    }
}

impl StoreOperation {
    /// Every operation, in the order of the [`StoreMetrics`] arrays.
    pub const ALL: [StoreOperation; 13] = [
        StoreOperation::Create,
        StoreOperation::Load,
        StoreOperation::Touch,
        StoreOperation::Delete,
        StoreOperation::Incr,
        StoreOperation::Decr,
        StoreOperation::Ttl,
        StoreOperation::Ping,
        StoreOperation::SortedAdd,
        StoreOperation::SortedRange,
        StoreOperation::SortedRemove,
        StoreOperation::SortedRemoveThrough,
        StoreOperation::Publish,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreOperation::Create => "create",
            StoreOperation::Load => "load",
            StoreOperation::Touch => "touch",
            StoreOperation::Delete => "delete",
            StoreOperation::Incr => "incr",
            StoreOperation::Decr => "decr",
            StoreOperation::Ttl => "ttl",
            StoreOperation::Ping => "ping",
            StoreOperation::SortedAdd => "sorted_add",
            StoreOperation::SortedRange => "sorted_range",
            StoreOperation::SortedRemove => "sorted_remove",
            StoreOperation::SortedRemoveThrough => "sorted_remove_through",
            StoreOperation::Publish => "publish",
        }
    }
}

/// Label values are written from `as_str`: the derive would write the Rust variant names.
macro_rules! label_value {
    ($($label:ty),*) => {$(
        impl EncodeLabelValue for $label {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    )*};
}
label_value!(Outcome, StatusClass, LoginResult, StoreOperation);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under the `portcullis_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests on the proxy listener, by how they ended and status class",
            requests.clone(),
        );
        let request_duration: HistogramFamily<OutcomeLabels> =
            Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS));
        registry.register_with_unit(
            "request_duration",
            "Time from a request's head to its response head, by how it ended",
            Unit::Seconds,
            request_duration.clone(),
        );
        let upstream_duration = Histogram::new(REQUEST_BUCKETS);
        registry.register_with_unit(
            "upstream_duration",
            "Time from sending a request upstream to the upstream's response head (or failure)",
            Unit::Seconds,
            upstream_duration.clone(),
        );
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register("login_attempts", "Login attempts by result", logins.clone());
        let login_attempts =
            LoginResult::ALL.map(|result| logins.get_or_create_owned(&LoginLabels { result }));
        let store_durations: HistogramFamily<OperationLabels> =
            Family::new_with_constructor(|| Histogram::new(STORE_BUCKETS));
        registry.register_with_unit(
            "store_operation_duration",
            "Session store operation latency, by operation",
            Unit::Seconds,
            store_durations.clone(),
        );
        let store_errors = Family::<OperationLabels, Counter>::default();
        registry.register(
            "store_errors",
            "Session store operations that failed or timed out, by operation",
            store_errors.clone(),
        );
        let store = StoreMetrics {
            durations: StoreOperation::ALL.map(|operation| {
                store_durations.get_or_create_owned(&OperationLabels { operation })
            }),
            errors: StoreOperation::ALL
                .map(|operation| store_errors.get_or_create_owned(&OperationLabels { operation })),
        };
        let cache = CacheMetrics::default();
        registry.register(
            "session_cache_hits",
            "Requests whose session record came from the in-process cache",
            cache.hits.clone(),
        );
        registry.register(
            "session_cache_misses",
            "Requests whose session record was read from the store while the cache was in use",
            cache.misses.clone(),
        );
        registry.register(
            "session_cache_invalidations",
            "Cached sessions evicted because a replica ended them",
            cache.invalidations.clone(),
        );
        registry.register(
            "session_cache_flushes",
            "Times the whole session cache was emptied because its invalidation connection was lost",
            cache.flushes.clone(),
        );
        registry.register(
            "session_cache_live",
            "Whether the session cache is in use (its invalidation connection is subscribed)",
            cache.live.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections open on the proxy listener",
            open_connections.clone(),
        );
        let store_up = Gauge::default();
        registry.register(
            "store_up",
            "Whether the last session store health check (PING) succeeded",
            store_up.clone(),
        );
        registry.register(
            "build",
            "Build information",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        Self {
            registry,
            requests,
            request_duration,
            upstream_duration,
            login_attempts,
            store,
            cache,
            open_connections,
            store_up,
        }
    }

    /// Count one finished request and its time to the response head.
    pub fn record_request(&self, outcome: Outcome, status: StatusCode, elapsed: Duration) {
        let status_class = StatusClass::of(status);
        self.requests
            .get_or_create(&RequestLabels {
                outcome,
                status_class,
            })
            .inc();
        self.request_duration
            .get_or_create(&OutcomeLabels { outcome })
            .observe(elapsed.as_secs_f64());
    }

    /// Time one upstream exchange, to the response head or the failure.
    pub fn observe_upstream(&self, elapsed: Duration) {
        self.upstream_duration.observe(elapsed.as_secs_f64());
    }

    /// Count one login attempt.
    pub fn login_attempt(&self, result: LoginResult) {
        self.login_attempts[result as usize].inc();
    }

    /// The store's share, for the store wrapper.
    pub fn store(&self) -> &StoreMetrics {
        &self.store
    }

    /// The session cache's metrics.
    pub fn cache(&self) -> &CacheMetrics {
        &self.cache
    }

    /// Count a client connection as open until the returned guard is dropped.
    pub fn connection_opened(&self) -> OpenConnection {
        self.open_connections.inc();
        OpenConnection(self.open_connections.clone())
    }

    /// The OpenMetrics text of every metric, with `portcullis_store_up` set from the last
    /// health check (`store_up`).
    pub fn encode(&self, store_up: bool) -> String {
        self.store_up.set(i64::from(store_up));
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String never fails");
        text
    }
}

impl StoreMetrics {
    /// Record one operation's latency, and its failure if it failed.
    pub fn observe(&self, operation: StoreOperation, elapsed: Duration, ok: bool) {
        let i = operation as usize;
        self.durations[i].observe(elapsed.as_secs_f64());
        if !ok {
            self.errors[i].inc();
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_follow_the_first_digit() {
        for (code, class) in [
            (100, "1xx"),
            (101, "1xx"),
            (200, "2xx"),
            (204, "2xx"),
            (299, "2xx"),
            (303, "3xx"),
            (400, "4xx"),
            (431, "4xx"),
            (499, "4xx"),
            (500, "5xx"),
            (504, "5xx"),
            (599, "5xx"),
            (999, "5xx"),
        ] {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(StatusClass::of(status).as_str(), class, "{code}");
        }
    }

    #[test]
    fn the_enum_orders_match_the_arrays() {
        for (i, result) in LoginResult::ALL.into_iter().enumerate() {
            assert_eq!(result as usize, i);
        }
        for (i, operation) in StoreOperation::ALL.into_iter().enumerate() {
            assert_eq!(operation as usize, i);
        }
    }

    #[test]
    fn the_exposition_names_every_metric_with_snake_case_labels() {
        let metrics = Metrics::new();
        metrics.record_request(Outcome::Proxied, StatusCode::OK, Duration::from_millis(3));
        metrics.record_request(
            Outcome::StoreUnavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(300),
        );
        metrics.observe_upstream(Duration::from_millis(2));
        metrics.login_attempt(LoginResult::Regulated);
        metrics
            .store()
            .observe(StoreOperation::Load, Duration::from_millis(1), false);
        let open = metrics.connection_opened();
        let text = metrics.encode(false);
        for line in [
            "portcullis_requests_total{outcome=\"proxied\",status_class=\"2xx\"} 1",
            "portcullis_requests_total{outcome=\"store_unavailable\",status_class=\"5xx\"} 1",
            "portcullis_request_duration_seconds_count{outcome=\"proxied\"} 1",
            "portcullis_upstream_duration_seconds_count 1",
            "portcullis_login_attempts_total{result=\"regulated\"} 1",
            "portcullis_login_attempts_total{result=\"success\"} 0",
            "portcullis_store_operation_duration_seconds_count{operation=\"load\"} 1",
            "portcullis_store_operation_duration_seconds_count{operation=\"ping\"} 0",
            "portcullis_store_errors_total{operation=\"load\"} 1",
            "portcullis_store_errors_total{operation=\"create\"} 0",
            "portcullis_open_connections 1",
            "portcullis_store_up 0",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in:\n{text}"
            );
        }
        let build = format!(
            "portcullis_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.lines().any(|l| l == build), "missing `{build}`");
        drop(open);
        let text = metrics.encode(true);
        assert!(text.lines().any(|l| l == "portcullis_open_connections 0"));
        assert!(text.lines().any(|l| l == "portcullis_store_up 1"));
    }
}
