//! `portcullis --config FILE sessions list|revoke`: an operator's view of a user's live sessions,
//! straight from the store the config names (the same index `GET /session/all` reads).
//!
//! The command connects to the store itself, so it needs one that another process can reach:
//! with `session.store: memory` the sessions live inside the running gateway, and the command
//! says so instead of reporting an empty list. Exit statuses ([`SessionsCliError::exit_code`]):
//! 0 done, 1 the store could not answer, 2 a malformed user or handle, 3 no session has that
//! handle, 78 (`EX_CONFIG`) a config whose store this command cannot reach. The output names
//! sessions by handle only, never by id or cookie.

use std::io::Write;

use crate::config::{Config, StoreConfig};
use crate::error::ErrorChain;
use crate::identity::is_username;
use crate::session::index::{is_handle, Revoked};
use crate::session::{rfc3339, ListedSession, Sessions, StoreError};
use crate::state::{open_store, StoreSetupError};

/// Exit status for an invalid configuration, or one this command cannot use (sysexits
/// `EX_CONFIG`).
pub const EX_CONFIG: u8 = 78;
/// Exit status for a malformed argument (as for any usage error).
pub const EX_USAGE: u8 = 2;
/// Exit status when the store could not answer.
pub const EX_STORE: u8 = 1;
/// Exit status when no session of the user has the handle given.
pub const EX_NO_SUCH_SESSION: u8 = 3;

/// What to do with a user's sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionsCommand {
    /// Print each live session of `user`, one a line.
    List {
        /// The user.
        user: String,
    },
    /// End `user`'s session with `handle`, or every session of `user` without one.
    Revoke {
        /// The user.
        user: String,
        /// The session's handle (as `list` prints it).
        handle: Option<String>,
    },
}

/// Why a sessions command failed; [`SessionsCliError::exit_code`] gives its exit status.
#[derive(Debug, thiserror::Error)]
pub enum SessionsCliError {
    /// The config keeps sessions in the gateway's own memory.
    #[error(
        "session.store is memory: sessions live in the memory of the gateway process, which this \
         command cannot reach; use session.store: redis to manage sessions from the command line"
    )]
    MemoryStore,
    /// `--user` is not a username.
    #[error("--user: not a valid username (1 to 128 of A-Z a-z 0-9 . _ @ + -)")]
    InvalidUser,
    /// `--handle` is not a handle.
    #[error(
        "--handle: not a session handle (32 lower-case hex digits, as `sessions list` prints)"
    )]
    InvalidHandle,
    /// The store could not be set up from the config.
    #[error(transparent)]
    Setup(#[from] StoreSetupError),
    /// The store did not answer.
    #[error("cannot reach the session store")]
    Store(#[from] StoreError),
    /// No live session of the user has that handle.
    #[error("no session of user `{user}` has handle {handle}")]
    NoSuchSession {
        /// The user.
        user: String,
        /// The handle asked for.
        handle: String,
    },
    /// Writing the output failed.
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
}

impl SessionsCliError {
    /// The process exit status for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            SessionsCliError::MemoryStore | SessionsCliError::Setup(_) => EX_CONFIG,
            SessionsCliError::InvalidUser | SessionsCliError::InvalidHandle => EX_USAGE,
            SessionsCliError::Store(_) | SessionsCliError::Output(_) => EX_STORE,
            SessionsCliError::NoSuchSession { .. } => EX_NO_SUCH_SESSION,
        }
    }

    /// The message for stderr, with the cause chain.
    pub fn message(&self) -> String {
        ErrorChain(self).to_string()
    }
}

/// Run `command` against the store `config` names, writing the result to `out`. Must run inside
/// a Tokio runtime.
pub async fn run(
    config: &Config,
    command: &SessionsCommand,
    out: &mut dyn Write,
) -> Result<(), SessionsCliError> {
    let user = match command {
        SessionsCommand::List { user } | SessionsCommand::Revoke { user, .. } => user,
    };
    if !is_username(user) {
        return Err(SessionsCliError::InvalidUser);
    }
    let handle = match command {
        SessionsCommand::Revoke {
            handle: Some(handle),
            ..
        } => {
            let handle = handle.to_ascii_lowercase();
            if !is_handle(&handle) {
                return Err(SessionsCliError::InvalidHandle);
            }
            Some(handle)
        }
        _ => None,
    };
    if matches!(config.session.store, StoreConfig::Memory) {
        return Err(SessionsCliError::MemoryStore);
    }
    let sessions = Sessions::new(&config.session, open_store(&config.session.store)?);
    let output = |e| SessionsCliError::Output(e);
    match (command, handle) {
        (SessionsCommand::List { .. }, _) => {
            for listed in sessions.list(user).await? {
                writeln!(out, "{}", line(&listed)).map_err(output)?;
            }
        }
        (SessionsCommand::Revoke { .. }, Some(handle)) => {
            match sessions.revoke(user, &handle).await? {
                Revoked::Ended => {
                    writeln!(out, "revoked session {handle} of user {user}").map_err(output)?;
                }
                Revoked::NotFound => {
                    return Err(SessionsCliError::NoSuchSession {
                        user: user.clone(),
                        handle,
                    })
                }
            }
        }
        (SessionsCommand::Revoke { .. }, None) => {
            let ended = sessions.end_everywhere(user).await?;
            let noun = if ended == 1 { "session" } else { "sessions" };
            writeln!(out, "revoked {ended} {noun} of user {user}").map_err(output)?;
        }
    }
    out.flush().map_err(output)
}

/// One session as `list` prints it: handle, created, last seen, expires (the earlier of both
/// deadlines), client address and user agent, tab-separated.
fn line(listed: &ListedSession) -> String {
    let record = &listed.record;
    let expires = record.expires_at.min(record.idle_expires_at);
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        listed.handle,
        rfc3339(record.created_at),
        rfc3339(record.last_seen_at),
        rfc3339(expires),
        field(&record.client_addr),
        field(&record.user_agent),
    )
}

/// A free-text field on one line: control characters (tabs, newlines) become spaces, and an
/// empty value is `-`.
fn field(text: &str) -> String {
    if text.is_empty() {
        return "-".to_owned();
    }
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_stay_on_one_line_and_in_their_column() {
        assert_eq!(field(""), "-");
        assert_eq!(field("curl/8.5.0"), "curl/8.5.0");
        assert_eq!(field("a\tb\nc\r\u{7f}"), "a b c  ");
    }

    #[test]
    fn exit_codes_follow_who_is_to_blame() {
        assert_eq!(SessionsCliError::MemoryStore.exit_code(), 78);
        assert_eq!(SessionsCliError::InvalidUser.exit_code(), 2);
        assert_eq!(SessionsCliError::InvalidHandle.exit_code(), 2);
        assert_eq!(SessionsCliError::Store(StoreError::Timeout).exit_code(), 1);
        let missing = SessionsCliError::NoSuchSession {
            user: "u".into(),
            handle: "h".into(),
        };
        assert_eq!(missing.exit_code(), 3);
    }
}
