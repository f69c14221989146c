//! The component catalog: one row per service k8s-boot runs, in start order.
//!
//! A row says everything the other modules need about a component: which install phase and
//! roles it belongs to, the release binaries it ships (name in `binaries.dir` -> path on the
//! host), the templates rendered for it, the TCP ports it listens on, how to tell it is
//! healthy and how to ask its version. Adding a component means adding a row here and its
//! templates under `templates/`.

use crate::inventory::{Cluster, Host, Role, APISERVER_PORT};
use serde::Serialize;
use std::net::IpAddr;

/// Where release binaries go on a host.
pub const BIN_DIR: &str = "/usr/local/bin";
/// Where CNI plugins go on a host.
pub const CNI_BIN_DIR: &str = "/opt/cni/bin";
/// Where certificates and keys go on a host.
pub const PKI_DIR: &str = "/etc/kubernetes/pki";

/// The install phases, in the order they run (see `install::phases` for their table).
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

/// A release binary: its file name in `binaries.dir` and where it goes on the host.
pub struct Binary {
    pub file: &'static str,
    pub target: &'static str,
}

/// A file rendered from a template for a component; it restarts the component on change.
pub struct Template {
    /// Template name under `templates/`.
    pub template: &'static str,
    /// Absolute path on the host.
    pub target: &'static str,
    pub mode: u32,
}

/// A shell command that succeeds once the component is healthy, and how long to wait.
#[derive(Clone, Copy)]
pub struct Health {
    pub command: fn(&Cluster, &Host) -> String,
    pub wait_secs: u64,
}

pub struct Component {
    /// The systemd unit: a service's name without `.service`, or a `.timer`.
    pub service: &'static str,
    pub phase: PhaseId,
    /// Hosts holding one of these roles run it.
    pub roles: &'static [Role],
    pub binaries: &'static [Binary],
    pub templates: &'static [Template],
    /// TCP ports it listens on (checked free by preflight before it is installed).
    pub ports: fn(&Cluster) -> Vec<u16>,
    pub health: Health,
    /// A shell command printing its version (for `status`).
    pub version: &'static str,
    /// A changed configuration is applied with `systemctl reload` (open connections
    /// survive) instead of a restart; a changed unit still restarts it.
    pub reloads: bool,
    /// A running instance restarts on one host at a time, healthy again before the next
    /// (etcd keeps its quorum, the LB an API server); first starts stay parallel (etcd
    /// members only become healthy together).
    pub rolling: bool,
    /// Its hosts are the load balancer's upstreams: a rolling restart holds the next host
    /// back until the LB has forgotten this host's failed connections
    /// ([`LB_FAIL_TIMEOUT_SECS`]); otherwise the LB can count two hosts down at once.
    pub lb_upstream: bool,
    /// Whether the cluster wants it at all (an inventory setting can switch it off); where
    /// it is off, a host that runs it has it stopped and its files removed.
    pub wanted: fn(&Cluster) -> bool,
    /// The system user it runs as, created by the prepare phase; `None`: root.
    pub user: Option<&'static str>,
}

/// The TLS cipher suites the API servers and kubelets accept (TLS 1.2; Go chooses TLS 1.3's
/// itself): forward-secret AEAD suites only.
pub const TLS_CIPHER_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// How long nginx on the LB hosts skips an upstream after its failed connections
/// (`fail_timeout`).
pub const LB_FAIL_TIMEOUT_SECS: u64 = 10;

/// Connection limits of nginx on the LB hosts: the API's, the chat's and the ingress's are
/// separate, so a flood of public traffic leaves the API its share of `worker_connections`
/// (8192 per worker).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LbLimits {
    /// API connections through one LB host at once.
    pub api_connections: u32,
    /// Chat connections through one LB host at once, and from one client address.
    pub chat_connections: u32,
    pub chat_connections_per_client: u32,
    /// Ingress (HTTP and HTTPS together) connections through one LB host at once, and from
    /// one client address (browsers open several).
    pub ingress_connections: u32,
    pub ingress_connections_per_client: u32,
}

pub const LB_LIMITS: LbLimits = LbLimits {
    api_connections: 4096,
    chat_connections: 1024,
    chat_connections_per_client: 16,
    ingress_connections: 2048,
    ingress_connections_per_client: 64,
};

/// The unit of the nftables rules guarding the chat's PROXY protocol NodePort.
pub const NODEPORT_FILTER: &str = "k8s-boot-nodeport-filter";

