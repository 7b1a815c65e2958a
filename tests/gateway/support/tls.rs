//! TLS for tests: certificates made with rcgen (self-signed, or issued by a test CA for servers
//! and clients), written as PEM files for the gateway's `tls:` block and replaced the way
//! operators and Kubernetes do; and rustls client connections that trust only the test roots,
//! optionally presenting a client certificate, with HTTP/1.1 or HTTP/2 on top (by ALPN).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// ALPN protocol ids.
pub const H2: &[u8] = b"h2";
pub const HTTP11: &[u8] = b"http/1.1";

/// The names every test server certificate covers.
pub const SERVER_NAMES: &[&str] = &["localhost", "127.0.0.1"];

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A test certificate authority.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and its key, as PEM, plus the certificate's DER to compare with what a peer
/// presented.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

/// What a leaf certificate is for.
#[derive(Clone, Copy)]
pub enum Usage {
    Server,
    Client,
}

impl TestCa {
    /// A fresh CA named `name`.
    pub fn generate(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// Write the CA certificate as `name` in `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.pem()).unwrap();
        path
    }

    /// A certificate for `names` with common name `cn`, signed by this CA.
    pub fn issue(&self, cn: &str, names: &[&str], usage: Usage) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

impl Leaf {
    /// A self-signed server certificate for [`SERVER_NAMES`].
    pub fn self_signed() -> Leaf {
        let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(
            SERVER_NAMES
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>(),
        )
        .expect("generate a self-signed certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key_pair.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// A rustls server config serving this certificate (for a TLS upstream), HTTP/1.1 by ALPN.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let certs = vec![self.der.clone()];
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = vec![HTTP11.to_vec()];
        Arc::new(config)
    }
}

/// The gateway's certificate as PEM files in a temp dir, and the roots a client trusts for it.
pub struct TestCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub dir: PathBuf,
    served: Leaf,
    roots: Vec<CertificateDer<'static>>,
    _dir: tempfile::TempDir,
}

impl TestCert {
    /// A fresh self-signed certificate for `localhost` and `127.0.0.1`.
    pub fn generate() -> TestCert {
        let leaf = Leaf::self_signed();
        let roots = vec![leaf.der.clone()];
        Self::files(leaf, roots)
    }

    /// A server certificate for `localhost` and `127.0.0.1` issued by `ca`, which clients trust
    /// (so that a replacement from the same CA is trusted too).
    pub fn issued_by(ca: &TestCa, cn: &str) -> TestCert {
        Self::files(ca.issue(cn, SERVER_NAMES, Usage::Server), vec![ca.der()])
    }

    fn files(leaf: Leaf, roots: Vec<CertificateDer<'static>>) -> TestCert {
        let dir = tempfile::tempdir().unwrap();
        let cert_file = dir.path().join("tls.crt");
        let key_file = dir.path().join("tls.key");
        std::fs::write(&cert_file, &leaf.cert_pem).unwrap();
        std::fs::write(&key_file, &leaf.key_pem).unwrap();
        TestCert {
            cert_file,
            key_file,
            dir: dir.path().to_owned(),
            served: leaf,
            roots,
            _dir: dir,
        }
    }

    /// The certificate first written to the files.
    pub fn leaf(&self) -> &Leaf {
        &self.served
    }

    /// The top-level `tls:` block naming these files, with `extra` lines (indented by two
    /// spaces) inside it.
    pub fn yaml_with(&self, extra: &str) -> String {
        format!(
            "tls:\n  cert_file: \"{}\"\n  key_file: \"{}\"\n{extra}",
            self.cert_file.display(),
            self.key_file.display()
        )
    }

    /// The top-level `tls:` block naming these files.
    pub fn yaml(&self) -> String {
        self.yaml_with("")
    }

    /// Replace the files with `leaf`, as an operator would: each written next to its target
    /// and renamed over it (the certificate first, so for a moment the key does not match).
    pub fn install(&self, leaf: &Leaf) {
        replace_file(&self.cert_file, leaf.cert_pem.as_bytes());
        replace_file(&self.key_file, leaf.key_pem.as_bytes());
    }

