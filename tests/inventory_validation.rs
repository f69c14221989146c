//! Table tests of inventory validation: each bad input must be refused with the field, the
//! position and what is expected; warnings must not stop a valid inventory.

use k8s_boot::inventory::{Cluster, InventoryError, Severity};
use std::path::Path;
use std::process::Command;

const BASE: &str = "\
cluster:
  name: t
  kubernetes_version: v1.35.2
hosts:
  - name: lb1
    address: 10.0.0.10
    roles: [lb]
  - name: m1
    address: 10.0.0.11
    roles: [etcd, control-plane]
  - name: m2
    address: 10.0.0.12
    roles: [etcd, control-plane]
  - name: m3
    address: 10.0.0.13
    roles: [etcd, control-plane]
  - name: w1
    address: 10.0.0.21
    roles: [worker]
";

fn load(src: &str) -> Result<Cluster, InventoryError> {
    Cluster::from_source(Path::new("hosts.yaml"), src)
}

fn problems(what: &str, src: &str) -> Vec<String> {
    match load(src) {
        Ok(c) => panic!(
            "{what}: expected a validation error, got a valid cluster (warnings: {:?})",
            c.warnings
        ),
        Err(InventoryError::Invalid { file, problems }) => {
            problems.iter().map(|d| d.display_in(&file)).collect()
        }
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

/// (what, edit of BASE as (from, to), expected substrings of one error line)
const CASES: &[(&str, (&str, &str), &[&str])] = &[
    (
        "unknown key with suggestion",
        ("    address: 10.0.0.11\n", "    adress: 10.0.0.11\n"),
        &[
            "hosts.yaml:9:5:",
            "unknown key `adress`",
            "did you mean `address`",
        ],
    ),
    (
        "unknown top-level section",
        ("hosts:\n", "clustr: {}\nhosts:\n"),
        &["unknown key `clustr`", "did you mean `cluster`"],
    ),
    (
        "invalid IP address",
        ("address: 10.0.0.12", "address: 10.0.0.300"),
        &["hosts.yaml:12:", "hosts[2].address"],
    ),
    (
        "duplicate host name",
        ("name: m2", "name: m1"),
        &[
            "hosts.yaml:11:5",
            "hosts[2].name",
            "duplicate host name `m1`",
        ],
    ),
    (
        "duplicate address",
        ("address: 10.0.0.12", "address: 10.0.0.11"),
        &[
            "hosts.yaml:12:5",
            "hosts[2].address",
            "duplicate address 10.0.0.11",
        ],
    ),
    (
        "invalid pod CIDR",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  pod_cidr: 10.244.0.0/33\n",
        ),
        &["hosts.yaml:4:", "cluster.pod_cidr", "invalid CIDR"],
    ),
    (
        "CIDR with host bits",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  pod_cidr: 10.244.1.0/16\n",
        ),
        &["cluster.pod_cidr", "host bits set"],
    ),
    (
        "pod and service CIDR overlap",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  pod_cidr: 10.96.0.0/16\n",
        ),
        &[
            "cluster.service_cidr",
            "overlaps cluster.pod_cidr 10.96.0.0/16",
        ],
    ),
    (
        "host address inside the service CIDR",
        ("address: 10.0.0.21", "address: 10.100.0.21"),
        &[
            "hosts[4].address",
            "lies inside cluster.service_cidr 10.96.0.0/12",
        ],
    ),
    (
        "host address inside the pod CIDR",
        ("address: 10.0.0.21", "address: 10.244.3.1"),
        &["hosts[4].address", "lies inside cluster.pod_cidr"],
    ),
    (
        "no control-plane host",
        ("roles: [etcd, control-plane]", "roles: [etcd]"),
        &["hosts", "no host has the `control-plane` role"],
    ),
    (
        "no etcd member",
        ("roles: [etcd, control-plane]", "roles: [control-plane]"),
        &["no host has the `etcd` role"],
    ),
    (
        "several control planes without lb or endpoint",
        ("roles: [lb]", "roles: [worker]"),
        &[
            "cluster.api_endpoint",
            "3 control-plane hosts need a load balancer",
        ],
    ),
    (
        "unsupported Kubernetes version",
        ("v1.35.2", "v1.18.3"),
        &[
            "hosts.yaml:3:",
            "cluster.kubernetes_version",
            "v1.18 is not supported",
            "v1.35.x, v1.36.x, v1.37.x",
        ],
    ),
    (
        "end-of-life Kubernetes v1.34",
        ("v1.35.2", "v1.34.6"),
        &[
            "hosts.yaml:3:3: error: cluster.kubernetes_version: ",
            "Kubernetes v1.34 is not supported; supported minors: v1.35.x, v1.36.x, v1.37.x",
        ],
    ),
    (
        "unknown kubelet key with suggestion",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  kubelet:\n    allow_cgroupv1: true\n",
        ),
        &[
            "hosts.yaml:5:5: error: cluster.kubelet: ",
            "unknown key `allow_cgroupv1`; did you mean `allow_cgroup_v1`? (known keys: allow_cgroup_v1, eviction_hard, image_gc_high_threshold_percent, image_gc_low_threshold_percent)",
        ],
    ),
    (
        "eviction signal unknown",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  kubelet:\n    eviction_hard:\n      disk.available: 1Gi\n",
        ),
        &[
            "hosts.yaml:6:7: error: cluster.kubelet.eviction_hard.disk.available: ",
            "`disk.available` is not an eviction signal; expected one of imagefs.available,",
        ],
    ),
    (
        "eviction percentage over 100",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  kubelet:\n    eviction_hard:\n      nodefs.available: 150%\n",
        ),
        &[
            "hosts.yaml:6:7: error: cluster.kubelet.eviction_hard.nodefs.available: ",
            "`150%`: a percentage must be from 0% to 100%",
        ],
    ),
    (
        "eviction quantity zero",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  kubelet: {eviction_hard: {memory.available: 0Mi}}\n",
        ),
        &[
            "hosts.yaml:4:",
            "cluster.kubelet.eviction_hard.memory.available: `0Mi`: expected a percentage such as \"5%\" or a positive quantity such as \"2Gi\"",
        ],
    ),
    (
        "eviction quantity with a unit the kubelet lacks",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  kubelet: {eviction_hard: {imagefs.available: 2GB}}\n",
        ),
        &["cluster.kubelet.eviction_hard.imagefs.available: `2GB`: expected a percentage"],
    ),
    (
        "eviction threshold not a string",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  kubelet: {eviction_hard: [nodefs.available]}\n",
        ),
        &["hosts.yaml:4:", "cluster.kubelet.eviction_hard: invalid type: sequence, expected a map"],
    ),
    (
        "allow_cgroup_v1 not a boolean",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  kubelet: {allow_cgroup_v1: sometimes}\n",
        ),
        &[
            "hosts.yaml:4:",
            "cluster.kubelet.allow_cgroup_v1: invalid type: string \"sometimes\", expected a boolean",
        ],
    ),
    (
        "malformed version",
        ("v1.35.2", "latest"),
        &[
            "cluster.kubernetes_version",
            "not a release version like v1.35.0",
        ],
    ),
    (
        "unknown role",
        ("roles: [worker]", "roles: [wroker]"),
        &["hosts.yaml:", "unknown variant `wroker`"],
    ),
    (
        "empty roles",
        ("roles: [worker]", "roles: []"),
        &["hosts[4].roles", "expected at least one of"],
    ),
    (
        "host name not a DNS label",
        ("name: w1", "name: Worker_1"),
        &["hosts[4].name", "must be a DNS label"],
    ),
    (
        "bad api endpoint",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  api_endpoint: lb\n",
        ),
        &["cluster.api_endpoint", "must be ADDRESS:PORT"],
    ),
    (
        "bad node port range",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  node_port_range: 32767-30000\n",
        ),
        &["cluster.node_port_range", "LOW-HIGH"],
    ),
    (
        "chat NodePort outside the range",
        ("hosts:\n", "chat:\n  node_port: 8080\nhosts:\n"),
        &[
            "chat.node_port",
            "8080 is outside cluster.node_port_range 30000-32767",
        ],
    ),
    (
        "chat LB NodePort outside the range",
        ("hosts:\n", "chat:\n  lb_node_port: 8081\nhosts:\n"),
        &[
            "hosts.yaml:5:3: error: chat.lb_node_port: ",
            "8081 is outside cluster.node_port_range 30000-32767",
        ],
    ),
    (
        "chat LB NodePort equal to the plain NodePort",
        (
            "hosts:\n",
            "chat:\n  node_port: 31000\n  lb_node_port: 31000\nhosts:\n",
        ),
        &[
            "hosts.yaml:6:3: error: chat.lb_node_port: ",
            "31000 is also chat.node_port",
        ],
    ),
    (
        "chat LB NodePort (default) equal to chat.port",
        ("hosts:\n", "chat:\n  port: 30001\nhosts:\n"),
        &[
            "hosts.yaml:4:1: error: chat.lb_node_port: ",
            "30001 is also chat.port",
        ],
    ),
    (
        "unknown proxy mode",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  kube_proxy: {mode: userspace}\n",
        ),
        &["unknown variant `userspace`"],
    ),
    (
        "wrong type",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  node_cidr_mask_size: big\n",
        ),
        &["hosts.yaml:4:", "invalid type"],
    ),
    (
        "lb and control-plane on one host",
        ("roles: [lb]", "roles: [lb, control-plane, etcd]"),
        &["hosts[0].roles", "cannot share a host"],
    ),
    (
        "lb worker with chat port equal to the NodePort",
        ("roles: [lb]", "roles: [lb, worker]"),
        &[
            "hosts[0].roles",
            "chat.port different from chat.node_port (30000)",
        ],
    ),
    (
        "invalid extra apiserver SAN",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  api_sans: [ok.example, \"bad name\"]\n",
        ),
        &[
            "hosts.yaml:4:",
            "cluster.api_sans[1]",
            "`bad name` must be an IP address or a DNS name",
        ],
    ),
    (
        "too many node subnets",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  pod_cidr: 10.0.0.0/8\n  node_cidr_mask_size: 26\n",
        ),
        &["cluster.node_cidr_mask_size", "by at most 16 bits"],
    ),
    (
        "leaf outlives CA",
        (
            "hosts:\n",
            "pki: {ca_validity_days: 100, cert_validity_days: 365}\nhosts:\n",
        ),
        &["pki.cert_validity_days", "outlives the CA"],
    ),
    (
        "service CIDR without a 10th address (validation panicked on it before)",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  service_cidr: 10.96.0.0/30\n",
        ),
        &[
            "hosts.yaml:4:3: error: cluster.service_cidr: ",
            "10.96.0.0/30 is too small: the kubernetes Service IP is its 1st address and the DNS Service IP its 10th; expected at most /28 for this family",
        ],
    ),
    (
        "IPv6 service CIDR without a 10th address",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  service_cidr: fd00::/125\n",
        ),
        &["cluster.service_cidr", "fd00::/125 is too small", "at most /124"],
    ),
    (
        "unclosed flow sequence is a syntax error, not an unknown variant",
        ("roles: [lb]\n", "roles: [lb\n"),
        &[
            "hosts.yaml:8:9: error: (document): YAML syntax error: ",
            "did not find expected ',' or ']', while parsing a flow sequence that starts at line 7 column 12",
        ],
    ),
    (
        "byte order mark: positions on line 1 and after stay right",
        ("cluster:\n  name: t\n", "\u{feff}cluster:\n  name: T\n"),
        &["hosts.yaml:2:3: error: cluster.name: `T` must be a DNS label"],
    ),
    (
        "host of the other family than the CIDRs",
        ("address: 10.0.0.21", "address: fd00::21"),
        &[
            "hosts.yaml:18:5: error: hosts[4].address: ",
            "fd00::21 is IPv6 but cluster.pod_cidr 10.244.0.0/16 and cluster.service_cidr 10.96.0.0/12 are IPv4",
        ],
    ),
    (
        "IPv6 hosts with the default IPv4 CIDRs",
        ("address: 10.0.0.10", "address: fd00::10"),
        &["hosts[0].address", "every host address must be of the cluster's address family"],
    ),
    (
        "pod and service CIDRs of different families",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  service_cidr: fd00:96::/108\n",
        ),
        &[
            "hosts.yaml:4:3: error: cluster.service_cidr: ",
            "fd00:96::/108 is IPv6 but cluster.pod_cidr 10.244.0.0/16 is IPv4; both ranges must be of one address family",
        ],
    ),
    (
        "etcd peers of both families",
        ("address: 10.0.0.13", "address: fd00::13"),
        &[
            "hosts.yaml:15:5: error: hosts[3].address: ",
            "etcd peer fd00::13 is IPv6 but the first etcd host hosts[1] `m1` is IPv4 (10.0.0.11)",
        ],
    ),
    (
        "loopback host address without the opt-in",
        ("address: 10.0.0.21", "address: 127.0.0.21"),
        &[
            "hosts.yaml:18:5: error: hosts[4].address: ",
            "127.0.0.21 is not a host address: it is a loopback address",
            "cluster.allow_loopback_hosts: true",
        ],
    ),
    (
        "IPv6 loopback host address",
        ("address: 10.0.0.21", "address: \"::1\""),
        &["hosts[4].address", "::1 is not a host address: it is a loopback address"],
    ),
    (
        "limited broadcast host address",
        ("address: 10.0.0.21", "address: 255.255.255.255"),
        &[
            "hosts.yaml:18:5: error: hosts[4].address: ",
            "255.255.255.255 is not a host address: it is the broadcast address",
        ],
    ),
    (
        "multicast host address",
        ("address: 10.0.0.21", "address: 224.0.0.5"),
        &["hosts[4].address", "224.0.0.5 is not a host address: it is a multicast address"],
    ),
    (
        "unspecified IPv4 host address",
        ("address: 10.0.0.21", "address: 0.0.0.0"),
        &["hosts[4].address", "0.0.0.0 is not a host address: it is the unspecified address"],
    ),
    (
        "unspecified IPv6 host address",
        ("address: 10.0.0.21", "address: \"::\""),
        &["hosts[4].address", ":: is not a host address: it is the unspecified address"],
    ),
    (
        "IPv4-mapped IPv6 host address",
        ("address: 10.0.0.21", "address: \"::ffff:10.0.0.21\""),
        &[
            "hosts[4].address",
            "it is an IPv4-mapped IPv6 address; write the IPv4 address 10.0.0.21",
        ],
    ),
    (
        "ssh.port 0",
        ("hosts:\n", "ssh: {port: 0}\nhosts:\n"),
        &[
            "hosts.yaml:4:7: error: ssh.port: ",
            "must be a TCP port between 1 and 65535",
        ],
    ),
    (
        "per-host ssh.port 0",
        ("roles: [worker]\n", "roles: [worker]\n    ssh: {port: 0}\n"),
        &[
            "hosts.yaml:20:11: error: hosts[4].ssh.port: ",
            "must be a TCP port between 1 and 65535",
        ],
    ),
    (
        "empty ssh.user",
        ("hosts:\n", "ssh:\n  user: \"\"\nhosts:\n"),
        &[
            "hosts.yaml:5:3: error: ssh.user: ",
            "`` must be a login user name without spaces or control characters, e.g. root",
        ],
    ),
    (
        "per-host ssh.user with a space",
        ("roles: [worker]\n", "roles: [worker]\n    ssh: {user: \"ad min\"}\n"),
        &[
            "hosts.yaml:20:11: error: hosts[4].ssh.user: ",
            "`ad min` must be a login user name",
        ],
    ),
    (
        "per-host ssh.key blank",
        ("roles: [worker]\n", "roles: [worker]\n    ssh: {key: \" \"}\n"),
        &[
            "hosts[4].ssh.key",
            "must be a path to a private key file, or left out to use the SSH agent",
        ],
    ),
    (
        "blank ssh.known_hosts",
        ("hosts:\n", "ssh: {known_hosts: \"\"}\nhosts:\n"),
        &["ssh.known_hosts", "must be the path of an OpenSSH known_hosts file"],
    ),
    // Values that would reach a rendered file as more than a value (issue 15, class 4).
    (
        "line break in chat.image (a privileged securityContext)",
        (
            "hosts:\n",
            "chat: {image: \"node:24\\n          securityContext: {privileged: true}\"}\nhosts:\n",
        ),
        &["hosts.yaml:4:", "chat.image: contains a line break (U+000A) at byte 7"],
    ),
    (
        "tab in chat.namespace",
        ("hosts:\n", "chat: {namespace: \"chat\\tx\"}\nhosts:\n"),
        &["chat.namespace: contains a tab (U+0009) at byte 4"],
    ),
    (
        "zero-width space in a host name",
        ("name: w1", "name: \"w\\u200b1\""),
        &["hosts.yaml:17:5:", "hosts[4].name: contains an invisible character (U+200B) at byte 1"],
    ),
    (
        "right-to-left override in ssh.user",
        ("hosts:\n", "ssh: {user: \"root\\u202e\"}\nhosts:\n"),
        &["ssh.user: contains an invisible character (U+202E)"],
    ),
    (
        "carriage return in an eviction threshold",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  kubelet: {eviction_hard: {memory.available: \"1Gi\\r\\nx: y\"}}\n",
        ),
        &["cluster.kubelet.eviction_hard.memory.available: contains a line break (U+000D)"],
    ),
    (
        "NUL in the cluster domain",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  cluster_domain: \"cluster.local\\0\"\n",
        ),
        &["cluster.cluster_domain: contains a control character (U+0000) at byte 13"],
    ),
    (
        "chat image with an uppercase repository",
        ("hosts:\n", "chat: {image: Node:24}\nhosts:\n"),
        &["chat.image: `Node:24` is not an image reference", "lowercase letters"],
    ),
    (
        "chat image without a tag",
        ("hosts:\n", "chat: {image: node}\nhosts:\n"),
        &["chat.image: `node` is not an image reference: a tag is required"],
    ),
    (
        "chat image with a registry that is no host name",
        ("hosts:\n", "chat: {image: \"reg_istry.io/x:1\"}\nhosts:\n"),
        &["chat.image", "the registry may hold letters, digits"],
    ),
    // Names that become one file (class 4b).
    (
        "a host named like another host's serving certificate",
        (
            "roles: [worker]\n",
            "roles: [worker]\n  - name: server-w1\n    address: 10.0.0.22\n    roles: [worker]\n",
        ),
        &[
            "hosts.yaml:20:5: error: hosts[5].name: `server-w1` makes the PKI file kubelet-server-w1.crt (`kubelet-{host}`)",
            "`kubelet-server-{host}` of hosts[4] `w1` (line 17); rename one host",
        ],
    ),
    (
        "chat NodePort on SSH",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  node_port_range: 1-65535\nchat: {node_port: 22}\n",
        ),
        &["chat.node_port: 22 is taken by sshd (the host's ssh.port) on hosts[1] `m1`"],
    ),
    (
        "chat NodePort on the kubelet",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  node_port_range: 10000-40000\nchat: {node_port: 10250}\n",
        ),
        &["chat.node_port: 10250 is taken by the kubelet's API on hosts[1] `m1`; expected a port no host process listens on"],
    ),
    (
        "chat PROXY NodePort on etcd's peer port",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  node_port_range: 2000-40000\nchat: {lb_node_port: 2380}\n",
        ),
        &["chat.lb_node_port: 2380 is taken by etcd's peer port on hosts[1] `m1`"],
    ),
    (
        "chat NodePort on a worker's own SSH port",
        ("roles: [worker]\n", "roles: [worker]\n    ssh: {port: 30000}\n"),
        &["chat.node_port: 30000 is taken by sshd (the host's ssh.port) on hosts[4] `w1`"],
    ),
    (
        "chat port on the LB's SSH port",
        ("hosts:\n", "chat: {port: 22}\nhosts:\n"),
        &["chat.port: 22 is taken by sshd (the host's ssh.port) on hosts[0] `lb1`"],
    ),
    (
        "chat port on the LB's apiserver proxy",
        ("hosts:\n", "chat: {port: 6443}\nhosts:\n"),
        &["chat.port: 6443 is taken by the apiserver proxy (nginx) on hosts[0] `lb1`"],
    ),
    (
        "pod CIDR in loopback",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  pod_cidr: 127.0.0.0/16\n",
        ),
        &["cluster.pod_cidr: 127.0.0.0/16 overlaps 127.0.0.0/8, the IPv4 loopback range; expected a private unicast range such as 10.244.0.0/16"],
    ),
    (
        "service CIDR in link-local",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  service_cidr: 169.254.0.0/16\n",
        ),
        &["cluster.service_cidr: 169.254.0.0/16 overlaps 169.254.0.0/16, the IPv4 link-local range"],
    ),
    (
        "pod CIDR in multicast",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  pod_cidr: 224.0.0.0/8\n",
        ),
        &["cluster.pod_cidr: 224.0.0.0/8 overlaps 224.0.0.0/4, the IPv4 multicast range"],
    ),
    (
        "pod CIDR of every address",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  pod_cidr: 0.0.0.0/0\n",
        ),
        &["cluster.pod_cidr: 0.0.0.0/0 overlaps 0.0.0.0/8, the IPv4 \"this network\" range"],
    ),
    (
        "IPv6 pod CIDR in multicast",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  pod_cidr: ff00::/16\n  service_cidr: fd00::/108\n",
        ),
        &["cluster.pod_cidr: ff00::/16 overlaps ff00::/8, the IPv6 multicast range"],
    ),
    (
        "API endpoint inside the service CIDR",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  api_endpoint: 10.96.0.1:6443\n",
        ),
        &["hosts.yaml:4:3: error: cluster.api_endpoint: 10.96.0.1 lies inside cluster.service_cidr 10.96.0.0/12"],
    ),
    (
        "API endpoint inside the pod CIDR",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  api_endpoint: \"10.244.3.3:6443\"\n",
        ),
        &["cluster.api_endpoint: 10.244.3.3 lies inside cluster.pod_cidr 10.244.0.0/16"],
    ),
    (
        "API endpoint on a worker",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  api_endpoint: 10.0.0.21:6443\n",
        ),
        &["cluster.api_endpoint: 10.0.0.21 is hosts[4] `w1`, which runs neither nginx (`lb`) nor kube-apiserver"],
    ),
    (
        "API endpoint on the LB with a port nginx does not listen on",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  api_endpoint: 10.0.0.10:8443\n",
        ),
        &["cluster.api_endpoint: port 8443 but hosts[0] `lb1` serves the API on 6443; expected 10.0.0.10:6443"],
    ),
    (
        "API endpoint on the unspecified address",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  api_endpoint: 0.0.0.0:6443\n",
        ),
        &["cluster.api_endpoint: 0.0.0.0 cannot be the API endpoint: it is the unspecified address"],
    ),
    (
        "DNS upstream that is the cluster DNS",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  dns_upstreams: [10.96.0.10]\n",
        ),
        &["cluster.dns_upstreams[0]: 10.96.0.10 cannot be a DNS upstream: it is the cluster DNS Service IP"],
    ),
    (
        "DNS upstream that is a loopback stub resolver",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  dns_upstreams: [1.1.1.1, 127.0.0.53]\n",
        ),
        &["cluster.dns_upstreams[1]: 127.0.0.53 cannot be a DNS upstream: it is a loopback address, which inside the CoreDNS pod is CoreDNS itself"],
    ),
    (
        "DNS upstream ::1",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  dns_upstreams: [\"::1\"]\n",
        ),
        &["cluster.dns_upstreams[0]: ::1 cannot be a DNS upstream: it is a loopback address"],
    ),
    (
        "DNS upstream 0.0.0.0",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  dns_upstreams: [0.0.0.0]\n",
        ),
        &["cluster.dns_upstreams[0]: 0.0.0.0 cannot be a DNS upstream: it is the unspecified address"],
    ),
    (
        "DNS upstream that is multicast",
        (
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  dns_upstreams: [224.0.0.251]\n",
        ),
        &["cluster.dns_upstreams[0]: 224.0.0.251 cannot be a DNS upstream: it is a multicast address"],
    ),
];

