//! Inventory validation: every problem found at once, each with file position and field.

use super::{
    locate, Cidr, Cluster, Diagnostic, Endpoint, Inventory, InventoryError, Positions, Role,
    Severity, APISERVER_PORT,
};
use crate::versions;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

/// Longest name accepted (host and cluster names, domains, users, versions, CIDRs...): the
/// length limit of a DNS name.
pub const MAX_NAME_BYTES: usize = 253;
/// Longest path (or image reference) accepted: Linux's PATH_MAX.
pub const MAX_PATH_BYTES: usize = 4096;

const IPVS_SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh",
];

struct Checker<'a> {
    positions: &'a Positions,
    problems: Vec<Diagnostic>,
    /// Fields refused for their length: no other check reports on them (their messages
    /// would quote the whole value).
    too_long: HashSet<String>,
}

impl Checker<'_> {
    fn push(&mut self, severity: Severity, field: &str, message: impl Into<String>) {
        if self.too_long.contains(field) {
            return;
        }
        self.problems.push(Diagnostic {
            severity,
            field: field.to_string(),
            position: self.positions.find(field),
            message: message.into(),
        });
    }
    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.push(Severity::Error, field, message);
    }
    fn warn(&mut self, field: &str, message: impl Into<String>) {
        self.push(Severity::Warning, field, message);
    }
    fn has_errors(&self) -> bool {
        self.problems.iter().any(|d| d.severity == Severity::Error)
    }
}

