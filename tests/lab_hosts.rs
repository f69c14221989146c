//! Real lab hosts: `k8s_boot::lab::up` boots systemd-nspawn machines from a debootstrap rootfs,
//! then real `ssh` (strict host key checking against the lab's known_hosts) logs in to each,
//! the hosts reach each other, a guest reboot is survived, a second `up` changes nothing, and
//! `down` leaves no process, mount, cgroup or bridge behind.
//!
//! Needs root (bridge, overlay mounts, nspawn) and the Debian packages `debootstrap` and
//! `systemd-container`; it fails, never skips, without them. The rootfs (~50 s of debootstrap
//! the first time) is cached in `$K8S_BOOT_LAB_CACHE`, else in `target/tmp/lab-cache`.
//! `K8S_BOOT_LAB_TEST_HOSTS` sets the number of hosts (default 2).

use k8s_boot::inventory::{Cluster, Role};
use k8s_boot::lab::{self, LabOptions, BRIDGE, CACHE_ENV};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Takes the lab down even when an assertion fails half-way.
struct DownOnDrop(PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        if let Err(e) = lab::down(&self.0) {
            eprintln!("cleanup: lab down {} failed: {e}", self.0.display());
        }
    }
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|r| r.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Real ssh with the inventory's key and known_hosts; nothing else is trusted or read.
fn ssh(cluster: &Cluster, known_hosts: &Path, addr: &str, script: &str) -> Output {
    let key = cluster.resolve(cluster.inventory.ssh.key.as_deref().expect("ssh.key set"));
    Command::new("ssh")
        .args(["-F", "/dev/null", "-i"])
        .arg(key)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=5",
        ])
        .arg(format!("{}@{addr}", cluster.inventory.ssh.user))
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh (Debian package openssh-client)")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

fn ssh_ok(cluster: &Cluster, addr: &str, script: &str) -> String {
    let kh = PathBuf::from(&cluster.inventory.ssh.known_hosts);
    let out = ssh(cluster, &kh, addr, script);
    assert!(
        out.status.success(),
        "ssh {addr} `{script}` failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// systemd-nspawn processes working on anything under `dir`.
fn nspawn_processes(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.contains("systemd-nspawn") && cmd.contains(&needle))
                .then(|| format!("{pid}: {cmd}"))
        })
        .collect()
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&needle)))
        .map(str::to_string)
        .collect()
}