/// Whole documents too long to write as an edit above: (what, document, expected substrings
/// of one error line).
fn generated_cases() -> Vec<(&'static str, String, Vec<String>)> {
    let long_name = "a".repeat(300);
    let long_path = format!("/{}", "k".repeat(5000));
    let laughs = billion_laughs();
    vec![
        (
            "host name longer than a DNS name",
            BASE.replace("name: w1", &format!("name: {long_name}")),
            vec![
                "hosts.yaml:17:5: error: hosts[4].name: is 300 bytes long; expected at most 253 bytes for a name".into(),
            ],
        ),
        (
            "cluster name longer than a DNS name",
            BASE.replace("name: t\n", &format!("name: {long_name}\n")),
            vec!["hosts.yaml:2:3: error: cluster.name: is 300 bytes long".into()],
        ),
        (
            "ssh.user longer than a name",
            BASE.replace("hosts:\n", &format!("ssh: {{user: {long_name}}}\nhosts:\n")),
            vec!["ssh.user: is 300 bytes long; expected at most 253 bytes".into()],
        ),
        (
            "ssh.key longer than PATH_MAX",
            BASE.replace("hosts:\n", &format!("ssh: {{key: {long_path}}}\nhosts:\n")),
            vec!["ssh.key: is 5001 bytes long; expected at most 4096 bytes for a path (PATH_MAX)".into()],
        ),
        (
            "per-host ssh.key longer than PATH_MAX",
            BASE.replace(
                "roles: [worker]\n",
                &format!("roles: [worker]\n    ssh: {{key: {long_path}}}\n"),
            ),
            vec!["hosts[4].ssh.key: is 5001 bytes long".into()],
        ),
        (
            "chat.image longer than PATH_MAX",
            BASE.replace("hosts:\n", &format!("chat: {{image: {long_path}}}\nhosts:\n")),
            vec!["chat.image: is 5001 bytes long".into()],
        ),
        (
            "binaries.dir longer than PATH_MAX",
            BASE.replace("hosts:\n", &format!("binaries: {{dir: {long_path}}}\nhosts:\n")),
            vec!["binaries.dir: is 5001 bytes long".into()],
        ),
        (
            "api_sans entry longer than a DNS name",
            BASE.replace(
                "  kubernetes_version: v1.35.2\n",
                &format!("  kubernetes_version: v1.35.2\n  api_sans: [{long_name}]\n"),
            ),
            vec!["hosts.yaml:4:14: error: cluster.api_sans[0]: is 300 bytes long".into()],
        ),
        (
            "billion laughs",
            laughs,
            vec![
                "hosts.yaml:4:".into(),
                "(document): aliases expand the document to more than 4194304 bytes (4 MiB)".into(),
            ],
        ),
        (
            "one long anchored scalar aliased many times",
            long_scalar_aliased(),
            vec![
                "hosts.yaml:4:".into(),
                "aliases expand the document to more than 4194304 bytes".into(),
            ],
        ),
        (
            "more aliases than allowed",
            BASE.replace(
                "  kubernetes_version: v1.35.2\n",
                &format!(
                    "  kubernetes_version: v1.35.2\n  api_sans: [&s a, {}]\n",
                    vec!["*s"; 1025].join(", ")
                ),
            ),
            vec!["hosts.yaml:4:".into(), "more than 1024 aliases; expected at most 1024".into()],
        ),
        (
            "loopback opt-in with a host that is not loopback",
            BASE.replace(
                "  kubernetes_version: v1.35.2\n",
                "  kubernetes_version: v1.35.2\n  allow_loopback_hosts: true\n",
            )
            .replace("address: 10.0.0.1", "address: 127.0.0.1"),
            vec![
                "hosts.yaml:19:5: error: hosts[4].address: ".into(),
                "10.0.0.21 is not a loopback address but hosts[0] `lb1` is (127.0.0.10); with cluster.allow_loopback_hosts every host runs on this machine".into(),
            ],
        ),
        (
            "recursive alias",
            BASE.replace(
                "  kubernetes_version: v1.35.2\n",
                "  kubernetes_version: v1.35.2\n  api_sans: &r [a, *r]\n",
            ),
            vec!["hosts.yaml:4:20: error: (document): alias of a node that contains it".into()],
        ),
        (
            "nesting deeper than allowed",
            BASE.replace(
                "  kubernetes_version: v1.35.2\n",
                &format!(
                    "  kubernetes_version: v1.35.2\n  api_sans: {}{}\n",
                    "[".repeat(40),
                    "]".repeat(40)
                ),
            ),
            vec!["(document): mappings and sequences nested more than 32 levels deep".into()],
        ),
    ]
}

