//! The CIS Kubernetes Benchmark v1.12, audited on the hosts and the cluster k8s-boot installed.
//!
//! [`CONTROLS`] holds one row per control of the benchmark's five sections (1 control plane,
//! 2 etcd, 3 control-plane configuration, 4 worker nodes, 5 policies), in the benchmark's order:
//! its id, what it asks in a few words, which hosts it concerns and how it is audited, as data
//! ([`Audit`]). The audits follow the benchmark as kube-bench encodes it (`cfg/cis-1.12/` of
//! aquasecurity/kube-bench), read against k8s-boot's layout: a component's "pod specification
//! file" is its systemd unit here (with the configuration files its command line names), and
//! where a component takes a setting from its configuration file (the kubelet, etcd, the
//! scheduler, kube-proxy) the file's key is read, as kube-bench does for the kubelet.
//!
//! [`audit`] runs one shell command per host ([`gather_script`]: file modes and owners, the
//! processes' command lines, the configuration files, the CA digests and the certificates'
//! PEM, never a key), evaluates every row locally, reads the cluster through a kubectl closure
//! for section 5, and turns a control that is not met but explained in docs/SECURITY.md
//! (section "CIS Kubernetes Benchmark") into [`Status::Explained`]. [`report`] prints the
//! summary.

use base64::Engine as _;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

pub const BENCHMARK: &str = "CIS Kubernetes Benchmark v1.12";

/// The section of docs/SECURITY.md whose table explains the controls not met as written.
pub const DOC_SECTION: &str = "## CIS Kubernetes Benchmark";
/// The header of that table.
pub const DOC_TABLE_HEADER: &str = "| Control | Why it is not met as written |";
/// Where [`audit`] reads it.
pub const SECURITY_MD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/SECURITY.md");

// ------------------------------------------------------------------------------------------
// What a control audits
// ------------------------------------------------------------------------------------------

/// Which hosts a control concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    ControlPlane,
    Etcd,
    /// Hosts with a kubelet: control-plane and worker hosts.
    Nodes,
    /// Every host holding one of the three roles.
    Hosts,
    /// The cluster once, through kubectl (or a person's judgement).
    Cluster,
}

/// The roles of a host, as far as the benchmark cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    pub control_plane: bool,
    pub etcd: bool,
    /// Runs a kubelet (control-plane and worker hosts).
    pub node: bool,
}

impl Scope {
    pub fn covers(self, roles: Roles) -> bool {
        match self {
            Scope::ControlPlane => roles.control_plane,
            Scope::Etcd => roles.etcd,
            Scope::Nodes => roles.node,
            Scope::Hosts => roles.control_plane || roles.etcd || roles.node,
            Scope::Cluster => false,
        }
    }
}

/// A configuration file a component reads, named on its command line by a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFile {
    /// KubeletConfiguration.
    Kubelet,
    /// etcd takes every setting from it (`--config-file`): no flag of its own is on its
    /// command line.
    Etcd,
    /// KubeSchedulerConfiguration.
    Scheduler,
    /// KubeProxyConfiguration.
    KubeProxy,
    /// The API server's EncryptionConfiguration (its `secret:` values are blanked on the host
    /// before the text leaves it).
    Encryption,
}

impl ConfigFile {
    pub const ALL: [ConfigFile; 5] = [
        ConfigFile::Kubelet,
        ConfigFile::Etcd,
        ConfigFile::Scheduler,
        ConfigFile::KubeProxy,
        ConfigFile::Encryption,
    ];

    pub fn path(self) -> &'static str {
        match self {
            ConfigFile::Kubelet => KUBELET_CONFIG,
            ConfigFile::Etcd => ETCD_CONFIG,
            ConfigFile::Scheduler => SCHEDULER_CONFIG,
            ConfigFile::KubeProxy => PROXY_CONFIG,
            ConfigFile::Encryption => ENCRYPTION_CONFIG,
        }
    }

    /// The process that reads it.
    pub fn process(self) -> &'static str {
        match self {
            ConfigFile::Kubelet => KUBELET,
            ConfigFile::Etcd => ETCD,
            ConfigFile::Scheduler => SCHEDULER,
            ConfigFile::KubeProxy => PROXY,
            ConfigFile::Encryption => APISERVER,
        }
    }

    /// The flag by which that process is given the file.
    pub fn flag(self) -> &'static str {
        match self {
            ConfigFile::Etcd => "--config-file",
            ConfigFile::Encryption => "--encryption-provider-config",
            _ => "--config",
        }
    }

    /// Copies of the file the process may be given instead: the systemd credential
    /// (`LoadCredential=`) a service not run as root reads, copied from the file when it starts.
    pub fn copies(self) -> &'static [&'static str] {
        match self {
            ConfigFile::Etcd => &[ETCD_CONFIG_CREDENTIAL],
            _ => &[],
        }
    }
}

/// What a flag's or a key's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    /// Present, with a value.
    Set,
    /// Not present at all.
    Unset,
    /// This value (booleans as Go reads them: `true`, `True`, `1`...).
    Equals(&'static str),
    /// One of these values.
    OneOf(&'static [&'static str]),
    NotEquals(&'static str),
    /// A comma-separated list (or a YAML list) including this item.
    Has(&'static str),
    /// A list without this item.
    HasNot(&'static str),
    /// A whole number at least this.
    AtLeast(i64),
    /// A non-empty list of items each of which is one of these.
    OnlyFrom(&'static [&'static str]),
    /// A number or duration other than zero.
    NotZero,
    /// `host:port` on a loopback address.
    Loopback,
}

/// What a flag or key that is not there counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absent {
    /// Not met.
    Fail,
    /// Met: the benchmark accepts the setting's absence.
    Pass,
    /// The component's documented default applies, and is tested.
    Default(&'static str),
}

/// Which files a file audit looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    /// These files; each must exist.
    Each(&'static [&'static str]),
    /// Those of these files that exist.
    IfPresent(&'static [&'static str]),
    /// Everything found under `dir` whose name matches `name` (a glob, `*` for any
    /// characters): regular files only, or (`dirs`) everything, `dir` itself included.
    /// Finding nothing is a failure unless `may_be_empty`.
    Under {
        dir: &'static str,
        name: &'static str,
        dirs: bool,
        may_be_empty: bool,
    },
}

/// A question about the cluster's objects, answered through kubectl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterCheck {
    /// No ClusterRoleBinding grants `cluster-admin` but the built-in one of that name.
    ClusterAdminBindings,
    /// An authenticated user with no role of its own may not do this in any namespace
    /// (`kubectl auth can-i`).
    Denied {
        verb: &'static str,
        resource: &'static str,
    },
    /// No Role or ClusterRole has a `*` among its API groups, resources, verbs or URLs,
    /// Kubernetes' own default roles (label `kubernetes.io/bootstrapping=rbac-defaults`) aside:
    /// they use wildcards by design.
    WildcardRoles,
    /// Every namespace's `default` ServiceAccount says `automountServiceAccountToken: false`.
    DefaultServiceAccounts,
    /// No pod runs under its namespace's `default` ServiceAccount with a token mounted: a pod
    /// that needs the API has a ServiceAccount of its own.
    TokensOnDefaultServiceAccount,
    /// No RoleBinding or ClusterRoleBinding names the group `system:masters`, Kubernetes'
    /// own `cluster-admin` binding aside (label `kubernetes.io/bootstrapping=rbac-defaults`:
    /// the API server puts it back at every start). What keeps the group unused is that no
    /// credential on a host carries it ([`Audit::NoCertificateInGroup`]).
    MastersBindings,
    /// No pod asks for this.
    Pods(PodRule),
    /// Every namespace has at least one NetworkPolicy.
    NetworkPolicies,
}

/// What a pod (or one of its containers) may not ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodRule {
    Privileged,
    HostPid,
    HostIpc,
    HostNetwork,
    /// `allowPrivilegeEscalation: true` on a container (not set is accepted, as the benchmark
    /// does).
    PrivilegeEscalation,
}

/// How a control is audited. A control is met when every one of its audits passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audit {
    /// Files' permission bits (no bit beyond `max_mode`) and owner (`user:group`).
    Files {
        files: Files,
        max_mode: Option<u32>,
        owner: Option<&'static str>,
    },
    /// A flag on the command line of every running instance of a process.
    Flag {
        process: &'static str,
        flag: &'static str,
        test: Test,
        absent: Absent,
    },
    /// A key (dotted path; `*` for every list item or map value, a number for one item) of a
    /// configuration file, which the running process must have been given (the file, or one
    /// of its [`ConfigFile::copies`]: then the copy is read). When `flag` is on the process's
    /// command line it wins over the file, as it does in the kubelet.
    Key {
        config: ConfigFile,
        key: &'static str,
        flag: Option<&'static str>,
        test: Test,
        absent: Absent,
    },
    /// Two files do not hold the same bytes (a CA of its own); met when `from` is absent.
    Distinct {
        file: &'static str,
        from: &'static str,
    },
    /// No certificate on the host (the PKI directory, the kubelet's own, the kubeconfigs'
    /// client certificates) has this group (O=) in its subject.
    NoCertificateInGroup(&'static str),
    /// A question about the cluster's objects.
    Cluster(ClusterCheck),
    /// No mechanical audit: what a person must judge.
    Manual(&'static str),
}

impl Audit {
    /// Audited on each host in the control's scope (not once for the cluster).
    pub fn on_hosts(&self) -> bool {
        !matches!(self, Audit::Cluster(_) | Audit::Manual(_))
    }
}

/// One control of the benchmark.
#[derive(Debug, Clone, Copy)]
pub struct Control {
    pub id: &'static str,
    pub text: &'static str,
    pub scope: Scope,
    pub audits: &'static [Audit],
}

/// The row of control `id`.
pub fn control(id: &str) -> &'static Control {
    CONTROLS
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no control {id}"))
}

// ------------------------------------------------------------------------------------------
// k8s-boot's paths and processes
// ------------------------------------------------------------------------------------------

pub const APISERVER: &str = "kube-apiserver";
pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";
pub const SCHEDULER: &str = "kube-scheduler";
pub const ETCD: &str = "etcd";
pub const KUBELET: &str = "kubelet";
pub const PROXY: &str = "kube-proxy";

