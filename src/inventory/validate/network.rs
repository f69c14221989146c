//! The cluster's network: pod and service CIDRs, the node-port range, the API SANs and DNS
//! upstreams, and the API endpoint clients use.

use super::addresses::family;
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

pub(super) fn check_dns_upstreams(c: &mut Checker, cl: &schema::Cluster) {
    for (i, server) in cl.dns_upstreams.iter().flatten().enumerate() {
        if server.parse::<IpAddr>().is_err() {
            c.error(
                &format!("cluster.dns_upstreams[{i}]"),
                format!("`{server}` is not an IP address; expected a DNS server address such as 10.0.0.2"),
            );
        }
    }
}

/// `cluster.api_endpoint` where set; otherwise the first `lb` host, or the only
/// control-plane host (more need a load balancer).
pub(super) fn api_endpoint(
    c: &mut Checker,
    cl: &schema::Cluster,
    hosts: &[Host],
) -> Option<Endpoint> {
    if let Some(s) = &cl.api_endpoint {
        return parse_endpoint(c, s);
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
