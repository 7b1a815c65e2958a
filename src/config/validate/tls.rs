//! Validation of the TLS settings: the listener's `tls` block (certificate files, client
//! certificates, reload interval) and the `https://` upstream's trust (`upstream.ca_file`,
//! `upstream.tls_server_name`).
//!
//! The listener's files are only checked to exist here: they are read when the listener starts
//! and again whenever they change, so a parse here would prove nothing about the next reload.
//! `upstream.ca_file` is read once, so it is parsed here and `--check-config` catches a bad one.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use super::{duration, existing_file, invalid};
use crate::config::file::{RawTls, RawUpstream};
use crate::config::{
    ClientAuth, ClientAuthMode, ConfigError, TlsConfig, UpstreamTrust, DEFAULT_TLS_RELOAD_INTERVAL,
};

/// `tls`.
pub(super) fn listener(raw: &RawTls, base_dir: &Path) -> Result<TlsConfig, ConfigError> {
    let client_auth = match (&raw.client_ca_file, &raw.client_auth) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(invalid(
                "tls.client_auth",
                "needs tls.client_ca_file (the CAs client certificates must chain to)",
            ))
        }
        (Some(ca_file), mode) => Some(ClientAuth {
            ca_file: existing_file("tls.client_ca_file", base_dir, ca_file)?,
            mode: match mode.as_deref() {
                None | Some("required") => ClientAuthMode::Required,
                Some("optional") => ClientAuthMode::Optional,
                Some(other) => {
                    return Err(invalid(
                        "tls.client_auth",
                        format!("must be required or optional, not `{other}`"),
                    ))
                }
            },
        }),
    };
    let reload_interval = match &raw.reload_interval {
        None => Some(DEFAULT_TLS_RELOAD_INTERVAL),
        Some(text) => Some(duration("tls.reload_interval", text)?).filter(|d| !d.is_zero()),
    };
    Ok(TlsConfig {
        cert_file: existing_file("tls.cert_file", base_dir, &raw.cert_file)?,
        key_file: existing_file("tls.key_file", base_dir, &raw.key_file)?,
        client_auth,
        reload_interval,
    })
}

/// `upstream.ca_file` and `upstream.tls_server_name`, which only an `https://` upstream may set.
pub(super) fn upstream(
    raw: &RawUpstream,
    https: bool,
    base_dir: &Path,
) -> Result<(UpstreamTrust, Option<ServerName<'static>>), ConfigError> {
    for (key, value) in [
        ("upstream.ca_file", &raw.ca_file),
        ("upstream.tls_server_name", &raw.tls_server_name),
    ] {
        if value.is_some() && !https {
            return Err(invalid(key, "only applies to an https:// upstream.url"));
        }
    }
    let trust = match &raw.ca_file {
        None => UpstreamTrust::WebpkiRoots,
        Some(name) => {
            let path = existing_file("upstream.ca_file", base_dir, name)?;
            let roots = ca_bundle("upstream.ca_file", &path)?;
            UpstreamTrust::CaFile {
                path,
                roots: Arc::new(roots),
            }
        }
    };
    let server_name = match &raw.tls_server_name {
        None => None,
        Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
            invalid(
                "upstream.tls_server_name",
                format!("`{name}` is not a DNS name or an IP address"),
            )
        })?),
    };
    Ok((trust, server_name))
}

/// Every certificate of the PEM bundle at `path` as a trust anchor; an unreadable file, a bad
/// PEM block, a certificate webpki cannot use as an anchor or a bundle without any certificate
/// is an error at `key`.
fn ca_bundle(key: &str, path: &Path) -> Result<RootCertStore, ConfigError> {
    let shown = path.display();
    let pem =
        std::fs::read(path).map_err(|e| invalid(key, format!("cannot read `{shown}`: {e}")))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, format!("`{shown}` is not a PEM bundle: {e}")))?;
    if certificates.is_empty() {
        return Err(invalid(
            key,
            format!("`{shown}` holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    let mut roots = RootCertStore::empty();
    for (i, certificate) in certificates.into_iter().enumerate() {
        roots.add(certificate).map_err(|e| {
            invalid(
                key,
                format!(
                    "certificate {} of `{shown}` is unusable as a CA: {e}",
                    i + 1
                ),
            )
        })?;
    }
    Ok(roots)
}