pub(super) fn validate(file: &Path, source: &str) -> Result<Cluster, InventoryError> {
    let invalid = |problems| InventoryError::Invalid {
        file: file.to_path_buf(),
        problems,
    };
    // Syntax errors and documents beyond the bounds are refused before serde_yaml sees them:
    // it would expand every alias, and it reports a type error found in the events before a
    // syntax error rather than the syntax error.
    let (positions, problem) = locate::scan(source);
    if let Some(p) = problem {
        let mut d = Diagnostic {
            severity: Severity::Error,
            field: "(document)".to_string(),
            position: Some(p.position),
            message: p.message,
        };
        if p.syntax {
            // serde_yaml's own parser (libyaml) usually words the syntax error better; ask it
            // without deserializing anything, which follows no alias.
            if let Err(e) = serde_yaml::from_str::<serde::de::IgnoredAny>(source) {
                if let Some(l) = e.location() {
                    d.position = Some(super::Position {
                        line: l.line(),
                        col: l.column(),
                    });
                    d.message = format!("YAML syntax error: {}", syntax_message(&e.to_string()));
                }
            }
        }
        return Err(invalid(vec![d]));
    }
    let inventory: Inventory = serde_yaml::from_str(source)
        .map_err(|e| invalid(vec![from_serde_error(&e, &positions)]))?;

    let mut c = Checker {
        positions: &positions,
        problems: Vec::new(),
        too_long: HashSet::new(),
    };
    check_lengths(&mut c, &inventory);
    let cl = &inventory.cluster;

    if !is_dns_label(&cl.name) {
        c.error(
            "cluster.name",
            format!("`{}` must be a DNS label: lowercase letters, digits and '-', at most 63 characters", cl.name),
        );
    }
    let profile = match versions::profile_for(&cl.kubernetes_version) {
        Ok(p) => Some(p),
        Err(msg) => {
            c.error("cluster.kubernetes_version", msg);
            None
        }
    };
    if cl.cluster_domain.is_empty() || !cl.cluster_domain.split('.').all(is_dns_label) {
        c.error(
            "cluster.cluster_domain",
            format!(
                "`{}` must be a DNS domain such as cluster.local",
                cl.cluster_domain
            ),
        );
    }

    let pod_cidr = parse_cidr(&mut c, "cluster.pod_cidr", &cl.pod_cidr);
    let service_cidr = parse_cidr(&mut c, "cluster.service_cidr", &cl.service_cidr);
    if let Some(svc) = service_cidr {
        // kube-apiserver refuses service ranges with more than 20 host bits.
        let bits: u8 = if svc.addr.is_ipv4() { 32 } else { 128 };
        // Its first address is the kubernetes Service IP and its tenth the DNS Service IP.
        if bits - svc.prefix < 4 {
            c.error(
                "cluster.service_cidr",
                format!(
                    "{svc} is too small: the kubernetes Service IP is its 1st address and the DNS Service IP its 10th; expected at most /{} for this family (16 addresses)",
                    bits - 4
                ),
            );
        } else if bits - svc.prefix > 20 {
            c.error(
                "cluster.service_cidr",
                format!(
                    "{svc} is too large: kube-apiserver accepts at most /{} for this family",
                    bits - 20
                ),
            );
        }
    }
    if let (Some(pod), Some(svc)) = (pod_cidr, service_cidr) {
        if pod.overlaps(&svc) {
            c.error(
                "cluster.service_cidr",
                format!("{svc} overlaps cluster.pod_cidr {pod}; they must be disjoint"),
            );
        }
    }
    // One family for the whole cluster: dual-stack is not supported.
    let cluster_v4 = match (pod_cidr, service_cidr) {
        (Some(pod), Some(svc)) if pod.addr.is_ipv4() != svc.addr.is_ipv4() => {
            c.error(
                "cluster.service_cidr",
                format!(
                    "{svc} is {} but cluster.pod_cidr {pod} is {}; both ranges must be of one address family (dual-stack is not supported)",
                    family(svc.addr),
                    family(pod.addr)
                ),
            );
            None
        }
        (Some(cidr), _) | (None, Some(cidr)) => Some(cidr.addr.is_ipv4()),
        (None, None) => None,
    };
    if let Some(pod) = pod_cidr {
        let bits = if pod.addr.is_ipv4() { 32 } else { 128 };
        // kube-controller-manager refuses more than 2^16 node subnets.
        if cl.node_cidr_mask_size <= pod.prefix
            || cl.node_cidr_mask_size > bits
            || cl.node_cidr_mask_size - pod.prefix > 16
        {
            c.error(
                "cluster.node_cidr_mask_size",
                format!(
                    "/{} must be longer than the pod CIDR prefix /{} by at most 16 bits, and at most /{bits}",
                    cl.node_cidr_mask_size, pod.prefix
                ),
            );
        }
    }
    let node_port_range = parse_port_range(&mut c, &cl.node_port_range);
    for (i, san) in cl.api_sans.iter().enumerate() {
        if san.parse::<IpAddr>().is_err() && !(san.split('.').all(is_dns_label)) {
            c.error(
                &format!("cluster.api_sans[{i}]"),
                format!("`{san}` must be an IP address or a DNS name of lowercase labels, e.g. lb.example.internal"),
            );
        }
    }

    // kube-proxy
    if let Some(p) = profile {
        let mode = cl.kube_proxy.mode.as_str();
        if !p.proxy_modes.contains(&mode) {
            c.error(
                "cluster.kube_proxy.mode",
                format!(
                    "`{mode}` is not available in v{}; expected one of {}",
                    p.minor,
                    p.proxy_modes.join(", ")
                ),
            );
        } else if p.deprecated_proxy_modes.contains(&mode) {
            c.warn(
                "cluster.kube_proxy.mode",
                format!(
                    "`{mode}` is deprecated upstream in v{}; prefer nftables or iptables",
                    p.minor
                ),
            );
        }
    }
    if !IPVS_SCHEDULERS.contains(&cl.kube_proxy.ipvs_scheduler.as_str()) {
        c.error(
            "cluster.kube_proxy.ipvs_scheduler",
            format!(
                "`{}` is not an IPVS scheduler; expected one of {}",
                cl.kube_proxy.ipvs_scheduler,
                IPVS_SCHEDULERS.join(", ")
            ),
        );
    }

    for (i, server) in cl.dns_upstreams.iter().flatten().enumerate() {
        if server.parse::<std::net::IpAddr>().is_err() {
            c.error(
                &format!("cluster.dns_upstreams[{i}]"),
                format!("`{server}` is not an IP address; expected a DNS server address such as 10.0.0.2"),
            );
        }
    }

    // kubelet
    if cl.kubelet.allow_cgroup_v1 {
        c.warn(
            "cluster.kubelet.allow_cgroup_v1",
            "the kubelet is told to start on cgroup v1 hosts (failCgroupV1: false); cgroup v1 support is deprecated upstream and will be removed, use this only for hosts that cannot move to cgroup v2",
        );
    }

    // hosts
    if inventory.hosts.is_empty() {
        c.error("hosts", "at least one host is required");
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut addresses: HashMap<IpAddr, usize> = HashMap::new();
    for (i, h) in inventory.hosts.iter().enumerate() {
        let at = |f: &str| format!("hosts[{i}].{f}");
        if !is_dns_label(&h.name) {
            c.error(
                &at("name"),
                format!("`{}` must be a DNS label: lowercase letters, digits and '-', at most 63 characters", h.name),
            );
        }
        if let Some(first) = names.insert(&h.name, i) {
            c.error(
                &at("name"),
                format!("duplicate host name `{}` (also hosts[{first}])", h.name),
            );
        }
        if let Some(first) = addresses.insert(h.address, i) {
            c.error(
                &at("address"),
                format!(
                    "duplicate address {} (also hosts[{first}] `{}`)",
                    h.address, inventory.hosts[first].name
                ),
            );
        }
        if let Some(what) = not_a_host_address(h.address, cl.allow_loopback_hosts) {
            c.error(
                &at("address"),
                format!("{} is not a host address: {what}", h.address),
            );
        }
        if let Some(v4) = cluster_v4 {
            if h.address.is_ipv4() != v4 {
                c.error(
                    &at("address"),
                    format!(
                        "{} is {} but cluster.pod_cidr {} and cluster.service_cidr {} are {}; every host address must be of the cluster's address family (set both ranges for an {} cluster)",
                        h.address,
                        family(h.address),
                        cl.pod_cidr,
                        cl.service_cidr,
                        if v4 { "IPv4" } else { "IPv6" },
                        family(h.address),
                    ),
                );
            }
        }
        check_ssh_login(
            &mut c,
            &at("ssh"),
            h.ssh.port,
            h.ssh.user.as_deref(),
            h.ssh.key.as_deref(),
        );
        for (label, cidr) in [
            ("cluster.pod_cidr", pod_cidr),
            ("cluster.service_cidr", service_cidr),
        ] {
            if let Some(cidr) = cidr {
                if cidr.contains(h.address) {
                    c.error(
                        &at("address"),
                        format!("{} lies inside {label} {cidr}", h.address),
                    );
                }
            }
        }
        if h.roles.is_empty() {
            c.error(
                &at("roles"),
                "expected at least one of lb, etcd, control-plane, worker",
            );
        }
        if h.has(Role::Lb) && h.has(Role::ControlPlane) {
            c.error(
                &at("roles"),
                format!("`lb` and `control-plane` cannot share a host: nginx and kube-apiserver both listen on port {APISERVER_PORT}"),
            );
        }
        let mut seen = Vec::new();
        for (j, r) in h.roles.iter().enumerate() {
            if seen.contains(r) {
                c.error(
                    &format!("hosts[{i}].roles[{j}]"),
                    format!("role `{}` listed twice", r.as_str()),
                );
            }
            seen.push(*r);
        }
    }

    // Loopback hosts are all on this machine: a host elsewhere could not reach them.
    let first_loopback = inventory.hosts.iter().position(|h| is_loopback(h.address));
    if let (true, Some(lo)) = (cl.allow_loopback_hosts, first_loopback) {
        for (i, h) in inventory.hosts.iter().enumerate() {
            if !is_loopback(h.address) {
                c.error(
                    &format!("hosts[{i}].address"),
                    format!(
                        "{} is not a loopback address but hosts[{lo}] `{}` is ({}); with cluster.allow_loopback_hosts every host runs on this machine, so every address must be a loopback address",
                        h.address, inventory.hosts[lo].name, inventory.hosts[lo].address
                    ),
                );
            }
        }
    }
    // etcd peers dial each other's addresses: one family.
    let mut etcd = inventory
        .hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| h.has(Role::Etcd));
    if let Some((first, f)) = etcd.next() {
        for (i, h) in etcd {
            if h.address.is_ipv4() != f.address.is_ipv4() {
                c.error(
                    &format!("hosts[{i}].address"),
                    format!(
                        "etcd peer {} is {} but the first etcd host hosts[{first}] `{}` is {} ({}); the etcd members must all use one address family",
                        h.address,
                        family(h.address),
                        f.name,
                        family(f.address),
                        f.address
                    ),
                );
            }
        }
    }

    let count = |r: Role| inventory.hosts.iter().filter(|h| h.has(r)).count();
    let (lbs, etcds, cps, workers) = (
        count(Role::Lb),
        count(Role::Etcd),
        count(Role::ControlPlane),
        count(Role::Worker),
    );
    if cps == 0 && !inventory.hosts.is_empty() {
        c.error(
            "hosts",
            "no host has the `control-plane` role; at least one is required",
        );
    }
    if etcds == 0 && !inventory.hosts.is_empty() {
        c.error(
            "hosts",
            "no host has the `etcd` role; an odd number (1, 3 or 5) is required",
        );
    } else if etcds % 2 == 0 && etcds > 0 {
        c.warn(
            "hosts",
            format!(
                "{etcds} etcd members tolerate as many failures as {}; use an odd count",
                etcds - 1
            ),
        );
    }

    let api_endpoint = match &cl.api_endpoint {
        Some(s) => parse_endpoint(&mut c, s),
        None => {
            let lb = inventory.hosts.iter().find(|h| h.has(Role::Lb));
            let cp: Vec<_> = inventory
                .hosts
                .iter()
                .filter(|h| h.has(Role::ControlPlane))
                .collect();
            match (lb, cp.as_slice()) {
                (Some(lb), _) => Some(Endpoint {
                    host: lb.address.to_string(),
                    port: APISERVER_PORT,
                }),
                (None, [only]) => Some(Endpoint {
                    host: only.address.to_string(),
                    port: APISERVER_PORT,
                }),
                (None, []) => None,
                (None, _) => {
                    c.error(
                        "cluster.api_endpoint",
                        format!("{cps} control-plane hosts need a load balancer: add a host with the `lb` role or set cluster.api_endpoint (address:port of an external LB)"),
                    );
                    None
                }
            }
        }
    };

    // chat workload
    let chat = &inventory.chat;
    if chat.enabled {
        if chat.replicas == 0 {
            c.error(
                "chat.replicas",
                "must be at least 1 when chat.enabled is true",
            );
        } else if chat.replicas > 1 {
            c.warn(
                "chat.replicas",
                format!("{} replicas share no message bus: a client sees only clients connected to the same pod", chat.replicas),
            );
        }
        if chat.port == 0 {
            c.error("chat.port", "must be a TCP port between 1 and 65535");
        }
        if lbs > 0 && chat.port == APISERVER_PORT {
            c.error(
                "chat.port",
                format!("{APISERVER_PORT} is taken by the apiserver proxy on lb hosts"),
            );
        }
        if let Some((lo, hi)) = node_port_range {
            if chat.node_port < lo || chat.node_port > hi {
                c.error(
                    "chat.node_port",
                    format!(
                        "{} is outside cluster.node_port_range {lo}-{hi}",
                        chat.node_port
                    ),
                );
            }
        }
        // Behind nginx the pod has a second, PROXY protocol port, published as its own NodePort
        // and also used as the pod's and the Service's port number.
        if lbs > 0 {
            let lb_node_port = chat.lb_node_port;
            if let Some((lo, hi)) = node_port_range {
                if lb_node_port < lo || lb_node_port > hi {
                    c.error(
                        "chat.lb_node_port",
                        format!("{lb_node_port} is outside cluster.node_port_range {lo}-{hi}"),
                    );
                }
            }
            if lb_node_port == chat.node_port {
                c.error(
                    "chat.lb_node_port",
                    format!("{lb_node_port} is also chat.node_port: the LB's PROXY protocol port and the plain port need their own NodePorts"),
                );
            } else if lb_node_port == chat.port {
                c.error(
                    "chat.lb_node_port",
                    format!("{lb_node_port} is also chat.port: the pod listens on both, plain on chat.port and PROXY protocol on chat.lb_node_port"),
                );
            }
        }
        if chat.image.trim().is_empty() {
            c.error(
                "chat.image",
                "must name a Node.js image, e.g. docker.io/library/node:24-bookworm-slim",
            );
        }
        if !is_dns_label(&chat.namespace) {
            c.error(
                "chat.namespace",
                format!("`{}` must be a DNS label", chat.namespace),
            );
        }
        // kube-proxy captures NodePort traffic on every node before nginx sees it.
        if let Some(i) = inventory
            .hosts
            .iter()
            .position(|h| h.has(Role::Lb) && h.has(Role::Worker))
        {
            if chat.port == chat.node_port {
                c.error(
                    &format!("hosts[{i}].roles"),
                    format!("an `lb` host that is also a `worker` needs chat.port different from chat.node_port ({}): kube-proxy would take the port from nginx", chat.node_port),
                );
            }
        }
        if workers == 0 && !inventory.hosts.is_empty() {
            c.warn(
                "hosts",
                "no host has the `worker` role: the chat workload has nowhere to run",
            );
        }
    }

    let pki = &inventory.pki;
    if pki.cert_validity_days == 0 || pki.ca_validity_days == 0 {
        c.error("pki", "validity periods must be at least one day");
    } else if pki.cert_validity_days > pki.ca_validity_days {
        c.error(
            "pki.cert_validity_days",
            format!(
                "{} days outlives the CA ({} days)",
                pki.cert_validity_days, pki.ca_validity_days
            ),
        );
    }
    let ssh = &inventory.ssh;
    check_ssh_login(
        &mut c,
        "ssh",
        Some(ssh.port),
        Some(&ssh.user),
        ssh.key.as_deref(),
    );
    if ssh.known_hosts.trim().is_empty() {
        c.error(
            "ssh.known_hosts",
            "must be the path of an OpenSSH known_hosts file, e.g. ~/.ssh/known_hosts",
        );
    }
    if inventory.binaries.dir.trim().is_empty() {
        c.error(
            "binaries.dir",
            "must be the path of the directory of the release binaries, e.g. binaries",
        );
    }

    if c.has_errors() {
        return Err(invalid(c.problems));
    }
    Ok(Cluster {
        file: file.to_path_buf(),
        profile: profile.expect("checked above"),
        pod_cidr: pod_cidr.expect("checked above"),
        service_cidr: service_cidr.expect("checked above"),
        kubernetes_service_ip: service_cidr.and_then(|s| s.nth(1)).expect("checked above"),
        dns_service_ip: service_cidr.and_then(|s| s.nth(10)).expect("checked above"),
        node_port_range: node_port_range.expect("checked above"),
        api_endpoint: api_endpoint.expect("checked above"),
        warnings: c.problems,
        inventory,
    })
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Why `ip` cannot be a host's address, if it cannot.
fn not_a_host_address(ip: IpAddr, allow_loopback: bool) -> Option<String> {
    if let IpAddr::V6(v6) = ip {
        if let Some(v4) = v6.to_ipv4_mapped() {
            return Some(format!(
                "it is an IPv4-mapped IPv6 address; write the IPv4 address {v4}"
            ));
        }
    }
    if ip.is_unspecified() {
        Some(
            "it is the unspecified address; expected the address other hosts reach this host at"
                .into(),
        )
    } else if ip.is_multicast() {
        Some("it is a multicast address; expected a unicast address".into())
    } else if ip == IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
        Some("it is the broadcast address; expected a unicast address".into())
    } else if ip.is_loopback() && !allow_loopback {
        Some("it is a loopback address, which reaches only the machine that uses it; expected an address other hosts reach this host at (set cluster.allow_loopback_hosts: true for a test cluster whose hosts all run on this machine)".into())
    } else {
        None
    }
}

