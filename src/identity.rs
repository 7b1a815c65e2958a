//! Who may log in, and who a session still belongs to: the identity sources, tried in order.
//!
//! - `local`: the users of `users` and `users_file`. It knows a name that is present (disabled
//!   entries included) and then decides alone; a session it created is bound to the user's
//!   credential and ends when the entry goes, is disabled or gets another password.
//! - `upstream_check`: the existing API's credential check ([`upstream_check`]), which always
//!   decides. Its sessions carry the user and roles it returned, authoritative for them; a local
//!   user of the same name shadows it (such a login is refused, such a session ends).
//!
//! Unknown and disabled users verify a dummy hash ([`hashes`]) so that the answer and its timing
//! do not reveal which names exist.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod hashes;
pub mod upstream_check;

pub use hashes::{credential_fingerprint, hash_password, Hasher};
pub use upstream_check::{UpstreamCheck, UpstreamCheckConfig, UpstreamCheckError, Verdict};

/// One local user, as configured in `users` or `users_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name (`^[A-Za-z0-9._@+-]{1,128}$`).
    pub username: String,
    /// Password hash: an argon2 PHC string or a bcrypt hash.
    pub password_hash: String,
    /// Roles (`^[A-Za-z0-9._:-]{1,64}$` each).
    pub roles: Vec<String>,
    /// A disabled user cannot log in and its sessions end.
    pub disabled: bool,
    /// Optional display name (no control characters).
    pub display_name: Option<String>,
    /// Optional e-mail address (no control characters or spaces).
    pub email: Option<String>,
}

/// An identity source (`identity.sources`), also stored in each session record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `users` and `users_file`.
    #[default]
    Local,
    /// `identity.upstream_check`.
    UpstreamCheck,
}

/// The local users, by name, plus the dummy hash that unknown names are verified against.
#[derive(Debug, Clone)]
pub struct Users {
    by_name: std::collections::HashMap<String, User>,
    dummy_hash: String,
}

/// A login that succeeded: what the new session records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    /// The user name.
    pub user: String,
    /// The roles at login.
    pub roles: Vec<String>,
    /// Which source decided.
    pub source: Source,
    /// Fingerprint of the local credential (empty for a delegated login: nothing to bind to).
    pub credential: String,
    /// A cap on the session's life below `absolute_timeout`, if the source sets one.
    pub max_age: Option<Duration>,
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown user, wrong password, disabled user, or refused by the check endpoint: the client
    /// is never told which.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The hashing queue is full.
    #[error("password hashing queue is full")]
    Busy,
    /// The check endpoint gave no usable answer.
    #[error("identity source unavailable")]
    SourceUnavailable(#[source] UpstreamCheckError),
}

/// What the sources may consult for one login.
#[derive(Debug, Clone, Copy)]
pub struct Directory<'a> {
    /// `identity.sources`, in order.
    pub sources: &'a [Source],
    /// The local users.
    pub users: &'a Users,
    /// The hashing pool.
    pub hasher: &'a Hasher,
    /// The check endpoint, when configured.
    pub check: Option<&'a UpstreamCheck>,
}

/// What a live session currently carries, beyond its user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// The roles (the users entry's for a local session, the stored ones for a delegated one).
    pub roles: Vec<String>,
    /// Display name, when known.
    pub display_name: Option<String>,
    /// E-mail address, when known.
    pub email: Option<String>,
}

/// `^[A-Za-z0-9._@+-]{1,128}$`: the username value rule.
pub fn is_username(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b))
}