pub const APISERVER_UNIT: &str = "/etc/systemd/system/kube-apiserver.service";
pub const CONTROLLER_MANAGER_UNIT: &str = "/etc/systemd/system/kube-controller-manager.service";
pub const SCHEDULER_UNIT: &str = "/etc/systemd/system/kube-scheduler.service";
pub const ETCD_UNIT: &str = "/etc/systemd/system/etcd.service";
pub const KUBELET_UNIT: &str = "/etc/systemd/system/kubelet.service";

pub const AUTHENTICATION_CONFIG: &str = "/etc/kubernetes/authentication-config.yaml";
pub const ADMISSION_CONFIG: &str = "/etc/kubernetes/admission-config.yaml";
pub const AUDIT_POLICY: &str = "/etc/kubernetes/audit-policy.yaml";
pub const ENCRYPTION_CONFIG: &str = "/etc/kubernetes/encryption-config.yaml";
pub const SCHEDULER_CONFIG: &str = "/etc/kubernetes/kube-scheduler.yaml";
pub const ETCD_CONFIG: &str = "/etc/etcd/etcd.yaml";
pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
pub const PROXY_CONFIG: &str = "/var/lib/kube-proxy/config.yaml";

pub const ADMIN_KUBECONFIG: &str = "/etc/kubernetes/admin.kubeconfig";
pub const CONTROLLER_MANAGER_KUBECONFIG: &str = "/etc/kubernetes/controller-manager.kubeconfig";
pub const SCHEDULER_KUBECONFIG: &str = "/etc/kubernetes/scheduler.kubeconfig";
pub const KUBELET_KUBECONFIG: &str = "/etc/kubernetes/kubelet.kubeconfig";
pub const PROXY_KUBECONFIG: &str = "/etc/kubernetes/kube-proxy.kubeconfig";

pub const PKI: &str = "/etc/kubernetes/pki";
pub const KUBERNETES_CA: &str = "/etc/kubernetes/pki/ca.crt";
pub const ETCD_CA: &str = "/etc/kubernetes/pki/etcd/ca.crt";
/// The kubelet's rotated client certificates.
pub const KUBELET_PKI: &str = "/var/lib/kubelet/pki";
pub const CNI_CONFIG_DIR: &str = "/etc/cni/net.d";
/// host-local IPAM's reservations (the CNI plugins write them).
pub const CNI_IPAM_DIR: &str = "/var/lib/cni/networks";
pub const ETCD_DATA_DIR: &str = "/var/lib/etcd";
/// Where systemd puts etcd's credentials (`%d` of its unit) when it loads them.
pub const ETCD_CREDENTIALS: &str = "/run/credentials/etcd.service";
pub const ETCD_CONFIG_CREDENTIAL: &str = "/run/credentials/etcd.service/etcd.yaml";
/// The etcd CA, or its copy among etcd's credentials.
const ETCD_CA_FILES: &[&str] = &[ETCD_CA, "/run/credentials/etcd.service/ca.crt"];

/// The API server's "pod specification": its unit and the configuration files it names.
const APISERVER_FILES: &[&str] = &[
    APISERVER_UNIT,
    AUTHENTICATION_CONFIG,
    ADMISSION_CONFIG,
    AUDIT_POLICY,
    ENCRYPTION_CONFIG,
];
const CONTROLLER_MANAGER_FILES: &[&str] = &[CONTROLLER_MANAGER_UNIT];
const SCHEDULER_FILES: &[&str] = &[SCHEDULER_UNIT, SCHEDULER_CONFIG];
const ETCD_FILES: &[&str] = &[ETCD_UNIT, ETCD_CONFIG];

/// The cipher suites the benchmark accepts for the API server (1.2.29).
pub const APISERVER_CIPHERS: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// The cipher suites the benchmark accepts for the kubelet (4.2.12).
pub const KUBELET_CIPHERS: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
];

/// The encryption providers the benchmark accepts first in the list (1.2.28).
pub const STRONG_PROVIDERS: &[&str] = &["aescbc", "kms", "secretbox"];

// ------------------------------------------------------------------------------------------
// The controls
// ------------------------------------------------------------------------------------------

const CP: Scope = Scope::ControlPlane;
const ETCD_HOSTS: Scope = Scope::Etcd;
const NODES: Scope = Scope::Nodes;
const HOSTS: Scope = Scope::Hosts;
const CLUSTER: Scope = Scope::Cluster;

const fn row(
    id: &'static str,
    text: &'static str,
    scope: Scope,
    audits: &'static [Audit],
) -> Control {
    Control {
        id,
        text,
        scope,
        audits,
    }
}

const fn mode(files: Files, max: u32) -> Audit {
    Audit::Files {
        files,
        max_mode: Some(max),
        owner: None,
    }
}

const fn owner(files: Files, owner: &'static str) -> Audit {
    Audit::Files {
        files,
        max_mode: None,
        owner: Some(owner),
    }
}

const fn each(paths: &'static [&'static str]) -> Files {
    Files::Each(paths)
}

/// The files found under `dir` (`dirs`: with the directories, `dir` included).
const fn under(dir: &'static str, name: &'static str, dirs: bool) -> Files {
    Files::Under {
        dir,
        name,
        dirs,
        may_be_empty: false,
    }
}

const fn flag(process: &'static str, flag: &'static str, test: Test, absent: Absent) -> Audit {
    Audit::Flag {
        process,
        flag,
        test,
        absent,
    }
}

const fn apiserver(flag_name: &'static str, test: Test, absent: Absent) -> Audit {
    flag(APISERVER, flag_name, test, absent)
}

const fn controller_manager(flag_name: &'static str, test: Test, absent: Absent) -> Audit {
    flag(CONTROLLER_MANAGER, flag_name, test, absent)
}

/// A kubelet setting: its flag when on the command line, else the config file's key.
const fn kubelet(key: &'static str, flag: &'static str, test: Test, absent: Absent) -> Audit {
    Audit::Key {
        config: ConfigFile::Kubelet,
        key,
        flag: Some(flag),
        test,
        absent,
    }
}

/// A key of a configuration file whose component has no flag for it (or ignores the flag).
const fn key(config: ConfigFile, key: &'static str, test: Test, absent: Absent) -> Audit {
    Audit::Key {
        config,
        key,
        flag: None,
        test,
        absent,
    }
}

const fn etcd(k: &'static str, test: Test, absent: Absent) -> Audit {
    key(ConfigFile::Etcd, k, test, absent)
}

const fn cluster(check: ClusterCheck) -> Audit {
    Audit::Cluster(check)
}

const fn pods(rule: PodRule) -> Audit {
    Audit::Cluster(ClusterCheck::Pods(rule))
}

const fn denied(verb: &'static str, resource: &'static str) -> Audit {
    Audit::Cluster(ClusterCheck::Denied { verb, resource })
}

use Absent::{Default as Defaults, Fail as Required, Pass as Optional};
use Test::{AtLeast, Equals, Has, HasNot, NotEquals, NotZero, OneOf, OnlyFrom, Set, Unset};

