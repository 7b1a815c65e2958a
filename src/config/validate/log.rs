//! `log`: the format of log lines and the level written.

use tracing::level_filters::LevelFilter;

use super::invalid;
use crate::config::file::RawLog;
use crate::config::{ConfigError, LogConfig, LogFormat};

/// The `log` settings.
pub(super) fn log(raw: &RawLog) -> Result<LogConfig, ConfigError> {
    let format = match raw.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(invalid(
                "log.format",
                format!("must be text or json, not `{other}`"),
            ))
        }
    };
    let level = match raw.level.as_str() {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "info" => LevelFilter::INFO,
        "warn" => LevelFilter::WARN,
        "error" => LevelFilter::ERROR,
        "off" => LevelFilter::OFF,
        other => {
            return Err(invalid(
                "log.level",
                format!(
                    "must be trace, debug, info, warn, error or off, not `{other}` \
                     (per-module directives go in RUST_LOG)"
                ),
            ))
        }
    };
    Ok(LogConfig { format, level })
}
