//! WebSockets through the gateway against a real WebSocket echo upstream (tokio-tungstenite on
//! both ends, plus raw frames): the handshake is judged like any request, only the
//! `Connection: upgrade` + `Upgrade: websocket` pair crosses, and the tunnel lives until a side
//! closes, `upstream.websocket_max_lifetime`, or the end of shutdown's grace period, never cut by
//! the HTTP timers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http::{HeaderName, HeaderValue, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::support::{self, login, raw, Gateway, Store, WsUpstream, ADMIN_PW, USER_PW};

type Ws = WebSocketStream<TcpStream>;
type WsResponse = http::Response<Option<Vec<u8>>>;

/// The RFC 6455 §1.3 example key and the accept value that proves a real handshake answered it.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A gateway with fixture R in front of a WebSocket echo upstream; `upstream_lines` are added to
/// the `upstream:` section, `extra` at the top level.
async fn setup(upstream_lines: &str, extra: &str) -> (WsUpstream, Gateway) {
    let upstream = WsUpstream::start().await;
    let fixture = support::config_yaml(upstream.addr, Store::Memory, extra);
    let yaml = fixture.replacen(
        "  idle_timeout: 2s\n",
        &format!("  idle_timeout: 2s\n{upstream_lines}"),
        1,
    );
    assert!(
        upstream_lines.is_empty() || yaml != fixture,
        "upstream lines not placed: {fixture}"
    );
    (upstream, Gateway::start(&yaml).await)
}

/// Open a WebSocket through the gateway; `Err` is the HTTP response that refused the handshake.
async fn connect(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(Ws, WsResponse), WsResponse> {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let tcp = TcpStream::connect(addr).await.unwrap();
    let handshake = tokio_tungstenite::client_async(request, tcp);
    match tokio::time::timeout(Duration::from_secs(10), handshake)
        .await
        .expect("handshake answered within 10 s")
    {
        Ok(opened) => Ok(opened),
        Err(WsError::Http(response)) => Err(*response),
        Err(other) => panic!("handshake to {path} failed: {other}"),
    }
}

/// Open a WebSocket that must succeed.
async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (Ws, WsResponse) {
    match connect(addr, path, headers).await {
        Ok(opened) => opened,
        Err(refused) => panic!("handshake to {path} refused: {refused:?}"),
    }
}

/// Send `message` and expect it back.
async fn echo(ws: &mut Ws, message: Message) {
    ws.send(message.clone())
        .await
        .expect("send through the tunnel");
    let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("echo within 5 s")
        .expect("tunnel still open")
        .expect("a well-formed frame");
    assert_eq!(back, message);
}

/// Wait until the tunnel ends on the client's side; returns how long that took.
async fn ended_within(ws: &mut Ws, limit: Duration) -> Duration {
    let started = Instant::now();
    for _ in 0..100 {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => break,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return started.elapsed(),
            Ok(Some(Ok(_))) => continue,
        }
    }
    panic!("tunnel still open after {limit:?}");
}

/// Close as a client does (RFC 6455 §7.1.1): the close handshake, then the server closes TCP,
/// then the client closes its side.
async fn close(mut ws: Ws) {
    ws.close(None).await.expect("close handshake");
    ended_within(&mut ws, Duration::from_secs(5)).await;
    drop(ws);
}

fn status_and_code(response: &WsResponse) -> (u16, String) {
    let code = response
        .body()
        .as_deref()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (response.status().as_u16(), code)
}

