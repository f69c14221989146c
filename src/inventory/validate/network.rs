//! The cluster's network: pod and service CIDRs, the node-port range, the API SANs and DNS
//! upstreams, and the API endpoint clients use.

use super::addresses::{family, is_loopback, not_a_host_address};
use super::checker::Checker;
use super::names::is_dns_name;
use crate::inventory::cluster::{Endpoint, APISERVER_PORT};
use crate::inventory::net::Cidr;
use crate::inventory::schema::{self, Host, Role};
use std::net::IpAddr;

/// The ranges of the cluster, each where it parses.
pub(super) struct Ranges {
    pub pod_cidr: Option<Cidr>,
    pub service_cidr: Option<Cidr>,
    /// The cluster's one address family (true for IPv4), where the ranges say it.
    pub cluster_v4: Option<bool>,
    pub node_port_range: Option<(u16, u16)>,
}

/// CIDRs (their sizes, overlap, family), the node CIDR mask, the node-port range and the
/// API SANs.
pub(super) fn check_ranges(c: &mut Checker, cl: &schema::Cluster) -> Ranges {
    let pod_cidr = parse_cidr(c, "cluster.pod_cidr", &cl.pod_cidr);
    let service_cidr = parse_cidr(c, "cluster.service_cidr", &cl.service_cidr);
    if let Some(svc) = service_cidr {
        check_service_cidr_size(c, svc);
    }
    if let (Some(pod), Some(svc)) = (pod_cidr, service_cidr) {
        if pod.overlaps(&svc) {
            c.error(
                "cluster.service_cidr",
                format!("{svc} overlaps cluster.pod_cidr {pod}; they must be disjoint"),
            );
        }
    }
    for (field, cidr, example) in [
        ("cluster.pod_cidr", pod_cidr, "10.244.0.0/16"),
        ("cluster.service_cidr", service_cidr, "10.96.0.0/12"),
    ] {
        if let Some(cidr) = cidr {
            check_not_special(c, field, cidr, example);
        }
    }
    let cluster_v4 = cluster_family(c, pod_cidr, service_cidr);
    if let Some(pod) = pod_cidr {
        check_node_cidr_mask(c, cl.node_cidr_mask_size, pod);
    }
    let node_port_range = parse_port_range(c, &cl.node_port_range);
    for (i, san) in cl.api_sans.iter().enumerate() {
        if san.parse::<IpAddr>().is_err() && !is_dns_name(san) {
            c.error(
                &format!("cluster.api_sans[{i}]"),
                format!("`{san}` must be an IP address or a DNS name of lowercase labels, e.g. lb.example.internal"),
            );
        }
    }
    Ranges {
        pod_cidr,
        service_cidr,
        cluster_v4,
        node_port_range,
    }
}

/// Ranges no pod or Service address may come from: packets to them never leave the host
/// (loopback), are never forwarded (link-local, the unspecified and broadcast addresses) or
/// are not unicast at all.
const SPECIAL_RANGES: &[(&str, &str)] = &[
    (
        "0.0.0.0/8",
        "the IPv4 \"this network\" range (0.0.0.0 is the unspecified address)",
    ),
    ("127.0.0.0/8", "the IPv4 loopback range"),
    ("169.254.0.0/16", "the IPv4 link-local range"),
    ("224.0.0.0/4", "the IPv4 multicast range"),
    ("255.255.255.255/32", "the IPv4 broadcast address"),
    ("::/128", "the IPv6 unspecified address"),
    ("::1/128", "the IPv6 loopback address"),
    ("::ffff:0:0/96", "the IPv4-mapped IPv6 range"),
    ("fe80::/10", "the IPv6 link-local range"),
    ("ff00::/8", "the IPv6 multicast range"),
];

fn check_not_special(c: &mut Checker, field: &str, cidr: Cidr, example: &str) {
    for (range, what) in SPECIAL_RANGES {
        let range: Cidr = range.parse().expect("SPECIAL_RANGES are CIDRs");
        if cidr.overlaps(&range) {
            c.error(
                field,
                format!("{cidr} overlaps {range}, {what}; expected a private unicast range such as {example}"),
            );
        }
    }
}

