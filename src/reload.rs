//! Config reload without a restart: on SIGHUP the config file is read again (`${file:...}`
//! sources and `users_file` included) and, if it is valid, its users, access rules and session
//! secrets replace the running ones ([`AppState::reload`]). A file that does not load changes
//! nothing and the log says why; every other key needs a restart. The same SIGHUP reloads the
//! listener's TLS files ([`ListenerTls::reload`]), which are also watched for changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::signal::unix::Signal;

use crate::config::{Config, ConfigError};
use crate::error::ErrorChain;
use crate::state::AppState;
use crate::tls::ListenerTls;

/// Load the config at `path` and apply what a reload may change.
pub fn reload_from(path: &Path, state: &AppState) -> Result<(), ConfigError> {
    let config = Config::load(path)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    state.reload(&config);
    Ok(())
}

/// At every SIGHUP from `hangups`, for as long as the process runs: reload the config from
/// `path`, then the listener's TLS certificate, key and client CA (`tls`), each independently (a
/// bad config file does not keep new certificates out, nor the reverse). `hangups` is the
/// caller's, installed before the listeners are bound, so a SIGHUP never takes its default action
/// (ending the process).
pub fn on_hangup(
    mut hangups: Signal,
    path: PathBuf,
    state: Arc<AppState>,
    tls: Option<Arc<ListenerTls>>,
) {
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match reload_from(&path, &state) {
                Ok(()) => tracing::info!(
                    "config reloaded: users, access rules and session secrets; other keys \
                     take effect at the next restart"
                ),
                Err(err) => tracing::error!(
                    error = %ErrorChain(&err),
                    "config reload failed; the running config is kept"
                ),
            }
            if let Some(tls) = &tls {
                tls.reload().await;
            }
        }
    });
}
