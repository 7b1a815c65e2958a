//! Validation of the Redis keys of `session`: which topology (`redis_url`, `redis_cluster` or
//! `redis_sentinel`, exactly one), its URLs, TLS (`rediss://`, `redis_ca_file`) and the ACL
//! credentials (`redis_username`, `redis_password`).
//!
//! URLs and passwords may be secrets: no message here ever repeats one. Everything that would
//! stop the store from being built at start-up is caught here, so `--check-config` reports it.

use std::path::Path;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::invalid;
use crate::config::file::RawSession;
use crate::config::{ConfigError, RedisConfig, RedisTopology, Secret};

/// The keys that choose a topology; exactly one is set with the redis store.
const TOPOLOGY_KEYS: [&str; 3] = [
    "session.redis_url",
    "session.redis_cluster",
    "session.redis_sentinel",
];

/// A parsed node URL and the YAML key it came from.
struct Node {
    key: String,
    info: ConnectionInfo,
}

impl Node {
    fn tls(&self) -> bool {
        matches!(self.info.addr(), ConnectionAddr::TcpTls { .. })
    }
}

/// The Redis keys that are set, in `TOPOLOGY_KEYS` order followed by the others: with the memory
/// store they are ignored, which start-up warns about.
pub(super) fn keys_set(raw: &RawSession) -> Vec<&'static str> {
    let set = [
        (TOPOLOGY_KEYS[0], raw.redis_url.is_some()),
        (TOPOLOGY_KEYS[1], raw.redis_cluster.is_some()),
        (TOPOLOGY_KEYS[2], raw.redis_sentinel.is_some()),
        ("session.redis_username", raw.redis_username.is_some()),
        ("session.redis_password", raw.redis_password.is_some()),
        ("session.redis_ca_file", raw.redis_ca_file.is_some()),
    ];
    set.into_iter()
        .filter_map(|(key, is_set)| is_set.then_some(key))
        .collect()
}

/// Validate the Redis keys of `session` (the store is redis); `base_dir` resolves a relative
/// `redis_ca_file`.
pub(super) fn redis(
    raw: &RawSession,
    base_dir: &Path,
    timeout: Duration,
    connect_timeout: Duration,
) -> Result<RedisConfig, ConfigError> {
    let chosen: Vec<&str> = keys_set(raw)
        .into_iter()
        .filter(|key| TOPOLOGY_KEYS.contains(key))
        .collect();
    match chosen.as_slice() {
        [] => {
            return Err(invalid(
                "session.redis_url",
                "session.store is redis: set exactly one of session.redis_url (one server), \
                 session.redis_cluster or session.redis_sentinel",
            ))
        }
        [_] => {}
        [first, second, ..] => {
            return Err(invalid(
                *second,
                format!(
                    "only one of session.redis_url, session.redis_cluster and \
                     session.redis_sentinel may be set, and {first} is set too"
                ),
            ))
        }
    }
    let (topology, nodes, data_nodes_in_urls) = topology(raw)?;
    let tls = nodes[0].tls();
    if let Some(other) = nodes.iter().find(|n| n.tls() != tls) {
        return Err(invalid(
            other.key.clone(),
            "mixes redis:// and rediss:// with the other nodes; use one scheme for all",
        ));
    }
    if nodes.len() > 1 {
        let first = nodes[0].info.redis_settings();
        if let Some(other) = nodes.iter().find(|n| {
            let other = n.info.redis_settings();
            other.username() != first.username() || other.password() != first.password()
        }) {
            return Err(invalid(
                other.key.clone(),
                "carries other credentials than the first node; every node must use the same",
            ));
        }
    }
    let username = non_empty("session.redis_username", raw.redis_username.as_deref())?;
    let password = non_empty("session.redis_password", raw.redis_password.as_deref())?;
    if username.is_some() && password.is_none() {
        return Err(invalid(
            "session.redis_username",
            "needs session.redis_password (ACL users authenticate with both)",
        ));
    }
    if data_nodes_in_urls {
        let settings = nodes[0].info.redis_settings();
        let clash = [
            (
                "session.redis_username",
                username.is_some() && settings.username().is_some(),
            ),
            (
                "session.redis_password",
                password.is_some() && settings.password().is_some(),
            ),
        ];
        if let Some((key, _)) = clash.into_iter().find(|(_, clash)| *clash) {
            return Err(invalid(
                key,
                format!(
                    "{} already carries credentials; set them in one place",
                    nodes[0].key
                ),
            ));
        }
    }
    let ca_pem = match raw.redis_ca_file.as_deref() {
        None => None,
        Some(_) if !tls => {
            return Err(invalid(
                "session.redis_ca_file",
                "is set, but no Redis URL uses rediss:// (TLS)",
            ))
        }
        Some(name) => Some(ca_file(base_dir, name)?),
    };
    Ok(RedisConfig {
        topology,
        username: username.map(|u| Secret::new(u.to_owned())),
        password: password.map(|p| Secret::new(p.to_owned())),
        ca_pem,
        timeout,
        connect_timeout,
    })
}

