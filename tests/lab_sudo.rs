//! Install as a non-root user through `sudo -n`, onto one lab host (needs root on this
//! machine to start the lab): the etcd phase for real, files owned by root, then reset.

mod common;

use common::{describe, wait_for, TestLab};
use std::fs;
use std::time::Duration;

#[test]
fn install_and_reset_through_sudo_as_a_non_root_user() {
    let lab = TestLab::up("lab-sudo", 1);
    let root_ssh = |cmd: &str| lab.sh("10.77.0.11", cmd);

    // A deploy user with passwordless sudo and the lab key.
    root_ssh(
        "useradd -m -s /bin/sh deploy && install -d -m 700 -o deploy -g deploy ~deploy/.ssh \
         && install -m 600 -o deploy -g deploy /root/.ssh/authorized_keys ~deploy/.ssh/authorized_keys \
         && echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy && chmod 440 /etc/sudoers.d/deploy",
    );
    let inv = lab.dir.join("hosts.yaml");
    let text = fs::read_to_string(&inv).unwrap();
    let as_deploy = text.replacen("  user: root\n", "  user: deploy\n  sudo: true\n", 1);
    assert_ne!(
        as_deploy, text,
        "lab inventory layout changed: update this test"
    );
    fs::write(&inv, as_deploy).unwrap();

    let inv_s = inv.to_str().unwrap();
    let phases = "preflight,prepare,pki,binaries,etcd,verify";
    let out = lab.k8s_boot(&["install", "--inventory", inv_s, "--phases", phases]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        root_ssh("stat -c '%U %a' /etc/kubernetes/pki/etcd/server-m1.key"),
        "root 600"
    );
    assert_eq!(root_ssh("systemctl is-active etcd"), "active");
    // Nothing to do on a second run, through sudo as well.
    let again = lab.k8s_boot(&["install", "--inventory", inv_s, "--phases", phases]);
    assert!(
        again.status.success()
            && String::from_utf8_lossy(&again.stdout).contains("0 host phase(s) changed"),
        "{}",
        describe(&again)
    );

    // Without the sudo rule the same run fails clearly instead of half-installing.
    root_ssh("rm /etc/sudoers.d/deploy && echo changed >> /etc/etcd/etcd.yaml");
    let denied = lab.k8s_boot(&["install", "--inventory", inv_s, "--phases", phases]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&denied.stdout).contains("sudo"),
        "{}",
        describe(&denied)
    );
    root_ssh("echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy && chmod 440 /etc/sudoers.d/deploy");

    let reset = lab.k8s_boot(&["reset", "--inventory", inv_s, "--yes"]);
    assert!(reset.status.success(), "{}", describe(&reset));
    wait_for(
        "etcd stopped",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            let state = root_ssh("systemctl is-active etcd || true");
            if state == "active" {
                Err(state)
            } else {
                Ok(())
            }
        },
    );
    assert_eq!(
        root_ssh("ls /etc/etcd /var/lib/k8s-boot 2>&1 | grep -c 'No such file' || true"),
        "2"
    );
}
