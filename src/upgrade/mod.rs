//! `upgrade`: takes a running cluster to the Kubernetes version its inventory names, one
//! host at a time, so that the API and the workloads stay up.
//!
//! The inventory stays the truth: the operator changes `cluster.kubernetes_version` and runs
//! `upgrade` (`install` refuses a version change and points here). Before anything changes,
//! every host's state says what each of its services runs and the skew policy is checked
//! ([`skew`]). Then the steps of [`plan`] run in order, each one an install run of a few
//! phases over one host (the same runner, executor and progress as `install`): binaries
//! staged everywhere, etcd members (the leader last, the cluster healthy after each), load
//! balancers, control planes, each kubelet node drained first ([`node`]), the add-ons.
//!
//! A step records the version in the host's state only once its services are healthy, so
//! running `upgrade` again after a failure or an interruption continues with the first
//! step not done.

mod etcd;
mod node;
pub mod plan;
pub mod skew;
#[cfg(test)]
mod tests;

use crate::install::remote::{Connector, Remote, SshConnector};
use crate::install::state::HostState;
use crate::install::{self, InstallError, PhaseResult, Purpose};
use crate::inventory::{Cluster, Host, Role};
use crate::render::Plan;
use crate::ssh::{SshError, Timeouts};
use plan::{Step, StepKind};
use serde::Serialize;
use skew::{Release, Running, SkewError};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub use node::CORDONED_BY;

#[derive(Debug, Clone)]
pub struct Options {
    pub dry_run: bool,
    pub accept_new_host_keys: bool,
    pub timeouts: Timeouts,
    pub parallelism: usize,
    /// How long each step waits for what it restarted (a node: to be Ready again; the
    /// add-ons: to roll out).
    pub ready_timeout: Duration,
    /// How long a node's drain may take before the upgrade stops, naming what blocks it.
    pub drain_timeout: Duration,
}

/// [`Options::drain_timeout`] unless set.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for Options {
    fn default() -> Self {
        Options {
            dry_run: false,
            accept_new_host_keys: false,
            timeouts: Timeouts::default(),
            parallelism: 10,
            ready_timeout: install::READY_TIMEOUT,
            drain_timeout: DRAIN_TIMEOUT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(transparent)]
    Skew(#[from] SkewError),
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error(transparent)]
    Ssh(Box<SshError>),
    #[error(
        "{host} cannot be reached ({source}); an upgrade needs every etcd, control-plane and \
         load-balancer host (a worker that is down is left for the next run)"
    )]
    Unreachable {
        host: String,
        #[source]
        source: Box<SshError>,
    },
    #[error("{host}: {source}")]
    HostState {
        host: String,
        #[source]
        source: Box<install::StepError>,
    },
    #[error(
        "{} not installed by k8s-boot (no state on the host): upgrade what runs, then add \
         the new hosts with `k8s-boot install --hosts NAME`",
        .0.join(", ")
    )]
    NotInstalled(Vec<String>),
    #[error(
        "{} installed by a k8s-boot that did not record versions: run `k8s-boot install` once \
         with the version the cluster runs in the inventory, then upgrade",
        .0.join(", ")
    )]
    NoVersions(Vec<String>),
    #[error("{command}: {message}")]
    Kubectl { command: String, message: String },
    #[error("drain of {node} did not finish in {secs} s; the node stays cordoned: {}", .blockers.join("; "))]
    Drain {
        node: String,
        secs: u64,
        blockers: Vec<String>,
    },
    #[error("node {node} not Ready on the new version in time (Ready: {ready}, kubelet: `{kubelet}`); it stays cordoned")]
    NodeNotReady {
        node: String,
        ready: bool,
        kubelet: String,
    },
    #[error("etcd not healthy after {secs} s: {output}")]
    EtcdUnhealthy { secs: u64, output: String },
    /// A phase of the step's install run failed on a host.
    #[error("{}", .0.join("; "))]
    StepFailed(Vec<String>),
}

