//! One lab host: its overlay, its identity (hostname, address, ssh host key), the supervised
//! systemd-nspawn that boots it, and how it is stopped and cleaned up.

use super::error::{io_err, LabError};
use super::layout::{self, PlannedHost, BRIDGE, KEY_FILE, KNOWN_HOSTS_FILE};
use super::state::HostState;
use super::sys;
use super::tools::Tools;
use crate::fsutil::write_atomic;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// cgroup (in every hierarchy) under which each host's supervisor runs: `<root>/k8s-boot-lab/NAME/ns`.
const CGROUP_PARENT: &str = "k8s-boot-lab";
/// The supervisor's `$0`, so `ps` shows which host it runs.
const TAG_PREFIX: &str = "k8s-boot-lab:";

/// Runs systemd-nspawn from the host's own cgroup and starts it again when the guest reboots
/// (exit status 133). SIGTERM is passed on to nspawn, which halts the guest cleanly.
/// Arguments: a tag naming the host, cgroup.procs files (or `-`) x2, the pid file, then the
/// nspawn command line.
const SUPERVISOR: &str = r#"# k8s-boot lab: runs one lab host; written by `k8s-boot lab up`.
tag="$1"
for f in "$2" "$3"; do
  [ "$f" = - ] || echo $$ > "$f" || { echo "$tag: cannot join cgroup $f" >&2; exit 1; }
done
pidfile="$4"
shift 4
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

/// Files and directories of one host under `<lab>/hosts/<name>`.
pub struct HostPaths {
    pub dir: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub root: PathBuf,
    pub console: PathBuf,
    pub pidfile: PathBuf,
    pub supervisor: PathBuf,
    /// Bound into the guest as /var/lib/containerd.
    pub containerd: PathBuf,
}

impl HostPaths {
    pub fn new(lab: &Path, name: &str) -> HostPaths {
        let dir = lab.join("hosts").join(name);
        HostPaths {
            upper: dir.join("upper"),
            work: dir.join("work"),
            root: dir.join("root"),
            console: dir.join("console.log"),
            pidfile: dir.join("supervisor.pid"),
            supervisor: dir.join("supervise.sh"),
            containerd: dir.join("containerd"),
            dir,
        }
    }

    /// The host's public ssh host key, `ssh-ed25519 AAAA...` (no comment).
    pub fn host_key(&self) -> Result<String, LabError> {
        let p = self.upper.join("etc/ssh/ssh_host_ed25519_key.pub");
        let text = fs::read_to_string(&p).map_err(io_err("cannot read host key", &p))?;
        let mut f = text.split_whitespace();
        match (f.next(), f.next()) {
            (Some(kind @ "ssh-ed25519"), Some(key)) => Ok(format!("{kind} {key}")),
            _ => Err(LabError::State {
                path: p,
                message: "not an ssh-ed25519 public key".into(),
            }),
        }
    }
}

/// Removes the (empty) parent cgroups once no host is left in them.
pub fn remove_cgroup_parents() {
    for r in sys::cgroup_roots() {
        let _ = fs::remove_dir(r.join(CGROUP_PARENT));
    }
}

fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    sys::cgroup_roots()
        .into_iter()
        .map(|r| r.join(CGROUP_PARENT).join(name))
        .collect()
}

