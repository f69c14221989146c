//! `restore --snapshot FILE`: the cluster's etcd put back to a backup.
//!
//! Checked before anything changes: the manifest beside the snapshot, the snapshot's sha256,
//! the cluster it was taken from (its CA fingerprints must be the PKI's: a foreign snapshot
//! is refused unless forced) and the encryption key its secrets need (the PKI's must be
//! that key). Then the steps:
//! 1. stop the API servers (with the controller-managers and schedulers), then etcd on
//!    every member;
//! 2. on each member: `etcdutl snapshot restore` into a new data directory, with the
//!    inventory's member list and a new cluster token; revisions are bumped and marked
//!    compacted, so that watchers (the API servers' caches, controllers, kubelets) list again
//!    instead of waiting for revisions that went back in time; the old data directory is
//!    moved aside (`/var/lib/etcd.before-restore-<time>`), never deleted;
//! 3. start etcd everywhere and wait until every member is healthy;
//! 4. start the control planes (all at once: the API is down anyway) and wait for each API
//!    server;
//! 5. restart the kubelets and kube-proxies, which held the newer state;
//! 6. verify: every node Ready.
//!
//! Run again after a failure, it starts over from the first step; each run keeps what it
//! replaced aside.

use super::manifest::{self, Manifest};
use super::{utc_stamp, REMOTE_DIR};
use crate::catalog::{url_address, BIN_DIR};
use crate::fsutil::read_regular;
use crate::install::remote::{poll_until_ok, Connector, SshConnector};
use crate::install::{etcd_peer_url, phases};
use crate::inventory::{Cluster, Host, Role};
use crate::operation::{self, etcd, node, Observer, OperationError, StepReport};

pub use crate::operation::Options;
use crate::pki::{Pki, ENCRYPTION_KEY};
use crate::ssh::{shell_quote, Source};
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;
use time::OffsetDateTime;

/// etcd's data directory on a member (templates/etcd/etcd.yaml).
pub const DATA_DIR: &str = "/var/lib/etcd";

/// Added to every revision on restore: more than a cluster writes between two backups.
const BUMP_REVISION: u64 = 1_000_000_000;

/// The services a control plane stops first and starts after etcd.
const CONTROL_PLANE: &str = "kube-apiserver kube-controller-manager kube-scheduler";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    StopControlPlanes(Vec<String>),
    StopEtcd(Vec<String>),
    RestoreMember(String),
    StartEtcd(Vec<String>),
    StartControlPlanes(Vec<String>),
    RestartNodes(Vec<String>),
    Verify,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Step::StopControlPlanes(h) => write!(f, "stop API servers {}", h.join(", ")),
            Step::StopEtcd(h) => write!(f, "stop etcd {}", h.join(", ")),
            Step::RestoreMember(h) => write!(f, "restore etcd data {h}"),
            Step::StartEtcd(h) => write!(f, "start etcd {}", h.join(", ")),
            Step::StartControlPlanes(h) => write!(f, "start control planes {}", h.join(", ")),
            Step::RestartNodes(h) => write!(f, "restart kubelets {}", h.join(", ")),
            Step::Verify => write!(f, "verify"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub snapshot: PathBuf,
    pub manifest: Manifest,
    /// The new etcd cluster token.
    pub token: String,
    pub steps: Vec<StepReport>,
    pub elapsed_ms: u128,
}

