//! Install command checks that happen before any host is touched.

use std::fs;
use std::process::Command;

const INVENTORY: &str = "\
cluster: {name: t, kubernetes_version: v1.36.0}
ssh: {key: id_test, known_hosts: known_hosts}
binaries: {dir: bin}
hosts:
  - {name: lb1, address: 192.0.2.10, roles: [lb]}
  - {name: m1, address: 192.0.2.11, roles: [etcd, control-plane, worker]}
";

fn k8s_boot(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_k8s-boot"))
        .args(args)
        .arg("--inventory")
        .arg(dir.join("hosts.yaml"))
        .output()
        .unwrap()
}

#[test]
fn missing_binaries_are_all_listed_before_any_host_is_contacted() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("hosts.yaml"), INVENTORY).unwrap();
    fs::create_dir_all(dir.path().join("bin")).unwrap();
    fs::write(dir.path().join("bin/etcd"), "#!/bin/sh\n").unwrap(); // present but not executable
                                                                    // 192.0.2.0/24 is TEST-NET-1: were a host contacted, the run would hang or fail
                                                                    // differently; the binaries check must come first.
    let out = k8s_boot(dir.path(), &["install", "--phases", "binaries,etcd"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("binaries missing or not executable"), "{err}");
    assert!(err.contains("etcd, etcdctl"), "{err}");
    assert!(
        !err.contains("kubelet"),
        "only the selected phases' binaries: {err}"
    );

    let out = k8s_boot(dir.path(), &["install"]);
    let err = String::from_utf8_lossy(&out.stderr);
    for b in [
        "kube-apiserver",
        "kubelet",
        "kube-proxy",
        "containerd",
        "runc",
        "cni/bridge",
        "kubectl",
    ] {
        assert!(err.contains(b), "{b} not listed: {err}");
    }
}

#[test]
fn unknown_phase_or_host_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("hosts.yaml"), INVENTORY).unwrap();
    let out = k8s_boot(dir.path(), &["install", "--phases", "etcd,kubelet"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown phase `kubelet`") && err.contains("control-plane"),
        "{err}"
    );
    let out = k8s_boot(dir.path(), &["install", "--hosts", "m9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown host `m9`"));
    let out = k8s_boot(dir.path(), &["reset", "--hosts", "m9", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn reset_without_a_terminal_needs_yes() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("hosts.yaml"), INVENTORY).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_k8s-boot"))
        .args(["reset", "--inventory"])
        .arg(dir.path().join("hosts.yaml"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("confirm with --yes"));
}

#[test]
fn ready_timeout_takes_whole_seconds_of_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("hosts.yaml"), INVENTORY).unwrap();
    for (command, value) in [("install", "0"), ("deploy", "-5s"), ("install", "2m")] {
        let flag = format!("--ready-timeout={value}");
        let out = k8s_boot(dir.path(), &[command, &flag]);
        assert_eq!(out.status.code(), Some(2), "{command} {value}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--ready-timeout"), "{err}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_k8s-boot"))
        .args(["install", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--ready-timeout <SECONDS>") && help.contains("[default: 300]"),
        "{help}"
    );
}

#[test]
fn remove_node_checks_its_host_and_confirmation_before_anything() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("hosts.yaml"), INVENTORY).unwrap();
    // An unknown host: exit 2, the hosts named; nothing written (no PKI created).
    let out = k8s_boot(dir.path(), &["remove-node", "m9", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown host `m9`") && err.contains("lb1, m1"),
        "{err}"
    );
    // No terminal and no --yes: refused before any host is contacted.
    let out = Command::new(env!("CARGO_BIN_EXE_k8s-boot"))
        .args(["remove-node", "m1", "--inventory"])
        .arg(dir.path().join("hosts.yaml"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("confirm with --yes"));
    for flag in ["--drain-timeout=0", "--drain-timeout=2m"] {
        let out = k8s_boot(dir.path(), &["upgrade", flag]);
        assert_eq!(out.status.code(), Some(2), "{flag}");
    }
    assert!(!dir.path().join("pki").exists());
}
