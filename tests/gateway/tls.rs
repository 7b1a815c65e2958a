//! TLS termination: HTTP/1.1 and HTTP/2 by ALPN over a rustls listener, `Secure` cookies with
//! `secure: auto`, `X-Forwarded-Proto: https`, cookies split over several HTTP/2 fields, the
//! handshake timeout for clients that never start one, and client certificates (mTLS) required
//! or optional. Reloads are in `tls_reload.rs`, an `https://` upstream in `upstream_tls.rs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

use crate::support::client::Reply;
use crate::support::tls::{self, Usage, H2, HTTP11};
use crate::support::{self, Gateway, Leaf, Store, TestCa, TestCert, Upstream, USER_PW};

/// An upstream and a TLS gateway (fixture R, memory store) with `extra` YAML.
async fn setup_tls(cert: &TestCert, extra: &str) -> (Upstream, Gateway) {
    support::setup_with(Store::Memory, &format!("{}{extra}", cert.yaml())).await
}

fn login_body() -> Full<Bytes> {
    Full::new(Bytes::from(
        serde_json::to_vec(&serde_json::json!({ "username": "user", "password": USER_PW }))
            .unwrap(),
    ))
}

/// The `gw_sid` value of a login response.
fn session_cookie(reply: &Reply) -> String {
    let set_cookie = reply
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("gw_sid="))
        .expect("login sets gw_sid");
    set_cookie["gw_sid=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn https(addr: SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", addr.port())
}

