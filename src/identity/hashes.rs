//! Password hash schemes and the pool that verifies them.
//!
//! Two families are accepted, so existing user databases import as they are: argon2 PHC strings
//! (`$argon2id$`, `$argon2i$`, `$argon2d$`; `hash-password` makes argon2id) and bcrypt
//! (`$2a$`, `$2b$`, `$2y$`, what `htpasswd -B` writes). [`Scheme::of`] reads a hash's scheme
//! and parameters once, at load; anything else is refused there, never at a login.
//!
//! Hashes are verified on a dedicated, bounded pool of threads ([`Hasher`]) so that a burst of
//! logins can never starve the request path; a full queue is a `login_busy`, not a wait.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::sync::oneshot;

use super::LoginError;

/// argon2id memory cost used by `hash-password`, in KiB.
pub const DEFAULT_HASH_MEMORY_KIB: u32 = 19456;
/// argon2id iterations used by `hash-password`.
pub const DEFAULT_HASH_ITERATIONS: u32 = 2;
/// argon2id parallelism used by `hash-password`.
pub const DEFAULT_HASH_PARALLELISM: u32 = 1;
/// The bcrypt cost below which `--check-config` advises a rehash (OWASP's floor).
pub const MIN_BCRYPT_COST: u32 = 10;

/// A hash's scheme with the parameters that set its cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// argon2 in one of its variants.
    Argon2 {
        /// argon2id, argon2i or argon2d.
        algorithm: Algorithm,
        /// Memory cost in KiB.
        m_cost: u32,
        /// Iterations.
        t_cost: u32,
        /// Lanes.
        p_cost: u32,
    },
    /// bcrypt (`$2a$`, `$2b$` or `$2y$`; the variants verify alike).
    Bcrypt {
        /// log2 of the rounds.
        cost: u32,
    },
}

/// Why a password hash cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Neither argon2 nor bcrypt.
    #[error(
        "unknown hash scheme (supported: argon2id, argon2i, argon2d, bcrypt $2a$/$2b$/$2y$; \
         `portcullis hash-password` prints an argon2id hash)"
    )]
    UnknownScheme,
    /// The scheme is known but the string is damaged.
    #[error("malformed {scheme} hash ({why})")]
    Malformed {
        /// Which scheme.
        scheme: &'static str,
        /// What is wrong, never quoting the hash.
        why: String,
    },
}

impl Scheme {
    /// Read the scheme and parameters of `hash`; the whole string is checked, so a hash that
    /// parses here can be verified.
    pub fn of(hash: &str) -> Result<Scheme, HashError> {
        if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
            let malformed = |why: String| HashError::Malformed {
                scheme: "bcrypt",
                why,
            };
            let parts = bcrypt::HashParts::from_str(hash).map_err(|e| malformed(e.to_string()))?;
            let cost = parts.get_cost();
            if !(4..=31).contains(&cost) {
                return Err(malformed(format!("cost {cost} is outside 4..=31")));
            }
            return Ok(Scheme::Bcrypt { cost });
        }
        if !hash.starts_with("$argon2") {
            return Err(HashError::UnknownScheme);
        }
        let malformed = |why: String| HashError::Malformed {
            scheme: "argon2",
            why,
        };
        let parsed = PasswordHash::new(hash).map_err(|e| malformed(e.to_string()))?;
        let algorithm = parsed
            .algorithm
            .as_str()
            .parse::<Algorithm>()
            .map_err(|_| HashError::UnknownScheme)?;
        if parsed.salt.is_none() || parsed.hash.is_none() {
            return Err(malformed("no salt or no hash".into()));
        }
        if let Some(version) = parsed.version {
            Version::try_from(version).map_err(|_| malformed(format!("version {version}")))?;
        }
        let params = Params::try_from(&parsed).map_err(|e| malformed(e.to_string()))?;
        Ok(Scheme::Argon2 {
            algorithm,
            m_cost: params.m_cost(),
            t_cost: params.t_cost(),
            p_cost: params.p_cost(),
        })
    }

    /// Memory one verification needs, in KiB (bcrypt's is fixed and small).
    pub fn memory_kib(&self) -> u32 {
        match self {
            Scheme::Argon2 { m_cost, .. } => *m_cost,
            Scheme::Bcrypt { .. } => 4,
        }
    }

    /// Rehash advice when the parameters are below today's recommendations (argon2: m=19456
    /// KiB and t=2, OWASP's minimum; bcrypt: cost 10), else `None`.
    pub fn weakness(&self) -> Option<String> {
        match *self {
            Scheme::Argon2 { m_cost, t_cost, .. }
                if m_cost < DEFAULT_HASH_MEMORY_KIB || t_cost < DEFAULT_HASH_ITERATIONS =>
            {
                Some(format!(
                    "argon2 parameters m={m_cost},t={t_cost} are below the recommended \
                     m={DEFAULT_HASH_MEMORY_KIB},t={DEFAULT_HASH_ITERATIONS}"
                ))
            }
            Scheme::Bcrypt { cost } if cost < MIN_BCRYPT_COST => Some(format!(
                "bcrypt cost {cost} is below the recommended {MIN_BCRYPT_COST}"
            )),
            _ => None,
        }
    }

    /// A hash of `password` with this scheme and these parameters.
    fn hash(&self, password: &str) -> String {
        match *self {
            Scheme::Argon2 {
                algorithm,
                m_cost,
                t_cost,
                p_cost,
            } => match Params::new(m_cost, t_cost, p_cost, None) {
                Ok(params) => argon2_hash(password, algorithm, params),
                Err(_) => hash_password(password),
            },
            Scheme::Bcrypt { cost } => {
                bcrypt::hash(password, cost).expect("the cost was checked when it was read")
            }
        }
    }
}

