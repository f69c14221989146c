//! `install`: apply the rendered plan to the hosts, phase by phase.
//!
//! Each phase runs on its hosts in parallel (bounded), and every host finishes a phase
//! before any host starts the next (etcd must have quorum before an apiserver starts). A
//! failure stays with its host: that host skips its later phases, the others go on.
//!
//! The layers, top down: this module runs the phases ([`phases::PHASES`]) over the hosts;
//! `steps` holds what each phase does; `files`, `services`, `images` and `manifests` are
//! the work they share; every side effect goes through an [`executor::Executor`] (wet: do
//! it, dry: record it) onto a [`remote::Remote`] (SSH, or an in-memory fake in the tests).

pub mod change;
mod connect;
mod digests;
mod etcd_member;
pub mod executor;
pub mod expiry;
#[cfg(test)]
pub(crate) mod fake;
mod files;
mod images;
pub mod maintain;
mod manifests;
pub mod phases;
mod preflight;
mod ready;
pub mod remote;
mod report;
mod services;
pub mod state;
mod steps;
#[cfg(test)]
pub(crate) mod tests;

use crate::inventory::{Cluster, Host};
use crate::render::{self, HostPlan, Plan};
use crate::ssh::{SshError, Timeouts};
use phases::{PhaseId, PHASES};
use remote::{Connector, Remote, SshConnector};
use state::HostState;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use crate::catalog::NODE_ROLES;
pub use connect::read_state;
pub use etcd_member::{
    peer_url as etcd_peer_url, Member as EtcdMember, MemberList as EtcdMemberList,
};
pub use images::{archives, import_missing, ImageArchive, IMAGES_DIR};
pub use report::{HostReport, PhaseResult, Report};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("unknown phase `{0}`; phases: {1}")]
    UnknownPhase(String, String),
    #[error("unknown host `{0}`; hosts: {1}")]
    UnknownHost(String, String),
    #[error("binaries missing or not executable in {dir}: {missing}")]
    MissingBinaries { dir: PathBuf, missing: String },
    #[error(transparent)]
    Render(#[from] render::RenderError),
    #[error(
        "{} (the inventory's cluster.kubernetes_version is {wanted}): changing the version \
         is an upgrade; run `k8s-boot upgrade` (docs/UPGRADE.md)",
        running.iter().map(|(h, v)| format!("{h} runs {v}")).collect::<Vec<_>>().join(", ")
    )]
    VersionChange {
        wanted: String,
        running: Vec<(String, String)>,
    },
    #[error("image archive {}: {source}", path.display())]
    Image {
        path: PathBuf,
        #[source]
        source: crate::oci::OciError,
    },
}

impl InstallError {
    /// An unknown phase or host is the input's; missing binaries (run `fetch`) and a broken
    /// image archive are this machine's; a render error says for itself.
    pub fn fault(&self) -> crate::fault::Fault {
        use crate::fault::Fault;
        match self {
            InstallError::UnknownPhase(..)
            | InstallError::UnknownHost(..)
            | InstallError::VersionChange { .. } => Fault::Input,
            InstallError::MissingBinaries { .. } | InstallError::Image { .. } => Fault::Runtime,
            InstallError::Render(e) => e.fault(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.fault().exit_code()
    }
}

/// Why a phase failed on a host.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(
        "host belongs to cluster `{found}` (per {}), not `{expected}`; reset it first",
        state::STATE_FILE
    )]
    ForeignCluster { found: String, expected: String },
    #[error("{}", .0.join("; "))]
    Preflight(Vec<String>),
    #[error("{service} not healthy after {secs} s: {output}\n{journal}")]
    Unhealthy {
        service: String,
        secs: u64,
        output: String,
        journal: String,
    },
    #[error("{}", .0.join("; "))]
    NotVerified(Vec<String>),
    #[error("kubectl get nodes: {0}")]
    NodeList(#[source] serde_json::Error),
    #[error("nodes not registered after {secs} s: {}", .missing.join(", "))]
    NodesNotRegistered { missing: Vec<String>, secs: u64 },
    #[error("manifest {path}: {source}")]
    Manifest {
        path: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{command}: output is not the JSON expected: {source}")]
    KubectlOutput {
        command: String,
        #[source]
        source: serde_json::Error,
    },
    /// What was applied is not ready when the run's wait for it ends.
    #[error("not ready after {secs} s: {}", ready::list(.blockers))]
    NotReady {
        secs: u64,
        blockers: Vec<ready::Blocker>,
    },
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Phases to run (all when empty); `connect` always runs.
    pub phases: Vec<PhaseId>,
    /// Hosts to touch (all when empty).
    pub hosts: Vec<String>,
    pub dry_run: bool,
    pub parallelism: usize,
    pub accept_new_host_keys: bool,
    pub timeouts: Timeouts,
    /// How long the cluster phases together wait for what they applied to become ready.
    pub ready_timeout: Duration,
    pub purpose: Purpose,
}

/// Why the phases run: an install refuses hosts that run another Kubernetes version; an
/// upgrade's steps expect them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    #[default]
    Install,
    /// An upgrade's first step: the binaries phase stages the new binaries beside their
    /// targets; nothing else changes and nothing restarts.
    UpgradeStage,
    /// An upgrade's step over some hosts and phases.
    Upgrade,
}

