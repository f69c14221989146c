//! The install phases in the order they run. What each phase installs (services, binaries,
//! templates, health checks) comes from the component catalog, [`crate::catalog`].

use crate::catalog::{self, Component, PKI_DIR};
use crate::inventory::{Cluster, Host, Role};

pub use crate::catalog::PhaseId;

pub struct Phase {
    pub id: PhaseId,
    pub name: &'static str,
    /// Hosts holding one of these roles take part; empty means every host.
    pub roles: &'static [Role],
    /// Runs once, on the first healthy control-plane host, against the cluster API.
    pub cluster_level: bool,
}

use Role::{ControlPlane as Cp, Etcd, Lb, Worker};

const fn phase(
    id: PhaseId,
    name: &'static str,
    roles: &'static [Role],
    cluster_level: bool,
) -> Phase {
    Phase {
        id,
        name,
        roles,
        cluster_level,
    }
}

pub const PHASES: &[Phase] = &[
    phase(PhaseId::Connect, "connect", &[], false),
    phase(PhaseId::Preflight, "preflight", &[], false),
    phase(PhaseId::Prepare, "prepare", &[], false),
    phase(PhaseId::Pki, "pki", &[], false),
    phase(PhaseId::Binaries, "binaries", &[], false),
    phase(PhaseId::Etcd, "etcd", &[Etcd], false),
    phase(PhaseId::Lb, "lb", &[Lb], false),
    phase(PhaseId::ControlPlane, "control-plane", &[Cp], false),
    phase(PhaseId::Runtime, "runtime", &[Cp, Worker], false),
    phase(PhaseId::Node, "node", &[Cp, Worker], false),
    phase(PhaseId::Cluster, "cluster", &[Cp], true),
    phase(PhaseId::Workloads, "workloads", &[Cp], true),
    phase(PhaseId::Verify, "verify", &[], false),
];

pub fn by_name(name: &str) -> Option<&'static Phase> {
    PHASES.iter().find(|p| p.name == name)
}

pub fn get(id: PhaseId) -> &'static Phase {
    PHASES
        .iter()
        .find(|p| p.id == id)
        .expect("every phase has a row")
}

impl Phase {
    pub fn applies_to(&self, host: &Host) -> bool {
        self.roles.is_empty() || self.roles.iter().any(|r| host.has(*r))
    }

    /// The components this phase installs, enables, (re)starts and checks.
    pub fn components(&self) -> impl Iterator<Item = &'static Component> {
        catalog::of_phase(self.id)
    }

    pub fn installs(&self, service: &str) -> bool {
        self.components().any(|c| c.service == service)
    }
}

/// The phase that installs `service`.
pub fn of_service(service: &str) -> Option<&'static Phase> {
    catalog::component(service).map(|c| get(c.phase))
}

/// Which phase installs a rendered file: PKI files in `pki`, files of a service in that
/// service's phase, the rest (sysctl, modules, CNI config, admin kubeconfig) in `prepare`.
pub fn phase_of_file(path: &str, restarts: &[String]) -> PhaseId {
    if path.starts_with(&format!("{PKI_DIR}/")) {
        return PhaseId::Pki;
    }
    restarts
        .first()
        .and_then(|s| catalog::component(s))
        .map(|c| c.phase)
        .unwrap_or(PhaseId::Prepare)
}

/// A shell command on `host` that succeeds once `service` is healthy, and how long to wait.
pub fn health_command(cluster: &Cluster, host: &Host, service: &str) -> Option<(String, u64)> {
    catalog::component(service).map(|c| c.health_command(cluster, host))
}

/// TCP ports a host's components listen on, with the component, for the preflight check.
pub fn ports(cluster: &Cluster, host: &Host) -> Vec<(u16, &'static str)> {
    catalog::COMPONENTS
        .iter()
        .filter(|c| c.runs_on(cluster, host))
        .flat_map(|c| (c.ports)(cluster).into_iter().map(|p| (p, c.service)))
        .collect()
}

/// The roles of `component` whose hosts its phase never runs on: it would be rendered onto
/// such a host and never started there.
pub fn roles_its_phase_skips(component: &Component) -> Vec<Role> {
    let phase = get(component.phase);
    component
        .roles
        .iter()
        .copied()
        .filter(|r| !phase.roles.is_empty() && !phase.roles.contains(r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_component_runs_in_a_phase_that_runs_on_its_hosts() {
        for c in catalog::COMPONENTS {
            let skipped = roles_its_phase_skips(c);
            assert!(
                skipped.is_empty(),
                "{} is for {skipped:?} hosts, which its phase `{}` never runs on",
                c.service,
                get(c.phase).name
            );
        }
        // What the check catches: a node service meant for etcd-only hosts too.
        let node_service = catalog::component("kube-proxy").unwrap();
        let misplaced = Component {
            roles: &[Role::Etcd, Role::Worker],
            ..*node_service
        };
        assert_eq!(roles_its_phase_skips(&misplaced), [Role::Etcd]);
    }
}
