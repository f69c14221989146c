//! The values templates see. One context per host (plus one for cluster-level files); every
//! key is documented in docs/RENDERED.md.

use super::rules::{BIN_DIR, PKI_DIR};
use crate::inventory::{Cluster, Host, Role, APISERVER_PORT};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
pub struct HostRef {
    pub name: String,
    pub address: String,
    /// The address as written inside a URL (`[fd00::1]` for IPv6).
    pub url_address: String,
}

impl HostRef {
    pub fn of(h: &Host) -> HostRef {
        HostRef {
            name: h.name.clone(),
            address: h.address.to_string(),
            url_address: url_address(h.address),
        }
    }
}

pub use crate::catalog::url_address;

#[derive(Serialize)]
pub struct ClusterValues {
    pub name: String,
    pub version: String,
    pub minor: String,
    pub domain: String,
    pub pod_cidr: String,
    pub service_cidr: String,
    pub node_cidr_mask_size: u8,
    pub node_port_range: String,
    pub kubernetes_service_ip: String,
    pub dns_service_ip: String,
    /// `https://ENDPOINT` of the load balancer (or the only apiserver).
    pub api_endpoint_url: String,
    pub apiserver_port: u16,
    pub service_account_issuer: String,
    pub proxy_mode: String,
    pub ipvs_scheduler: String,
    pub conntrack_max_per_core: Option<u32>,
    /// `cluster.kubelet.allow_cgroup_v1`: the kubelet may start on cgroup v1 hosts.
    pub allow_cgroup_v1: bool,
    /// `evictionHard`: upstream's defaults with `cluster.kubelet.eviction_hard` over them;
    /// empty when the inventory sets none.
    pub eviction_hard: BTreeMap<String, String>,
    /// `cluster.kubelet.image_gc_*_threshold_percent`, when set.
    pub image_gc_high_threshold_percent: Option<u8>,
    pub image_gc_low_threshold_percent: Option<u8>,
    /// What CoreDNS forwards to: `/etc/resolv.conf`, addresses, or nothing (empty).
    pub dns_forward: String,
    /// `cluster.containerd.restrict_oom_score_adj`.
    pub restrict_oom_score_adj: bool,
    /// The leaf certificates' validity in minutes: also that of the kubelet client
    /// certificates the controller-manager signs when kubelets rotate theirs.
    pub cert_validity_minutes: i64,
    /// nginx's `fail_timeout` for the API servers ([`crate::catalog::LB_FAIL_TIMEOUT_SECS`]).
    pub lb_fail_timeout_secs: u64,
    /// [`crate::catalog::TLS_CIPHER_SUITES`].
    pub tls_cipher_suites: &'static [&'static str],
}

#[derive(Serialize)]
pub struct ThisHost {
    #[serde(flatten)]
    pub host: HostRef,
    pub roles: Vec<&'static str>,
    pub lb: bool,
    pub etcd: bool,
    pub control_plane: bool,
    pub worker: bool,
    /// The apiserver URL clients on this host use: the local apiserver on control-plane
    /// hosts, the API endpoint elsewhere.
    pub api_server_url: String,
    /// Taints the kubelet registers with (control-plane hosts that are not workers).
    pub register_taints: Vec<Taint>,
}

#[derive(Serialize, Clone)]
pub struct Taint {
    pub key: String,
    pub effect: String,
}

#[derive(Serialize)]
pub struct EtcdValues {
    pub members: Vec<HostRef>,
    /// `m1=https://10.0.0.1:2380,...`
    pub initial_cluster: String,
    /// `https://10.0.0.1:2379,...`
    pub client_urls: String,
    /// Scheduled snapshots (`OnCalendar=`) and how many a member keeps.
    pub backup_schedule: String,
    pub backup_keep: u32,
    pub backup_dir: &'static str,
    /// The user etcd runs as, and where its credentials are while it runs.
    pub user: &'static str,
    pub credentials_dir: &'static str,
}

#[derive(Serialize)]
pub struct ChatValues {
    pub enabled: bool,
    pub replicas: u32,
    pub port: u16,
    pub node_port: u16,
    /// PROXY protocol port of the pod and its NodePort, for nginx on `lb` hosts.
    pub lb_node_port: u16,
    pub image: String,
    pub namespace: String,
    /// There is an `lb` host: the pod also listens on `lb_node_port`, where nginx sends a PROXY
    /// protocol header so the server sees real client addresses.
    pub proxy_protocol: bool,
}

#[derive(Serialize)]
pub struct IngressValues {
    pub enabled: bool,
    pub replicas: u32,
    pub http_port: u16,
    pub https_port: u16,
    pub http_node_port: u16,
    pub https_node_port: u16,
    /// Where the controller believes a PROXY protocol header from: the pod network and the
    /// nodes (kube-proxy gives NodePort traffic it forwards the node's address). Only the lb
    /// hosts reach the NodePorts ([`NodePortFilter`]).
    pub proxy_trusted: Vec<String>,
}

