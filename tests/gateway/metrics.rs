//! `/metrics` on the admin listener, scraped over HTTP after real traffic: exact counters and
//! label sets read from the text exposition, and nothing of it on the proxy listener.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;

use crate::support::{self, login, Client, Gateway, RedisServer, Store, ADMIN_PW, USER_PW};

/// Labels of one sample, sorted by name.
type Labels = Vec<(String, String)>;

/// One scrape of `/metrics`, parsed.
struct Scrape {
    text: String,
    samples: Vec<(String, Labels, f64)>,
}

impl Scrape {
    /// GET `/metrics` on the admin listener and parse it.
    async fn of(gateway: &Gateway) -> Scrape {
        let reply = Client::new(gateway.admin).get("/metrics").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(
            reply.header("content-type"),
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
        );
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        Scrape::parse(reply.text())
    }

    fn parse(text: String) -> Scrape {
        assert!(text.ends_with("# EOF\n"), "{text}");
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("`series value`");
                let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').unwrap())),
                    None => (series, Vec::new()),
                };
                (name.to_owned(), labels, value)
            })
            .collect();
        Scrape { text, samples }
    }

    /// Every series of `name`, by label set.
    fn series(&self, name: &str) -> BTreeMap<Labels, f64> {
        self.samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, labels, value)| (labels.clone(), *value))
            .collect()
    }

    /// The value of `name` with exactly `labels`; panics (with the scrape) when absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want = labels_of(labels);
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map(|(_, _, value)| *value)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in:\n{}", self.text))
    }
}

/// `k="v",k2="v2"` (the values here never hold quotes or commas).
fn parse_labels(text: &str) -> Labels {
    let mut labels: Labels = text
        .split(',')
        .map(|pair| {
            let (key, value) = pair.split_once('=').expect("k=\"v\"");
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
            (key.to_owned(), value.expect("quoted").to_owned())
        })
        .collect();
    labels.sort();
    labels
}

fn labels_of(labels: &[(&str, &str)]) -> Labels {
    let mut labels: Labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    labels
}

/// `{outcome, status_class}` → count, as expected of `portcullis_requests_total`.
fn requests(expected: &[(&str, &str, f64)]) -> BTreeMap<Labels, f64> {
    expected
        .iter()
        .map(|(outcome, class, n)| {
            (
                labels_of(&[("outcome", outcome), ("status_class", class)]),
                *n,
            )
        })
        .collect()
}

async fn post_login(client: &mut Client, user: &str, password: &str) -> u16 {
    client
        .post_json(
            "/session",
            &serde_json::json!({ "username": user, "password": password }),
        )
        .await
        .status
}

