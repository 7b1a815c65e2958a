//! Validation of local users: `users` and the entries of `users_file`.
//!
//! Each entry's password hash is parsed here, at start-up, so that a typo or a hash too costly
//! for `identity.max_hash_memory` is a config error rather than a failed login later.

use std::collections::HashMap;
use std::path::Path;

use argon2::PasswordHash;

use super::{boolean, invalid, is_role};
use crate::config::file::RawUser;
use crate::config::ConfigError;
use crate::identity::{is_username, User};

/// Validate `users`, then the entries of `users_file`; error keys name the entry (`users[2]`,
/// `users_file[0]`).
pub(super) fn users(
    inline: &[RawUser],
    file: Option<&str>,
    base_dir: &Path,
    max_hash_memory_kib: u32,
) -> Result<Vec<User>, ConfigError> {
    let from_file: Vec<RawUser> = match file {
        Some(name) => {
            let path = base_dir.join(name);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                invalid(
                    "users_file",
                    format!("cannot read `{}`: {e}", path.display()),
                )
            })?;
            serde_yaml::from_str(&text)
                .map_err(|e| invalid("users_file", format!("`{}`: {e}", path.display())))?
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
        check_password_hash(
            &format!("{entry}.password_hash"),
            name,
            &raw.password_hash,
            max_hash_memory_kib,
        )?;
        users.push(User {
            username: name.to_owned(),
            password_hash: raw.password_hash.clone(),
            roles: raw.roles.clone(),
            disabled: boolean(&format!("{entry}.disabled"), &raw.disabled)?,
            display_name: raw.display_name.clone(),
            email: raw.email.clone(),
        });
    }
    Ok(users)
}

/// An argon2 PHC string whose memory cost fits `identity.max_hash_memory`.
fn check_password_hash(key: &str, user: &str, phc: &str, max_kib: u32) -> Result<(), ConfigError> {
    let fail = |why: String| invalid(key, format!("user `{user}`: {why}"));
    let hash = PasswordHash::new(phc).map_err(|e| fail(format!("not a PHC hash string ({e})")))?;
    let algorithm = hash.algorithm.as_str();
    if !matches!(algorithm, "argon2id" | "argon2i" | "argon2d") {
        return Err(fail(format!(
            "algorithm `{algorithm}` is not supported (argon2id, argon2i or argon2d; \
             `portcullis hash-password` prints one)"
        )));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(fail("the hash string has no salt or no hash".into()));
    }
    if let Some(version) = hash.version {
        argon2::Version::try_from(version)
            .map_err(|_| fail(format!("unknown argon2 version {version}")))?;
    }
    let params = argon2::Params::try_from(&hash)
        .map_err(|e| fail(format!("invalid argon2 parameters ({e})")))?;
    if params.m_cost() > max_kib {
        return Err(fail(format!(
            "memory cost {} KiB exceeds identity.max_hash_memory ({max_kib} KiB)",
            params.m_cost()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_value_rule() {
        assert!(is_username("alice.smith"));
        assert!(is_username("a+b@example-1.com_x"));
        assert!(is_username(&"u".repeat(128)));
        assert!(!is_username(&"u".repeat(129)));
        assert!(!is_username(""));
        assert!(!is_username("a b"));
        assert!(!is_username("a:b"));
        assert!(!is_username("é"));
    }
}
