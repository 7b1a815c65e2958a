//! Validation of local users: `users` and the entries of `users_file`.
//!
//! `users_file` is either a YAML list of the same shape as `users`, or an htpasswd file
//! (`name:hash` lines, `#` comments; its users have no roles), so an existing htpasswd file
//! imports as it is. Each entry's password hash is read here, at load, so that a typo, an
//! unsupported scheme or a hash too costly for `identity.max_hash_memory` is a config error
//! naming the user rather than a failed login later; weak parameters are a warning.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{boolean, invalid};
use crate::config::file::RawUser;
use crate::config::ConfigError;
use crate::identity::hashes::Scheme;
use crate::identity::{is_role, is_username, User};

/// Longest display name or e-mail address, in bytes.
const MAX_PROFILE_LEN: usize = 256;

/// Validate `users`, then the entries of `users_file` (returned resolved against `base_dir`);
/// error keys name the entry (`users[2]`, `users_file[0]`).
pub(super) fn users(
    inline: &[RawUser],
    file: Option<&str>,
    base_dir: &Path,
    max_hash_memory_kib: u32,
    warnings: &mut Vec<String>,
) -> Result<(Vec<User>, Option<PathBuf>), ConfigError> {
    let path = file.map(|name| base_dir.join(name));
    let from_file: Vec<RawUser> = match &path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    "users_file",
                    format!("cannot read `{}`: {e}", path.display()),
                )
            })?;
            if is_htpasswd(&text) {
                htpasswd(&text)
            } else {
                serde_yaml::from_str(&text)
                    .map_err(|e| invalid("users_file", format!("`{}`: {e}", path.display())))?
            }
        }
        None => Vec::new(),
    };
    let entries = inline
        .iter()
        .enumerate()
        .map(|(i, u)| (format!("users[{i}]"), u))
        .chain(
            from_file
                .iter()
                .enumerate()
                .map(|(i, u)| (format!("users_file[{i}]"), u)),
        );
    let mut seen: HashMap<&str, String> = HashMap::new();
    let mut users = Vec::new();
    for (entry, raw) in entries {
        let name = raw.username.as_str();
        if !is_username(name) {
            return Err(invalid(
                format!("{entry}.username"),
                format!("{name:?} is not a valid username (1 to 128 of A-Z a-z 0-9 . _ @ + -)"),
            ));
        }
        if let Some(first) = seen.insert(name, entry.clone()) {
            return Err(invalid(
                format!("{entry}.username"),
                format!("duplicate username `{name}` (also at {first})"),
            ));
        }
        for (j, role) in raw.roles.iter().enumerate() {
            if !is_role(role) {
                return Err(invalid(
                    format!("{entry}.roles[{j}]"),
                    format!("{role:?} is not a valid role (1 to 64 of A-Z a-z 0-9 . _ : -)"),
                ));
            }
        }
        let key = format!("{entry}.password_hash");
        let scheme = check_password_hash(&key, name, &raw.password_hash, max_hash_memory_kib)?;
        if let Some(weakness) = scheme.weakness() {
            warnings.push(format!(
                "{key}: user `{name}`: {weakness}; rehash it (`portcullis hash-password`)"
            ));
        }
        profile(
            &format!("{entry}.display_name"),
            raw.display_name.as_deref(),
            false,
        )?;
        profile(&format!("{entry}.email"), raw.email.as_deref(), true)?;
        users.push(User {
            username: name.to_owned(),
            password_hash: raw.password_hash.clone(),
            roles: raw.roles.clone(),
            disabled: boolean(&format!("{entry}.disabled"), &raw.disabled)?,
            display_name: raw.display_name.clone(),
            email: raw.email.clone(),
        });
    }
    Ok((users, path))
}

/// Whether `text` is an htpasswd file: every line that is not blank or a `#` comment is
/// `name:hash` with no whitespace, and there is at least one. No YAML users list looks like
/// that (its entries are `- username: ...`).
fn is_htpasswd(text: &str) -> bool {
    let mut lines = content_lines(text).peekable();
    lines.peek().is_some()
        && lines.all(|line| {
            !line.contains(char::is_whitespace)
                && !line.starts_with(['-', '[', '{'])
                && line
                    .split_once(':')
                    .is_some_and(|(name, hash)| !name.is_empty() && !hash.is_empty())
        })
}

fn content_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
}

/// The entries of an htpasswd file (already known to be one): no roles, enabled.
fn htpasswd(text: &str) -> Vec<RawUser> {
    content_lines(text)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, hash)| RawUser {
            username: name.to_owned(),
            password_hash: hash.to_owned(),
            roles: Vec::new(),
            disabled: "false".into(),
            display_name: None,
            email: None,
        })
        .collect()
}

/// A hash of a supported scheme whose memory cost fits `identity.max_hash_memory`. Messages
/// name the user and never quote the hash.
fn check_password_hash(
    key: &str,
    user: &str,
    hash: &str,
    max_kib: u32,
) -> Result<Scheme, ConfigError> {
    let scheme = Scheme::of(hash).map_err(|e| invalid(key, format!("user `{user}`: {e}")))?;
    if scheme.memory_kib() > max_kib {
        return Err(invalid(
            key,
            format!(
                "user `{user}`: memory cost {} KiB exceeds identity.max_hash_memory ({max_kib} KiB)",
                scheme.memory_kib()
            ),
        ));
    }
    Ok(scheme)
}

/// A display name or e-mail address fit for a header value: no control characters (and, for an
/// address, no whitespace), at most [`MAX_PROFILE_LEN`] bytes.
fn profile(key: &str, value: Option<&str>, address: bool) -> Result<(), ConfigError> {
    let Some(value) = value else { return Ok(()) };
    let bad = value.is_empty()
        || value.len() > MAX_PROFILE_LEN
        || value.chars().any(char::is_control)
        || (address && value.contains(char::is_whitespace));
    if bad {
        let what = if address {
            "1 to 256 bytes without spaces or control characters"
        } else {
            "1 to 256 bytes without control characters"
        };
        return Err(invalid(key, format!("must be {what}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_files_are_told_from_yaml_lists() {
        let ht = "# made by htpasswd\nalice:$2y$05$abc\n\nbob:{SHA}xyz=\r\n";
        assert!(is_htpasswd(ht));
        let entries = htpasswd(ht);
        let names: Vec<_> = entries.iter().map(|u| u.username.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(entries[1].password_hash, "{SHA}xyz=");
        assert!(entries.iter().all(|u| u.roles.is_empty()));
        for yaml in [
            "- username: alice\n  password_hash: x\n",
            "[]\n",
            "",
            "# only a comment\n",
            "alice: x\n",
            "alice:\n",
        ] {
            assert!(!is_htpasswd(yaml), "{yaml:?}");
        }
    }

    #[test]
    fn profiles_must_fit_a_header() {
        assert!(profile("k", Some("José Núñez"), false).is_ok());
        assert!(profile("k", Some("a@example.com"), true).is_ok());
        assert!(profile("k", None, true).is_ok());
        for (value, address) in [
            ("line\nbreak", false),
            ("", false),
            ("a b@example.com", true),
            ("tab\tx", false),
        ] {
            assert!(profile("k", Some(value), address).is_err(), "{value:?}");
        }
        assert!(profile("k", Some(&"x".repeat(257)), false).is_err());
    }
}