impl From<SshError> for UpgradeError {
    fn from(e: SshError) -> Self {
        UpgradeError::Ssh(Box::new(e))
    }
}

impl UpgradeError {
    /// The skew policy, a host not installed and an old state are the input's (the inventory
    /// or the order of operations); the rest is the hosts'.
    pub fn fault(&self) -> crate::fault::Fault {
        use crate::fault::Fault;
        match self {
            UpgradeError::Skew(_) | UpgradeError::NotInstalled(_) | UpgradeError::NoVersions(_) => {
                Fault::Input
            }
            UpgradeError::Install(e) => e.fault(),
            _ => Fault::Runtime,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.fault().exit_code()
    }
}

/// How a step ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Outcome {
    /// `changes`: `host: phase: change` lines (in a dry run: what would change).
    Done {
        changes: Vec<String>,
    },
    Failed {
        error: String,
    },
    /// An earlier step failed.
    NotRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: String,
    pub kind: StepKind,
    pub hosts: Vec<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub elapsed_ms: u128,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub target: String,
    /// Each reachable host's oldest service version before the run.
    pub from: BTreeMap<String, String>,
    pub steps: Vec<StepReport>,
    /// Workers that could not be reached: not upgraded, left for the next run.
    pub unreachable: Vec<String>,
    pub elapsed_ms: u128,
}

impl Report {
    /// A step failed, or a host was left behind.
    pub fn incomplete(&self) -> bool {
        !self.unreachable.is_empty()
            || self
                .steps
                .iter()
                .any(|s| !matches!(s.outcome, Outcome::Done { .. }))
    }
}

/// What the command line shows while an upgrade runs.
pub trait Observer: install::Progress {
    /// The steps, before the first starts.
    fn planned(&self, target: &str, steps: &[Step]);
    fn step_started(&self, index: usize, total: usize, step: &Step);
    fn step_done(&self, report: &StepReport);
}

/// Upgrades the hosts over SSH to `cluster`'s version (`plan` rendered from it).
pub fn upgrade(
    cluster: &Cluster,
    plan: &Plan,
    opts: &Options,
    observer: &dyn Observer,
) -> Result<Report, UpgradeError> {
    let mut connector = SshConnector::new(cluster, opts.accept_new_host_keys, opts.timeouts);
    connector.keys.record_new = !opts.dry_run;
    upgrade_with(cluster, plan, opts, observer, &connector)
}

/// [`upgrade`] through `connector`.
pub fn upgrade_with(
    cluster: &Cluster,
    plan: &Plan,
    opts: &Options,
    observer: &dyn Observer,
    connector: &dyn Connector,
) -> Result<Report, UpgradeError> {
    let started = Instant::now();
    let target = cluster.version();
    let target_release = Release::parse(target).ok_or_else(|| SkewError::Unreadable {
        host: "inventory".into(),
        service: "cluster.kubernetes_version".into(),
        version: target.into(),
    })?;
    let (states, unreachable) = read_states(cluster, connector)?;
    skew::check(target_release, &running(&states))?;
    let from = states
        .iter()
        .filter_map(|(h, s)| {
            let oldest = s
                .versions
                .values()
                .filter_map(|v| Release::parse(v))
                .min()?;
            Some((h.clone(), oldest.to_string()))
        })
        .collect();

    // etcd must be healthy before a member restarts; its leader goes last.
    let leader = match cluster.inventory.hosts.iter().find(|h| h.has(Role::Etcd)) {
        Some(host) => {
            let r = connector.connect(host)?;
            etcd::wait_healthy(r.as_ref(), host, Duration::from_secs(10))?;
            etcd::leader(r.as_ref(), cluster, host)?
        }
        None => None,
    };
    let steps = plan::steps(&plan.hosts, &states, target, leader.as_deref());
    observer.planned(target, &steps);

    let run = StepRun {
        cluster,
        plan,
        opts,
        observer,
        connector,
    };
    let mut reports = Vec::new();
    let mut failed = false;
    for (i, step) in steps.iter().enumerate() {
        let step_started = Instant::now();
        let outcome = if failed {
            Outcome::NotRun
        } else {
            observer.step_started(i + 1, steps.len(), step);
            run.step(step)
        };
        failed |= matches!(outcome, Outcome::Failed { .. });
        let report = StepReport {
            step: step.to_string(),
            kind: step.kind,
            hosts: step.hosts.clone(),
            outcome,
            elapsed_ms: step_started.elapsed().as_millis(),
        };
        if !matches!(report.outcome, Outcome::NotRun) {
            observer.step_done(&report);
        }
        reports.push(report);
    }
    if !failed && !opts.dry_run {
        // A node an interrupted run cordoned after its last step was done.
        run.uncordon_left_over()?;
    }
    Ok(Report {
        dry_run: opts.dry_run,
        target: target.to_string(),
        from,
        steps: reports,
        unreachable,
        elapsed_ms: started.elapsed().as_millis(),
    })
}

