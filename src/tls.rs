//! rustls for both sides: the listener's certificate, reloaded without a restart, with optional
//! client certificates (mTLS); and the roots the client for an `https://` upstream trusts.
//!
//! # Reloading the listener's certificate
//!
//! [`ListenerTls`] keeps the current rustls `ServerConfig` behind an [`ArcSwap`]. Each handshake
//! takes the config that is current when it starts, so a reload changes what new handshakes see
//! and nothing else: open connections keep the certificate they were made with.
//!
//! A reload reads the certificate, key and client CA files once, fingerprints their contents
//! (SHA-256, not mtimes: a Kubernetes Secret update swaps a symlink, and a copy may keep the old
//! mtime) and builds a new config from the same bytes. Only a config that builds replaces the old
//! one; a broken pair (unreadable, bad PEM, a key that does not match the certificate, an
//! unusable CA bundle) leaves the old one serving and is logged with the reason, never with key
//! material. The watcher polls every `tls.reload_interval` and reloads when the fingerprint
//! changes; SIGHUP reloads at once, changed or not.
//!
//! The whole `ServerConfig` is swapped, rather than only the certificate behind a
//! `ResolvesServerCert`, because the client CA is reloaded too and lives in the config's
//! verifier: one snapshot per handshake keeps certificate and CA consistent, and the resumption
//! cache goes with the old config, so a client whose CA was removed cannot resume its way past
//! the reload.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

use crate::config::{ClientAuthMode, TlsConfig, UpstreamTrust};
use crate::error::ErrorChain;

/// ALPN protocol id of HTTP/1.1, the only protocol spoken to the upstream.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} from {path}")]
    Read {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file could not be parsed.
    #[error("cannot parse {what} in {path}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: String,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A PEM file holds no block of the expected kind.
    #[error("no {what} in {path}")]
    Missing {
        /// What was looked for.
        what: &'static str,
        /// Its path.
        path: String,
    },
    /// A client CA certificate is unusable as a trust anchor.
    #[error("unusable client CA certificate in {path}")]
    ClientCa {
        /// The bundle.
        path: String,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// The client certificate verifier could not be built.
    #[error("cannot verify client certificates")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    /// rustls refused the certificate/key pair (for example a key that does not match).
    #[error("invalid certificate or key")]
    Rustls(#[from] rustls::Error),
}

/// The listener's rustls config, swapped when its files change.
pub struct ListenerTls {
    files: TlsConfig,
    current: ArcSwap<ServerConfig>,
    /// Fingerprint of the files behind `current` or of the last rejected attempt, so a broken
    /// pair is reported once, not at every poll.
    seen: Mutex<Seen>,
    loaded: AtomicU64,
    rejected: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Files([u8; 32]),
    Unreadable,
}

/// The certificate, key and client CA files as read, one snapshot.
struct Material {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerTls")
            .field("files", &self.files)
            .field("loaded", &self.loaded())
            .field("rejected", &self.rejected())
            .finish_non_exhaustive()
    }
}

impl ListenerTls {
    /// Read the files and build the first config; any problem is an error (the listener does
    /// not start with a broken certificate).
    pub fn load(files: &TlsConfig) -> Result<Self, TlsError> {
        let material = Material::read(files)?;
        let config = server_config(files, &material)?;
        Ok(Self {
            files: files.clone(),
            current: ArcSwap::from(config),
            seen: Mutex::new(Seen::Files(material.fingerprint())),
            loaded: AtomicU64::new(1),
            rejected: AtomicU64::new(0),
        })
    }

    /// An acceptor for one handshake, with the config current now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// How many configs have been loaded (1 at start, +1 per successful reload).
    pub fn loaded(&self) -> u64 {
        self.loaded.load(Ordering::Relaxed)
    }

    /// How many reloads were rejected (the previous config kept).
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Reload now, whether or not the files changed (SIGHUP). Blocking file reads run off the
    /// async workers.
    pub async fn reload(self: &Arc<Self>) {
        let this = Arc::clone(self);
        let _ = tokio::task::spawn_blocking(move || this.reload_blocking(Trigger::Signal)).await;
    }

    /// Poll the files every `interval` and reload when their contents change; runs until
    /// dropped (aborted).
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let this = Arc::clone(&self);
            let _ =
                tokio::task::spawn_blocking(move || this.reload_blocking(Trigger::Change)).await;
        }
    }

    fn reload_blocking(&self, trigger: Trigger) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let material = match Material::read(&self.files) {
            Ok(material) => material,
            Err(err) => {
                // A swap in progress can leave a file missing for a moment: say so once.
                if trigger == Trigger::Signal || *seen != Seen::Unreadable {
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        trigger = trigger.as_str(),
                        error = %ErrorChain(&err),
                        "TLS reload failed; the previous certificate stays in use"
                    );
                }
                *seen = Seen::Unreadable;
                return;
            }
        };
        let fingerprint = Seen::Files(material.fingerprint());
        if trigger == Trigger::Change && *seen == fingerprint {
            return;
        }
        *seen = fingerprint;
        match server_config(&self.files, &material) {
            Ok(config) => {
                self.current.store(config);
                self.loaded.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    trigger = trigger.as_str(),
                    cert_file = %self.files.cert_file.display(),
                    "TLS certificate reloaded; new handshakes use it"
                );
            }
            Err(err) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    trigger = trigger.as_str(),
                    error = %ErrorChain(&err),
                    "TLS reload rejected; the previous certificate stays in use"
                );
            }
        }
    }
}

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The watcher saw new contents.
    Change,
    /// SIGHUP.
    Signal,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Change => "files changed",
            Trigger::Signal => "SIGHUP",
        }
    }
}

