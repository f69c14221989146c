//! Local lab hosts: throwaway systemd-nspawn machines with real systemd and sshd, able to
//! run containers (the kubelet, containerd, runc), and the upstream programs and images they
//! install (`build`, `images`).
//!
//! `up` builds (once, cached) a Debian bookworm rootfs with debootstrap, gives every host an
//! overlay of it, its own ssh host key and a static address on a private bridge, boots the
//! hosts with systemd-nspawn, waits until each answers ssh with `systemctl is-system-running`
//! = `running`, and writes an inventory (`hosts.yaml`) plus a `known_hosts` so the installer
//! can be pointed at the lab with strict host key checking. `down` removes it all again,
//! keeping the rootfs cache and the lab key. See docs/LAB.md.

pub mod binaries;
pub mod build;
mod host;
pub mod images;
mod layout;
mod rootfs;
mod state;
mod sys;

pub use layout::{BRIDGE, BRIDGE_ADDRESS, MAX_HOSTS};
pub use rootfs::{MIRROR, PACKAGES, SUITE};

use crate::fsutil::write_atomic;
use crate::inventory::{Cluster, InventoryError};
use state::{HostState, PidLock, State};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use sys::io_err;

/// Environment variable naming a rootfs cache directory shared between labs (and tests).
pub const CACHE_ENV: &str = "K8S_BOOT_LAB_CACHE";
pub const DEFAULT_HOSTS: usize = 4;
pub const DEFAULT_KUBERNETES_VERSION: &str = "v1.37.2";
/// Files in the lab directory.
pub const KEY_FILE: &str = "id_ed25519";
pub const KNOWN_HOSTS_FILE: &str = "known_hosts";
pub const INVENTORY_FILE: &str = "hosts.yaml";

#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The lab directory, e.g. `lab`: key, known_hosts, inventory, per-host overlays.
    pub dir: PathBuf,
    /// Number of hosts, 1 to 20 (default 4).
    pub hosts: usize,
    /// Written into the inventory, e.g. `v1.36.0`.
    pub kubernetes_version: String,
    /// Where the rootfs is cached. `None`: `$K8S_BOOT_LAB_CACHE` if set, else `<dir>/.cache`.
    pub cache_dir: Option<PathBuf>,
}

impl Default for LabOptions {
    /// `lab`, 4 hosts, Kubernetes v1.36.0, the default cache.
    fn default() -> LabOptions {
        LabOptions::new("lab")
    }
}

impl LabOptions {
    /// Defaults: 4 hosts, Kubernetes v1.36.0, the default cache.
    pub fn new(dir: impl Into<PathBuf>) -> LabOptions {
        LabOptions {
            dir: dir.into(),
            hosts: DEFAULT_HOSTS,
            kubernetes_version: DEFAULT_KUBERNETES_VERSION.into(),
            cache_dir: None,
        }
    }

