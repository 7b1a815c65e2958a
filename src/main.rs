//! The `portcullis` command: run the gateway, check a config, hash a password, or list and end a
//! user's sessions.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use portcullis::config::{Config, LogConfig, LogFormat};
use portcullis::server::{self, Listeners};
use portcullis::sessions_cli::{self, SessionsCommand};
use portcullis::state::AppState;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

/// Exit status for an invalid configuration (sysexits `EX_CONFIG`).
const EX_CONFIG: u8 = 78;

/// Portcullis: an authentication gateway in front of any HTTP API.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about)]
struct Cli {
    /// The YAML configuration file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit (0 valid, 78 invalid).
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read one password line on stdin and print its argon2id hash for a users entry.
    HashPassword,
    /// List or end a user's sessions in the configured store (needs session.store: redis).
    ///
    /// Exit status: 0 done, 1 the store could not answer, 2 usage (a malformed user or handle),
    /// 3 no session of the user has that handle, 78 the config is invalid or keeps sessions in
    /// memory.
    Sessions {
        #[command(subcommand)]
        action: SessionsAction,
    },
}

#[derive(Debug, Subcommand)]
enum SessionsAction {
    /// Print the user's live sessions, oldest first, one a line, tab-separated: handle, created,
    /// last seen, expires, client address, user agent.
    List {
        /// The username.
        #[arg(long, value_name = "NAME")]
        user: String,
    },
    /// End the user's session with the given handle, or every session of the user.
    Revoke {
        /// The username.
        #[arg(long, value_name = "NAME")]
        user: String,
        /// The handle of the session to end (as `sessions list` prints it); without it, every
        /// session of the user ends.
        #[arg(long, value_name = "H")]
        handle: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::HashPassword) = cli.command {
        return hash_password();
    }
    if cli.check_config && cli.command.is_some() {
        eprintln!("portcullis: --check-config takes no subcommand");
        return ExitCode::from(2);
    }
    let Some(path) = cli.config else {
        eprintln!("portcullis: --config FILE is required (see config.example.yaml)");
        return ExitCode::from(2);
    };
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("portcullis: {}", portcullis::error::ErrorChain(&err));
            return ExitCode::from(EX_CONFIG);
        }
    };
    if let Some(Command::Sessions { action }) = cli.command {
        return sessions(&config, action);
    }
    if cli.check_config {
        for warning in &config.warnings {
            eprintln!("warning: {warning}");
        }
        println!("config OK: {}", path.display());
        return ExitCode::SUCCESS;
    }
    init_tracing(&config.log);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the Tokio runtime");
    runtime.block_on(serve(config, path))
}

async fn serve(config: Config, path: PathBuf) -> ExitCode {
    // Before the listeners exist: once a client can connect, a signal ends the process gracefully
    // and a SIGHUP reloads, never taking its default action (ending the process).
    let shutdown = shutdown_signal();
    let hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGHUP");
            return ExitCode::FAILURE;
        }
    };
    let listeners = match Listeners::bind(&config).await {
        Ok(listeners) => listeners,
        Err(err) => {
            tracing::error!(error = %portcullis::error::ErrorChain(&err), "cannot start");
            return ExitCode::FAILURE;
        }
    };
    let state = match AppState::new(config) {
        Ok(state) => state,
        Err(err) => {
            tracing::error!(error = %portcullis::error::ErrorChain(&err), "cannot start");
            return ExitCode::FAILURE;
        }
    };
    portcullis::reload::on_hangup(hangups, path.clone(), Arc::clone(&state), listeners.tls());
    portcullis::reload::watch_users_file(path, Arc::clone(&state));
    server::run(listeners, state, shutdown).await;
    ExitCode::SUCCESS
}

/// Resolves at SIGTERM or SIGINT. The handlers are installed here, before the future is first
/// polled: a signal that arrives while the accept loop is still starting is a graceful shutdown,
/// not the default action's abrupt exit.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let mut term = signal(SignalKind::terminate()).expect("cannot listen for SIGTERM");
    let mut int = signal(SignalKind::interrupt()).expect("cannot listen for SIGINT");
    async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    }
}

/// Log to stderr as `log` says; `RUST_LOG`, when set to valid directives, overrides
/// `log.level`.
fn init_tracing(log: &LogConfig) {
    let builder = || EnvFilter::builder().with_default_directive(log.level.into());
    let filter = builder()
        .try_from_env()
        .unwrap_or_else(|_| builder().parse_lossy(""));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(portcullis::log_output::Stderr);
    match log.format {
        // Colour only for a person at a terminal, never in files, pipes or container logs.
        LogFormat::Text => subscriber
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One object per line, the event's fields beside timestamp, level and target.
        LogFormat::Json => subscriber
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

fn sessions(config: &Config, action: SessionsAction) -> ExitCode {
    let command = match action {
        SessionsAction::List { user } => SessionsCommand::List { user },
        SessionsAction::Revoke { user, handle } => SessionsCommand::Revoke { user, handle },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot start the Tokio runtime");
    let result = runtime.block_on(sessions_cli::run(
        config,
        &command,
        &mut std::io::stdout().lock(),
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("portcullis: {}", err.message());
            ExitCode::from(err.exit_code())
        }
    }
}

fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(err) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("portcullis: cannot read the password from stdin: {err}");
        return ExitCode::FAILURE;
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!("portcullis: empty password (pipe one line on stdin)");
        return ExitCode::FAILURE;
    }
    println!("{}", portcullis::identity::hash_password(password));
    ExitCode::SUCCESS
}