/// The login settings of `ssh` or `hosts[i].ssh` (`prefix`), where given.
fn check_ssh_login(
    c: &mut Checker,
    prefix: &str,
    port: Option<u16>,
    user: Option<&str>,
    key: Option<&str>,
) {
    if port == Some(0) {
        c.error(
            &format!("{prefix}.port"),
            "must be a TCP port between 1 and 65535 (22 by default)",
        );
    }
    if let Some(user) = user {
        if user.is_empty() || user.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
            c.error(
                &format!("{prefix}.user"),
                format!(
                    "`{}` must be a login user name without spaces or control characters, e.g. root",
                    user.escape_debug()
                ),
            );
        }
    }
    if let Some(key) = key {
        if key.trim().is_empty() {
            c.error(
                &format!("{prefix}.key"),
                "must be a path to a private key file, or left out to use the SSH agent",
            );
        }
    }
}

/// The central length cap of every string in the inventory: names at most
/// [`MAX_NAME_BYTES`], paths and image references at most [`MAX_PATH_BYTES`]. A field over
/// its cap gets this error only.
fn check_lengths(c: &mut Checker, inv: &Inventory) {
    enum Kind {
        Name,
        Path,
    }
    let cl = &inv.cluster;
    let mut fields: Vec<(String, &str, Kind)> = vec![
        ("cluster.name".into(), &cl.name, Kind::Name),
        (
            "cluster.kubernetes_version".into(),
            &cl.kubernetes_version,
            Kind::Name,
        ),
        (
            "cluster.cluster_domain".into(),
            &cl.cluster_domain,
            Kind::Name,
        ),
        ("cluster.pod_cidr".into(), &cl.pod_cidr, Kind::Name),
        ("cluster.service_cidr".into(), &cl.service_cidr, Kind::Name),
        (
            "cluster.node_port_range".into(),
            &cl.node_port_range,
            Kind::Name,
        ),
        (
            "cluster.kube_proxy.ipvs_scheduler".into(),
            &cl.kube_proxy.ipvs_scheduler,
            Kind::Name,
        ),
        ("ssh.user".into(), &inv.ssh.user, Kind::Name),
        ("ssh.known_hosts".into(), &inv.ssh.known_hosts, Kind::Path),
        ("binaries.dir".into(), &inv.binaries.dir, Kind::Path),
        ("chat.image".into(), &inv.chat.image, Kind::Path),
        ("chat.namespace".into(), &inv.chat.namespace, Kind::Name),
    ];
    if let Some(e) = &cl.api_endpoint {
        // NAME:PORT, with brackets around an IPv6 address.
        fields.push(("cluster.api_endpoint".into(), e, Kind::Name));
    }
    if let Some(k) = &inv.ssh.key {
        fields.push(("ssh.key".into(), k, Kind::Path));
    }
    for (i, san) in cl.api_sans.iter().enumerate() {
        fields.push((format!("cluster.api_sans[{i}]"), san, Kind::Name));
    }
    for (i, server) in cl.dns_upstreams.iter().flatten().enumerate() {
        fields.push((format!("cluster.dns_upstreams[{i}]"), server, Kind::Name));
    }
    for (i, h) in inv.hosts.iter().enumerate() {
        fields.push((format!("hosts[{i}].name"), &h.name, Kind::Name));
        if let Some(u) = &h.ssh.user {
            fields.push((format!("hosts[{i}].ssh.user"), u, Kind::Name));
        }
        if let Some(k) = &h.ssh.key {
            fields.push((format!("hosts[{i}].ssh.key"), k, Kind::Path));
        }
    }
    for (field, value, kind) in fields {
        let (max, what) = match kind {
            Kind::Name => (MAX_NAME_BYTES, "a name (the DNS name limit)"),
            Kind::Path => (MAX_PATH_BYTES, "a path (PATH_MAX)"),
        };
        if value.len() > max {
            c.error(
                &field,
                format!(
                    "is {} bytes long; expected at most {max} bytes for {what}",
                    value.len()
                ),
            );
            c.too_long.insert(field);
        }
    }
}

