//! A real `redis-server` on a free loopback port, killed when dropped.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Arguments after `--port P --bind 127.0.0.1`; `{dir}` stands for the server's own
    /// temporary directory and `{port}` for its port.
    args: Vec<String>,
}

/// How long a server may take to answer `PING` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Start `redis-server`; a missing binary fails the test with how to install it.
    pub fn start() -> RedisServer {
        Self::start_with(&["--save", "", "--appendonly", "no", "--dir", "{dir}"])
    }

    /// Start `redis-server --port P --bind 127.0.0.1` followed by `args`, in which `{dir}` is
    /// replaced by a temporary directory of the server's own, `{port}` by its port and an
    /// argument `{bus}` by another free port (a cluster node's bus). A
    /// first argument ending in `.conf` is a config file and goes first, as redis-server wants
    /// (`{dir}/sentinel.conf`, `--sentinel`); the file is written by `prepare`.
    pub fn start_with(args: &[&str]) -> RedisServer {
        Self::start_prepared(args, |_, _| {})
    }

    /// [`RedisServer::start_with`], calling `prepare(dir, port)` before each spawn attempt.
    pub fn start_prepared(args: &[&str], prepare: impl Fn(&std::path::Path, u16)) -> RedisServer {
        let mut server = RedisServer {
            port: 0,
            child: None,
            dir: tempfile::tempdir().unwrap(),
            // Chosen once, so that a restarted cluster node keeps the bus port its peers know.
            args: args
                .iter()
                .map(|a| match *a {
                    "{bus}" => free_port().to_string(),
                    other => other.to_owned(),
                })
                .collect(),
        };
        for _ in 0..5 {
            server.port = free_port();
            prepare(server.dir.path(), server.port);
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on any port");
    }

    /// The server's own temporary directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn spawn(&mut self) -> bool {
        let port = self.port.to_string();
        let dir = self.dir.path().display().to_string();
        let mut args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.replace("{dir}", &dir).replace("{port}", &port))
            .collect();
        let config_file = match args.first() {
            Some(first) if first.ends_with(".conf") => Some(args.remove(0)),
            _ => None,
        };
        let child = Command::new("redis-server")
            .args(config_file)
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): install it (Debian/Ubuntu: `apt-get install redis-server`) \
                     or run the README's test command, which installs it"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let _ = status;
                self.child = None;
                return false;
            }
            if self.ping() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `127.0.0.1:PORT`, as `redis-cli --cluster` and Sentinel name nodes.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether the process is running (not killed by [`RedisServer::crash`]).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub(crate) fn conn(&self) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(self.url())?;
        client.get_connection_with_timeout(Duration::from_millis(500))
    }

    fn ping(&self) -> bool {
        self.conn()
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// Run one command and return its reply.
    pub fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut conn = self.conn().expect("connect to test redis");
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut conn).expect("redis command")
    }

    /// Run one command; an error reply or a connection failure is returned, not a panic.
    pub fn try_cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> redis::RedisResult<T> {
        let mut conn = self.conn()?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut conn)
    }

    /// `INFO replication` as `field -> value`.
    pub fn replication(&self) -> BTreeMap<String, String> {
        let info: String = self.cmd(&["INFO", "replication"]);
        info.lines()
            .filter_map(|line| line.trim().split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// Wait until every replica of this primary has acknowledged everything written to it so
    /// far (its offset in `INFO replication`), so that a failover loses none of it.
    pub fn wait_replicas_caught_up(&self, within: Duration) {
        let info = self.replication();
        let target: u64 = info["master_repl_offset"].parse().unwrap();
        let replicas: usize = info["connected_slaves"].parse().unwrap();
        assert!(
            replicas > 0,
            "no replica is connected to 127.0.0.1:{}",
            self.port
        );
        let deadline = Instant::now() + within;
        loop {
            let info = self.replication();
            let acked = (0..replicas)
                .filter_map(|i| info.get(&format!("slave{i}")))
                .filter_map(|line| {
                    line.split(',')
                        .find_map(|field| field.strip_prefix("offset="))
                        .and_then(|n| n.parse::<u64>().ok())
                })
                .filter(|&offset| offset >= target)
                .count();
            if acked == replicas {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replicas of 127.0.0.1:{} did not catch up within {within:?}: {info:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every key in the database.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.cmd(&["KEYS", "*"]);
        keys.sort();
        keys
    }

    /// Every key in the database, walked with `SCAN` (as an operator would on a live server).
    pub fn scan_keys(&self) -> Vec<String> {
        let mut conn = self.conn().expect("connect to test redis");
        let mut cursor = 0u64;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("COUNT")
                .arg(100)
                .query(&mut conn)
                .expect("SCAN");
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// The members of the sorted set under `key`, lowest score first.
    pub fn zrange(&self, key: &str) -> Vec<String> {
        self.cmd(&["ZRANGE", key, "0", "-1"])
    }

    /// How many times `command` (lower case, e.g. `set`) ran since start or the last
    /// [`RedisServer::reset_stats`], from `INFO commandstats`.
    pub fn command_calls(&self, command: &str) -> u64 {
        let info: String = self.cmd(&["INFO", "commandstats"]);
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map_or(0, |rest| {
                rest.split(',')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("INFO commandstats calls=N")
            })
    }

    /// A reader of the command statistics over a connection of its own, held for the purpose:
    /// once it is open, reading adds nothing but its own `INFO` calls (every fresh connection
    /// would add its handshake, `CLIENT SETINFO`, to the counts).
    pub fn command_counter(&self) -> CommandCounter {
        CommandCounter {
            conn: self.conn().expect("connect to test redis"),
        }
    }

    /// Zero the command statistics (`CONFIG RESETSTAT`).
    pub fn reset_stats(&self) {
        let _: String = self.cmd(&["CONFIG", "RESETSTAT"]);
    }

    /// `PTTL key`: remaining lifetime in ms, -1 without expiry, -2 when the key is absent.
    pub fn pttl(&self, key: &str) -> i64 {
        self.cmd(&["PTTL", key])
    }

    /// Freeze the process (SIGSTOP): connections stay open but nothing answers, data is kept.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Undo [`RedisServer::freeze`].
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("redis is running")
            .id()
            .to_string();
        let status = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Stop the server (an outage), saving its data first so that [`RedisServer::restart`]
    /// brings it back as it was, like a Redis with persistence.
    pub fn stop(&mut self) {
        if self.child.is_some() {
            let _: String = self.cmd(&["SAVE"]);
        }
        self.kill();
    }

    /// Kill the process (SIGKILL) without saving anything, as a machine failure would.
    pub fn crash(&mut self) {
        self.kill();
    }

    /// Start it again on the same port, with the data saved by [`RedisServer::stop`].
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    fn kill(&mut self) {
        if self.child.is_some() {
            self.signal("-CONT");
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// See [`RedisServer::command_counter`].
pub struct CommandCounter {
    conn: redis::Connection,
}

impl CommandCounter {
    /// Calls so far per command, as `INFO commandstats` names them (`get`, `client|setinfo`).
    pub fn counts(&mut self) -> BTreeMap<String, u64> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.conn)
            .expect("INFO commandstats");
        info.lines()
            .filter_map(|line| line.strip_prefix("cmdstat_"))
            .map(|line| {
                let (name, stats) = line.split_once(':').expect("cmdstat_NAME:STATS");
                let calls = stats
                    .strip_prefix("calls=")
                    .and_then(|rest| rest.split(',').next())
                    .and_then(|n| n.parse().ok())
                    .expect("calls=N first");
                (name.to_owned(), calls)
            })
            .collect()
    }
}

/// The commands, other than those in `except`, whose counts grew from `before` to `after`, each
/// with how many more times it ran.
pub fn commands_between(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    except: &[&str],
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(name, _)| !except.contains(&name.as_str()))
        .filter_map(|(name, &calls)| {
            let grown = calls - before.get(name).copied().unwrap_or(0);
            (grown > 0).then(|| (name.clone(), grown))
        })
        .collect()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
