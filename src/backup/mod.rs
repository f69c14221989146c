//! `backup` and `restore`: etcd snapshots kept on the deploy machine, and a cluster put back
//! to one of them.
//!
//! A backup: a healthy member takes the snapshot on its host (`etcdctl snapshot save` over
//! mTLS), `etcdutl snapshot status` checks it (hash, revision), it is copied to
//! `<dir>/<cluster>-<UTC time>.db` (0600) and compared with its sha256 on the host, the
//! [`manifest::Manifest`] is written beside it as `.json`, and the host's copy is removed.
//! The secrets in the snapshot are encrypted with the PKI's `encryption.key`: the manifest
//! names that key by fingerprint and path, and a copy is kept in the PKI directory
//! ([`manifest::keep_encryption_key`]), never in the backup directory and never printed.

pub mod manifest;
pub mod restore;
#[cfg(test)]
mod tests;

use crate::catalog::{etcdctl, BIN_DIR};
use crate::fsutil::{self, LockMode};
use crate::install::remote::{Connector, Remote, SshConnector};
use crate::inventory::{Cluster, Host, Role};
use crate::operation::{etcd, OperationError};
use crate::pki::{Pki, PkiError};
use crate::ssh::{shell_quote, tail, SshError, Timeouts};
use manifest::{KeepError, Manifest, Member};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Instant;
use time::OffsetDateTime;

/// Where a member writes a snapshot before it is copied (and then removed).
pub const REMOTE_DIR: &str = "/var/lib/k8s-boot/backup";

/// Where the scheduled snapshots are kept on each etcd host: a data directory, which `reset`
/// keeps unless `--purge-data` (k8s-boot's state directory goes with every reset).
pub const SCHEDULED_DIR: &str = "/var/backups/k8s-boot-etcd";

/// The lock file of a backup directory: one backup writes it at a time.
const LOCK_FILE: &str = ".k8s-boot.lock";

#[derive(Debug, Clone)]
pub struct Options {
    /// The backup directory on this machine.
    pub dir: PathBuf,
    pub accept_new_host_keys: bool,
    pub timeouts: Timeouts,
}

/// `backups/` next to the inventory.
pub fn default_dir(inventory: &Path) -> PathBuf {
    inventory.parent().unwrap_or(Path::new(".")).join("backups")
}

/// A backup made.
#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    pub snapshot: PathBuf,
    pub manifest_file: PathBuf,
    pub manifest: Manifest,
    pub elapsed_ms: u128,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no etcd member answers healthy and reachable: {}", .0.join("; "))]
    NoHealthyMember(Vec<String>),
    #[error(transparent)]
    Operation(#[from] OperationError),
    #[error(transparent)]
    Ssh(Box<SshError>),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Keep(#[from] KeepError),
    #[error(transparent)]
    Lock(#[from] fsutil::LockError),
    #[error("backup directory {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Local {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{host}: {what} failed: {output}")]
    Remote {
        host: String,
        what: String,
        output: String,
    },
    #[error(
        "the copy of the snapshot is not the one on {host}: sha256 {here} here, {there} there"
    )]
    CopyDiffers {
        host: String,
        here: String,
        there: String,
    },
    #[error("{} exists already; a backup never replaces one", .0.display())]
    Exists(PathBuf),
}

impl From<SshError> for BackupError {
    fn from(e: SshError) -> Self {
        BackupError::Ssh(Box::new(e))
    }
}

