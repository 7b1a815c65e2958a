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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// Whether `name` is a valid username: `^[A-Za-z0-9._@+-]{1,128}$`.
pub fn is_username(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b))
}

/// argon2id memory cost used by `hash-password`, in KiB.
pub const DEFAULT_HASH_MEMORY_KIB: u32 = 19456;
/// argon2id iterations used by `hash-password`.
pub const DEFAULT_HASH_ITERATIONS: u32 = 2;
/// argon2id parallelism used by `hash-password`.
pub const DEFAULT_HASH_PARALLELISM: u32 = 1;

/// The local users, by name, plus the dummy hash that unknown names are verified against.
#[derive(Debug, Clone)]
pub struct Users {
    by_name: HashMap<String, User>,
    dummy_hash: String,
}

/// Why a login failed. Every variant becomes the same 401 except `Busy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// Unknown user, wrong password or disabled user: the client is never told which.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The hashing queue is full.
    #[error("password hashing queue is full")]
    Busy,
}

impl Users {
    /// Index `users` by name and make a dummy hash with the parameters most of them use.
    pub fn new(users: Vec<User>) -> Self {
        let params = most_common_params(&users);
        let dummy_hash = hash_with(&random_password(), params);
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

/// Fingerprint of a credential: hex of the first 16 bytes of SHA-256 of the password hash.
pub fn credential_fingerprint(password_hash: &str) -> String {
    hex::encode(&Sha256::digest(password_hash.as_bytes())[..16])
}

/// Hash a password for a users entry (argon2id, m=19456 KiB, t=2, p=1).
pub fn hash_password(password: &str) -> String {
    hash_with(password, default_scheme())
}

/// argon2id with the documented default parameters.
fn default_scheme() -> (Algorithm, Params) {
    let params = Params::new(
        DEFAULT_HASH_MEMORY_KIB,
        DEFAULT_HASH_ITERATIONS,
        DEFAULT_HASH_PARALLELISM,
        None,
    )
    .expect("the default argon2 parameters are valid");
    (Algorithm::Argon2id, params)
}

fn hash_with(password: &str, (algorithm, params): (Algorithm, Params)) -> String {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).expect("the OS random number generator failed");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::new(algorithm, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .expect("hashing with validated parameters cannot fail")
        .to_string()
}

fn random_password() -> String {
    let mut bytes = [0u8; 24];
    getrandom::getrandom(&mut bytes).expect("the OS random number generator failed");
    hex::encode(bytes)
}

/// The (algorithm, parameters) pair most users' hashes use; the default when there are none.
fn most_common_params(users: &[User]) -> (Algorithm, Params) {
    let mut counts: HashMap<(String, u32, u32, u32), usize> = HashMap::new();
    for user in users {
        let Ok(hash) = PasswordHash::new(&user.password_hash) else {
            continue;
        };
        let Ok(params) = Params::try_from(&hash) else {
            continue;
        };
        let key = (
            hash.algorithm.as_str().to_owned(),
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
        );
        *counts.entry(key).or_default() += 1;
    }
    let best = counts
        .into_iter()
        .max_by_key(|(key, n)| (*n, std::cmp::Reverse(key.clone())));
    if let Some(((alg, m, t, p), _)) = best {
        if let (Ok(algorithm), Ok(params)) = (alg.parse::<Algorithm>(), Params::new(m, t, p, None))
        {
            return (algorithm, params);
        }
    }
    default_scheme()
}

type Job = (String, String, oneshot::Sender<bool>);

/// A dedicated pool of threads that verify password hashes, with a bounded queue in front.
///
/// Hashing is memory- and CPU-hard on purpose; running it on these threads keeps it off the
/// async workers, and a full queue turns into 503 `login_busy` instead of unbounded waiting.
#[derive(Debug, Clone)]
pub struct Hasher {
    queue: SyncSender<Job>,
    verifications: Arc<AtomicU64>,
}

impl Hasher {
    /// Start `threads` hashing threads fed by a queue of `queue` waiting jobs.
    pub fn new(threads: usize, queue: usize) -> Self {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let verifications = Arc::new(AtomicU64::new(0));
        for n in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            let done = Arc::clone(&verifications);
            std::thread::Builder::new()
                .name(format!("portcullis-hash-{n}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((password, hash, reply)) = job else {
                        return;
                    };
                    let matches = verify_now(&password, &hash);
                    // Counted before the answer is sent: whoever got the answer sees the count.
                    done.fetch_add(1, Ordering::Relaxed);
                    let _ = reply.send(matches);
                })
                .expect("cannot start a password hashing thread");
        }
        Self {
            queue: tx,
            verifications,
        }
    }

    /// Number of verifications completed since start. Lets tests check that every kind of failed
    /// login (unknown, wrong password, disabled) costs the same hashing work as a real one.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Verify `password` against the PHC string `hash` on the pool.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, LoginError> {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send((password, hash, reply)) {
            Ok(()) => answer.await.map_err(|_| LoginError::Busy),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(LoginError::Busy),
        }
    }
}

fn verify_now(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
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
            display_name: None,
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
            assert_eq!(
                users.authenticate(&hasher, name, pw).await,
                Err(LoginError::InvalidCredentials)
            );
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

    #[test]
    fn hash_password_uses_the_documented_parameters() {
        let hash = hash_password("x");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
    }

    #[test]
    fn dummy_hash_follows_the_most_common_parameters() {
        let users = Users::new(vec![user("a", "x", false)]);
        assert!(users
            .dummy_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    }

    #[tokio::test]
    async fn a_full_queue_is_busy_not_a_wait() {
        // Zero-capacity queue and one thread kept busy: the second job finds no room.
        let hasher = Hasher::new(1, 0);
        let hash = hash_password("x");
        let first = tokio::spawn({
            let hasher = hasher.clone();
            let hash = hash.clone();
            async move { hasher.verify("x".into(), hash).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let mut busy = false;
        for _ in 0..3 {
            busy |= hasher.verify("x".into(), hash.clone()).await == Err(LoginError::Busy);
        }
        assert!(busy);
        assert_eq!(first.await.unwrap(), Ok(true));
    }
}
