//! [`SshError`]: what can go wrong talking to a host.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The messages leave the host's name out: every caller prints it in front already.
///
/// Typed causes (`failure`, `cause`) are part of the message, not `source()`: install
/// reports print an error without its chain.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot connect to {addr}: {message}")]
    Connect {
        host: String,
        addr: SocketAddr,
        message: String,
    },
    #[error("host key refused: {message}")]
    HostKey { host: String, message: String },
    #[error("authentication as {user} failed ({method}): {failure}")]
    Auth {
        host: String,
        user: String,
        method: String,
        failure: AuthFailure,
    },
    #[error("`{command}` exited with {code}: {stderr_tail}")]
    Command {
        host: String,
        command: String,
        code: i32,
        stderr_tail: String,
    },
    /// The session broke while doing `what`.
    #[error("{what}: {cause}")]
    Session {
        host: String,
        what: String,
        cause: SessionCause,
    },
    /// A file on this machine (an upload's source). The cause is in the message, not the
    /// error chain: install reports print an error without its chain.
    #[error("{}: {cause}", path.display())]
    Local {
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// Why authentication failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error("key file not found")]
    KeyFileMissing,
    /// The server refused the key or the agent's keys (libssh2's code left out).
    #[error("{}", .0.message())]
    Refused(ssh2::Error),
}

/// What failed under a session step: libssh2 itself, or reading or writing a stream.
#[derive(Debug, thiserror::Error)]
pub enum SessionCause {
    #[error(transparent)]
    Ssh(#[from] ssh2::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_causes_read_as_the_message_and_stay_out_of_the_chain() {
        let e = SshError::Auth {
            host: "cp1".into(),
            user: "root".into(),
            method: "key /keys/id".into(),
            failure: AuthFailure::KeyFileMissing,
        };
        assert_eq!(
            e.to_string(),
            "authentication as root failed (key /keys/id): key file not found"
        );
        assert!(std::error::Error::source(&e).is_none());

        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe closed");
        let e = SshError::Session {
            host: "cp1".into(),
            what: "sending data".into(),
            cause: io.into(),
        };
        assert_eq!(e.to_string(), "sending data: pipe closed");
        assert!(std::error::Error::source(&e).is_none());
        assert!(matches!(
            e,
            SshError::Session {
                cause: SessionCause::Io(ref io),
                ..
            } if io.kind() == std::io::ErrorKind::BrokenPipe
        ));
    }
}