/// The user etcd runs as (its data directory is this user's, CIS 1.1.12).
pub const ETCD_USER: &str = "etcd";

/// Where systemd puts etcd's credentials (`LoadCredential=`): its configuration, keys and
/// certificates, readable by [`ETCD_USER`] while the files they come from stay root's.
pub const ETCD_CREDENTIALS_DIR: &str = "/run/credentials/etcd.service";

/// The timer of the scheduled etcd snapshots.
pub const BACKUP_TIMER: &str = "k8s-boot-etcd-backup.timer";

/// [`Component::wanted`] of the components every cluster has.
fn always(_: &Cluster) -> bool {
    true
}

use Role::{ControlPlane as Cp, Etcd, Lb, Worker};
/// Hosts that run a kubelet.
pub const NODE_ROLES: &[Role] = &[Cp, Worker];

/// `BIN_DIR/name` as a literal (the catalog's tests check it matches [`BIN_DIR`]).
macro_rules! bin_path {
    ($name:literal) => {
        concat!("/usr/local/bin/", $name)
    };
}

/// A release binary installed under [`BIN_DIR`], or a CNI plugin under [`CNI_BIN_DIR`].
macro_rules! bin {
    (cni $name:literal) => {
        Binary {
            file: concat!("cni/", $name),
            target: concat!("/opt/cni/bin/", $name),
        }
    };
    ($name:literal) => {
        Binary {
            file: $name,
            target: bin_path!($name),
        }
    };
}

const fn tpl(template: &'static str, target: &'static str, mode: u32) -> Template {
    Template {
        template,
        target,
        mode,
    }
}

/// `--version` whose last word is the version (the Kubernetes commands).
macro_rules! last_word_version {
    ($name:literal) => {
        concat!(
            bin_path!($name),
            " --version 2>/dev/null | awk '{print $NF}'"
        )
    };
}

/// The address as written inside a URL (`[fd00::1]` for IPv6).
pub fn url_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The client URL of `host`'s etcd member.
pub fn etcd_client_url(host: &Host) -> String {
    format!("https://{}:2379", url_address(host.address))
}

/// etcdctl on an etcd host, against its own member, with the health-check client's
/// certificate.
pub fn etcdctl(host: &Host) -> String {
    let (pki, endpoint) = (PKI_DIR, etcd_client_url(host));
    format!(
        "{BIN_DIR}/etcdctl --endpoints={endpoint} --cacert={pki}/etcd/ca.crt \
         --cert={pki}/etcd/healthcheck-client.crt --key={pki}/etcd/healthcheck-client.key \
         --command-timeout=3s"
    )
}

fn etcd_health(_: &Cluster, host: &Host) -> String {
    format!("{} endpoint health", etcdctl(host))
}

/// The host's own API server (not the endpoint, which another one answers while this one
/// restarts), asked anonymously: `/readyz` is one of the few paths anonymous requests may
/// reach, and no credential is spent on a probe.
fn apiserver_health(_: &Cluster, host: &Host) -> String {
    format!(
        "curl -sf --max-time 5 --cacert {PKI_DIR}/ca.crt https://{}:{APISERVER_PORT}/readyz",
        url_address(host.address)
    )
}

/// Settings a running service never reads again: a file whose content changes only in
/// these lines is written without a restart. etcd reads its `initial-*` settings only while
/// its data directory is empty, so a member joining or leaving does not restart the others.
pub const BOOTSTRAP_ONLY: &[(&str, &[&str])] = &[(
    "/etc/etcd/etcd.yaml",
    &[
        "initial-cluster:",
        "initial-cluster-state:",
        "initial-cluster-token:",
    ],
)];

/// Whether `old` and `new` (the contents of `path`) differ only in lines
/// [`BOOTSTRAP_ONLY`] lists for it.
pub fn differs_only_in_bootstrap_settings(path: &str, old: &[u8], new: &[u8]) -> bool {
    let Some((_, prefixes)) = BOOTSTRAP_ONLY.iter().find(|(p, _)| *p == path) else {
        return false;
    };
    let kept = |text: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(text)
            .lines()
            .filter(|l| !prefixes.iter().any(|p| l.starts_with(p)))
            .map(str::to_string)
            .collect()
    };
    kept(old) == kept(new)
}

