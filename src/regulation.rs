//! Login regulation: failed logins are counted, and too many of them ban further attempts.
//!
//! Three windows, each with its own `max_retries`, `find_time` and `ban_time`: one username from
//! one client address (a guesser at one account), one username from anywhere (a distributed
//! attack on one account, which a fresh address per attempt would otherwise escape), and one
//! address whatever the username (one client trying many accounts). Bans are checked before a
//! password is verified, so a banned attempt costs no hashing, and its answer (429 with
//! `Retry-After`) does not depend on whether the user exists or the password is right: the
//! username is never looked up here. Unknown usernames are counted and banned like known ones.
//!
//! An attempt is counted when it is admitted, before its password is verified, and taken back if
//! it succeeds (or is never verified): a window whose count is full admits nothing more until the
//! attempts in it are decided. Counting only after the hash would let a burst of concurrent
//! guesses all pass the ban check before the first of them failed. The failure that fills a
//! window starts its ban and restarts its count.
//!
//! Counters and bans live in the session store, so every replica sharing the store shares them.
//! Keys are `key_prefix + "r:" + kind + ":" + scope + ":" + hex(SHA-256(...))` with kind `c`
//! (counter) or `b` (ban) and scope `ua`, `u` or `a`: no username or address appears in a key,
//! and each key is touched alone (single-key commands only). Counters expire `find_time` after
//! their first attempt and bans after `ban_time`, so every key has a TTL. IPv6 clients are
//! counted per /64, the block one subscriber usually holds, so that walking through it gives no
//! new allowance.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv6Net;
use sha2::{Digest, Sha256};

use crate::config::{RegulationConfig, RegulationWindow};
use crate::session::{SessionStore, StoreError};

/// Prefix length IPv6 client addresses are counted under.
const IPV6_PREFIX_LEN: u8 = 64;

/// Which failures a window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One username from one client address.
    UserAndAddress,
    /// One username from any address.
    User,
    /// One client address, whatever the username.
    Address,
}

impl Scope {
    /// Every scope, in the order bans are checked.
    pub const ALL: [Scope; 3] = [Scope::UserAndAddress, Scope::User, Scope::Address];

    /// The window's name under `regulation` in the config (and in logs).
    pub fn name(self) -> &'static str {
        match self {
            Scope::UserAndAddress => "per_user_and_address",
            Scope::User => "per_user",
            Scope::Address => "per_address",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Scope::UserAndAddress => "ua",
            Scope::User => "u",
            Scope::Address => "a",
        }
    }
}

/// `Retry-After` for an attempt refused because the attempts ahead of it fill a window: they are
/// being verified now, so the answer (a ban, or room again) is a moment away.
const OVER_LIMIT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Whether a login attempt may be verified.
#[derive(Debug)]
pub enum Admission {
    /// Verify it, then report the outcome with this attempt.
    Admitted(Attempt),
    /// 429: retry after this long.
    Refused {
        /// Time until the ban (or the crowd ahead) is over.
        retry_after: Duration,
    },
}

/// A login attempt admitted and counted, whose outcome is still to be reported.
#[derive(Debug)]
pub struct Attempt {
    keys: Keys,
    /// The count of each window, in [`Scope::ALL`] order, this attempt included.
    counts: [u64; 3],
}

/// Counts failed logins and tells whether an attempt is banned, over the shared store.
pub struct Regulator {
    store: Arc<dyn SessionStore>,
    key_prefix: String,
    config: RegulationConfig,
}

impl std::fmt::Debug for Regulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Regulator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The store keys one login attempt touches.
#[derive(Debug)]
struct Keys {
    /// Per scope, in [`Scope::ALL`] order: `hex(SHA-256(subject))`.
    subjects: [String; 3],
}

impl Keys {
    fn new(username: &str, addr: IpAddr) -> Self {
        let addr = counted_address(addr);
        let mut both = Sha256::new();
        // Length-prefixed, so no (username, address) pair can spell another.
        both.update((username.len() as u64).to_be_bytes());
        both.update(username.as_bytes());
        both.update(addr.as_bytes());
        Keys {
            subjects: [
                hex::encode(both.finalize()),
                hex::encode(Sha256::digest(username.as_bytes())),
                hex::encode(Sha256::digest(addr.as_bytes())),
            ],
        }
    }

    fn key(&self, prefix: &str, kind: &str, scope: Scope) -> String {
        let index = match scope {
            Scope::UserAndAddress => 0,
            Scope::User => 1,
            Scope::Address => 2,
        };
        let subject = &self.subjects[index];
        format!("{prefix}r:{kind}:{}:{subject}", scope.tag())
    }
}

