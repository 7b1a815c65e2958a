//! Validation of `regulation`, and the start-up warning about client addresses it depends on.
//!
//! Every field is optional; each window has its own defaults (`DEFAULT_REGULATION_*`).

use std::net::SocketAddr;

use super::{count, positive_duration};
use crate::config::file::{RawRegulation, RawRegulationWindow};
use crate::config::{
    ConfigError, RegulationConfig, RegulationWindow, DEFAULT_REGULATION_PER_ADDRESS,
    DEFAULT_REGULATION_PER_USER, DEFAULT_REGULATION_PER_USER_AND_ADDRESS,
};

/// Validate `regulation`, filling in each window's defaults.
pub(super) fn regulation(raw: &RawRegulation) -> Result<RegulationConfig, ConfigError> {
    Ok(RegulationConfig {
        per_user_and_address: window(
            "regulation.per_user_and_address",
            &raw.per_user_and_address,
            DEFAULT_REGULATION_PER_USER_AND_ADDRESS,
        )?,
        per_user: window(
            "regulation.per_user",
            &raw.per_user,
            DEFAULT_REGULATION_PER_USER,
        )?,
        per_address: window(
            "regulation.per_address",
            &raw.per_address,
            DEFAULT_REGULATION_PER_ADDRESS,
        )?,
    })
}

fn window(
    key: &str,
    raw: &RawRegulationWindow,
    default: RegulationWindow,
) -> Result<RegulationWindow, ConfigError> {
    let max_retries = match &raw.max_retries {
        Some(text) => count(&format!("{key}.max_retries"), text)? as u64,
        None => default.max_retries,
    };
    let find_time = match &raw.find_time {
        Some(text) => positive_duration(&format!("{key}.find_time"), text)?,
        None => default.find_time,
    };
    let ban_time = match &raw.ban_time {
        Some(text) => positive_duration(&format!("{key}.ban_time"), text)?,
        None => default.ban_time,
    };
    Ok(RegulationWindow {
        max_retries,
        find_time,
        ban_time,
    })
}

/// Without `trusted_proxies`, a gateway behind a load balancer sees every client as the balancer:
/// one client's failed logins would then ban everyone's address.
pub(super) fn warn_without_trusted_proxies(
    listen: SocketAddr,
    trusted_proxies: &[String],
    warnings: &mut Vec<String>,
) {
    if trusted_proxies.is_empty() && !listen.ip().is_loopback() {
        warnings.push(format!(
            "trusted_proxies: empty while listen `{listen}` is not loopback; behind a load \
             balancer or reverse proxy every client then has the proxy's address, and one \
             client's failed logins ban everyone (regulation.per_address): list the proxies' \
             addresses in trusted_proxies"
        ));
    }
}
