//! The host as the installer sees it: a [`Remote`] runs commands, reports files and installs
//! them. [`crate::ssh::Connection`] is the real one; the unit tests use an in-memory fake.

use crate::inventory::{Cluster, Host};
use crate::ssh::{Connection, HostKeyPolicy, NewFile, Output, RemoteFile, Source, SshError};
use crate::ssh::{Target, Timeouts, Upload};
use std::collections::{BTreeMap, HashMap};

/// A file to install: where, from what, with which content hash, mode and owner, and an
/// optional command that must accept the new file (`{}` = its temporary path) first.
pub struct FileToPut<'a> {
    pub path: String,
    pub source: Source<'a>,
    pub sha256: String,
    pub mode: u32,
    pub owner: &'static str,
    pub check: Option<&'static str>,
    /// Services that new content restarts: owed in the host's state as soon as it is written.
    pub restarts: Vec<String>,
}

/// `path -> (stamp, sha256)` as recorded when a file was last hashed or written.
pub type KnownFiles = BTreeMap<String, (String, String)>;

pub trait Remote: Send {
    /// Runs `command`; a non-zero exit is not an error.
    fn exec(&self, command: &str) -> Result<Output, SshError>;
    /// Runs `command`; a non-zero exit is an error carrying its stderr.
    fn run(&self, command: &str) -> Result<String, SshError>;
    /// [`exec`](Remote::exec) with `input` on the command's stdin: how a secret the host
    /// must not keep reaches a command without touching its disk or its command line.
    fn exec_with_input(&self, command: &str, input: &[u8]) -> Result<Output, SshError>;
    /// sha256, mode and owner of those of `paths` that exist, trusting `known` for files
    /// whose size and mtime still match.
    fn stat_files_known(
        &self,
        paths: &[&str],
        known: &KnownFiles,
    ) -> Result<HashMap<String, RemoteFile>, SshError>;
    /// `size:mtime` of each existing file of `paths`.
    fn stamps(&self, paths: &[&str]) -> Result<HashMap<String, String>, SshError>;
    /// Installs `file` given what the host has (`have`): atomically, checked first.
    fn put(&self, file: &FileToPut, have: Option<&RemoteFile>) -> Result<Upload, SshError>;
    /// Installs `source` at `dest`, comparing with the host itself.
    fn upload(
        &self,
        source: Source,
        dest: &str,
        mode: u32,
        owner: &str,
    ) -> Result<Upload, SshError>;
    /// Streams the host's file `path` into `out`; the number of bytes.
    fn download(&self, path: &str, out: &mut dyn std::io::Write) -> Result<u64, SshError>;
}

impl Remote for Connection {
    fn exec(&self, command: &str) -> Result<Output, SshError> {
        Connection::exec(self, command)
    }
    fn run(&self, command: &str) -> Result<String, SshError> {
        Connection::run(self, command)
    }
    fn exec_with_input(&self, command: &str, input: &[u8]) -> Result<Output, SshError> {
        Connection::exec_with_input(self, command, Some(&mut &input[..]))
    }
    fn stat_files_known(
        &self,
        paths: &[&str],
        known: &KnownFiles,
    ) -> Result<HashMap<String, RemoteFile>, SshError> {
        Connection::stat_files_known(self, paths, known)
    }
    fn stamps(&self, paths: &[&str]) -> Result<HashMap<String, String>, SshError> {
        Connection::stamps(self, paths)
    }
    fn put(&self, f: &FileToPut, have: Option<&RemoteFile>) -> Result<Upload, SshError> {
        let file = NewFile {
            source: f.source,
            sha256: &f.sha256,
            dest: &f.path,
            mode: f.mode,
            owner: f.owner,
            check: f.check,
        };
        Connection::put(self, &file, have)
    }
    fn upload(
        &self,
        source: Source,
        dest: &str,
        mode: u32,
        owner: &str,
    ) -> Result<Upload, SshError> {
        Connection::upload(self, source, dest, mode, owner)
    }
    fn download(&self, path: &str, out: &mut dyn std::io::Write) -> Result<u64, SshError> {
        Connection::download(self, path, out)
    }
}

/// Runs `command` every half second until it exits 0 (`None`), or until `timeout` has
/// passed: then its last output (`Some`).
pub fn poll_until_ok(
    r: &dyn Remote,
    command: &str,
    timeout: std::time::Duration,
) -> Result<Option<Output>, SshError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let out = r.exec(command)?;
        if out.code == 0 {
            return Ok(None);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(Some(out));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// Opens a [`Remote`] to a host.
pub trait Connector: Sync {
    fn connect(&self, host: &Host) -> Result<Box<dyn Remote>, SshError>;
}

/// SSH to the inventory's hosts, host keys verified.
pub struct SshConnector<'a> {
    pub cluster: &'a Cluster,
    pub keys: HostKeyPolicy,
    pub timeouts: Timeouts,
}

impl<'a> SshConnector<'a> {
    /// SSH to `cluster`'s hosts with its known_hosts; `accept_new` trusts and records keys
    /// not yet there (never a changed key).
    pub fn new(cluster: &'a Cluster, accept_new: bool, timeouts: Timeouts) -> Self {
        SshConnector {
            cluster,
            keys: HostKeyPolicy {
                known_hosts: crate::ssh::expand_path(cluster, &cluster.inventory.ssh.known_hosts),
                accept_new,
                record_new: true,
            },
            timeouts,
        }
    }
}

impl<'a> SshConnector<'a> {
    /// [`SshConnector::new`] for a run that is `dry_run` or not: a dry run trusts a new key
    /// for that run only (it records nothing).
    pub fn for_run(
        cluster: &'a Cluster,
        accept_new: bool,
        timeouts: Timeouts,
        dry_run: bool,
    ) -> Self {
        let mut connector = SshConnector::new(cluster, accept_new, timeouts);
        connector.keys.record_new = !dry_run;
        connector
    }
}

impl Connector for SshConnector<'_> {
    fn connect(&self, host: &Host) -> Result<Box<dyn Remote>, SshError> {
        let target = Target::of(self.cluster, host);
        Ok(Box::new(Connection::open(
            &target,
            &self.keys,
            self.timeouts,
        )?))
    }
}
