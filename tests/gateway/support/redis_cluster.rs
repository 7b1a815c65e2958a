//! A real local Redis Cluster: `redis-server --cluster-enabled yes` nodes on loopback ports,
//! joined by `redis-cli --cluster create`, every process killed when dropped.
//!
//! `cluster-node-timeout` is 1 s, so a killed primary is replaced by its replica within a few
//! seconds.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::RedisServer;

/// How long the cluster may take to form (every node agreeing, every replica in sync).
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// The nodes of one cluster: primaries first, in `redis-cli --cluster create` order.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

/// One line of `CLUSTER NODES`.
struct NodeLine {
    id: String,
    port: u16,
    primary: bool,
    failed: bool,
    /// The primary's id, for a replica.
    primary_id: Option<String>,
    slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// Start `primaries` primaries with `replicas` replicas each and wait until the cluster is
    /// formed. A missing `redis-server` or `redis-cli` fails the test with how to install it.
    pub fn start(primaries: usize, replicas: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..primaries * (1 + replicas))
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "{dir}/nodes-{port}.conf",
                    "--cluster-port",
                    "{bus}",
                    "--cluster-node-timeout",
                    "1000",
                    // A replica may always take over, however long ago it last heard from
                    // its primary.
                    "--cluster-replica-validity-factor",
                    "0",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    "{dir}",
                ])
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create
            .args(["--cluster", "create"])
            .args(nodes.iter().map(RedisServer::addr))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = create.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run redis-cli ({e}): install it (Debian/Ubuntu: `apt-get install \
                 redis-tools`, which redis-server brings) or run tests/run.sh, which installs it"
            )
        });
        let deadline = Instant::now() + FORM_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-cli --cluster create did not finish within {FORM_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !status.success() {
            let mut stderr = String::new();
            use std::io::Read;
            let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
            panic!("redis-cli --cluster create failed ({status}): {stderr}");
        }
        let cluster = RedisCluster { nodes };
        cluster.wait_formed(deadline);
        cluster
    }

    /// Start every crashed node again (same ports, same cluster config, no data) and wait until
    /// the cluster is whole again.
    pub fn restart_all(&mut self) {
        for node in self.nodes.iter_mut().filter(|n| !n.is_running()) {
            node.restart();
        }
        self.wait_formed(Instant::now() + FORM_TIMEOUT);
    }

    /// Until every running node says `cluster_state:ok`, knows every other one, and every
    /// replica's link to its primary is up.
    fn wait_formed(&self, deadline: Instant) {
        let count = self.nodes.len();
        loop {
            let formed = self.running().all(|node| {
                let info: String = node.try_cmd(&["CLUSTER", "INFO"]).unwrap_or_default();
                let ok = info.lines().any(|l| l.trim() == "cluster_state:ok");
                let known = info
                    .lines()
                    .any(|l| l.trim() == format!("cluster_known_nodes:{count}"));
                let replication = node.replication();
                let synced = replication.get("role").map(String::as_str) == Some("master")
                    || replication.get("master_link_status").map(String::as_str) == Some("up");
                ok && known && synced
            });
            if formed {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Redis Cluster did not form within {FORM_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn running(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    /// The node URLs, for `session.redis_cluster`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://{}", n.addr()))
            .collect()
    }

    /// The `session.redis_cluster` line of a config, indented for `session:`.
    pub fn session_yaml(&self) -> String {
        let urls: Vec<String> = self.urls().iter().map(|u| format!("\"{u}\"")).collect();
        format!("  redis_cluster: [{}]\n", urls.join(", "))
    }

    /// `CLUSTER NODES` as a running node sees it.
    fn topology(&self) -> Vec<NodeLine> {
        let text: String = self
            .running()
            .find_map(|n| n.try_cmd(&["CLUSTER", "NODES"]).ok())
            .expect("a running cluster node answers CLUSTER NODES");
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let flags: Vec<&str> = fields[2].split(',').collect();
                let addr = fields[1].split('@').next().unwrap();
                let port = addr.rsplit(':').next().unwrap().parse().unwrap();
                let slots = fields[8..]
                    .iter()
                    .filter(|s| !s.starts_with('['))
                    .map(|s| match s.split_once('-') {
                        Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                        None => (s.parse().unwrap(), s.parse().unwrap()),
                    })
                    .collect();
                NodeLine {
                    id: fields[0].to_owned(),
                    port,
                    primary: flags.contains(&"master"),
                    failed: flags.contains(&"fail") || flags.contains(&"fail?"),
                    primary_id: (fields[3] != "-").then(|| fields[3].to_owned()),
                    slots,
                }
            })
            .collect()
    }

    fn index_of(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .expect("a node of this cluster")
    }

    /// The node currently serving `key`'s slot as primary.
    pub fn primary_for(&self, key: &str) -> usize {
        let slot: i64 = self
            .running()
            .find_map(|n| n.try_cmd(&["CLUSTER", "KEYSLOT", key]).ok())
            .expect("CLUSTER KEYSLOT");
        let slot = u16::try_from(slot).unwrap();
        // Right after a failover the node asked may not have heard of the promotion yet (the
        // gossip takes a moment): ask again for a while before concluding.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let owner = self.topology().into_iter().find(|n| {
                n.primary && !n.failed && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
            });
            if let Some(owner) = owner {
                return self.index_of(owner.port);
            }
            assert!(
                Instant::now() < deadline,
                "no live primary serves slot {slot}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The replicas of the primary at `primary`.
    pub fn replicas_of(&self, primary: usize) -> Vec<usize> {
        let topology = self.topology();
        let port = self.nodes[primary].port;
        let id = &topology.iter().find(|n| n.port == port).unwrap().id;
        topology
            .iter()
            .filter(|n| n.primary_id.as_deref() == Some(id))
            .map(|n| self.index_of(n.port))
            .collect()
    }

    /// The running primaries.
    pub fn primaries(&self) -> Vec<usize> {
        self.topology()
            .into_iter()
            .filter(|n| n.primary && !n.failed)
            .map(|n| self.index_of(n.port))
            .filter(|&i| self.nodes[i].is_running())
            .collect()
    }

    /// Every key held by a running primary, sorted (`KEYS` is a test-only look).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .primaries()
            .into_iter()
            .flat_map(|i| self.nodes[i].keys())
            .collect();
        keys.sort();
        keys
    }

    /// `PTTL key` on the primary holding it.
    pub fn pttl(&self, key: &str) -> i64 {
        self.nodes[self.primary_for(key)].pttl(key)
    }
}
