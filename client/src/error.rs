//! What the client can fail with, by what the user can do about it. The
//! command line decides the exit code and the advice from the variant,
//! never from the message text.

use std::process::ExitCode;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// A flag or its value is wrong: fix the command line.
    #[error("{0}")]
    Usage(String),
    /// A local file or folder cannot be read or written.
    #[error("{0}")]
    Local(String),
    /// The config file is not valid: remove it and log in again.
    #[error("{0}")]
    BadConfig(String),
    /// The server refused the login (name, password, or too many attempts).
    #[error("{0}")]
    LoginRefused(String),
    /// The server no longer accepts this machine's token: log in again.
    #[error("the server refused this machine's token ({0}); this machine must log in again")]
    LoggedOut(String),
    /// The server's TLS certificate is not trusted: pass `--ca`.
    #[error("{}", crate::tls::untrusted_advice(.0))]
    Untrusted(String),
    /// The server cannot be reached, or answered something not understood.
    #[error("{0}")]
    Server(String),
    /// A job stopped midway (Ctrl-C, a broken download): run it again to
    /// continue where it stopped.
    #[error("{0}")]
    Interrupted(String),
    /// The process could not set itself up (TLS, the signal handler, the
    /// system's scheduler).
    #[error("{0}")]
    Setup(String),
}

/// A request's failure, for a job that cannot go on without it.
impl From<crate::api::ApiError> for ClientError {
    fn from(e: crate::api::ApiError) -> ClientError {
        use crate::api::ApiError;
        match e {
            ApiError::Unauthorized(w) => ClientError::LoggedOut(w),
            ApiError::Untrusted(w) => ClientError::Untrusted(w),
            ApiError::Local(e) => ClientError::Local(e.to_string()),
            ApiError::Stopped => ClientError::Interrupted("stopped".into()),
            e => ClientError::Server(e.to_string()),
        }
    }
}

impl ClientError {
    /// The exit code for a command that ends with this error: 3 when the
    /// machine must log in again (a service manager should not just
    /// restart it), 2 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ClientError::LoggedOut(_) => ExitCode::from(3),
            _ => ExitCode::from(2),
        }
    }

    /// What to run next, when there is one thing to do about it.
    pub fn advice(&self, server: &str) -> Option<String> {
        match self {
            ClientError::LoggedOut(_) | ClientError::BadConfig(_) => Some(format!(
                "log in with: nimbus-client login --server {server} --user NAME"
            )),
            _ => None,
        }
    }
}
