//! In the lab (real systemd + sshd hosts, systemd-nspawn; needs root): the etcd and load
//! balancer phases onto 4 hosts — a 3-member etcd cluster from the lab's build of upstream
//! etcd and Debian's nginx — then idempotency, targeted restarts, faults and `reset`, with
//! `--phases` selecting a subset. The whole install is `tests/lab_cluster.rs`.

mod common;

use common::{describe, require_program, run, wait_for, TestLab};
use serde_json::Value;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

const PHASES: &str = "preflight,prepare,pki,binaries,etcd,lb,verify";

/// `install` with JSON output: (exit code, report).
fn install(lab: &TestLab, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--phases", PHASES];
    args.extend_from_slice(extra);
    lab.install(&args)
}

fn main_pid(lab: &TestLab, addr: &str, service: &str) -> String {
    lab.sh(
        addr,
        &format!("systemctl show -p MainPID --value {service}"),
    )
}

fn etcd_pids(lab: &TestLab) -> Vec<String> {
    MEMBERS.iter().map(|a| main_pid(lab, a, "etcd")).collect()
}

const LB: &str = "10.77.0.11";
const MEMBERS: [&str; 3] = ["10.77.0.12", "10.77.0.13", "10.77.0.14"];

/// status of `phase` on `host` in an install report.
fn status<'a>(report: &'a Value, host: &str, phase: &str) -> &'a str {
    let h = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host)
        .unwrap();
    h["phases"][phase]["status"].as_str().unwrap_or("-")
}

fn all_unchanged(report: &Value) -> bool {
    report["hosts"].as_array().unwrap().iter().all(|h| {
        h["phases"]
            .as_object()
            .unwrap()
            .values()
            .all(|p| p["status"] == "unchanged")
    })
}

/// Real etcdctl on this machine against the lab members, as the holder of `client`
/// (a certificate stem of the lab PKI).
fn etcdctl(
    lab: &TestLab,
    endpoints: &[String],
    client: &str,
    args: &[&str],
) -> std::process::Output {
    let pki = lab.dir.join("pki");
    run(Command::new(require_program("etcdctl", "etcd-client"))
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg(format!("--cacert={}", pki.join("etcd/ca.crt").display()))
        .arg(format!(
            "--cert={}",
            pki.join(format!("{client}.crt")).display()
        ))
        .arg(format!(
            "--key={}",
            pki.join(format!("{client}.key")).display()
        ))
        .args(args))
}

fn etcd_cluster_healthy(lab: &TestLab) -> Result<(), String> {
    let endpoints: Vec<String> = MEMBERS
        .iter()
        .map(|a| format!("https://{a}:2379"))
        .collect();
    let args = ["--command-timeout=5s", "endpoint", "health", "--cluster"];
    let out = etcdctl(lab, &endpoints, "etcd/healthcheck-client", &args);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() && text.matches("is healthy").count() == 3 {
        Ok(())
    } else {
        Err(text)
    }
}