/// Every control of the benchmark, in its order (laid out by hand, one row per control).
#[rustfmt::skip]
pub const CONTROLS: &[Control] = &[
    // 1.1 Control plane node configuration files
    row("1.1.1", "API server unit and the configuration files it names: mode 600 or stricter", CP,
        &[mode(each(APISERVER_FILES), 0o600)]),
    row("1.1.2", "API server unit and the configuration files it names: owned by root:root", CP,
        &[owner(each(APISERVER_FILES), "root:root")]),
    row("1.1.3", "controller-manager unit: mode 600 or stricter", CP,
        &[mode(each(CONTROLLER_MANAGER_FILES), 0o600)]),
    row("1.1.4", "controller-manager unit: owned by root:root", CP,
        &[owner(each(CONTROLLER_MANAGER_FILES), "root:root")]),
    row("1.1.5", "scheduler unit and configuration: mode 600 or stricter", CP,
        &[mode(each(SCHEDULER_FILES), 0o600)]),
    row("1.1.6", "scheduler unit and configuration: owned by root:root", CP,
        &[owner(each(SCHEDULER_FILES), "root:root")]),
    row("1.1.7", "etcd unit and configuration: mode 600 or stricter", ETCD_HOSTS,
        &[mode(each(ETCD_FILES), 0o600)]),
    row("1.1.8", "etcd unit and configuration: owned by root:root", ETCD_HOSTS,
        &[owner(each(ETCD_FILES), "root:root")]),
    row("1.1.9", "CNI configuration and IPAM files: mode 600 or stricter", NODES,
        &[
            mode(under(CNI_CONFIG_DIR, "*", false), 0o600),
            mode(Files::Under { dir: CNI_IPAM_DIR, name: "*", dirs: false, may_be_empty: true }, 0o600),
        ]),
    row("1.1.10", "CNI configuration and IPAM files: owned by root:root", NODES,
        &[
            owner(under(CNI_CONFIG_DIR, "*", false), "root:root"),
            owner(Files::Under { dir: CNI_IPAM_DIR, name: "*", dirs: false, may_be_empty: true }, "root:root"),
        ]),
    row("1.1.11", "etcd data directory: mode 700 or stricter", ETCD_HOSTS,
        &[mode(each(&[ETCD_DATA_DIR]), 0o700)]),
    row("1.1.12", "etcd data directory: owned by etcd:etcd", ETCD_HOSTS,
        &[owner(each(&[ETCD_DATA_DIR]), "etcd:etcd")]),
    row("1.1.13", "admin kubeconfig: mode 600 or stricter", CP,
        &[mode(each(&[ADMIN_KUBECONFIG]), 0o600)]),
    row("1.1.14", "admin kubeconfig: owned by root:root", CP,
        &[owner(each(&[ADMIN_KUBECONFIG]), "root:root")]),
    row("1.1.15", "scheduler kubeconfig: mode 600 or stricter", CP,
        &[mode(each(&[SCHEDULER_KUBECONFIG]), 0o600)]),
    row("1.1.16", "scheduler kubeconfig: owned by root:root", CP,
        &[owner(each(&[SCHEDULER_KUBECONFIG]), "root:root")]),
    row("1.1.17", "controller-manager kubeconfig: mode 600 or stricter", CP,
        &[mode(each(&[CONTROLLER_MANAGER_KUBECONFIG]), 0o600)]),
    row("1.1.18", "controller-manager kubeconfig: owned by root:root", CP,
        &[owner(each(&[CONTROLLER_MANAGER_KUBECONFIG]), "root:root")]),
    row("1.1.19", "PKI directory, its subdirectories and files: owned by root:root", HOSTS,
        &[owner(under(PKI, "*", true), "root:root")]),
    row("1.1.20", "PKI certificates: mode 644 or stricter", HOSTS,
        &[mode(under(PKI, "*.crt", false), 0o644)]),
    row("1.1.21", "PKI keys: mode 600 or stricter", HOSTS,
        &[mode(under(PKI, "*.key", false), 0o600)]),
    // 1.2 API server
    row("1.2.1", "API server: --anonymous-auth=false", CP,
        &[apiserver("--anonymous-auth", Equals("false"), Required)]),
    row("1.2.2", "API server: no --token-auth-file", CP,
        &[apiserver("--token-auth-file", Unset, Optional)]),
    row("1.2.3", "API server: admission plugin DenyServiceExternalIPs enabled", CP,
        &[apiserver("--enable-admission-plugins", Has("DenyServiceExternalIPs"), Required)]),
    row("1.2.4", "API server: client certificate and key towards the kubelets", CP,
        &[
            apiserver("--kubelet-client-certificate", Set, Required),
            apiserver("--kubelet-client-key", Set, Required),
        ]),
    row("1.2.5", "API server: kubelets' serving certificates verified against a CA", CP,
        &[apiserver("--kubelet-certificate-authority", Set, Required)]),
    row("1.2.6", "API server: authorization mode not AlwaysAllow", CP,
        &[apiserver("--authorization-mode", HasNot("AlwaysAllow"), Required)]),
    row("1.2.7", "API server: authorization mode includes Node", CP,
        &[apiserver("--authorization-mode", Has("Node"), Required)]),
    row("1.2.8", "API server: authorization mode includes RBAC", CP,
        &[apiserver("--authorization-mode", Has("RBAC"), Required)]),
    row("1.2.9", "API server: admission plugin EventRateLimit enabled", CP,
        &[apiserver("--enable-admission-plugins", Has("EventRateLimit"), Required)]),
    row("1.2.10", "API server: admission plugin AlwaysAdmit not enabled", CP,
        &[apiserver("--enable-admission-plugins", HasNot("AlwaysAdmit"), Optional)]),
    row("1.2.11", "API server: admission plugin AlwaysPullImages enabled", CP,
        &[apiserver("--enable-admission-plugins", Has("AlwaysPullImages"), Required)]),
    row("1.2.12", "API server: admission plugin ServiceAccount not disabled", CP,
        &[apiserver("--disable-admission-plugins", HasNot("ServiceAccount"), Optional)]),
    row("1.2.13", "API server: admission plugin NamespaceLifecycle not disabled", CP,
        &[apiserver("--disable-admission-plugins", HasNot("NamespaceLifecycle"), Optional)]),
    row("1.2.14", "API server: admission plugin NodeRestriction enabled", CP,
        &[apiserver("--enable-admission-plugins", Has("NodeRestriction"), Required)]),
    row("1.2.15", "API server: --profiling=false", CP,
        &[apiserver("--profiling", Equals("false"), Required)]),
    row("1.2.16", "API server: audit log path set", CP,
        &[apiserver("--audit-log-path", Set, Required)]),
    row("1.2.17", "API server: audit logs kept 30 days or more", CP,
        &[apiserver("--audit-log-maxage", AtLeast(30), Required)]),
    row("1.2.18", "API server: 10 or more audit log files kept", CP,
        &[apiserver("--audit-log-maxbackup", AtLeast(10), Required)]),
    row("1.2.19", "API server: audit log files of 100 MB or more", CP,
        &[apiserver("--audit-log-maxsize", AtLeast(100), Required)]),
    row("1.2.20", "API server: request timeout as appropriate", CP,
        &[Audit::Manual("whether the API server's request timeout (60 s unless --request-timeout says otherwise) suits the cluster's slowest legitimate requests")]),
    row("1.2.21", "API server: service account tokens looked up in etcd", CP,
        &[apiserver("--service-account-lookup", Equals("true"), Defaults("true"))]),
    row("1.2.22", "API server: service account public key file set", CP,
        &[apiserver("--service-account-key-file", Set, Required)]),
    row("1.2.23", "API server: client certificate and key towards etcd", CP,
        &[
            apiserver("--etcd-certfile", Set, Required),
            apiserver("--etcd-keyfile", Set, Required),
        ]),
    row("1.2.24", "API server: serving certificate and key", CP,
        &[
            apiserver("--tls-cert-file", Set, Required),
            apiserver("--tls-private-key-file", Set, Required),
        ]),
    row("1.2.25", "API server: client CA file set", CP,
        &[apiserver("--client-ca-file", Set, Required)]),
    row("1.2.26", "API server: etcd's CA file set", CP,
        &[apiserver("--etcd-cafile", Set, Required)]),
    row("1.2.27", "API server: encryption provider configuration set", CP,
        &[apiserver("--encryption-provider-config", Set, Required)]),
    row("1.2.28", "API server: every resource encrypted first with aescbc, kms or secretbox", CP,
        &[key(ConfigFile::Encryption, "resources.*.providers.0", OnlyFrom(STRONG_PROVIDERS), Required)]),
    row("1.2.29", "API server: strong cipher suites only", CP,
        &[apiserver("--tls-cipher-suites", OnlyFrom(APISERVER_CIPHERS), Required)]),
    row("1.2.30", "API server: service account tokens' expiration not extended", CP,
        &[apiserver("--service-account-extend-token-expiration", Equals("false"), Required)]),
    // 1.3 Controller manager
    row("1.3.1", "controller-manager: terminated pods garbage-collected past a threshold", CP,
        &[controller_manager("--terminated-pod-gc-threshold", Set, Required)]),
    row("1.3.2", "controller-manager: --profiling=false", CP,
        &[controller_manager("--profiling", Equals("false"), Required)]),
    row("1.3.3", "controller-manager: one service account credential per controller", CP,
        &[controller_manager("--use-service-account-credentials", NotEquals("false"), Required)]),
    row("1.3.4", "controller-manager: service account private key file set", CP,
        &[controller_manager("--service-account-private-key-file", Set, Required)]),
    row("1.3.5", "controller-manager: root CA file set", CP,
        &[controller_manager("--root-ca-file", Set, Required)]),
    row("1.3.6", "controller-manager: RotateKubeletServerCertificate not turned off", CP,
        &[controller_manager("--feature-gates", HasNot("RotateKubeletServerCertificate=false"), Optional)]),
    row("1.3.7", "controller-manager: bound to 127.0.0.1", CP,
        &[controller_manager("--bind-address", Equals("127.0.0.1"), Optional)]),
    // 1.4 Scheduler
    row("1.4.1", "scheduler: profiling off (enableProfiling, the --profiling flag being ignored with --config)", CP,
        &[key(ConfigFile::Scheduler, "enableProfiling", Equals("false"), Defaults("true"))]),
    row("1.4.2", "scheduler: bound to 127.0.0.1", CP,
        &[flag(SCHEDULER, "--bind-address", Equals("127.0.0.1"), Optional)]),
    // 2 etcd
    row("2.1", "etcd: serving certificate and key for clients", ETCD_HOSTS,
        &[
            etcd("client-transport-security.cert-file", Set, Required),
            etcd("client-transport-security.key-file", Set, Required),
        ]),
    row("2.2", "etcd: clients must present a certificate", ETCD_HOSTS,
        &[etcd("client-transport-security.client-cert-auth", Equals("true"), Required)]),
    row("2.3", "etcd: no self-signed certificates for clients (auto-tls)", ETCD_HOSTS,
        &[etcd("client-transport-security.auto-tls", Equals("false"), Defaults("false"))]),
    row("2.4", "etcd: certificate and key for peers", ETCD_HOSTS,
        &[
            etcd("peer-transport-security.cert-file", Set, Required),
            etcd("peer-transport-security.key-file", Set, Required),
        ]),
    row("2.5", "etcd: peers must present a certificate", ETCD_HOSTS,
        &[etcd("peer-transport-security.client-cert-auth", Equals("true"), Required)]),
    row("2.6", "etcd: no self-signed certificates for peers (auto-tls)", ETCD_HOSTS,
        &[etcd("peer-transport-security.auto-tls", Equals("false"), Defaults("false"))]),
    row("2.7", "etcd: a CA of its own, not the cluster's", ETCD_HOSTS,
        &[
            etcd("client-transport-security.trusted-ca-file", OneOf(ETCD_CA_FILES), Required),
            etcd("peer-transport-security.trusted-ca-file", OneOf(ETCD_CA_FILES), Required),
            Audit::Distinct { file: ETCD_CA, from: KUBERNETES_CA },
        ]),
    // 3.1 Authentication and authorization
    row("3.1.1", "no client certificates for users", CLUSTER,
        &[Audit::Manual("how people authenticate: k8s-boot's admin kubeconfig holds a client certificate, which cannot be revoked before it expires; OIDC is the operator's to add")]),
    row("3.1.2", "no service account tokens for users", CLUSTER,
        &[Audit::Manual("whether any person authenticates with a ServiceAccount token; k8s-boot hands none out")]),
    row("3.1.3", "no bootstrap tokens for users", CLUSTER,
        &[Audit::Manual("whether anyone created bootstrap tokens for people; k8s-boot creates none (nodes get certificates)")]),
    // 3.2 Logging
    row("3.2.1", "API server: an audit policy", CP,
        &[apiserver("--audit-policy-file", Set, Required)]),
    row("3.2.2", "the audit policy covers the key security concerns", CLUSTER,
        &[Audit::Manual("whether the audit policy (k8s-boot's logs every request's metadata, no bodies) covers the cluster's concerns")]),
    // 4.1 Worker node configuration files
    row("4.1.1", "kubelet unit: mode 600 or stricter", NODES,
        &[mode(each(&[KUBELET_UNIT]), 0o600)]),
    row("4.1.2", "kubelet unit: owned by root:root", NODES,
        &[owner(each(&[KUBELET_UNIT]), "root:root")]),
    row("4.1.3", "kube-proxy kubeconfig, if present: mode 600 or stricter", NODES,
        &[mode(Files::IfPresent(&[PROXY_KUBECONFIG]), 0o600)]),
    row("4.1.4", "kube-proxy kubeconfig, if present: owned by root:root", NODES,
        &[owner(Files::IfPresent(&[PROXY_KUBECONFIG]), "root:root")]),
    row("4.1.5", "kubelet kubeconfig: mode 600 or stricter", NODES,
        &[mode(each(&[KUBELET_KUBECONFIG]), 0o600)]),
    row("4.1.6", "kubelet kubeconfig: owned by root:root", NODES,
        &[owner(each(&[KUBELET_KUBECONFIG]), "root:root")]),
    row("4.1.7", "kubelet's client CA file: mode 644 or stricter", NODES,
        &[mode(each(&[KUBERNETES_CA]), 0o644)]),
    row("4.1.8", "kubelet's client CA file: owned by root:root", NODES,
        &[owner(each(&[KUBERNETES_CA]), "root:root")]),
    row("4.1.9", "kubelet configuration file: mode 600 or stricter", NODES,
        &[mode(each(&[KUBELET_CONFIG]), 0o600)]),
    row("4.1.10", "kubelet configuration file: owned by root:root", NODES,
        &[owner(each(&[KUBELET_CONFIG]), "root:root")]),
    // 4.2 Kubelet
    row("4.2.1", "kubelet: anonymous requests refused", NODES,
        &[kubelet("authentication.anonymous.enabled", "--anonymous-auth", Equals("false"), Required)]),
    row("4.2.2", "kubelet: authorization mode not AlwaysAllow", NODES,
        &[kubelet("authorization.mode", "--authorization-mode", HasNot("AlwaysAllow"), Required)]),
    row("4.2.3", "kubelet: client CA file set", NODES,
        &[kubelet("authentication.x509.clientCAFile", "--client-ca-file", Set, Required)]),
    row("4.2.4", "kubelet: read-only port off", NODES,
        &[kubelet("readOnlyPort", "--read-only-port", Equals("0"), Defaults("0"))]),
    row("4.2.5", "kubelet: streaming connections time out", NODES,
        &[kubelet("streamingConnectionIdleTimeout", "--streaming-connection-idle-timeout", NotZero, Defaults("4h0m0s"))]),
    row("4.2.6", "kubelet: manages its iptables utility chains", NODES,
        &[kubelet("makeIPTablesUtilChains", "--make-iptables-util-chains", Equals("true"), Defaults("true"))]),
    row("4.2.7", "kubelet: no --hostname-override", NODES,
        &[flag(KUBELET, "--hostname-override", Unset, Optional)]),
    row("4.2.8", "kubelet: events recorded (eventRecordQPS not negative)", NODES,
        &[kubelet("eventRecordQPS", "--event-qps", AtLeast(0), Defaults("50"))]),
    row("4.2.9", "kubelet: serving certificate and key", NODES,
        &[
            kubelet("tlsCertFile", "--tls-cert-file", Set, Required),
            kubelet("tlsPrivateKeyFile", "--tls-private-key-file", Set, Required),
        ]),
    row("4.2.10", "kubelet: client certificate rotation not turned off", NODES,
        // The benchmark accepts the setting's absence.
        &[kubelet("rotateCertificates", "--rotate-certificates", Equals("true"), Optional)]),
    row("4.2.11", "kubelet: RotateKubeletServerCertificate not turned off", NODES,
        &[
            key(ConfigFile::Kubelet, "featureGates.RotateKubeletServerCertificate", NotEquals("false"), Defaults("true")),
            flag(KUBELET, "--feature-gates", HasNot("RotateKubeletServerCertificate=false"), Optional),
        ]),
    row("4.2.12", "kubelet: strong cipher suites only", NODES,
        &[kubelet("tlsCipherSuites", "--tls-cipher-suites", OnlyFrom(KUBELET_CIPHERS), Required)]),
    row("4.2.13", "kubelet: a limit on each pod's PIDs", NODES,
        // -1, the default, is no limit.
        &[kubelet("podPidsLimit", "--pod-max-pids", AtLeast(1), Required)]),
    row("4.2.14", "kubelet: RuntimeDefault seccomp profile for every container without one", NODES,
        &[kubelet("seccompDefault", "--seccomp-default", Equals("true"), Defaults("false"))]),
    // 4.3 kube-proxy
    row("4.3.1", "kube-proxy: metrics served on localhost only", NODES,
        &[Audit::Key {
            config: ConfigFile::KubeProxy,
            key: "metricsBindAddress",
            flag: Some("--metrics-bind-address"),
            test: Test::Loopback,
            absent: Defaults("127.0.0.1:10249"),
        }]),
    // 5.1 RBAC and service accounts
    row("5.1.1", "cluster-admin bound only where required", CLUSTER,
        &[cluster(ClusterCheck::ClusterAdminBindings)]),
    row("5.1.2", "access to Secrets minimized", CLUSTER,
        &[denied("get", "secrets"), denied("list", "secrets"), denied("watch", "secrets")]),
    row("5.1.3", "wildcards in Roles and ClusterRoles minimized", CLUSTER,
        &[cluster(ClusterCheck::WildcardRoles)]),
    row("5.1.4", "access to create pods minimized", CLUSTER,
        &[denied("create", "pods")]),
    row("5.1.5", "default service accounts not actively used", CLUSTER,
        &[cluster(ClusterCheck::DefaultServiceAccounts)]),
    row("5.1.6", "service account tokens mounted only where necessary", CLUSTER,
        &[cluster(ClusterCheck::TokensOnDefaultServiceAccount)]),
    row("5.1.7", "the system:masters group avoided", HOSTS,
        &[Audit::NoCertificateInGroup("system:masters"), cluster(ClusterCheck::MastersBindings)]),
    row("5.1.8", "bind, impersonate and escalate permissions limited", CLUSTER,
        &[Audit::Manual("who may bind, escalate and impersonate: every holder of cluster-admin may")]),
    row("5.1.9", "access to create PersistentVolumes minimized", CLUSTER,
        &[Audit::Manual("who may create PersistentVolumes (a hostPath volume reaches the node's files)")]),
    row("5.1.10", "access to the nodes/proxy subresource minimized", CLUSTER,
        &[Audit::Manual("who may use nodes/proxy, which reaches every kubelet's API")]),
    row("5.1.11", "access to approve CertificateSigningRequests minimized", CLUSTER,
        &[Audit::Manual("who may approve CSRs; k8s-boot lets nodes renew only their own client certificates")]),
    row("5.1.12", "access to webhook configuration objects minimized", CLUSTER,
        &[Audit::Manual("who may create or change validating and mutating webhook configurations")]),
    row("5.1.13", "access to create service account tokens minimized", CLUSTER,
        &[Audit::Manual("who may create tokens through serviceaccounts/token")]),
    // 5.2 Pod Security Standards
    row("5.2.1", "at least one active policy control mechanism", CLUSTER,
        &[Audit::Manual("whether Pod Security at baseline, k8s-boot's default for unlabelled namespaces, is enough for each workload namespace")]),
    row("5.2.2", "privileged containers minimized", CLUSTER,
        &[pods(PodRule::Privileged)]),
    row("5.2.3", "pods sharing the host's PID namespace minimized", CLUSTER,
        &[pods(PodRule::HostPid)]),
    row("5.2.4", "pods sharing the host's IPC namespace minimized", CLUSTER,
        &[pods(PodRule::HostIpc)]),
    row("5.2.5", "pods in the host's network namespace minimized", CLUSTER,
        &[pods(PodRule::HostNetwork)]),
    row("5.2.6", "containers allowing privilege escalation minimized", CLUSTER,
        &[pods(PodRule::PrivilegeEscalation)]),
    row("5.2.7", "root containers minimized", CLUSTER,
        &[Audit::Manual("Pod Security baseline admits containers running as root; a namespace that must refuse them needs restricted")]),
    row("5.2.8", "containers with NET_RAW minimized", CLUSTER,
        &[Audit::Manual("Pod Security baseline admits NET_RAW (flannel needs it); restricted drops it")]),
    row("5.2.9", "containers with added capabilities minimized", CLUSTER,
        &[Audit::Manual("which capabilities each workload needs is its owner's call")]),
    row("5.2.10", "Windows HostProcess containers minimized", CLUSTER,
        &[Audit::Manual("k8s-boot's nodes are Linux, and Pod Security baseline refuses HostProcess containers anyway")]),
    row("5.2.11", "hostPath volumes minimized", CLUSTER,
        &[Audit::Manual("Pod Security baseline refuses hostPath volumes outside namespaces labelled privileged (kube-flannel)")]),
    row("5.2.12", "host ports minimized", CLUSTER,
        &[Audit::Manual("Pod Security baseline refuses host ports outside namespaces labelled privileged")]),
    // 5.3 Network policies and CNI
    row("5.3.1", "the CNI supports NetworkPolicies", CLUSTER,
        &[Audit::Manual("flannel, the pod network k8s-boot installs, does not enforce NetworkPolicy; a policy engine must be added beside it")]),
    row("5.3.2", "every namespace has NetworkPolicies", CLUSTER,
        &[cluster(ClusterCheck::NetworkPolicies)]),
    // 5.4 Secrets management
    row("5.4.1", "Secrets as files rather than environment variables", CLUSTER,
        &[Audit::Manual("how each workload reads its Secrets is its design")]),
    row("5.4.2", "external secret storage considered", CLUSTER,
        &[Audit::Manual("whether an external secret store is needed; k8s-boot encrypts Secrets in etcd (secretbox)")]),
    // 5.5 Extensible admission control
    row("5.5.1", "image provenance through ImagePolicyWebhook", CLUSTER,
        &[Audit::Manual("image provenance needs a verification service of the operator's choosing")]),
    // 5.6 General policies
    row("5.6.1", "namespaces as administrative boundaries", CLUSTER,
        &[Audit::Manual("how the cluster's resources are split into namespaces")]),
    row("5.6.2", "seccomp profile RuntimeDefault in pod definitions", CLUSTER,
        &[Audit::Manual("pod definitions are the workloads'; the kubelets apply RuntimeDefault to every container without a profile (4.2.14)")]),
    row("5.6.3", "security contexts on pods and containers", CLUSTER,
        &[Audit::Manual("the workloads' security contexts are their owners' to set; k8s-boot's add-ons set theirs")]),
    row("5.6.4", "the default namespace not used", CLUSTER,
        &[Audit::Manual("whether anything but the kubernetes Service lives in the default namespace")]),
];