/// `^[A-Za-z0-9._:-]{1,64}$`: the role value rule.
pub fn is_role(role: &str) -> bool {
    (1..=64).contains(&role.len())
        && role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

impl Users {
    /// Index `users` by name and make a dummy hash with the scheme most of them use.
    pub fn new(users: Vec<User>) -> Self {
        let dummy_hash = hashes::dummy_hash(users.iter().map(|u| u.password_hash.as_str()));
        let by_name = users.into_iter().map(|u| (u.username.clone(), u)).collect();
        Self {
            by_name,
            dummy_hash,
        }
    }

    /// The user called `name`.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.by_name.get(name)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Check a login. Unknown and disabled users run the same hashing work as known ones.
    pub async fn authenticate(
        &self,
        hasher: &Hasher,
        username: &str,
        password: &str,
    ) -> Result<User, LoginError> {
        let user = self.by_name.get(username);
        let hash = user.map_or(&self.dummy_hash, |u| &u.password_hash).clone();
        let matches = hasher.verify(password.to_owned(), hash).await?;
        match user {
            Some(user) if matches && !user.disabled => Ok(user.clone()),
            _ => Err(LoginError::InvalidCredentials),
        }
    }
}

impl Directory<'_> {
    /// Try the sources in order: `local` decides alone for a name it knows (and for every name
    /// when it is the last source); `upstream_check` always decides.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<LoggedIn, LoginError> {
        for (i, source) in self.sources.iter().enumerate() {
            let last = i + 1 == self.sources.len();
            match source {
                Source::Local if last || self.users.get(username).is_some() => {
                    let user = self
                        .users
                        .authenticate(self.hasher, username, password)
                        .await?;
                    return Ok(LoggedIn {
                        credential: credential_fingerprint(&user.password_hash),
                        user: user.username,
                        roles: user.roles,
                        source: Source::Local,
                        max_age: None,
                    });
                }
                Source::Local => {}
                Source::UpstreamCheck => return self.delegate(username, password).await,
            }
        }
        Err(LoginError::InvalidCredentials)
    }

    async fn delegate(&self, username: &str, password: &str) -> Result<LoggedIn, LoginError> {
        let check = self.check.ok_or(LoginError::InvalidCredentials)?;
        match check
            .check(username, password)
            .await
            .map_err(LoginError::SourceUnavailable)?
        {
            Verdict::Refused => Err(LoginError::InvalidCredentials),
            Verdict::Accepted { user, .. } if self.shadowed(&user) => {
                tracing::info!(
                    %user,
                    "delegated login refused: a local user of that name exists and decides alone"
                );
                Err(LoginError::InvalidCredentials)
            }
            Verdict::Accepted { user, roles } => Ok(LoggedIn {
                user,
                roles,
                source: Source::UpstreamCheck,
                credential: String::new(),
                max_age: Some(check.max_session_age()),
            }),
        }
    }

    /// Whether a local user of this name takes precedence over a delegated identity.
    fn shadowed(&self, user: &str) -> bool {
        self.sources.contains(&Source::Local) && self.users.get(user).is_some()
    }
}

