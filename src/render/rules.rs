//! What lands on each host: one row per generated file, one row per kubeconfig.
//!
//! Adding a component means adding its templates under `templates/` and rows here.

use crate::inventory::Role;

/// Where generated files live on a host.
pub const PKI_DIR: &str = "/etc/kubernetes/pki";
pub const BIN_DIR: &str = "/usr/local/bin";

use Role::{ControlPlane as Cp, Etcd, Lb, Worker};
/// Hosts that run a kubelet.
const NODE: &[Role] = &[Cp, Worker];

/// A file rendered from a template onto every host holding one of `roles`.
pub struct FileRule {
    /// Template name under `templates/`.
    pub template: &'static str,
    /// Absolute path on the host.
    pub target: &'static str,
    pub mode: u32,
    pub roles: &'static [Role],
    /// The service that must restart when this file changes, if any.
    pub service: Option<&'static str>,
}

const fn file(
    template: &'static str,
    target: &'static str,
    mode: u32,
    roles: &'static [Role],
    service: Option<&'static str>,
) -> FileRule {
    FileRule {
        template,
        target,
        mode,
        roles,
        service,
    }
}

pub const FILES: &[FileRule] = &[
    // etcd
    file(
        "etcd/etcd.yaml",
        "/etc/etcd/etcd.yaml",
        0o644,
        &[Etcd],
        Some("etcd"),
    ),
    file(
        "etcd/etcd.service",
        "/etc/systemd/system/etcd.service",
        0o644,
        &[Etcd],
        Some("etcd"),
    ),
    // control plane
    file(
        "control-plane/kube-apiserver.service",
        "/etc/systemd/system/kube-apiserver.service",
        0o644,
        &[Cp],
        Some("kube-apiserver"),
    ),
    file(
        "control-plane/encryption-config.yaml",
        "/etc/kubernetes/encryption-config.yaml",
        0o600,
        &[Cp],
        Some("kube-apiserver"),
    ),
    file(
        "control-plane/audit-policy.yaml",
        "/etc/kubernetes/audit-policy.yaml",
        0o644,
        &[Cp],
        Some("kube-apiserver"),
    ),
    file(
        "control-plane/kube-controller-manager.service",
        "/etc/systemd/system/kube-controller-manager.service",
        0o644,
        &[Cp],
        Some("kube-controller-manager"),
    ),
    file(
        "control-plane/kube-scheduler.service",
        "/etc/systemd/system/kube-scheduler.service",
        0o644,
        &[Cp],
        Some("kube-scheduler"),
    ),
    file(
        "control-plane/kube-scheduler.yaml",
        "/etc/kubernetes/kube-scheduler.yaml",
        0o644,
        &[Cp],
        Some("kube-scheduler"),
    ),
    // container runtime
    file(
        "node/containerd.toml",
        "/etc/containerd/config.toml",
        0o644,
        NODE,
        Some("containerd"),
    ),
    file(
        "node/containerd.service",
        "/etc/systemd/system/containerd.service",
        0o644,
        NODE,
        Some("containerd"),
    ),
    // node agents
    file(
        "node/kubelet.yaml",
        "/var/lib/kubelet/config.yaml",
        0o644,
        NODE,
        Some("kubelet"),
    ),
    file(
        "node/kubelet.service",
        "/etc/systemd/system/kubelet.service",
        0o644,
        NODE,
        Some("kubelet"),
    ),
    file(
        "node/kube-proxy.yaml",
        "/var/lib/kube-proxy/config.yaml",
        0o644,
        NODE,
        Some("kube-proxy"),
    ),
    file(
        "node/kube-proxy.service",
        "/etc/systemd/system/kube-proxy.service",
        0o644,
        NODE,
        Some("kube-proxy"),
    ),
    file("node/crictl.yaml", "/etc/crictl.yaml", 0o644, NODE, None),
    file(
        "node/10-flannel.conflist",
        "/etc/cni/net.d/10-flannel.conflist",
        0o644,
        NODE,
        None,
    ),
    file(
        "node/sysctl.conf",
        "/etc/sysctl.d/90-kubernetes.conf",
        0o644,
        NODE,
        None,
    ),
    file(
        "node/modules.conf",
        "/etc/modules-load.d/kubernetes.conf",
        0o644,
        NODE,
        None,
    ),
    // load balancer
    file(
        "lb/nginx.conf",
        "/etc/nginx/nginx.conf",
        0o644,
        &[Lb],
        Some("nginx"),
    ),
];

