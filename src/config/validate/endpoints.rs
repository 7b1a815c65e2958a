//! Validation of the paths Portcullis answers itself: `session_api.path` and `forward_auth`.
//!
//! Each is a canonical path that owns its whole subtree (matched case-insensitively by the
//! router), so the two must not overlap: a request could otherwise belong to both, and access
//! rules under either never apply.

use super::{boolean, check_canonical_path, invalid};
use crate::config::file::RawForwardAuth;
use crate::config::{ConfigError, ForwardAuthConfig};

/// `session_api.path`.
pub(super) fn session_api_path(path: &str) -> Result<String, ConfigError> {
    own_path("session_api.path", path)
}

/// `forward_auth`; its path must not overlap `session_api_path` while it is served.
pub(super) fn forward_auth(
    raw: &RawForwardAuth,
    session_api_path: &str,
) -> Result<ForwardAuthConfig, ConfigError> {
    const KEY: &str = "forward_auth.path";
    let enabled = boolean("forward_auth.enabled", &raw.enabled)?;
    let path = own_path(KEY, &raw.path)?;
    if enabled && overlaps(&path, session_api_path) {
        return Err(invalid(
            KEY,
            format!("`{path}` overlaps session_api.path `{session_api_path}`"),
        ));
    }
    Ok(ForwardAuthConfig { enabled, path })
}

/// Whether `path` names `own` or something under it, as the router matches (ASCII
/// case-insensitively, whole segments).
pub(super) fn is_under(path: &str, own: &str) -> bool {
    let (path, own) = (path.to_ascii_lowercase(), own.to_ascii_lowercase());
    path == own
        || path
            .strip_prefix(&own)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn overlaps(a: &str, b: &str) -> bool {
    is_under(a, b) || is_under(b, a)
}

/// A path Portcullis answers itself: canonical, not `/`, no trailing slash.
fn own_path(key: &str, path: &str) -> Result<String, ConfigError> {
    check_canonical_path(path).map_err(|m| invalid(key, m))?;
    if path == "/" {
        return Err(invalid(key, "must not be / (it would capture every path)"));
    }
    if path.ends_with('/') {
        return Err(invalid(key, "must not end with /"));
    }
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_paths_overlap_by_whole_segments_in_any_case() {
        assert!(overlaps("/session", "/session"));
        assert!(overlaps("/session", "/Session/auth"));
        assert!(overlaps("/a/b", "/A"));
        assert!(!overlaps("/session", "/sessions"));
        assert!(!overlaps("/.portcullis/auth", "/session"));
        assert!(!overlaps("/auth", "/authz/x"));
    }
}