/// Scrape until `portcullis_store_up` reads `want`; panics after `within`.
async fn wait_for_store_up(gateway: &Gateway, want: f64, within: Duration) -> Scrape {
    let deadline = Instant::now() + within;
    loop {
        let scrape = Scrape::of(gateway).await;
        if scrape.value("portcullis_store_up", &[]) == want {
            return scrape;
        }
        assert!(
            Instant::now() < deadline,
            "portcullis_store_up not {want} after {within:?}:\n{}",
            scrape.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn traffic_is_counted_by_outcome_status_class_and_login_result() {
    // One failure bans a username from an address, so the second attempt is regulated.
    let (_upstream, gateway) = support::setup_with(
        Store::Memory,
        "regulation:\n  per_user_and_address:\n    max_retries: 1\n",
    )
    .await;
    let fresh = Scrape::of(&gateway).await;
    assert!(fresh.series("portcullis_requests_total").is_empty());
    for result in [
        "success",
        "invalid",
        "regulated",
        "busy",
        "store_unavailable",
        "source_unavailable",
    ] {
        let labels = [("result", result)];
        assert_eq!(fresh.value("portcullis_login_attempts_total", &labels), 0.0);
    }

    let mut user = gateway.client();
    login(&mut user, "user", USER_PW).await;
    assert_eq!(user.get("/api/x").await.status, 200);
    assert_eq!(user.get("/admin/x").await.status, 403);
    let mut anonymous = gateway.client();
    assert_eq!(anonymous.get("/api/x").await.status, 401);
    assert_eq!(anonymous.get("/a%2Fb").await.status, 400);
    assert_eq!(anonymous.get("/session/x").await.status, 404);
    let wrong = format!("{ADMIN_PW}-wrong");
    assert_eq!(post_login(&mut anonymous, "admin", &wrong).await, 401);
    assert_eq!(post_login(&mut anonymous, "admin", ADMIN_PW).await, 429);
    assert_eq!(user.delete("/session").await.status, 204);

    let scrape = Scrape::of(&gateway).await;
    assert_eq!(
        scrape.series("portcullis_requests_total"),
        requests(&[
            ("own", "2xx", 2.0),
            ("proxied", "2xx", 1.0),
            ("forbidden", "4xx", 1.0),
            ("unauthenticated", "4xx", 1.0),
            ("bad_request", "4xx", 1.0),
            ("not_found", "4xx", 1.0),
            ("invalid_credentials", "4xx", 1.0),
            ("too_many_attempts", "4xx", 1.0),
        ]),
        "{}",
        scrape.text
    );
    for (outcome, count) in [("own", 2.0), ("proxied", 1.0), ("forbidden", 1.0)] {
        let labels = [("outcome", outcome)];
        let name = "portcullis_request_duration_seconds_count";
        assert_eq!(scrape.value(name, &labels), count, "{outcome}");
    }
    assert_eq!(
        scrape
            .series("portcullis_request_duration_seconds_count")
            .len(),
        8
    );
    assert_eq!(
        scrape.value("portcullis_upstream_duration_seconds_count", &[]),
        1.0
    );
    let upstream_seconds = scrape.value("portcullis_upstream_duration_seconds_sum", &[]);
    assert!(upstream_seconds > 0.0 && upstream_seconds < 2.0);
    for (result, count) in [
        ("success", 1.0),
        ("invalid", 1.0),
        ("regulated", 1.0),
        ("busy", 0.0),
        ("store_unavailable", 0.0),
        ("source_unavailable", 0.0),
    ] {
        let labels = [("result", result)];
        let value = scrape.value("portcullis_login_attempts_total", &labels);
        assert_eq!(value, count, "{result}");
    }
    assert_eq!(scrape.series("portcullis_login_attempts_total").len(), 6);

    // The memory store, operation by operation: three ban lookups per login attempt, three
    // counters for each admitted one; the success resets its own counter and takes itself back
    // from the other two, then prunes the user's index, adds the session to it and writes the
    // session; the failure starts its ban and resets that window's counter; two session reads;
    // the logout reads the record (for its user's index), deletes it and its index entry, and
    // announces the end to other replicas (a no-op for the memory store, counted all the same).
    // Pings come from the health check, on its own clock.
    for (operation, count) in [
        ("ttl", 9.0),
        ("incr", 6.0),
        ("decr", 2.0),
        ("create", 2.0),
        ("delete", 3.0),
        ("load", 3.0),
        ("touch", 0.0),
        ("sorted_add", 1.0),
        ("sorted_range", 0.0),
        ("sorted_remove", 1.0),
        ("sorted_remove_through", 1.0),
        ("publish", 1.0),
    ] {
        let labels = [("operation", operation)];
        let name = "portcullis_store_operation_duration_seconds_count";
        assert_eq!(scrape.value(name, &labels), count, "{operation}");
        assert_eq!(
            scrape.value("portcullis_store_errors_total", &labels),
            0.0,
            "{operation}"
        );
    }
    let labels = [("operation", "ping")];
    let name = "portcullis_store_operation_duration_seconds_count";
    assert!(scrape.value(name, &labels) >= 1.0);
    assert_eq!(scrape.series("portcullis_store_errors_total").len(), 13);
    assert_eq!(scrape.value("portcullis_store_up", &[]), 1.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        scrape.series("portcullis_build_info"),
        BTreeMap::from([(labels_of(&[("version", version)]), 1.0)])
    );
}

#[tokio::test]
async fn open_connections_follow_client_connections_until_they_close() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (_upstream, gateway) = support::setup(Store::Memory).await;
    assert_eq!(
        Scrape::of(&gateway)
            .await
            .value("portcullis_open_connections", &[]),
        0.0,
        "admin connections are not counted"
    );
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
        stream
            .write_all(b"GET /public/a HTTP/1.1\r\nHost: gw\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        streams.push(stream);
    }
    let scrape = Scrape::of(&gateway).await;
    assert_eq!(scrape.value("portcullis_open_connections", &[]), 3.0);

    drop(streams);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let open = Scrape::of(&gateway)
            .await
            .value("portcullis_open_connections", &[]);
        if open == 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} connections still open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_frozen_redis_counts_store_unavailable_and_store_up_drops_to_0() {
    let redis = RedisServer::start();
    let (_upstream, gateway) = support::setup(Store::Redis(&redis)).await;
    let mut user = gateway.client();
    login(&mut user, "user", USER_PW).await;
    wait_for_store_up(&gateway, 1.0, Duration::from_secs(5)).await;

    redis.freeze();
    let reply = user.get("/api/x").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (503, "session_store_unavailable")
    );
    assert_eq!(
        post_login(&mut gateway.client(), "admin", ADMIN_PW).await,
        503
    );
    // The logout still expires the cookie, and counts as the store error it answers with.
    let reply = user.delete("/session").await;
    assert_eq!(reply.status, 503);
    assert!(user.cookie("gw_sid").is_none(), "{:?}", reply.set_cookies());
    // The health check pings every 2 s with a 300 ms timeout.
    let scrape = wait_for_store_up(&gateway, 0.0, Duration::from_secs(5)).await;
    redis.thaw();

    assert_eq!(
        scrape.series("portcullis_requests_total"),
        requests(&[("own", "2xx", 1.0), ("store_unavailable", "5xx", 3.0)]),
        "{}",
        scrape.text
    );
    let labels = [("result", "store_unavailable")];
    assert_eq!(
        scrape.value("portcullis_login_attempts_total", &labels),
        1.0
    );
    let labels = [("result", "success")];
    assert_eq!(
        scrape.value("portcullis_login_attempts_total", &labels),
        1.0
    );
    let errors =
        |operation| scrape.value("portcullis_store_errors_total", &[("operation", operation)]);
    assert_eq!(
        errors("load"),
        2.0,
        "the request and the logout: {}",
        scrape.text
    );
    assert_eq!(errors("delete"), 0.0, "the logout fails reading the record");
    assert!(errors("ttl") >= 1.0, "the ban lookup of the second login");
    assert!(errors("ping") >= 1.0, "the health check");
    assert_eq!(errors("create"), 0.0);
    // A failed operation is still timed: about the 300 ms Redis timeout.
    let labels = [("operation", "load")];
    let name = "portcullis_store_operation_duration_seconds_sum";
    assert!(scrape.value(name, &labels) >= 0.25, "{}", scrape.text);
}

#[tokio::test]
async fn metrics_are_never_served_on_the_proxy_listener() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let reply = gateway.client().get("/metrics").await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (401, "unauthenticated"),
        "/metrics goes through the rules like any upstream path"
    );
    assert!(upstream.is_untouched());

    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    let reply = client.get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["target"], "/metrics", "the upstream answered");
    assert!(!reply.text().contains("portcullis_"), "{}", reply.text());

    let reply = Client::new(gateway.admin)
        .send(Method::POST, "/metrics", &[], Bytes::new())
        .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (405, "method_not_allowed")
    );
}

