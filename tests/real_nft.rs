//! The nftables rules `k8s-boot render` writes for nodes (`k8s-boot-nodeport-filter`), loaded
//! by the real `nft` into the kernel inside a network namespace of their own (`unshare -n`,
//! so this machine's rules are never touched): only a load balancer's address reaches the
//! chat's PROXY protocol NodePort, the plain NodePort stays open, loading twice replaces
//! rather than duplicates, and the unit's stop command removes the table.
//!
//! The "hosts" are addresses on the namespace's loopback; locally sent packets pass the
//! prerouting hook when they come back in through `lo`, as a remote host's would.

mod common;

use common::{describe, host, require_program, run};
use std::process::Command;

const LB: &str = "10.50.0.1";
const OTHER: &str = "10.50.0.2";
const WORKER: &str = "10.50.0.3";

/// Connects from each `source` to `WORKER:port` and prints `source port open|closed`.
const PROBE: &str = r#"
import socket, sys
worker = sys.argv[1]
listeners = []
for port in (30000, 30001):
    s = socket.socket(); s.bind((worker, port)); s.listen(8); listeners.append(s)
for source, port in [(a.split(':')[0], int(a.split(':')[1])) for a in sys.argv[2:]]:
    c = socket.socket(); c.bind((source, 0)); c.settimeout(1.0)
    try:
        c.connect((worker, port)); print(source, port, "open")
    except OSError:
        print(source, port, "closed")
    c.close()
"#;

#[test]
fn only_the_load_balancer_reaches_the_proxy_protocol_node_port() {
    let nft = require_program("nft", "nftables");
    require_program("unshare", "util-linux");
    let tmp = tempfile::tempdir().unwrap();
    let r = common::render(
        tmp.path(),
        "nft",
        &common::inventory_yaml(
            "nfttest",
            &[
                host("lb1", LB, &["lb"]),
                host("m1", OTHER, &["etcd", "control-plane"]),
                host("w1", WORKER, &["worker"]),
            ],
            "",
        ),
    );
    let rules = r.host_file("w1", "/etc/k8s-boot/nodeport-filter.nft");
    let unit = std::fs::read_to_string(
        r.host_file("w1", "/etc/systemd/system/k8s-boot-nodeport-filter.service"),
    )
    .unwrap();
    let stop = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStop="))
        .expect("an ExecStop line");
    let probe = tmp.path().join("probe.py");
    std::fs::write(&probe, PROBE).unwrap();
    let nft = nft.display();
    let rules = rules.display();
    let script = format!(
        "set -e\n\
         ip link set lo up\n\
         for a in {LB} {OTHER} {WORKER}; do ip addr add $a/32 dev lo; done\n\
         {nft} -f {rules}\n\
         {nft} -f {rules}\n\
         echo RULES; {nft} list table inet k8s_boot\n\
         echo PROBE; python3 {probe} {WORKER} {LB}:30001 {OTHER}:30001 {OTHER}:30000 {WORKER}:30001\n\
         {stop}\n\
         echo AFTER; python3 {probe} {WORKER} {OTHER}:30001\n",
        probe = probe.display(),
    );
    let out = run(Command::new("unshare").args(["-n", "sh", "-c", &script]));
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let (rules, rest) = text.split_once("PROBE").unwrap();
    let (probe, after) = rest.split_once("AFTER").unwrap();
    // Loaded twice, one rule per family: the prelude replaces the table.
    assert_eq!(rules.matches("dport 30001").count(), 2, "{rules}");
    let lines: Vec<&str> = probe.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines,
        [
            format!("{LB} 30001 open"),
            format!("{OTHER} 30001 closed"),
            format!("{OTHER} 30000 open"),
            // The node itself is no load balancer either.
            format!("{WORKER} 30001 closed"),
        ],
        "{}",
        describe(&out)
    );
    // The unit's stop removes the table: the port answers everyone again.
    assert_eq!(
        after.trim(),
        format!("{OTHER} 30001 open"),
        "{}",
        describe(&out)
    );
}