fn parse_cidr(c: &mut Checker, field: &str, value: &str) -> Option<Cidr> {
    match value.parse::<Cidr>() {
        Ok(cidr) => Some(cidr),
        Err(msg) => {
            c.error(field, format!("invalid CIDR: {msg}"));
            None
        }
    }
}

fn parse_port_range(c: &mut Checker, value: &str) -> Option<(u16, u16)> {
    let parsed = value
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)));
    match parsed {
        Some((lo, hi)) if lo > 0 && lo < hi => Some((lo, hi)),
        _ => {
            c.error(
                "cluster.node_port_range",
                format!(
                    "`{value}` must be `LOW-HIGH` with 0 < LOW < HIGH <= 65535, e.g. 30000-32767"
                ),
            );
            None
        }
    }
}

fn parse_endpoint(c: &mut Checker, value: &str) -> Option<Endpoint> {
    let parsed = value.rsplit_once(':').and_then(|(host, port)| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
        let host_ok = host.parse::<IpAddr>().is_ok()
            || (!host.is_empty() && host.split('.').all(is_dns_label));
        host_ok.then(|| Endpoint {
            host: host.to_string(),
            port,
        })
    });
    if parsed.is_none() {
        c.error(
            "cluster.api_endpoint",
            format!("`{value}` must be ADDRESS:PORT or NAME:PORT, e.g. 192.168.10.10:6443"),
        );
    }
    parsed
}

