//! Sessions: ids, signed cookies, records, and the lifecycle rules around them.
//!
//! A session id is 256 bits from the OS; the cookie carries the id and an HMAC of it, so a forged
//! or damaged cookie is refused without touching the store. The store key is a SHA-256 of the id,
//! so neither a key listing nor a log line can be replayed as a cookie. Each user's sessions are
//! also listed in an index ([`index`]), so a user or an operator can see and end them. With
//! `session.bearer`, the same signed value may come as `Authorization: Bearer` instead of the
//! cookie ([`Credential`]); a request carrying both is refused, never resolved by choosing.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bearer::bearer_token;
use crate::config::{CookieConfig, Secret, SessionConfig};
use crate::headers::cookie_pairs;
use crate::identity::{LoggedIn, Source, Users};

pub mod cache;
pub mod index;
pub mod signing;
pub mod store;

pub use cache::SessionCache;
pub use index::ListedSession;
pub use signing::{CookieSigner, Verified};
pub use store::{SessionStore, StoreError};

/// Length of a session id in bytes (256 bits).
const ID_LEN: usize = 32;
/// A session id: 256 random bits. Never logged, never stored as such.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId([u8; ID_LEN]);

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

impl SessionId {
    /// A fresh id from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut id = [0u8; ID_LEN];
        getrandom::getrandom(&mut id).expect("the OS random number generator failed");
        Self(id)
    }

    /// `hex(SHA-256(id))`: the part of the store key that names this session, and its member in
    /// the user's index.
    pub fn digest_hex(&self) -> String {
        hex::encode(Sha256::digest(self.0))
    }

    /// The session's handle: the first [`index::HANDLE_LEN`] characters of
    /// [`SessionId::digest_hex`], which names it to its user without giving away the id.
    pub fn handle(&self) -> String {
        let mut digest = self.digest_hex();
        digest.truncate(index::HANDLE_LEN);
        digest
    }
}

/// What the store holds for one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// User name.
    pub user: String,
    /// Roles at login. For a local session, for display only: the current users entry is
    /// authoritative. For a delegated one (`source: upstream_check`), the roles it has.
    pub roles: Vec<String>,
    /// Which identity source created the session (records from before sources existed are
    /// local ones).
    #[serde(default)]
    pub source: Source,
    /// Fingerprint of the credential the session was created from (empty when delegated).
    pub credential: String,
    /// Creation time, ms since the Unix epoch.
    pub created_at: u64,
    /// Last refresh of the idle deadline, ms since the Unix epoch.
    pub last_seen_at: u64,
    /// Idle deadline, ms since the Unix epoch.
    pub idle_expires_at: u64,
    /// Absolute deadline, ms since the Unix epoch; never extended.
    pub expires_at: u64,
    /// Client address at login.
    pub client_addr: String,
    /// User agent at login.
    pub user_agent: String,
}

impl SessionRecord {
    /// Time left until the record must be gone: the earlier of both deadlines.
    fn ttl(&self, now: u64) -> Duration {
        Duration::from_millis(
            self.idle_expires_at
                .min(self.expires_at)
                .saturating_sub(now),
        )
    }
}

/// The session cookie as found in a request's `Cookie` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieLookup<'a> {
    /// No cookie of that name.
    Absent,
    /// More than one: never pick one.
    Duplicate,
    /// Exactly one, with this raw value.
    Present(&'a [u8]),
}

/// The session credential a request carries: its session cookie or, with `session.bearer`, an
/// `Authorization: Bearer` token (the same signed value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// Neither.
    Absent,
    /// The session cookie, more than once: never pick one (no session).
    DuplicateCookie,
    /// Exactly one session cookie, with this raw value.
    Cookie(&'a [u8]),
    /// A bearer token: header-borne, so no browser attaches it to a request by itself.
    Bearer(&'a [u8]),
}

impl Credential<'_> {
    /// Whether a browser would have attached it on its own (the case the origin check is for).
    pub fn is_cookie(&self) -> bool {
        matches!(self, Credential::Cookie(_) | Credential::DuplicateCookie)
    }
}

/// A request that carries two credentials (a session cookie and a bearer token, or a bearer
/// token beside another `Authorization` field): refused (400), never resolved by choosing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request carries more than one session credential")]
pub struct AmbiguousCredential;

/// A valid session for the current request.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    /// The session id.
    pub id: SessionId,
    /// The stored record (after any refresh).
    pub record: SessionRecord,
    /// Current roles (from the users list for a local session, the record for a delegated one).
    pub roles: Vec<String>,
    /// Current display name, when known.
    pub display_name: Option<String>,
    /// Current e-mail address, when known.
    pub email: Option<String>,
    /// The cookie verified under an older secret: re-issue it when convenient.
    pub stale_key: bool,
    /// The session came as a bearer token, not a cookie.
    pub bearer: bool,
}

