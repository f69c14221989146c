//! `k8s-boot conformance` checks that happen before any host is touched: its images must be
//! there, and its flags make sense. (The runs themselves: tests/lab_cluster.rs.)

use std::fs;
use std::process::Command;

const INVENTORY: &str = "\
cluster: {name: t, kubernetes_version: v1.37.2}
ssh: {key: id_test, known_hosts: known_hosts}
binaries: {dir: bin}
hosts:
  - {name: lb1, address: 192.0.2.10, roles: [lb]}
  - {name: m1, address: 192.0.2.11, roles: [etcd, control-plane, worker]}
";

fn conformance(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_k8s-boot"))
        .arg("conformance")
        .arg("--inventory")
        .arg(dir.join("hosts.yaml"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn without_the_conformance_image_nothing_is_contacted_and_the_way_to_it_is_named() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("hosts.yaml"), INVENTORY).unwrap();
    // A test image is there, the conformance image is not. 192.0.2.0/24 is TEST-NET-1: were a
    // host contacted, the run would hang or fail differently.
    let images = dir.path().join("bin/images/conformance");
    fs::create_dir_all(&images).unwrap();
    let out = conformance(dir.path(), &["--quick"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no conformance image for v1.37.2"), "{err}");
    assert!(err.contains(&images.display().to_string()), "{err}");
    assert!(err.contains("lab build --conformance"), "{err}");

    // The same as JSON on stdout with --output json.
    let out = conformance(dir.path(), &["--quick", "--output", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["command"], "conformance");
    assert_eq!(json["error"]["exit_code"], 2);
}

#[test]
fn flags_that_cannot_work_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("hosts.yaml"), INVENTORY).unwrap();
    for args in [
        &["--quick", "--focus", "x"][..],
        &["--parallel", "0"],
        &["--parallel", "65"],
        &["--timeout", "0"],
    ] {
        let out = conformance(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}