/// The classic document: `l9` is ten aliases of `l8`, which is ten of `l7`, ... ten `lol`s
/// (10^9 scalars), all inside `cluster.api_sans` where serde_yaml would expand them.
fn billion_laughs() -> String {
    let mut items = vec!["&l0 lol".to_string()];
    for i in 1..10 {
        items.push(format!(
            "&l{i} [{}]",
            vec![format!("*l{}", i - 1); 10].join(", ")
        ));
    }
    BASE.replace(
        "  kubernetes_version: v1.35.2\n",
        &format!(
            "  kubernetes_version: v1.35.2\n  api_sans: [{}]\n",
            items.join(", ")
        ),
    )
}

/// A 900 kB scalar, anchored once and aliased 20000 times (18 GB expanded).
fn long_scalar_aliased() -> String {
    BASE.replace(
        "  kubernetes_version: v1.35.2\n",
        &format!(
            "  kubernetes_version: v1.35.2\n  api_sans: [&s \"{}\", {}]\n",
            "x".repeat(900_000),
            vec!["*s"; 20_000].join(",")
        ),
    )
}

#[test]
fn every_generated_bad_input_is_refused_precisely() {
    for (what, src, expected) in generated_cases() {
        let lines = problems(what, &src);
        let hit = lines
            .iter()
            .any(|l| expected.iter().all(|e| l.contains(e.as_str())));
        assert!(
            hit,
            "{what}: no error line contains all of {expected:?}; got:\n{}",
            lines
                .iter()
                .map(|l| shorten(l))
                .collect::<Vec<_>>()
                .join("\n")
        );
        // A value over its cap is reported once, never quoted in full.
        assert!(
            lines.iter().all(|l| l.len() < 2000),
            "{what}: an error line quotes a long value: {}",
            lines
                .iter()
                .map(|l| shorten(l))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

fn shorten(l: &str) -> String {
    l.chars().take(300).collect()
}

#[test]
fn every_bad_input_is_refused_precisely() {
    assert!(load(BASE).is_ok(), "the base inventory must be valid");
    for (what, (from, to), expected) in CASES {
        assert!(BASE.contains(from), "{what}: edit does not apply");
        let src = BASE.replace(from, to);
        let lines = problems(what, &src);
        let hit = lines.iter().any(|l| expected.iter().all(|e| l.contains(e)));
        assert!(
            hit,
            "{what}: no error line contains all of {expected:?}; got:\n{}",
            lines.join("\n")
        );
    }
}

#[test]
fn all_errors_are_reported_at_once() {
    let src = BASE
        .replacen("address: 10.0.0.12", "address: 10.0.0.11", 1)
        .replacen("v1.35.2", "v1.18.0", 1)
        .replacen("name: w1", "name: m1", 1);
    let lines = problems("three errors", &src);
    assert!(lines.len() >= 3, "expected three errors, got {lines:?}");
}

#[test]
fn even_etcd_count_is_a_warning_not_an_error() {
    let src = BASE.replacen(
        "roles: [etcd, control-plane]\n  - name: w1",
        "roles: [control-plane]\n  - name: w1",
        1,
    );
    let c = load(&src).expect("two etcd members is valid");
    assert_eq!(c.hosts_with(k8s_boot::inventory::Role::Etcd).count(), 2);
    assert!(c.warnings.iter().any(|w| w.severity == Severity::Warning
        && w.message == "2 etcd members tolerate as many failures as 1; use an odd count"));
}

#[test]
fn an_untainted_control_plane_beside_dedicated_workers_is_a_warning() {
    let src = BASE.replacen(
        "    address: 10.0.0.12\n    roles: [etcd, control-plane]",
        "    address: 10.0.0.12\n    roles: [etcd, control-plane, worker]",
        1,
    );
    let c = load(&src).expect("a warning, not an error");
    let warned: Vec<_> = c.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(warned, ["hosts[2].roles"], "{:?}", c.warnings);
    assert!(c.warnings[0]
        .message
        .contains("`m2` is a control plane and a worker"));
    // With no dedicated worker, workloads have nowhere else to go: nothing to say (and
    // without an lb host, the ingress is switched off: see the ingress tests).
    let all_in_one =
        "cluster:\n  name: t\n  kubernetes_version: v1.35.2\ningress: {enabled: false}\nhosts:\n  \
                      - {name: m1, address: 10.0.0.11, roles: [etcd, control-plane, worker]}\n";
    let c = load(all_in_one).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn eviction_thresholds_are_rendered_over_the_kubelets_defaults() {
    let c = load(BASE).unwrap();
    assert!(c
        .inventory
        .cluster
        .kubelet
        .eviction_hard_rendered()
        .is_empty());

    let src = BASE.replace(
        "  kubernetes_version: v1.35.2\n",
        "  kubernetes_version: v1.35.2\n  kubelet:\n    eviction_hard:\n      \
         nodefs.available: 1Gi\n      memory.available: \"2.5%\"\n      pid.available: \"100\"\n",
    );
    let c = load(&src).expect("valid thresholds");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let rendered = c.inventory.cluster.kubelet.eviction_hard_rendered();
    let pairs: Vec<(&str, &str)> = rendered
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("imagefs.available", "15%"),
            ("imagefs.inodesFree", "5%"),
            ("memory.available", "2.5%"),
            ("nodefs.available", "1Gi"),
            ("nodefs.inodesFree", "5%"),
            ("pid.available", "100"),
        ]
    );
}

#[test]
fn allow_cgroup_v1_defaults_to_false_and_warns_when_set() {
    let c = load(BASE).unwrap();
    assert!(!c.inventory.cluster.kubelet.allow_cgroup_v1);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let src = BASE.replace(
        "  kubernetes_version: v1.35.2\n",
        "  kubernetes_version: v1.35.2\n  kubelet:\n    allow_cgroup_v1: true\n",
    );
    let c = load(&src).expect("allow_cgroup_v1 is valid");
    assert!(c.inventory.cluster.kubelet.allow_cgroup_v1);
    let lines: Vec<String> = c
        .warnings
        .iter()
        .map(|w| w.display_in(Path::new("hosts.yaml")))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "hosts.yaml:5:5: warning: cluster.kubelet.allow_cgroup_v1: the kubelet is told to start on cgroup v1 hosts (failCgroupV1: false)"
        ),
        "{}",
        lines[0]
    );
}