impl BackupError {
    pub fn fault(&self) -> crate::fault::Fault {
        use crate::fault::Fault;
        match self {
            BackupError::Operation(e) => e.fault(),
            BackupError::Pki(_)
            | BackupError::Keep(_)
            | BackupError::Exists(_)
            | BackupError::Dir { .. } => Fault::Input,
            _ => Fault::Runtime,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.fault().exit_code()
    }
}

/// Takes a backup of `cluster`'s etcd over SSH into `opts.dir`.
pub fn backup(cluster: &Cluster, pki: &Pki, opts: &Options) -> Result<Backup, BackupError> {
    let connector = SshConnector::for_run(cluster, opts.accept_new_host_keys, opts.timeouts, false);
    backup_with(cluster, pki, opts, &connector, OffsetDateTime::now_utc())
}

/// [`backup`] through `connector`, named after `now`.
pub fn backup_with(
    cluster: &Cluster,
    pki: &Pki,
    opts: &Options,
    connector: &dyn Connector,
    now: OffsetDateTime,
) -> Result<Backup, BackupError> {
    let started = Instant::now();
    // Everything local first: a directory that cannot hold backups or a PKI that cannot say
    // which cluster this is stops here, before any host is asked.
    let dir_error = |source| BackupError::Dir {
        path: opts.dir.clone(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&opts.dir)
        .map_err(dir_error)?;
    if !std::fs::symlink_metadata(&opts.dir)
        .map_err(dir_error)?
        .is_dir()
    {
        return Err(dir_error(std::io::ErrorKind::NotADirectory.into()));
    }
    let _lock = fsutil::lock(&opts.dir.join(LOCK_FILE), LockMode::Exclusive)?;
    let ca_fingerprints = manifest::ca_fingerprints(pki)?;
    let encryption_key = manifest::keep_encryption_key(pki)?;
    let local = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Local { path, source }
    };
    let name = format!("{}-{}", cluster.inventory.cluster.name, utc_stamp(now));
    let snapshot = opts.dir.join(format!("{name}.db"));
    let manifest_file = opts.dir.join(format!("{name}.json"));
    for path in [&snapshot, &manifest_file] {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(BackupError::Exists(path.clone()));
        }
    }

    let (host, r) = healthy_member(cluster, connector)?;
    let remote = format!("{REMOTE_DIR}/{name}.db");
    let on_host = |what: &str, command: String| -> Result<String, BackupError> {
        let out = r.exec(&command)?;
        if out.code != 0 {
            return Err(BackupError::Remote {
                host: host.name.clone(),
                what: what.to_string(),
                output: tail(&format!("{}{}", out.stdout, out.stderr), 4),
            });
        }
        Ok(out.stdout)
    };
    on_host(
        "etcdctl snapshot save",
        format!(
            "umask 077 && mkdir -p {REMOTE_DIR} && {} --command-timeout=600s snapshot save {remote} 2>&1",
            etcdctl(host)
        ),
    )?;
    let taken = (|| -> Result<Manifest, BackupError> {
        let status = on_host(
            "etcdutl snapshot status",
            format!("{BIN_DIR}/etcdutl snapshot status {remote} -w json"),
        )?;
        let status = SnapshotStatus::parse(&status).map_err(|message| BackupError::Remote {
            host: host.name.clone(),
            what: "etcdutl snapshot status".into(),
            output: message,
        })?;
        let there = on_host("sha256sum", format!("sha256sum {remote}"))?;
        let there = there.split_whitespace().next().unwrap_or("").to_string();
        let etcd_version = server_version(r.as_ref(), host)?;
        let members = etcd::members(r.as_ref(), host)?
            .into_iter()
            .map(|m| Member {
                name: m.name,
                peer_urls: m.peer_urls,
            })
            .collect();
        // The copy, hashed as it arrives; published only when it matches the host's.
        let mut size = 0;
        let sha256 = {
            let staged = fsutil::stage_with(&snapshot, 0o600, |f| {
                let mut out = HashingWriter {
                    inner: f,
                    hasher: Sha256::new(),
                };
                size = r
                    .download(&remote, &mut out)
                    .map_err(std::io::Error::other)?;
                let here = crate::digest::finish_hex(out.hasher);
                if here != there {
                    return Err(std::io::Error::other(BackupError::CopyDiffers {
                        host: host.name.clone(),
                        here,
                        there: there.clone(),
                    }));
                }
                Ok(())
            })
            .map_err(|e| copy_error(e, &snapshot))?;
            staged.commit().map_err(local(&snapshot))?;
            there.clone()
        };
        let manifest = Manifest {
            format: manifest::FORMAT,
            cluster: cluster.inventory.cluster.name.clone(),
            created: rfc3339(now),
            snapshot: format!("{name}.db"),
            sha256,
            size,
            kubernetes_version: cluster.version().to_string(),
            etcd_version,
            revision: status.revision,
            hash: status.hash,
            total_keys: status.total_keys,
            taken_from: host.name.clone(),
            members,
            ca_fingerprints,
            encryption_key,
        };
        let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
        fsutil::write_atomic(&manifest_file, &[json.as_slice(), b"\n"].concat(), 0o600)
            .map_err(local(&manifest_file))?;
        Ok(manifest)
    })();
    // The host keeps no copy, whatever happened.
    let _ = r.exec(&format!("rm -f {}", shell_quote(&remote)));
    Ok(Backup {
        snapshot,
        manifest_file,
        manifest: taken?,
        elapsed_ms: started.elapsed().as_millis(),
    })
}

