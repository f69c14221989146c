//! The inventory file as the user writes it (serde), with its defaults.
//!
//! Every struct denies unknown keys so that a typo is reported instead of ignored.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub cluster: Cluster,
    #[serde(default)]
    pub ssh: Ssh,
    #[serde(default)]
    pub binaries: Binaries,
    #[serde(default)]
    pub pki: PkiSettings,
    #[serde(default)]
    pub chat: Chat,
    #[serde(default)]
    pub ingress: Ingress,
    #[serde(default)]
    pub etcd: EtcdSettings,
    pub hosts: Vec<Host>,
}

/// The ingress add-on: Traefik, serving Gateway API routes and Ingress objects, behind nginx
/// on the `lb` hosts (`src/addons.rs`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ingress {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_ingress_replicas")]
    pub replicas: u32,
    /// Ports nginx listens on on the `lb` hosts: HTTP, and HTTPS passed through unopened.
    #[serde(default = "default_ingress_http_port")]
    pub http_port: u16,
    #[serde(default = "default_ingress_https_port")]
    pub https_port: u16,
    /// The NodePorts nginx connects to, with a PROXY protocol header; only the `lb` hosts
    /// reach them.
    #[serde(default = "default_ingress_http_node_port")]
    pub http_node_port: u16,
    #[serde(default = "default_ingress_https_node_port")]
    pub https_node_port: u16,
}

impl Default for Ingress {
    fn default() -> Self {
        Ingress {
            enabled: true,
            replicas: default_ingress_replicas(),
            http_port: default_ingress_http_port(),
            https_port: default_ingress_https_port(),
            http_node_port: default_ingress_http_node_port(),
            https_node_port: default_ingress_https_node_port(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSettings {
    #[serde(default)]
    pub backup: EtcdBackup,
}

/// Scheduled snapshots on every etcd host: a systemd timer, the newest `keep` kept.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdBackup {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// A systemd calendar expression (`OnCalendar=`), e.g. `daily` or `*-*-* 00/6:00`.
    #[serde(default = "default_backup_schedule")]
    pub schedule: String,
    #[serde(default = "default_backup_keep")]
    pub keep: u32,
}

impl Default for EtcdBackup {
    fn default() -> Self {
        EtcdBackup {
            enabled: true,
            schedule: default_backup_schedule(),
            keep: default_backup_keep(),
        }
    }
}

fn default_backup_schedule() -> String {
    "daily".into()
}

fn default_backup_keep() -> u32 {
    7
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    pub kubernetes_version: String,
    #[serde(default = "default_cluster_domain")]
    pub cluster_domain: String,
    #[serde(default = "default_pod_cidr")]
    pub pod_cidr: String,
    #[serde(default = "default_service_cidr")]
    pub service_cidr: String,
    #[serde(default = "default_node_cidr_mask_size")]
    pub node_cidr_mask_size: u8,
    #[serde(default = "default_node_port_range")]
    pub node_port_range: String,
    /// `address:port` clients use to reach the apiservers; defaults to the first `lb`
    /// host on port 6443, or the only control-plane host.
    #[serde(default)]
    pub api_endpoint: Option<String>,
    /// Extra names for the apiserver serving certificate (e.g. a DNS name of the LB).
    #[serde(default)]
    pub api_sans: Vec<String>,
    #[serde(default)]
    pub kube_proxy: KubeProxy,
    /// DNS servers CoreDNS forwards names outside the cluster to. Absent: the servers of each
    /// CoreDNS node's /etc/resolv.conf. Empty: none (an air-gapped cluster without DNS
    /// servers; only cluster names resolve).
    #[serde(default)]
    pub dns_upstreams: Option<Vec<String>>,
    #[serde(default)]
    pub kubelet: Kubelet,
    #[serde(default)]
    pub containerd: Containerd,
    /// Accept loopback host addresses (127.0.0.0/8, ::1): for a test cluster whose hosts all
    /// run on this one machine. Then every host address must be a loopback address.
    #[serde(default)]
    pub allow_loopback_hosts: bool,
}

/// Settings of containerd on every node.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Containerd {
    /// Never give a container a lower `oom_score_adj` than containerd's own
    /// (`restrict_oom_score_adj`): for hosts where containerd may not lower it, because it
    /// runs without CAP_SYS_RESOURCE (inside a container, as in the lab).
    #[serde(default)]
    pub restrict_oom_score_adj: bool,
    /// Mirrors per upstream registry host (`registry.k8s.io`, `docker.io`, `ghcr.io`,
    /// `quay.io`, `registry.corp:5000`), tried in order before the registry itself. Each
    /// registry becomes `/etc/containerd/certs.d/<host>/hosts.toml` on every node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub registry_mirrors: BTreeMap<String, Vec<RegistryMirror>>,
}

/// One mirror of a registry: an endpoint of the registry API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryMirror {
    /// `https://host[:port][/path]` (or `http://` for a mirror without TLS). A path is put
    /// in front of every repository name (`https://harbor.corp/hub` serves
    /// `hub/library/node`), as `fetch --registry-mirror` does.
    pub url: String,
    /// A local PEM file of the CA certificate(s) the mirror's certificate is checked
    /// against, in addition to the system's (https only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// A local file holding `user:password` for the mirror, sent as HTTP basic
    /// authentication (https only). Never printed; the rendered hosts.toml is 0600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubeProxy {
    #[serde(default = "default_proxy_mode")]
    pub mode: ProxyMode,
    #[serde(default = "default_ipvs_scheduler")]
    pub ipvs_scheduler: String,
    /// conntrack entries per CPU kube-proxy sets the kernel's table to (its default when
    /// absent); `0` leaves the kernel's limit as it is (for hosts that share one kernel, such
    /// as containers, where that limit is not the host's to change).
    #[serde(default)]
    pub conntrack_max_per_core: Option<u32>,
}

impl Default for KubeProxy {
    fn default() -> Self {
        KubeProxy {
            mode: default_proxy_mode(),
            ipvs_scheduler: default_ipvs_scheduler(),
            conntrack_max_per_core: None,
        }
    }
}

/// Settings of the kubelet on every node (control-plane and worker hosts).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Kubelet {
    /// Let the kubelet run on hosts that still use cgroup v1 (`failCgroupV1: false`); the
    /// kubelet refuses them by default since Kubernetes v1.35.
    #[serde(default)]
    pub allow_cgroup_v1: bool,
    /// Hard eviction thresholds (`evictionHard`) by signal, each a percentage of the
    /// resource (`"5%"`) or a quantity (`"2Gi"`, inodes as a plain number). A listed signal
    /// replaces upstream's default for it; the others keep theirs.
    #[serde(default)]
    pub eviction_hard: BTreeMap<String, String>,
    /// Image garbage collection (`imageGCHighThresholdPercent`, `imageGCLowThresholdPercent`):
    /// past `high` percent of the image file system used, the kubelet deletes unused images
    /// down to `low`. Unset: the kubelet's 85 and 80.
    #[serde(default)]
    pub image_gc_high_threshold_percent: Option<u8>,
    #[serde(default)]
    pub image_gc_low_threshold_percent: Option<u8>,
}