#[test]
fn chat_lb_node_port_defaults_to_30001_and_is_ignored_without_lb_hosts() {
    let c = load(BASE).unwrap();
    assert_eq!(c.inventory.chat.node_port, 30000);
    assert_eq!(c.inventory.chat.lb_node_port, 30001);

    // Without an `lb` host nothing uses it, so it is not checked.
    let src = BASE
        .replace("    roles: [lb]\n", "    roles: [worker]\n")
        .replace(
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  api_endpoint: 10.0.0.99:6443\n",
        )
        .replace("hosts:\n", "chat:\n  lb_node_port: 30000\nhosts:\n");
    let c = load(&src).expect("lb_node_port is unused without lb hosts");
    assert_eq!(c.inventory.chat.lb_node_port, 30000);
}

#[test]
fn derived_values() {
    let c = load(BASE).unwrap();
    assert_eq!(c.api_endpoint.to_string(), "10.0.0.10:6443");
    assert_eq!(c.kubernetes_service_ip.to_string(), "10.96.0.1");
    assert_eq!(c.dns_service_ip.to_string(), "10.96.0.10");
    assert_eq!(c.profile.minor, "1.35");
    // A single control-plane host needs no load balancer.
    let single = "cluster: {name: s, kubernetes_version: v1.37.2}\nhosts:\n  - {name: a, address: 192.168.1.5, roles: [etcd, control-plane, worker]}\n";
    assert_eq!(
        load(single).unwrap().api_endpoint.to_string(),
        "192.168.1.5:6443"
    );
}