/// Which API server address a kubeconfig points at.
#[derive(Clone, Copy)]
pub enum Server {
    /// `https://127.0.0.1:6443` on control-plane hosts, the API endpoint elsewhere.
    LocalOnControlPlane,
    /// Always the API endpoint (load balancer).
    Endpoint,
}

/// A kubeconfig rendered for a client certificate of the PKI.
pub struct KubeconfigRule {
    /// Certificate stem in the PKI directory; `{host}` is the host's name.
    pub cert: &'static str,
    /// Absolute path on the host.
    pub target: &'static str,
    pub roles: &'static [Role],
    pub server: Server,
    pub service: Option<&'static str>,
}

pub const KUBECONFIGS: &[KubeconfigRule] = &[
    KubeconfigRule {
        cert: "controller-manager",
        target: "/etc/kubernetes/controller-manager.kubeconfig",
        roles: &[Cp],
        server: Server::LocalOnControlPlane,
        service: Some("kube-controller-manager"),
    },
    KubeconfigRule {
        cert: "scheduler",
        target: "/etc/kubernetes/scheduler.kubeconfig",
        roles: &[Cp],
        server: Server::LocalOnControlPlane,
        service: Some("kube-scheduler"),
    },
    KubeconfigRule {
        cert: "kubelet-{host}",
        target: "/etc/kubernetes/kubelet.kubeconfig",
        roles: NODE,
        server: Server::LocalOnControlPlane,
        service: Some("kubelet"),
    },
    KubeconfigRule {
        cert: "kube-proxy",
        target: "/etc/kubernetes/kube-proxy.kubeconfig",
        roles: NODE,
        server: Server::LocalOnControlPlane,
        service: Some("kube-proxy"),
    },
    // The installer runs kubectl on the first control-plane host with this one.
    KubeconfigRule {
        cert: "admin",
        target: "/etc/kubernetes/admin.kubeconfig",
        roles: &[Cp],
        server: Server::LocalOnControlPlane,
        service: None,
    },
];

/// Services in start order; a host runs those whose unit it received.
pub const SERVICE_ORDER: &[&str] = &[
    "etcd",
    "nginx",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
];

pub const CHAT_MANIFEST: &str = "manifests/30-chat.yaml";

/// Cluster-level manifests, applied in file-name order.
pub const MANIFESTS: &[&str] = &[
    "manifests/00-apiserver-to-kubelet-rbac.yaml",
    "manifests/10-flannel.yaml",
    "manifests/20-coredns.yaml",
    "manifests/30-chat.yaml",
    "manifests/40-metrics-server.yaml",
];

macro_rules! embed {
    ($name:literal) => {
        ($name, include_str!(concat!("../../templates/", $name)))
    };
}

/// Every template, embedded in the binary; `--templates DIR` overrides by name.
pub const EMBEDDED: &[(&str, &str)] = &[
    embed!("etcd/etcd.yaml"),
    embed!("etcd/etcd.service"),
    embed!("control-plane/kube-apiserver.service"),
    embed!("control-plane/encryption-config.yaml"),
    embed!("control-plane/audit-policy.yaml"),
    embed!("control-plane/kube-controller-manager.service"),
    embed!("control-plane/kube-scheduler.service"),
    embed!("control-plane/kube-scheduler.yaml"),
    embed!("node/containerd.toml"),
    embed!("node/containerd.service"),
    embed!("node/kubelet.yaml"),
    embed!("node/kubelet.service"),
    embed!("node/kube-proxy.yaml"),
    embed!("node/kube-proxy.service"),
    embed!("node/crictl.yaml"),
    embed!("node/10-flannel.conflist"),
    embed!("node/sysctl.conf"),
    embed!("node/modules.conf"),
    embed!("lb/nginx.conf"),
    embed!("kubeconfig.yaml"),
    embed!("manifests/00-apiserver-to-kubelet-rbac.yaml"),
    embed!("manifests/10-flannel.yaml"),
    embed!("manifests/20-coredns.yaml"),
    embed!("manifests/40-metrics-server.yaml"),
    embed!("manifests/30-chat.yaml"),
    embed!("workloads/chat/server.js"),
];