// ------------------------------------------------------------------------------------------
// Findings
// ------------------------------------------------------------------------------------------

/// Runs a shell command on a host as root: its exit status and standard output.
pub type Exec = Box<dyn Fn(&str) -> (i32, String)>;

/// A host to audit.
pub struct CisHost {
    pub name: String,
    pub roles: Roles,
    pub exec: Exec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// Not met: why.
    Fail(String),
    /// Not met, and docs/SECURITY.md says why: its line.
    Explained(String),
    /// For a person to judge: what.
    Manual(String),
}

impl Status {
    pub fn label(&self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail(_) => "FAIL",
            Status::Explained(_) => "EXPLAINED",
            Status::Manual(_) => "MANUAL",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Status::Pass => "",
            Status::Fail(s) | Status::Explained(s) | Status::Manual(s) => s,
        }
    }
}

/// One control on one host (or `cluster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub id: String,
    pub host: String,
    pub status: Status,
}

/// The host name of the findings about the cluster as a whole.
pub const CLUSTER_HOST: &str = "cluster";
/// The host name of the findings about docs/SECURITY.md itself.
pub const DOC_HOST: &str = "docs/SECURITY.md";

/// The hosts of a lab `k8s-boot lab up --hosts 6` started in `dir` (lb1, m1-m3 etcd and
/// control plane, w1-w2 workers), audited over the lab's SSH as root.
pub fn six_host_lab(dir: &std::path::Path) -> Vec<CisHost> {
    let roles = |control_plane: bool, node: bool| Roles {
        control_plane,
        etcd: control_plane,
        node,
    };
    [
        ("lb1", "10.77.0.11", roles(false, false)),
        ("m1", "10.77.0.12", roles(true, true)),
        ("m2", "10.77.0.13", roles(true, true)),
        ("m3", "10.77.0.14", roles(true, true)),
        ("w1", "10.77.0.15", roles(false, true)),
        ("w2", "10.77.0.16", roles(false, true)),
    ]
    .into_iter()
    .map(|(name, addr, roles)| {
        let (dir, addr) = (dir.to_path_buf(), addr.to_string());
        CisHost {
            name: name.to_string(),
            roles,
            exec: Box::new(move |command: &str| {
                let out = super::lab_ssh(&dir, &addr, command);
                (
                    out.status.code().unwrap_or(-1),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                )
            }),
        }
    })
    .collect()
}

