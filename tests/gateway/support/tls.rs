//! TLS for tests: a self-signed certificate for `localhost` / `127.0.0.1` written as PEM files
//! for the gateway's `tls:` block, and rustls client connections that trust only it, with
//! HTTP/1.1 or HTTP/2 on top (chosen by ALPN).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// ALPN protocol ids.
pub const H2: &[u8] = b"h2";
pub const HTTP11: &[u8] = b"http/1.1";

/// A self-signed certificate and its key, as PEM files in a temp dir.
pub struct TestCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    der: CertificateDer<'static>,
    _dir: tempfile::TempDir,
}

impl TestCert {
    /// Generate a fresh certificate for `localhost` and `127.0.0.1`.
    pub fn generate() -> TestCert {
        let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("generate a self-signed certificate");
        let dir = tempfile::tempdir().unwrap();
        let cert_file = dir.path().join("tls.crt");
        let key_file = dir.path().join("tls.key");
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key_pair.serialize_pem()).unwrap();
        TestCert {
            cert_file,
            key_file,
            der: cert.der().clone(),
            _dir: dir,
        }
    }

    /// The top-level `tls:` block naming these files.
    pub fn yaml(&self) -> String {
        format!(
            "tls:\n  cert_file: \"{}\"\n  key_file: \"{}\"\n",
            self.cert_file.display(),
            self.key_file.display()
        )
    }

    /// A TLS connection to `addr` (SNI `localhost`) offering `alpn`, trusting only this
    /// certificate.
    pub async fn connect(&self, addr: SocketAddr, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).expect("a valid certificate");
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let connector = TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(addr)
            .await
            .expect("connect to the gateway");
        let name = ServerName::try_from("localhost").unwrap();
        tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
            .await
            .expect("TLS handshake within 10 s")
            .expect("TLS handshake")
    }
}

/// The ALPN protocol the server picked.
pub fn alpn(stream: &TlsStream<TcpStream>) -> Option<Vec<u8>> {
    stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

/// HTTP/1.1 on an established connection (the connection task runs in the background).
pub async fn http1(stream: TlsStream<TcpStream>) -> http1::SendRequest<Full<Bytes>> {
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    sender
}

/// HTTP/2 on an established connection (the connection task runs in the background).
pub async fn http2(stream: TlsStream<TcpStream>) -> http2::SendRequest<Full<Bytes>> {
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    sender
}
