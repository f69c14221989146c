//! SSH to inventory hosts (libssh2): strict host-key checking, key or agent auth, commands
//! with timeouts, and uploads that skip identical files and replace changed ones atomically.
//!
//! Each module uses only those listed before it: `error`, `shell`, `target`, `known_hosts`,
//! `connection`, `files`, `upload`. This one only re-exports.

mod connection;
mod error;
mod files;
mod known_hosts;
mod shell;
mod target;
mod upload;

pub use connection::{Connection, Output};
pub use error::{AuthFailure, SessionCause, SshError};
pub use files::{plan_upload, RemoteFile, Upload};
pub use known_hosts::HostKeyPolicy;
pub use shell::{shell_quote, tail};
pub use target::{expand_path, Target, Timeouts};
pub use upload::{NewFile, Source};
