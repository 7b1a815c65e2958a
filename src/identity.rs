//! Local users and password verification.
//!
//! Password hashes are checked on a dedicated, bounded pool of blocking threads so that a burst of
//! logins can never starve the request path; unknown users verify a dummy hash so that the answer
//! and its timing do not reveal which names exist.

/// One local user, as configured in `users` or `users_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name (`^[A-Za-z0-9._@+-]{1,128}$`).
    pub username: String,
    /// Password hash as a PHC string (argon2id, argon2i or argon2d).
    pub password_hash: String,
    /// Roles (`^[A-Za-z0-9._:-]{1,64}$` each).
    pub roles: Vec<String>,
    /// A disabled user cannot log in and its sessions end.
    pub disabled: bool,
    /// Optional display name.
    pub display_name: Option<String>,
    /// Optional e-mail address.
    pub email: Option<String>,
}