/// Rows in start order: a host starts those it runs in this order.
pub const COMPONENTS: &[Component] = &[
    Component {
        service: "etcd",
        phase: PhaseId::Etcd,
        roles: &[Etcd],
        // etcdutl: `backup` checks snapshots and `restore` restores them on the host.
        binaries: &[bin!("etcd"), bin!("etcdctl"), bin!("etcdutl")],
        templates: &[
            tpl("etcd/etcd.yaml", "/etc/etcd/etcd.yaml", 0o600),
            tpl(
                "etcd/etcd.service",
                "/etc/systemd/system/etcd.service",
                0o600,
            ),
        ],
        ports: |_| vec![2379, 2380],
        health: Health {
            command: etcd_health,
            wait_secs: 90,
        },
        version: concat!(
            bin_path!("etcd"),
            " --version 2>/dev/null | sed -n 's/^etcd Version: //p'"
        ),
        reloads: false,
        rolling: true,
        lb_upstream: false,
        wanted: always,
        // Its keys reach it as systemd credentials; the data directory is its own.
        user: Some(ETCD_USER),
    },
    Component {
        // Scheduled snapshots (inventory `etcd.backup`): a timer, started like a service.
        service: BACKUP_TIMER,
        phase: PhaseId::Etcd,
        roles: &[Etcd],
        binaries: &[],
        templates: &[
            tpl(
                "etcd/etcd-backup.sh",
                "/usr/local/sbin/k8s-boot-etcd-backup",
                0o700,
            ),
            tpl(
                "etcd/etcd-backup.service",
                "/etc/systemd/system/k8s-boot-etcd-backup.service",
                0o600,
            ),
            tpl(
                "etcd/etcd-backup.timer",
                "/etc/systemd/system/k8s-boot-etcd-backup.timer",
                0o600,
            ),
        ],
        ports: |_| vec![],
        health: Health {
            command: |_, _| format!("systemctl is-active --quiet {BACKUP_TIMER}"),
            wait_secs: 30,
        },
        // For `status`: when it last ran.
        version: "echo \"last run $(systemctl show -p LastTriggerUSec --value k8s-boot-etcd-backup.timer)\"",
        reloads: false,
        rolling: false,
        lb_upstream: false,
        wanted: |c| c.inventory.etcd.backup.enabled,
        user: None,
    },
    Component {
        service: "nginx",
        phase: PhaseId::Lb,
        roles: &[Lb],
        binaries: &[], // the distribution's nginx, with its stream module
        templates: &[tpl("lb/nginx.conf", "/etc/nginx/nginx.conf", 0o644)],
        ports: |c| {
            let mut ports = vec![APISERVER_PORT];
            if c.inventory.chat.enabled {
                ports.push(c.inventory.chat.port);
            }
            let ingress = &c.inventory.ingress;
            if ingress.enabled {
                ports.extend([ingress.http_port, ingress.https_port]);
            }
            ports
        },
        health: Health {
            command: |_, _| {
                format!("systemctl is-active --quiet nginx && ss -Htln 'sport = :{APISERVER_PORT}' | grep -q .")
            },
            wait_secs: 30,
        },
        version: "nginx -v 2>&1 | sed 's|.*/||'",
        reloads: true,
        rolling: false,
        lb_upstream: false,
        wanted: always,
        user: None,
    },
    Component {
        service: "kube-apiserver",
        phase: PhaseId::ControlPlane,
        roles: &[Cp],
        binaries: &[
            bin!("kube-apiserver"),
            // The cluster phases run kubectl on a control-plane host.
            bin!("kubectl"),
        ],
        templates: &[
            tpl(
                "control-plane/kube-apiserver.service",
                "/etc/systemd/system/kube-apiserver.service",
                0o600,
            ),
            tpl(
                "control-plane/encryption-config.yaml",
                "/etc/kubernetes/encryption-config.yaml",
                0o600,
            ),
            tpl(
                "control-plane/audit-policy.yaml",
                "/etc/kubernetes/audit-policy.yaml",
                0o600,
            ),
            tpl(
                "control-plane/authentication-config.yaml",
                "/etc/kubernetes/authentication-config.yaml",
                0o600,
            ),
            tpl(
                "control-plane/admission-config.yaml",
                "/etc/kubernetes/admission-config.yaml",
                0o600,
            ),
        ],
        ports: |_| vec![APISERVER_PORT],
        health: Health {
            command: apiserver_health,
            wait_secs: 180,
        },
        version: last_word_version!("kube-apiserver"),
        reloads: false,
        rolling: true,
        lb_upstream: true,
        wanted: always,
        user: None,
    },
    Component {
        service: "kube-controller-manager",
        phase: PhaseId::ControlPlane,
        roles: &[Cp],
        binaries: &[bin!("kube-controller-manager")],
        templates: &[tpl(
            "control-plane/kube-controller-manager.service",
            "/etc/systemd/system/kube-controller-manager.service",
            0o600,
        )],
        ports: |_| vec![10257],
        health: Health {
            command: |_, _| "curl -skf --max-time 5 https://127.0.0.1:10257/healthz".into(),
            wait_secs: 90,
        },
        version: last_word_version!("kube-controller-manager"),
        reloads: false,
        rolling: false,
        lb_upstream: false,
        wanted: always,
        user: None,
    },
    Component {
        service: "kube-scheduler",
        phase: PhaseId::ControlPlane,
        roles: &[Cp],
        binaries: &[bin!("kube-scheduler")],
        templates: &[
            tpl(
                "control-plane/kube-scheduler.service",
                "/etc/systemd/system/kube-scheduler.service",
                0o600,
            ),
            tpl(
                "control-plane/kube-scheduler.yaml",
                "/etc/kubernetes/kube-scheduler.yaml",
                0o600,
            ),
        ],
        ports: |_| vec![10259],
        health: Health {
            command: |_, _| "curl -skf --max-time 5 https://127.0.0.1:10259/healthz".into(),
            wait_secs: 90,
        },
        version: last_word_version!("kube-scheduler"),
        reloads: false,
        rolling: false,
        lb_upstream: false,
        wanted: always,
        user: None,
    },
    Component {
        service: "containerd",
        phase: PhaseId::Runtime,
        roles: NODE_ROLES,
        binaries: &[
            bin!("containerd"),
            bin!("containerd-shim-runc-v2"),
            bin!("ctr"),
            bin!("runc"),
            bin!("crictl"),
            bin!(cni "bridge"),
            bin!(cni "flannel"),
            bin!(cni "host-local"),
            bin!(cni "loopback"),
            bin!(cni "portmap"),
        ],
        templates: &[
            tpl("node/containerd.toml", "/etc/containerd/config.toml", 0o600),
            tpl(
                "node/containerd.service",
                "/etc/systemd/system/containerd.service",
                0o600,
            ),
        ],
        ports: |_| vec![],
        health: Health {
            command: |_, _| format!("{BIN_DIR}/ctr version"),
            wait_secs: 60,
        },
        version: concat!(
            bin_path!("containerd"),
            " --version 2>/dev/null | awk '{print $3}'"
        ),
        reloads: false,
        rolling: false,
        lb_upstream: false,
        wanted: always,
        user: None,
    },
    Component {
        // Only the load balancers reach the NodePorts where the chat server and the ingress
        // controller believe a PROXY header's client address (nftables, before kube-proxy's
        // DNAT).
        service: NODEPORT_FILTER,
        phase: PhaseId::Node,
        roles: NODE_ROLES,
        binaries: &[], // the distribution's nft
        templates: &[
            tpl(
                "node/nodeport-filter.nft",
                "/etc/k8s-boot/nodeport-filter.nft",
                0o600,
            ),
            tpl(
                "node/nodeport-filter.service",
                "/etc/systemd/system/k8s-boot-nodeport-filter.service",
                0o600,
            ),
        ],
        ports: |_| vec![],
        health: Health {
            command: |_, _| "nft list table inet k8s_boot >/dev/null".into(),
            wait_secs: 10,
        },
        version: "nft --version | awk '{print $2}'",
        reloads: false,
        rolling: false,
        lb_upstream: false,
        // The ingress controller's NodePorts need it even with no lb host: then nobody may
        // reach them.
        wanted: |c| {
            let chat_behind_lb = c.inventory.chat.enabled && c.hosts_with(Role::Lb).next().is_some();
            chat_behind_lb || c.inventory.ingress.enabled
        },
        user: None,
    },
    Component {
        service: "kubelet",
        phase: PhaseId::Node,
        roles: NODE_ROLES,
        binaries: &[bin!("kubelet")],
        templates: &[
            tpl("node/kubelet.yaml", "/var/lib/kubelet/config.yaml", 0o600),
            tpl(
                "node/kubelet.service",
                "/etc/systemd/system/kubelet.service",
                0o600,
            ),
        ],
        ports: |_| vec![10250],
        health: Health {
            command: |_, _| "curl -sf --max-time 5 http://127.0.0.1:10248/healthz".into(),
            wait_secs: 120,
        },
        version: last_word_version!("kubelet"),
        reloads: false,
        rolling: false,
        lb_upstream: false,
        wanted: always,
        user: None,
    },
    Component {
        service: "kube-proxy",
        phase: PhaseId::Node,
        roles: NODE_ROLES,
        binaries: &[bin!("kube-proxy")],
        templates: &[
            tpl(
                "node/kube-proxy.yaml",
                "/var/lib/kube-proxy/config.yaml",
                0o600,
            ),
            tpl(
                "node/kube-proxy.service",
                "/etc/systemd/system/kube-proxy.service",
                0o600,
            ),
        ],
        ports: |_| vec![10256],
        health: Health {
            command: |_, _| "curl -sf --max-time 5 http://127.0.0.1:10256/healthz".into(),
            wait_secs: 120,
        },
        version: last_word_version!("kube-proxy"),
        reloads: false,
        rolling: false,
        lb_upstream: false,
        wanted: always,
        user: None,
    },
];