#[test]
fn example_inventory_is_valid_and_init_prints_it() {
    let c = Cluster::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/inventory/hosts.yaml"
    )))
    .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let out = Command::new(env!("CARGO_BIN_EXE_k8s-boot"))
        .arg("init")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, k8s_boot::EXAMPLE_INVENTORY.as_bytes());
}

#[test]
fn cli_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, BASE.replacen("name: m2", "name: m1", 1)).unwrap();
    let bin = env!("CARGO_BIN_EXE_k8s-boot");
    let out = Command::new(bin)
        .args(["check", "--inventory"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:11:5: error: hosts[2].name: duplicate host name"),
        "{stderr}"
    );

    let missing = Command::new(bin)
        .args(["check", "--inventory", "/nonexistent/hosts.yaml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/hosts.yaml"));

    let usage = Command::new(bin).args(["check"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));

    let good = dir.path().join("good.yaml");
    std::fs::write(&good, BASE).unwrap();
    let ok = Command::new(bin)
        .args(["check", "--inventory"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&ok.stdout)
        .contains("5 hosts: 1 lb, 3 etcd, 3 control-plane, 1 worker"));
}

/// What `Cluster::load` says about a path that is not an inventory file, within a deadline
/// (a FIFO without a writer must not block the read).
fn load_error(path: &Path) -> String {
    let p = path.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(Cluster::load(&p).map(|_| ()).map_err(|e| {
            let kind = match e {
                InventoryError::Read { .. } => "read",
                InventoryError::NotAFile { .. } => "not a file",
                InventoryError::TooLarge { .. } => "too large",
                InventoryError::Invalid { .. } => "invalid",
            };
            format!("{kind}: {e}")
        }));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(Err(e)) => e,
        Ok(Ok(())) => panic!("{}: loaded as a valid inventory", path.display()),
        Err(_) => panic!(
            "{}: Cluster::load did not return within 10 s",
            path.display()
        ),
    }
}