impl Report {
    pub fn incomplete(&self) -> bool {
        !operation::all_done(&self.steps)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{}: {message}", path.display())]
    Snapshot { path: PathBuf, message: String },
    /// The snapshot is another cluster's, or needs another encryption key.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Operation(#[from] OperationError),
}

impl RestoreError {
    pub fn fault(&self) -> crate::fault::Fault {
        match self {
            RestoreError::Operation(e) => e.fault(),
            _ => crate::fault::Fault::Input,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.fault().exit_code()
    }
}

/// The manifest beside `snapshot` (`X.db` → `X.json`).
pub fn manifest_path(snapshot: &Path) -> PathBuf {
    snapshot.with_extension("json")
}

/// Manifests are small; a larger file is not one.
const MANIFEST_CAP: u64 = 1 << 20;

/// Reads the manifest beside `snapshot` and checks the snapshot against it, and both
/// against `cluster` and `pki` (`force`: a foreign snapshot or another encryption key is
/// accepted).
pub fn check(
    cluster: &Cluster,
    pki: &Pki,
    snapshot: &Path,
    force: bool,
) -> Result<Manifest, RestoreError> {
    let bad = |path: &Path, message: String| RestoreError::Snapshot {
        path: path.to_path_buf(),
        message,
    };
    let mpath = manifest_path(snapshot);
    let bytes = read_regular(&mpath, MANIFEST_CAP).map_err(|e| {
        bad(
            &mpath,
            format!("{e}: the manifest `backup` writes beside every snapshot is needed"),
        )
    })?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| bad(&mpath, format!("not a backup manifest: {e}")))?;
    if m.format != manifest::FORMAT {
        return Err(bad(
            &mpath,
            format!(
                "format {} (this k8s-boot reads {})",
                m.format,
                manifest::FORMAT
            ),
        ));
    }
    let sha = crate::digest::sha256_file(snapshot)
        .map_err(|e| bad(snapshot, e.to_string()))?
        .ok_or_else(|| bad(snapshot, "no such file".into()))?;
    if sha != m.sha256 {
        return Err(bad(
            snapshot,
            format!(
                "sha256 {sha}, but the manifest says {}: the snapshot is damaged or not the one \
                 backed up",
                m.sha256
            ),
        ));
    }
    if !force {
        let ours =
            manifest::ca_fingerprints(pki).map_err(|e| RestoreError::Refused(e.to_string()))?;
        let differing: Vec<&str> = ours
            .iter()
            .filter(|(ca, fp)| m.ca_fingerprints.get(*ca) != Some(fp))
            .map(|(ca, _)| ca.as_str())
            .collect();
        if !differing.is_empty() {
            return Err(RestoreError::Refused(format!(
                "{} was taken from another cluster (`{}`, this inventory's is `{}`): its CA \
                 certificates ({}) are not those of the PKI in {}; restoring it would put that \
                 cluster's objects here (--force to restore it anyway)",
                snapshot.display(),
                m.cluster,
                cluster.inventory.cluster.name,
                differing.join(", "),
                pki.dir.display()
            )));
        }
        let key = pki
            .read(ENCRYPTION_KEY)
            .map_err(|e| RestoreError::Refused(e.to_string()))?;
        if manifest::fingerprint(&key) != m.encryption_key.fingerprint {
            return Err(RestoreError::Refused(format!(
                "the secrets in {} are encrypted with the key {} (kept as {}), and the PKI's \
                 {} is another key: put that key back as {} and run `k8s-boot install` first, \
                 or the restored Secrets cannot be read (--force to restore anyway)",
                snapshot.display(),
                m.encryption_key.fingerprint,
                m.encryption_key.kept.display(),
                ENCRYPTION_KEY,
                pki.path(ENCRYPTION_KEY).display()
            )));
        }
    }
    Ok(m)
}

/// Restores `snapshot` (its manifest `checked` by [`check`]) over SSH.
pub fn restore(
    cluster: &Cluster,
    snapshot: &Path,
    checked: Manifest,
    opts: &Options,
    observer: &dyn Observer,
) -> Result<Report, RestoreError> {
    let connector = SshConnector::for_run(
        cluster,
        opts.accept_new_host_keys,
        opts.timeouts,
        opts.dry_run,
    );
    restore_with(
        cluster,
        snapshot,
        checked,
        opts,
        observer,
        &connector,
        OffsetDateTime::now_utc(),
    )
}

/// [`restore`] through `connector`; `now` names the token and the directories set aside.
pub fn restore_with(
    cluster: &Cluster,
    snapshot: &Path,
    checked: Manifest,
    opts: &Options,
    observer: &dyn Observer,
    connector: &dyn Connector,
    now: OffsetDateTime,
) -> Result<Report, RestoreError> {
    let started = Instant::now();
    let names =
        |role: Role| -> Vec<String> { cluster.hosts_with(role).map(|h| h.name.clone()).collect() };
    let (members, control_planes) = (names(Role::Etcd), names(Role::ControlPlane));
    // Every member and control plane must answer before anything stops.
    for name in members.iter().chain(&control_planes) {
        let host = host(cluster, name);
        connector
            .connect(host)
            .map_err(|e| OperationError::Unreachable {
                host: name.clone(),
                source: Box::new(e),
            })?;
    }
    let stamp = utc_stamp(now);
    let token = format!("{}-etcd-restore-{stamp}", cluster.inventory.cluster.name);
    let mut steps = vec![
        Step::StopControlPlanes(control_planes.clone()),
        Step::StopEtcd(members.clone()),
    ];
    steps.extend(members.iter().cloned().map(Step::RestoreMember));
    steps.extend([
        Step::StartEtcd(members.clone()),
        Step::StartControlPlanes(control_planes.clone()),
        Step::RestartNodes(cluster.nodes().map(|h| h.name.clone()).collect()),
        Step::Verify,
    ]);
    let run = Run {
        cluster,
        snapshot,
        opts,
        connector,
        token: &token,
        stamp: &stamp,
    };
    let reports = operation::run_steps(observer, "restore", &steps, |s| run.step(s));
    Ok(Report {
        dry_run: opts.dry_run,
        snapshot: snapshot.to_path_buf(),
        manifest: checked,
        token,
        steps: reports,
        elapsed_ms: started.elapsed().as_millis(),
    })
}

fn host<'c>(cluster: &'c Cluster, name: &str) -> &'c Host {
    cluster
        .inventory
        .hosts
        .iter()
        .find(|h| h.name == name)
        .expect("steps name inventory hosts")
}