#[test]
fn lab_hosts_boot_answer_ssh_and_go_away() {
    assert!(
        is_root(),
        "tests/lab_hosts.rs needs root: `k8s-boot lab` creates a bridge, overlay mounts and \
         systemd-nspawn machines. Run the tests as root (they do not skip)."
    );
    let cache = std::env::var_os(CACHE_ENV)
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-cache"));
    let n: usize = std::env::var("K8S_BOOT_LAB_TEST_HOSTS")
        .ok()
        .map(|v| v.parse().expect("K8S_BOOT_LAB_TEST_HOSTS is a number"))
        .unwrap_or(2);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap().join("lab");
    let opts = LabOptions {
        dir: dir.clone(),
        hosts: n,
        kubernetes_version: "v1.36.0".into(),
        cache_dir: Some(cache.clone()),
    };
    let _down = DownOnDrop(dir.clone());

    // up
    let report = lab::up(&opts).unwrap_or_else(|e| panic!("lab up failed: {e}"));
    eprintln!(
        "lab up: {n} hosts ssh-reachable and running in {:.2} s (rootfs {})",
        report.elapsed.as_secs_f64(),
        if report.rootfs_cached {
            "cached"
        } else {
            "built by debootstrap"
        }
    );
    assert_eq!(report.hosts.len(), n);
    assert!(report.already_running.is_empty());
    assert_eq!(report.inventory, dir.join("hosts.yaml"));

    // The inventory is valid, names these hosts, and points at the lab key and known_hosts.
    let cluster = Cluster::load(&report.inventory).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cluster.inventory.cluster.name, "lab");
    assert_eq!(cluster.version(), "v1.36.0");
    assert_eq!(cluster.inventory.ssh.user, "root");
    let key = PathBuf::from(cluster.inventory.ssh.key.clone().unwrap());
    assert_eq!(key, dir.join("id_ed25519"));
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let known_hosts = PathBuf::from(&cluster.inventory.ssh.known_hosts);
    assert_eq!(known_hosts, dir.join("known_hosts"));
    assert!(cluster.resolve(&cluster.inventory.binaries.dir).is_dir());
    assert!(cluster.inventory.chat.enabled);
    assert_eq!(cluster.inventory.chat.replicas, 1);
    assert_eq!(
        cluster.hosts_with(Role::ControlPlane).count(),
        if n >= 4 { 3 } else { 1 }
    );
    assert_eq!(cluster.hosts_with(Role::Etcd).count() % 2, 1);
    let inv_hosts: Vec<(String, String)> = cluster
        .inventory
        .hosts
        .iter()
        .map(|h| (h.name.clone(), h.address.to_string()))
        .collect();
    let lab_hosts: Vec<(String, String)> = report
        .hosts
        .iter()
        .map(|h| (h.name.clone(), h.address.to_string()))
        .collect();
    assert_eq!(inv_hosts, lab_hosts);
    let kh = fs::read_to_string(&known_hosts).unwrap();
    for (_, addr) in &lab_hosts {
        let line = kh
            .lines()
            .find(|l| l.starts_with(&format!("{addr} ")))
            .unwrap();
        assert!(line.contains(" ssh-ed25519 AAAA"), "{line}");
    }

    // Every host: strict ssh login, systemd fully up, the right name.
    for (name, addr) in &lab_hosts {
        let out = ssh_ok(&cluster, addr, "systemctl is-system-running; hostname");
        assert_eq!(out, format!("running\n{name}"), "host {name}");
    }
    // Strict checking is real: the same host with an empty known_hosts is refused.
    let empty = tmp.path().join("empty_known_hosts");
    fs::write(&empty, "").unwrap();
    let refused = ssh(&cluster, &empty, &lab_hosts[0].1, "true");
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("Host key verification failed"),
        "{}",
        text(&refused.stderr)
    );

    // Hosts reach each other by address and by name (ICMP and TCP).
    for (i, (name, addr)) in lab_hosts.iter().enumerate() {
        let (other_name, other_addr) = &lab_hosts[(i + 1) % n];
        if other_name == name {
            continue;
        }
        ssh_ok(
            &cluster,
            addr,
            &format!(
                "ping -c1 -W2 {other_addr} >/dev/null && ping -c1 -W2 {other_name} >/dev/null && \
                 timeout 3 bash -c 'exec 3<>/dev/tcp/{other_addr}/22 && head -c 4 <&3' | grep -q SSH-"
            ),
        );
    }

    // A guest reboot: nspawn exits with 133 and the supervisor boots the host again.
    let (rname, raddr) = lab_hosts.last().unwrap().clone();
    let rpid = report.hosts.last().unwrap().pid;
    let boot_id = ssh_ok(&cluster, &raddr, "cat /proc/sys/kernel/random/boot_id");
    let _ = ssh(&cluster, &known_hosts, &raddr, "systemctl reboot");
    let t = Instant::now();
    loop {
        let out = ssh(
            &cluster,
            &known_hosts,
            &raddr,
            "systemctl is-system-running --wait; cat /proc/sys/kernel/random/boot_id",
        );
        let o = text(&out.stdout);
        if out.status.success() && o.starts_with("running") && !o.ends_with(&boot_id) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{rname} did not come back after reboot: {o} {}",
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!(
        "lab: {rname} rebooted and was running again in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    // A second up leaves the running hosts alone.
    let again = lab::up(&opts).unwrap_or_else(|e| panic!("second lab up failed: {e}"));
    eprintln!(
        "lab up again (all running): {:.2} s",
        again.elapsed.as_secs_f64()
    );
    assert!(again.rootfs_cached);
    assert_eq!(again.hosts, report.hosts, "same hosts, same supervisors");
    assert_eq!(
        again.already_running,
        lab_hosts.iter().map(|h| h.0.clone()).collect::<Vec<_>>()
    );
    assert!(again.hosts.iter().any(|h| h.pid == rpid));

    let status = lab::status(&dir).unwrap();
    assert_eq!(status.len(), n);
    for (h, ssh_open) in &status {
        assert!(ssh_open, "status: {} ssh closed", h.name);
    }

    // down: everything but the key, the inventory and the rootfs cache goes away.
    let t = Instant::now();
    let stopped = lab::down(&dir).unwrap_or_else(|e| panic!("lab down failed: {e}"));
    eprintln!(
        "lab down: {stopped} hosts in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(stopped, n);
    assert_eq!(nspawn_processes(&dir), Vec::<String>::new());
    for h in &report.hosts {
        assert!(
            !Path::new(&format!("/proc/{}", h.pid)).exists()
                || fs::read_to_string(format!("/proc/{}/stat", h.pid))
                    .is_ok_and(|s| s.contains(") Z")),
            "supervisor {} of {} still runs",
            h.pid,
            h.name
        );
    }
    assert_eq!(mounts_under(&dir), Vec::<String>::new());
    assert!(
        !Path::new("/sys/class/net").join(BRIDGE).exists(),
        "bridge {BRIDGE} still exists"
    );
    assert!(!dir.join("lab.json").exists());
    assert!(!dir.join("hosts").exists());
    assert!(!known_hosts.exists());
    assert!(key.exists(), "the lab key is kept");
    assert!(cache
        .join("rootfs-bookworm/usr/lib/systemd/systemd")
        .exists());
    for root in [
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ] {
        for h in &report.hosts {
            let cg = Path::new(root).join("k8s-boot-lab").join(&h.name);
            assert!(!cg.exists(), "cgroup {} left", cg.display());
        }
    }

    // Twice is fine.
    assert_eq!(lab::down(&dir).unwrap(), 0);
    assert!(lab::status(&dir).unwrap().is_empty());
}