/// Whether any finding is a failure.
pub fn failed(findings: &[Finding]) -> bool {
    findings.iter().any(|f| matches!(f.status, Status::Fail(_)))
}

/// Every control on every host it concerns and on the cluster, with docs/SECURITY.md's
/// explanations applied. `kubectl` runs kubectl as the cluster's admin with these arguments
/// and returns its standard output, whatever its exit status.
pub fn audit(hosts: &[CisHost], kubectl: &dyn Fn(&[&str]) -> String) -> Vec<Finding> {
    let doc = std::fs::read_to_string(SECURITY_MD).unwrap_or_default();
    audit_against(hosts, kubectl, &doc)
}

/// [`audit`] with the explanations taken from `security_md` (the text of docs/SECURITY.md).
pub fn audit_against(
    hosts: &[CisHost],
    kubectl: &dyn Fn(&[&str]) -> String,
    security_md: &str,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let explained = match explanations(security_md) {
        Ok(e) => e,
        Err(e) => {
            findings.push(Finding {
                id: "-".into(),
                host: DOC_HOST.into(),
                status: Status::Fail(e),
            });
            BTreeMap::new()
        }
    };
    let facts: Vec<Result<HostFacts, String>> = hosts.iter().map(gather).collect();
    let mut cluster = ClusterView::new(kubectl);
    for control in CONTROLS {
        findings.extend(evaluate(control, hosts, &facts, &mut cluster));
    }
    // A host whose answer could not be read fails every control, explained or not.
    let unread: BTreeSet<&str> = hosts
        .iter()
        .zip(&facts)
        .filter(|(_, facts)| facts.is_err())
        .map(|(host, _)| host.name.as_str())
        .collect();
    for f in &mut findings {
        if unread.contains(f.host.as_str()) {
            continue;
        }
        if let (Status::Fail(_), Some(why)) = (&f.status, explained.get(&f.id)) {
            f.status = Status::Explained(why.clone());
        }
    }
    for id in explained.keys() {
        if !CONTROLS.iter().any(|c| c.id == id) {
            findings.push(Finding {
                id: id.clone(),
                host: DOC_HOST.into(),
                status: Status::Fail(format!(
                    "explained in {DOC_HOST}, but the benchmark has no control {id}"
                )),
            });
            continue;
        }
        let of_id: Vec<&Finding> = findings.iter().filter(|f| &f.id == id).collect();
        if !of_id.is_empty() && of_id.iter().all(|f| f.status == Status::Pass) {
            findings.push(Finding {
                id: id.clone(),
                host: DOC_HOST.into(),
                status: Status::Fail(format!(
                    "explained in {DOC_HOST}, but met everywhere it applies: remove its line"
                )),
            });
        }
    }
    findings
}

/// The findings of one control: one per host in its scope (its host audits), one for the
/// cluster (its kubectl audits), or one Manual.
fn evaluate(
    control: &Control,
    hosts: &[CisHost],
    facts: &[Result<HostFacts, String>],
    cluster: &mut ClusterView,
) -> Vec<Finding> {
    let finding = |host: &str, status: Status| Finding {
        id: control.id.to_string(),
        host: host.to_string(),
        status,
    };
    let mut out = Vec::new();
    let manual: Vec<&str> = control
        .audits
        .iter()
        .filter_map(|a| match a {
            Audit::Manual(why) => Some(*why),
            _ => None,
        })
        .collect();
    if !manual.is_empty() {
        out.push(finding(CLUSTER_HOST, Status::Manual(manual.join("; "))));
    }
    if control.audits.iter().any(Audit::on_hosts) {
        for (host, facts) in hosts.iter().zip(facts) {
            if !control.scope.covers(host.roles) {
                continue;
            }
            let status = match facts {
                Err(e) => Status::Fail(e.clone()),
                Ok(facts) => verdict(
                    control
                        .audits
                        .iter()
                        .filter(|a| a.on_hosts())
                        .map(|a| check_facts(a, facts)),
                ),
            };
            out.push(finding(&host.name, status));
        }
    }
    if control
        .audits
        .iter()
        .any(|a| matches!(a, Audit::Cluster(_)))
    {
        let status = verdict(control.audits.iter().filter_map(|a| match a {
            Audit::Cluster(c) => Some(cluster.check(*c)),
            _ => None,
        }));
        out.push(finding(CLUSTER_HOST, status));
    }
    out
}

fn verdict(results: impl Iterator<Item = Result<(), String>>) -> Status {
    let problems: Vec<String> = results.filter_map(Result::err).collect();
    if problems.is_empty() {
        Status::Pass
    } else {
        Status::Fail(problems.join("; "))
    }
}

/// The explanations of docs/SECURITY.md: control id -> its line, from the table under
/// [`DOC_TABLE_HEADER`] in the section [`DOC_SECTION`].
pub fn explanations(markdown: &str) -> Result<BTreeMap<String, String>, String> {
    let mut lines = markdown.lines();
    if !lines.by_ref().any(|l| l.trim_end() == DOC_SECTION) {
        return Err(format!("no section \"{DOC_SECTION}\""));
    }
    let section: Vec<&str> = lines.take_while(|l| !l.starts_with("## ")).collect();
    let Some(start) = section.iter().position(|l| l.trim() == DOC_TABLE_HEADER) else {
        return Err(format!(
            "no table \"{DOC_TABLE_HEADER}\" in \"{DOC_SECTION}\""
        ));
    };
    let mut out = BTreeMap::new();
    for line in section[start + 1..].iter().map(|l| l.trim()) {
        if !line.starts_with('|') {
            break;
        }
        let inner = line.trim_start_matches('|').trim_end_matches('|');
        let Some((id, why)) = inner.split_once('|') else {
            continue;
        };
        let id = id.trim().trim_matches('`');
        if id.chars().all(|c| c == '-' || c == ':' || c == ' ') {
            continue; // the separator row
        }
        let shaped = id.contains('.') && id.split('.').all(|p| p.parse::<u32>().is_ok());
        if !shaped {
            return Err(format!(
                "table row \"{line}\": \"{id}\" is not a control id"
            ));
        }
        let why = why.trim();
        if why.is_empty() {
            return Err(format!("control {id}: no reason given"));
        }
        if out.insert(id.to_string(), why.to_string()).is_some() {
            return Err(format!("control {id} is explained twice"));
        }
    }
    Ok(out)
}

/// A summary like kube-bench's: one line per finding that is not a pass (the hosts of equal
/// findings together), then the counts.
pub fn report(findings: &[Finding]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "== {BENCHMARK} ({} controls) ==", CONTROLS.len());
    let mut lines: Vec<(&str, &Status, Vec<&str>)> = Vec::new();
    for f in findings.iter().filter(|f| f.status != Status::Pass) {
        match lines
            .iter_mut()
            .find(|(id, status, _)| *id == f.id && *status == &f.status)
        {
            Some(line) => line.2.push(&f.host),
            None => lines.push((&f.id, &f.status, vec![&f.host])),
        }
    }
    for (id, status, hosts) in &lines {
        let _ = writeln!(
            out,
            "[{}] {id} {}: {}",
            status.label(),
            hosts.join(","),
            status.detail()
        );
    }
    let count = |label: &str| {
        findings
            .iter()
            .filter(|f| f.status.label() == label)
            .count()
    };
    let _ = writeln!(out, "== Summary ==");
    for label in ["PASS", "FAIL", "EXPLAINED", "MANUAL"] {
        let _ = writeln!(out, "{} checks {label}", count(label));
    }
    out
}

// ------------------------------------------------------------------------------------------
// One command per host
// ------------------------------------------------------------------------------------------

/// The marker that opens each part of the gathering command's output.
const MARK: &str = "@@cis ";

/// Blanks the value of every `secret:` key of a configuration file before it leaves the host.
const REDACT: &str = r#"'s/^([[:space:]-]*secret:).*/\1 "redacted"/'"#;

/// What the controls in scope of a host need from it.
#[derive(Default)]
struct Needs {
    paths: BTreeSet<&'static str>,
    trees: BTreeSet<&'static str>,
    configs: BTreeSet<&'static str>,
    digests: BTreeSet<&'static str>,
    certificates: bool,
}

