//! What a lab of N hosts looks like: names, addresses, roles, and the files derived from
//! them (the inventory, /etc/hosts, the guest network file). Pure functions, no I/O.

use crate::inventory::Role;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

/// The machine's private bridge; guests attach to it through nspawn's veth pairs.
pub const BRIDGE: &str = "k8sboot0";
/// Address of the bridge on the machine; guests reach the machine (and ssh comes from) here.
pub const BRIDGE_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const PREFIX_LEN: u8 = 24;
/// Last octet of the first host's address: hosts are 10.77.0.11, .12, ...
pub const FIRST_HOST_OCTET: u8 = 11;
pub const MAX_HOSTS: usize = 20;
/// Files in the lab directory.
pub const KEY_FILE: &str = "id_ed25519";
pub const KNOWN_HOSTS_FILE: &str = "known_hosts";
pub const INVENTORY_FILE: &str = "hosts.yaml";

/// One planned host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedHost {
    pub name: String,
    pub address: IpAddr,
    pub roles: Vec<Role>,
}

/// The hosts of a lab of `n` hosts.
///
/// Four or more: `lb1`, `m1`-`m3` (etcd and control-plane, with a tainted kubelet), then
/// workers `w1`...; with exactly four there is no dedicated worker, so `m1`-`m3` are workers too.
/// Fewer: `m1` runs etcd, the only control plane and a worker; with three hosts `m2` and `m3`
/// add etcd members (three in all, an odd count); with two, `m2` is a worker.
pub fn plan(n: usize) -> Vec<PlannedHost> {
    use Role::*;
    let mut hosts: Vec<(String, Vec<Role>)> = Vec::new();
    if n >= 4 {
        hosts.push(("lb1".into(), vec![Lb]));
        for i in 1..=3 {
            let mut roles = vec![Etcd, ControlPlane];
            if n == 4 {
                roles.push(Worker);
            }
            hosts.push((format!("m{i}"), roles));
        }
        for i in 1..=n - 4 {
            hosts.push((format!("w{i}"), vec![Worker]));
        }
    } else {
        for i in 1..=n {
            let roles = match (n, i) {
                (_, 1) => vec![Etcd, ControlPlane, Worker],
                (3, _) => vec![Etcd, Worker],
                _ => vec![Worker],
            };
            hosts.push((format!("m{i}"), roles));
        }
    }
    hosts
        .into_iter()
        .enumerate()
        .map(|(i, (name, roles))| PlannedHost {
            name,
            address: host_address(i),
            roles,
        })
        .collect()
}

pub fn host_address(index: usize) -> IpAddr {
    let [a, b, c, _] = BRIDGE_ADDRESS.octets();
    let last = FIRST_HOST_OCTET as usize + index;
    assert!(last < 255, "host index {index} outside the lab subnet");
    IpAddr::V4(Ipv4Addr::new(a, b, c, last as u8))
}

/// A YAML scalar for any string: JSON strings are valid YAML double-quoted scalars.
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// The inventory `k8s-boot lab up` writes next to the lab: every host, the lab key and the
/// lab's known_hosts (strict host key checking works from the first connection).
pub fn inventory_yaml(
    hosts: &[PlannedHost],
    kubernetes_version: &str,
    key: &Path,
    known_hosts: &Path,
    registry: Option<IpAddr>,
) -> String {
    let mut y = String::new();
    y.push_str(
        "# Written by `k8s-boot lab up` for its local lab hosts; rewritten on every `lab up`.\n\
         # Hosts are systemd-nspawn machines on the bridge k8sboot0 (10.77.0.0/24). See docs/LAB.md.\n\n",
    );
    let _ = writeln!(
        y,
        "cluster:\n  name: lab\n  kubernetes_version: {}\n  kubelet:\n    \
         allow_cgroup_v1: true              # lab hosts have the legacy cgroup hierarchy (docs/LAB.md)\n    \
         eviction_hard:                     # the hosts share the machine's disk: percentages\n      \
           imagefs.available: 1Gi           # of it say nothing about one host (docs/LAB.md)\n      \
           nodefs.available: 1Gi\n    \
         image_gc_high_threshold_percent: 100  # nor for deleting unused images (docs/LAB.md)\n  \
         kube_proxy:\n    conntrack_max_per_core: 0          # the conntrack limit is the machine's (docs/LAB.md)\n  \
         containerd:\n    restrict_oom_score_adj: true       # no CAP_SYS_RESOURCE in lab hosts (docs/LAB.md)\n",
        yaml_str(kubernetes_version)
    );
    if let Some(address) = registry {
        y.push_str("    registry_mirrors:                  # the lab registry on the first host (docs/LAB.md)\n");
        for r in super::registry::MIRRORED {
            let _ = writeln!(
                y,
                "      {r}: [{{url: {}, ca_file: {}}}]",
                yaml_str(&super::registry::mirror_url(address, r)),
                super::registry::CA_FILE
            );
        }
    }
    y.push_str("  dns_upstreams: []                    # lab hosts reach no DNS server\n\n");
    let _ = writeln!(
        y,
        "ssh:\n  user: root\n  key: {}\n  known_hosts: {}\n",
        yaml_str(&key.to_string_lossy()),
        yaml_str(&known_hosts.to_string_lossy())
    );
    y.push_str("binaries:\n  dir: binaries                       # relative to this file\n\n");
    y.push_str("chat:\n  enabled: true\n  replicas: 1\n\n");
    y.push_str("hosts:\n");
    for h in hosts {
        let roles: Vec<&str> = h.roles.iter().map(|r| r.as_str()).collect();
        let _ = writeln!(
            y,
            "  - name: {}\n    address: {}\n    roles: [{}]",
            h.name,
            h.address,
            roles.join(", ")
        );
    }
    y
}

