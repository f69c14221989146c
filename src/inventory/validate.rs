//! Inventory validation: every problem found at once, each with file position and field.

use super::{
    Cidr, Cluster, Diagnostic, Endpoint, Inventory, InventoryError, Positions, Role, Severity,
    APISERVER_PORT,
};
use crate::versions;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

const IPVS_SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh",
];

struct Checker<'a> {
    positions: &'a Positions,
    problems: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn push(&mut self, severity: Severity, field: &str, message: impl Into<String>) {
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
    let positions = Positions::index(source);
    let invalid = |problems| InventoryError::Invalid {
        file: file.to_path_buf(),
        problems,
    };
    let inventory: Inventory = serde_yaml::from_str(source)
        .map_err(|e| invalid(vec![from_serde_error(&e, &positions)]))?;

    let mut c = Checker {
        positions: &positions,
        problems: Vec::new(),
    };
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
        if bits - svc.prefix > 20 {
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
        if h.address.is_unspecified() || h.address.is_multicast() {
            c.error(
                &at("address"),
                format!("{} is not a host address", h.address),
            );
        }
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
    if let Some(key) = &inventory.ssh.key {
        if key.trim().is_empty() {
            c.error(
                "ssh.key",
                "must be a path to a private key file, or left out to use the SSH agent",
            );
        }
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