/// Hash a password for a users entry (argon2id, m=19456 KiB, t=2, p=1).
pub fn hash_password(password: &str) -> String {
    let params = Params::new(
        DEFAULT_HASH_MEMORY_KIB,
        DEFAULT_HASH_ITERATIONS,
        DEFAULT_HASH_PARALLELISM,
        None,
    )
    .expect("the default argon2 parameters are valid");
    argon2_hash(password, Algorithm::Argon2id, params)
}

fn argon2_hash(password: &str, algorithm: Algorithm, params: Params) -> String {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).expect("the OS random number generator failed");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::new(algorithm, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .expect("hashing with validated parameters cannot fail")
        .to_string()
}

/// A hash of a random password with the scheme most of `hashes` use (argon2id with the defaults
/// when there are none): what unknown names are verified against, so that they cost the same
/// work as known ones.
pub fn dummy_hash<'a>(hashes: impl Iterator<Item = &'a str>) -> String {
    let mut counts: HashMap<(u8, u32, u32, u32), (Scheme, usize)> = HashMap::new();
    for hash in hashes {
        if let Ok(scheme) = Scheme::of(hash) {
            counts.entry(sort_key(&scheme)).or_insert((scheme, 0)).1 += 1;
        }
    }
    // Ties go to the scheme that sorts first by its parameters: the same dummy at every start.
    let best = counts
        .into_iter()
        .max_by_key(|(key, (_, n))| (*n, std::cmp::Reverse(*key)))
        .map(|(_, best)| best);
    let mut password = [0u8; 24];
    getrandom::getrandom(&mut password).expect("the OS random number generator failed");
    let password = hex::encode(password);
    match best {
        Some((scheme, _)) => scheme.hash(&password),
        None => hash_password(&password),
    }
}

fn sort_key(scheme: &Scheme) -> (u8, u32, u32, u32) {
    match *scheme {
        Scheme::Argon2 {
            algorithm,
            m_cost,
            t_cost,
            p_cost,
        } => (algorithm as u8, m_cost, t_cost, p_cost),
        Scheme::Bcrypt { cost } => (u8::MAX, cost, 0, 0),
    }
}

/// Fingerprint of a credential: hex of the first 16 bytes of SHA-256 of the password hash.
pub fn credential_fingerprint(password_hash: &str) -> String {
    hex::encode(&Sha256::digest(password_hash.as_bytes())[..16])
}

/// Whether `password` matches `hash` (argon2 or bcrypt). bcrypt reads at most 72 bytes of a
/// password, as every bcrypt implementation does (`htpasswd` included), so hashes it made verify.
pub fn verify_now(password: &str, hash: &str) -> bool {
    verify_in(&mut Vec::new(), password, hash)
}

/// [`verify_now`] with `memory` as argon2's working memory, grown as the hash needs and kept by
/// the caller for the next call. The hashing threads each keep one: allocating and freeing
/// tens of MiB per login left freed blocks in many allocator arenas, so a login storm used to
/// leave hundreds of MiB resident; reused, it is one block per thread.
fn verify_in(memory: &mut Vec<Block>, password: &str, hash: &str) -> bool {
    if hash.starts_with("$2") {
        return matches!(Scheme::of(hash), Ok(Scheme::Bcrypt { .. }))
            && bcrypt::verify(password, hash).unwrap_or(false);
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut computed = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut computed,
            &mut memory[..blocks],
        )
        .is_ok()
        && bool::from(computed.ct_eq(expected.as_bytes()))
}

