//! What lands on each host besides the components' own templates (those are rows of
//! [`crate::catalog`]): host-wide files, one row per kubeconfig, the cluster manifests.

use crate::inventory::Role;

pub use crate::catalog::{BIN_DIR, PKI_DIR};

use crate::catalog::NODE_ROLES as NODE;
use Role::ControlPlane as Cp;

/// A file rendered from a template onto every host holding one of `roles`.
pub struct FileRule {
    /// Template name under `templates/`.
    pub template: &'static str,
    /// Absolute path on the host.
    pub target: &'static str,
    pub mode: u32,
    pub roles: &'static [Role],
}

const fn file(
    template: &'static str,
    target: &'static str,
    mode: u32,
    roles: &'static [Role],
) -> FileRule {
    FileRule {
        template,
        target,
        mode,
        roles,
    }
}

/// Files that belong to no component (component templates are in [`crate::catalog`]).
pub const FILES: &[FileRule] = &[
    file("node/crictl.yaml", "/etc/crictl.yaml", 0o644, NODE),
    file(
        "node/10-flannel.conflist",
        "/etc/cni/net.d/10-flannel.conflist",
        0o600,
        NODE,
    ),
    file(
        "node/sysctl.conf",
        "/etc/sysctl.d/90-kubernetes.conf",
        0o644,
        NODE,
    ),
    file(
        "node/modules.conf",
        "/etc/modules-load.d/kubernetes.conf",
        0o644,
        NODE,
    ),
];

/// Directories whose every file k8s-boot renders from the inventory: a file it wrote there
/// that the plan no longer holds (a registry taken out of the mirrors, a certificate a host
/// no longer needs) is removed.
pub const OWNED_DIRS: &[&str] = &["/etc/containerd/certs.d/", "/etc/kubernetes/pki/"];

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

/// Cluster-level kubeconfigs (file, certificate), through the API endpoint: the admin's
/// (also on the control-plane hosts, by the rule above) and the super-admin's, which stays in
/// the PKI directory.
pub const CLUSTER_KUBECONFIGS: &[(&str, &str)] = &[
    (crate::pki::ADMIN_KUBECONFIG, "admin"),
    (crate::pki::SUPER_ADMIN_KUBECONFIG, "super-admin"),
];

macro_rules! embed {
    ($name:literal) => {
        ($name, include_str!(concat!("../../templates/", $name)))
    };
}

/// Every template but the add-ons' manifests ([`crate::addons::ADDONS`]), embedded in the
/// binary; `--templates DIR` overrides by name.
pub const EMBEDDED: &[(&str, &str)] = &[
    embed!("etcd/etcd.yaml"),
    embed!("etcd/etcd.service"),
    embed!("etcd/etcd-backup.sh"),
    embed!("etcd/etcd-backup.service"),
    embed!("etcd/etcd-backup.timer"),
    embed!("control-plane/kube-apiserver.service"),
    embed!("control-plane/encryption-config.yaml"),
    embed!("control-plane/audit-policy.yaml"),
    embed!("node/nodeport-filter.nft"),
    embed!("node/nodeport-filter.service"),
    embed!("control-plane/authentication-config.yaml"),
    embed!("control-plane/admission-config.yaml"),
    embed!("control-plane/kube-controller-manager.service"),
    embed!("control-plane/kube-scheduler.service"),
    embed!("control-plane/kube-scheduler.yaml"),
    embed!("node/containerd.toml"),
    embed!("node/containerd.service"),
    embed!("node/hosts.toml"),
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
    embed!("workloads/chat/server.js"),
];

/// Every embedded template: [`EMBEDDED`] and the add-ons' manifests.
pub fn embedded() -> impl Iterator<Item = (&'static str, &'static str)> {
    EMBEDDED
        .iter()
        .copied()
        .chain(crate::addons::ADDONS.iter().map(|a| a.manifest))
}
