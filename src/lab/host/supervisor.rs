//! Starting a host: its supervisor, a detached shell that runs (and after a guest reboot
//! runs again) the host's systemd-nspawn.

use super::paths::{console_tail, HostPaths};
use super::processes::{cgroup_dirs, TAG_PREFIX};
use crate::fsutil::write_atomic;
use crate::lab::error::{io_err, LabError};
use crate::lab::layout::{PlannedHost, BRIDGE};
use crate::lab::sys;
use crate::lab::tools::Tools;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs systemd-nspawn from the host's own cgroup and starts it again when the guest reboots
/// (exit status 133). SIGTERM is passed on to nspawn, which halts the guest cleanly.
/// Arguments: a tag naming the host, the pid file, the cgroup.procs files of the host's
/// cgroups, `--`, then the nspawn command line.
const SUPERVISOR: &str = r#"# k8s-boot lab: runs one lab host; written by `k8s-boot lab up`.
tag="$1"
pidfile="$2"
shift 2
while [ "$1" != -- ]; do
  echo $$ > "$1" || { echo "$tag: cannot join cgroup $1" >&2; exit 1; }
  shift
done
shift
stop=0
child=
trap 'stop=1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null' TERM INT HUP
echo $$ > "$pidfile.tmp" && mv -f "$pidfile.tmp" "$pidfile"
while :; do
  echo "$tag: starting systemd-nspawn at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  "$@" &
  child=$!
  [ "$stop" = 0 ] || kill -TERM "$child" 2>/dev/null
  rc=0
  wait "$child" || rc=$?
  while kill -0 "$child" 2>/dev/null; do rc=0; wait "$child" || rc=$?; done
  child=
  echo "$tag: systemd-nspawn exited with status $rc"
  [ "$stop" = 0 ] || exit 0
  [ "$rc" = 133 ] || exit "$rc"
  echo "$tag: the guest rebooted; starting it again"
done
"#;

/// Starts the host's supervisor detached from this process (its own session, output to
/// console.log) inside the host's cgroups; returns the supervisor's pid.
pub fn start(lab: &Path, host: &PlannedHost, tools: &Tools) -> Result<u32, LabError> {
    let p = HostPaths::new(lab, &host.name);
    let mut procs = Vec::new();
    let dirs = cgroup_dirs(&host.name);
    for cg in &dirs {
        let ns = cg.join("ns");
        sys::create_cgroup(&ns).map_err(io_err("cannot create cgroup", &ns))?;
        procs.push(ns.join("cgroup.procs"));
    }
    let record: String = dirs.iter().map(|d| format!("{}\n", d.display())).collect();
    write_atomic(&p.cgroups, record.as_bytes(), 0o644)
        .map_err(io_err("cannot write", &p.cgroups))?;
    let _ = fs::remove_file(&p.pidfile);
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p.console)
        .map_err(io_err("cannot open", &p.console))?;
    let log2 = log.try_clone().map_err(io_err("cannot open", &p.console))?;

    write_atomic(&p.supervisor, SUPERVISOR.as_bytes(), 0o755)
        .map_err(io_err("cannot write", &p.supervisor))?;
    let mut cmd = supervisor_command(&p, host, &procs, tools);
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
    let status = cmd.status().map_err(|source| LabError::Io {
        action: format!("cannot run `{}`", sys::describe(&cmd)),
        path: tools.setsid.clone(),
        source,
    })?;
    if !status.success() {
        return Err(LabError::Command {
            cmd: sys::describe(&cmd),
            status: sys::status_text(&status),
            stderr_tail: console_tail(lab, &host.name),
        });
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = fs::read_to_string(&p.pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            return Ok(pid);
        }
        if Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: format!("the supervisor of lab host {} to start", host.name),
                waited: Duration::from_secs(10),
                detail: console_tail(lab, &host.name),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The detached supervisor running the host's systemd-nspawn: `setsid -f sh supervise.sh TAG
/// PIDFILE CGROUP.PROCS... -- systemd-nspawn ...`.
fn supervisor_command(
    p: &HostPaths,
    host: &PlannedHost,
    procs: &[PathBuf],
    tools: &Tools,
) -> Command {
    let mut cmd = Command::new(&tools.setsid);
    cmd.arg("-f")
        .arg(&tools.sh)
        .arg(&p.supervisor)
        .arg(format!("{TAG_PREFIX}{}", host.name))
        .arg(&p.pidfile)
        .args(procs)
        .arg("--")
        .arg(&tools.nspawn)
        .args(["-q", "-D"])
        .arg(&p.root)
        .args(["-M", &host.name, "-b", "--register=no", "--keep-unit"])
        .arg(format!("--network-bridge={BRIDGE}"))
        .args([
            "--console=passive",
            "--resolv-conf=off",
            "--timezone=off",
            "--link-journal=no",
        ])
        // What runc and the kubelet need inside the guest (docs/LAB.md, "Containers in a lab
        // host"): every capability, the key and bpf system calls nspawn filters by default,
        // the kernel log for the kubelet's OOM watcher, and containerd's state on the
        // machine's own file system, since its overlayfs snapshotter cannot stack on the
        // guest's overlay root.
        .args([
            "--capability=all",
            "--system-call-filter=add_key keyctl bpf",
            "--bind=/dev/kmsg",
        ])
        .arg(format!(
            "--bind={}:/var/lib/containerd",
            p.containerd.display()
        ))
        // The machine's controllers are cgroup v1 only: the guest gets the legacy hierarchy,
        // which `k8s-boot-lab-host.service` inside it makes writable (see rootfs.rs).
        .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "0");
    cmd
}