/// The address a client is counted under: itself for IPv4, its /64 for IPv6.
fn counted_address(addr: IpAddr) -> String {
    match addr.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => Ipv6Net::new(v6, IPV6_PREFIX_LEN)
            .expect("64 is a valid IPv6 prefix length")
            .trunc()
            .to_string(),
    }
}

impl Regulator {
    /// Regulation as configured, keeping its state in `store` under `key_prefix`.
    pub fn new(config: &RegulationConfig, key_prefix: &str, store: Arc<dyn SessionStore>) -> Self {
        Self {
            store,
            key_prefix: key_prefix.to_owned(),
            config: config.clone(),
        }
    }

    /// How long a ban in `scope` lasts.
    pub fn ban_time(&self, scope: Scope) -> Duration {
        self.window(scope).ban_time
    }

    fn window(&self, scope: Scope) -> RegulationWindow {
        match scope {
            Scope::UserAndAddress => self.config.per_user_and_address,
            Scope::User => self.config.per_user,
            Scope::Address => self.config.per_address,
        }
    }

    fn key(&self, keys: &Keys, kind: &str, scope: Scope) -> String {
        keys.key(&self.key_prefix, kind, scope)
    }

    /// Whether an attempt as `username` from `addr` is banned: the time until every ban on it
    /// has ended, or `None`.
    pub async fn banned(
        &self,
        username: &str,
        addr: IpAddr,
    ) -> Result<Option<Duration>, StoreError> {
        let keys = Keys::new(username, addr);
        let [ua, u, a] = Scope::ALL.map(|scope| self.key(&keys, "b", scope));
        let left = tokio::try_join!(self.store.ttl(&ua), self.store.ttl(&u), self.store.ttl(&a))?;
        let left = [left.0, left.1, left.2];
        Ok(Scope::ALL
            .into_iter()
            .zip(left)
            // No ban outlives its ban_time; a key without expiry cannot stretch Retry-After.
            .filter_map(|(scope, left)| left.map(|l| l.min(self.window(scope).ban_time)))
            .max())
    }

    /// Admit a login attempt as `username` from `addr`, before any hashing: refused while a ban
    /// covers it, and refused while the attempts already admitted in some window, finished or
    /// still being verified, reach its `max_retries` (so a burst of concurrent guesses gets no
    /// more verifications than one guess after another). An admitted attempt is counted at
    /// once; [`Regulator::succeeded`] and [`Regulator::withdrawn`] take it back.
    pub async fn admit(&self, username: &str, addr: IpAddr) -> Result<Admission, StoreError> {
        if let Some(retry_after) = self.banned(username, addr).await? {
            return Ok(Admission::Refused { retry_after });
        }
        let keys = Keys::new(username, addr);
        let [ua, u, a] = Scope::ALL.map(|scope| self.key(&keys, "c", scope));
        let counts = tokio::try_join!(
            self.store
                .incr(&ua, self.window(Scope::UserAndAddress).find_time),
            self.store.incr(&u, self.window(Scope::User).find_time),
            self.store.incr(&a, self.window(Scope::Address).find_time),
        )?;
        let attempt = Attempt {
            keys,
            counts: [counts.0, counts.1, counts.2],
        };
        let over = Scope::ALL
            .into_iter()
            .zip(attempt.counts)
            .any(|(scope, count)| count > self.window(scope).max_retries);
        if over {
            // The attempts ahead of this one decide: a ban once they fail, or room again once
            // they succeed. Either way this one is not verified, and not counted.
            self.withdrawn(&attempt).await?;
            return Ok(Admission::Refused {
                retry_after: OVER_LIMIT_RETRY_AFTER,
            });
        }
        Ok(Admission::Admitted(attempt))
    }

    /// An admitted attempt failed verification: start the ban of every window it filled (and
    /// restart that window's count, so the ban is the whole penalty); returns those scopes.
    pub async fn failed(&self, attempt: &Attempt) -> Result<Vec<Scope>, StoreError> {
        let mut started = Vec::new();
        for (scope, count) in Scope::ALL.into_iter().zip(attempt.counts) {
            let window = self.window(scope);
            if count < window.max_retries {
                continue;
            }
            // NX: a ban already running is not extended by the attempts that race it.
            let ban = self.key(&attempt.keys, "b", scope);
            if self.store.create(&ban, b"1", window.ban_time).await? {
                started.push(scope);
            }
            self.store
                .delete(&self.key(&attempt.keys, "c", scope))
                .await?;
        }
        Ok(started)
    }