struct Run<'a> {
    cluster: &'a Cluster,
    snapshot: &'a Path,
    opts: &'a Options,
    connector: &'a dyn Connector,
    token: &'a str,
    stamp: &'a str,
}

impl Run<'_> {
    /// `command` on each of `hosts`; a line per host.
    fn on_each(
        &self,
        hosts: &[String],
        command: &str,
        what: &str,
    ) -> Result<Vec<String>, OperationError> {
        let mut changes = Vec::new();
        for name in hosts {
            if !self.opts.dry_run {
                let r = self.connector.connect(host(self.cluster, name))?;
                r.run(command)?;
            }
            changes.push(format!("{name}: {what}"));
        }
        Ok(changes)
    }

    fn step(&self, step: &Step) -> Result<Vec<String>, OperationError> {
        let dry = self.opts.dry_run;
        match step {
            Step::StopControlPlanes(hosts) => self.on_each(
                hosts,
                &format!("systemctl stop {CONTROL_PLANE}"),
                &format!("stopped {CONTROL_PLANE}"),
            ),
            Step::StopEtcd(hosts) => self.on_each(hosts, "systemctl stop etcd", "stopped etcd"),
            Step::RestoreMember(name) => {
                let member = host(self.cluster, name);
                let aside = format!("{DATA_DIR}.before-restore-{}", self.stamp);
                let line = format!(
                    "{name}: data restored from {} (token {}); the previous data kept in {aside}",
                    self.snapshot.display(),
                    self.token
                );
                if dry {
                    return Ok(vec![line]);
                }
                let r = self.connector.connect(member)?;
                let copy = format!("{REMOTE_DIR}/restore.db");
                r.run(&format!("mkdir -p {REMOTE_DIR} && chmod 700 {REMOTE_DIR}"))?;
                r.upload(Source::File(self.snapshot), &copy, 0o600, "root:root")?;
                r.run(&self.restore_command(member, &copy, &aside))?;
                Ok(vec![line])
            }
            Step::StartEtcd(hosts) => {
                let mut changes =
                    self.on_each(hosts, "systemctl start --no-block etcd", "started etcd")?;
                if !dry {
                    // Members only become healthy together: started first, then waited for.
                    let first = host(self.cluster, &hosts[0]);
                    let r = self.connector.connect(first)?;
                    etcd::wait_healthy(r.as_ref(), first, self.opts.ready_timeout)?;
                    changes.push("etcd: every member healthy".into());
                }
                Ok(changes)
            }
            Step::StartControlPlanes(hosts) => {
                // The API is down anyway: every control plane starts at once, then each API
                // server is waited for.
                let mut changes = self.on_each(
                    hosts,
                    &format!("systemctl start --no-block {CONTROL_PLANE}"),
                    &format!("started {CONTROL_PLANE}"),
                )?;
                if !dry {
                    for name in hosts {
                        let cp = host(self.cluster, name);
                        let r = self.connector.connect(cp)?;
                        self.wait_api_server(r.as_ref(), cp)?;
                        changes.push(format!("{name}: API server ready"));
                    }
                }
                Ok(changes)
            }
            Step::RestartNodes(hosts) => {
                let mut changes = Vec::new();
                for name in hosts {
                    if dry {
                        changes.push(format!("{name}: restart kubelet kube-proxy"));
                        continue;
                    }
                    // A node that is down starts from the restored state when it comes back.
                    match self.connector.connect(host(self.cluster, name)) {
                        Ok(r) => {
                            r.run("systemctl restart kubelet kube-proxy")?;
                            changes.push(format!("{name}: restarted kubelet kube-proxy"));
                        }
                        Err(e) => changes.push(format!("{name}: not restarted: {e}")),
                    }
                }
                Ok(changes)
            }
            Step::Verify => {
                if dry {
                    return Ok(vec!["every node Ready".into()]);
                }
                let cp = self.cluster.hosts_with(Role::ControlPlane).next();
                let r = self.connector.connect(cp.expect("a control plane"))?;
                let deadline = Instant::now() + self.opts.ready_timeout;
                let mut changes = Vec::new();
                for n in self.cluster.nodes() {
                    node::wait_ready(r.as_ref(), &n.name, self.cluster.version(), deadline)?;
                    changes.push(format!("{}: Ready", n.name));
                }
                Ok(changes)
            }
        }
    }

    /// Restores `copy` into a new data directory of `member`, then swaps it in, keeping the
    /// old one as `aside`.
    fn restore_command(&self, member: &Host, copy: &str, aside: &str) -> String {
        let initial_cluster: Vec<String> = self
            .cluster
            .hosts_with(Role::Etcd)
            .map(|h| format!("{}={}", h.name, etcd_peer_url(h)))
            .collect();
        let new = format!("{DATA_DIR}.restore-{}", self.stamp);
        format!(
            "set -e; rm -rf {new}; \
             {BIN_DIR}/etcdutl snapshot restore {copy} --name {name} \
             --initial-cluster {ic} --initial-cluster-token {token} \
             --initial-advertise-peer-urls https://{addr}:2380 --data-dir {new} \
             --bump-revision {BUMP_REVISION} --mark-compacted 2>&1; \
             if [ -e {DATA_DIR} ]; then mv {DATA_DIR} {aside}; fi; mv {new} {DATA_DIR}; rm -f {copy}",
            name = shell_quote(&member.name),
            ic = shell_quote(&initial_cluster.join(",")),
            token = shell_quote(self.token),
            addr = url_address(member.address),
        )
    }

    /// The host's own API server answering `/readyz`.
    fn wait_api_server(
        &self,
        r: &dyn crate::install::remote::Remote,
        cp: &Host,
    ) -> Result<(), OperationError> {
        let (check, _) = phases::health_command(self.cluster, cp, "kube-apiserver")
            .expect("kube-apiserver has a health check");
        match poll_until_ok(r, &check, self.opts.ready_timeout)? {
            None => Ok(()),
            Some(_) => Err(OperationError::StepFailed(vec![format!(
                "{}: the API server is not ready after {} s",
                cp.name,
                self.opts.ready_timeout.as_secs()
            )])),
        }
    }
}
