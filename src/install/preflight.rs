//! The `preflight` phase: read-only checks of a host, every failure listed at once. Only
//! what the selected phases need is checked.

use super::phases::{self, PhaseId};
use super::remote::Remote;
use super::state::HostState;
use super::steps::HostCtx;
use super::StepError;
use crate::inventory::Role;

/// Preflight line for `mount` (`/sys/fs/cgroup`): the kubelet refuses cgroup v1 since v1.35
/// unless the inventory allows it.
fn cgroup_v2_check(mount: &str) -> String {
    format!(
        "fs=$(stat -fc %T {mount} 2>/dev/null); [ \"$fs\" = cgroup2fs ] || fail \"cgroup v1 host \
         ({mount} is ${{fs:-not mounted}}, not cgroup2fs): the kubelet refuses cgroup v1 since \
         Kubernetes v1.35 - boot the host with cgroup v2 (systemd.unified_cgroup_hierarchy=1) or \
         set cluster.kubelet.allow_cgroup_v1: true in the inventory\"\n"
    )
}

pub fn check(cx: &HostCtx, state: &HostState, remote: &dyn Remote) -> Result<(), StepError> {
    let script = script(cx, state);
    let out = remote.run(&script)?;
    let mut failures: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("FAIL "))
        .map(String::from)
        .collect();
    if let Some(t) = out.lines().find_map(|l| l.strip_prefix("TIME ")) {
        let remote: i64 = t.trim().parse().unwrap_or(0);
        let local = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if (remote - local).abs() > 30 {
            failures.push(format!(
                "clock differs from this machine by {} s (certificates would look not yet valid or expired); sync time (NTP)",
                remote - local
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(StepError::Preflight(failures))
    }
}

/// The check script: a `FAIL <reason>` line per failure, and `TIME <epoch seconds>`.
fn script(cx: &HostCtx, state: &HostState) -> String {
    let (host, run) = (cx.host, cx.run);
    let node = (host.has(Role::ControlPlane) || host.has(Role::Worker))
        && (run.selected(PhaseId::Runtime) || run.selected(PhaseId::Node));
    let mut script = String::from("fail() { echo \"FAIL $*\"; }\n");
    script += "case $(uname -m) in x86_64|aarch64) ;; *) fail \"unsupported architecture $(uname -m)\";; esac\n";
    script += "[ -d /run/systemd/system ] || fail 'systemd is not running as init'\n";
    script += "for t in sha256sum stat sync mv systemctl ss; do command -v $t >/dev/null || fail \"missing command $t\"; done\n";
    script += "avail=$(df -Pk / | awk 'NR==2{print $4}'); [ \"$avail\" -ge 2097152 ] || fail \"less than 2 GiB free on / ($avail KiB)\"\n";
    script += "echo TIME $(date +%s)\n";
    if node {
        script += "[ -z \"$(swapon --noheadings 2>/dev/null)\" ] || fail 'swap is on (the kubelet refuses to run with swap)'\n";
        // /proc rather than /sys/module: containers often have no /sys/module.
        script += "grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || fail 'kernel module overlay unavailable'\n";
        script += "[ -d /proc/sys/net/bridge ] || modprobe br_netfilter 2>/dev/null || fail 'kernel module br_netfilter unavailable'\n";
    }
    let kubelet =
        (host.has(Role::ControlPlane) || host.has(Role::Worker)) && run.selected(PhaseId::Node);
    if kubelet && !run.cluster.inventory.cluster.kubelet.allow_cgroup_v1 {
        script += &cgroup_v2_check("/sys/fs/cgroup");
    }
    if host.has(Role::Lb) && run.selected(PhaseId::Lb) {
        script += "command -v nginx >/dev/null || fail 'nginx is not installed (Debian: nginx libnginx-mod-stream)'\n";
        script += "nginx -V 2>&1 | grep -q -- '--with-stream' || ls /etc/nginx/modules-enabled/*stream* >/dev/null 2>&1 || fail 'nginx has no stream module (Debian: libnginx-mod-stream)'\n";
    }
    for c in run.components_on(host) {
        if let Some(user) = c.user {
            script += &format!("id -u {user} >/dev/null 2>&1 || command -v useradd >/dev/null || fail 'useradd is missing (Debian: passwd): {} runs as user {user}'\n", c.service);
        }
        if c.service == crate::catalog::NODEPORT_FILTER {
            script += "command -v nft >/dev/null || fail 'nft is missing (Debian: nftables): only the load balancers may reach the chat PROXY protocol NodePort, and nft filters it'\n";
        }
    }
    if (host.has(Role::ControlPlane) && run.selected(PhaseId::ControlPlane)) || node {
        script += "command -v curl >/dev/null || fail 'curl is missing (health checks use it)'\n";
    }
    for (port, owner) in phases::ports(run.cluster, host) {
        let phase = phases::of_service(owner);
        if state.services.contains(owner) || phase.is_some_and(|p| !run.selected(p.id)) {
            continue; // ours from an earlier run, or not installed now
        }
        script += &format!(
            "ss -Htln 'sport = :{port}' | grep -q . && fail 'port {port} (for {owner}) is already in use'\n"
        );
    }
    script += "true\n";
    script
}

#[cfg(test)]
mod tests {
    use super::cgroup_v2_check;
    use std::process::Command;

    fn run(mount: &str) -> String {
        let script = format!("fail() {{ echo \"FAIL $*\"; }}\n{}", cgroup_v2_check(mount));
        let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn cgroup_check_refuses_anything_but_cgroup2_and_names_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let out = run(dir.path().to_str().unwrap());
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.starts_with("FAIL cgroup v1 host ("), "{out}");
        assert!(out.contains(", not cgroup2fs)"), "{out}");
        assert!(
            out.contains("set cluster.kubelet.allow_cgroup_v1: true in the inventory"),
            "{out}"
        );
        let out = run("/nonexistent/cgroup");
        assert!(out.contains("is not mounted, not cgroup2fs"), "{out}");
        // Where this machine has a cgroup2 mount, that mount passes.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        if let Some(m) = mounts.lines().find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.get(2) == Some(&"cgroup2")).then(|| f[1].to_string())
        }) {
            assert_eq!(run(&m), "", "{m} is cgroup2");
        }
    }
}