/// The NodePorts where a PROXY protocol header is believed, which only the `lb` hosts may
/// reach on a node's own address (`node/nodeport-filter.nft`).
#[derive(Serialize)]
pub struct NodePortFilter {
    pub ports: Vec<u16>,
    /// The `lb` hosts' addresses by family.
    pub lb_addresses_v4: Vec<String>,
    pub lb_addresses_v6: Vec<String>,
}

#[derive(Serialize)]
pub struct Paths {
    pub pki: &'static str,
    pub bin: &'static str,
}

#[derive(Serialize)]
pub struct Context<'a> {
    pub cluster: &'a ClusterValues,
    pub profile: &'static crate::versions::VersionProfile,
    /// Every add-on image's reference by its key ([`crate::addons::AddonImage`]).
    pub images: &'a BTreeMap<&'static str, &'static str>,
    pub paths: Paths,
    pub etcd: &'a EtcdValues,
    pub control_planes: &'a [HostRef],
    pub workers: &'a [HostRef],
    pub chat: &'a ChatValues,
    pub ingress: &'a IngressValues,
    pub nodeport_filter: &'a NodePortFilter,
    /// [`crate::catalog::LB_LIMITS`].
    pub lb: crate::catalog::LbLimits,
    /// Absent in the cluster-level context.
    pub host: Option<ThisHost>,
}

/// Values shared by every host's context.
pub struct Shared {
    pub cluster: ClusterValues,
    pub etcd: EtcdValues,
    pub control_planes: Vec<HostRef>,
    pub workers: Vec<HostRef>,
    pub chat: ChatValues,
    pub ingress: IngressValues,
    pub nodeport_filter: NodePortFilter,
    pub images: BTreeMap<&'static str, &'static str>,
}

pub const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";

impl Shared {
    pub fn new(c: &Cluster) -> Shared {
        let inv = &c.inventory;
        let ingress = &inv.ingress;
        let behind_lb = c.hosts_with(Role::Lb).next().is_some();
        let members: Vec<HostRef> = c.hosts_with(Role::Etcd).map(HostRef::of).collect();
        let etcd = EtcdValues {
            initial_cluster: members
                .iter()
                .map(|m| format!("{}=https://{}:2380", m.name, m.url_address))
                .collect::<Vec<_>>()
                .join(","),
            client_urls: members
                .iter()
                .map(|m| format!("https://{}:2379", m.url_address))
                .collect::<Vec<_>>()
                .join(","),
            members,
            backup_schedule: inv.etcd.backup.schedule.trim().to_string(),
            backup_keep: inv.etcd.backup.keep,
            backup_dir: crate::backup::SCHEDULED_DIR,
            user: crate::catalog::ETCD_USER,
            credentials_dir: crate::catalog::ETCD_CREDENTIALS_DIR,
        };
        let domain = inv.cluster.cluster_domain.clone();
        Shared {
            cluster: ClusterValues {
                name: inv.cluster.name.clone(),
                version: inv.cluster.kubernetes_version.clone(),
                minor: c.profile.minor.to_string(),
                service_account_issuer: format!("https://kubernetes.default.svc.{domain}"),
                domain,
                pod_cidr: c.pod_cidr.to_string(),
                service_cidr: c.service_cidr.to_string(),
                node_cidr_mask_size: inv.cluster.node_cidr_mask_size,
                node_port_range: format!("{}-{}", c.node_port_range.0, c.node_port_range.1),
                kubernetes_service_ip: c.kubernetes_service_ip.to_string(),
                dns_service_ip: c.dns_service_ip.to_string(),
                api_endpoint_url: format!("https://{}", c.api_endpoint),
                apiserver_port: APISERVER_PORT,
                proxy_mode: inv.cluster.kube_proxy.mode.as_str().to_string(),
                ipvs_scheduler: inv.cluster.kube_proxy.ipvs_scheduler.clone(),
                conntrack_max_per_core: inv.cluster.kube_proxy.conntrack_max_per_core,
                allow_cgroup_v1: inv.cluster.kubelet.allow_cgroup_v1,
                eviction_hard: inv.cluster.kubelet.eviction_hard_rendered(),
                image_gc_high_threshold_percent: inv
                    .cluster
                    .kubelet
                    .image_gc_high_threshold_percent,
                image_gc_low_threshold_percent: inv.cluster.kubelet.image_gc_low_threshold_percent,
                cert_validity_minutes: inv.pki.leaf_validity().whole_minutes(),
                lb_fail_timeout_secs: crate::catalog::LB_FAIL_TIMEOUT_SECS,
                tls_cipher_suites: crate::catalog::TLS_CIPHER_SUITES,
                dns_forward: match &inv.cluster.dns_upstreams {
                    None => "/etc/resolv.conf".into(),
                    Some(servers) => servers.join(" "),
                },
                restrict_oom_score_adj: inv.cluster.containerd.restrict_oom_score_adj,
            },
            etcd,
            control_planes: c.hosts_with(Role::ControlPlane).map(HostRef::of).collect(),
            workers: c.hosts_with(Role::Worker).map(HostRef::of).collect(),
            chat: ChatValues {
                enabled: inv.chat.enabled,
                replicas: inv.chat.replicas,
                port: inv.chat.port,
                node_port: inv.chat.node_port,
                lb_node_port: inv.chat.lb_node_port,
                image: inv.chat.image.clone(),
                namespace: inv.chat.namespace.clone(),
                proxy_protocol: behind_lb,
            },
            ingress: IngressValues {
                enabled: ingress.enabled,
                replicas: ingress.replicas,
                http_port: ingress.http_port,
                https_port: ingress.https_port,
                http_node_port: ingress.http_node_port,
                https_node_port: ingress.https_node_port,
                proxy_trusted: std::iter::once(inv.cluster.pod_cidr.clone())
                    .chain(
                        c.hosts_with(Role::ControlPlane)
                            .chain(c.hosts_with(Role::Worker))
                            .map(|h| h.address.to_string()),
                    )
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            },
            nodeport_filter: NodePortFilter {
                ports: (inv.chat.enabled && behind_lb)
                    .then_some(inv.chat.lb_node_port)
                    .into_iter()
                    .chain(
                        ingress
                            .enabled
                            .then_some([ingress.http_node_port, ingress.https_node_port])
                            .into_iter()
                            .flatten(),
                    )
                    .collect(),
                lb_addresses_v4: lb_addresses(c, true),
                lb_addresses_v6: lb_addresses(c, false),
            },
            images: crate::addons::images()
                .map(|i| (i.key, i.reference))
                .collect(),
        }
    }