#[tokio::test]
async fn authenticated_websocket_echoes_both_ways_and_the_upstream_sees_only_the_gateways_identity()
{
    let (upstream, gateway) = setup("", "").await;
    let sid = login(&mut gateway.client(), "user", USER_PW).await;
    let cookie = format!("gw_sid={sid}; other=1");
    let origin = format!("http://{}", gateway.addr);
    let (mut ws, response) = open(
        gateway.addr,
        "/api/ws",
        &[
            ("cookie", &cookie),
            ("origin", &origin),
            ("sec-websocket-protocol", "chat, superchat"),
            ("x-auth-user", "admin"),
            ("x_auth_roles", "admin"),
            ("remote-user", "admin"),
        ],
    )
    .await;
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");

    echo(&mut ws, Message::text("hello through portcullis")).await;
    echo(&mut ws, Message::binary((0..=255u8).collect::<Vec<u8>>())).await;
    let big: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    echo(&mut ws, Message::binary(big)).await;

    let seen = upstream.only();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("GET", "/api/ws")
    );
    assert_eq!(seen.header("x-auth-user"), Some("user"));
    assert_eq!(seen.header("x-auth-roles"), Some("reader"));
    let identity_like = seen
        .headers
        .iter()
        .filter(|(n, _)| {
            let n = n.to_ascii_lowercase().replace('_', "-");
            n.starts_with("x-auth-") || n == "remote-user"
        })
        .count();
    assert_eq!(identity_like, 2, "{:?}", seen.headers);
    assert_eq!(seen.header("connection"), Some("upgrade"));
    assert_eq!(seen.header("upgrade"), Some("websocket"));
    assert_eq!(seen.header("sec-websocket-version"), Some("13"));
    assert!(seen
        .header("sec-websocket-key")
        .is_some_and(|k| !k.is_empty()));
    assert_eq!(
        seen.header("sec-websocket-protocol"),
        Some("chat, superchat")
    );
    assert_eq!(seen.header("cookie"), Some("other=1"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));

    close(ws).await;
    assert!(
        upstream.ended_within(1, Duration::from_secs(5)).await,
        "the upstream's side of the tunnel ended too"
    );
}

#[tokio::test]
async fn websocket_handshake_passes_on_only_the_upgrade_pair_of_hop_by_hop_headers() {
    let (upstream, gateway) = setup("", "").await;
    let sid = login(&mut gateway.client(), "user", USER_PW).await;
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    let request = format!(
        "GET /api/ws HTTP/1.1\r\nHost: gw.example.test\r\nCookie: gw_sid={sid}\r\n\
         Connection: keep-alive, Upgrade, X-Auth-User, TE\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\nKeep-Alive: timeout=5\r\n\
         TE: trailers\r\nProxy-Authorization: Basic dG9rZW4=\r\nProxy-Connection: keep-alive\r\n\
         HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nX-Auth-User: admin\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();

    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("101 within 5 s")
            .unwrap();
        assert!(
            n > 0,
            "closed before the head: {}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101 "), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(
        head.contains(&format!(
            "\r\nsec-websocket-accept: {}\r\n",
            ACCEPT.to_ascii_lowercase()
        )),
        "{head}"
    );
    assert!(
        !head.contains("content-length") && !head.contains("transfer-encoding"),
        "{head}"
    );

    // One masked text frame (RFC 6455 §5.2) by hand; the echo comes back unmasked.
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81, 0x80 | 5];
    frame.extend_from_slice(&mask);
    frame.extend(b"hello".iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    stream.write_all(&frame).await.unwrap();
    let mut echoed = data[head_end..].to_vec();
    while echoed.len() < 7 {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("echo within 5 s")
            .unwrap();
        assert!(n > 0, "tunnel closed before the echo");
        echoed.extend_from_slice(&buf[..n]);
    }
    assert_eq!(echoed, b"\x81\x05hello");

    let seen = upstream.only();
    assert_eq!(seen.header("connection"), Some("upgrade"));
    assert_eq!(seen.header("upgrade"), Some("websocket"));
    assert_eq!(seen.header("sec-websocket-key"), Some(KEY));
    assert_eq!(
        seen.header("x-auth-user"),
        Some("user"),
        "Connection: cannot remove it"
    );
    for hop in [
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
        "http2-settings",
    ] {
        assert_eq!(seen.header(hop), None, "{hop} reached the upstream");
    }
}

#[tokio::test]
async fn websocket_without_a_valid_session_is_401_and_never_reaches_the_upstream() {
    let (upstream, gateway) = setup("", "").await;
    let sid = login(&mut gateway.client(), "user", USER_PW).await;
    let (id, _) = sid.split_once('.').unwrap();
    let other = support::unknown_signed_cookie();
    let other_mac = other.split_once('.').unwrap().1;
    for cookie in [
        None,
        Some("gw_sid=garbage".to_owned()),
        Some(format!("gw_sid={other}")),
        Some(format!("gw_sid={id}.{other_mac}")),
    ] {
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("cookie", c.as_str())).collect();
        let refused = connect(gateway.addr, "/api/ws", &headers)
            .await
            .err()
            .unwrap_or_else(|| panic!("{cookie:?} opened a tunnel"));
        assert_eq!(
            status_and_code(&refused),
            (401, "unauthenticated".to_owned()),
            "{cookie:?}"
        );
    }
    assert!(upstream.is_untouched(), "{:?}", upstream.handshakes());
}

