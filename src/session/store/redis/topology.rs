//! The connection behind a [`RedisStore`](super::RedisStore), one kind per deployment, each
//! from the redis crate and each reconnecting on its own:
//!
//! - one server: a [`ConnectionManager`] (reconnects to the same address);
//! - a Redis Cluster: a cluster-async [`ClusterConnection`] (learns the slot map, follows
//!   `MOVED`/`ASK`, refreshes the map when a primary is lost and a replica takes over);
//! - Sentinel: a [`SentinelConnection`] (finds the primary through the sentinels, again after
//!   every failure).
//!
//! None of them connects before its first command, so start-up never waits for Redis.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, FromRedisValue,
    IntoConnectionInfo, RedisResult, ScriptInvocation, TlsCertificates, TlsMode,
};
use std::time::Duration;

use super::sentinel::SentinelConnection;
use crate::config::{RedisConfig, RedisTopology, Secret};

/// A live (or lazily connecting) connection to the configured deployment.
#[derive(Clone)]
pub(super) enum Connection {
    /// One server.
    Standalone(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
    /// A Sentinel-watched primary.
    Sentinel(SentinelConnection),
}

/// One thing to send: a command, or a script call (`EVALSHA`, loading the script on `NOSCRIPT`).
#[derive(Clone, Copy)]
pub(super) enum Request<'a> {
    /// A plain command.
    Cmd(&'a Cmd),
    /// A script with its keys and arguments.
    Script(&'a ScriptInvocation<'a>),
}

impl Request<'_> {
    pub(super) async fn send<T: FromRedisValue>(
        self,
        conn: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        match self {
            Self::Cmd(cmd) => cmd.query_async(conn).await,
            Self::Script(script) => script.invoke_async(conn).await,
        }
    }
}

impl Connection {
    /// Set up the connection `config` describes, without connecting. Must run inside a Tokio
    /// runtime (the cluster connection spawns its driver task).
    pub(super) fn open(config: &RedisConfig) -> RedisResult<Self> {
        let (timeout, connect_timeout) = (config.timeout, config.connect_timeout);
        match &config.topology {
            RedisTopology::Standalone(url) => {
                let info = with_credentials(url.expose().as_str().into_connection_info()?, config);
                let client = match &config.ca_pem {
                    Some(pem) => Client::build_with_tls(info, certificates(pem))?,
                    None => Client::open(info)?,
                };
                Ok(Self::Standalone(standalone(
                    client,
                    timeout,
                    connect_timeout,
                )?))
            }
            RedisTopology::Cluster(urls) => {
                let mut builder =
                    ClusterClientBuilder::new(urls.iter().map(|u| u.expose().as_str()))
                        .connection_timeout(connect_timeout)
                        .response_timeout(timeout);
                if let Some(username) = &config.username {
                    builder = builder.username(username.expose());
                }
                if let Some(password) = &config.password {
                    builder = builder.password(password.expose());
                }
                if let Some(pem) = &config.ca_pem {
                    builder = builder.certs(certificates(pem));
                }
                let client = builder.build()?;
                let cluster_config = ClusterConfig::new()
                    .set_connection_timeout(connect_timeout)
                    .set_response_timeout(timeout);
                Ok(Self::Cluster(
                    client.get_pending_async_connection_with_config(cluster_config),
                ))
            }
            RedisTopology::Sentinel { master_name, nodes } => {
                let client = sentinel_client(master_name, nodes, config)?;
                let primary_config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(timeout));
                // A lookup is a round trip to a sentinel, a role check on the primary and the
                // connection itself: each a connect and a reply.
                let lookup_timeout = (connect_timeout + timeout) * 3;
                Ok(Self::Sentinel(SentinelConnection::new(
                    client,
                    primary_config,
                    lookup_timeout,
                )))
            }
        }
    }

    /// Send `request`: to the one server, to the node owning its key's slot, or to the primary.
    pub(super) async fn send<T: FromRedisValue>(&self, request: Request<'_>) -> RedisResult<T> {
        match self {
            Self::Standalone(conn) => request.send(&mut conn.clone()).await,
            Self::Cluster(conn) => request.send(&mut conn.clone()).await,
            Self::Sentinel(conn) => conn.send(request).await,
        }
    }
}

