//! `remove-node NAME`: takes a host out of the cluster, touching only it and what must
//! learn that it is gone.
//!
//! The host is still in the inventory when the command runs (its address and SSH settings
//! come from there); the plan the other hosts get is rendered from the inventory without
//! it. Afterwards the operator deletes it from the inventory; until then `install` would
//! bring it back, as it does for every host listed.
//!
//! Checked first, before anything changes: the last control plane, the last load balancer
//! and an etcd member whose removal would leave no quorum of healthy members are refused.
//! Then, each step only where the host's roles need it:
//! 1. cordon and drain (PodDisruptionBudgets respected; a node that is not Ready is not
//!    drained: its pods cannot leave gracefully and go with the Node object);
//! 2. delete the Node;
//! 3. `etcdctl member remove` on another member;
//! 4. the load balancers' upstreams (nginx reloads, no connection dropped);
//! 5. each remaining etcd member's configuration (`initial-cluster`, which etcd reads only
//!    at bootstrap: written without a restart), one at a time, the cluster healthy after each;
//! 6. each remaining API server's configuration (`--etcd-servers`) and certificate (its
//!    SANs lose a control plane's name and address), one at a time;
//! 7. reset the host, etcd data included (a member added back must start empty).
//!
//! Step 6 restarts the API servers, one at a time. Running the command again after a
//! failure skips what is done already (a deleted Node, a removed member).

#[cfg(test)]
mod tests;

use crate::install::remote::{Connector, SshConnector};
use crate::install::{self, etcd_peer_url, phases::PhaseId, Purpose};
use crate::inventory::{Cluster, Host, Role};
use crate::operation::{self, etcd, node, Observer, Operation, OperationError, StepReport};
use crate::render::Plan;
use serde::Serialize;
use std::fmt;
use std::time::{Duration, Instant};

pub use crate::operation::Options;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Drain(String),
    DeleteNode(String),
    RemoveMember(String),
    LoadBalancers(Vec<String>),
    EtcdConfig(String),
    ControlPlaneConfig(String),
    Reset(String),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Step::Drain(h) => write!(f, "cordon and drain {h}"),
            Step::DeleteNode(h) => write!(f, "delete node {h}"),
            Step::RemoveMember(h) => write!(f, "remove etcd member {h}"),
            Step::LoadBalancers(hs) => write!(f, "lb {}", hs.join(", ")),
            Step::EtcdConfig(h) => write!(f, "etcd {h}"),
            Step::ControlPlaneConfig(h) => write!(f, "control-plane {h}"),
            Step::Reset(h) => write!(f, "reset {h}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub host: String,
    pub steps: Vec<StepReport>,
    pub elapsed_ms: u128,
}

impl Report {
    pub fn incomplete(&self) -> bool {
        !operation::all_done(&self.steps)
    }
}

/// `cluster` without `name`: what the other hosts are rendered from.
pub fn without(cluster: &Cluster, name: &str) -> Result<Cluster, OperationError> {
    let mut after = cluster.clone();
    let before = after.inventory.hosts.len();
    after.inventory.hosts.retain(|h| h.name != name);
    if after.inventory.hosts.len() == before {
        return Err(unknown_host(cluster, name));
    }
    Ok(after)
}

fn unknown_host(cluster: &Cluster, name: &str) -> OperationError {
    install::require_known_hosts(cluster, &[name.to_string()])
        .err()
        .map_or_else(
            || OperationError::Refused(format!("{name} is not in the inventory")),
            OperationError::Install,
        )
}

/// Removes `name` (a host of `cluster`) over SSH; `after`/`plan_after`: the inventory
/// without it ([`without`]) and its plan.
pub fn remove_node(
    cluster: &Cluster,
    after: &Cluster,
    plan_after: &Plan,
    name: &str,
    opts: &Options,
    observer: &dyn Observer,
) -> Result<Report, OperationError> {
    let connector = SshConnector::for_run(
        cluster,
        opts.accept_new_host_keys,
        opts.timeouts,
        opts.dry_run,
    );
    remove_node_with(cluster, after, plan_after, name, opts, observer, &connector)
}

/// [`remove_node`] through `connector`.
pub fn remove_node_with(
    cluster: &Cluster,
    after: &Cluster,
    plan_after: &Plan,
    name: &str,
    opts: &Options,
    observer: &dyn Observer,
    connector: &dyn Connector,
) -> Result<Report, OperationError> {
    let started = Instant::now();
    let host = cluster
        .inventory
        .hosts
        .iter()
        .find(|h| h.name == name)
        .ok_or_else(|| unknown_host(cluster, name))?;
    let op = Operation {
        cluster: after,
        plan: plan_after,
        opts,
        observer,
        connector,
    };
    let steps = plan(cluster, &op, host)?;
    let reports = op.run_steps(&format!("remove {name}"), &steps, |s| {
        run_step(&op, host, connector, s)
    });
    Ok(Report {
        dry_run: opts.dry_run,
        host: name.to_string(),
        steps: reports,
        elapsed_ms: started.elapsed().as_millis(),
    })
}

