//! The certificate profiles: every CA and leaf certificate of a cluster, as data.
//!
//! A leaf is described by one `Profile` row; rows scoped to a role expand to one certificate
//! per host with that role. Adding a certificate means adding a row here.

use crate::inventory::{Cluster, Host, Role};
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CaKind {
    Kubernetes,
    Etcd,
    FrontProxy,
}

pub struct CaProfile {
    pub kind: CaKind,
    /// File stem in the PKI directory (`ca` -> `ca.crt`, `ca.key`).
    pub file: &'static str,
    pub common_name: &'static str,
    /// Roles whose hosts receive the CA certificate.
    pub cert_to: &'static [Role],
    /// Roles whose hosts receive the CA private key (only where a component signs with it).
    pub key_to: &'static [Role],
}

pub const CAS: &[CaProfile] = &[
    CaProfile {
        kind: CaKind::Kubernetes,
        file: "ca",
        common_name: "kubernetes-ca",
        cert_to: &[Role::ControlPlane, Role::Worker],
        // kube-controller-manager signs CSRs (--cluster-signing-*) with it.
        key_to: &[Role::ControlPlane],
    },
    CaProfile {
        kind: CaKind::Etcd,
        file: "etcd/ca",
        common_name: "etcd-ca",
        cert_to: &[Role::Etcd, Role::ControlPlane],
        key_to: &[],
    },
    CaProfile {
        kind: CaKind::FrontProxy,
        file: "front-proxy-ca",
        common_name: "front-proxy-ca",
        cert_to: &[Role::ControlPlane],
        key_to: &[],
    },
];

pub fn ca_profile(kind: CaKind) -> &'static CaProfile {
    CAS.iter()
        .find(|c| c.kind == kind)
        .expect("every CA kind has a profile")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
    ServerAndClient,
}

impl Usage {
    pub fn server(self) -> bool {
        matches!(self, Usage::Server | Usage::ServerAndClient)
    }
    pub fn client(self) -> bool {
        matches!(self, Usage::Client | Usage::ServerAndClient)
    }
}

/// Which certificates a row stands for.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// One certificate for the cluster.
    Cluster,
    /// One certificate per host with this role; `{host}` in names is replaced by its name.
    PerHost(Role),
    /// One certificate per node (control-plane or worker host).
    PerNode,
}

/// Which subject alternative names a row needs.
#[derive(Debug, Clone, Copy)]
pub enum SanSet {
    None,
    /// Every control-plane address and name, LB/endpoint, 127.0.0.1, first service IP,
    /// the kubernetes.default names and `cluster.api_sans`.
    Apiserver,
    /// The host's address and name, 127.0.0.1 and localhost.
    HostAndLoopback,
    /// The host's address and name.
    Host,
    /// The DNS names of a Service (name, namespace) inside the cluster.
    Service(&'static str, &'static str),
}

pub struct Profile {
    /// File stem; `{host}` is replaced per host.
    pub file: &'static str,
    pub ca: CaKind,
    pub scope: Scope,
    /// `{host}` is replaced per host.
    pub common_name: &'static str,
    pub organization: Option<&'static str>,
    pub usage: Usage,
    pub sans: SanSet,
    /// Roles whose hosts receive a cluster-scoped certificate; per-host ones go to their host.
    pub to: &'static [Role],
}

/// File stem of metrics-server's serving certificate (the render step puts it in a Secret).
pub const METRICS_SERVER_CERT: &str = "metrics-server";

/// The group of the everyday admin certificate, bound to `cluster-admin` by the
/// ClusterRoleBinding of the same name.
pub const CLUSTER_ADMINS_GROUP: &str = "k8s-boot:cluster-admins";

