//! The order of an upgrade, computed from what each host's state says it runs: only the
//! steps not done yet, so that running `upgrade` again after a failure continues.

use crate::install::phases::{self, PhaseId};
use crate::install::state::HostState;
use crate::render::HostPlan;
use serde::Serialize;
use std::collections::BTreeMap;

/// The kinds of step, in the order an upgrade takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// The new binaries onto every host that will change, beside their targets.
    Stage,
    /// One etcd member.
    Etcd,
    /// One load balancer (its configuration rarely changes between versions).
    Lb,
    /// One control-plane host: API server, controller-manager, scheduler.
    ControlPlane,
    /// One kubelet node, drained first: containerd, kubelet, kube-proxy.
    Node,
    /// The cluster's add-ons and the workloads, per the new version's profile.
    Addons,
}

impl StepKind {
    pub fn name(self) -> &'static str {
        match self {
            StepKind::Stage => "stage",
            StepKind::Etcd => "etcd",
            StepKind::Lb => "lb",
            StepKind::ControlPlane => "control-plane",
            StepKind::Node => "node",
            StepKind::Addons => "add-ons",
        }
    }

    /// The install phases the step runs (`connect` always runs first). A host step writes
    /// the host-wide files and certificates of the new plan too: what they change in other
    /// phases' services is owed as a restart, made in that service's own step.
    pub fn phases(self) -> &'static [PhaseId] {
        use PhaseId::*;
        match self {
            StepKind::Stage => &[Binaries],
            StepKind::Etcd => &[Prepare, Pki, Binaries, Etcd, Verify],
            StepKind::Lb => &[Prepare, Pki, Binaries, Lb, Verify],
            StepKind::ControlPlane => &[Prepare, Pki, Binaries, ControlPlane, Verify],
            StepKind::Node => &[Prepare, Pki, Binaries, Runtime, Node, Verify],
            StepKind::Addons => &[Cluster, Workloads],
        }
    }

    /// The phases whose services say whether a host's step is done.
    fn service_phases(self) -> &'static [PhaseId] {
        use PhaseId::*;
        match self {
            StepKind::Etcd => &[Etcd],
            StepKind::Lb => &[Lb],
            StepKind::ControlPlane => &[ControlPlane],
            StepKind::Node => &[Runtime, Node],
            StepKind::Stage | StepKind::Addons => &[],
        }
    }
}

/// One step: a kind over hosts (one host, but every changing host for `stage` and none for
/// `add-ons`, which runs on a control-plane host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub kind: StepKind,
    pub hosts: Vec<String>,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self.kind {
            StepKind::Addons => write!(f, "{}", self.kind.name()),
            _ => write!(f, "{} {}", self.kind.name(), self.hosts.join(", ")),
        }
    }
}

/// The host's services of `kind` that do not run `target` yet (or owe a restart).
pub fn behind<'a>(
    kind: StepKind,
    plan: &'a HostPlan,
    state: &HostState,
    target: &str,
) -> Vec<&'a str> {
    plan.services
        .iter()
        .filter(|s| phases::of_service(s).is_some_and(|p| kind.service_phases().contains(&p.id)))
        .filter(|s| {
            state.versions.get(*s).map(String::as_str) != Some(target)
                || state.pending_restarts.contains(*s)
        })
        .map(String::as_str)
        .collect()
}

/// The steps still to take to bring the hosts of `states` (those reachable) to `target`:
/// etcd members one at a time with `etcd_leader` last, load balancers, control planes, then
/// kubelet nodes, each in inventory order, and the add-ons at the end.
pub fn steps(
    hosts: &[HostPlan],
    states: &BTreeMap<String, HostState>,
    target: &str,
    etcd_leader: Option<&str>,
) -> Vec<Step> {
    let mut out = Vec::new();
    for kind in [
        StepKind::Etcd,
        StepKind::Lb,
        StepKind::ControlPlane,
        StepKind::Node,
    ] {
        let mut of_kind: Vec<&str> = hosts
            .iter()
            .filter(|h| {
                states
                    .get(&h.name)
                    .is_some_and(|s| !behind(kind, h, s, target).is_empty())
            })
            .map(|h| h.name.as_str())
            .collect();
        if kind == StepKind::Etcd {
            // The leader last: one election instead of one per member.
            of_kind.sort_by_key(|h| Some(*h) == etcd_leader);
        }
        out.extend(of_kind.into_iter().map(|h| Step {
            kind,
            hosts: vec![h.to_string()],
        }));
    }
    let mut changing: Vec<String> = Vec::new();
    for h in hosts {
        if out.iter().any(|s| s.hosts.contains(&h.name)) {
            changing.push(h.name.clone());
        }
    }
    if !changing.is_empty() {
        out.insert(
            0,
            Step {
                kind: StepKind::Stage,
                hosts: changing,
            },
        );
    }
    out.push(Step {
        kind: StepKind::Addons,
        hosts: Vec::new(),
    });
    out
}