#[test]
fn only_regular_files_of_bounded_size_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fifo = d.join("fifo.yaml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let socket = d.join("socket.yaml");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let big = d.join("big.yaml");
    // A valid inventory padded with a comment to one byte over the limit.
    let mut text = BASE.to_string();
    text.push('#');
    let limit = k8s_boot::inventory::MAX_INVENTORY_BYTES as usize;
    text.push_str(&"x".repeat(limit + 1 - text.len() - 1));
    text.push('\n');
    assert_eq!(text.len(), limit + 1);
    std::fs::write(&big, &text).unwrap();
    let at_limit = d.join("at-limit.yaml");
    text.truncate(limit - 1);
    text.push('\n');
    std::fs::write(&at_limit, &text).unwrap();
    let latin1 = d.join("latin1.yaml");
    let mut bytes = BASE.as_bytes().to_vec();
    let at = BASE.find("name: m1").unwrap() + "name: m".len();
    bytes[at] = 0xe9; // `m\xe9` on line 8
    std::fs::write(&latin1, &bytes).unwrap();

    let path = |p: &Path| p.display().to_string();
    let cases: Vec<(&str, std::path::PathBuf, Vec<String>)> = vec![
        (
            "directory",
            d.to_path_buf(),
            vec![format!("not a file: inventory {} is a directory, not a regular file; expected the path of a YAML file", path(d))],
        ),
        (
            "FIFO without a writer",
            fifo.clone(),
            vec![format!("not a file: inventory {} is a FIFO (named pipe), not a regular file", path(&fifo))],
        ),
        (
            "endless character device",
            "/dev/zero".into(),
            vec!["not a file: inventory /dev/zero is a character device, not a regular file".into()],
        ),
        (
            "socket",
            socket.clone(),
            vec![format!("not a file: inventory {} is a socket", path(&socket))],
        ),
        (
            "file one byte over the limit",
            big.clone(),
            vec![format!(
                "too large: inventory {} is 1048577 bytes; expected a YAML file of at most 1048576 bytes (1 MiB)",
                path(&big)
            )],
        ),
        (
            "not UTF-8",
            latin1.clone(),
            vec![
                "invalid: ".into(),
                format!("{}:8:12: error: (document): byte 0xe9 at offset {at} is not UTF-8; expected a UTF-8 encoded YAML file", path(&latin1)),
            ],
        ),
        (
            "missing file",
            d.join("missing.yaml"),
            vec![format!("read: cannot read inventory {}", path(&d.join("missing.yaml")))],
        ),
    ];
    for (what, p, expected) in cases {
        let e = load_error(&p);
        for x in &expected {
            assert!(
                e.contains(x.as_str()),
                "{what}: {e:?} does not contain {x:?}"
            );
        }
    }
    // Exactly at the limit is fine.
    Cluster::load(&at_limit).expect("an inventory of exactly 1 MiB is read");
}