pub const LEAVES: &[Profile] = &[
    Profile {
        file: "apiserver",
        ca: CaKind::Kubernetes,
        scope: Scope::Cluster,
        common_name: "kube-apiserver",
        organization: None,
        usage: Usage::Server,
        sans: SanSet::Apiserver,
        to: &[Role::ControlPlane],
    },
    Profile {
        file: "apiserver-kubelet-client",
        ca: CaKind::Kubernetes,
        scope: Scope::Cluster,
        common_name: "kube-apiserver-kubelet-client",
        organization: None,
        usage: Usage::Client,
        sans: SanSet::None,
        to: &[Role::ControlPlane],
    },
    Profile {
        file: "apiserver-etcd-client",
        ca: CaKind::Etcd,
        scope: Scope::Cluster,
        common_name: "kube-apiserver-etcd-client",
        organization: None,
        usage: Usage::Client,
        sans: SanSet::None,
        to: &[Role::ControlPlane],
    },
    Profile {
        file: "etcd/healthcheck-client",
        ca: CaKind::Etcd,
        scope: Scope::Cluster,
        common_name: "etcd-healthcheck-client",
        organization: None,
        usage: Usage::Client,
        sans: SanSet::None,
        to: &[Role::Etcd],
    },
    Profile {
        file: "etcd/server-{host}",
        ca: CaKind::Etcd,
        scope: Scope::PerHost(Role::Etcd),
        common_name: "{host}",
        organization: None,
        usage: Usage::ServerAndClient,
        sans: SanSet::HostAndLoopback,
        to: &[],
    },
    Profile {
        file: "etcd/peer-{host}",
        ca: CaKind::Etcd,
        scope: Scope::PerHost(Role::Etcd),
        common_name: "{host}",
        organization: None,
        usage: Usage::ServerAndClient,
        sans: SanSet::HostAndLoopback,
        to: &[],
    },
    Profile {
        file: "front-proxy-client",
        ca: CaKind::FrontProxy,
        scope: Scope::Cluster,
        common_name: "front-proxy-client",
        organization: None,
        usage: Usage::Client,
        sans: SanSet::None,
        to: &[Role::ControlPlane],
    },
    // The everyday admin: a group bound to cluster-admin by RBAC (so a binding can be taken
    // away), in admin.kubeconfig on this machine and on the control-plane hosts, where the
    // installer runs kubectl with it.
    Profile {
        file: "admin",
        ca: CaKind::Kubernetes,
        scope: Scope::Cluster,
        common_name: "kubernetes-admin",
        organization: Some(CLUSTER_ADMINS_GROUP),
        usage: Usage::Client,
        sans: SanSet::None,
        to: &[],
    },
    // system:masters, which no RBAC rule can restrict: only in super-admin.kubeconfig in
    // the PKI directory, never on a host. The installer uses it once, to bind the admins'
    // group (it reaches the host on a command's stdin, not on disk).
    Profile {
        file: "super-admin",
        ca: CaKind::Kubernetes,
        scope: Scope::Cluster,
        common_name: "kubernetes-super-admin",
        organization: Some("system:masters"),
        usage: Usage::Client,
        sans: SanSet::None,
        to: &[],
    },
    Profile {
        file: "controller-manager",
        ca: CaKind::Kubernetes,
        scope: Scope::Cluster,
        common_name: "system:kube-controller-manager",
        organization: None,
        usage: Usage::Client,
        sans: SanSet::None,
        to: &[Role::ControlPlane],
    },
    Profile {
        file: "scheduler",
        ca: CaKind::Kubernetes,
        scope: Scope::Cluster,
        common_name: "system:kube-scheduler",
        organization: None,
        usage: Usage::Client,
        sans: SanSet::None,
        to: &[Role::ControlPlane],
    },
    Profile {
        file: "kube-proxy",
        ca: CaKind::Kubernetes,
        scope: Scope::Cluster,
        common_name: "system:kube-proxy",
        organization: None,
        usage: Usage::Client,
        sans: SanSet::None,
        to: &[Role::ControlPlane, Role::Worker],
    },
    // metrics-server's serving certificate: the apiserver verifies it (APIService caBundle).
    // It reaches the cluster as a Secret in the metrics-server manifest, not as a host file.
    Profile {
        file: METRICS_SERVER_CERT,
        ca: CaKind::Kubernetes,
        scope: Scope::Cluster,
        common_name: "metrics-server",
        organization: None,
        usage: Usage::Server,
        sans: SanSet::Service("metrics-server", "kube-system"),
        to: &[],
    },
    Profile {
        file: "kubelet-{host}",
        ca: CaKind::Kubernetes,
        scope: Scope::PerNode,
        common_name: "system:node:{host}",
        organization: Some("system:nodes"),
        usage: Usage::Client,
        sans: SanSet::None,
        to: &[],
    },
    Profile {
        file: "kubelet-server-{host}",
        ca: CaKind::Kubernetes,
        scope: Scope::PerNode,
        common_name: "system:node:{host}",
        organization: Some("system:nodes"),
        usage: Usage::Server,
        sans: SanSet::Host,
        to: &[],
    },
];