#[test]
fn lab_install_end_to_end() {
    let lab = TestLab::up("lab-install", 4);
    assert!(lab.dir.join("binaries/etcd").exists() && lab.dir.join("binaries/etcdctl").exists());
    let debian_nginx_conf = lab.sh(LB, "sha256sum < /etc/nginx/nginx.conf");

    // First install: everything changes, and the etcd cluster is healthy over mutual TLS.
    let started = Instant::now();
    let (code, first) = install(&lab, &[]);
    let first_secs = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{first:#}");
    for m in ["m1", "m2", "m3"] {
        assert_eq!(status(&first, m, "etcd"), "changed");
        assert_eq!(status(&first, m, "verify"), "unchanged");
    }
    assert_eq!(status(&first, "lb1", "lb"), "changed");
    wait_for(
        "etcd cluster health from this machine",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || etcd_cluster_healthy(&lab),
    );
    // A client certificate of another CA is refused (the front-proxy CA signs a client cert too).
    let foreign = etcdctl(
        &lab,
        &[format!("https://{}:2379", MEMBERS[0])],
        "front-proxy-client",
        &["--command-timeout=3s", "--dial-timeout=3s", "get", "x"],
    );
    assert!(
        !foreign.status.success(),
        "etcd accepted a foreign client cert"
    );

    // Second install: nothing changes and nothing restarts.
    let pids = etcd_pids(&lab);
    let nginx_pid = main_pid(&lab, LB, "nginx");
    let started = Instant::now();
    let (code, second) = install(&lab, &[]);
    let second_secs = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{second:#}");
    assert!(
        all_unchanged(&second),
        "second install changed something: {second:#}"
    );
    assert_eq!(etcd_pids(&lab), pids);
    assert_eq!(main_pid(&lab, LB, "nginx"), nginx_pid);
    eprintln!("first install {first_secs:.1} s, no-change re-run {second_secs:.1} s");

    // One config value changed (the chat port on the load balancer): only nginx restarts.
    let inv = fs::read_to_string(lab.dir.join("hosts.yaml")).unwrap();
    let moved = inv.replacen(
        "chat:\n  enabled: true\n",
        "chat:\n  enabled: true\n  port: 30080\n",
        1,
    );
    assert_ne!(moved, inv, "lab inventory layout changed: update this test");
    fs::write(lab.dir.join("hosts.yaml"), &moved).unwrap();
    // --dry-run reports the change and changes nothing.
    let conf_before = lab.sh(LB, "sha256sum < /etc/nginx/nginx.conf");
    let (code, dry) = install(&lab, &["--dry-run"]);
    assert_eq!(code, 0, "{dry:#}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(status(&dry, "lb1", "lb"), "changed");
    let lb_changes = dry["hosts"][0]["phases"]["lb"]["changes"].to_string();
    assert!(
        lb_changes.contains("write /etc/nginx/nginx.conf") && lb_changes.contains("reload nginx"),
        "{lb_changes}"
    );
    assert_eq!(status(&dry, "m1", "etcd"), "unchanged");
    assert_eq!(lab.sh(LB, "sha256sum < /etc/nginx/nginx.conf"), conf_before);
    assert_eq!(main_pid(&lab, LB, "nginx"), nginx_pid);
    let (code, third) = install(&lab, &[]);
    assert_eq!(code, 0, "{third:#}");
    assert_eq!(status(&third, "lb1", "lb"), "changed");
    for m in ["m1", "m2", "m3"] {
        assert_eq!(status(&third, m, "etcd"), "unchanged");
    }
    // Reloaded, not restarted: the same master process, serving the new port (below).
    assert_eq!(
        main_pid(&lab, LB, "nginx"),
        nginx_pid,
        "a configuration change reloads nginx"
    );
    assert_eq!(etcd_pids(&lab), pids);
    assert!(lab.sh(LB, "ss -Htln 'sport = :30080'").contains("30080"));

    // status: etcd and nginx active and healthy; the services this machine cannot run are
    // reported as not active.
    let out = lab.k8s_boot(&[
        "status",
        "--inventory",
        &lab.inventory(),
        "--output",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "kubelet and friends are not installed here"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["healthy"], false);
    let hosts = &report["hosts"];
    let service = |host: &str, name: &str| -> Value {
        hosts
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == host)
            .unwrap()["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == name)
            .unwrap()
            .clone()
    };
    for m in ["m1", "m2", "m3"] {
        assert_eq!(service(m, "etcd")["healthy"], true);
        let etcd = k8s_boot::versions::profile_for(k8s_boot::lab::DEFAULT_KUBERNETES_VERSION)
            .unwrap()
            .etcd;
        assert_eq!(service(m, "etcd")["version"], etcd);
        assert_eq!(service(m, "kubelet")["active"], false);
    }
    assert_eq!(service("lb1", "nginx")["healthy"], true);

    // A binary corrupted on a host is detected by checksum and replaced.
    lab.sh(MEMBERS[1], "echo garbage >> /usr/local/bin/etcdctl");
    let (code, fourth) = install(&lab, &[]);
    assert_eq!(code, 0, "{fourth:#}");
    assert_eq!(status(&fourth, "m2", "binaries"), "changed");
    assert_eq!(status(&fourth, "m1", "binaries"), "unchanged");
    let local = run(Command::new("sha256sum").arg(lab.dir.join("binaries/etcdctl")));
    let local_sha = String::from_utf8_lossy(&local.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        lab.sh(
            MEMBERS[1],
            "sha256sum < /usr/local/bin/etcdctl | cut -d' ' -f1"
        ),
        local_sha
    );

    // sshd down on one host: that host fails with a clear message, the others finish; once
    // sshd is back, a re-run converges.
    lab.sh(MEMBERS[2], "systemd-run --on-active=15s --timer-property=AccuracySec=100ms --unit=ssh-back systemctl start ssh.service && systemctl stop ssh.service");
    let (code, fifth) = install(&lab, &[]);
    assert_eq!(code, 1);
    assert_eq!(status(&fifth, "m3", "connect"), "failed");
    let m3 = fifth["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "m3")
        .unwrap();
    let err = m3["phases"]["connect"]["error"].as_str().unwrap();
    assert!(
        err.contains("cannot connect to 10.77.0.14:22") && !err.contains("m3"),
        "{err}"
    );
    assert_eq!(status(&fifth, "m1", "verify"), "unchanged");
    assert_eq!(status(&fifth, "lb1", "verify"), "unchanged");
    wait_for(
        "sshd on m3 again",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            if lab.ssh(MEMBERS[2], "true").status.success() {
                Ok(())
            } else {
                Err("down".into())
            }
        },
    );
    let (code, sixth) = install(&lab, &[]);
    assert_eq!(code, 0, "{sixth:#}");
    assert!(all_unchanged(&sixth), "{sixth:#}");

    // A host key that differs from known_hosts is refused.
    let kh = fs::read_to_string(lab.dir.join("known_hosts")).unwrap();
    let lb_key = kh
        .lines()
        .find(|l| l.starts_with(&format!("{LB} ")))
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    let forged: String = kh
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{} ", MEMBERS[0])) {
                format!("{} ssh-ed25519 {lb_key}\n", MEMBERS[0])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(lab.dir.join("known_hosts"), forged).unwrap();
    let (code, seventh) = install(&lab, &[]);
    assert_eq!(code, 1);
    let m1 = seventh["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "m1")
        .unwrap();
    assert!(
        m1["phases"]["connect"]["error"]
            .as_str()
            .unwrap()
            .contains("host key refused"),
        "{seventh:#}"
    );
    fs::write(lab.dir.join("known_hosts"), kh).unwrap();

    // reset removes exactly what was recorded; the distro nginx.conf comes back.
    let files: Vec<String> = MEMBERS
        .iter()
        .chain([LB].iter())
        .map(|a| lab.sh(a, "cat /var/lib/k8s-boot/state.json"))
        .collect();
    let inv_path = lab.inventory();
    let reset = lab.k8s_boot(&["reset", "--inventory", &inv_path, "--yes"]);
    assert!(reset.status.success(), "{}", describe(&reset));
    for (addr, state) in MEMBERS.iter().chain([LB].iter()).zip(&files) {
        let state: Value = serde_json::from_str(state).unwrap();
        let paths: Vec<&str> = state["files"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert!(!paths.is_empty());
        for p in paths {
            let exists = lab.ssh(addr, &format!("test -e {p}")).status.success();
            if p == "/etc/nginx/nginx.conf" {
                assert_eq!(
                    lab.sh(addr, "sha256sum < /etc/nginx/nginx.conf"),
                    debian_nginx_conf,
                    "backup restored"
                );
            } else {
                assert!(!exists, "{addr}: {p} left behind by reset");
            }
        }
        assert!(!lab.ssh(addr, "test -e /var/lib/k8s-boot").status.success());
        assert!(
            lab.ssh(addr, "ls -A /etc/kubernetes 2>/dev/null")
                .stdout
                .is_empty(),
            "{addr}: /etc/kubernetes not empty"
        );
        for service in state["services"].as_array().unwrap() {
            let s = service.as_str().unwrap();
            assert_ne!(
                lab.sh(addr, &format!("systemctl is-active {s} || true")),
                "active",
                "{addr}: {s}"
            );
        }
    }
    // etcd data is kept without --purge-data.
    assert!(lab
        .ssh(MEMBERS[0], "test -d /var/lib/etcd/member")
        .status
        .success());

    // And install works again after reset.
    let (code, again) = install(&lab, &[]);
    assert_eq!(code, 0, "{again:#}");
    wait_for(
        "etcd cluster health after reinstall",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || etcd_cluster_healthy(&lab),
    );
}