type Job = (String, String, oneshot::Sender<bool>);

/// Run the calling (hashing) thread under Linux's `SCHED_IDLE` policy: it gets only the CPU time
/// no other thread wants, and yields it at once to a request being served. A login storm then
/// slows logins (and fills the queue, then 503 `login_busy`) instead of every signed-in user's
/// requests, while a machine with CPU to spare still hashes at full speed. (Nice 19 was not
/// enough: a hash already running kept its time slice while requests waited, and the p99 of a
/// steady 10,000 requests/s rose 2.5x during 50 logins/s, against 1.4x under `SCHED_IDLE`.)
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadPriority, ThreadSchedulePolicy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if let Err(err) =
            set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
        {
            tracing::warn!(error = ?err, "cannot lower the priority of a password hashing thread");
        }
    }
}

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
                .spawn(move || {
                    lower_priority();
                    let mut memory = Vec::new();
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok((password, hash, reply)) = job else {
                            return;
                        };
                        let matches = verify_in(&mut memory, &password, &hash);
                        // Counted before the answer is sent: whoever got the answer sees the count.
                        done.fetch_add(1, Ordering::Relaxed);
                        let _ = reply.send(matches);
                    }
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

    /// Verify `password` against `hash` on the pool.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, LoginError> {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send((password, hash, reply)) {
            Ok(()) => answer.await.map_err(|_| LoginError::Busy),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(LoginError::Busy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier as _;

    fn argon2(algorithm: Algorithm, m: u32, t: u32) -> String {
        argon2_hash("pw", algorithm, Params::new(m, t, 1, None).unwrap())
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_under_sched_idle() {
        /// `SCHED_IDLE` in `/proc/.../stat`'s policy field.
        const SCHED_IDLE: u32 = 5;
        /// The policy of each thread named `portcullis-hash-*` in this process.
        fn policies() -> Vec<u32> {
            let mut found = Vec::new();
            for task in std::fs::read_dir("/proc/self/task").unwrap() {
                let path = task.unwrap().path();
                let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
                if !comm.starts_with("portcullis-hash") {
                    continue;
                }
                let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
                    continue; // ended meanwhile
                };
                // Field 41 is the policy; the fields after the parenthesized name start at 3.
                let after_name = &stat[stat.rfind(')').unwrap() + 2..];
                found.push(after_name.split(' ').nth(38).unwrap().parse().unwrap());
            }
            found
        }
        let hasher = Hasher::new(2, 4);
        let hash = argon2(Algorithm::Argon2id, 64, 1);
        // Both threads have started once each has answered (the policy is set first).
        let (a, b) = tokio::join!(
            hasher.verify("pw".into(), hash.clone()),
            hasher.verify("pw".into(), hash)
        );
        assert!(a.unwrap() && b.unwrap());
        // Other tests start hashing threads too, each briefly before its policy is set.
        let mut seen = policies();
        for _ in 0..100 {
            if seen.iter().all(|&policy| policy == SCHED_IDLE) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            seen = policies();
        }
        assert!(seen.len() >= 2, "found {} hashing threads", seen.len());
        assert!(seen.iter().all(|&policy| policy == SCHED_IDLE), "{seen:?}");
    }

    #[test]
    fn reused_memory_verifies_as_the_crate_does_across_parameters() {
        let mut memory = Vec::new();
        for (algorithm, m, t) in [
            (Algorithm::Argon2id, 256, 2),
            (Algorithm::Argon2i, 64, 1),
            (Algorithm::Argon2d, 512, 3),
            (Algorithm::Argon2id, 64, 1),
        ] {
            let hash = argon2(algorithm, m, t);
            let parsed = PasswordHash::new(&hash).unwrap();
            for password in ["pw", "pw ", "wrong", ""] {
                let expected = Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok();
                assert_eq!(
                    verify_in(&mut memory, password, &hash),
                    expected,
                    "{hash} {password:?}"
                );
            }
        }
        assert_eq!(memory.len(), 512, "grown to the largest hash, and kept");
        let truncated = argon2(Algorithm::Argon2id, 64, 1);
        let truncated = &truncated[..truncated.len() - 4];
        assert!(!verify_in(&mut memory, "pw", truncated));
    }

    #[test]
    fn hash_password_uses_the_documented_parameters() {
        let hash = hash_password("x");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_now("x", &hash) && !verify_now("y", &hash));
    }

    #[test]
    fn every_argon2_variant_and_bcrypt_prefix_is_read_and_verifies() {
        for algorithm in [Algorithm::Argon2id, Algorithm::Argon2i, Algorithm::Argon2d] {
            let hash = argon2(algorithm, 64, 1);
            assert_eq!(
                Scheme::of(&hash),
                Ok(Scheme::Argon2 {
                    algorithm,
                    m_cost: 64,
                    t_cost: 1,
                    p_cost: 1
                })
            );
            assert!(verify_now("pw", &hash) && !verify_now("px", &hash));
        }
        let b = bcrypt::hash("pw", 4).unwrap();
        assert!(b.starts_with("$2b$04$"), "{b}");
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let hash = format!("{prefix}{}", &b[4..]);
            assert_eq!(
                Scheme::of(&hash),
                Ok(Scheme::Bcrypt { cost: 4 }),
                "{prefix}"
            );
            assert!(
                verify_now("pw", &hash) && !verify_now("px", &hash),
                "{prefix}"
            );
        }
    }

    #[test]
    fn a_bcrypt_hash_made_by_another_tool_verifies() {
        // `htpasswd -nbB -C 5 alice 'correct horse'` (Apache's own bcrypt).
        let hash = "$2y$05$KrGrFvbmGGVy0BVsFcXPpOeNtTU2YPqsIS2sUVdrPJc7X50qYwXui";
        assert_eq!(Scheme::of(hash), Ok(Scheme::Bcrypt { cost: 5 }));
        assert!(verify_now("correct horse", hash));
        assert!(!verify_now("correct horsf", hash));
    }

    #[test]
    fn other_schemes_and_damaged_hashes_are_refused() {
        let b = bcrypt::hash("pw", 4).unwrap();
        for (hash, unknown) in [
            ("{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=", true),
            ("$apr1$abc$def", true),
            (
                "$2x$04$abcdefghijklmnopqrstuu5N4yFhNf3.L0gL3.xu2Ygxh6hS9rYu",
                true,
            ),
            ("$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA", true),
            ("plain", true),
            (
                "$argon2id$v=19$m=19456,t=2,p=1$GXoImXgfmHCRJn0cAAcq3A",
                false,
            ),
            (&b[..50], false),
            (
                "$2b$99$abcdefghijklmnopqrstuu5N4yFhNf3.L0gL3.xu2Ygxh6hS9rYu",
                false,
            ),
        ] {
            let err = Scheme::of(hash).unwrap_err();
            assert_eq!(err == HashError::UnknownScheme, unknown, "{hash}: {err}");
            assert!(!verify_now("pw", hash));
        }
    }

    #[test]
    fn weak_parameters_are_named() {
        let weak = |h: &str| Scheme::of(h).unwrap().weakness();
        assert_eq!(weak(&hash_password("x")), None);
        assert!(weak(&argon2(Algorithm::Argon2id, 4096, 3)).is_some());
        assert!(weak(&argon2(Algorithm::Argon2id, 19456, 1)).is_some());
        assert!(weak(&bcrypt::hash("x", 5).unwrap())
            .unwrap()
            .contains("cost 5"));
        assert_eq!(
            Scheme::Bcrypt {
                cost: MIN_BCRYPT_COST
            }
            .weakness(),
            None
        );
    }

    #[test]
    fn the_dummy_hash_follows_the_most_common_scheme() {
        let a = hash_password("a");
        let b1 = bcrypt::hash("b", 5).unwrap();
        let b2 = bcrypt::hash("c", 5).unwrap();
        let dummy = dummy_hash([a.as_str(), b1.as_str(), b2.as_str()].into_iter());
        assert_eq!(Scheme::of(&dummy), Ok(Scheme::Bcrypt { cost: 5 }));
        let dummy = dummy_hash([a.as_str()].into_iter());
        assert!(dummy.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let dummy = dummy_hash(std::iter::empty());
        assert!(dummy.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
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
            busy |= matches!(
                hasher.verify("x".into(), hash.clone()).await,
                Err(LoginError::Busy)
            );
        }
        assert!(busy);
        assert!(matches!(first.await.unwrap(), Ok(true)));
    }
}
