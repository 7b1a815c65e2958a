//! Client connection limits: slow or silent clients are cut at the header limit, idle keep-alive
//! connections live until the (longer) keep-alive limit, and a request in flight is never cut.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{self, login, Store, USER_PW};

const LIMITS: &str = "header_read_timeout: 1s\nkeepalive_timeout: 3s\n";

/// Wait until the server closes `stream`; returns how long that took (panics after 10 s).
async fn closed_after(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("connection still open after 10 s"),
        }
    }
}

/// Read one response with a Content-Length body; returns its status.
async fn read_response(stream: &mut TcpStream) -> u16 {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "closed before a full response: {}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return text[9..12].parse().unwrap();
            }
        }
    }
}

#[tokio::test]
async fn silent_and_slow_header_clients_are_cut_at_the_header_limit() {
    let (upstream, gateway) = support::setup_with(Store::Memory, LIMITS).await;
    let mut silent = TcpStream::connect(gateway.addr).await.unwrap();
    let mut slow = TcpStream::connect(gateway.addr).await.unwrap();
    slow.write_all(b"GET /public/a HTTP/1.1\r\nHost: gw.example.test\r\n")
        .await
        .unwrap();
    let dribble = tokio::spawn(async move {
        for _ in 0..20 {
            if slow.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        closed_after(&mut slow).await
    });
    let silent_cut = closed_after(&mut silent).await;
    assert!(
        silent_cut < Duration::from_secs(5),
        "silent connection cut after {silent_cut:?}"
    );
    let slow_cut = dribble.await.unwrap();
    assert!(
        slow_cut < Duration::from_secs(5),
        "slow-header connection lived {slow_cut:?}"
    );
    // Meanwhile other clients are served.
    assert_eq!(gateway.client().get("/public/a").await.status, 200);
    assert_eq!(upstream.only().target, "/public/a");
}

#[tokio::test]
async fn idle_keepalive_connection_outlives_the_header_limit_then_closes() {
    let (_upstream, gateway) = support::setup_with(Store::Memory, LIMITS).await;
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    let request = b"GET /public/a HTTP/1.1\r\nHost: gw.example.test\r\n\r\n";
    stream.write_all(request).await.unwrap();
    assert_eq!(read_response(&mut stream).await, 200);
    // Idle for longer than the header limit, shorter than the keep-alive limit.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    stream.write_all(request).await.unwrap();
    assert_eq!(read_response(&mut stream).await, 200);
    let idle = closed_after(&mut stream).await;
    assert!(
        idle >= Duration::from_secs(2) && idle < Duration::from_secs(8),
        "closed after {idle:?}"
    );
}

#[tokio::test]
async fn a_request_in_flight_is_never_cut_by_the_connection_limits() {
    let (_upstream, gateway) = support::setup_with(
        Store::Memory,
        "header_read_timeout: 1s\nkeepalive_timeout: 1s\n",
    )
    .await;
    let mut client = gateway.client();
    login(&mut client, "user", USER_PW).await;
    // The upstream holds this answer for 1.5 s: longer than both limits.
    let reply = client.get("/api/slow").await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn c19_hundreds_of_slow_and_silent_connections_are_cut_and_others_still_served() {
    let (_upstream, gateway) = support::setup_with(Store::Memory, LIMITS).await;
    let mut attackers = Vec::new();
    for i in 0..300 {
        let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
        if i % 2 == 0 {
            stream
                .write_all(b"GET /public/a HTTP/1.1\r\nHost: gw.example.test\r\n")
                .await
                .unwrap();
        }
        attackers.push(stream);
    }
    // While they hang on, a normal client is served.
    assert_eq!(gateway.client().get("/public/a").await.status, 200);
    let cut = futures_util::future::join_all(attackers.iter_mut().map(closed_after)).await;
    let slowest = cut.into_iter().max().unwrap();
    assert!(
        slowest < Duration::from_secs(6),
        "an attacking connection lived {slowest:?}"
    );
    assert_eq!(gateway.client().get("/public/a").await.status, 200);
}

#[tokio::test]
async fn c19_a_login_flood_is_bounded_by_the_hashing_queue_and_public_routes_keep_working() {
    let (_upstream, gateway) = support::setup_with(
        Store::Memory,
        "identity:\n  max_concurrent_hashes: 1\n  hash_queue: 2\n",
    )
    .await;
    let addr = gateway.addr;
    let logins = (0..60).map(|i| async move {
        let mut client = crate::support::Client::new(addr);
        let body =
            serde_json::json!({ "username": format!("user{i}"), "password": "p".repeat(1024) });
        let reply = client.post_json("/session", &body).await;
        (reply.status, reply.error_code())
    });
    let public = async {
        let mut client = gateway.client();
        let mut ok = 0;
        for _ in 0..20 {
            ok += u32::from(client.get("/public/a").await.status == 200);
        }
        ok
    };
    let (results, public_ok) = tokio::join!(futures_util::future::join_all(logins), public);
    assert_eq!(
        public_ok, 20,
        "public requests kept working during the login flood"
    );
    let busy = results
        .iter()
        .filter(|(s, c)| *s == 503 && c == "login_busy")
        .count();
    let refused = results
        .iter()
        .filter(|(s, c)| *s == 401 && c == "invalid_credentials")
        .count();
    assert_eq!(busy + refused, 60, "{results:?}");
    assert!(
        busy > 0,
        "a queue of 2 behind one hashing thread must turn some of 60 logins away"
    );
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_a_slot_frees() {
    let (_upstream, gateway) = support::setup_with(Store::Memory, "max_connections: 2\n").await;
    let first = TcpStream::connect(gateway.addr).await.unwrap();
    let second = TcpStream::connect(gateway.addr).await.unwrap();
    // The third connection is queued by the kernel but not served while two are open.
    let mut third = TcpStream::connect(gateway.addr).await.unwrap();
    third
        .write_all(b"GET /public/a HTTP/1.1\r\nHost: gw.example.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond max_connections");
    drop(first);
    drop(second);
    assert_eq!(read_response(&mut third).await, 200);
}
