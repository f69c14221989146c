//! Creating a host: a fresh overlay on the rootfs, with the host's identity written into it.

use super::paths::HostPaths;
use super::processes::{kill_leftovers, processes, release};
use crate::fsutil::write_atomic;
use crate::lab::error::{io_err, LabError};
use crate::lab::layout::{self, PlannedHost};
use crate::lab::sys;
use crate::lab::tools::Tools;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

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