/// /etc/hosts of a guest: localhost, itself, and every lab host by name.
pub fn etc_hosts(me: &str, hosts: &[PlannedHost]) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n");
    for h in hosts {
        let _ = writeln!(s, "{}\t{}", h.address, h.name);
    }
    if !hosts.iter().any(|h| h.name == me) {
        let _ = writeln!(s, "127.0.1.1\t{me}");
    }
    s
}

/// /etc/systemd/network/80-container-host0.network of a guest. The name must be exactly this:
/// it overrides systemd's file of the same name, which would otherwise assign a link-local
/// address. The default route points at the bridge so components that look for "the
/// interface with the default route" (flannel, kubelet) find host0; the machine does not
/// forward, so nothing leaves the bridge.
pub fn network_file(address: IpAddr) -> String {
    format!(
        "# k8s-boot lab: static address on the lab bridge {BRIDGE}\n\
         [Match]\n\
         Virtualization=container\n\
         Name=host0\n\
         \n\
         [Network]\n\
         Address={address}/{PREFIX_LEN}\n\
         Gateway={BRIDGE_ADDRESS}\n\
         LinkLocalAddressing=no\n\
         IPv6AcceptRA=no\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Cluster;

    #[test]
    fn names_and_addresses() {
        let names = |n| plan(n).into_iter().map(|h| h.name).collect::<Vec<_>>();
        assert_eq!(names(1), ["m1"]);
        assert_eq!(names(3), ["m1", "m2", "m3"]);
        assert_eq!(names(4), ["lb1", "m1", "m2", "m3"]);
        assert_eq!(names(6), ["lb1", "m1", "m2", "m3", "w1", "w2"]);
        let p = plan(MAX_HOSTS);
        assert_eq!(p[0].address.to_string(), "10.77.0.11");
        assert_eq!(p[MAX_HOSTS - 1].address.to_string(), "10.77.0.30");
    }

    #[test]
    fn every_size_is_a_valid_inventory() {
        for n in 1..=MAX_HOSTS {
            let hosts = plan(n);
            // With the registry on the first host when there are several, without otherwise.
            let registry = (n > 1).then(|| hosts[0].address);
            let y = inventory_yaml(
                &hosts,
                "v1.36.0",
                Path::new("/lab/id_ed25519"),
                Path::new("/lab dir/known_hosts"),
                registry,
            );
            let c = Cluster::from_source(Path::new("/lab/hosts.yaml"), &y)
                .unwrap_or_else(|e| panic!("{n} hosts:\n{y}\n{e}"));
            assert_eq!(c.inventory.hosts.len(), n);
            let errors_or_etcd_warnings: Vec<_> = c
                .warnings
                .iter()
                .filter(|w| w.message.contains("etcd"))
                .collect();
            assert!(errors_or_etcd_warnings.is_empty(), "{n}: {:?}", c.warnings);
            assert_eq!(c.inventory.ssh.known_hosts, "/lab dir/known_hosts");
            assert_eq!(c.inventory.cluster.name, "lab");
            let mirrors = &c.inventory.cluster.containerd.registry_mirrors;
            match registry {
                Some(_) => {
                    assert_eq!(mirrors.len(), 4);
                    let k8s = &mirrors["registry.k8s.io"][0];
                    assert_eq!(k8s.url, "https://10.77.0.11:5000/registry.k8s.io");
                    assert_eq!(k8s.ca_file.as_deref(), Some("registry/ca.crt"));
                }
                None => assert!(mirrors.is_empty()),
            }
        }
    }

    #[test]
    fn hosts_file_lists_all() {
        let p = plan(2);
        let h = etc_hosts("m2", &p);
        assert!(h.contains("10.77.0.11\tm1\n"));
        assert!(h.contains("10.77.0.12\tm2\n"));
        assert!(!h.contains("127.0.1.1"));
    }
}