/// The row of `service`, if it is a component.
pub fn component(service: &str) -> Option<&'static Component> {
    COMPONENTS.iter().find(|c| c.service == service)
}

/// The components of one phase, in start order.
pub fn of_phase(phase: PhaseId) -> impl Iterator<Item = &'static Component> {
    COMPONENTS.iter().filter(move |c| c.phase == phase)
}

impl Component {
    pub fn runs_on(&self, cluster: &Cluster, host: &Host) -> bool {
        (self.wanted)(cluster) && self.roles.iter().any(|r| host.has(*r))
    }

    /// The health command on `host` and how long to wait for it.
    pub fn health_command(&self, cluster: &Cluster, host: &Host) -> (String, u64) {
        ((self.health.command)(cluster, host), self.health.wait_secs)
    }
}

/// Every release binary with the component that ships it.
pub fn binaries() -> impl Iterator<Item = (&'static Component, &'static Binary)> {
    COMPONENTS
        .iter()
        .flat_map(|c| c.binaries.iter().map(move |b| (c, b)))
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_bootstrap_settings_changing_restarts_nothing() {
        let path = "/etc/etcd/etcd.yaml";
        let old = b"name: m1\ninitial-cluster: \"m1=a,m2=b,m3=c\"\ndata-dir: /var/lib/etcd\n";
        let fewer = b"name: m1\ninitial-cluster: \"m1=a,m2=b\"\ndata-dir: /var/lib/etcd\n";
        let moved = b"name: m1\ninitial-cluster: \"m1=a,m2=b\"\ndata-dir: /srv/etcd\n";
        assert!(differs_only_in_bootstrap_settings(path, old, fewer));
        assert!(!differs_only_in_bootstrap_settings(path, old, moved));
        assert!(!differs_only_in_bootstrap_settings(
            "/etc/nginx/nginx.conf",
            old,
            fewer
        ));
    }

    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn binaries_targets_and_templates_are_each_listed_once_and_under_the_bin_dirs() {
        let targets: Vec<&str> = binaries().map(|(_, b)| b.target).collect();
        let unique: BTreeSet<&str> = targets.iter().copied().collect();
        assert_eq!(unique.len(), targets.len(), "a binary target appears twice");
        for (c, b) in binaries() {
            let dir = if b.file.starts_with("cni/") {
                CNI_BIN_DIR
            } else {
                BIN_DIR
            };
            let name = b.file.trim_start_matches("cni/");
            assert_eq!(b.target, format!("{dir}/{name}"), "{}", c.service);
        }
        let templates: Vec<&str> = COMPONENTS
            .iter()
            .flat_map(|c| c.templates.iter().map(|t| t.template))
            .collect();
        let unique: BTreeSet<&str> = templates.iter().copied().collect();
        assert_eq!(unique.len(), templates.len(), "a template appears twice");
        for c in COMPONENTS {
            assert!(
                // The distribution's programs (nginx, nft) are asked by their own name.
                c.version.contains(c.service) || c.binaries.is_empty(),
                "{}: version command {}",
                c.service,
                c.version
            );
            // A service's unit is `<service>.service`; a timer's is its own name.
            let unit = if c.service.ends_with(".timer") {
                format!("/etc/systemd/system/{}", c.service)
            } else {
                format!("/etc/systemd/system/{}.service", c.service)
            };
            assert!(
                c.templates.iter().any(|t| t.target == unit) || c.service == "nginx",
                "{} has no unit template",
                c.service
            );
        }
    }
}