#[tokio::test]
async fn http1_over_tls_logs_in_with_a_secure_cookie_and_forwards_as_https() {
    let cert = TestCert::generate();
    let (upstream, gateway) = setup_tls(&cert, "").await;
    let stream = cert.connect(gateway.addr, &[HTTP11]).await;
    assert_eq!(tls::alpn(&stream).as_deref(), Some(HTTP11));
    let mut http = tls::http1(stream).await;

    let login = Request::post("/session")
        .header("host", format!("localhost:{}", gateway.addr.port()))
        .header("content-type", "application/json")
        .body(login_body())
        .unwrap();
    let reply = Reply::read(http.send_request(login).await.unwrap()).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let set_cookie = reply.set_cookies()[0].to_owned();
    assert!(
        set_cookie.split(';').any(|a| a.trim() == "Secure"),
        "secure: auto on a TLS listener: {set_cookie}"
    );
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    let sid = session_cookie(&reply);

    let request = Request::get("/api/x")
        .header("host", format!("localhost:{}", gateway.addr.port()))
        .header("cookie", format!("gw_sid={sid}"))
        .header("x-forwarded-proto", "http")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = Reply::read(http.send_request(request).await.unwrap()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = upstream.only();
    assert_eq!(seen.target, "/api/x");
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-auth-user"), Some("user"));
    assert_eq!(seen.header("cookie"), None);
}

#[tokio::test]
async fn http2_over_tls_serves_public_routes_and_reads_a_cookie_split_over_two_fields() {
    let cert = TestCert::generate();
    let (upstream, gateway) = setup_tls(&cert, "").await;
    let stream = cert.connect(gateway.addr, &[H2, HTTP11]).await;
    assert_eq!(tls::alpn(&stream).as_deref(), Some(H2));
    let mut http = tls::http2(stream).await;

    let request = Request::get(https(gateway.addr, "/public/a"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = http.send_request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let reply = Reply::read(response).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = upstream.only();
    assert_eq!(seen.target, "/public/a");
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-auth-user"), None);
    upstream.clear();

    let login = Request::post(https(gateway.addr, "/session"))
        .header("content-type", "application/json")
        .body(login_body())
        .unwrap();
    let reply = Reply::read(http.send_request(login).await.unwrap()).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let sid = session_cookie(&reply);

    // Without the cookie the route needs a session; with it in the second `cookie` field (the
    // first holding another cookie), the request is authenticated.
    let request = Request::get(https(gateway.addr, "/api/x"))
        .header("cookie", "theirs=1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = Reply::read(http.send_request(request).await.unwrap()).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert!(upstream.is_untouched());

    let mut request = Request::get(https(gateway.addr, "/api/x"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let headers = request.headers_mut();
    headers.append("cookie", "theirs=1".parse().unwrap());
    headers.append("cookie", format!("gw_sid={sid}").parse().unwrap());
    assert_eq!(headers.get_all("cookie").iter().count(), 2);
    let reply = Reply::read(http.send_request(request).await.unwrap()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = upstream.only();
    assert_eq!(seen.method, Method::GET.as_str());
    assert_eq!(seen.header("x-auth-user"), Some("user"));
    assert_eq!(
        seen.header("cookie"),
        Some("theirs=1"),
        "one Cookie field upstream, without ours"
    );
}

#[tokio::test]
async fn a_client_that_never_starts_the_handshake_is_closed_after_the_timeout() {
    let cert = TestCert::generate();
    let (upstream, gateway) = setup_tls(&cert, "tls_handshake_timeout: 1s\n").await;
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("the gateway closed the silent connection within 5 s");
    // A close (EOF) or a reset both end the connection; what matters is that nothing was sent.
    if let Ok(n) = read {
        assert_eq!(n, 0, "the gateway sent {:?}", &buf[..n]);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "closed after {:?}: before the 1 s timeout could fire",
        started.elapsed()
    );
    assert!(upstream.is_untouched());

    // The listener still serves others.
    let stream = cert.connect(gateway.addr, &[HTTP11]).await;
    let mut http = tls::http1(stream).await;
    let request = Request::get("/public/a")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = Reply::read(http.send_request(request).await.unwrap()).await;
    assert_eq!(reply.status, 200);
}

/// A TLS gateway whose listener verifies client certificates against `clients` with
/// `client_auth` (`None`: the key left out, so its default applies).
async fn setup_mtls(
    cert: &TestCert,
    clients: &TestCa,
    client_auth: Option<&str>,
) -> (Upstream, Gateway) {
    let ca_file = clients.write(&cert.dir, "clients.pem");
    let mut lines = format!("  client_ca_file: \"{}\"\n", ca_file.display());
    if let Some(mode) = client_auth {
        lines.push_str(&format!("  client_auth: {mode}\n"));
    }
    support::setup_with(Store::Memory, &cert.yaml_with(&lines)).await
}

/// `GET path` on an HTTP/1.1 connection, with `cookie` if given.
async fn get(
    http: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
    cookie: Option<&str>,
) -> Reply {
    let mut request = Request::get(path).header("host", "localhost");
    if let Some(sid) = cookie {
        request = request.header("cookie", format!("gw_sid={sid}"));
    }
    let request = request.body(Full::new(Bytes::new())).unwrap();
    Reply::read(http.send_request(request).await.unwrap()).await
}

#[tokio::test]
async fn required_client_auth_refuses_a_client_without_a_certificate() {
    let (cert, clients) = (TestCert::generate(), TestCa::generate("clients"));
    let (upstream, gateway) = setup_mtls(&cert, &clients, None).await;
    let refused = tls::assert_refused(cert.try_connect(gateway.addr, &[HTTP11], None).await).await;
    assert!(
        refused.to_ascii_lowercase().contains("certificate"),
        "refused for the missing certificate: {refused}"
    );
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn required_client_auth_refuses_a_certificate_from_another_ca() {
    let (cert, clients) = (TestCert::generate(), TestCa::generate("clients"));
    let (upstream, gateway) = setup_mtls(&cert, &clients, Some("required")).await;
    let stranger = TestCa::generate("strangers").issue("mallory", &[], Usage::Client);
    let refused = tls::assert_refused(
        cert.try_connect(gateway.addr, &[HTTP11], Some(&stranger))
            .await,
    )
    .await;
    assert!(
        refused.to_ascii_lowercase().contains("ca")
            || refused.to_ascii_lowercase().contains("certificate"),
        "{refused}"
    );
    // A self-signed certificate is no better.
    let self_signed = Leaf::self_signed();
    tls::assert_refused(
        cert.try_connect(gateway.addr, &[HTTP11], Some(&self_signed))
            .await,
    )
    .await;
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn a_valid_client_certificate_connects_but_requests_still_need_a_session() {
    let (cert, clients) = (TestCert::generate(), TestCa::generate("clients"));
    let (upstream, gateway) = setup_mtls(&cert, &clients, None).await;
    let sidecar = clients.issue("sidecar", &[], Usage::Client);
    for alpn in [HTTP11, H2] {
        let stream = cert
            .try_connect(gateway.addr, &[alpn], Some(&sidecar))
            .await
            .expect("a certificate from the client CA is accepted");
        assert_eq!(tls::alpn(&stream).as_deref(), Some(alpn));
    }
    let stream = cert
        .try_connect(gateway.addr, &[HTTP11], Some(&sidecar))
        .await
        .unwrap();
    let mut http = tls::http1(stream).await;

    // The certificate only lets the client connect; it is not an identity.
    let reply = get(&mut http, "/api/x", None).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert!(upstream.is_untouched());
    let reply = get(&mut http, "/public/a", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(upstream.only().header("x-auth-user"), None);
    upstream.clear();

    let login = Request::post("/session")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(login_body())
        .unwrap();
    let reply = Reply::read(http.send_request(login).await.unwrap()).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let sid = session_cookie(&reply);
    let reply = get(&mut http, "/api/x", Some(&sid)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(upstream.only().header("x-auth-user"), Some("user"));
}

#[tokio::test]
async fn optional_client_auth_admits_clients_without_a_certificate_but_not_bad_ones() {
    let (cert, clients) = (TestCert::generate(), TestCa::generate("clients"));
    let (upstream, gateway) = setup_mtls(&cert, &clients, Some("optional")).await;

    let stream = cert
        .try_connect(gateway.addr, &[HTTP11], None)
        .await
        .unwrap();
    let mut http = tls::http1(stream).await;
    let reply = get(&mut http, "/public/a", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let sidecar = clients.issue("sidecar", &[], Usage::Client);
    let stream = cert
        .try_connect(gateway.addr, &[HTTP11], Some(&sidecar))
        .await
        .unwrap();
    let mut http = tls::http1(stream).await;
    let reply = get(&mut http, "/public/b", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(upstream.requests().len(), 2);

    // A certificate that is presented must still be valid.
    let stranger = TestCa::generate("strangers").issue("mallory", &[], Usage::Client);
    tls::assert_refused(
        cert.try_connect(gateway.addr, &[HTTP11], Some(&stranger))
            .await,
    )
    .await;
}
