//! The install phases, the release binaries each one needs, and service health checks.
//!
//! Data first: adding a component means a row in `PHASES` (or `services` of an existing
//! row), rows in `BINARIES` and a line in `health_command`.

use crate::inventory::{Cluster, Host, Role};
use crate::render::rules::PKI_DIR;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseId {
    Connect,
    Preflight,
    Prepare,
    Pki,
    Binaries,
    Etcd,
    Lb,
    ControlPlane,
    Runtime,
    Node,
    Cluster,
    Workloads,
    Verify,
}

pub struct Phase {
    pub id: PhaseId,
    pub name: &'static str,
    /// Hosts holding one of these roles take part; empty means every host.
    pub roles: &'static [Role],
    /// Services this phase installs, enables, (re)starts and checks.
    pub services: &'static [&'static str],
    /// Runs once, on the first healthy control-plane host, against the cluster API.
    pub cluster_level: bool,
}

use Role::{ControlPlane as Cp, Etcd, Lb, Worker};

const fn phase(
    id: PhaseId,
    name: &'static str,
    roles: &'static [Role],
    services: &'static [&'static str],
    cluster_level: bool,
) -> Phase {
    Phase {
        id,
        name,
        roles,
        services,
        cluster_level,
    }
}

pub const PHASES: &[Phase] = &[
    phase(PhaseId::Connect, "connect", &[], &[], false),
    phase(PhaseId::Preflight, "preflight", &[], &[], false),
    phase(PhaseId::Prepare, "prepare", &[], &[], false),
    phase(PhaseId::Pki, "pki", &[], &[], false),
    phase(PhaseId::Binaries, "binaries", &[], &[], false),
    phase(PhaseId::Etcd, "etcd", &[Etcd], &["etcd"], false),
    phase(PhaseId::Lb, "lb", &[Lb], &["nginx"], false),
    phase(
        PhaseId::ControlPlane,
        "control-plane",
        &[Cp],
        &[
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ],
        false,
    ),
    phase(
        PhaseId::Runtime,
        "runtime",
        &[Cp, Worker],
        &["containerd"],
        false,
    ),
    phase(
        PhaseId::Node,
        "node",
        &[Cp, Worker],
        &["kubelet", "kube-proxy"],
        false,
    ),
    phase(PhaseId::Cluster, "cluster", &[Cp], &[], true),
    phase(PhaseId::Workloads, "workloads", &[Cp], &[], true),
    phase(PhaseId::Verify, "verify", &[], &[], false),
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
}

/// Which phase installs a rendered file: PKI files in `pki`, files of a service in that
/// service's phase, the rest (sysctl, modules, CNI config, admin kubeconfig) in `prepare`.
pub fn phase_of_file(path: &str, restarts: &[String]) -> PhaseId {
    if path.starts_with(&format!("{PKI_DIR}/")) {
        return PhaseId::Pki;
    }
    restarts
        .first()
        .and_then(|s| PHASES.iter().find(|p| p.services.contains(&s.as_str())))
        .map(|p| p.id)
        .unwrap_or(PhaseId::Prepare)
}

/// A release binary: its file name in `binaries.dir` and where it goes on the host.
pub struct Binary {
    pub phase: PhaseId,
    pub file: &'static str,
    pub target: &'static str,
}

const fn bin(phase: PhaseId, file: &'static str, target: &'static str) -> Binary {
    Binary {
        phase,
        file,
        target,
    }
}

