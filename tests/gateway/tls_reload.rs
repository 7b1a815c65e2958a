//! Listener certificates reloaded without a restart: files renamed over, a Kubernetes Secret
//! volume's symlink swap, a broken replacement (kept out), the client CA file, and SIGHUP on the
//! real binary. New handshakes get the new certificate; open connections keep working.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::binary::Binary;
use crate::support::client::Reply;
use crate::support::tls::{self, SecretVolume, Usage, HTTP11};
use crate::support::{self, ConfigOptions, Gateway, Store, TestCa, TestCert, Upstream};

/// An upstream and a TLS gateway (fixture R, memory store) serving `cert`, with `tls_lines`
/// inside its `tls:` block.
async fn setup_tls(cert: &TestCert, tls_lines: &str) -> (Upstream, Gateway) {
    support::setup_with(Store::Memory, &cert.yaml_with(tls_lines)).await
}

async fn get_public(
    http: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
) -> u16 {
    let request = Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    Reply::read(http.send_request(request).await.unwrap())
        .await
        .status
}

/// Wait (up to 5 s) until `count()` reaches `at_least`.
async fn wait_for(what: &str, at_least: u64, count: impl Fn() -> u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while count() < at_least {
        assert!(Instant::now() < deadline, "{what} not seen within 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn replaced_certificate_files_serve_new_handshakes_while_open_connections_keep_working() {
    let ca = TestCa::generate("test ca");
    let cert = TestCert::issued_by(&ca, "first");
    let (upstream, gateway) = setup_tls(&cert, "").await;

    let before = cert.connect(gateway.addr, &[HTTP11]).await;
    assert_eq!(tls::peer_certificate(&before), cert.leaf().der);
    let mut open = tls::http1(before).await;
    assert_eq!(get_public(&mut open, "/public/before").await, 200);

    let second = ca.issue("second", tls::SERVER_NAMES, Usage::Server);
    cert.install(&second);
    cert.wait_served(gateway.addr, &second).await;

    // The keep-alive connection from before the reload still serves requests.
    assert_eq!(get_public(&mut open, "/public/after").await, 200);
    let targets: Vec<String> = upstream.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/public/before", "/public/after"]);
    // A new connection gets the new certificate and works too.
    let mut http = tls::http1(cert.connect(gateway.addr, &[HTTP11]).await).await;
    assert_eq!(get_public(&mut http, "/public/new").await, 200);
}

#[tokio::test]
async fn a_kubernetes_secret_update_swapping_the_data_symlink_is_picked_up() {
    let ca = TestCa::generate("test ca");
    let first = ca.issue("first", tls::SERVER_NAMES, Usage::Server);
    let mut volume = SecretVolume::new(&first);
    // A TestCert only for its client side: it trusts `ca`; the gateway reads the volume.
    let client = TestCert::issued_by(&ca, "unused");
    let tls_yaml = format!(
        "tls:\n  cert_file: \"{}\"\n  key_file: \"{}\"\n",
        volume.cert_file().display(),
        volume.key_file().display()
    );
    let (_upstream, gateway) = support::setup_with(Store::Memory, &tls_yaml).await;
    assert_eq!(client.served(gateway.addr).await, first.der);

    let second = ca.issue("second", tls::SERVER_NAMES, Usage::Server);
    volume.update(&second);
    client.wait_served(gateway.addr, &second).await;
    assert_eq!(
        gateway.tls.as_ref().unwrap().rejected(),
        0,
        "both files change at once"
    );
}

#[tokio::test]
async fn a_broken_replacement_keeps_the_old_certificate() {
    let ca = TestCa::generate("test ca");
    let cert = TestCert::issued_by(&ca, "first");
    let (_upstream, gateway) = setup_tls(&cert, "").await;
    let listener = gateway.tls.clone().unwrap();
    let second = ca.issue("second", tls::SERVER_NAMES, Usage::Server);

    // Not PEM at all; then a valid certificate with the old key (a mismatch); then no file.
    let broken: [(&std::path::Path, Option<&str>); 3] = [
        (&cert.cert_file, Some("this is not a certificate\n")),
        (&cert.cert_file, Some(&second.cert_pem)),
        (&cert.key_file, None),
    ];
    for (i, (path, contents)) in broken.into_iter().enumerate() {
        match contents {
            Some(contents) => tls::replace_file(path, contents.as_bytes()),
            None => std::fs::remove_file(path).unwrap(),
        }
        wait_for("the rejected reload", i as u64 + 1, || listener.rejected()).await;
        assert_eq!(cert.served(gateway.addr).await, cert.leaf().der, "step {i}");
    }
    assert_eq!(listener.loaded(), 1);

    // The matching key arrives: the pair is complete and replaces the old one.
    tls::replace_file(&cert.key_file, second.key_pem.as_bytes());
    cert.wait_served(gateway.addr, &second).await;
    assert_eq!(listener.loaded(), 2);
}

#[tokio::test]
async fn a_replaced_client_ca_file_changes_which_client_certificates_connect() {
    let (cert, old_ca, new_ca) = (
        TestCert::generate(),
        TestCa::generate("old clients"),
        TestCa::generate("new clients"),
    );
    let ca_file = old_ca.write(&cert.dir, "clients.pem");
    let lines = format!("  client_ca_file: \"{}\"\n", ca_file.display());
    let (_upstream, gateway) = setup_tls(&cert, &lines).await;
    let (old_client, new_client) = (
        old_ca.issue("old", &[], Usage::Client),
        new_ca.issue("new", &[], Usage::Client),
    );
    let connect = |client| cert.try_connect(gateway.addr, &[HTTP11], Some(client));
    let mut kept = tls::http1(connect(&old_client).await.unwrap()).await;
    tls::assert_refused(connect(&new_client).await).await;

    tls::replace_file(&ca_file, new_ca.pem().as_bytes());
    wait_for("the reload", 2, || gateway.tls.as_ref().unwrap().loaded()).await;
    let mut http = tls::http1(connect(&new_client).await.unwrap()).await;
    assert_eq!(get_public(&mut http, "/public/a").await, 200);
    tls::assert_refused(connect(&old_client).await).await;
    // The connection made under the old CA is not cut.
    assert_eq!(get_public(&mut kept, "/public/b").await, 200);
}

/// The real binary on `addr` with TLS from `cert`, polling off (`reload_interval: 0s`).
async fn binary_with_tls(cert: &TestCert) -> (Upstream, Binary, SocketAddr) {
    let upstream = Upstream::start().await;
    let addr: SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    let tls_yaml = cert.yaml_with("  reload_interval: 0s\n");
    let yaml = support::config_yaml_with(
        upstream.addr,
        Store::Memory,
        &ConfigOptions {
            listen: Some(addr),
            admin_listen: Some(admin),
            extra: &tls_yaml,
            ..ConfigOptions::default()
        },
    );
    let mut binary = Binary::run(&yaml, &[("RUST_LOG", "info")]);
    binary.wait_listening(addr).await;
    (upstream, binary, addr)
}

/// Wait (up to 5 s) until the binary's log has `line` `count` times.
async fn wait_logged(binary: &Binary, line: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while binary.stderr().matches(line).count() < count {
        assert!(
            Instant::now() < deadline,
            "`{line}` not logged {count} times within 5 s:\n{}",
            binary.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sighup_makes_the_real_binary_load_renamed_certificate_files() {
    let ca = TestCa::generate("test ca");
    let cert = TestCert::issued_by(&ca, "first");
    let (_upstream, binary, addr) = binary_with_tls(&cert).await;
    let mut open = tls::http1(cert.connect(addr, &[HTTP11]).await).await;
    assert_eq!(cert.served(addr).await, cert.leaf().der);

    // A broken pair (new certificate, garbage key): SIGHUP rejects it and says why.
    let second = ca.issue("second", tls::SERVER_NAMES, Usage::Server);
    let garbage_key = "-----BEGIN PRIVATE KEY-----\nTk9UQUtFWQ==\n-----END PRIVATE KEY-----\n";
    tls::replace_file(&cert.cert_file, second.cert_pem.as_bytes());
    tls::replace_file(&cert.key_file, garbage_key.as_bytes());
    binary.signal("-HUP");
    wait_logged(&binary, "TLS reload rejected", 1).await;
    assert_eq!(cert.served(addr).await, cert.leaf().der);

    // The good pair: with polling off, only the signal loads it.
    cert.install(&second);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(cert.served(addr).await, cert.leaf().der, "no poll with 0s");
    binary.signal("-HUP");
    cert.wait_served(addr, &second).await;
    wait_logged(&binary, "TLS certificate reloaded", 1).await;
    assert_eq!(get_public(&mut open, "/public/a").await, 200);

    let log = binary.stderr();
    for secret in ["PRIVATE KEY", "Tk9UQUtFWQ", &second.key_pem[40..80]] {
        assert!(
            !log.contains(secret),
            "the log quotes key material `{secret}`:\n{log}"
        );
    }
}
