//! Validation of `cors` and `csrf`: origin lists, preflight headers and lifetime.
//!
//! Origins are normalized the way browsers write `Origin`, so the request-time check is a plain
//! string comparison. `null` and `*` are refused: `null` is what sandboxed frames and `file:`
//! pages send, and a wildcard cannot be combined with credentials.

use super::{duration, header_name, invalid, origin};
use crate::config::file::{RawCors, RawCsrf};
use crate::config::{ConfigError, CorsConfig, CsrfConfig};
use http::HeaderValue;

/// Validate `cors` and `csrf`; `csrf.allowed_origins` defaults to `cors.allowed_origins`.
pub(super) fn cors_and_csrf(
    cors: &RawCors,
    csrf: &RawCsrf,
) -> Result<(CorsConfig, CsrfConfig), ConfigError> {
    let cors_origins = origins("cors.allowed_origins", &cors.allowed_origins)?;
    let csrf_origins = match &csrf.allowed_origins {
        Some(list) => origins("csrf.allowed_origins", list)?,
        None => cors_origins.clone(),
    };
    let mut names = Vec::with_capacity(cors.allowed_headers.len());
    for (i, name) in cors.allowed_headers.iter().enumerate() {
        names.push(header_name(&format!("cors.allowed_headers[{i}]"), name)?);
    }
    let allowed_headers = names
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let allowed_headers =
        HeaderValue::from_str(&allowed_headers).expect("header names are header-safe");
    let max_age = duration("cors.max_age", &cors.max_age)?.as_secs();
    Ok((
        CorsConfig {
            allowed_origins: cors_origins,
            allowed_headers,
            max_age,
        },
        CsrfConfig {
            allowed_origins: csrf_origins,
        },
    ))
}

fn origins(key: &str, list: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let key = format!("{key}[{i}]");
        if text.trim() == "null" || text.contains('*') {
            return Err(invalid(
                key,
                "must be a literal origin such as https://app.example.com (`null` and `*` never match)",
            ));
        }
        let (origin, _) = origin(&key, text)?;
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    Ok(out)
}