#[tokio::test]
async fn websocket_to_a_path_the_role_denies_is_403_and_never_reaches_the_upstream() {
    let (upstream, gateway) = setup("", "").await;
    let user_sid = login(&mut gateway.client(), "user", USER_PW).await;
    let refused = connect(
        gateway.addr,
        "/admin/ws",
        &[("cookie", &format!("gw_sid={user_sid}"))],
    )
    .await
    .expect_err("a reader opened a tunnel under /admin/");
    assert_eq!(status_and_code(&refused), (403, "forbidden".to_owned()));
    assert!(upstream.is_untouched());

    // Control: the role that the rule asks for gets through.
    let admin_sid = login(&mut gateway.client(), "admin", ADMIN_PW).await;
    let cookie = format!("gw_sid={admin_sid}");
    let (mut ws, _) = open(gateway.addr, "/admin/ws", &[("cookie", &cookie)]).await;
    echo(&mut ws, Message::text("admin")).await;
    assert_eq!(upstream.only().header("x-auth-user"), Some("admin"));
}

/// C07's h2c upgrade request headers.
const H2C: &str =
    "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n";

#[tokio::test]
async fn h2c_and_other_non_websocket_upgrades_are_never_passed_on_and_proceed_as_plain_requests() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let sid = login(&mut gateway.client(), "user", USER_PW).await;
    let ws_headers = format!("Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n");
    for (method, headers, body) in [
        ("GET", H2C.to_owned(), ""),
        // h2c stays h2c with WebSocket headers beside it.
        (
            "GET",
            format!("Connection: Upgrade\r\nUpgrade: h2c\r\n{ws_headers}"),
            "",
        ),
        // Not a handshake: the wrong method, or a body.
        (
            "POST",
            format!("Connection: Upgrade\r\nUpgrade: websocket\r\n{ws_headers}"),
            "",
        ),
        (
            "GET",
            format!(
                "Connection: Upgrade\r\nUpgrade: websocket\r\n{ws_headers}Content-Length: 5\r\n"
            ),
            "hello",
        ),
    ] {
        let request = format!(
            "{method} /api/x HTTP/1.1\r\nHost: gw.example.test\r\nCookie: gw_sid={sid}\r\n{headers}Connection: close\r\n\r\n{body}"
        );
        let (status, text) = raw(gateway.addr, request.as_bytes()).await;
        assert_eq!(status, 200, "{headers}: {text}");
        let seen = upstream.only();
        assert_eq!(seen.method, method);
        assert_eq!(seen.header("x-auth-user"), Some("user"));
        for hop in ["connection", "upgrade", "http2-settings"] {
            assert_eq!(
                seen.header(hop),
                None,
                "{headers}: {hop} reached the upstream"
            );
        }
        upstream.clear();
    }
}

#[tokio::test]
async fn an_upstream_refusing_the_upgrade_is_relayed_as_its_normal_response() {
    let (upstream, gateway) = setup("", "").await;
    let sid = login(&mut gateway.client(), "user", USER_PW).await;
    let refused = connect(
        gateway.addr,
        "/api/refuse",
        &[("cookie", &format!("gw_sid={sid}"))],
    )
    .await
    .expect_err("the upstream refused the handshake");
    assert_eq!(refused.status(), 403);
    let h = refused.headers();
    assert_eq!(h.get("x-refused").map(|v| v.as_bytes()), Some(&b"1"[..]));
    assert_eq!(h["content-type"], "text/plain");
    assert!(
        h.get("cache-control").is_none(),
        "the upstream's answer, not Portcullis's"
    );
    assert_eq!(upstream.only().header("x-auth-user"), Some("user"));
}