    /// The rootfs cache directory these options use.
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(c) = &self.cache_dir {
            return c.clone();
        }
        match std::env::var_os(CACHE_ENV) {
            Some(c) if !c.is_empty() => PathBuf::from(c),
            _ => self.dir.join(".cache"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabHost {
    pub name: String,
    pub address: IpAddr,
    /// The host's supervisor: a shell that runs its systemd-nspawn (again after a guest
    /// reboot) and passes SIGTERM on to it.
    pub pid: u32,
}

#[derive(Debug, Clone)]
pub struct LabReport {
    pub hosts: Vec<LabHost>,
    /// The written inventory, `<dir>/hosts.yaml`.
    pub inventory: PathBuf,
    /// From the call to every host answering ssh as `running`.
    pub elapsed: Duration,
    /// The rootfs came from the cache (no debootstrap).
    pub rootfs_cached: bool,
    /// Hosts that were already running and were left alone.
    pub already_running: Vec<String>,
}

/// A host as `status_detailed` sees it.
#[derive(Debug, Clone)]
pub struct HostStatus {
    pub host: LabHost,
    /// Its supervisor (and so systemd-nspawn) runs.
    pub running: bool,
    /// Port 22 answers with an SSH banner.
    pub ssh: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "k8s-boot lab needs root: it creates a bridge, overlay mounts and systemd-nspawn machines"
    )]
    NotRoot,
    #[error("k8s-boot lab needs {program}, not found in PATH or the sbin directories: install it with `apt-get install {package}`")]
    MissingProgram {
        /// One program, or several separated by ", ".
        program: String,
        /// The Debian package(s) providing it, separated by spaces.
        package: String,
    },
    #[error("`{cmd}` failed ({status}){}", indent_tail(stderr_tail))]
    Command {
        cmd: String,
        status: String,
        stderr_tail: String,
    },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out after {:.1} s waiting for {what}{}", waited.as_secs_f64(), indent_tail(detail))]
    Timeout {
        what: String,
        waited: Duration,
        detail: String,
    },
    #[error("invalid lab options: {0}")]
    Options(String),
    #[error("lab host {name} stopped while booting{}", indent_tail(console_tail))]
    HostExited { name: String, console_tail: String },
    #[error("lab host {name} booted but systemd reports `{state}` instead of `running`; failed units:{}", indent_tail(failed_units))]
    Unhealthy {
        name: String,
        state: String,
        failed_units: String,
    },
    #[error("another lab is running from {}: stop it first with `k8s-boot lab down --dir {}` (one lab per machine: they share the bridge {BRIDGE} and its addresses)", dir.display(), dir.display())]
    OtherLab { dir: PathBuf },
    #[error("the lab in {} runs {running}, not the {requested} asked for: run `k8s-boot lab down --dir {}` first", dir.display(), dir.display())]
    LayoutChanged {
        dir: PathBuf,
        running: String,
        requested: String,
    },
    #[error("{}: {message}", path.display())]
    State { path: PathBuf, message: String },
    #[error("{} is locked by process {pid} (another `k8s-boot lab` command)", path.display())]
    Busy { path: PathBuf, pid: u32 },
    #[error("IP forwarding is enabled on this machine (net.ipv4.ip_forward = 1): lab hosts must not reach any network but their bridge, so k8s-boot lab refuses to start; disable it with `sysctl -w net.ipv4.ip_forward=0` if nothing else needs it")]
    Forwarding,
    #[error("the lab inventory is invalid: {0}")]
    Inventory(#[from] InventoryError),
}

fn indent_tail(s: &str) -> String {
    if s.trim().is_empty() {
        String::new()
    } else {
        format!(":\n  {}", s.trim_end().replace('\n', "\n  "))
    }
}

/// Programs the lab runs, found up front so a missing one is reported before anything is done.
pub(crate) struct Tools {
    pub debootstrap: PathBuf,
    pub nspawn: PathBuf,
    pub systemctl: PathBuf,
    pub ip: PathBuf,
    pub ssh_keygen: PathBuf,
    pub ssh: PathBuf,
    pub mount: PathBuf,
    pub setsid: PathBuf,
    pub sh: PathBuf,
}

/// Program -> Debian package.
const PROGRAMS: &[(&str, &str)] = &[
    ("debootstrap", "debootstrap"),
    ("systemd-nspawn", "systemd-container"),
    ("systemctl", "systemd"),
    ("ip", "iproute2"),
    ("ssh-keygen", "openssh-client"),
    ("ssh", "openssh-client"),
    ("mount", "mount"),
    ("umount", "mount"),
    ("setsid", "util-linux"),
    ("sh", "dash"),
];

impl Tools {
    /// Finds every program; `needed` ones must exist (the others fall back to their bare name).
    fn locate(needed: &[&str]) -> Result<Tools, LabError> {
        let mut missing: Vec<(&str, &str)> = Vec::new();
        let mut find = |name: &'static str| match sys::find_program(name) {
            Some(p) => p,
            None => {
                if needed.contains(&name) {
                    let pkg = PROGRAMS
                        .iter()
                        .find(|(p, _)| *p == name)
                        .map_or(name, |(_, pkg)| *pkg);
                    missing.push((name, pkg));
                }
                PathBuf::from(name)
            }
        };
        let tools = Tools {
            debootstrap: find("debootstrap"),
            nspawn: find("systemd-nspawn"),
            systemctl: find("systemctl"),
            ip: find("ip"),
            ssh_keygen: find("ssh-keygen"),
            ssh: find("ssh"),
            mount: find("mount"),
            setsid: find("setsid"),
            sh: find("sh"),
        };
        let _ = find("umount");
        if missing.is_empty() {
            return Ok(tools);
        }
        let programs: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
        let mut packages: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
        packages.dedup();
        Err(LabError::MissingProgram {
            program: programs.join(", "),
            package: packages.join(" "),
        })
    }
}

fn all_programs() -> Vec<&'static str> {
    PROGRAMS.iter().map(|(p, _)| *p).collect()
}