/// RFC 1123 label, as Kubernetes requires for node names.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// libyaml's `PROBLEM at line L column C, CONTEXT at line L2 column C2` without the first
/// location (the diagnostic carries it) and with the second one said as where CONTEXT starts.
fn syntax_message(text: &str) -> String {
    let Some(i) = text.find(" at line ") else {
        return text.to_string();
    };
    let (problem, rest) = text.split_at(i);
    match rest.find(", ") {
        Some(j) => {
            let context = &rest[j..];
            match context.find(" at line ") {
                Some(k) => format!("{problem}{} that starts{}", &context[..k], &context[k..]),
                None => format!("{problem}{context}"),
            }
        }
        None => problem.to_string(),
    }
}

/// Turns a serde_yaml error into a diagnostic, adding a "did you mean" for unknown keys.
fn from_serde_error(e: &serde_yaml::Error, positions: &Positions) -> Diagnostic {
    let text = e.to_string();
    // serde_yaml appends " at line L column C"; the location is kept separately.
    let text = match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let (field, mut message) = match text.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (path.to_string(), rest.to_string()),
        _ => ("(document)".to_string(), text.clone()),
    };
    let mut position = e.location().map(|l| super::Position {
        line: l.line(),
        col: l.column(),
    });
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((unknown, expected)) = rest.split_once('`') {
            // serde_yaml points at the enclosing mapping; point at the key itself.
            let key_path = if field == "(document)" {
                unknown.to_string()
            } else {
                format!("{field}.{unknown}")
            };
            position = positions.find(&key_path).or(position);
            let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            if let Some(best) = closest(unknown, &candidates) {
                message = format!(
                    "unknown key `{unknown}`; did you mean `{best}`? (known keys: {})",
                    candidates.join(", ")
                );
            } else {
                message = format!(
                    "unknown key `{unknown}`; known keys: {}",
                    candidates.join(", ")
                );
            }
        }
    }
    Diagnostic {
        severity: Severity::Error,
        field,
        position,
        message,
    }
}

fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 2).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