/// What a session recorded as `user` from `source` (bound to `credential`, with `stored_roles`)
/// carries now, or `None` when it must end: a local session whose user is gone, disabled or has
/// another password; a delegated session shadowed by a local user; a session whose source is no
/// longer configured.
pub fn current(
    users: &Users,
    sources: &[Source],
    source: Source,
    user: &str,
    credential: &str,
    stored_roles: &[String],
) -> Option<Current> {
    if !sources.contains(&source) {
        return None;
    }
    let local = sources
        .contains(&Source::Local)
        .then(|| users.get(user))
        .flatten();
    match (source, local) {
        (Source::Local, Some(entry))
            if !entry.disabled && credential_fingerprint(&entry.password_hash) == credential =>
        {
            Some(Current {
                roles: entry.roles.clone(),
                display_name: entry.display_name.clone(),
                email: entry.email.clone(),
            })
        }
        (Source::UpstreamCheck, None) => Some(Current {
            roles: stored_roles.to_vec(),
            display_name: None,
            email: None,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, password: &str, disabled: bool) -> User {
        User {
            username: name.into(),
            password_hash: hash_password(password),
            roles: vec!["reader".into()],
            disabled,
            display_name: Some(format!("{name} N.")),
            email: None,
        }
    }

    #[tokio::test]
    async fn right_password_logs_in_and_every_failure_looks_the_same() {
        let users = Users::new(vec![
            user("alice", "correct horse", false),
            user("bob", "pw", true),
        ]);
        let hasher = Hasher::new(1, 4);
        assert_eq!(
            users
                .authenticate(&hasher, "alice", "correct horse")
                .await
                .unwrap()
                .username,
            "alice"
        );
        for (name, pw) in [("alice", "wrong"), ("nobody", "pw"), ("bob", "pw")] {
            assert!(matches!(
                users.authenticate(&hasher, name, pw).await,
                Err(LoginError::InvalidCredentials)
            ));
        }
    }

    #[tokio::test]
    async fn every_login_outcome_costs_exactly_one_verification() {
        let users = Users::new(vec![
            user("alice", "correct horse", false),
            user("bob", "pw", true),
        ]);
        let hasher = Hasher::new(1, 4);
        for (name, pw) in [
            ("alice", "correct horse"),
            ("alice", "wrong"),
            ("nobody", "pw"),
            ("bob", "pw"),
        ] {
            let before = hasher.verifications();
            let _ = users.authenticate(&hasher, name, pw).await;
            assert_eq!(hasher.verifications(), before + 1, "{name}");
        }
    }

    #[tokio::test]
    async fn local_alone_binds_the_session_to_the_credential() {
        let users = Users::new(vec![user("alice", "pw", false)]);
        let hasher = Hasher::new(1, 4);
        let directory = Directory {
            sources: &[Source::Local],
            users: &users,
            hasher: &hasher,
            check: None,
        };
        let logged_in = directory.authenticate("alice", "pw").await.unwrap();
        assert_eq!(logged_in.source, Source::Local);
        assert_eq!(
            logged_in.credential,
            credential_fingerprint(&users.get("alice").unwrap().password_hash)
        );
        assert_eq!(logged_in.max_age, None);
        // Unknown names still cost a verification when local is the last source.
        let before = hasher.verifications();
        assert!(directory.authenticate("nobody", "pw").await.is_err());
        assert_eq!(hasher.verifications(), before + 1);
    }

    #[tokio::test]
    async fn a_known_local_name_is_decided_locally_even_before_another_source() {
        let users = Users::new(vec![user("alice", "pw", false), user("bob", "pw", true)]);
        let hasher = Hasher::new(1, 4);
        // The check points nowhere: reaching it would be a SourceUnavailable, not a 401.
        let check = UpstreamCheck::new(&UpstreamCheckConfig {
            url: http::Uri::from_static("http://127.0.0.1:9/check"),
            timeout: Duration::from_millis(200),
            headers: http::HeaderMap::new(),
            user_field: "user".into(),
            roles_field: "roles".into(),
            max_session_age: Duration::from_secs(60),
        });
        let directory = Directory {
            sources: &[Source::Local, Source::UpstreamCheck],
            users: &users,
            hasher: &hasher,
            check: Some(&check),
        };
        for (name, pw) in [("alice", "wrong"), ("bob", "pw")] {
            assert!(matches!(
                directory.authenticate(name, pw).await,
                Err(LoginError::InvalidCredentials)
            ));
        }
        assert!(matches!(
            directory.authenticate("carol", "pw").await,
            Err(LoginError::SourceUnavailable(_))
        ));
    }

    #[test]
    fn local_sessions_follow_the_current_entry() {
        let alice = user("alice", "pw", false);
        let fp = credential_fingerprint(&alice.password_hash);
        let users = Users::new(vec![alice.clone(), user("bob", "pw", true)]);
        let both = [Source::Local, Source::UpstreamCheck];
        let now = current(&users, &both, Source::Local, "alice", &fp, &[]).unwrap();
        assert_eq!(now.roles, ["reader"]);
        assert_eq!(now.display_name.as_deref(), Some("alice N."));
        assert_eq!(
            current(&users, &both, Source::Local, "alice", "other", &[]),
            None
        );
        assert_eq!(
            current(&users, &both, Source::Local, "gone", &fp, &[]),
            None
        );
        let bob_fp = credential_fingerprint(&users.get("bob").unwrap().password_hash);
        assert_eq!(
            current(&users, &both, Source::Local, "bob", &bob_fp, &[]),
            None
        );
        // Local no longer configured: its sessions end.
        let only_check = [Source::UpstreamCheck];
        assert_eq!(
            current(&users, &only_check, Source::Local, "alice", &fp, &[]),
            None
        );
    }

    #[test]
    fn delegated_sessions_keep_their_roles_until_shadowed_or_unconfigured() {
        let users = Users::new(vec![user("alice", "pw", false), user("bob", "pw", true)]);
        let both = [Source::Local, Source::UpstreamCheck];
        let roles = vec!["ops".to_owned()];
        let now = current(&users, &both, Source::UpstreamCheck, "carol", "", &roles).unwrap();
        assert_eq!(now.roles, roles);
        // A local user of the name, disabled ones too, shadows it.
        for name in ["alice", "bob"] {
            assert_eq!(
                current(&users, &both, Source::UpstreamCheck, name, "", &roles),
                None
            );
        }
        // Without local as a source nothing shadows; without the check nothing is delegated.
        assert!(current(
            &users,
            &[Source::UpstreamCheck],
            Source::UpstreamCheck,
            "alice",
            "",
            &roles
        )
        .is_some());
        assert_eq!(
            current(
                &users,
                &[Source::Local],
                Source::UpstreamCheck,
                "carol",
                "",
                &roles
            ),
            None
        );
    }

    #[test]
    fn value_rules() {
        assert!(is_username("alice.smith"));
        assert!(is_username("a+b@example-1.com_x"));
        assert!(is_username(&"u".repeat(128)));
        assert!(!is_username(&"u".repeat(129)));
        assert!(!is_username(""));
        assert!(!is_username("a b"));
        assert!(!is_username("a:b"));
        assert!(!is_username("é"));
        assert!(is_role("team:ops.admin_1-x"));
        assert!(is_role(&"r".repeat(64)));
        assert!(!is_role(&"r".repeat(65)));
        assert!(!is_role(""));
        assert!(!is_role("a/b"));
        assert!(!is_role("a@b"));
    }
}