fn check_root() -> Result<(), LabError> {
    match sys::effective_uid() {
        Ok(0) => Ok(()),
        Ok(_) => Err(LabError::NotRoot),
        Err(source) => Err(LabError::Io {
            action: "cannot read the effective uid from".into(),
            path: "/proc/self/status".into(),
            source,
        }),
    }
}

fn check_forwarding() -> Result<(), LabError> {
    let p = Path::new("/proc/sys/net/ipv4/ip_forward");
    let v = fs::read_to_string(p).map_err(io_err("cannot read", p))?;
    if v.trim() == "0" {
        Ok(())
    } else {
        Err(LabError::Forwarding)
    }
}

/// The lab directory as an absolute path that overlayfs options can carry.
fn lab_dir(dir: &Path, create: bool) -> Result<PathBuf, LabError> {
    if create {
        fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    }
    let abs = dir.canonicalize().map_err(io_err("cannot resolve", dir))?;
    let s = abs.to_string_lossy();
    if s.contains([',', ':', '\n', '\\']) {
        return Err(LabError::Options(format!(
            "the lab directory {s} contains ',', ':' or '\\', which overlayfs mount options cannot carry"
        )));
    }
    Ok(abs)
}

fn lab_host(h: &HostState) -> LabHost {
    LabHost {
        name: h.name.clone(),
        address: h.address,
        pid: h.pid,
    }
}

/// Whether the lab in `dir` has a host running.
fn lab_running(dir: &Path) -> bool {
    matches!(state::read(dir), Ok(Some(st)) if st.hosts.iter().any(|h| host::is_running(dir, h)))
}

/// The lab's ssh key: generated once, kept by `down`. Returns the public key line.
fn ensure_key(dir: &Path, tools: &Tools) -> Result<String, LabError> {
    let key = dir.join(KEY_FILE);
    let public = dir.join(format!("{KEY_FILE}.pub"));
    if !key.exists() {
        // Generate under a temporary name so an interrupted run leaves no half key pair.
        let tmp = dir.join(format!(".{KEY_FILE}.tmp"));
        let tmp_pub = dir.join(format!(".{KEY_FILE}.tmp.pub"));
        let _ = fs::remove_file(&tmp);
        let _ = fs::remove_file(&tmp_pub);
        let mut keygen = Command::new(&tools.ssh_keygen);
        keygen
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "k8s-boot-lab", "-f"])
            .arg(&tmp);
        sys::run(&mut keygen)?;
        fs::rename(&tmp_pub, &public).map_err(io_err("cannot rename to", &public))?;
        fs::rename(&tmp, &key).map_err(io_err("cannot rename to", &key))?;
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
        .map_err(io_err("cannot chmod", &key))?;
    if !public.exists() {
        let mut derive = Command::new(&tools.ssh_keygen);
        derive.arg("-y").arg("-f").arg(&key);
        let out = sys::run(&mut derive)?;
        write_atomic(&public, &out.stdout, 0o644).map_err(io_err("cannot write", &public))?;
    }
    let text = fs::read_to_string(&public).map_err(io_err("cannot read", &public))?;
    Ok(text.trim().to_string())
}

/// The bridge with its address, up. Left as is when already there.
fn ensure_bridge(tools: &Tools) -> Result<(), LabError> {
    let ip = |args: &[&str]| {
        let mut cmd = Command::new(&tools.ip);
        cmd.args(args);
        sys::run(&mut cmd)
    };
    if !Path::new("/sys/class/net").join(BRIDGE).exists() {
        ip(&["link", "add", BRIDGE, "type", "bridge"])?;
    }
    let want = format!("{BRIDGE_ADDRESS}/{}", layout::PREFIX_LEN);
    let addrs = ip(&["-o", "-4", "addr", "show", "dev", BRIDGE])?;
    if !String::from_utf8_lossy(&addrs.stdout).contains(&format!("inet {want} ")) {
        ip(&["addr", "add", &want, "dev", BRIDGE])?;
    }
    ip(&["link", "set", BRIDGE, "up"])?;
    Ok(())
}

