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
            "unknown key `allow_cgroupv1`; did you mean `allow_cgroup_v1`? (known keys: allow_cgroup_v1)",
        ],
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
];

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