/// The error a failed copy carries: the mismatch itself, or the local file's.
fn copy_error(e: std::io::Error, path: &Path) -> BackupError {
    match e.into_inner() {
        Some(inner) => match inner.downcast::<BackupError>() {
            Ok(b) => *b,
            Err(other) => BackupError::Local {
                path: path.to_path_buf(),
                source: std::io::Error::other(other),
            },
        },
        None => BackupError::Local {
            path: path.to_path_buf(),
            source: std::io::Error::other("the copy failed"),
        },
    }
}

struct HashingWriter<'a> {
    inner: &'a mut std::fs::File,
    hasher: Sha256,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The first etcd host that answers and whose member is healthy, in inventory order.
pub fn healthy_member<'c>(
    cluster: &'c Cluster,
    connector: &dyn Connector,
) -> Result<(&'c Host, Box<dyn Remote>), BackupError> {
    let mut why = Vec::new();
    for host in cluster.hosts_with(Role::Etcd) {
        let r = match connector.connect(host) {
            Ok(r) => r,
            Err(e) => {
                why.push(format!("{}: {e}", host.name));
                continue;
            }
        };
        let own = crate::catalog::etcd_client_url(host);
        match etcd::healthy_endpoints(r.as_ref(), host) {
            Ok(healthy) if healthy.contains(&own) => return Ok((host, r)),
            Ok(_) => why.push(format!("{}: not healthy", host.name)),
            Err(e) => why.push(format!("{}: {e}", host.name)),
        }
    }
    Err(BackupError::NoHealthyMember(why))
}

/// The etcd server version of `host`'s member (`endpoint status`).
fn server_version(r: &dyn Remote, host: &Host) -> Result<String, BackupError> {
    let out = r.run(&format!("{} endpoint status -w json", etcdctl(host)))?;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    Ok(v[0]["Status"]["version"]
        .as_str()
        .unwrap_or("unknown")
        .to_string())
}

/// What `etcdutl snapshot status -w json` says of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotStatus {
    pub hash: u64,
    pub revision: i64,
    pub total_keys: u64,
}

impl SnapshotStatus {
    pub fn parse(json: &str) -> Result<SnapshotStatus, String> {
        let v: serde_json::Value =
            serde_json::from_str(json.trim()).map_err(|e| format!("{e}: {}", tail(json, 2)))?;
        let field = |name: &str| {
            v[name]
                .as_i64()
                .ok_or_else(|| format!("no `{name}` in `{}`", tail(json, 2)))
        };
        let status = SnapshotStatus {
            hash: field("hash")? as u64,
            revision: field("revision")?,
            total_keys: field("totalKey")? as u64,
        };
        if status.revision <= 0 {
            return Err(format!("revision {} in the snapshot", status.revision));
        }
        Ok(status)
    }
}

/// `20261207T120000Z`: in file names, sorts by time.
pub fn utc_stamp(t: OffsetDateTime) -> String {
    utc(t, "", "T", "", "Z")
}

/// `2026-12-07T12:00:00Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    utc(t, "-", "T", ":", "Z")
}

/// `t` in UTC as date, `between`, time, `end`; the date's and the time's parts joined by
/// `date_sep` and `time_sep`.
fn utc(t: OffsetDateTime, date_sep: &str, between: &str, time_sep: &str, end: &str) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{date_sep}{:02}{date_sep}{:02}{between}{:02}{time_sep}{:02}{time_sep}{:02}{end}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