/// The topology and its parsed URLs, plus whether those URLs are the data nodes' (so their
/// credentials are the ones `redis_username` / `redis_password` would also set); a sentinel's
/// URLs authenticate to the sentinels instead.
fn topology(raw: &RawSession) -> Result<(RedisTopology, Vec<Node>, bool), ConfigError> {
    if let Some(url) = &raw.redis_url {
        let node = node("session.redis_url".into(), url)?;
        return Ok((
            RedisTopology::Standalone(Secret::new(url.clone())),
            vec![node],
            true,
        ));
    }
    if let Some(urls) = &raw.redis_cluster {
        if urls.is_empty() {
            return Err(invalid(
                "session.redis_cluster",
                "must list at least one node URL",
            ));
        }
        let nodes = nodes("session.redis_cluster", urls)?;
        for n in &nodes {
            if n.info.redis_settings().db() != 0 {
                return Err(invalid(
                    n.key.clone(),
                    "must not select a database: a Redis Cluster has only database 0",
                ));
            }
        }
        let urls = urls.iter().cloned().map(Secret::new).collect();
        return Ok((RedisTopology::Cluster(urls), nodes, true));
    }
    let sentinel = raw
        .redis_sentinel
        .as_ref()
        .expect("one topology key is set");
    let name = sentinel.master_name.as_str();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "session.redis_sentinel.master_name",
            "must be the monitored primary's name (visible characters, no spaces)",
        ));
    }
    if sentinel.nodes.is_empty() {
        return Err(invalid(
            "session.redis_sentinel.nodes",
            "must list at least one sentinel URL",
        ));
    }
    let nodes = nodes("session.redis_sentinel.nodes", &sentinel.nodes)?;
    for n in &nodes {
        if n.info.redis_settings().db() != 0 {
            return Err(invalid(
                n.key.clone(),
                "must not select a database: sentinels have none (the primary's is 0)",
            ));
        }
    }
    let topology = RedisTopology::Sentinel {
        master_name: name.to_owned(),
        nodes: sentinel.nodes.iter().cloned().map(Secret::new).collect(),
    };
    Ok((topology, nodes, false))
}

fn nodes(key: &str, urls: &[String]) -> Result<Vec<Node>, ConfigError> {
    urls.iter()
        .enumerate()
        .map(|(i, url)| node(format!("{key}[{i}]"), url))
        .collect()
}

/// Parse one node URL; the message never repeats it (it may carry a password).
fn node(key: String, url: &str) -> Result<Node, ConfigError> {
    if !url.starts_with("redis://") && !url.starts_with("rediss://") {
        return Err(invalid(key, "must start with redis:// or rediss://"));
    }
    let Ok(info) = url.into_connection_info() else {
        return Err(invalid(
            key,
            "is not a valid Redis URL (redis[s]://[[user]:password@]host[:port][/db])",
        ));
    };
    if let ConnectionAddr::TcpTls { insecure: true, .. } = info.addr() {
        return Err(invalid(
            key,
            "must not turn certificate checks off (#insecure); use session.redis_ca_file for \
             a private CA",
        ));
    }
    Ok(Node { key, info })
}

/// `None` for an absent value; an empty one (an unset secret file, say) is an error.
fn non_empty<'a>(key: &str, value: Option<&'a str>) -> Result<Option<&'a str>, ConfigError> {
    match value {
        Some("") => Err(invalid(key, "must not be empty")),
        other => Ok(other),
    }
}

/// Read `session.redis_ca_file`: PEM holding at least one certificate.
fn ca_file(base_dir: &Path, name: &str) -> Result<Vec<u8>, ConfigError> {
    let key = "session.redis_ca_file";
    let path = base_dir.join(name);
    let pem = std::fs::read(&path)
        .map_err(|e| invalid(key, format!("cannot read `{}`: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, format!("`{}` is not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(invalid(
            key,
            format!("`{}` holds no PEM certificate", path.display()),
        ));
    }
    Ok(pem)
}