/// Sessions over a store: create, resolve a request's cookie, end.
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    /// Swapped whole when the secrets are reloaded: a request signs and verifies with one set.
    signer: ArcSwap<CookieSigner>,
    key_prefix: String,
    idle_timeout: Duration,
    absolute_timeout: Duration,
    max_per_user: Option<usize>,
    bearer: bool,
    cookie: CookieConfig,
    /// Records recently read, when `session.cache_ttl` is on (Redis only).
    cache: Option<Arc<SessionCache>>,
    /// Where an ended session's digest is published, for the other replicas' caches.
    ended_channel: String,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("cookie", &self.cookie.name)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// Sessions as configured, over `store`.
    pub fn new(config: &SessionConfig, store: Arc<dyn SessionStore>) -> Self {
        Self {
            store,
            signer: ArcSwap::from_pointee(CookieSigner::new(&config.secrets)),
            key_prefix: config.key_prefix.clone(),
            idle_timeout: config.idle_timeout,
            absolute_timeout: config.absolute_timeout,
            max_per_user: config.max_per_user,
            bearer: config.bearer,
            cookie: config.cookie.clone(),
            cache: None,
            ended_channel: ended_channel(&config.key_prefix),
        }
    }

    /// Keep recently read records in `cache` (which the caller keeps live by listening on
    /// [`Sessions::ended_channel`]).
    pub fn with_cache(mut self, cache: Arc<SessionCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The cache of records, if on.
    pub fn cache(&self) -> Option<&Arc<SessionCache>> {
        self.cache.as_ref()
    }

    /// The channel on which every ended session's digest is published.
    pub fn ended_channel(&self) -> &str {
        &self.ended_channel
    }

    /// Sign and verify with `secrets` from now on (a config reload); the first signs.
    pub fn set_secrets(&self, secrets: &[Secret<Vec<u8>>]) {
        self.signer.store(Arc::new(CookieSigner::new(secrets)));
    }

    /// The underlying store (for health checks).
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &str {
        &self.cookie.name
    }

    /// Find the session cookie in every `Cookie` field of `headers`.
    pub fn find_cookie<'h>(&self, headers: &'h HeaderMap) -> CookieLookup<'h> {
        let mut found = CookieLookup::Absent;
        for (name, value) in cookie_pairs(headers) {
            if name == self.cookie.name.as_bytes() {
                if found != CookieLookup::Absent {
                    return CookieLookup::Duplicate;
                }
                found = CookieLookup::Present(value);
            }
        }
        found
    }

    /// Whether bearer tokens are on (`session.bearer`).
    pub fn bearer_enabled(&self) -> bool {
        self.bearer
    }

    /// The credential the request carries. `Authorization` is read only with `session.bearer`.
    pub fn find_credential<'h>(
        &self,
        headers: &'h HeaderMap,
    ) -> Result<Credential<'h>, AmbiguousCredential> {
        let bearer = if self.bearer {
            bearer_token(headers).map_err(|_| AmbiguousCredential)?
        } else {
            None
        };
        match (self.find_cookie(headers), bearer) {
            (CookieLookup::Absent, None) => Ok(Credential::Absent),
            (CookieLookup::Absent, Some(token)) => Ok(Credential::Bearer(token)),
            (CookieLookup::Duplicate, None) => Ok(Credential::DuplicateCookie),
            (CookieLookup::Present(value), None) => Ok(Credential::Cookie(value)),
            (_, Some(_)) => Err(AmbiguousCredential),
        }
    }

    /// Whether `token` is a session token of ours (its signature verifies; the session may have
    /// ended). Such a token is Portcullis's credential and never goes to the upstream.
    pub fn is_own_token(&self, token: &[u8]) -> bool {
        self.bearer && self.signer.load().verify(token).is_some()
    }

    /// Start a session for a login and return the signed cookie value with the record. Its
    /// absolute deadline is `absolute_timeout` away, or the login's `max_age` if that is sooner.
    /// The session enters the user's index first, so no session ever exists that the index does not list
    /// (an entry whose session was never written is pruned later); with
    /// `session.max_per_user`, the user's oldest sessions beyond it end here.
    pub async fn create(
        &self,
        login: &LoggedIn,
        client_addr: String,
        user_agent: String,
    ) -> Result<(String, SessionRecord), StoreError> {
        let now = now_ms();
        let lifetime = login
            .max_age
            .map_or(self.absolute_timeout, |age| age.min(self.absolute_timeout));
        let expires_at = now.saturating_add(ms(lifetime));
        let record = SessionRecord {
            user: login.user.clone(),
            roles: login.roles.clone(),
            source: login.source,
            credential: login.credential.clone(),
            created_at: now,
            last_seen_at: now,
            idle_expires_at: now.saturating_add(ms(self.idle_timeout)).min(expires_at),
            expires_at,
            client_addr,
            user_agent,
        };
        let value = serde_json::to_vec(&record).expect("a record always serializes");
        self.prune_index(&record.user, now).await?;
        loop {
            let id = SessionId::generate();
            let digest = id.digest_hex();
            self.index_add(&record.user, &digest, record.expires_at)
                .await?;
            // NX: a record is only ever written under an id generated right here.
            if self
                .store
                .create(&self.key_of(&digest), &value, record.ttl(now))
                .await?
            {
                if let Some(max) = self.max_per_user {
                    self.evict_beyond(&record.user, &digest, max).await?;
                }
                return Ok((self.signer.load().sign(&id), record));
            }
        }
    }

    /// Resolve the request's session: `Ok(None)` for no cookie, a duplicate, a bad signature,
    /// an unknown or expired record, or an identity that no longer holds under `users` and
    /// `sources` ([`crate::identity::current`]; that record is deleted). A verified cookie costs
    /// one store read, plus one write at most every quarter of the idle timeout.
    /// With `session.bearer`, the session may come as a bearer token instead; a request carrying
    /// both is no session here (callers refuse it first, with [`Sessions::find_credential`]).
    pub async fn resolve(
        &self,
        headers: &HeaderMap,
        users: &Users,
        sources: &[Source],
    ) -> Result<Option<ActiveSession>, StoreError> {
        let (value, bearer) = match self.find_credential(headers) {
            Ok(Credential::Cookie(value)) => (value, false),
            Ok(Credential::Bearer(token)) => (token, true),
            Ok(Credential::Absent) | Err(AmbiguousCredential) => return Ok(None),
            Ok(Credential::DuplicateCookie) => {
                tracing::warn!(cookie = %self.cookie.name, "session cookie sent more than once; treated as no session");
                return Ok(None);
            }
        };
        let Some(Verified { id, stale_key }) = self.signer.load().verify(value) else {
            return Ok(None);
        };
        let digest = id.digest_hex();
        let key = self.key_of(&digest);
        let cached = match &self.cache {
            Some(cache) => Some(cache.get_or_load(&digest, self.read(&digest)).await?),
            None => None,
        };
        let record = match &cached {
            Some(entry) => entry.record.clone(),
            None => self.read(&digest).await?,
        };
        let Some(mut record) = record else {
            return Ok(None);
        };
        let now = now_ms();
        if now >= record.expires_at || now >= record.idle_expires_at {
            // Outlived its own deadlines (a TTL set by a skewed clock, or written by hand).
            self.end_digest(&record.user, &digest).await?;
            return Ok(None);
        }
        let current = crate::identity::current(
            users,
            sources,
            record.source,
            &record.user,
            &record.credential,
            &record.roles,
        );
        let Some(current) = current else {
            tracing::info!(
                user = %record.user,
                "session ended: user removed, disabled, credential changed, shadowed by a local \
                 user, or its identity source is no longer configured"
            );
            self.end_digest(&record.user, &digest).await?;
            return Ok(None);
        };
        let idle = ms(self.idle_timeout);
        let extended = now.saturating_add(idle).min(record.expires_at);
        // Near the absolute deadline the idle deadline cannot move any more: no write then. Of
        // the requests sharing one cached record, only the first writes the refresh back.
        if record.idle_expires_at.saturating_sub(now) < idle / 4 * 3
            && extended > record.idle_expires_at
            && cached.as_ref().is_none_or(|entry| entry.claim_refresh())
        {
            let generation = self.cache.as_ref().map(|cache| cache.generation());
            record.last_seen_at = now;
            record.idle_expires_at = extended;
            let value = serde_json::to_vec(&record).expect("a record always serializes");
            if !self.store.touch(&key, &value, record.ttl(now)).await? {
                if let Some(cache) = &self.cache {
                    cache.forget(&digest).await;
                }
                return Ok(None);
            }
            if let (Some(cache), Some(generation)) = (&self.cache, generation) {
                cache.replace(&digest, record.clone(), generation).await;
            }
        }
        Ok(Some(ActiveSession {
            id,
            record,
            roles: current.roles,
            display_name: current.display_name,
            email: current.email,
            stale_key,
            bearer,
        }))
    }

    /// Delete a session's record and its entry in its user's index (read from the record).
    pub async fn end(&self, id: &SessionId) -> Result<(), StoreError> {
        let digest = id.digest_hex();
        let Some(raw) = self.store.load(&self.key_of(&digest)).await? else {
            return Ok(());
        };
        match serde_json::from_slice::<SessionRecord>(&raw) {
            Ok(record) => self.end_digest(&record.user, &digest).await,
            // Without a user there is no index to clean: the entry is pruned when next read.
            Err(_) => self.delete_record(&digest).await,
        }
    }

    /// The record of the session named by `digest`, from the store. An unreadable one is
    /// deleted and reads as none.
    async fn read(&self, digest: &str) -> Result<Option<SessionRecord>, StoreError> {
        let Some(raw) = self.store.load(&self.key_of(digest)).await? else {
            return Ok(None);
        };
        match serde_json::from_slice::<SessionRecord>(&raw) {
            Ok(record) => Ok(Some(record)),
            Err(_) => {
                // Its user is unknown, so its index entry is left to be pruned when next read.
                tracing::warn!("unreadable session record deleted");
                self.delete_record(digest).await?;
                Ok(None)
            }
        }
    }

    /// Delete the record of the session named by `digest`, then make sure no cache serves it:
    /// this replica's at once (before the caller answers), every other replica's through the
    /// ended channel. Every session ends through here.
    async fn delete_record(&self, digest: &str) -> Result<(), StoreError> {
        self.store.delete(&self.key_of(digest)).await?;
        if let Some(cache) = &self.cache {
            cache.forget(digest).await;
        }
        if let Err(error) = self.store.publish(&self.ended_channel, digest).await {
            // The session is gone from the store; a replica that cached it refuses it once its
            // entry expires (session.cache_ttl).
            tracing::warn!(%error, "could not announce an ended session to the other replicas");
        }
        Ok(())
    }

    /// Every correctly signed session id in the request's cookies (and its bearer token, with
    /// `session.bearer`). Authentication never picks one of several; ending sessions (logout, a
    /// new login) ends them all.
    pub fn verified_ids(&self, headers: &HeaderMap) -> Vec<SessionId> {
        let signer = self.signer.load();
        let token = match self.bearer {
            true => bearer_token(headers).ok().flatten(),
            false => None,
        };
        cookie_pairs(headers)
            .filter(|(name, _)| *name == self.cookie.name.as_bytes())
            .map(|(_, value)| value)
            .chain(token)
            .filter_map(|value| signer.verify(value).map(|v| v.id))
            .collect()
    }

    /// Delete the records of every session in `ids`.
    pub async fn end_all(&self, ids: &[SessionId]) -> Result<(), StoreError> {
        for id in ids {
            self.end(id).await?;
        }
        Ok(())
    }

    /// A `Set-Cookie` value carrying `id`, signed with the first secret, for the session of
    /// `record` (the cookie lasts as long as the session can).
    pub fn set_cookie(&self, id: &SessionId, record: &SessionRecord) -> HeaderValue {
        self.set_cookie_value(self.signer.load().sign(id), record)
    }

    /// A `Set-Cookie` value carrying an already signed cookie value for the session of `record`.
    pub fn set_cookie_value(&self, value: String, record: &SessionRecord) -> HeaderValue {
        // Rounded up: a fresh session's cookie lasts exactly its lifetime.
        let left_ms = record.expires_at.saturating_sub(now_ms());
        self.cookie_header(value, Duration::from_secs(left_ms.div_ceil(1000)))
    }

    /// A `Set-Cookie` value that expires the session cookie.
    pub fn clear_cookie(&self) -> HeaderValue {
        self.cookie_header(String::new(), Duration::ZERO)
    }

    fn cookie_header(&self, value: String, max_age: Duration) -> HeaderValue {
        let max_age =
            cookie::time::Duration::seconds(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX));
        let mut cookie = cookie::Cookie::build((self.cookie.name.clone(), value))
            .path(self.cookie.path.clone())
            .http_only(true)
            .secure(self.cookie.secure)
            .same_site(self.cookie.same_site)
            .max_age(max_age)
            .build();
        if let Some(domain) = &self.cookie.domain {
            cookie.set_domain(domain.clone());
        }
        HeaderValue::try_from(cookie.to_string())
            .expect("cookie name, value and attributes are validated header-safe")
    }

    /// The store key of the session whose id hashes to `digest` (`hex(SHA-256(id))`).
    fn key_of(&self, digest: &str) -> String {
        format!("{}s:{digest}", self.key_prefix)
    }
}

/// The channel on which ended sessions are announced, for a store under `key_prefix`.
pub fn ended_channel(key_prefix: &str) -> String {
    format!("{key_prefix}ended")
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    ms(since)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// RFC 3339 (UTC, seconds) for a ms-since-epoch timestamp.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    use super::*;

    #[test]
    fn store_key_is_a_hash_of_the_id() {
        let id = SessionId::generate();
        let digest = id.digest_hex();
        assert_eq!(digest.len(), 64);
        assert!(!digest.contains(&URL_SAFE_NO_PAD.encode(id.0)));
        assert_eq!(format!("{id:?}"), "SessionId([redacted])");
    }
}