impl Needs {
    fn of(roles: Roles) -> Needs {
        let mut needs = Needs::default();
        for control in CONTROLS.iter().filter(|c| c.scope.covers(roles)) {
            for audit in control.audits {
                match audit {
                    Audit::Files { files, .. } => match files {
                        Files::Each(paths) | Files::IfPresent(paths) => {
                            needs.paths.extend(paths.iter().copied())
                        }
                        Files::Under { dir, .. } => {
                            needs.trees.insert(dir);
                        }
                    },
                    Audit::Key { config, .. } => {
                        needs.configs.insert(config.path());
                        needs.configs.extend(config.copies().iter().copied());
                    }
                    Audit::Distinct { file, from } => {
                        needs.digests.insert(file);
                        needs.digests.insert(from);
                    }
                    Audit::NoCertificateInGroup(_) => needs.certificates = true,
                    Audit::Flag { .. } | Audit::Cluster(_) | Audit::Manual(_) => {}
                }
            }
        }
        needs
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn quoted(paths: &BTreeSet<&str>) -> String {
    paths.iter().map(|p| quote(p)).collect::<Vec<_>>().join(" ")
}

/// The one shell command run on a host with these roles. Its output: parts opened by a line
/// `@@cis <part> [path]`, ending with `@@cis end`.
pub fn gather_script(roles: Roles) -> String {
    let needs = Needs::of(roles);
    let stat = "stat -c '%a|%U|%G|%F|%n'";
    let mut s = String::from("export LC_ALL=C\n");
    if !needs.paths.is_empty() {
        let _ = writeln!(s, "echo '{MARK}stat'");
        let _ = writeln!(s, "{stat} -- {} 2>/dev/null", quoted(&needs.paths));
    }
    if !needs.trees.is_empty() {
        let _ = writeln!(s, "echo '{MARK}stat'");
        let _ = writeln!(
            s,
            "find {} -exec {stat} -- {{}} + 2>/dev/null",
            quoted(&needs.trees)
        );
    }
    // Each process's arguments as the kernel has them, separated by US (0x1f), one per line.
    let _ = writeln!(s, "echo '{MARK}cmdline'");
    s.push_str(
        "for f in /proc/[0-9]*/cmdline; do tr '\\000' '\\037' < \"$f\"; echo; done 2>/dev/null\n",
    );
    for path in &needs.configs {
        let p = quote(path);
        let _ = writeln!(
            s,
            "if [ -f {p} ]; then printf '{MARK}file %s\\n' {p}; sed -E {REDACT} {p}; echo; fi"
        );
    }
    if !needs.digests.is_empty() {
        let _ = writeln!(s, "echo '{MARK}sha256'");
        let _ = writeln!(s, "sha256sum -- {} 2>/dev/null", quoted(&needs.digests));
    }
    if needs.certificates {
        // Certificates only: the PEM blocks of the files, the client certificates of the
        // kubeconfigs; never a key.
        let _ = writeln!(
            s,
            "find {} -type f \\( -name '*.crt' -o -name '*.pem' \\) 2>/dev/null | while read -r f; do \
             printf '{MARK}cert %s\\n' \"$f\"; \
             sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' \"$f\"; done",
            quoted(&[PKI, KUBELET_PKI].into_iter().collect())
        );
        let _ = writeln!(
            s,
            "for f in /etc/kubernetes/*.kubeconfig; do [ -f \"$f\" ] || continue; \
             printf '{MARK}kubeconfig %s\\n' \"$f\"; \
             sed -n 's/^[[:space:]]*client-certificate-data:[[:space:]]*//p' \"$f\"; done"
        );
    }
    let _ = writeln!(s, "echo '{MARK}end'");
    s
}

/// A file's mode, owner and type as `stat` shows them.
#[derive(Debug, Clone)]
struct Stat {
    mode: u32,
    owner: String,
    kind: String,
}

/// What a host answered.
#[derive(Debug, Default)]
struct HostFacts {
    stats: BTreeMap<String, Stat>,
    /// Each process's arguments, the program first.
    processes: Vec<Vec<String>>,
    files: BTreeMap<String, String>,
    digests: BTreeMap<String, String>,
    /// Where each certificate was found, its PEM (or why it cannot be read).
    certificates: Vec<(String, Result<String, String>)>,
    certificates_gathered: bool,
    complete: bool,
}

fn parse_facts(output: &str) -> HostFacts {
    enum Part {
        None,
        Stat,
        Cmdline,
        File(String),
        Sha256,
        Cert,
        Kubeconfig(String),
    }
    let mut facts = HostFacts::default();
    let mut part = Part::None;
    for line in output.lines() {
        if let Some(header) = line.strip_prefix(MARK) {
            let (name, arg) = header.split_once(' ').unwrap_or((header, ""));
            part = match name {
                "stat" => Part::Stat,
                "cmdline" => Part::Cmdline,
                "file" => {
                    facts.files.insert(arg.to_string(), String::new());
                    Part::File(arg.to_string())
                }
                "sha256" => Part::Sha256,
                "cert" => {
                    facts.certificates_gathered = true;
                    facts
                        .certificates
                        .push((arg.to_string(), Ok(String::new())));
                    Part::Cert
                }
                "kubeconfig" => {
                    facts.certificates_gathered = true;
                    Part::Kubeconfig(arg.to_string())
                }
                "end" => {
                    facts.complete = true;
                    Part::None
                }
                _ => Part::None,
            };
            continue;
        }
        match &part {
            Part::None => {}
            Part::Stat => {
                let fields: Vec<&str> = line.splitn(5, '|').collect();
                if let [mode, user, group, kind, path] = fields[..] {
                    if let Ok(mode) = u32::from_str_radix(mode, 8) {
                        facts.stats.insert(
                            path.to_string(),
                            Stat {
                                mode,
                                owner: format!("{user}:{group}"),
                                kind: kind.to_string(),
                            },
                        );
                    }
                }
            }
            Part::Cmdline => {
                let args: Vec<String> = if line.contains('\u{1f}') {
                    line.split('\u{1f}')
                        .filter(|a| !a.is_empty())
                        .map(str::to_string)
                        .collect()
                } else {
                    line.split_whitespace().map(str::to_string).collect()
                };
                if !args.is_empty() {
                    facts.processes.push(args);
                }
            }
            Part::File(path) => {
                let text = facts.files.get_mut(path).expect("opened with its header");
                text.push_str(line);
                text.push('\n');
            }
            Part::Sha256 => {
                if let Some((digest, path)) = line.split_once(' ') {
                    let path = path.trim_start_matches([' ', '*']);
                    facts.digests.insert(path.to_string(), digest.to_string());
                }
            }
            Part::Cert => {
                if let Some((_, Ok(pem))) = facts.certificates.last_mut() {
                    pem.push_str(line);
                    pem.push('\n');
                }
            }
            Part::Kubeconfig(path) => {
                let data = line.trim().trim_matches('"');
                let pem = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .map_err(|e| format!("client-certificate-data is not base64 ({e})"));
                facts.certificates.push((path.clone(), pem));
            }
        }
    }
    facts
}

/// Runs the gathering command on a host and reads its answer.
fn gather(host: &CisHost) -> Result<HostFacts, String> {
    let (status, output) = (host.exec)(&gather_script(host.roles));
    let facts = parse_facts(&output);
    if status != 0 || !facts.complete {
        let tail: String = output.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
        return Err(format!(
            "the audit command failed on {} (exit status {status}): {tail}",
            host.name
        ));
    }
    Ok(facts)
}

/// One host audit against a host's answer to [`gather_script`] (for tests of the evaluator).
pub fn check_host(audit: &Audit, output: &str) -> Result<(), String> {
    assert!(audit.on_hosts(), "{audit:?} is not audited on hosts");
    let facts = parse_facts(output);
    if !facts.complete {
        return Err("incomplete answer".into());
    }
    check_facts(audit, &facts)
}

/// A host's answer composed part by part, in the format [`gather_script`] produces.
#[derive(Debug, Default, Clone)]
pub struct Answer {
    text: String,
}

impl Answer {
    pub fn new() -> Answer {
        Answer::default()
    }

    /// A file (`kind` as `stat -c %F` names it: `regular file`, `directory`...).
    pub fn stat(mut self, path: &str, mode: u32, owner: &str, kind: &str) -> Answer {
        let (user, group) = owner.split_once(':').expect("user:group");
        let _ = write!(
            self.text,
            "{MARK}stat\n{mode:o}|{user}|{group}|{kind}|{path}\n"
        );
        self
    }

    pub fn file(self, path: &str, mode: u32, owner: &str) -> Answer {
        self.stat(path, mode, owner, "regular file")
    }

    pub fn dir(self, path: &str, mode: u32, owner: &str) -> Answer {
        self.stat(path, mode, owner, "directory")
    }

    /// A running process's arguments, the program first.
    pub fn process(mut self, args: &[&str]) -> Answer {
        let _ = write!(self.text, "{MARK}cmdline\n{}\u{1f}\n", args.join("\u{1f}"));
        self
    }

    /// A configuration file's text.
    pub fn config(mut self, path: &str, text: &str) -> Answer {
        let _ = write!(self.text, "{MARK}file {path}\n{text}\n");
        self
    }

    pub fn digest(mut self, path: &str, sha256: &str) -> Answer {
        let _ = write!(self.text, "{MARK}sha256\n{sha256}  {path}\n");
        self
    }

    /// A certificate file's PEM.
    pub fn certificate(mut self, path: &str, pem: &str) -> Answer {
        let _ = write!(self.text, "{MARK}cert {path}\n{pem}\n");
        self
    }

    /// A kubeconfig's client certificate (the PEM, base64-encoded as a kubeconfig has it).
    pub fn kubeconfig(mut self, path: &str, pem: &str) -> Answer {
        let data = base64::engine::general_purpose::STANDARD.encode(pem);
        let _ = write!(self.text, "{MARK}kubeconfig {path}\n{data}\n");
        self
    }

    /// The whole answer, its end marker included.
    pub fn done(&self) -> String {
        format!("{}{MARK}end\n", self.text)
    }
}

// ------------------------------------------------------------------------------------------
// Host audits
// ------------------------------------------------------------------------------------------

fn check_facts(audit: &Audit, facts: &HostFacts) -> Result<(), String> {
    match *audit {
        Audit::Files {
            files,
            max_mode,
            owner,
        } => check_files(facts, files, max_mode, owner),
        Audit::Flag {
            process,
            flag,
            test,
            absent,
        } => {
            let instances = running(facts, process)?;
            for args in instances {
                match flag_value(args, flag) {
                    Some(value) => test.check(&value).map_err(|e| format!("{flag} {e}"))?,
                    None => when_absent(&format!("{process} {flag}"), test, absent)?,
                }
            }
            Ok(())
        }
        Audit::Key {
            config,
            key,
            flag,
            test,
            absent,
        } => check_key(facts, config, key, flag, test, absent),
        Audit::Distinct { file, from } => {
            match (facts.digests.get(file), facts.digests.get(from)) {
                (None, _) => Err(format!("{file} is missing")),
                (Some(_), None) => Ok(()),
                (Some(a), Some(b)) if a == b => Err(format!("{file} is the same file as {from}")),
                _ => Ok(()),
            }
        }
        Audit::NoCertificateInGroup(group) => check_certificates(facts, group),
        Audit::Cluster(_) | Audit::Manual(_) => Ok(()),
    }
}

/// The command lines of the running instances of `process` (by its program's file name).
fn running<'a>(facts: &'a HostFacts, process: &str) -> Result<Vec<&'a [String]>, String> {
    let instances: Vec<&[String]> = facts
        .processes
        .iter()
        .filter(|args| args[0].rsplit('/').next() == Some(process))
        .map(Vec::as_slice)
        .collect();
    if instances.is_empty() {
        return Err(format!("{process} is not running"));
    }
    Ok(instances)
}