fn delete_bridge(tools: &Tools) -> Result<(), LabError> {
    if Path::new("/sys/class/net").join(BRIDGE).exists() {
        let mut cmd = Command::new(&tools.ip);
        cmd.args(["link", "del", BRIDGE]);
        sys::run(&mut cmd)?;
    }
    Ok(())
}

/// Host count in range, and the inventory these options produce is valid (an unsupported
/// Kubernetes version fails here, before anything is built).
fn check_options(opts: &LabOptions) -> Result<(), LabError> {
    if !(1..=MAX_HOSTS).contains(&opts.hosts) {
        return Err(LabError::Options(format!(
            "hosts must be between 1 and {MAX_HOSTS}, not {}",
            opts.hosts
        )));
    }
    let text = layout::inventory_yaml(
        &layout::plan(opts.hosts),
        &opts.kubernetes_version,
        &opts.dir.join(KEY_FILE),
        &opts.dir.join(KNOWN_HOSTS_FILE),
    );
    Cluster::from_source(&opts.dir.join(INVENTORY_FILE), &text)?;
    Ok(())
}

/// Starts the lab (or the hosts of it that are not running) and waits until every host
/// answers ssh with systemd `running`.
pub fn up(opts: &LabOptions) -> Result<LabReport, LabError> {
    let started = Instant::now();
    check_options(opts)?;
    check_root()?;
    let tools = Tools::locate(&all_programs())?;
    check_forwarding()?;
    let dir = lab_dir(&opts.dir, true)?;
    let plan = layout::plan(opts.hosts);
    let key = dir.join(KEY_FILE);
    let known_hosts = dir.join(KNOWN_HOSTS_FILE);
    let inventory = dir.join(INVENTORY_FILE);
    let inventory_text =
        layout::inventory_yaml(&plan, &opts.kubernetes_version, &key, &known_hosts);
    Cluster::from_source(&inventory, &inventory_text)?;

    let _lock = PidLock::acquire(&dir.join(".lock"))?;
    if let Some(other) = state::owner() {
        if other != dir && lab_running(&other) {
            return Err(LabError::OtherLab { dir: other });
        }
    }
    let previous = state::read(&dir)?;
    let running: Vec<HostState> = previous
        .iter()
        .flat_map(|st| st.hosts.iter())
        .filter(|h| host::is_running(&dir, h))
        .cloned()
        .collect();
    let fits = running.iter().all(|r| {
        plan.iter()
            .any(|p| p.name == r.name && p.address == r.address)
    });
    if !fits {
        let names = |v: Vec<String>| v.join(", ");
        return Err(LabError::LayoutChanged {
            dir,
            running: format!(
                "hosts {}",
                names(running.iter().map(|h| h.name.clone()).collect())
            ),
            requested: format!(
                "{} hosts ({})",
                plan.len(),
                names(plan.iter().map(|h| h.name.clone()).collect())
            ),
        });
    }
    state::set_owner(&dir)?;

    let authorized_key = ensure_key(&dir, &tools)?;
    let cache = opts.cache_dir();
    let (rootfs, rootfs_cached) = rootfs::ensure(&cache, &tools)?;
    let rootfs = rootfs
        .canonicalize()
        .map_err(io_err("cannot resolve", &rootfs))?;
    if rootfs.to_string_lossy().contains([',', ':', '\n', '\\']) {
        return Err(LabError::Options(format!(
            "the rootfs cache {} contains ',', ':' or '\\', which overlayfs mount options cannot carry",
            rootfs.display()
        )));
    }
    ensure_bridge(&tools)?;
    let binaries = dir.join("binaries");
    fs::create_dir_all(&binaries).map_err(io_err("cannot create", &binaries))?;

    // Hosts of an earlier, larger lab that crashed: none runs (checked above); clear them out.
    for stale in known_names(&dir, previous.as_ref()) {
        if !plan.iter().any(|p| p.name == stale) {
            host::kill_leftovers(&stale);
            host::release(&dir, &stale, true)?;
        }
    }

    let mut st = State {
        dir: dir.clone(),
        rootfs: rootfs.clone(),
        bridge: BRIDGE.into(),
        hosts: Vec::new(),
    };
    let mut already_running = Vec::new();
    for p in &plan {
        if let Some(r) = running.iter().find(|r| r.name == p.name) {
            already_running.push(p.name.clone());
            st.hosts.push(r.clone());
            continue;
        }
        host::create(&dir, &rootfs, p, &plan, &authorized_key, &tools)?;
        // Recorded before it boots, so `down` finds it even if this run fails later.
        let pid = host::start(&dir, p, &tools)?;
        st.hosts.push(HostState {
            name: p.name.clone(),
            address: p.address,
            pid,
        });
        state::write(&dir, &st)?;
    }
    state::write(&dir, &st)?;

    let mut lines = String::new();
    for p in &plan {
        let k = host::HostPaths::new(&dir, &p.name).host_key()?;
        lines.push_str(&format!("{} {k}\n", p.address));
    }
    write_atomic(&known_hosts, lines.as_bytes(), 0o644)
        .map_err(io_err("cannot write", &known_hosts))?;
    write_atomic(&inventory, inventory_text.as_bytes(), 0o644)
        .map_err(io_err("cannot write", &inventory))?;

    // Two cores boot about three hosts a second; allow generously for more.
    let deadline = Instant::now() + Duration::from_secs(60 + 4 * plan.len() as u64);
    let results: Vec<Result<(), LabError>> = std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .iter()
            .zip(&st.hosts)
            .map(|(p, h)| {
                let (dir, tools) = (&dir, &tools);
                s.spawn(move || host::wait_ready(dir, p, h.pid, tools, deadline, started))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("wait thread panicked"))
            .collect()
    });
    for r in results {
        r?;
    }
    Ok(LabReport {
        hosts: st.hosts.iter().map(lab_host).collect(),
        inventory,
        elapsed: started.elapsed(),
        rootfs_cached,
        already_running,
    })
}