/// Every process of the host: its supervisor, nspawn, and the guest's processes.
pub fn processes(name: &str) -> Vec<u32> {
    let mut pids: Vec<u32> = cgroup_dirs(name)
        .iter()
        .flat_map(|d| sys::cgroup_tree_pids(d))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The recorded supervisor still runs this host (and the pid was not reused by another process).
pub fn is_running(lab: &Path, h: &HostState) -> bool {
    if !sys::pid_alive(h.pid) {
        return false;
    }
    let root = HostPaths::new(lab, &h.name).root;
    let root = root.to_string_lossy();
    sys::cmdline(h.pid).is_some_and(|args| {
        args.iter().any(|a| a == &format!("{TAG_PREFIX}{}", h.name))
            && args.iter().any(|a| *a == root)
    })
}

/// Builds the host from scratch: removes what an earlier run left, mounts a fresh overlay on
/// the rootfs and writes the host's identity into it. The ssh host key is generated here, on
/// the machine, so the lab's known_hosts can list it before the host first boots.
pub fn create(
    lab: &Path,
    rootfs: &Path,
    host: &PlannedHost,
    all: &[PlannedHost],
    authorized_key: &str,
    tools: &Tools,
) -> Result<(), LabError> {
    let p = HostPaths::new(lab, &host.name);
    // Whatever an earlier run left of this host (after a crash, or with lab.json lost).
    if !processes(&host.name).is_empty() {
        kill_leftovers(&host.name);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !processes(&host.name).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    release(lab, &host.name, true)?;
    // The machine side of the veth of an earlier run of this host outlives it while the
    // kernel tears its network namespaces down (pods' ones too); nspawn would refuse to start.
    let veth = format!("vb-{}", host.name);
    if Path::new("/sys/class/net").join(&veth).exists() {
        let _ = sys::run(Command::new(&tools.ip).args(["link", "delete", &veth]));
    }
    for d in [&p.upper, &p.work, &p.root, &p.containerd] {
        fs::create_dir_all(d).map_err(io_err("cannot create", d))?;
    }
    let mut mount = Command::new(&tools.mount);
    mount
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={},upperdir={},workdir={}",
            rootfs.display(),
            p.upper.display(),
            p.work.display()
        ))
        .arg(&p.root);
    sys::run(&mut mount)?;

    let put = |rel: &str, text: &str, mode: u32| {
        let f = p.root.join(rel);
        write_atomic(&f, text.as_bytes(), mode).map_err(io_err("cannot write", &f))
    };
    put("etc/hostname", &format!("{}\n", host.name), 0o644)?;
    put("etc/hosts", &layout::etc_hosts(&host.name, all), 0o644)?;
    put(
        "etc/systemd/network/80-container-host0.network",
        &layout::network_file(host.address),
        0o644,
    )?;
    let ssh_dir = p.root.join("root/.ssh");
    fs::create_dir_all(&ssh_dir).map_err(io_err("cannot create", &ssh_dir))?;
    fs::set_permissions(
        &ssh_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .map_err(io_err("cannot chmod", &ssh_dir))?;
    put(
        "root/.ssh/authorized_keys",
        &format!("{}\n", authorized_key.trim()),
        0o600,
    )?;
    let key = p.root.join("etc/ssh/ssh_host_ed25519_key");
    let mut keygen = Command::new(&tools.ssh_keygen);
    keygen
        .args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("root@{}", host.name))
        .arg("-f")
        .arg(&key);
    sys::run(&mut keygen)?;
    Ok(())
}

/// Starts the host's supervisor detached from this process (its own session, output to
/// console.log) inside the host's cgroups; returns the supervisor's pid.
pub fn start(lab: &Path, host: &PlannedHost, tools: &Tools) -> Result<u32, LabError> {
    let p = HostPaths::new(lab, &host.name);
    let mut procs = Vec::new();
    for cg in cgroup_dirs(&host.name) {
        let ns = cg.join("ns");
        fs::create_dir_all(&ns).map_err(io_err("cannot create cgroup", &ns))?;
        procs.push(ns.join("cgroup.procs"));
    }
    procs.resize(2, PathBuf::from("-"));
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
/// CGROUP.PROCS CGROUP.PROCS PIDFILE systemd-nspawn ...`.
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
        .args(procs)
        .arg(&p.pidfile)
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

/// The last lines of the host's console log.
pub fn console_tail(lab: &Path, name: &str) -> String {
    let p = HostPaths::new(lab, name).console;
    let text = sys::strip_ansi(&fs::read_to_string(&p).unwrap_or_default());
    format!("{}\n(console: {})", sys::tail(&text, 12), p.display())
}

/// Asks the host to halt: SIGTERM to its supervisor (which passes it to nspawn), or straight
/// to nspawn when the supervisor is gone. Returns whether the host had processes.
pub fn terminate(lab: &Path, name: &str, recorded: Option<&HostState>) -> bool {
    let pids = processes(name);
    if let Some(h) = recorded.filter(|h| is_running(lab, h)) {
        sys::signal(h.pid, sys::SIGTERM);
        return true;
    }
    for &pid in &pids {
        if sys::comm(pid).as_deref() == Some("systemd-nspawn") {
            sys::signal(pid, sys::SIGTERM);
        }
    }
    !pids.is_empty()
}

/// SIGKILL to everything left in the host's cgroups.
pub fn kill_leftovers(name: &str) {
    for pid in processes(name) {
        if pid != std::process::id() {
            sys::signal(pid, sys::SIGKILL);
        }
    }
}

/// After the host's processes are gone: removes its cgroups, unmounts its overlay and
/// deletes its directory (the overlay's upper layer holds all of the host's changes).
/// `cgroups` false leaves the cgroups alone (they are per host name, and another lab's host of
/// the same name may be using them).
pub fn release(lab: &Path, name: &str, cgroups: bool) -> Result<(), LabError> {
    if cgroups {
        for cg in cgroup_dirs(name) {
            sys::remove_cgroup_tree(&cg);
        }
    }
    let p = HostPaths::new(lab, name);
    sys::remove_tree(&p.dir)
}

/// `ssh` as root to a lab host with the lab key, verifying the host key strictly against the
/// lab's known_hosts; no user or system ssh configuration is read.
pub fn ssh_command(tools: &Tools, key: &Path, known_hosts: &Path, host: &str) -> Command {
    let mut cmd = Command::new(&tools.ssh);
    cmd.args(["-F", "/dev/null", "-i"])
        .arg(key)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("root@{host}"));
    cmd
}