/// The checks, then the steps `host`'s roles need (what is done already left out).
fn plan(cluster: &Cluster, op: &Operation, host: &Host) -> Result<Vec<Step>, OperationError> {
    let others = |role: Role| {
        cluster
            .inventory
            .hosts
            .iter()
            .filter(move |h| h.has(role) && h.name != host.name)
            .map(|h| h.name.clone())
            .collect::<Vec<_>>()
    };
    let name = host.name.clone();
    if host.has(Role::ControlPlane) && others(Role::ControlPlane).is_empty() {
        return Err(OperationError::Refused(format!(
            "{name} runs the last API server: the cluster would have none"
        )));
    }
    if host.has(Role::Lb) && others(Role::Lb).is_empty() {
        return Err(OperationError::Refused(format!(
            "{name} is the last load balancer: the API endpoint goes through it"
        )));
    }
    let mut steps = Vec::new();
    if host.has_any(install::NODE_ROLES) {
        let kubectl = op.remote_with(Role::ControlPlane, &name)?;
        match node::registered(kubectl.as_ref(), &name)? {
            Some(true) => steps.extend([Step::Drain(name.clone()), Step::DeleteNode(name.clone())]),
            // Not Ready: its pods cannot leave gracefully; they go with the Node.
            Some(false) => steps.push(Step::DeleteNode(name.clone())),
            None => {}
        }
    }
    if host.has(Role::Etcd) {
        let (member_host, r) = op.connect_with(Role::Etcd, &name)?;
        let members = etcd::members(r.as_ref(), member_host)?;
        let url = etcd_peer_url(host);
        if members.iter().any(|m| m.peer_urls.contains(&url)) {
            let healthy = etcd::healthy_endpoints(r.as_ref(), member_host)?;
            etcd::removal_keeps_quorum(&members, &healthy, &url).map_err(|why| {
                OperationError::Refused(format!("removing {name} from etcd is refused: {why}"))
            })?;
            steps.push(Step::RemoveMember(name.clone()));
        }
    }
    let lbs = others(Role::Lb);
    if !lbs.is_empty() {
        steps.push(Step::LoadBalancers(lbs));
    }
    if host.has(Role::Etcd) {
        steps.extend(others(Role::Etcd).into_iter().map(Step::EtcdConfig));
    }
    if host.has_any(&[Role::Etcd, Role::ControlPlane]) {
        steps.extend(
            others(Role::ControlPlane)
                .into_iter()
                .map(Step::ControlPlaneConfig),
        );
    }
    steps.push(Step::Reset(name));
    Ok(steps)
}

fn run_step(
    op: &Operation,
    host: &Host,
    connector: &dyn Connector,
    step: &Step,
) -> Result<Vec<String>, OperationError> {
    let dry = op.opts.dry_run;
    let name = &host.name;
    let done = |what: String| Ok(vec![format!("{name}: {what}")]);
    match step {
        Step::Drain(_) => {
            if dry {
                return done("cordon and drain (PodDisruptionBudgets respected)".into());
            }
            let kubectl = op.remote_with(Role::ControlPlane, name)?;
            node::cordon(kubectl.as_ref(), name)?;
            node::drain(kubectl.as_ref(), name, op.opts.drain_timeout)?;
            done("cordoned and drained".into())
        }
        Step::DeleteNode(_) => {
            if !dry {
                node::delete(op.remote_with(Role::ControlPlane, name)?.as_ref(), name)?;
            }
            done("Node deleted".into())
        }
        Step::RemoveMember(_) => {
            let (member_host, r) = op.connect_with(Role::Etcd, name)?;
            let url = etcd_peer_url(host);
            let members = etcd::members(r.as_ref(), member_host)?;
            let Some(member) = members.iter().find(|m| m.peer_urls.contains(&url)) else {
                return Ok(Vec::new());
            };
            let mut changes = Vec::new();
            // A leading member hands its leadership on first: writes then never wait for an
            // election.
            if etcd::leader_endpoint(r.as_ref(), member_host)?
                == Some(crate::catalog::etcd_client_url(host))
            {
                let to = members.iter().find(|m| m.id != member.id).map(|m| m.id);
                if let (Some(to), false) = (to, dry) {
                    let leaving = op.connector.connect(host)?;
                    etcd::move_leader(leaving.as_ref(), host, to)?;
                }
                changes.push(format!(
                    "{name}: etcd leadership handed to member {:x}",
                    to.unwrap_or(0)
                ));
            }
            if !dry {
                etcd::remove_member(r.as_ref(), member_host, member.id)?;
            }
            changes.push(format!("{name}: etcd member {:x} removed", member.id));
            Ok(changes)
        }
        Step::LoadBalancers(hosts) => op.install(hosts, &[PhaseId::Lb], Purpose::Install),
        Step::EtcdConfig(h) => {
            // The certificates too: what the host's removal re-issues (the API server's SANs)
            // is owed here and made in the host's control-plane step.
            let mut changes = op.install(
                std::slice::from_ref(h),
                &[PhaseId::Pki, PhaseId::Etcd],
                Purpose::Install,
            )?;
            if !dry && !changes.is_empty() {
                let member = op.host(h);
                let r = op.connector.connect(member)?;
                etcd::wait_healthy(r.as_ref(), member, Duration::from_secs(60))?;
                changes.push(format!("{h}: etcd: every member healthy"));
            }
            Ok(changes)
        }
        Step::ControlPlaneConfig(h) => op.install(
            std::slice::from_ref(h),
            &[PhaseId::Pki, PhaseId::ControlPlane],
            Purpose::Install,
        ),
        Step::Reset(_) => {
            if dry {
                return done("reset: stop and remove what install made, etcd data too".into());
            }
            let result = install::maintain::reset(&[host], true, connector).remove(0);
            match result.error {
                // A host that is gone cannot be reset; it is out of the cluster either way.
                Some(install::StepError::Ssh(e)) => done(format!(
                    "not reset, unreachable ({e}): wipe it before it is used again"
                )),
                Some(e) => Err(OperationError::HostState {
                    host: name.clone(),
                    source: Box::new(e),
                }),
                None => done(format!("reset ({} item(s) removed)", result.removed.len())),
            }
        }
    }
}