/// The kubelet's own image garbage collection thresholds (`imageGCHighThresholdPercent`,
/// `imageGCLowThresholdPercent`), v1.35-v1.37.
pub const DEFAULT_IMAGE_GC_PERCENT: (u8, u8) = (85, 80);

/// The kubelet's own hard eviction thresholds on Linux (`eviction.DefaultEvictionHard`,
/// the same in v1.35-v1.37). Setting `evictionHard` at all replaces them as a whole, so
/// k8s-boot renders them beside the inventory's.
pub const DEFAULT_EVICTION_HARD: &[(&str, &str)] = &[
    ("imagefs.available", "15%"),
    ("imagefs.inodesFree", "5%"),
    ("memory.available", "100Mi"),
    ("nodefs.available", "10%"),
    ("nodefs.inodesFree", "5%"),
];

/// The signals `cluster.kubelet.eviction_hard` accepts: the kubelet's, less those that
/// need a feature gate (`containerfs.*`) or that it derives itself (`allocatableMemory`).
pub const EVICTION_SIGNALS: &[&str] = &[
    "imagefs.available",
    "imagefs.inodesFree",
    "memory.available",
    "nodefs.available",
    "nodefs.inodesFree",
    "pid.available",
];

impl Kubelet {
    /// `evictionHard` as rendered: upstream's defaults with the inventory's entries over
    /// them, or nothing when the inventory sets none (the kubelet then applies its own).
    pub fn eviction_hard_rendered(&self) -> BTreeMap<String, String> {
        if self.eviction_hard.is_empty() {
            return BTreeMap::new();
        }
        let mut all: BTreeMap<String, String> = DEFAULT_EVICTION_HARD
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.extend(self.eviction_hard.clone());
        all
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    Iptables,
    Ipvs,
    Nftables,
}

impl ProxyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMode::Iptables => "iptables",
            ProxyMode::Ipvs => "ipvs",
            ProxyMode::Nftables => "nftables",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ssh {
    #[serde(default = "default_ssh_user")]
    pub user: String,
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// Private key file; when absent the SSH agent is used.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default = "default_known_hosts")]
    pub known_hosts: String,
    /// Run privileged commands through `sudo -n` (for a non-root user).
    #[serde(default)]
    pub sudo: bool,
}

impl Default for Ssh {
    fn default() -> Self {
        Ssh {
            user: default_ssh_user(),
            port: default_ssh_port(),
            key: None,
            known_hosts: default_known_hosts(),
            sudo: false,
        }
    }
}

/// Per-host SSH overrides; every field falls back to the global `ssh` section.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostSsh {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub sudo: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Binaries {
    /// Local directory holding the release binaries; relative to the inventory file.
    #[serde(default = "default_binaries_dir")]
    pub dir: String,
}