/// A file whose metadata says it is empty but that reads on for megabytes (procfs): the
/// limit holds on what is read, not on what the metadata claims.
#[test]
fn the_size_limit_holds_when_the_metadata_understates_it() {
    let p = Path::new("/proc/kallsyms");
    let meta = std::fs::metadata(p).expect("a Linux kernel with kallsyms has /proc/kallsyms");
    assert!(meta.is_file() && meta.len() == 0, "procfs reports size 0");
    let real = std::fs::read(p).unwrap().len() as u64;
    assert!(
        real > k8s_boot::inventory::MAX_INVENTORY_BYTES,
        "/proc/kallsyms is only {real} bytes here: the case needs a file above the limit"
    );
    let e = load_error(p);
    assert_eq!(
        e,
        "too large: inventory /proc/kallsyms is larger than 1048576 bytes; expected a YAML file of at most 1048576 bytes (1 MiB)"
    );
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let with_bom = format!("\u{feff}{BASE}");
    let c = load(&with_bom).expect("a UTF-8 BOM is valid YAML");
    assert_eq!(c.inventory.cluster.name, "t");
    // Through the file path as well.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bom.yaml");
    std::fs::write(&f, &with_bom).unwrap();
    assert_eq!(Cluster::load(&f).unwrap().inventory.hosts.len(), 5);
}

