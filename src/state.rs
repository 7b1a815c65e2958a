//! The state shared by every request, built once at start-up. What a config reload may change
//! (users, access rules, session secrets) is swapped whole, so a request sees one version.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::access::RuleSet;
use crate::config::{Config, StoreConfig};
use crate::forward::Upstream;
use crate::identity::{Directory, Hasher, UpstreamCheck, Users};
use crate::metrics::Metrics;
use crate::regulation::Regulator;
use crate::session::store::{self, MemoryStore, MeteredStore, RedisStore};
use crate::session::{SessionCache, SessionStore, Sessions};
use crate::tunnel::Tunnels;

/// Everything a request needs: config, sessions, users, the upstream client and its tunnels,
/// metrics, health flags.
#[derive(Debug)]
pub struct AppState {
    /// The configuration as loaded at start. Its `users` and `access` are not read after start:
    /// [`AppState::policy`] holds the current ones, and the session secrets live in `sessions`.
    pub config: Config,
    /// Users and access rules, swapped whole by [`AppState::reload`].
    policy: ArcSwap<Policy>,
    /// Session lifecycle over the configured store.
    pub sessions: Sessions,
    /// Failed-login regulation over the same store.
    pub regulator: Regulator,
    /// The password hashing pool.
    pub hasher: Hasher,
    /// The delegated credential check, when configured.
    pub upstream_check: Option<UpstreamCheck>,
    /// The upstream client.
    pub upstream: Upstream,
    /// What `/metrics` reports.
    pub metrics: Metrics,
    /// Open WebSocket tunnels (closed together at the end of shutdown).
    pub tunnels: Tunnels,
    /// Set once shutdown starts: readiness fails so load balancers stop sending.
    pub draining: AtomicBool,
    /// Result of the last store health check.
    pub store_up: AtomicBool,
}

/// What a config reload replaces: who may log in and what each request may do.
#[derive(Debug)]
pub struct Policy {
    /// Local users.
    pub users: Users,
    /// Access rules.
    pub access: RuleSet,
    /// The `users_file` these users came from, watched for changes ([`crate::reload`]).
    pub users_file: Option<PathBuf>,
}

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The connection worker serving it (which upstream pool its requests use).
    pub worker: usize,
}

/// The store could not be set up (a Redis URL or CA file the redis crate refused).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the session store")]
pub struct StoreSetupError(#[source] redis::RedisError);

/// The store `config` names, unmeasured. Must run inside a Tokio runtime (the memory store
/// starts its sweeper; Redis connects lazily, so a Redis that is down is no error here).
pub fn open_store(config: &StoreConfig) -> Result<Arc<dyn SessionStore>, StoreSetupError> {
    Ok(match config {
        StoreConfig::Memory => {
            let store = MemoryStore::new();
            store.spawn_sweeper();
            Arc::new(store)
        }
        StoreConfig::Redis(redis) => Arc::new(RedisStore::connect(redis).map_err(StoreSetupError)?),
    })
}

impl AppState {
    /// Build the state from a validated config. Must run inside a Tokio runtime.
    pub fn new(config: Config) -> Result<Arc<Self>, StoreSetupError> {
        let metrics = Metrics::new();
        let backend = open_store(&config.session.store)?;
        let store: Arc<dyn SessionStore> =
            Arc::new(MeteredStore::new(backend, metrics.store().clone()));
        let mut sessions = Sessions::new(&config.session, Arc::clone(&store));
        if let (StoreConfig::Redis(redis), Some(cache)) =
            (&config.session.store, &config.session.cache)
        {
            let cache = Arc::new(SessionCache::new(cache, metrics.cache().clone()));
            store::redis::listen(
                redis,
                sessions.ended_channel().to_owned(),
                Arc::clone(&cache),
            )
            .map_err(StoreSetupError)?;
            sessions = sessions.with_cache(cache);
        }
        Ok(Arc::new(Self {
            sessions,
            regulator: Regulator::new(&config.regulation, &config.session.key_prefix, store),
            policy: ArcSwap::from_pointee(Policy::of(&config)),
            hasher: Hasher::new(
                config.identity.max_concurrent_hashes,
                config.identity.hash_queue,
            ),
            upstream_check: config
                .identity
                .upstream_check
                .as_ref()
                .map(UpstreamCheck::new),
            upstream: Upstream::new(&config.upstream, config.server.workers),
            metrics,
            tunnels: Tunnels::new(config.upstream.websocket_max_lifetime),
            draining: AtomicBool::new(false),
            store_up: AtomicBool::new(true),
            config,
        }))
    }

    /// The current users and access rules.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// Take the users, access rules and session secrets of `config` (a reload); every other key
    /// keeps its start-up value until a restart. A generated secret (memory store without
    /// `session.secrets`) is kept, so a reload never logs everyone out by accident.
    pub fn reload(&self, config: &Config) {
        self.policy.store(Arc::new(Policy::of(config)));
        if !config.session.secret_generated {
            self.sessions.set_secrets(&config.session.secrets);
        }
    }

    /// The identity sources a login is tried against, over `policy`'s users.
    pub fn directory<'a>(&'a self, policy: &'a Policy) -> Directory<'a> {
        Directory {
            sources: &self.config.identity.sources,
            users: &policy.users,
            hasher: &self.hasher,
            check: self.upstream_check.as_ref(),
        }
    }

    /// Whether shutdown has started.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

impl Policy {
    /// The users, rules and users file `config` sets.
    fn of(config: &Config) -> Self {
        Self {
            users: Users::new(config.users.clone()),
            access: config.access.clone(),
            users_file: config.users_file.clone(),
        }
    }
}