/// Waits until the host answers ssh with its known key and systemd reports `running`.
pub fn wait_ready(
    lab: &Path,
    host: &PlannedHost,
    pid: u32,
    tools: &Tools,
    deadline: Instant,
    started: Instant,
) -> Result<(), LabError> {
    let key = lab.join(KEY_FILE);
    let known_hosts = lab.join(KNOWN_HOSTS_FILE);
    let addr = host.address.to_string();
    let mut last = String::from("port 22 never answered");
    let recorded = HostState {
        name: host.name.clone(),
        address: host.address,
        pid,
    };
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(LabError::Timeout {
                what: format!(
                    "lab host {} ({addr}) to accept ssh and finish booting",
                    host.name
                ),
                waited: now - started,
                detail: format!("{last}\n{}", console_tail(lab, &host.name)),
            });
        }
        if !is_running(lab, &recorded) {
            return Err(LabError::HostExited {
                name: host.name.clone(),
                console_tail: console_tail(lab, &host.name),
            });
        }
        if sys::ssh_banner(host.address, 22, Duration::from_secs(1)).is_none() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let mut cmd = ssh_command(tools, &key, &known_hosts, &addr);
        cmd.args(["systemctl", "is-system-running", "--wait"]);
        let Some(out) = sys::run_with_timeout(&mut cmd, deadline - now)? else {
            last = "`systemctl is-system-running --wait` did not return".into();
            continue;
        };
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.code() == Some(255) {
            // ssh itself failed. A refused key is final; anything else may be sshd starting.
            if stderr.contains("Host key verification failed")
                || stderr.contains("Permission denied")
                || stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            {
                return Err(sys::command_failed(&cmd, &out));
            }
            last = format!("ssh: {}", sys::tail(&stderr, 3));
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        match state.as_str() {
            "running" => return Ok(()),
            "initializing" | "starting" | "" => {
                last = format!("system state `{state}`");
                std::thread::sleep(Duration::from_millis(200));
            }
            _ => {
                let mut failed = ssh_command(tools, &key, &known_hosts, &addr);
                failed.args(["systemctl", "--failed", "--no-legend", "--plain"]);
                let detail = match sys::run_with_timeout(&mut failed, Duration::from_secs(10)) {
                    Ok(Some(o)) => String::from_utf8_lossy(&o.stdout).trim().to_string(),
                    _ => String::new(),
                };
                return Err(LabError::Unhealthy {
                    name: host.name.clone(),
                    state,
                    failed_units: detail,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Tools {
        let t = |name: &str| PathBuf::from(format!("/bin/{name}"));
        Tools {
            debootstrap: t("debootstrap"),
            nspawn: t("systemd-nspawn"),
            systemctl: t("systemctl"),
            ip: t("ip"),
            ssh_keygen: t("ssh-keygen"),
            ssh: t("ssh"),
            mount: t("mount"),
            setsid: t("setsid"),
            sh: t("sh"),
        }
    }

    /// Pins the supervisor's command line, its environment and the script it runs.
    #[test]
    fn supervisor_runs_pinned_nspawn_arguments() {
        let plan = layout::plan(4);
        let p = HostPaths::new(Path::new("/lab"), &plan[1].name);
        let procs = [
            PathBuf::from("/sys/fs/cgroup/systemd/k8s-boot-lab/m1/ns/cgroup.procs"),
            PathBuf::from("-"),
        ];
        let cmd = supervisor_command(&p, &plan[1], &procs, &tools());
        assert_eq!(
            sys::describe(&cmd),
            "/bin/setsid -f /bin/sh /lab/hosts/m1/supervise.sh k8s-boot-lab:m1 \
             /sys/fs/cgroup/systemd/k8s-boot-lab/m1/ns/cgroup.procs - \
             /lab/hosts/m1/supervisor.pid /bin/systemd-nspawn -q -D /lab/hosts/m1/root \
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
            "2c811b5c1dd838323ab6858300d12a3678bd0638151b2089833e09443868e364"
        );
    }

    #[test]
    fn ssh_reads_no_configuration_and_checks_host_keys_strictly() {
        let cmd = ssh_command(
            &tools(),
            Path::new("/lab/id_ed25519"),
            Path::new("/lab/known_hosts"),
            "10.77.0.12",
        );
        assert_eq!(
            sys::describe(&cmd),
            "/bin/ssh -F /dev/null -i /lab/id_ed25519 -o UserKnownHostsFile=/lab/known_hosts \
             -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes \
             -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR \
             root@10.77.0.12"
        );
    }
}
