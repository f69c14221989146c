//! [`SshError`]: what can go wrong talking to a host.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The messages leave the host's name out: every caller prints it in front already.
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
    #[error("authentication as {user} failed ({method}): {message}")]
    Auth {
        host: String,
        user: String,
        method: String,
        message: String,
    },
    #[error("`{command}` exited with {code}: {stderr_tail}")]
    Command {
        host: String,
        command: String,
        code: i32,
        stderr_tail: String,
    },
    #[error("{message}")]
    Session { host: String, message: String },
    #[error("{}", path.display())]
    Local {
        path: PathBuf,
        source: std::io::Error,
    },
}
