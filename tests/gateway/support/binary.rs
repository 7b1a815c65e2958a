//! The real `portcullis` binary as a child process: its config in a temp dir, its stderr
//! captured to a file, killed and reaped when dropped so no test leaves a process behind.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// The binary Cargo built for this test run.
pub const PORTCULLIS: &str = env!("CARGO_BIN_EXE_portcullis");

/// Write `yaml` as `config.yaml` in `dir` and return its path.
pub fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).expect("write test config");
    path
}

/// Run `portcullis --config FILE --check-config` on `yaml` with `env` added to the environment
/// and wait for it.
pub fn check_config(yaml: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), yaml);
    let mut command = Command::new(PORTCULLIS);
    command.arg("--config").arg(&path).arg("--check-config");
    check_config_command(&mut command, env)
}

/// Run `portcullis --config PATH --check-config` on an existing file.
pub fn check_config_file(path: &Path) -> Output {
    let mut command = Command::new(PORTCULLIS);
    command.arg("--config").arg(path).arg("--check-config");
    check_config_command(&mut command, &[])
}

fn check_config_command(command: &mut Command, env: &[(&str, &str)]) -> Output {
    for (name, value) in env {
        command.env(name, value);
    }
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PORTCULLIS}: {e}"))
}

/// Run `portcullis --config FILE ARGS...` on `yaml` to its end (at most 20 s) and return what it
/// printed and its status; stdin is empty and `RUST_LOG` is not inherited.
pub async fn run_to_end(yaml: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), yaml);
    let mut command = tokio::process::Command::new(PORTCULLIS);
    command
        .arg("--config")
        .arg(&path)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(20), command.output())
        .await
        .unwrap_or_else(|_| panic!("portcullis {args:?} still running after 20 s"))
        .unwrap_or_else(|e| panic!("cannot run {PORTCULLIS}: {e}"))
}

/// A running `portcullis --config FILE`.
pub struct Binary {
    child: Option<Child>,
    config: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Binary {
    /// Start the gateway on `yaml` with `env` added to the environment; stderr goes to a file.
    /// `RUST_LOG` is not inherited from the test's environment (it would override `log.level`):
    /// pass it in `env` to set it.
    pub fn run(yaml: &str, env: &[(&str, &str)]) -> Binary {
        Self::start(yaml, env, &[])
    }

    /// [`Binary::run`] with `files` (name, contents) written next to the config first, for
    /// `users_file` and `${file:...}` references relative to it.
    pub fn run_with_files(yaml: &str, files: &[(&str, &str)]) -> Binary {
        Self::start(yaml, &[], files)
    }

    fn start(yaml: &str, env: &[(&str, &str)], files: &[(&str, &str)]) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).expect("write a file for the config");
        }
        let config = write_config(dir.path(), yaml);
        let stderr = dir.path().join("stderr.log");
        let mut command = Command::new(PORTCULLIS);
        command
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).unwrap())
            .env_remove("RUST_LOG");
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {PORTCULLIS}: {e}"));
        Binary {
            child: Some(child),
            config,
            stderr,
            _dir: dir,
        }
    }

    /// The config file it runs on (rewrite it, then send SIGHUP, to reload).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("still running").id()
    }

    /// Send a signal (`"-TERM"`) with `kill`.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} failed");
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Wait until `addr` accepts connections; panics (with the log) if the process exits first
    /// or 10 s pass.
    pub async fn wait_listening(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(addr).await.is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "portcullis exited ({status}) before listening on {addr}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "portcullis not listening on {addr} after 10 s:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exit status, once the process has exited; panics (with the log) if it is still
    /// running after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "portcullis still running {within:?} later:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