/// [`Options::ready_timeout`] unless set: the images are on the nodes already (the runtime
/// phase imports them), so this bounds container starts, not downloads.
pub const READY_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for Options {
    fn default() -> Self {
        Options {
            phases: vec![],
            hosts: vec![],
            dry_run: false,
            parallelism: 10,
            accept_new_host_keys: false,
            timeouts: Timeouts::default(),
            ready_timeout: READY_TIMEOUT,
            purpose: Purpose::Install,
        }
    }
}

impl Options {
    /// Whether `host` is among the selected hosts.
    pub fn selects(&self, host: &Host) -> bool {
        self.hosts.is_empty() || self.hosts.contains(&host.name)
    }

    /// The phases that run, in order: the selected ones (all when none) plus `connect`.
    pub fn phases_to_run(&self) -> Vec<PhaseId> {
        PHASES
            .iter()
            .map(|p| p.id)
            .filter(|id| {
                self.phases.is_empty() || self.phases.contains(id) || *id == PhaseId::Connect
            })
            .collect()
    }
}

pub fn parse_phases<S: AsRef<str>>(names: &[S]) -> Result<Vec<PhaseId>, InstallError> {
    names
        .iter()
        .map(AsRef::as_ref)
        .map(|name| {
            phases::by_name(name).map(|p| p.id).ok_or_else(|| {
                InstallError::UnknownPhase(
                    name.to_string(),
                    PHASES.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
                )
            })
        })
        .collect()
}

/// Observes progress; the command line shows it with progress bars or lines.
pub trait Progress: Sync {
    fn host(&self, host: &str, message: &str);
    fn phase_done(&self, host: &str, phase: PhaseId, result: &PhaseResult);
}

/// One host during a run.
struct HostRun<'a> {
    host: &'a Host,
    plan: &'a HostPlan,
    /// A host not selected but needed by those that are: it takes part only in these host
    /// phases (and `connect`), e.g. a load balancer whose upstreams list a new worker.
    only: Option<&'static [PhaseId]>,
    remote: Option<Box<dyn Remote>>,
    work: HostWork,
    results: BTreeMap<PhaseId, PhaseResult>,
    failed: bool,
}

/// What the phases of one host build up as they go: its state (which also holds the
/// services that must restart).
#[derive(Default)]
struct HostWork {
    state: HostState,
}

/// What every phase of a run shares.
struct Run<'a> {
    cluster: &'a Cluster,
    plan: &'a Plan,
    opts: &'a Options,
    selected: Vec<PhaseId>,
    binaries: files::LocalBinaries,
    /// The OCI archives of `binaries.dir/images/` the runtime phase imports.
    images: Vec<images::ImageArchive>,
    progress: &'a dyn Progress,
    connector: &'a dyn Connector,
    /// When waiting for applied objects to become ready ends: one deadline for the run,
    /// set when the first cluster phase starts waiting.
    ready_deadline: OnceLock<Instant>,
    /// Held by the restart of a running `rolling` service until it is healthy again.
    rolling: Mutex<()>,
}

impl Run<'_> {
    fn selected(&self, phase: PhaseId) -> bool {
        self.selected.contains(&phase)
    }

    /// The components `host` runs whose phase this run installs.
    fn components_on<'h>(
        &'h self,
        host: &'h Host,
    ) -> impl Iterator<Item = &'static crate::catalog::Component> + 'h {
        crate::catalog::COMPONENTS
            .iter()
            .filter(move |c| self.selected(c.phase) && c.runs_on(self.cluster, host))
    }

    fn ready_deadline(&self) -> Instant {
        *self
            .ready_deadline
            .get_or_init(|| Instant::now() + self.opts.ready_timeout)
    }
}

