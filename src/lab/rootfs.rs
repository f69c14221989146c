//! The shared root filesystem every lab host boots from (the lower layer of its overlay):
//! Debian bookworm from debootstrap, built once and cached, prepared for systemd-nspawn.

use super::error::{io_err, LabError};
use super::state::PidLock;
use super::sys;
use super::tools::Tools;
use crate::fsutil::write_atomic;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const SUITE: &str = "bookworm";
pub const MIRROR: &str = "http://deb.debian.org/debian";

/// Packages on top of debootstrap's minbase: systemd as init, sshd, networking tools, and what
/// the installer expects on a host it cannot download to (nginx with its stream module for
/// `lb` hosts; iptables, nftables, conntrack, ethtool and kmod for kube-proxy, flannel and the
/// kubelet).
pub const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "iputils-ping",
    "sudo",
    "procps",
    "ca-certificates",
    "curl",
    "nginx",
    "libnginx-mod-stream",
    "iptables",
    "nftables",
    "conntrack",
    "ethtool",
    "kmod",
];

/// Bump when `prepare` changes so cached trees are rebuilt.
const PREPARE_VERSION: u32 = 2;

/// Units that would only wait for a terminal, reach for the network or do housekeeping.
const MASKED_UNITS: &[&str] = &[
    "getty@.service",
    "console-getty.service",
    "systemd-timesyncd.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
];

/// Makes a lab host able to run containers (writable cgroup controllers, shielded kernel
/// settings); started at boot by [`GUEST_UNIT`].
const GUEST_PREPARE: &str = include_str!("guest-prepare.sh");
const GUEST_PREPARE_PATH: &str = "usr/lib/k8s-boot-lab/prepare-host.sh";
const GUEST_UNIT_NAME: &str = "k8s-boot-lab-host.service";
const GUEST_UNIT: &str = "\
[Unit]
Description=k8s-boot lab host: writable cgroup controllers, shielded kernel settings
DefaultDependencies=no
After=local-fs.target
Before=sysinit.target containerd.service kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/k8s-boot-lab/prepare-host.sh

[Install]
WantedBy=sysinit.target
";

/// What a cached tree was built from; the marker file holds it, written last.
fn recipe() -> String {
    format!(
        "suite={SUITE}\nmirror={MIRROR}\nvariant=minbase\npackages={}\nprepare={PREPARE_VERSION}\n",
        PACKAGES.join(",")
    )
}

pub fn rootfs_path(cache: &Path) -> PathBuf {
    cache.join(format!("rootfs-{SUITE}"))
}

/// Returns the rootfs under `cache`, building it first unless a complete one (same recipe)
/// is there. The bool is true when the cached tree was reused.
pub fn ensure(cache: &Path, tools: &Tools) -> Result<(PathBuf, bool), LabError> {
    fs::create_dir_all(cache).map_err(io_err("cannot create", cache))?;
    // Absolute, as overlay mounts name their lower layer (see the in-use check below).
    let cache = &cache
        .canonicalize()
        .map_err(io_err("cannot resolve", cache))?;
    let _lock = PidLock::acquire(&cache.join(".lock"))?;
    let root = rootfs_path(cache);
    let marker = cache.join(format!("rootfs-{SUITE}.ready"));
    let complete = fs::read_to_string(&marker).ok().as_deref() == Some(recipe().as_str())
        && root.join("usr/lib/systemd/systemd").exists();
    if complete {
        return Ok((root, true));
    }
    if sys::overlay_uses(&root) {
        return Err(LabError::State {
            path: root,
            message: "this rootfs is incomplete or outdated but running lab hosts use it; \
                      stop them with `k8s-boot lab down` first"
                .into(),
        });
    }
    let _ = fs::remove_file(&marker);
    let partial = cache.join(format!("rootfs-{SUITE}.partial"));
    // An interrupted debootstrap can leave /proc or /sys mounted inside its target.
    sys::remove_tree(&partial)?;
    debootstrap(&partial, cache, tools)?;
    prepare(&partial, tools)?;
    sys::remove_tree(&root)?;
    fs::rename(&partial, &root).map_err(io_err("cannot rename to", &root))?;
    write_atomic(&marker, recipe().as_bytes(), 0o644).map_err(io_err("cannot write", &marker))?;
    Ok((root, false))
}

fn debootstrap(target: &Path, cache: &Path, tools: &Tools) -> Result<(), LabError> {
    let log_path = cache.join("debootstrap.log");
    let log = fs::File::create(&log_path).map_err(io_err("cannot create", &log_path))?;
    let log2 = log
        .try_clone()
        .map_err(io_err("cannot duplicate", &log_path))?;
    let mut cmd = Command::new(&tools.debootstrap);
    cmd.arg("--variant=minbase")
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg(SUITE)
        .arg(target)
        .arg(MIRROR)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let status = cmd.status().map_err(|source| LabError::Io {
        action: format!("cannot run `{}`", sys::describe(&cmd)),
        path: tools.debootstrap.clone(),
        source,
    })?;
    if status.success() {
        return Ok(());
    }
    // debootstrap's own log inside the target names the failing step best.
    let own = fs::read_to_string(target.join("debootstrap/debootstrap.log")).unwrap_or_default();
    let ours = fs::read_to_string(&log_path).unwrap_or_default();
    let mut detail = String::new();
    if !own.trim().is_empty() {
        detail.push_str(&sys::tail(&own, 10));
        detail.push_str("\n---\n");
    }
    detail.push_str(&sys::tail(&ours, 10));
    detail.push_str(&format!("\n(full output: {})", log_path.display()));
    Err(LabError::Command {
        cmd: sys::describe(&cmd),
        status: sys::status_text(&status),
        stderr_tail: detail,
    })
}

