//! The nftables rules `k8s-boot render` writes for nodes (`k8s-boot-nodeport-filter`), loaded
//! by the real `nft` into the kernel inside a network namespace of their own (`unshare -n`,
//! so this machine's rules are never touched): only a load balancer's address reaches the
//! chat's PROXY protocol NodePort, the plain NodePort stays open, a pod's port of the same
//! number (what other nodes forward to a pod on this one) stays open, loading twice replaces
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
/// A pod on this node whose port has the NodePort's number: traffic other nodes forward to
/// it is no NodePort traffic.
const POD: &str = "10.244.9.2";

/// Connects from each `source` to `WORKER:port` and prints `source port open|closed`.
const PROBE: &str = r#"
import socket, sys
worker, pod = sys.argv[1], sys.argv[2]
listeners = []
for address, port in ((worker, 30000), (worker, 30001), (worker, 30443), (pod, 30001)):
    s = socket.socket(); s.bind((address, port)); s.listen(8); listeners.append(s)
for source, target, port in [a.split(':') for a in sys.argv[3:]]:
    c = socket.socket(); c.bind((source, 0)); c.settimeout(1.0)
    try:
        c.connect((target, int(port))); print(source, target, port, "open")
    except OSError:
        print(source, target, port, "closed")
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
         for a in {LB} {OTHER} {WORKER} {POD}; do ip addr add $a/32 dev lo; done\n\
         {nft} -f {rules}\n\
         {nft} -f {rules}\n\
         echo RULES; {nft} list table inet k8s_boot\n\
         echo PROBE; python3 {probe} {WORKER} {POD} {LB}:{WORKER}:30001 {OTHER}:{WORKER}:30001 \
           {OTHER}:{WORKER}:30000 {WORKER}:{WORKER}:30001 {OTHER}:{POD}:30001 \
           {LB}:{WORKER}:30443 {OTHER}:{WORKER}:30443\n\
         {stop}\n\
         echo AFTER; python3 {probe} {WORKER} {POD} {OTHER}:{WORKER}:30001\n",
        probe = probe.display(),
    );
    let out = run(Command::new("unshare").args(["-n", "sh", "-c", &script]));
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let (rules, rest) = text.split_once("PROBE").unwrap();
    let (probe, after) = rest.split_once("AFTER").unwrap();
    // Loaded twice, one rule: the prelude replaces the table. It names the chat's PROXY
    // protocol NodePort and the ingress's two.
    assert_eq!(rules.matches(" drop").count(), 1, "{rules}");
    assert!(rules.contains("dport { 30001, 30080, 30443 }"), "{rules}");
    let lines: Vec<&str> = probe.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines,
        [
            format!("{LB} {WORKER} 30001 open"),
            format!("{OTHER} {WORKER} 30001 closed"),
            format!("{OTHER} {WORKER} 30000 open"),
            // The node itself is no load balancer either.
            format!("{WORKER} {WORKER} 30001 closed"),
            // A pod's port of that number, reached from another node: not filtered.
            format!("{OTHER} {POD} 30001 open"),
            // The ingress's HTTPS NodePort: the LB only, too.
            format!("{LB} {WORKER} 30443 open"),
            format!("{OTHER} {WORKER} 30443 closed"),
        ],
        "{}",
        describe(&out)
    );
    // The unit's stop removes the table: the port answers everyone again.
    assert_eq!(
        after.trim(),
        format!("{OTHER} {WORKER} 30001 open"),
        "{}",
        describe(&out)
    );
}
