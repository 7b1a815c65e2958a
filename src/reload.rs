//! Config reload without a restart: on SIGHUP the config file is read again (`${file:...}`
//! sources and `users_file` included) and, if it is valid, its users, access rules and session
//! secrets replace the running ones ([`AppState::reload`]). A file that does not load changes
//! nothing and the log says why; every other key needs a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::error::ErrorChain;
use crate::state::AppState;

/// Load the config at `path` and apply what a reload may change.
pub fn reload_from(path: &Path, state: &AppState) -> Result<(), ConfigError> {
    let config = Config::load(path)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    state.reload(&config);
    Ok(())
}

/// Reload from `path` at every SIGHUP, for as long as the process runs. The handler is installed
/// before this returns, so a SIGHUP never takes its default action (ending the process).
pub fn on_hangup(path: PathBuf, state: Arc<AppState>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
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
        }
    });
    Ok(())
}