/// Host names of the lab in `dir`: those recorded in lab.json and any host directory left.
fn known_names(dir: &Path, st: Option<&State>) -> Vec<String> {
    let mut names: Vec<String> = st
        .map(|s| s.hosts.iter().map(|h| h.name.clone()).collect())
        .unwrap_or_default();
    if let Ok(rd) = fs::read_dir(dir.join("hosts")) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names
}

/// Stops every host of the lab in `dir` (SIGTERM, SIGKILL after 10 s), unmounts and deletes
/// their overlays, lab.json and known_hosts, and deletes the bridge. Keeps the rootfs cache,
/// the key and the inventory. Returns how many hosts were running; safe to repeat.
pub fn down(dir: &Path) -> Result<usize, LabError> {
    check_root()?;
    let tools = Tools::locate(&["ip", "umount"])?;
    if !dir.exists() {
        return Ok(0);
    }
    let dir = lab_dir(dir, false)?;
    let _lock = PidLock::acquire(&dir.join(".lock"))?;
    let st = state::read(&dir)?;
    let names = known_names(&dir, st.as_ref());
    let recorded = |n: &str| {
        st.as_ref()
            .and_then(|s| s.hosts.iter().find(|h| h.name == n))
    };

    // While another lab runs, processes and cgroups found by host name may be its own: touch
    // only the supervisors recorded for this lab (their command line names this directory).
    let foreign = matches!(state::owner(), Some(o) if o != dir && lab_running(&o));
    let mut stopped = 0;
    let mut supervisors = Vec::new();
    for n in &names {
        if foreign {
            if let Some(h) = recorded(n).filter(|h| host::is_running(&dir, h)) {
                sys::signal(h.pid, sys::SIGTERM);
                supervisors.push(h.pid);
                stopped += 1;
            }
        } else if host::terminate(&dir, n, recorded(n)) {
            stopped += 1;
        }
    }
    let remaining = || -> Vec<u32> {
        if foreign {
            supervisors
                .iter()
                .copied()
                .filter(|p| sys::pid_alive(*p))
                .collect()
        } else {
            names.iter().flat_map(|n| host::processes(n)).collect()
        }
    };
    let gone = |limit: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            if remaining().is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    if !gone(Duration::from_secs(10)) {
        if !foreign {
            for n in &names {
                host::kill_leftovers(n);
            }
        }
        if foreign || !gone(Duration::from_secs(5)) {
            let left: Vec<String> = remaining().iter().map(|p| p.to_string()).collect();
            return Err(LabError::Timeout {
                what: "lab host processes to exit".into(),
                waited: Duration::from_secs(if foreign { 10 } else { 15 }),
                detail: format!("still running: {}", left.join(" ")),
            });
        }
    }
    for n in &names {
        host::release(&dir, n, !foreign)?;
    }
    let _ = fs::remove_dir(dir.join("hosts"));
    if !foreign {
        host::remove_cgroup_parents();
    }
    state::remove(&dir)?;
    let kh = dir.join(KNOWN_HOSTS_FILE);
    if let Err(e) = fs::remove_file(&kh) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(io_err("cannot remove", &kh)(e));
        }
    }
    // The bridge belongs to whichever lab runs; leave it to another one that does.
    match state::owner() {
        Some(other) if other != dir && lab_running(&other) => {}
        _ => delete_bridge(&tools)?,
    }
    state::clear_owner(&dir);
    Ok(stopped)
}

