//! Config reload without a restart: on SIGHUP, and whenever `users_file` changes, the config file
//! is read again (`${file:...}` sources and `users_file` included) and, if it is valid, its users,
//! access rules and session secrets replace the running ones ([`AppState::reload`]). A file that
//! does not load changes nothing and the log says why; every other key needs a restart. The same
//! SIGHUP reloads the listener's TLS files ([`ListenerTls::reload`]), which are also watched for
//! changes.
//!
//! `users_file` is polled ([`USERS_FILE_POLL`]): a change (modification time, length or content)
//! seen on two polls in a row is reloaded, so a file caught half-written is not, and a change
//! takes effect within two polls. Polling needs no platform file-event API and works the same
//! on a Kubernetes Secret volume, whose files are replaced through a symlink swap.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use tokio::signal::unix::Signal;

use crate::config::{Config, ConfigError};
use crate::error::ErrorChain;
use crate::state::AppState;
use crate::tls::ListenerTls;

/// How often `users_file` is looked at.
pub const USERS_FILE_POLL: Duration = Duration::from_millis(500);

/// What a poll saw of the file: `None` when it cannot be read.
type Fingerprint = Option<(Option<SystemTime>, u64, [u8; 32])>;

/// Load the config at `path` and apply what a reload may change.
pub fn reload_from(path: &Path, state: &AppState) -> Result<(), ConfigError> {
    let config = Config::load(path)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    state.reload(&config);
    Ok(())
}

/// Reload from `path` (off the async workers: it reads files and hashes a dummy password) and
/// log the outcome; `trigger` says why.
async fn reload_logged(path: &Path, state: &Arc<AppState>, trigger: &'static str) {
    let (path, state) = (path.to_owned(), Arc::clone(state));
    let result = tokio::task::spawn_blocking(move || reload_from(&path, &state)).await;
    match result {
        Ok(Ok(())) => tracing::info!(
            trigger,
            "config reloaded: users, access rules and session secrets; other keys take effect \
             at the next restart"
        ),
        Ok(Err(err)) => tracing::error!(
            trigger,
            error = %ErrorChain(&err),
            "config reload failed; the running config is kept"
        ),
        Err(_) => tracing::error!(trigger, "config reload failed; the running config is kept"),
    }
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
            reload_logged(&path, &state, "SIGHUP").await;
            if let Some(tls) = &tls {
                tls.reload().await;
            }
        }
    });
}

/// Reload from `path` whenever the running `users_file` changes, for as long as the process
/// runs. The file watched is the one the running config names, so a reload that names another
/// file moves the watch there.
pub fn watch_users_file(path: PathBuf, state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut watched = state.policy().users_file.clone();
        let mut applied = match &watched {
            Some(file) => fingerprint(file).await,
            None => None,
        };
        let mut last_seen = applied;
        let mut tick = tokio::time::interval(USERS_FILE_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let current = state.policy().users_file.clone();
            let Some(file) = current.clone() else {
                watched = None;
                continue;
            };
            let seen = fingerprint(&file).await;
            if watched != current {
                // A reload named another file; it was read by that reload.
                (watched, applied, last_seen) = (current, seen, seen);
                continue;
            }
            let steady = seen == last_seen;
            last_seen = seen;
            if seen != applied && steady {
                applied = seen;
                reload_logged(&path, &state, "users_file changed").await;
            }
        }
    })
}

async fn fingerprint(file: &Path) -> Fingerprint {
    let metadata = tokio::fs::metadata(file).await.ok()?;
    let content = tokio::fs::read(file).await.ok()?;
    Some((
        metadata.modified().ok(),
        metadata.len(),
        Sha256::digest(&content).into(),
    ))
}