/// Where the listener for ended sessions subscribes ([`super::listen`]). Redis delivers a
/// `PUBLISH` to the subscribers of every node (a Cluster's nodes pass it on to each other, and
/// a primary to its replicas), so any one node of the deployment will do.
pub(super) enum Subscriber {
    /// One of these servers: the one server, or a Cluster's configured nodes, tried in turn.
    Servers(Vec<Client>),
    /// The primary the sentinels name at each connect.
    Sentinel(Box<tokio::sync::Mutex<SentinelClient>>),
}

impl Subscriber {
    /// Clients for the deployment `config` describes, without connecting.
    pub(super) fn open(config: &RedisConfig) -> RedisResult<Self> {
        let server = |url: &str| -> RedisResult<Client> {
            let info = with_credentials(url.into_connection_info()?, config);
            match &config.ca_pem {
                Some(pem) => Client::build_with_tls(info, certificates(pem)),
                None => Client::open(info),
            }
        };
        match &config.topology {
            RedisTopology::Standalone(url) => Ok(Self::Servers(vec![server(url.expose())?])),
            RedisTopology::Cluster(urls) => Ok(Self::Servers(
                urls.iter()
                    .map(|url| server(url.expose()))
                    .collect::<RedisResult<_>>()?,
            )),
            RedisTopology::Sentinel { master_name, nodes } => Ok(Self::Sentinel(Box::new(
                tokio::sync::Mutex::new(sentinel_client(master_name, nodes, config)?),
            ))),
        }
    }

    /// A subscriber connection for the `attempt`th try (which picks the node).
    pub(super) async fn connect(&self, attempt: usize) -> RedisResult<PubSub> {
        match self {
            Self::Servers(clients) => clients[attempt % clients.len()].get_async_pubsub().await,
            Self::Sentinel(sentinel) => {
                let client = sentinel.lock().await.async_get_client().await?;
                client.get_async_pubsub().await
            }
        }
    }
}

/// A client that asks the sentinels at `nodes` for the primary they call `master_name`, and
/// connects to it with `config`'s credentials (and TLS when the sentinels speak it).
fn sentinel_client(
    master_name: &str,
    nodes: &[Secret<String>],
    config: &RedisConfig,
) -> RedisResult<SentinelClient> {
    let nodes = nodes
        .iter()
        .map(|url| url.expose().as_str().into_connection_info())
        .collect::<RedisResult<Vec<ConnectionInfo>>>()?;
    // Validation made every node agree on scheme and credentials.
    let first = nodes[0].clone();
    let tls = matches!(first.addr(), ConnectionAddr::TcpTls { .. });
    let mut builder = SentinelClientBuilder::new(
        nodes.into_iter().map(|info| info.addr().clone()),
        master_name,
        SentinelServerType::Master,
    )?;
    let sentinel_auth = first.redis_settings();
    if let Some(username) = sentinel_auth.username() {
        builder = builder.set_client_to_sentinel_username(username);
    }
    if let Some(password) = sentinel_auth.password() {
        builder = builder.set_client_to_sentinel_password(password);
    }
    if let Some(username) = &config.username {
        builder = builder.set_client_to_redis_username(username.expose());
    }
    if let Some(password) = &config.password {
        builder = builder.set_client_to_redis_password(password.expose());
    }
    if tls {
        // The primary speaks TLS when its sentinels do.
        builder = builder
            .set_client_to_sentinel_tls_mode(TlsMode::Secure)
            .set_client_to_redis_tls_mode(TlsMode::Secure);
        if let Some(pem) = &config.ca_pem {
            builder = builder
                .set_client_to_sentinel_certificates(certificates(pem))
                .set_client_to_redis_certificates(certificates(pem));
        }
    }
    builder.build()
}

/// A lazily connecting manager for one server; it reconnects on its own after an error.
pub(super) fn standalone(
    client: Client,
    timeout: Duration,
    connect_timeout: Duration,
) -> RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
}

/// `info` with `session.redis_username` / `session.redis_password` applied (validation made
/// sure the URL does not carry them too).
fn with_credentials(info: ConnectionInfo, config: &RedisConfig) -> ConnectionInfo {
    let mut settings = info.redis_settings().clone();
    if let Some(username) = &config.username {
        settings = settings.set_username(username.expose());
    }
    if let Some(password) = &config.password {
        settings = settings.set_password(password.expose());
    }
    info.set_redis_settings(settings)
}

/// Trust exactly the CA certificates of `session.redis_ca_file`.
fn certificates(pem: &[u8]) -> TlsCertificates {
    TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    }
}