/// Every recorded host of the lab in `dir` with whether it runs and whether ssh answers.
pub fn status_detailed(dir: &Path) -> Result<Vec<HostStatus>, LabError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let dir = lab_dir(dir, false)?;
    let Some(st) = state::read(&dir)? else {
        return Ok(Vec::new());
    };
    Ok(st
        .hosts
        .iter()
        .map(|h| {
            let running = host::is_running(&dir, h);
            let ssh = running && sys::ssh_banner(h.address, 22, Duration::from_secs(1)).is_some();
            HostStatus {
                host: lab_host(h),
                running,
                ssh,
            }
        })
        .collect())
}

/// Every recorded host of the lab in `dir` with whether its ssh port answers.
pub fn status(dir: &Path) -> Result<Vec<(LabHost, bool)>, LabError> {
    Ok(status_detailed(dir)?
        .into_iter()
        .map(|s| (s.host, s.ssh))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_before_anything_else() {
        let mut o = LabOptions::new("/nonexistent/lab");
        o.hosts = 0;
        let e = up(&o).unwrap_err();
        assert!(matches!(e, LabError::Options(_)), "{e}");
        o.hosts = MAX_HOSTS + 1;
        assert!(matches!(up(&o).unwrap_err(), LabError::Options(_)));
        o.hosts = 2;
        o.kubernetes_version = "v1.20.0".into();
        let e = up(&o).unwrap_err();
        assert!(matches!(e, LabError::Inventory(_)), "{e}");
        assert!(e.to_string().contains("kubernetes_version"), "{e}");
        assert!(!Path::new("/nonexistent/lab").exists());
    }

    #[test]
    fn error_messages_name_the_fix() {
        let e = LabError::MissingProgram {
            program: "debootstrap, systemd-nspawn".into(),
            package: "debootstrap systemd-container".into(),
        };
        assert!(e
            .to_string()
            .contains("apt-get install debootstrap systemd-container"));
        let e = LabError::Command {
            cmd: "ip link add k8sboot0 type bridge".into(),
            status: "exit status 2".into(),
            stderr_tail: "RTNETLINK answers: Operation not permitted".into(),
        };
        assert_eq!(
            e.to_string(),
            "`ip link add k8sboot0 type bridge` failed (exit status 2):\n  RTNETLINK answers: Operation not permitted"
        );
        assert!(LabError::NotRoot
            .to_string()
            .starts_with("k8s-boot lab needs root"));
    }

    #[test]
    fn cache_dir_precedence() {
        let mut o = LabOptions::new("/l");
        o.cache_dir = Some("/c".into());
        assert_eq!(o.cache_dir(), Path::new("/c"));
        o.cache_dir = None;
        if std::env::var_os(CACHE_ENV).is_none() {
            assert_eq!(o.cache_dir(), Path::new("/l/.cache"));
        }
    }
}