/// kube-apiserver refuses service ranges with more than 20 host bits; its first address is
/// the kubernetes Service IP and its tenth the DNS Service IP.
fn check_service_cidr_size(c: &mut Checker, svc: Cidr) {
    let bits: u8 = if svc.addr.is_ipv4() { 32 } else { 128 };
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

/// One family for the whole cluster: dual-stack is not supported.
fn cluster_family(c: &mut Checker, pod: Option<Cidr>, svc: Option<Cidr>) -> Option<bool> {
    match (pod, svc) {
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
    }
}

/// kube-controller-manager refuses more than 2^16 node subnets.
fn check_node_cidr_mask(c: &mut Checker, mask: u8, pod: Cidr) {
    let bits = if pod.addr.is_ipv4() { 32 } else { 128 };
    if mask <= pod.prefix || mask > bits || mask - pod.prefix > 16 {
        c.error(
            "cluster.node_cidr_mask_size",
            format!(
                "/{mask} must be longer than the pod CIDR prefix /{} by at most 16 bits, and at most /{bits}",
                pod.prefix
            ),
        );
    }
}

/// Each upstream an address CoreDNS can forward to: not itself (the DNS Service IP, or a
/// loopback address, which inside its pod is CoreDNS again), and a unicast address.
pub(super) fn check_dns_upstreams(c: &mut Checker, cl: &schema::Cluster, ranges: &Ranges) {
    let dns_service_ip = ranges.service_cidr.and_then(|svc| svc.nth(10));
    for (i, server) in cl.dns_upstreams.iter().flatten().enumerate() {
        let field = format!("cluster.dns_upstreams[{i}]");
        let Ok(ip) = server.parse::<IpAddr>() else {
            c.error(
                &field,
                format!("`{server}` is not an IP address; expected a DNS server address such as 10.0.0.2"),
            );
            continue;
        };
        let why = if Some(ip) == dns_service_ip {
            Some("it is the cluster DNS Service IP (the 10th address of cluster.service_cidr): CoreDNS would forward to itself".to_string())
        } else if is_loopback(ip) {
            Some("it is a loopback address, which inside the CoreDNS pod is CoreDNS itself: a forwarding loop".to_string())
        } else {
            not_a_host_address(ip, false)
        };
        if let Some(why) = why {
            c.error(
                &field,
                format!("{ip} cannot be a DNS upstream: {why}; expected the address of a DNS server outside the cluster, such as 10.0.0.2"),
            );
        }
    }
}

/// `cluster.api_endpoint` where set; otherwise the first `lb` host, or the only
/// control-plane host (more need a load balancer).
pub(super) fn api_endpoint(
    c: &mut Checker,
    cl: &schema::Cluster,
    ranges: &Ranges,
    hosts: &[Host],
) -> Option<Endpoint> {
    if let Some(s) = &cl.api_endpoint {
        let endpoint = parse_endpoint(c, s)?;
        check_endpoint_address(c, cl, ranges, hosts, &endpoint);
        return Some(endpoint);
    }
    let at = |h: &Host| Endpoint {
        host: h.address.to_string(),
        port: APISERVER_PORT,
    };
    let lb = hosts.iter().find(|h| h.has(Role::Lb));
    let cp: Vec<_> = hosts.iter().filter(|h| h.has(Role::ControlPlane)).collect();
    match (lb, cp.as_slice()) {
        (Some(lb), _) => Some(at(lb)),
        (None, [only]) => Some(at(only)),
        (None, []) => None,
        (None, _) => {
            c.error(
                "cluster.api_endpoint",
                format!("{} control-plane hosts need a load balancer: add a host with the `lb` role or set cluster.api_endpoint (address:port of an external LB)", cp.len()),
            );
            None
        }
    }
}

/// An endpoint given as an address: a unicast address outside the cluster's ranges, and
/// when it is an inventory host's, one that serves the API on that port (nginx on `lb`
/// hosts and kube-apiserver listen on 6443 only).
fn check_endpoint_address(
    c: &mut Checker,
    cl: &schema::Cluster,
    ranges: &Ranges,
    hosts: &[Host],
    endpoint: &Endpoint,
) {
    let field = "cluster.api_endpoint";
    let Ok(ip) = endpoint.host.parse::<IpAddr>() else {
        return;
    };
    if let Some(why) = not_a_host_address(ip, cl.allow_loopback_hosts) {
        c.error(field, format!("{ip} cannot be the API endpoint: {why}"));
    }
    for (label, cidr) in [
        ("cluster.pod_cidr", ranges.pod_cidr),
        ("cluster.service_cidr", ranges.service_cidr),
    ] {
        if let Some(cidr) = cidr.filter(|cidr| cidr.contains(ip)) {
            c.error(
                field,
                format!("{ip} lies inside {label} {cidr}; expected the address of a load balancer or control-plane host outside the cluster's ranges"),
            );
        }
    }
    let Some((i, h)) = hosts.iter().enumerate().find(|(_, h)| h.address == ip) else {
        return;
    };
    if !h.has(Role::Lb) && !h.has(Role::ControlPlane) {
        c.error(
            field,
            format!("{ip} is hosts[{i}] `{}`, which runs neither nginx (`lb`) nor kube-apiserver (`control-plane`); expected an lb or control-plane host, or an external load balancer", h.name),
        );
    } else if endpoint.port != APISERVER_PORT {
        c.error(
            field,
            format!("port {} but hosts[{i}] `{}` serves the API on {APISERVER_PORT}; expected {ip}:{APISERVER_PORT}", endpoint.port, h.name),
        );
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
        let host_ok = host.parse::<IpAddr>().is_ok() || is_dns_name(host);
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