#[test]
fn loopback_hosts_need_the_opt_in_and_all_hosts_on_loopback() {
    let loopback = BASE
        .replace("address: 10.0.0.", "address: 127.0.0.")
        .replace(
            "  kubernetes_version: v1.35.2\n",
            "  kubernetes_version: v1.35.2\n  allow_loopback_hosts: true\n",
        );
    let c = load(&loopback).expect("loopback hosts with the opt-in");
    assert_eq!(c.api_endpoint.to_string(), "127.0.0.10:6443");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let without = BASE.replace("address: 10.0.0.", "address: 127.0.0.");
    assert_eq!(
        problems("loopback without the opt-in", &without)
            .iter()
            .filter(|l| l.contains("it is a loopback address"))
            .count(),
        5
    );
}

/// The documents that expand to gigabytes are refused by the real binary in well under a
/// second, inside a 256 MiB address-space limit.
#[test]
fn alias_bombs_are_refused_quickly_in_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("laughs.yaml", billion_laughs()),
        ("quadratic.yaml", long_scalar_aliased()),
    ] {
        let f = dir.path().join(name);
        std::fs::write(&f, &text).unwrap();
        let started = std::time::Instant::now();
        let out = Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 262144 && exec \"$0\" check --inventory \"$1\"")
            .arg(env!("CARGO_BIN_EXE_k8s-boot"))
            .arg(&f)
            .output()
            .unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{}:4:", f.display()))
                && stderr.contains(
                    "(document): aliases expand the document to more than 4194304 bytes (4 MiB)"
                ),
            "{name}: {stderr}"
        );
        assert!(took.as_secs() < 5, "{name}: took {took:?}");
    }
}

#[test]
fn cli_refuses_a_fifo_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("hosts.yaml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = Command::new("timeout")
        .arg("10")
        .arg(env!("CARGO_BIN_EXE_k8s-boot"))
        .args(["check", "--inventory"])
        .arg(&fifo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!(
        "error: inventory {} is a FIFO (named pipe), not a regular file; expected the path of a YAML file",
        fifo.display()
    )));
}

/// The ingress's ports: every problem named by its field, at once.
#[test]
fn ingress_ports_that_collide_or_leave_the_node_port_range_are_errors() {
    let src = format!(
        "{BASE}ingress:\n  http_port: 6443\n  https_port: 443\n  http_node_port: 30001\n  \
         https_node_port: 40443\n  replicas: 0\n"
    );
    let errors = load(&src).unwrap_err().to_string();
    for expected in [
        "ingress.http_port: 6443 is taken by the apiserver proxy (nginx)",
        "ingress.http_node_port: 30001 is also chat.lb_node_port",
        "ingress.https_node_port: 40443 is outside cluster.node_port_range 30000-32767",
        "ingress.replicas: must be at least 1",
    ] {
        assert!(errors.contains(expected), "{expected}\n{errors}");
    }
    // Switched off, none of it is checked.
    let off = src.replace("ingress:\n", "ingress:\n  enabled: false\n");
    assert!(load(&off).is_ok());
}

#[test]
fn an_ingress_without_an_lb_host_is_a_warning() {
    let src = "cluster:\n  name: t\n  kubernetes_version: v1.35.2\nhosts:\n  \
               - {name: m1, address: 10.0.0.11, roles: [etcd, control-plane, worker]}\n";
    let c = load(src).unwrap();
    let warned: Vec<_> = c.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(warned, ["ingress.enabled"], "{:?}", c.warnings);
    assert!(c.warnings[0].message.contains("no host has the `lb` role"));
}

/// Image garbage collection's thresholds: percentages, the low one below the high one
/// (the kubelet's defaults standing for an unset one).
#[test]
fn image_gc_thresholds_are_percentages_with_low_below_high() {
    let with = |settings: &str| {
        BASE.replace(
            "kubernetes_version: v1.35.2\n",
            &format!("kubernetes_version: v1.35.2\n  kubelet:\n{settings}"),
        )
    };
    let ok = load(&with("    image_gc_high_threshold_percent: 100\n")).unwrap();
    assert_eq!(
        ok.inventory.cluster.kubelet.image_gc_high_threshold_percent,
        Some(100)
    );
    for (settings, expected) in [
        (
            "    image_gc_high_threshold_percent: 101\n",
            "cluster.kubelet.image_gc_high_threshold_percent: expected a percentage from 0 to 100",
        ),
        (
            // Below the kubelet's default low threshold, 80.
            "    image_gc_high_threshold_percent: 70\n",
            "cluster.kubelet.image_gc_high_threshold_percent: the low threshold (80%) must be below the high one (70%)",
        ),
        (
            "    image_gc_high_threshold_percent: 90\n    image_gc_low_threshold_percent: 90\n",
            "cluster.kubelet.image_gc_low_threshold_percent: the low threshold (90%) must be below the high one (90%)",
        ),
    ] {
        let errors = load(&with(settings)).unwrap_err().to_string();
        assert!(errors.contains(expected), "{expected}\n{errors}");
    }
}