/// A Subject Alternative Name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Dns(d) => write!(f, "DNS:{d}"),
            San::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

/// One concrete leaf certificate of this cluster.
#[derive(Debug, Clone)]
pub struct LeafCert {
    /// File stem under the PKI directory (`etcd/server-m1`).
    pub file: String,
    pub ca: CaKind,
    pub common_name: String,
    pub organization: Option<String>,
    pub usage: Usage,
    /// Sorted and deduplicated.
    pub sans: Vec<San>,
    /// Names of the hosts that receive this certificate and its key.
    pub hosts: Vec<String>,
    /// The host a per-host (or per-node) certificate is for; `None` for a cluster-scoped one.
    pub host: Option<String>,
}

/// Expands the profile table for this cluster.
pub fn leaf_certs(cluster: &Cluster) -> Vec<LeafCert> {
    let mut out = Vec::new();
    for p in LEAVES {
        let hosts: Vec<&Host> = match p.scope {
            Scope::Cluster => {
                out.push(instance(cluster, p, None, receivers(cluster, p.to)));
                continue;
            }
            Scope::PerHost(role) => cluster.hosts_with(role).collect(),
            Scope::PerNode => cluster.nodes().collect(),
        };
        for h in hosts {
            out.push(instance(cluster, p, Some(h), vec![h.name.clone()]));
        }
    }
    out
}

pub fn receivers(cluster: &Cluster, roles: &[Role]) -> Vec<String> {
    cluster
        .inventory
        .hosts
        .iter()
        .filter(|h| roles.iter().any(|r| h.has(*r)))
        .map(|h| h.name.clone())
        .collect()
}

fn instance(cluster: &Cluster, p: &Profile, host: Option<&Host>, hosts: Vec<String>) -> LeafCert {
    let subst = |s: &str| match host {
        Some(h) => s.replace("{host}", &h.name),
        None => s.to_string(),
    };
    let mut sans = match (p.sans, host) {
        (SanSet::None, _) => vec![],
        (SanSet::Apiserver, _) => apiserver_sans(cluster),
        (SanSet::HostAndLoopback, Some(h)) => vec![
            San::Ip(h.address),
            San::Dns(h.name.clone()),
            San::Ip(IpAddr::from([127, 0, 0, 1])),
            San::Dns("localhost".into()),
        ],
        (SanSet::Host, Some(h)) => vec![San::Ip(h.address), San::Dns(h.name.clone())],
        (SanSet::Service(name, namespace), _) => vec![
            San::Dns(format!("{name}.{namespace}.svc")),
            San::Dns(format!(
                "{name}.{namespace}.svc.{}",
                cluster.inventory.cluster.cluster_domain
            )),
        ],
        (_, None) => unreachable!("host SANs on a cluster-scoped profile"),
    };
    sans.sort();
    sans.dedup();
    LeafCert {
        file: subst(p.file),
        ca: p.ca,
        common_name: subst(p.common_name),
        organization: p.organization.map(str::to_string),
        usage: p.usage,
        sans,
        hosts,
        host: host.map(|h| h.name.clone()),
    }
}

fn apiserver_sans(cluster: &Cluster) -> Vec<San> {
    let domain = &cluster.inventory.cluster.cluster_domain;
    let mut sans = vec![
        San::Ip(IpAddr::from([127, 0, 0, 1])),
        San::Ip(cluster.kubernetes_service_ip),
        San::Dns("localhost".into()),
        San::Dns("kubernetes".into()),
        San::Dns("kubernetes.default".into()),
        San::Dns("kubernetes.default.svc".into()),
        San::Dns(format!("kubernetes.default.svc.{domain}")),
    ];
    for h in cluster
        .hosts_with(Role::ControlPlane)
        .chain(cluster.hosts_with(Role::Lb))
    {
        sans.push(San::Ip(h.address));
        sans.push(San::Dns(h.name.clone()));
    }
    let ep = &cluster.api_endpoint.host;
    sans.push(match ep.parse::<IpAddr>() {
        Ok(ip) => San::Ip(ip),
        Err(_) => San::Dns(ep.clone()),
    });
    for extra in &cluster.inventory.cluster.api_sans {
        sans.push(match extra.parse::<IpAddr>() {
            Ok(ip) => San::Ip(ip),
            Err(_) => San::Dns(extra.clone()),
        });
    }
    sans
}