/// The value of `--name` on a command line: `--name=value`, `--name value`, or `true` for a
/// bare `--name`; the last one when repeated.
fn flag_value(args: &[String], name: &str) -> Option<String> {
    let mut value = None;
    let mut i = 1;
    while i < args.len() {
        let arg = &args[i];
        if let Some(v) = arg.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            value = Some(v.to_string());
        } else if arg == name {
            match args.get(i + 1) {
                Some(next) if !next.starts_with('-') => {
                    value = Some(next.clone());
                    i += 1;
                }
                _ => value = Some("true".into()),
            }
        }
        i += 1;
    }
    value
}

fn when_absent(what: &str, test: Test, absent: Absent) -> Result<(), String> {
    match absent {
        Absent::Pass => Ok(()),
        Absent::Fail if test == Test::Unset => Ok(()),
        Absent::Fail => Err(format!("{what} is not set")),
        Absent::Default(default) => test
            .check(default)
            .map_err(|e| format!("{what} is not set, and its default {e}")),
    }
}

fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

fn check_files(
    facts: &HostFacts,
    files: Files,
    max_mode: Option<u32>,
    owner: Option<&str>,
) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut selected: Vec<(&str, &Stat)> = Vec::new();
    match files {
        Files::Each(paths) => {
            for path in paths {
                match facts.stats.get(*path) {
                    Some(stat) => selected.push((path, stat)),
                    None => problems.push(format!("{path} is missing")),
                }
            }
        }
        Files::IfPresent(paths) => {
            for path in paths {
                if let Some(stat) = facts.stats.get(*path) {
                    selected.push((path, stat));
                }
            }
        }
        Files::Under {
            dir,
            name,
            dirs,
            may_be_empty,
        } => {
            let inside = format!("{dir}/");
            let found: Vec<(&str, &Stat)> = facts
                .stats
                .iter()
                .filter(|(path, stat)| {
                    (path.as_str() == dir || path.starts_with(&inside))
                        && (dirs || stat.kind.starts_with("regular"))
                        && glob(name, path.rsplit('/').next().unwrap_or(path))
                })
                .map(|(path, stat)| (path.as_str(), stat))
                .collect();
            if found.is_empty() && !may_be_empty {
                problems.push(format!("no file {name} found in {dir}"));
            }
            selected.extend(found);
        }
    }
    for (path, stat) in selected {
        if let Some(max) = max_mode {
            if stat.mode & !max != 0 {
                problems.push(format!(
                    "{path} has mode {:o}, more than {max:o}",
                    stat.mode
                ));
            }
        }
        if let Some(owner) = owner {
            if stat.owner != owner {
                problems.push(format!("{path} is owned by {}, not {owner}", stat.owner));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(listed(problems))
    }
}

fn check_key(
    facts: &HostFacts,
    config: ConfigFile,
    key: &str,
    flag: Option<&str>,
    test: Test,
    absent: Absent,
) -> Result<(), String> {
    let (process, source, given_by) = (config.process(), config.path(), config.flag());
    for args in running(facts, process)? {
        // The file it reads: the source, or a copy of it.
        let path = match flag_value(args, given_by) {
            Some(p) if p == source || config.copies().contains(&p.as_str()) => p,
            Some(p) => return Err(format!("{process} reads {given_by}={p}, not {source}")),
            None => return Err(format!("{process} runs without {given_by}={source}")),
        };
        if let Some(value) = flag.and_then(|f| flag_value(args, f)) {
            let f = flag.expect("checked");
            test.check(&value)
                .map_err(|e| format!("{process} {f} (over {path}) {e}"))?;
            continue;
        }
        let Some(text) = facts.files.get(&path) else {
            return Err(format!("{path} is missing"));
        };
        let root: Yaml =
            serde_yaml::from_str(text).map_err(|e| format!("{path} is not YAML: {e}"))?;
        let values = lookup(&root, key);
        if values.is_empty() {
            when_absent(&format!("{path}: {key}"), test, absent)?;
        }
        for value in values {
            test.check(&text_of(value))
                .map_err(|e| format!("{path}: {key} {e}"))?;
        }
    }
    Ok(())
}

/// The values at a dotted path (`*` for every item or value, a number for one item).
fn lookup<'a>(root: &'a Yaml, path: &str) -> Vec<&'a Yaml> {
    let mut nodes = vec![root];
    for segment in path.split('.') {
        let mut next = Vec::new();
        for node in nodes {
            match (node, segment) {
                (Yaml::Sequence(items), "*") => next.extend(items.iter()),
                (Yaml::Mapping(map), "*") => next.extend(map.values()),
                (Yaml::Sequence(items), index) => {
                    if let Some(item) = index.parse::<usize>().ok().and_then(|i| items.get(i)) {
                        next.push(item);
                    }
                }
                (Yaml::Mapping(map), name) => {
                    if let Some(value) = map.get(name) {
                        next.push(value);
                    }
                }
                _ => {}
            }
        }
        nodes = next;
    }
    nodes.retain(|n| !n.is_null());
    nodes
}

/// A value as text: a scalar itself, a list its items joined by commas, a map its keys.
fn text_of(value: &Yaml) -> String {
    match value {
        Yaml::Null => String::new(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        Yaml::String(s) => s.clone(),
        Yaml::Sequence(items) => items.iter().map(text_of).collect::<Vec<_>>().join(","),
        Yaml::Mapping(map) => map.keys().map(text_of).collect::<Vec<_>>().join(","),
        Yaml::Tagged(tagged) => text_of(&tagged.value),
    }
}

fn check_certificates(facts: &HostFacts, group: &str) -> Result<(), String> {
    if !facts.certificates_gathered {
        return Err("no certificate was gathered".into());
    }
    let mut problems = Vec::new();
    let mut seen = 0;
    for (place, pem) in &facts.certificates {
        let pem = match pem {
            Ok(pem) => pem,
            Err(e) => {
                problems.push(format!("{place}: {e}"));
                continue;
            }
        };
        for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
            seen += 1;
            let block = match block {
                Ok(block) => block,
                Err(e) => {
                    problems.push(format!("{place}: unreadable PEM ({e:?})"));
                    continue;
                }
            };
            match block.parse_x509() {
                Ok(cert) => {
                    let subject = cert.subject();
                    if subject.iter_organization().any(|o| o.as_str() == Ok(group)) {
                        problems.push(format!("{place} ({subject})"));
                    }
                }
                Err(e) => problems.push(format!("{place}: unreadable certificate ({e})")),
            }
        }
    }
    if seen == 0 && problems.is_empty() {
        return Err("no certificate found".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("group {group} in {}", listed(problems)))
    }
}

/// Problems joined, at most ten of them.
fn listed(mut items: Vec<String>) -> String {
    const SHOWN: usize = 10;
    let more = items.len().saturating_sub(SHOWN);
    items.truncate(SHOWN);
    let mut s = items.join(", ");
    if more > 0 {
        let _ = write!(s, " and {more} more");
    }
    s
}

// ------------------------------------------------------------------------------------------
// Values
// ------------------------------------------------------------------------------------------

/// A boolean as Go's strconv.ParseBool reads it.
fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn same(value: &str, wanted: &str) -> bool {
    match (go_bool(value), go_bool(wanted)) {
        (Some(a), Some(b)) if matches!(wanted, "true" | "false") => a == b,
        _ => value == wanted,
    }
}