/// Refuses a selected host name that is not in the inventory (an invalid input).
pub fn require_known_hosts(cluster: &Cluster, selected: &[String]) -> Result<(), InstallError> {
    let names: Vec<&str> = cluster
        .inventory
        .hosts
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    match selected.iter().find(|n| !names.contains(&n.as_str())) {
        Some(unknown) => Err(InstallError::UnknownHost(unknown.clone(), names.join(", "))),
        None => Ok(()),
    }
}

/// kubectl as the cluster's admin, on a control-plane host (where install puts the admin
/// kubeconfig).
pub fn admin_kubectl() -> String {
    format!(
        "{}/kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig",
        crate::catalog::BIN_DIR
    )
}

/// Installs `plan` (rendered from `cluster`) onto the hosts over SSH.
pub fn install(
    cluster: &Cluster,
    plan: &Plan,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Report, InstallError> {
    let connector = SshConnector::for_run(
        cluster,
        opts.accept_new_host_keys,
        opts.timeouts,
        opts.dry_run,
    );
    install_with(cluster, plan, opts, progress, &connector)
}

/// [`install`] through `connector`.
pub fn install_with(
    cluster: &Cluster,
    plan: &Plan,
    opts: &Options,
    progress: &dyn Progress,
    connector: &dyn Connector,
) -> Result<Report, InstallError> {
    let started = Instant::now();
    require_known_hosts(cluster, &opts.hosts)?;
    let selected = opts.phases_to_run();
    let binaries_dir = cluster.resolve(&cluster.inventory.binaries.dir);
    if selected.contains(&PhaseId::Binaries) {
        files::check_binaries(cluster, &binaries_dir, &selected, opts)?;
    }
    let images = if selected.contains(&PhaseId::Runtime) {
        images::archives(&binaries_dir.join(IMAGES_DIR))?
    } else {
        Vec::new()
    };
    let run = Run {
        cluster,
        plan,
        opts,
        selected,
        binaries: files::LocalBinaries::new(binaries_dir),
        images,
        progress,
        connector,
        ready_deadline: OnceLock::new(),
        rolling: Mutex::new(()),
    };
    let hosts: Vec<Mutex<HostRun>> = cluster
        .inventory
        .hosts
        .iter()
        .zip(&plan.hosts)
        .filter_map(
            |(h, p)| match helper_phases(cluster, &run.selected, opts, h) {
                _ if opts.selects(h) => Some((h, p, None)),
                Some(only) => Some((h, p, Some(only))),
                None => None,
            },
        )
        .map(|(host, plan, only)| {
            Mutex::new(HostRun {
                host,
                plan,
                only,
                remote: None,
                work: HostWork::default(),
                results: BTreeMap::new(),
                failed: false,
            })
        })
        .collect();
    let mut phase_ms = BTreeMap::new();
    for phase in PHASES.iter().filter(|p| run.selected(p.id)) {
        let phase_started = Instant::now();
        if phase.cluster_level {
            run.cluster_phase(phase.id, &hosts);
        } else {
            maintain::each(&hosts, opts.parallelism, |cell| {
                run.host_phase(phase, &mut cell.lock().expect("host lock"))
            });
        }
        phase_ms.insert(phase.id, phase_started.elapsed().as_millis());
        if phase.id == PhaseId::Connect && opts.purpose == Purpose::Install {
            // Every host's state is read and nothing has changed yet.
            refuse_version_change(cluster, &hosts)?;
        }
    }
    if !opts.dry_run {
        run.binaries.save();
    }
    let hosts = hosts
        .into_iter()
        .map(|m| {
            let h = m.into_inner().expect("host lock");
            HostReport {
                host: h.host.name.clone(),
                phases: h.results,
            }
        })
        .collect();
    Ok(Report {
        dry_run: opts.dry_run,
        phases: run.selected,
        hosts,
        elapsed_ms: started.elapsed().as_millis(),
        phase_ms,
    })
}

/// The host phases an unselected `host` takes part in because selected hosts need it:
/// the load balancers' `lb` phase (their upstreams list control planes and workers), and a
/// control-plane host for the cluster phases (which label and taint new nodes) when none is
/// selected. `None`: the host is left alone.
fn helper_phases(
    cluster: &Cluster,
    selected: &[PhaseId],
    opts: &Options,
    host: &Host,
) -> Option<&'static [PhaseId]> {
    use crate::inventory::Role;
    let chosen = || cluster.inventory.hosts.iter().filter(|h| opts.selects(h));
    if host.has(Role::Lb)
        && selected.contains(&PhaseId::Lb)
        && chosen().any(|h| h.has_any(&[Role::ControlPlane, Role::Worker]))
    {
        return Some(&[PhaseId::Lb]);
    }
    let cluster_phases = selected.iter().any(|p| phases::get(*p).cluster_level);
    let first_control_plane = cluster
        .inventory
        .hosts
        .iter()
        .find(|h| h.has(Role::ControlPlane))
        .is_some_and(|h| h.name == host.name);
    if cluster_phases && first_control_plane && !chosen().any(|h| h.has(Role::ControlPlane)) {
        return Some(&[]);
    }
    None
}

