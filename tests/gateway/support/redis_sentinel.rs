//! A real local Sentinel deployment: one primary, one replica and three sentinels
//! (`redis-server sentinel.conf --sentinel`, so no separate package is needed), all on loopback
//! ports, every process killed when dropped.
//!
//! `down-after-milliseconds` is 1 s and quorum 2, so a killed primary is replaced within a
//! few seconds.

use std::time::{Duration, Instant};

use super::redis::RedisServer;

/// The name the sentinels monitor the primary under.
pub const MASTER_NAME: &str = "portcullis-test";

/// How long the deployment may take to settle (replica in sync, sentinels aware of the replica
/// and of each other).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The two data nodes (`nodes[0]` starts as the primary) and the sentinels.
pub struct RedisSentinel {
    pub nodes: Vec<RedisServer>,
    pub sentinels: Vec<RedisServer>,
}

impl RedisSentinel {
    /// Start the five processes and wait until a failover would work.
    pub fn start() -> RedisSentinel {
        let primary = RedisServer::start();
        let primary_port = primary.port.to_string();
        let replica = RedisServer::start_with(&[
            "--replicaof",
            "127.0.0.1",
            &primary_port,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "{dir}",
        ]);
        let sentinels = (0..3)
            .map(|_| {
                RedisServer::start_prepared(&["{dir}/sentinel.conf", "--sentinel"], |dir, _| {
                    let conf = format!(
                        "dir \"{}\"\n\
                         sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\n\
                         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                         sentinel failover-timeout {MASTER_NAME} 5000\n\
                         sentinel parallel-syncs {MASTER_NAME} 1\n",
                        dir.display()
                    );
                    std::fs::write(dir.join("sentinel.conf"), conf).unwrap();
                })
            })
            .collect();
        let deployment = RedisSentinel {
            nodes: vec![primary, replica],
            sentinels,
        };
        deployment.wait_settled();
        deployment
    }

    fn wait_settled(&self) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let synced = self.nodes[1]
                .replication()
                .get("master_link_status")
                .map(String::as_str)
                == Some("up");
            let aware = self.sentinels.iter().all(|s| {
                let replicas: Vec<redis::Value> = s
                    .try_cmd(&["SENTINEL", "REPLICAS", MASTER_NAME])
                    .unwrap_or_default();
                let others: Vec<redis::Value> = s
                    .try_cmd(&["SENTINEL", "SENTINELS", MASTER_NAME])
                    .unwrap_or_default();
                replicas.len() == 1 && others.len() == 2
            });
            if synced && aware {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Sentinel deployment did not settle within {SETTLE_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `session.redis_sentinel` block of a config, indented for `session:`.
    pub fn session_yaml(&self) -> String {
        let urls: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("\"redis://{}\"", s.addr()))
            .collect();
        format!(
            "  redis_sentinel:\n    master_name: {MASTER_NAME}\n    nodes: [{}]\n",
            urls.join(", ")
        )
    }

    /// The data node every running sentinel names as primary, once they agree: after a
    /// failover the sentinel that led it knows at once, the others learn it from its hello
    /// messages (every 2 s). Panics if they still disagree after 10 s.
    pub fn agreed_primary(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let named: Vec<Option<u16>> = self.running_sentinels().map(named_primary).collect();
            if let Some(Some(port)) = named.first() {
                if named.iter().all(|n| n == &Some(*port)) {
                    return self.node_on(*port);
                }
            }
            assert!(
                Instant::now() < deadline,
                "the sentinels do not agree on a primary: {named:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The data node the sentinels currently name as primary.
    pub fn primary(&self) -> usize {
        let port = self
            .running_sentinels()
            .find_map(named_primary)
            .expect("a sentinel names the primary");
        self.node_on(port)
    }

    fn running_sentinels(&self) -> impl Iterator<Item = &RedisServer> {
        self.sentinels.iter().filter(|s| s.is_running())
    }

    /// The index of the data node listening on `port`.
    fn node_on(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .expect("one of the data nodes")
    }
}

/// The port of the primary `sentinel` names, if it answers.
fn named_primary(sentinel: &RedisServer) -> Option<u16> {
    let (_, port): (String, String) = sentinel
        .try_cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME])
        .ok()?;
    port.parse().ok()
}