#[tokio::test]
async fn forward_auth_decisions_count_as_allowed_or_as_their_refusal() {
    let (upstream, gateway) =
        support::setup_with(Store::Memory, "trusted_proxies: [\"127.0.0.1/32\"]\n").await;
    let mut user = gateway.client();
    login(&mut user, "user", USER_PW).await;
    let describe = |uri: &'static str| [("x-forwarded-method", "GET"), ("x-forwarded-uri", uri)];
    let endpoint = "/.portcullis/auth";
    let reply = user
        .send(Method::GET, endpoint, &describe("/api/x"), Bytes::new())
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-auth-user"), Some("user"));
    let reply = user
        .send(Method::GET, endpoint, &describe("/admin/x"), Bytes::new())
        .await;
    assert_eq!(reply.status, 403);
    let reply = gateway
        .client()
        .send(Method::GET, endpoint, &describe("/api/x"), Bytes::new())
        .await;
    assert_eq!(reply.status, 401);
    assert!(upstream.is_untouched());

    let scrape = Scrape::of(&gateway).await;
    assert_eq!(
        scrape.series("portcullis_requests_total"),
        requests(&[
            ("own", "2xx", 1.0),
            ("allowed", "2xx", 1.0),
            ("forbidden", "4xx", 1.0),
            ("unauthenticated", "4xx", 1.0),
        ]),
        "{}",
        scrape.text
    );
    assert_eq!(
        scrape.value("portcullis_upstream_duration_seconds_count", &[]),
        0.0
    );
}

#[tokio::test]
async fn an_unreachable_upstream_counts_as_upstream_error_and_its_attempt_is_timed() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    upstream.stop();
    assert_eq!(client.get("/api/x").await.status, 502);
    let scrape = Scrape::of(&gateway).await;
    assert_eq!(
        scrape.value(
            "portcullis_requests_total",
            &[("outcome", "upstream_error"), ("status_class", "5xx")]
        ),
        1.0
    );
    assert_eq!(
        scrape.value("portcullis_upstream_duration_seconds_count", &[]),
        1.0,
        "a failed exchange is timed too"
    );
}