fn items(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// One spelling per cipher suite: Go (and so every Kubernetes component) accepts
/// `..._CHACHA20_POLY1305` and `..._CHACHA20_POLY1305_SHA256` for the same ECDHE suite.
fn suite(name: &str) -> &str {
    if name.starts_with("TLS_ECDHE_") {
        name.strip_suffix("_SHA256")
            .filter(|n| n.ends_with("_CHACHA20_POLY1305"))
            .unwrap_or(name)
    } else {
        name
    }
}

impl Test {
    /// Whether `value` passes; if not, why, as the rest of a sentence whose subject is the
    /// setting ("is true, not false").
    pub fn check(self, value: &str) -> Result<(), String> {
        let value = value.trim();
        match self {
            Test::Set if value.is_empty() => Err("is empty".into()),
            Test::Set => Ok(()),
            Test::Unset => Err(format!("is set (to {value})")),
            Test::Equals(wanted) if same(value, wanted) => Ok(()),
            Test::Equals(wanted) => Err(format!("is {value}, not {wanted}")),
            Test::OneOf(wanted) if wanted.iter().any(|w| same(value, w)) => Ok(()),
            Test::OneOf(wanted) => Err(format!("is {value}, not one of {}", wanted.join(", "))),
            Test::NotEquals(unwanted) if same(value, unwanted) => Err(format!("is {value}")),
            Test::NotEquals(_) => Ok(()),
            Test::Has(item) if items(value).contains(&item) => Ok(()),
            Test::Has(item) => Err(format!("is {value}, without {item}")),
            Test::HasNot(item) if items(value).contains(&item) => {
                Err(format!("is {value}, with {item}"))
            }
            Test::HasNot(_) => Ok(()),
            Test::AtLeast(min) => match value.parse::<i64>() {
                Ok(n) if n >= min => Ok(()),
                Ok(_) => Err(format!("is {value}, less than {min}")),
                Err(_) => Err(format!("is {value}, not a whole number")),
            },
            Test::OnlyFrom(allowed) => {
                let list = items(value);
                if list.is_empty() {
                    return Err("is empty".into());
                }
                let bad: Vec<&str> = list
                    .into_iter()
                    .filter(|i| !allowed.iter().any(|a| suite(a) == suite(i)))
                    .collect();
                if bad.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "includes {}, which the benchmark does not accept",
                        bad.join(",")
                    ))
                }
            }
            Test::NotZero => {
                if value.chars().any(|c| c.is_ascii_digit() && c != '0') {
                    Ok(())
                } else {
                    Err(format!("is {value}: zero"))
                }
            }
            Test::Loopback => {
                let host = match value.rsplit_once(':') {
                    Some((host, port)) if port.parse::<u16>().is_ok() => host,
                    _ => value,
                };
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let loopback =
                    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
                if loopback {
                    Ok(())
                } else {
                    Err(format!("is {value}, not a loopback address"))
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// The cluster, through kubectl
// ------------------------------------------------------------------------------------------

/// The one listing of the cluster's objects section 5 reads.
pub const CLUSTER_QUERY: &[&str] = &[
    "get",
    "namespaces,serviceaccounts,pods,networkpolicies,roles,clusterroles,rolebindings,clusterrolebindings",
    "--all-namespaces",
    "-o",
    "json",
];

/// The user `kubectl auth can-i` asks for: no binding names it, so it holds only what every
/// authenticated user holds (impersonation adds `system:authenticated`).
pub const UNPRIVILEGED_USER: &str = "k8s-boot:cis-audit-unprivileged";

/// The `kubectl auth can-i` arguments of a [`ClusterCheck::Denied`].
pub fn can_i_args(verb: &str, resource: &str) -> Vec<String> {
    vec![
        "auth".into(),
        "can-i".into(),
        verb.into(),
        resource.into(),
        "--all-namespaces".into(),
        format!("--as={UNPRIVILEGED_USER}"),
    ]
}

struct ClusterView<'a> {
    kubectl: &'a dyn Fn(&[&str]) -> String,
    objects: Option<Result<Vec<Json>, String>>,
}

fn name_of(o: &Json) -> String {
    let meta = &o["metadata"];
    match (meta["namespace"].as_str(), meta["name"].as_str()) {
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        (None, Some(name)) => name.to_string(),
        _ => "(unnamed)".to_string(),
    }
}

fn offenders(what: &str, found: Vec<String>) -> Result<(), String> {
    if found.is_empty() {
        Ok(())
    } else {
        Err(format!("{what}: {}", listed(found)))
    }
}

impl<'a> ClusterView<'a> {
    fn new(kubectl: &'a dyn Fn(&[&str]) -> String) -> ClusterView<'a> {
        ClusterView {
            kubectl,
            objects: None,
        }
    }

    fn objects(&mut self) -> Result<&[Json], String> {
        let kubectl = self.kubectl;
        let objects = self.objects.get_or_insert_with(|| {
            let out = kubectl(CLUSTER_QUERY);
            match serde_json::from_str::<Json>(&out) {
                Ok(list) => match list["items"].as_array() {
                    Some(items) => Ok(items.clone()),
                    None => Err("kubectl get: no items in its answer".into()),
                },
                Err(e) => {
                    let start: String = out.chars().take(200).collect();
                    Err(format!("kubectl get: not JSON ({e}): {start}"))
                }
            }
        });
        objects.as_ref().map(Vec::as_slice).map_err(Clone::clone)
    }

    fn of_kind(&mut self, kind: &str) -> Result<Vec<Json>, String> {
        Ok(self
            .objects()?
            .iter()
            .filter(|o| o["kind"] == kind)
            .cloned()
            .collect())
    }

    fn check(&mut self, check: ClusterCheck) -> Result<(), String> {
        match check {
            ClusterCheck::ClusterAdminBindings => {
                let found = self
                    .of_kind("ClusterRoleBinding")?
                    .iter()
                    .filter(|b| {
                        b["roleRef"]["kind"] == "ClusterRole"
                            && b["roleRef"]["name"] == "cluster-admin"
                            && b["metadata"]["name"] != "cluster-admin"
                    })
                    .map(|b| format!("{} ({})", name_of(b), subjects(b)))
                    .collect();
                offenders("cluster-admin is also bound by", found)
            }
            ClusterCheck::Denied { verb, resource } => {
                let args = can_i_args(verb, resource);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = (self.kubectl)(&args);
                match out.split_whitespace().next() {
                    Some("no") => Ok(()),
                    Some("yes") => Err(format!(
                        "every authenticated user may {verb} {resource} in every namespace"
                    )),
                    _ => Err(format!("kubectl auth can-i {verb} {resource}: no answer")),
                }
            }
            ClusterCheck::WildcardRoles => {
                let mut found = Vec::new();
                for kind in ["Role", "ClusterRole"] {
                    for role in self.of_kind(kind)? {
                        let builtin = role["metadata"]["labels"]["kubernetes.io/bootstrapping"]
                            == "rbac-defaults";
                        let wild = role["rules"].as_array().is_some_and(|rules| {
                            rules.iter().any(|rule| {
                                ["apiGroups", "resources", "verbs", "nonResourceURLs"]
                                    .iter()
                                    .any(|field| {
                                        rule[*field]
                                            .as_array()
                                            .is_some_and(|v| v.iter().any(|x| x == "*"))
                                    })
                            })
                        });
                        if wild && !builtin {
                            found.push(format!("{kind} {}", name_of(&role)));
                        }
                    }
                }
                offenders("a wildcard in", found)
            }
            ClusterCheck::DefaultServiceAccounts => {
                let found = self
                    .of_kind("ServiceAccount")?
                    .iter()
                    .filter(|sa| {
                        sa["metadata"]["name"] == "default"
                            && sa["automountServiceAccountToken"] != false
                    })
                    .map(|sa| {
                        sa["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or("?")
                            .to_string()
                    })
                    .collect();
                offenders(
                    "the default ServiceAccount mounts its token by default in",
                    found,
                )
            }
            ClusterCheck::TokensOnDefaultServiceAccount => {
                let accounts = self.of_kind("ServiceAccount")?;
                let automount = |ns: &str, name: &str| {
                    accounts
                        .iter()
                        .find(|sa| {
                            sa["metadata"]["namespace"] == ns && sa["metadata"]["name"] == name
                        })
                        .and_then(|sa| sa["automountServiceAccountToken"].as_bool())
                };
                let found = self
                    .of_kind("Pod")?
                    .iter()
                    .filter(|pod| {
                        let spec = &pod["spec"];
                        let account = spec["serviceAccountName"]
                            .as_str()
                            .or(spec["serviceAccount"].as_str())
                            .unwrap_or("default");
                        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
                        let mounted = spec["automountServiceAccountToken"]
                            .as_bool()
                            .or_else(|| automount(ns, account))
                            .unwrap_or(true);
                        account == "default" && mounted
                    })
                    .map(name_of)
                    .collect();
                offenders(
                    "a token of the namespace's default ServiceAccount is mounted in",
                    found,
                )
            }
            ClusterCheck::MastersBindings => {
                let mut found = Vec::new();
                for kind in ["RoleBinding", "ClusterRoleBinding"] {
                    for binding in self.of_kind(kind)? {
                        let builtin = binding["metadata"]["labels"]["kubernetes.io/bootstrapping"]
                            == "rbac-defaults";
                        if builtin {
                            continue;
                        }
                        let masters = binding["subjects"].as_array().is_some_and(|s| {
                            s.iter()
                                .any(|s| s["kind"] == "Group" && s["name"] == "system:masters")
                        });
                        if masters {
                            found.push(format!("{kind} {}", name_of(&binding)));
                        }
                    }
                }
                offenders("system:masters is bound by", found)
            }
            ClusterCheck::Pods(rule) => {
                let found = self
                    .of_kind("Pod")?
                    .iter()
                    .flat_map(|pod| pod_offences(pod, rule))
                    .collect();
                let what = match rule {
                    PodRule::Privileged => "privileged",
                    PodRule::HostPid => "in the host's PID namespace",
                    PodRule::HostIpc => "in the host's IPC namespace",
                    PodRule::HostNetwork => "in the host's network namespace",
                    PodRule::PrivilegeEscalation => "allowing privilege escalation",
                };
                offenders(what, found)
            }
            ClusterCheck::NetworkPolicies => {
                let covered: BTreeSet<String> = self
                    .of_kind("NetworkPolicy")?
                    .iter()
                    .filter_map(|p| p["metadata"]["namespace"].as_str().map(str::to_string))
                    .collect();
                let found = self
                    .of_kind("Namespace")?
                    .iter()
                    .filter_map(|ns| ns["metadata"]["name"].as_str().map(str::to_string))
                    .filter(|ns| !covered.contains(ns))
                    .collect();
                offenders("no NetworkPolicy in namespace", found)
            }
        }
    }
}

fn subjects(binding: &Json) -> String {
    binding["subjects"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| {
                    format!(
                        "{} {}",
                        s["kind"].as_str().unwrap_or("?"),
                        s["name"].as_str().unwrap_or("?")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// The pod (`ns/pod`) or its containers (`ns/pod/container`) that break `rule`.
fn pod_offences(pod: &Json, rule: PodRule) -> Vec<String> {
    let spec = &pod["spec"];
    let whole = |field: &str| {
        if spec[field] == true {
            vec![name_of(pod)]
        } else {
            vec![]
        }
    };
    let containers = |field: &str| {
        ["initContainers", "containers", "ephemeralContainers"]
            .iter()
            .flat_map(|list| spec[*list].as_array().cloned().unwrap_or_default())
            .filter(|c| c["securityContext"][field] == true)
            .map(|c| format!("{}/{}", name_of(pod), c["name"].as_str().unwrap_or("?")))
            .collect::<Vec<_>>()
    };
    match rule {
        PodRule::Privileged => containers("privileged"),
        PodRule::PrivilegeEscalation => containers("allowPrivilegeEscalation"),
        PodRule::HostPid => whole("hostPID"),
        PodRule::HostIpc => whole("hostIPC"),
        PodRule::HostNetwork => whole("hostNetwork"),
    }
}