#[cfg(test)]
mod tests {
    use super::super::test_tools as tools;
    use super::*;
    use crate::lab::layout;

    /// Pins the supervisor's command line, its environment and the script it runs.
    #[test]
    fn supervisor_runs_pinned_nspawn_arguments() {
        let plan = layout::plan(4);
        let p = HostPaths::new(Path::new("/lab"), &plan[1].name);
        let procs = [
            PathBuf::from("/sys/fs/cgroup/systemd/k8s-boot-lab/m1/ns/cgroup.procs"),
            PathBuf::from("/sys/fs/cgroup/cpu/k8s-boot-lab/m1/ns/cgroup.procs"),
        ];
        let cmd = supervisor_command(&p, &plan[1], &procs, &tools());
        assert_eq!(
            sys::describe(&cmd),
            "/bin/setsid -f /bin/sh /lab/hosts/m1/supervise.sh k8s-boot-lab:m1 \
             /lab/hosts/m1/supervisor.pid \
             /sys/fs/cgroup/systemd/k8s-boot-lab/m1/ns/cgroup.procs \
             /sys/fs/cgroup/cpu/k8s-boot-lab/m1/ns/cgroup.procs \
             -- /bin/systemd-nspawn -q -D /lab/hosts/m1/root \
             -M m1 -b --register=no --keep-unit --network-bridge=k8sboot0 --console=passive \
             --resolv-conf=off --timezone=off --link-journal=no --capability=all \
             '--system-call-filter=add_key keyctl bpf' --bind=/dev/kmsg \
             --bind=/lab/hosts/m1/containerd:/var/lib/containerd"
        );
        let envs: Vec<_> = cmd.get_envs().collect();
        assert_eq!(
            envs,
            [(
                std::ffi::OsStr::new("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"),
                Some(std::ffi::OsStr::new("0"))
            )]
        );
        use sha2::{Digest, Sha256};
        assert_eq!(
            format!("{:x}", Sha256::digest(SUPERVISOR)),
            "2a9a2c9a0d9c1ddb4d08c7bb3fbb54e9188ed3ef35e94742ab5ede64e9d14944"
        );
    }
}
