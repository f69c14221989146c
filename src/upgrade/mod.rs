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

pub mod plan;
pub mod skew;
#[cfg(test)]
mod tests;

use crate::install::remote::{Connector, SshConnector};
use crate::install::state::HostState;
use crate::install::{self, Purpose};
use crate::inventory::{Cluster, Role};
use crate::operation::{self, etcd, node, Observer, Operation, OperationError, StepReport};
use crate::render::Plan;
use plan::{Step, StepKind};
use serde::Serialize;
use skew::{Release, Running, SkewError};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub use operation::node::CORDONED_BY;
pub use operation::{Options, DRAIN_TIMEOUT};

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(transparent)]
    Skew(#[from] SkewError),
    #[error(transparent)]
    Operation(#[from] OperationError),
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
}

impl From<crate::ssh::SshError> for UpgradeError {
    fn from(e: crate::ssh::SshError) -> Self {
        UpgradeError::Operation(e.into())
    }
}

impl UpgradeError {
    /// The skew policy, a host not installed and an old state are the input's (the inventory
    /// or the order of operations); the rest says for itself.
    pub fn fault(&self) -> crate::fault::Fault {
        use crate::fault::Fault;
        match self {
            UpgradeError::Skew(_) | UpgradeError::NotInstalled(_) | UpgradeError::NoVersions(_) => {
                Fault::Input
            }
            UpgradeError::Operation(e) => e.fault(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.fault().exit_code()
    }
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
        !self.unreachable.is_empty() || !operation::all_done(&self.steps)
    }
}

/// Upgrades the hosts over SSH to `cluster`'s version (`plan` rendered from it).
pub fn upgrade(
    cluster: &Cluster,
    plan: &Plan,
    opts: &Options,
    observer: &dyn Observer,
) -> Result<Report, UpgradeError> {
    let connector = SshConnector::for_run(
        cluster,
        opts.accept_new_host_keys,
        opts.timeouts,
        opts.dry_run,
    );
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
    let op = Operation {
        cluster,
        plan,
        opts,
        observer,
        connector,
    };

    // etcd must be healthy before a member restarts; its leader goes last.
    let leader = if cluster.inventory.hosts.iter().any(|h| h.has(Role::Etcd)) {
        let (host, r) = op.connect_with(Role::Etcd, "")?;
        etcd::wait_healthy(r.as_ref(), host, Duration::from_secs(10))?;
        etcd::leader(r.as_ref(), cluster, host)?
    } else {
        None
    };
    let steps = plan::steps(&plan.hosts, &states, target, leader.as_deref());
    let reports = op.run_steps(&format!("upgrade to {target}"), &steps, |s| step(&op, s));
    if operation::all_done(&reports) && !opts.dry_run {
        // A node an interrupted run cordoned after its last step was done.
        uncordon_left_over(&op)?;
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
                return Err(OperationError::Unreachable {
                    host: host.name.clone(),
                    source: Box::new(source),
                }
                .into())
            }
        };
        let state =
            install::read_state(remote.as_ref()).map_err(|source| OperationError::HostState {
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

/// One step: its install run; an etcd member then waits for the whole cluster's health, a
/// node is drained before and uncordoned after.
fn step(op: &Operation, step: &Step) -> Result<Vec<String>, OperationError> {
    let purpose = if step.kind == StepKind::Stage {
        Purpose::UpgradeStage
    } else {
        Purpose::Upgrade
    };
    let install = || op.install(&step.hosts, step.kind.phases(), purpose);
    match step.kind {
        StepKind::Node => node_step(op, &step.hosts[0], install),
        StepKind::Etcd => {
            let mut changes = install()?;
            if !op.opts.dry_run {
                let host = op.host(&step.hosts[0]);
                let r = op.connector.connect(host)?;
                etcd::wait_healthy(r.as_ref(), host, Duration::from_secs(60))?;
                changes.push(format!("{}: etcd: every member healthy", host.name));
            }
            Ok(changes)
        }
        _ => install(),
    }
}

/// Cordon and drain, the node's phases, Ready on the new version, uncordon.
fn node_step(
    op: &Operation,
    name: &str,
    install: impl Fn() -> Result<Vec<String>, OperationError>,
) -> Result<Vec<String>, OperationError> {
    let version = op.cluster.version();
    if op.opts.dry_run {
        let mut changes = vec![format!(
            "{name}: cordon and drain (PodDisruptionBudgets respected)"
        )];
        changes.extend(install()?);
        changes.push(format!("{name}: wait for Ready on {version}, uncordon"));
        return Ok(changes);
    }
    let kubectl = op.remote_with(Role::ControlPlane, name)?;
    node::cordon(kubectl.as_ref(), name)?;
    node::drain(kubectl.as_ref(), name, op.opts.drain_timeout)?;
    let mut changes = vec![format!("{name}: cordoned and drained")];
    changes.extend(install()?);
    let deadline = Instant::now() + op.opts.ready_timeout;
    node::wait_ready(kubectl.as_ref(), name, version, deadline)?;
    if node::uncordon(kubectl.as_ref(), name)? {
        changes.push(format!("{name}: Ready on {version}, uncordoned"));
    }
    Ok(changes)
}

/// Uncordons the nodes an earlier upgrade cordoned and did not get to uncordon.
fn uncordon_left_over(op: &Operation) -> Result<(), OperationError> {
    if !op
        .cluster
        .inventory
        .hosts
        .iter()
        .any(|h| h.has(Role::ControlPlane))
    {
        return Ok(());
    }
    let kubectl = op.remote_with(Role::ControlPlane, "")?;
    for name in node::cordoned_by_upgrade(kubectl.as_ref())? {
        node::uncordon(kubectl.as_ref(), &name)?;
    }
    Ok(())
}