pub const BINARIES: &[Binary] = &[
    bin(PhaseId::Etcd, "etcd", "/usr/local/bin/etcd"),
    bin(PhaseId::Etcd, "etcdctl", "/usr/local/bin/etcdctl"),
    bin(
        PhaseId::ControlPlane,
        "kube-apiserver",
        "/usr/local/bin/kube-apiserver",
    ),
    bin(
        PhaseId::ControlPlane,
        "kube-controller-manager",
        "/usr/local/bin/kube-controller-manager",
    ),
    bin(
        PhaseId::ControlPlane,
        "kube-scheduler",
        "/usr/local/bin/kube-scheduler",
    ),
    bin(PhaseId::ControlPlane, "kubectl", "/usr/local/bin/kubectl"),
    bin(PhaseId::Runtime, "containerd", "/usr/local/bin/containerd"),
    bin(
        PhaseId::Runtime,
        "containerd-shim-runc-v2",
        "/usr/local/bin/containerd-shim-runc-v2",
    ),
    bin(PhaseId::Runtime, "ctr", "/usr/local/bin/ctr"),
    bin(PhaseId::Runtime, "runc", "/usr/local/bin/runc"),
    bin(PhaseId::Runtime, "crictl", "/usr/local/bin/crictl"),
    bin(PhaseId::Runtime, "cni/bridge", "/opt/cni/bin/bridge"),
    bin(PhaseId::Runtime, "cni/flannel", "/opt/cni/bin/flannel"),
    bin(
        PhaseId::Runtime,
        "cni/host-local",
        "/opt/cni/bin/host-local",
    ),
    bin(PhaseId::Runtime, "cni/loopback", "/opt/cni/bin/loopback"),
    bin(PhaseId::Runtime, "cni/portmap", "/opt/cni/bin/portmap"),
    bin(PhaseId::Node, "kubelet", "/usr/local/bin/kubelet"),
    bin(PhaseId::Node, "kube-proxy", "/usr/local/bin/kube-proxy"),
];

/// A shell command on `host` that succeeds once `service` is healthy, and how long to wait.
pub fn health_command(cluster: &Cluster, host: &Host, service: &str) -> Option<(String, u64)> {
    let pki = PKI_DIR;
    let addr = crate::render::context::url_address(host.address);
    Some(match service {
        "etcd" => (
            format!(
                "/usr/local/bin/etcdctl --endpoints=https://{addr}:2379 --cacert={pki}/etcd/ca.crt \
                 --cert={pki}/etcd/healthcheck-client.crt --key={pki}/etcd/healthcheck-client.key \
                 --command-timeout=3s endpoint health"
            ),
            90,
        ),
        "nginx" => (
            format!(
                "systemctl is-active --quiet nginx && ss -Htln 'sport = :{}' | grep -q .",
                crate::inventory::APISERVER_PORT
            ),
            30,
        ),
        "kube-apiserver" => (
            format!(
                "curl -sf --max-time 5 --cacert {pki}/ca.crt --cert {pki}/admin.crt --key {pki}/admin.key https://{}/readyz",
                cluster.api_endpoint
            ),
            180,
        ),
        "kube-controller-manager" => ("curl -skf --max-time 5 https://127.0.0.1:10257/healthz".into(), 90),
        "kube-scheduler" => ("curl -skf --max-time 5 https://127.0.0.1:10259/healthz".into(), 90),
        "containerd" => ("/usr/local/bin/ctr version".into(), 60),
        "kubelet" => ("curl -sf --max-time 5 http://127.0.0.1:10248/healthz".into(), 120),
        "kube-proxy" => ("curl -sf --max-time 5 http://127.0.0.1:10256/healthz".into(), 120),
        _ => return None,
    })
}

/// TCP ports a host's roles listen on, for the preflight check.
pub fn ports(cluster: &Cluster, host: &Host) -> Vec<(u16, &'static str)> {
    let mut ports = Vec::new();
    if host.has(Etcd) {
        ports.extend([(2379, "etcd"), (2380, "etcd")]);
    }
    if host.has(Lb) {
        ports.push((crate::inventory::APISERVER_PORT, "nginx"));
        if cluster.inventory.chat.enabled {
            ports.push((cluster.inventory.chat.port, "nginx"));
        }
    }
    if host.has(Cp) {
        ports.extend([
            (crate::inventory::APISERVER_PORT, "kube-apiserver"),
            (10257, "kube-controller-manager"),
            (10259, "kube-scheduler"),
        ]);
    }
    if host.has(Cp) || host.has(Worker) {
        ports.extend([(10250, "kubelet"), (10256, "kube-proxy")]);
    }
    ports
}