/// Every host's state; a worker that cannot be reached is listed instead (anything else
/// unreachable stops the upgrade before it starts).
fn read_states(
    cluster: &Cluster,
    connector: &dyn Connector,
) -> Result<(BTreeMap<String, HostState>, Vec<String>), UpgradeError> {
    let mut states = BTreeMap::new();
    let mut unreachable = Vec::new();
    for host in &cluster.inventory.hosts {
        let remote = match connector.connect(host) {
            Ok(r) => r,
            Err(_) if !host.has_any(&[Role::Etcd, Role::ControlPlane, Role::Lb]) => {
                unreachable.push(host.name.clone());
                continue;
            }
            Err(source) => {
                return Err(UpgradeError::Unreachable {
                    host: host.name.clone(),
                    source: Box::new(source),
                })
            }
        };
        let state =
            install::read_state(remote.as_ref()).map_err(|source| UpgradeError::HostState {
                host: host.name.clone(),
                source: Box::new(source),
            })?;
        states.insert(host.name.clone(), state);
    }
    let names = |f: &dyn Fn(&HostState) -> bool| -> Vec<String> {
        states
            .iter()
            .filter(|(_, s)| f(s))
            .map(|(h, _)| h.clone())
            .collect()
    };
    let not_installed = names(&|s| s.services.is_empty());
    if !not_installed.is_empty() {
        return Err(UpgradeError::NotInstalled(not_installed));
    }
    let no_versions = names(&|s| s.versions.is_empty());
    if !no_versions.is_empty() {
        return Err(UpgradeError::NoVersions(no_versions));
    }
    Ok((states, unreachable))
}

/// What each service of each host runs.
fn running(states: &BTreeMap<String, HostState>) -> Vec<Running> {
    states
        .iter()
        .flat_map(|(host, s)| {
            s.versions.iter().map(|(service, version)| Running {
                host: host.clone(),
                service: service.clone(),
                version: version.clone(),
            })
        })
        .collect()
}

/// What the steps of one upgrade share.
struct StepRun<'a> {
    cluster: &'a Cluster,
    plan: &'a Plan,
    opts: &'a Options,
    observer: &'a dyn Observer,
    connector: &'a dyn Connector,
}

