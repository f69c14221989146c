//! The hosts: names, addresses (kind, family, uniqueness, outside the cluster's ranges),
//! roles, and what the cluster needs of them together (etcd quorum, a control plane).

use super::addresses::{family, is_loopback, not_a_host_address};
use super::checker::Checker;
use super::names::is_dns_label;
use super::network::Ranges;
use super::ssh::check_login;
use crate::inventory::cluster::APISERVER_PORT;
use crate::inventory::schema::{Host, Inventory, Role};
use std::collections::HashMap;
use std::net::IpAddr;

/// How many hosts have each role.
pub(super) struct RoleCounts {
    pub lbs: usize,
    pub etcds: usize,
    pub control_planes: usize,
    pub workers: usize,
}

impl RoleCounts {
    fn of(hosts: &[Host]) -> RoleCounts {
        let count = |r: Role| hosts.iter().filter(|h| h.has(r)).count();
        RoleCounts {
            lbs: count(Role::Lb),
            etcds: count(Role::Etcd),
            control_planes: count(Role::ControlPlane),
            workers: count(Role::Worker),
        }
    }
}

/// Every host on its own, then the hosts together.
pub(super) fn check_hosts(c: &mut Checker, inventory: &Inventory, ranges: &Ranges) -> RoleCounts {
    let hosts = &inventory.hosts;
    if hosts.is_empty() {
        c.error("hosts", "at least one host is required");
    }
    let mut seen = Seen::default();
    for (i, h) in hosts.iter().enumerate() {
        check_host(c, inventory, ranges, &mut seen, i, h);
    }
    if inventory.cluster.allow_loopback_hosts {
        check_all_loopback(c, hosts);
    }
    check_etcd_family(c, hosts);
    let counts = RoleCounts::of(hosts);
    check_role_counts(c, hosts, &counts);
    counts
}

/// Names and addresses of the hosts checked so far: duplicates name the first.
#[derive(Default)]
struct Seen<'a> {
    names: HashMap<&'a str, usize>,
    addresses: HashMap<IpAddr, usize>,
}

fn check_host<'a>(
    c: &mut Checker,
    inventory: &'a Inventory,
    ranges: &Ranges,
    seen: &mut Seen<'a>,
    i: usize,
    h: &'a Host,
) {
    let at = |f: &str| format!("hosts[{i}].{f}");
    if !is_dns_label(&h.name) {
        c.error(
            &at("name"),
            format!("`{}` must be a DNS label: lowercase letters, digits and '-', at most 63 characters", h.name),
        );
    }
    if let Some(first) = seen.names.insert(&h.name, i) {
        c.error(
            &at("name"),
            format!("duplicate host name `{}` (also hosts[{first}])", h.name),
        );
    }
    if let Some(first) = seen.addresses.insert(h.address, i) {
        c.error(
            &at("address"),
            format!(
                "duplicate address {} (also hosts[{first}] `{}`)",
                h.address, inventory.hosts[first].name
            ),
        );
    }
    check_address(c, inventory, ranges.cluster_v4, i, h);
    check_login(
        c,
        &at("ssh"),
        h.ssh.port,
        h.ssh.user.as_deref(),
        h.ssh.key.as_deref(),
    );
    for (label, cidr) in [
        ("cluster.pod_cidr", ranges.pod_cidr),
        ("cluster.service_cidr", ranges.service_cidr),
    ] {
        if let Some(cidr) = cidr.filter(|cidr| cidr.contains(h.address)) {
            c.error(
                &at("address"),
                format!("{} lies inside {label} {cidr}", h.address),
            );
        }
    }
    check_roles(c, i, h);
}

/// A unicast address other hosts can reach, of the cluster's family.
fn check_address(
    c: &mut Checker,
    inventory: &Inventory,
    cluster_v4: Option<bool>,
    i: usize,
    h: &Host,
) {
    let field = format!("hosts[{i}].address");
    let cl = &inventory.cluster;
    if let Some(what) = not_a_host_address(h.address, cl.allow_loopback_hosts) {
        c.error(
            &field,
            format!("{} is not a host address: {what}", h.address),
        );
    }
    if let Some(v4) = cluster_v4.filter(|v4| h.address.is_ipv4() != *v4) {
        c.error(
            &field,
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

fn check_roles(c: &mut Checker, i: usize, h: &Host) {
    let field = format!("hosts[{i}].roles");
    if h.roles.is_empty() {
        c.error(
            &field,
            "expected at least one of lb, etcd, control-plane, worker",
        );
    }
    if h.has(Role::Lb) && h.has(Role::ControlPlane) {
        c.error(
            &field,
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

/// Loopback hosts are all on this machine: a host elsewhere could not reach them.
fn check_all_loopback(c: &mut Checker, hosts: &[Host]) {
    let Some(lo) = hosts.iter().position(|h| is_loopback(h.address)) else {
        return;
    };
    for (i, h) in hosts.iter().enumerate() {
        if !is_loopback(h.address) {
            c.error(
                &format!("hosts[{i}].address"),
                format!(
                    "{} is not a loopback address but hosts[{lo}] `{}` is ({}); with cluster.allow_loopback_hosts every host runs on this machine, so every address must be a loopback address",
                    h.address, hosts[lo].name, hosts[lo].address
                ),
            );
        }
    }
}

/// etcd peers dial each other's addresses: one family.
fn check_etcd_family(c: &mut Checker, hosts: &[Host]) {
    let mut etcd = hosts.iter().enumerate().filter(|(_, h)| h.has(Role::Etcd));
    let Some((first, f)) = etcd.next() else {
        return;
    };
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

/// At least one control-plane host, and an odd number of etcd members.
fn check_role_counts(c: &mut Checker, hosts: &[Host], counts: &RoleCounts) {
    // A control plane that is also a worker gets no taint: any pod may run beside the
    // cluster's keys. Where dedicated workers exist, that is a choice worth a word.
    let dedicated_workers = hosts
        .iter()
        .any(|h| h.has(Role::Worker) && !h.has(Role::ControlPlane));
    for (i, h) in hosts.iter().enumerate() {
        if dedicated_workers && h.has(Role::ControlPlane) && h.has(Role::Worker) {
            c.warn(
                &format!("hosts[{i}].roles"),
                format!(
                    "`{}` is a control plane and a worker: its kubelet gets no control-plane \
                     taint, so any pod may run beside the CA and service-account keys; drop \
                     `worker` unless that is meant",
                    h.name
                ),
            );
        }
    }
    if counts.control_planes == 0 && !hosts.is_empty() {
        c.error(
            "hosts",
            "no host has the `control-plane` role; at least one is required",
        );
    }
    let etcds = counts.etcds;
    if etcds == 0 && !hosts.is_empty() {
        c.error(
            "hosts",
            "no host has the `etcd` role; an odd number (1, 3 or 5) is required",
        );
    } else if etcds.is_multiple_of(2) && etcds > 0 {
        c.warn(
            "hosts",
            format!(
                "{etcds} etcd members tolerate as many failures as {}; use an odd count",
                etcds - 1
            ),
        );
    }
}