    /// A TLS connection to `addr` (SNI `localhost`) offering `alpn`, trusting only this
    /// certificate's roots; panics unless the handshake succeeds.
    pub async fn connect(&self, addr: SocketAddr, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        self.try_connect(addr, alpn, None)
            .await
            .expect("TLS handshake")
    }

    /// [`Self::connect`] presenting `client` as the client certificate, if any; the handshake's
    /// error is returned.
    pub async fn try_connect(
        &self,
        addr: SocketAddr,
        alpn: &[&[u8]],
        client: Option<&Leaf>,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        connect_trusting(&self.roots, addr, "localhost", alpn, client).await
    }

    /// The certificate a new handshake is served.
    pub async fn served(&self, addr: SocketAddr) -> CertificateDer<'static> {
        peer_certificate(&self.connect(addr, &[HTTP11]).await)
    }

    /// Wait (up to 5 s) until a new handshake is served `leaf`.
    pub async fn wait_served(&self, addr: SocketAddr, leaf: &Leaf) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.served(addr).await != leaf.der {
            assert!(
                Instant::now() < deadline,
                "the new certificate is not served 5 s after the files changed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Write `contents` to a temporary file next to `path` and rename it over `path`.
pub fn replace_file(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A TLS connection to `addr` with SNI `name`, trusting `roots`.
pub async fn connect_trusting(
    roots: &[CertificateDer<'static>],
    addr: SocketAddr,
    name: &str,
    alpn: &[&[u8]],
    client: Option<&Leaf>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("a valid root certificate");
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(store);
    let mut config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.der.clone()],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .expect("a valid client certificate"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr)
        .await
        .expect("connect to the gateway");
    let name = ServerName::try_from(name.to_owned()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .expect("TLS handshake within 10 s")
}

/// The certificate the server presented.
pub fn peer_certificate(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .expect("the server presented a certificate")
        .clone()
        .into_owned()
}

/// Assert that the server refused the connection: the handshake fails, or (TLS 1.3, where the
/// client finishes first) the server's alert arrives as the first read. Returns the error text.
pub async fn assert_refused(result: std::io::Result<TlsStream<TcpStream>>) -> String {
    let mut stream = match result {
        Err(err) => return err.to_string(),
        Ok(stream) => stream,
    };
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
        Ok(Err(err)) => err.to_string(),
        Ok(Ok(0)) => "closed".to_owned(),
        Ok(Ok(n)) => panic!("the server sent data instead of refusing: {:?}", &buf[..n]),
        Err(_) => panic!("the server accepted the connection (still open after 5 s)"),
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

/// A directory laid out as the kubelet writes a Secret volume: `tls.crt` and `tls.key` are
/// symlinks into `..data`, itself a symlink to a timestamped directory; an update writes a new
/// directory and renames a new `..data` link over the old one, so both files change at once
/// while their own symlinks (and mtimes) stay as they were.
pub struct SecretVolume {
    pub dir: PathBuf,
    generation: u32,
    _dir: tempfile::TempDir,
}

impl SecretVolume {
    pub fn new(leaf: &Leaf) -> SecretVolume {
        let dir = tempfile::tempdir().unwrap();
        let mut volume = SecretVolume {
            dir: dir.path().to_owned(),
            generation: 0,
            _dir: dir,
        };
        volume.update(leaf);
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), volume.dir.join(name)).unwrap();
        }
        volume
    }

    pub fn cert_file(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.join("tls.key")
    }

    /// Swap in `leaf` as the kubelet does.
    pub fn update(&mut self, leaf: &Leaf) {
        self.generation += 1;
        let data = format!(
            "..2024_01_01_00_00_{:02}.{}",
            self.generation, self.generation
        );
        let data_dir = self.dir.join(&data);
        std::fs::create_dir(&data_dir).unwrap();
        std::fs::write(data_dir.join("tls.crt"), &leaf.cert_pem).unwrap();
        std::fs::write(data_dir.join("tls.key"), &leaf.key_pem).unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&data, &tmp).unwrap();
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}