#[tokio::test]
async fn a_switch_to_another_protocol_than_websocket_is_502() {
    let addr = support::upstream::canned(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    )
    .await;
    let gateway = Gateway::start(&support::config_yaml(addr, Store::Memory, "")).await;
    let refused = connect(gateway.addr, "/public/ws", &[])
        .await
        .expect_err("a switch to h2c opened a tunnel");
    assert_eq!(refused.status(), 502);
    assert_eq!(refused.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn websocket_max_lifetime_closes_the_tunnel() {
    let (upstream, gateway) = setup("  websocket_max_lifetime: 1s\n", "").await;
    let (mut ws, _) = open(gateway.addr, "/public/ws", &[]).await;
    let opened = Instant::now();
    echo(&mut ws, Message::text("before the limit")).await;
    ended_within(&mut ws, Duration::from_secs(5)).await;
    let lived = opened.elapsed();
    assert!(
        lived >= Duration::from_millis(800) && lived < Duration::from_secs(4),
        "the tunnel lived {lived:?} with a 1 s limit"
    );
    assert!(
        upstream.ended_within(1, Duration::from_secs(3)).await,
        "the upstream's side was closed too"
    );
}

#[tokio::test]
async fn an_idle_tunnel_outlives_the_header_keepalive_and_upstream_idle_timeouts() {
    // Fixture: upstream idle_timeout 2s; client limits 1 s each.
    let (_upstream, gateway) = setup("", "header_read_timeout: 1s\nkeepalive_timeout: 1s\n").await;
    let (mut ws, _) = open(gateway.addr, "/public/ws", &[]).await;
    echo(&mut ws, Message::text("first")).await;

    // The limits are live: a silent plain connection is cut.
    let mut silent = TcpStream::connect(gateway.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let cut = tokio::time::timeout(Duration::from_secs(4), silent.read(&mut buf)).await;
    assert!(
        matches!(cut, Ok(Ok(0) | Err(_))),
        "silent connection not cut: {cut:?}"
    );

    // By now the tunnel has been quiet for over 3 s: past every one of those limits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    echo(&mut ws, Message::text("still open")).await;
    echo(&mut ws, Message::binary(vec![7u8; 1000])).await;
}

#[tokio::test]
async fn shutdown_with_an_open_tunnel_finishes_within_the_grace_period_and_closes_it() {
    let (_upstream, mut gateway) = setup("", "shutdown:\n  grace_period: 1s\n").await;
    let (mut ws, _) = open(gateway.addr, "/public/ws", &[]).await;
    echo(&mut ws, Message::text("before shutdown")).await;

    let started = Instant::now();
    gateway.begin_shutdown();
    // In-flight work is served during the grace period, and a tunnel is in-flight work.
    echo(&mut ws, Message::text("during the grace period")).await;
    tokio::time::timeout(Duration::from_secs(5), gateway.shutdown())
        .await
        .expect("shutdown did not hang on the open tunnel");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "shutdown took {took:?} with a 1 s grace period"
    );
    ended_within(&mut ws, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn shutdown_ends_as_soon_as_the_last_tunnel_closes() {
    let (_upstream, mut gateway) = setup("", "shutdown:\n  grace_period: 30s\n").await;
    let (mut ws, _) = open(gateway.addr, "/public/ws", &[]).await;
    echo(&mut ws, Message::text("hello")).await;
    let started = Instant::now();
    gateway.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(300)).await;
    close(ws).await;
    tokio::time::timeout(Duration::from_secs(5), gateway.shutdown())
        .await
        .expect("shutdown waited on a closed tunnel");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn an_open_tunnel_holds_its_connection_slot_until_it_closes() {
    let (_upstream, gateway) = setup("", "max_connections: 1\n").await;
    let (mut ws, _) = open(gateway.addr, "/public/ws", &[]).await;
    echo(&mut ws, Message::text("hello")).await;

    let mut next = TcpStream::connect(gateway.addr).await.unwrap();
    next.write_all(b"GET /public/a HTTP/1.1\r\nHost: gw.example.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(300), next.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "served beside a tunnel beyond max_connections"
    );

    close(ws).await;
    let n = tokio::time::timeout(Duration::from_secs(5), next.read(&mut buf))
        .await
        .expect("served once the tunnel closed")
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[tokio::test]
async fn http2_offers_no_extended_connect_and_connect_is_405() {
    let (upstream, gateway) = support::setup(Store::Memory).await;
    let tcp = TcpStream::connect(gateway.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp)
        .await
        .expect("h2c prior knowledge");
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let get = http::Request::get(format!("http://{}/public/a", gateway.addr))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(get, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    // The server's SETTINGS have arrived: no SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441).
    assert!(!client.is_extended_connect_protocol_enabled());

    let mut client = client.ready().await.unwrap();
    let connect = http::Request::builder()
        .method(Method::CONNECT)
        .uri("gw.example.test:443")
        .body(())
        .unwrap();
    let (response, _) = client.send_request(connect, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 405);
    assert_eq!(
        upstream.only().target,
        "/public/a",
        "CONNECT never forwarded"
    );
}