/// An install onto hosts whose services run another Kubernetes version is an upgrade:
/// refused before any phase changes anything.
fn refuse_version_change(cluster: &Cluster, hosts: &[Mutex<HostRun>]) -> Result<(), InstallError> {
    let wanted = cluster.version();
    let running: Vec<(String, String)> = hosts
        .iter()
        .filter_map(|cell| {
            let h = cell.lock().expect("host lock");
            let other = h.work.state.versions.values().find(|v| *v != wanted)?;
            Some((h.host.name.clone(), other.clone()))
        })
        .collect();
    if running.is_empty() {
        Ok(())
    } else {
        Err(InstallError::VersionChange {
            wanted: wanted.to_string(),
            running,
        })
    }
}

impl Run<'_> {
    /// One phase on one host: skipped after an earlier failure, else run and recorded.
    fn host_phase(&self, phase: &phases::Phase, h: &mut HostRun) {
        let helps = |only: &[PhaseId]| phase.id == PhaseId::Connect || only.contains(&phase.id);
        if !phase.applies_to(h.host) || h.only.is_some_and(|only| !helps(only)) {
            return;
        }
        if h.failed {
            self.record(h, phase.id, Ok(None));
            return;
        }
        self.progress.host(&h.host.name, phase.name);
        let outcome = if phase.id == PhaseId::Connect {
            connect::connect(self, h).map(|()| Some(Vec::new()))
        } else {
            self.step(phase.id, h).map(Some)
        };
        self.record(h, phase.id, outcome);
    }

    /// Cluster phases run once, on the first control-plane host that has not failed.
    fn cluster_phase(&self, phase: PhaseId, hosts: &[Mutex<HostRun>]) {
        let Some(cell) = hosts.iter().find(|c| {
            let h = c.lock().expect("host lock");
            h.host.has(crate::inventory::Role::ControlPlane) && !h.failed
        }) else {
            return;
        };
        let mut h = cell.lock().expect("host lock");
        self.progress.host(&h.host.name, phases::get(phase).name);
        let outcome = self.step(phase, &mut h).map(Some);
        self.record(&mut h, phase, outcome);
    }

    /// The phase's step on a connected host, through a wet or dry executor.
    fn step(&self, phase: PhaseId, h: &mut HostRun) -> Result<Vec<change::Change>, StepError> {
        let remote = h.remote.as_deref().expect("connect ran first");
        let mut ex = if self.opts.dry_run {
            executor::Executor::dry(remote)
        } else {
            executor::Executor::wet(remote)
        };
        let host = steps::HostCtx {
            run: self,
            host: h.host,
            plan: h.plan,
        };
        steps::for_phase(phase).apply(&host, &mut h.work, &mut ex)?;
        Ok(ex.into_changes())
    }

    /// Records an outcome: `Ok(None)` is a skip; a failure stops the host's later phases.
    fn record(
        &self,
        h: &mut HostRun,
        phase: PhaseId,
        outcome: Result<Option<Vec<change::Change>>, StepError>,
    ) {
        let result = match outcome {
            Ok(None) => PhaseResult::Skipped,
            Ok(Some(changes)) if changes.is_empty() => PhaseResult::Unchanged,
            Ok(Some(changes)) => PhaseResult::Changed {
                changes: changes.iter().map(ToString::to_string).collect(),
            },
            Err(e) => {
                h.failed = true;
                PhaseResult::Failed { error: Arc::new(e) }
            }
        };
        self.progress.phase_done(&h.host.name, phase, &result);
        h.results.insert(phase, result);
    }
}