    pub fn context(
        &self,
        profile: &'static crate::versions::VersionProfile,
        host: Option<&Host>,
    ) -> Context<'_> {
        Context {
            cluster: &self.cluster,
            profile,
            images: &self.images,
            paths: Paths {
                pki: PKI_DIR,
                bin: BIN_DIR,
            },
            etcd: &self.etcd,
            control_planes: &self.control_planes,
            workers: &self.workers,
            chat: &self.chat,
            ingress: &self.ingress,
            nodeport_filter: &self.nodeport_filter,
            lb: crate::catalog::LB_LIMITS,
            host: host.map(|h| this_host(&self.cluster, h)),
        }
    }
}

fn lb_addresses(c: &Cluster, v4: bool) -> Vec<String> {
    c.hosts_with(Role::Lb)
        .filter(|h| h.address.is_ipv4() == v4)
        .map(|h| h.address.to_string())
        .collect()
}

pub fn api_server_url(cluster: &ClusterValues, h: &Host) -> String {
    if h.has(Role::ControlPlane) {
        format!("https://127.0.0.1:{APISERVER_PORT}")
    } else {
        cluster.api_endpoint_url.clone()
    }
}

fn this_host(cluster: &ClusterValues, h: &Host) -> ThisHost {
    let register_taints = if h.has(Role::ControlPlane) && !h.has(Role::Worker) {
        vec![Taint {
            key: CONTROL_PLANE_TAINT.into(),
            effect: "NoSchedule".into(),
        }]
    } else {
        vec![]
    };
    ThisHost {
        host: HostRef::of(h),
        roles: h.roles.iter().map(|r| r.as_str()).collect(),
        lb: h.has(Role::Lb),
        etcd: h.has(Role::Etcd),
        control_plane: h.has(Role::ControlPlane),
        worker: h.has(Role::Worker),
        api_server_url: api_server_url(cluster, h),
        register_taints,
    }
}

/// Key material a template may be given: the context key it is read under, and its value.
pub struct Secret {
    pub key: &'static str,
    pub value: serde_json::Value,
}

/// The only templates that see each secret (by context key), besides each add-on's manifest
/// its own certificate ([`reads_secret`]). Every other template, and every error message, is
/// rendered without it: an override cannot copy a key into a file that does not need it, or
/// into its error.
pub const SECRET_READERS: &[(&str, &str)] = &[
    ("control-plane/encryption-config.yaml", "encryption_key"),
    ("kubeconfig.yaml", "key_data"),
    ("node/hosts.toml", "registry_auth"),
];

/// Whether the template `name` is given the secret read under `key`.
pub fn reads_secret(name: &str, key: &str) -> bool {
    SECRET_READERS.contains(&(name, key))
        || crate::addons::by_manifest(name)
            .and_then(|a| a.cert.as_ref())
            .is_some_and(|c| c.key == key)
}