    /// An admitted attempt succeeded: it forgets the failures of this username from this address
    /// and is itself taken back from the other windows (a success does not vouch for other
    /// clients or other accounts, but is no failure either).
    pub async fn succeeded(&self, attempt: &Attempt) -> Result<(), StoreError> {
        let [ua, u, a] = Scope::ALL.map(|scope| self.key(&attempt.keys, "c", scope));
        tokio::try_join!(
            self.store.delete(&ua),
            self.store.decr(&u),
            self.store.decr(&a)
        )?;
        Ok(())
    }

    /// An admitted attempt was never verified (the hashing queue was full): take it back.
    pub async fn withdrawn(&self, attempt: &Attempt) -> Result<(), StoreError> {
        let [ua, u, a] = Scope::ALL.map(|scope| self.key(&attempt.keys, "c", scope));
        tokio::try_join!(
            self.store.decr(&ua),
            self.store.decr(&u),
            self.store.decr(&a)
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::store::MemoryStore;

    const LONG: Duration = Duration::from_secs(600);

    fn window(max_retries: u64, ban_time: Duration) -> RegulationWindow {
        RegulationWindow {
            max_retries,
            find_time: LONG,
            ban_time,
        }
    }

    fn regulator(ua: u64, u: u64, a: u64) -> Regulator {
        let config = RegulationConfig {
            per_user_and_address: window(ua, Duration::from_secs(300)),
            per_user: window(u, Duration::from_secs(60)),
            per_address: window(a, Duration::from_secs(120)),
        };
        Regulator::new(&config, "p:", Arc::new(MemoryStore::new()))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// One attempt that is admitted and then fails; the scopes whose ban it started.
    async fn fail(r: &Regulator, name: &str, addr: IpAddr) -> Vec<Scope> {
        let attempt = admitted(r, name, addr).await;
        r.failed(&attempt).await.unwrap()
    }

    async fn admitted(r: &Regulator, name: &str, addr: IpAddr) -> Attempt {
        match r.admit(name, addr).await.unwrap() {
            Admission::Admitted(attempt) => attempt,
            Admission::Refused { retry_after } => panic!("refused, retry after {retry_after:?}"),
        }
    }

    async fn refused(r: &Regulator, name: &str, addr: IpAddr) -> Duration {
        match r.admit(name, addr).await.unwrap() {
            Admission::Admitted(_) => panic!("admitted"),
            Admission::Refused { retry_after } => retry_after,
        }
    }

    #[tokio::test]
    async fn reaching_max_retries_bans_and_reports_the_scope_once() {
        let r = regulator(3, 100, 100);
        let addr = ip("198.51.100.7");
        for _ in 0..2 {
            assert_eq!(fail(&r, "alice", addr).await, []);
            assert_eq!(r.banned("alice", addr).await.unwrap(), None);
        }
        assert_eq!(fail(&r, "alice", addr).await, [Scope::UserAndAddress]);
        let left = refused(&r, "alice", addr).await;
        assert!(left > Duration::from_secs(299) && left <= Duration::from_secs(300));
        // Other users from the address, and the user from elsewhere, are not banned.
        assert_eq!(r.banned("bob", addr).await.unwrap(), None);
        assert_eq!(r.banned("alice", ip("198.51.100.8")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_burst_of_concurrent_attempts_gets_no_more_verifications_than_max_retries() {
        let r = regulator(3, 100, 100);
        let addr = ip("198.51.100.7");
        let mut in_flight = Vec::new();
        for _ in 0..3 {
            in_flight.push(admitted(&r, "alice", addr).await);
        }
        // Before any of them is decided, no ban exists, yet the window is full.
        assert_eq!(r.banned("alice", addr).await.unwrap(), None);
        for _ in 0..20 {
            assert_eq!(refused(&r, "alice", addr).await, OVER_LIMIT_RETRY_AFTER);
        }
        // The refused ones were not counted: the third failure is the one that bans, once.
        let mut started = Vec::new();
        for attempt in &in_flight {
            started.extend(r.failed(attempt).await.unwrap());
        }
        assert_eq!(started, [Scope::UserAndAddress]);
        assert!(refused(&r, "alice", addr).await > Duration::from_secs(299));
    }

    #[tokio::test]
    async fn a_crowd_of_successes_frees_its_room_again() {
        let r = regulator(2, 100, 100);
        let addr = ip("198.51.100.7");
        let (a, b) = (
            admitted(&r, "alice", addr).await,
            admitted(&r, "alice", addr).await,
        );
        assert_eq!(refused(&r, "alice", addr).await, OVER_LIMIT_RETRY_AFTER);
        r.succeeded(&a).await.unwrap();
        r.withdrawn(&b).await.unwrap();
        // Nothing failed, so nothing is held against the next attempts.
        assert_eq!(fail(&r, "alice", addr).await, []);
        assert_eq!(fail(&r, "alice", addr).await, [Scope::UserAndAddress]);
    }

    #[tokio::test]
    async fn after_a_ban_the_window_counts_anew() {
        let config = RegulationConfig {
            per_user_and_address: RegulationWindow {
                max_retries: 2,
                find_time: LONG,
                ban_time: Duration::from_millis(50),
            },
            per_user: window(100, LONG),
            per_address: window(100, LONG),
        };
        let r = Regulator::new(&config, "p:", Arc::new(MemoryStore::new()));
        let addr = ip("198.51.100.7");
        fail(&r, "alice", addr).await;
        assert_eq!(fail(&r, "alice", addr).await, [Scope::UserAndAddress]);
        tokio::time::sleep(Duration::from_millis(80)).await;
        // The ban was the whole penalty: the next two attempts are verified again.
        assert_eq!(fail(&r, "alice", addr).await, []);
        assert_eq!(fail(&r, "alice", addr).await, [Scope::UserAndAddress]);
    }

    #[tokio::test]
    async fn per_user_catches_a_new_address_every_time() {
        let r = regulator(100, 3, 100);
        for n in 1..=3 {
            fail(&r, "alice", ip(&format!("198.51.100.{n}"))).await;
        }
        let left = r.banned("alice", ip("203.0.113.1")).await.unwrap().unwrap();
        assert!(left > Duration::from_secs(59) && left <= Duration::from_secs(60));
        assert_eq!(r.banned("bob", ip("198.51.100.1")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn per_address_catches_a_new_username_every_time_and_the_longest_ban_wins() {
        let r = regulator(100, 2, 3);
        let addr = ip("198.51.100.7");
        fail(&r, "alice", addr).await;
        assert_eq!(fail(&r, "alice", addr).await, [Scope::User]);
        assert_eq!(fail(&r, "carol", addr).await, [Scope::Address]);
        assert!(r.banned("dave", addr).await.unwrap().is_some());
        // alice is under both bans: the answer waits for the later one (per_address, 120 s).
        let left = r.banned("alice", addr).await.unwrap().unwrap();
        assert!(left > Duration::from_secs(60), "{left:?}");
    }

    #[tokio::test]
    async fn unknown_and_known_names_are_the_same_to_the_regulator() {
        // The regulator never sees the users list: any name is counted alike.
        let r = regulator(2, 100, 100);
        let addr = ip("198.51.100.7");
        for name in ["alice", "no-such-user"] {
            fail(&r, name, addr).await;
            assert_eq!(fail(&r, name, addr).await, [Scope::UserAndAddress]);
            assert!(r.banned(name, addr).await.unwrap().is_some());
        }
    }

    #[tokio::test]
    async fn success_forgets_only_the_user_and_address_failures() {
        let r = regulator(3, 4, 100);
        let addr = ip("198.51.100.7");
        for _ in 0..2 {
            fail(&r, "alice", addr).await;
        }
        let attempt = admitted(&r, "alice", addr).await;
        r.succeeded(&attempt).await.unwrap();
        assert_eq!(fail(&r, "alice", addr).await, []);
        // per_user still counted all three failures (not the success); the fourth bans.
        assert_eq!(fail(&r, "alice", addr).await, [Scope::User]);
    }

    #[tokio::test]
    async fn ipv6_clients_are_counted_per_64() {
        let r = regulator(2, 100, 100);
        fail(&r, "alice", ip("2001:db8:1:2::1")).await;
        fail(&r, "alice", ip("2001:db8:1:2:ffff::9")).await;
        assert!(r
            .banned("alice", ip("2001:db8:1:2::77"))
            .await
            .unwrap()
            .is_some());
        assert_eq!(
            r.banned("alice", ip("2001:db8:1:3::1")).await.unwrap(),
            None
        );
        // A mapped IPv4 address is the IPv4 address.
        fail(&r, "bob", ip("::ffff:198.51.100.7")).await;
        fail(&r, "bob", ip("198.51.100.7")).await;
        assert!(r.banned("bob", ip("198.51.100.7")).await.unwrap().is_some());
    }

    #[test]
    fn keys_are_prefixed_hashes_that_name_no_user_or_address() {
        let keys = Keys::new("alice", ip("198.51.100.7"));
        let all: Vec<String> = ["c", "b"]
            .into_iter()
            .flat_map(|kind| Scope::ALL.map(|s| keys.key("portcullis:", kind, s)))
            .collect();
        for key in &all {
            assert!(key.starts_with("portcullis:r:"), "{key}");
            assert!(!key.contains("alice") && !key.contains("198.51"), "{key}");
            assert_eq!(key.rsplit(':').next().unwrap().len(), 64, "{key}");
        }
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len());
        assert_eq!(
            keys.key("p:", "c", Scope::User),
            format!("p:r:c:u:{}", hex::encode(Sha256::digest(b"alice")))
        );
        // The pair is unambiguous: moving characters between its parts changes the key.
        let a = Keys::new("ab", ip("1.2.3.4")).key("", "c", Scope::UserAndAddress);
        let b = Keys::new("a", ip("1.2.3.4")).key("", "c", Scope::UserAndAddress);
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn a_store_error_is_an_error_never_a_pass() {
        struct Down;
        impl SessionStore for Down {
            fn create<'a>(
                &'a self,
                _: &'a str,
                _: &'a [u8],
                _: Duration,
            ) -> crate::session::store::StoreFuture<'a, bool> {
                Box::pin(async { Err(StoreError::Timeout) })
            }
            fn load<'a>(
                &'a self,
                _: &'a str,
            ) -> crate::session::store::StoreFuture<'a, Option<Vec<u8>>> {
                Box::pin(async { Err(StoreError::Timeout) })
            }
            fn touch<'a>(
                &'a self,
                _: &'a str,
                _: &'a [u8],
                _: Duration,
            ) -> crate::session::store::StoreFuture<'a, bool> {
                Box::pin(async { Err(StoreError::Timeout) })
            }
            fn delete<'a>(&'a self, _: &'a str) -> crate::session::store::StoreFuture<'a, ()> {
                Box::pin(async { Err(StoreError::Timeout) })
            }
            fn incr<'a>(
                &'a self,
                _: &'a str,
                _: Duration,
            ) -> crate::session::store::StoreFuture<'a, u64> {
                Box::pin(async { Err(StoreError::Timeout) })
            }
            fn decr<'a>(&'a self, _: &'a str) -> crate::session::store::StoreFuture<'a, ()> {
                Box::pin(async { Err(StoreError::Timeout) })
            }
            fn ttl<'a>(
                &'a self,
                _: &'a str,
            ) -> crate::session::store::StoreFuture<'a, Option<Duration>> {
                Box::pin(async { Err(StoreError::Timeout) })
            }
            fn ping(&self) -> crate::session::store::StoreFuture<'_, ()> {
                Box::pin(async { Err(StoreError::Timeout) })
            }
            fn publish<'a>(
                &'a self,
                _: &'a str,
                _: &'a str,
            ) -> crate::session::store::StoreFuture<'a, ()> {
                Box::pin(async { Err(StoreError::Timeout) })
            }
            fn sorted_add<'a>(
                &'a self,
                _: &'a str,
                _: &'a str,
                _: u64,
                _: Duration,
            ) -> crate::session::store::StoreFuture<'a, ()> {
                Box::pin(async { Err(StoreError::Timeout) })
            }
            fn sorted_range<'a>(
                &'a self,
                _: &'a str,
            ) -> crate::session::store::StoreFuture<'a, Vec<(String, u64)>> {
                Box::pin(async { Err(StoreError::Timeout) })
            }
            fn sorted_remove<'a>(
                &'a self,
                _: &'a str,
                _: &'a [String],
            ) -> crate::session::store::StoreFuture<'a, ()> {
                Box::pin(async { Err(StoreError::Timeout) })
            }
            fn sorted_remove_through<'a>(
                &'a self,
                _: &'a str,
                _: u64,
            ) -> crate::session::store::StoreFuture<'a, ()> {
                Box::pin(async { Err(StoreError::Timeout) })
            }
        }
        let config = RegulationConfig {
            per_user_and_address: window(1, LONG),
            per_user: window(1, LONG),
            per_address: window(1, LONG),
        };
        let r = Regulator::new(&config, "p:", Arc::new(Down));
        let addr = ip("198.51.100.7");
        assert!(r.banned("alice", addr).await.is_err());
        assert!(r.admit("alice", addr).await.is_err());
    }
}