impl Material {
    fn read(files: &TlsConfig) -> Result<Self, TlsError> {
        Ok(Self {
            cert: read("certificates", &files.cert_file)?,
            key: read("private key", &files.key_file)?,
            client_ca: files
                .client_auth
                .as_ref()
                .map(|auth| read("client CA certificates", &auth.ca_file))
                .transpose()?,
        })
    }

    fn fingerprint(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        for part in [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()] {
            match part {
                Some(bytes) => {
                    hash.update((bytes.len() as u64).to_be_bytes());
                    hash.update(bytes);
                }
                None => hash.update(u64::MAX.to_be_bytes()),
            }
        }
        hash.finalize().into()
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

/// A rustls server config offering HTTP/2 and HTTP/1.1 by ALPN, verifying client certificates
/// when `tls.client_ca_file` is set.
fn server_config(files: &TlsConfig, material: &Material) -> Result<Arc<ServerConfig>, TlsError> {
    let shown = |path: &Path| path.display().to_string();
    let certs = CertificateDer::pem_slice_iter(&material.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: "certificates",
            path: shown(&files.cert_file),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Missing {
            what: "PEM certificate",
            path: shown(&files.cert_file),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&material.key).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::Missing {
            what: "PEM private key",
            path: shown(&files.key_file),
        },
        source => TlsError::Pem {
            what: "private key",
            path: shown(&files.key_file),
            source,
        },
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match &files.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            // Read together with the pair; were it absent, the empty bundle fails closed.
            let pem = material.client_ca.as_deref().unwrap_or_default();
            let roots = client_roots(&auth.ca_file, pem)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match auth.mode {
                ClientAuthMode::Required => verifier,
                ClientAuthMode::Optional => verifier.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(verifier.build()?)
        }
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

fn client_roots(path: &Path, pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let shown = path.display().to_string();
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: "client CA certificates",
            path: shown.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Missing {
            what: "PEM certificate",
            path: shown,
        });
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|source| TlsError::ClientCa {
            path: shown.clone(),
            source,
        })?;
    }
    Ok(roots)
}

/// The rustls client config for an `https://` upstream: the configured roots, HTTP/1.1 by ALPN.
pub fn upstream_client_config(trust: &UpstreamTrust) -> ClientConfig {
    let roots = match trust {
        UpstreamTrust::WebpkiRoots => Arc::new(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        }),
        UpstreamTrust::CaFile { roots, .. } => Arc::clone(roots),
    };
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports rustls's default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let rcgen::CertifiedKey { cert, key_pair } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (cert_file, key_file) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key_pair.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    fn files(cert_file: &Path, key_file: &Path) -> TlsConfig {
        TlsConfig {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            client_auth: None,
            reload_interval: None,
        }
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_a, _) = pair(dir.path(), "a");
        let (_, key_b) = pair(dir.path(), "b");
        let err = ListenerTls::load(&files(&cert_a, &key_b)).unwrap_err();
        assert!(matches!(err, TlsError::Rustls(_)), "{err:?}");
    }

    #[test]
    fn empty_or_garbage_files_name_the_file_and_never_quote_it() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(dir.path(), "a");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "SECRET-LOOKING-TEXT\n").unwrap();
        for (cert_file, key_file) in [(&junk, &key), (&cert, &junk)] {
            let err = ListenerTls::load(&files(cert_file, key_file)).unwrap_err();
            let text = ErrorChain(&err).to_string();
            assert!(text.contains("junk.pem"), "{text}");
            assert!(!text.contains("SECRET-LOOKING-TEXT"), "{text}");
        }
        let missing = dir.path().join("missing.pem");
        let err = ListenerTls::load(&files(&missing, &key)).unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
    }

    #[test]
    fn changed_contents_reload_and_a_broken_pair_keeps_the_old_config() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(dir.path(), "a");
        let tls = ListenerTls::load(&files(&cert, &key)).unwrap();
        let first = tls.current.load_full();

        tls.reload_blocking(Trigger::Change);
        assert_eq!((tls.loaded(), tls.rejected()), (1, 0), "unchanged files");
        assert!(Arc::ptr_eq(&first, &tls.current.load_full()));

        let (cert_b, key_b) = pair(dir.path(), "b");
        std::fs::copy(&cert_b, &cert).unwrap();
        tls.reload_blocking(Trigger::Change);
        assert_eq!((tls.loaded(), tls.rejected()), (1, 1), "new cert, old key");
        assert!(Arc::ptr_eq(&first, &tls.current.load_full()));
        tls.reload_blocking(Trigger::Change);
        assert_eq!(tls.rejected(), 1, "the same broken pair is reported once");

        std::fs::copy(&key_b, &key).unwrap();
        tls.reload_blocking(Trigger::Change);
        assert_eq!(
            (tls.loaded(), tls.rejected()),
            (2, 1),
            "the matching key arrived"
        );
        assert!(!Arc::ptr_eq(&first, &tls.current.load_full()));

        tls.reload_blocking(Trigger::Signal);
        assert_eq!(tls.loaded(), 3, "SIGHUP reloads unchanged files too");
    }

    #[test]
    fn upstream_client_speaks_http11_only() {
        let config = upstream_client_config(&UpstreamTrust::WebpkiRoots);
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