impl StepRun<'_> {
    fn step(&self, step: &Step) -> Outcome {
        let result = match step.kind {
            StepKind::Node => self.node_step(step),
            StepKind::Etcd => self.install(step).and_then(|mut changes| {
                if !self.opts.dry_run {
                    let host = self.host(&step.hosts[0]);
                    let r = self.connector.connect(host)?;
                    etcd::wait_healthy(r.as_ref(), host, Duration::from_secs(60))?;
                    changes.push(format!("{}: etcd: every member healthy", host.name));
                }
                Ok(changes)
            }),
            _ => self.install(step),
        };
        match result {
            Ok(changes) => Outcome::Done { changes },
            Err(e) => Outcome::Failed {
                error: e.to_string(),
            },
        }
    }

    fn host(&self, name: &str) -> &Host {
        self.cluster
            .inventory
            .hosts
            .iter()
            .find(|h| h.name == name)
            .expect("steps name inventory hosts")
    }

    /// The step's install phases over its hosts; `host: phase: change` lines.
    fn install(&self, step: &Step) -> Result<Vec<String>, UpgradeError> {
        let opts = install::Options {
            phases: step.kind.phases().to_vec(),
            hosts: step.hosts.clone(),
            dry_run: self.opts.dry_run,
            parallelism: self.opts.parallelism,
            accept_new_host_keys: self.opts.accept_new_host_keys,
            timeouts: self.opts.timeouts,
            ready_timeout: self.opts.ready_timeout,
            purpose: if step.kind == StepKind::Stage {
                Purpose::UpgradeStage
            } else {
                Purpose::Upgrade
            },
        };
        let report = install::install_with(
            self.cluster,
            self.plan,
            &opts,
            self.observer,
            self.connector,
        )?;
        let mut changes = Vec::new();
        let mut failures = Vec::new();
        for h in &report.hosts {
            for (phase, result) in &h.phases {
                let name = install::phases::get(*phase).name;
                match result {
                    PhaseResult::Changed { changes: c } => {
                        changes.extend(c.iter().map(|c| format!("{}: {name}: {c}", h.host)))
                    }
                    PhaseResult::Failed { error } => {
                        failures.push(format!("{}: {name} failed: {error}", h.host))
                    }
                    _ => {}
                }
            }
        }
        if failures.is_empty() {
            Ok(changes)
        } else {
            Err(UpgradeError::StepFailed(failures))
        }
    }

    /// kubectl runs on a control-plane host other than `node` where there is one.
    fn kubectl_remote(&self, node: &str) -> Result<Box<dyn Remote>, UpgradeError> {
        let mut control_planes = self
            .cluster
            .inventory
            .hosts
            .iter()
            .filter(|h| h.has(Role::ControlPlane))
            .collect::<Vec<_>>();
        control_planes.sort_by_key(|h| h.name == node);
        let mut last = None;
        for host in control_planes {
            match self.connector.connect(host) {
                Ok(r) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(
            || UpgradeError::Kubectl {
                command: "kubectl".into(),
                message: "no control-plane host in the inventory".into(),
            },
            UpgradeError::from,
        ))
    }

    /// Cordon and drain, the node's phases, Ready on the new version, uncordon.
    fn node_step(&self, step: &Step) -> Result<Vec<String>, UpgradeError> {
        let node = &step.hosts[0];
        if self.opts.dry_run {
            let mut changes = vec![format!(
                "{node}: cordon and drain (PodDisruptionBudgets respected)"
            )];
            changes.extend(self.install(step)?);
            changes.push(format!(
                "{node}: wait for Ready on {}, uncordon",
                self.cluster.version()
            ));
            return Ok(changes);
        }
        let kubectl = self.kubectl_remote(node)?;
        node::cordon(kubectl.as_ref(), node)?;
        node::drain(kubectl.as_ref(), node, self.opts.drain_timeout)?;
        let mut changes = vec![format!("{node}: cordoned and drained")];
        changes.extend(self.install(step)?);
        let deadline = Instant::now() + self.opts.ready_timeout;
        node::wait_ready(kubectl.as_ref(), node, self.cluster.version(), deadline)?;
        if node::uncordon(kubectl.as_ref(), node)? {
            changes.push(format!(
                "{node}: Ready on {}, uncordoned",
                self.cluster.version()
            ));
        }
        Ok(changes)
    }

    /// Uncordons the nodes an earlier upgrade cordoned and did not get to uncordon.
    fn uncordon_left_over(&self) -> Result<(), UpgradeError> {
        let Some(cp) = self
            .cluster
            .inventory
            .hosts
            .iter()
            .find(|h| h.has(Role::ControlPlane))
        else {
            return Ok(());
        };
        let kubectl = self.kubectl_remote(&cp.name)?;
        for node in node::cordoned_by_upgrade(kubectl.as_ref())? {
            node::uncordon(kubectl.as_ref(), &node)?;
        }
        Ok(())
    }
}