impl Default for Binaries {
    fn default() -> Self {
        Binaries {
            dir: default_binaries_dir(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PkiSettings {
    #[serde(default = "default_ca_days")]
    pub ca_validity_days: u32,
    #[serde(default = "default_leaf_days")]
    pub cert_validity_days: u32,
    /// Leaf validity in minutes instead of days: short-lived certificates, to exercise
    /// renewal and rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_validity_minutes: Option<u32>,
}

impl Default for PkiSettings {
    fn default() -> Self {
        PkiSettings {
            ca_validity_days: default_ca_days(),
            cert_validity_days: default_leaf_days(),
            cert_validity_minutes: None,
        }
    }
}

impl PkiSettings {
    /// How long a leaf certificate is issued for: `cert_validity_minutes` when set, else
    /// `cert_validity_days`.
    pub fn leaf_validity(&self) -> time::Duration {
        match self.cert_validity_minutes {
            Some(m) => time::Duration::minutes(m.into()),
            None => time::Duration::days(self.cert_validity_days.into()),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Chat {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_chat_replicas")]
    pub replicas: u32,
    /// Port the server listens on in the pod, and the port nginx listens on on `lb` hosts.
    #[serde(default = "default_chat_port")]
    pub port: u16,
    /// NodePort of the chat Service on every worker, for direct clients (plain TCP).
    #[serde(default = "default_chat_port")]
    pub node_port: u16,
    /// NodePort nginx on `lb` hosts connects to: the pod's PROXY protocol port.
    #[serde(default = "default_chat_lb_node_port")]
    pub lb_node_port: u16,
    #[serde(default = "default_chat_image")]
    pub image: String,
    #[serde(default = "default_chat_namespace")]
    pub namespace: String,
}

impl Default for Chat {
    fn default() -> Self {
        Chat {
            enabled: true,
            replicas: default_chat_replicas(),
            port: default_chat_port(),
            node_port: default_chat_port(),
            lb_node_port: default_chat_lb_node_port(),
            image: default_chat_image(),
            namespace: default_chat_namespace(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub name: String,
    pub address: IpAddr,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub ssh: HostSsh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Lb,
    Etcd,
    ControlPlane,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Lb => "lb",
            Role::Etcd => "etcd",
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
        }
    }
}

impl Host {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has(*r))
    }
}

fn default_cluster_domain() -> String {
    "cluster.local".into()
}
fn default_pod_cidr() -> String {
    "10.244.0.0/16".into()
}
fn default_service_cidr() -> String {
    "10.96.0.0/12".into()
}
fn default_node_cidr_mask_size() -> u8 {
    24
}
fn default_node_port_range() -> String {
    "30000-32767".into()
}
fn default_proxy_mode() -> ProxyMode {
    ProxyMode::Iptables
}
fn default_ipvs_scheduler() -> String {
    "rr".into()
}
fn default_ssh_user() -> String {
    "root".into()
}
fn default_ssh_port() -> u16 {
    22
}
fn default_known_hosts() -> String {
    "~/.ssh/known_hosts".into()
}
fn default_binaries_dir() -> String {
    "binaries".into()
}
fn default_ca_days() -> u32 {
    3650
}
fn default_leaf_days() -> u32 {
    365
}
fn default_true() -> bool {
    true
}
fn default_ingress_replicas() -> u32 {
    2
}
fn default_ingress_http_port() -> u16 {
    80
}
fn default_ingress_https_port() -> u16 {
    443
}
fn default_ingress_http_node_port() -> u16 {
    30080
}
fn default_ingress_https_node_port() -> u16 {
    30443
}
fn default_chat_replicas() -> u32 {
    1
}
fn default_chat_port() -> u16 {
    30000
}
fn default_chat_lb_node_port() -> u16 {
    30001
}
fn default_chat_image() -> String {
    "docker.io/library/node:24-bookworm-slim".into()
}
fn default_chat_namespace() -> String {
    "chat".into()
}