fn write(root: &Path, rel: &str, text: &str, mode: u32) -> Result<(), LabError> {
    let p = root.join(rel);
    write_atomic(&p, text.as_bytes(), mode).map_err(io_err("cannot write", &p))
}

fn remove_file(p: &Path) -> Result<(), LabError> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("cannot remove", p)(e)),
        _ => Ok(()),
    }
}

/// Turns the debootstrapped tree into a lab image: no identity of its own (machine-id and ssh
/// host keys are per host), sshd and networkd enabled, nothing that waits for a terminal or the
/// network, nginx installed but not started.
fn prepare(root: &Path, tools: &Tools) -> Result<(), LabError> {
    prepare_identity(root)?;
    prepare_ssh(root)?;
    prepare_names(root)?;
    prepare_units(root, tools)?;
    // Downloaded packages are not needed once installed.
    let archives = root.join("var/cache/apt/archives");
    if let Ok(rd) = fs::read_dir(&archives) {
        for e in rd.flatten() {
            if e.path().extension().is_some_and(|x| x == "deb") {
                remove_file(&e.path())?;
            }
        }
    }
    Ok(())
}

/// Each host gets its own machine-id at first boot; an empty file means "not set".
fn prepare_identity(root: &Path) -> Result<(), LabError> {
    write(root, "etc/machine-id", "", 0o444)?;
    let dbus_id = root.join("var/lib/dbus/machine-id");
    remove_file(&dbus_id)?;
    if dbus_id.parent().is_some_and(Path::exists) {
        symlink("/etc/machine-id", &dbus_id).map_err(io_err("cannot create", &dbus_id))?;
    }
    Ok(())
}

/// Host keys are generated per host, on the machine, before boot (see host/create.rs).
fn prepare_ssh(root: &Path) -> Result<(), LabError> {
    let ssh_dir = root.join("etc/ssh");
    for e in fs::read_dir(&ssh_dir)
        .map_err(io_err("cannot read", &ssh_dir))?
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with("ssh_host_") {
            remove_file(&e.path())?;
        }
    }
    write(
        root,
        "etc/ssh/sshd_config.d/k8s-boot-lab.conf",
        "# k8s-boot lab: one host key, made on the machine and listed in the lab's known_hosts.\n\
         HostKey /etc/ssh/ssh_host_ed25519_key\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UseDNS no\n",
        0o644,
    )
}

/// Host name and local names; no DNS server is reachable from the lab, so names come from
/// /etc/hosts.
fn prepare_names(root: &Path) -> Result<(), LabError> {
    write(root, "etc/hostname", "lab\n", 0o644)?;
    write(
        root,
        "etc/hosts",
        "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
        0o644,
    )?;
    let resolv = root.join("etc/resolv.conf");
    remove_file(&resolv)?;
    write(
        root,
        "etc/resolv.conf",
        "# k8s-boot lab: no DNS server is reachable; lab hosts are in /etc/hosts.\n",
        0o644,
    )
}

/// The guest's own unit, the services enabled at boot, nginx off, the masked units.
fn prepare_units(root: &Path, tools: &Tools) -> Result<(), LabError> {
    let systemctl = |args: &[&str]| {
        let mut cmd = Command::new(&tools.systemctl);
        cmd.arg(format!("--root={}", root.display())).args(args);
        sys::run(&mut cmd).map(|_| ())
    };
    write(root, GUEST_PREPARE_PATH, GUEST_PREPARE, 0o755)?;
    write(
        root,
        &format!("etc/systemd/system/{GUEST_UNIT_NAME}"),
        GUEST_UNIT,
        0o644,
    )?;
    systemctl(&[
        "enable",
        "systemd-networkd.service",
        "ssh.service",
        GUEST_UNIT_NAME,
    ])?;
    // The installer configures nginx on `lb` hosts and starts it; elsewhere it stays off.
    systemctl(&["disable", "nginx.service"])?;
    remove_file(&root.join("etc/nginx/sites-enabled/default"))?;
    let units = root.join("etc/systemd/system");
    for unit in MASKED_UNITS {
        let link = units.join(unit);
        remove_file(&link)?;
        symlink("/dev/null", &link).map_err(io_err("cannot create", &link))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_names_every_package() {
        let r = recipe();
        for p in PACKAGES {
            assert!(r.contains(p));
        }
        assert!(r.contains("libnginx-mod-stream"));
    }
}
