//! One host's processes: found by its cgroups, stopped, and cleaned up after.

use super::paths::HostPaths;
use crate::lab::error::LabError;
use crate::lab::state::HostState;
use crate::lab::sys;
use std::fs;
use std::path::{Path, PathBuf};

/// cgroup (in every hierarchy) under which each host's supervisor runs: `<root>/k8s-boot-lab/NAME/ns`.
const CGROUP_PARENT: &str = "k8s-boot-lab";

/// The supervisor's `$0`, so `ps` shows which host it runs.
pub(super) const TAG_PREFIX: &str = "k8s-boot-lab:";

/// Removes the (empty) parent cgroups once no host is left in them.
pub fn remove_cgroup_parents() {
    for r in sys::cgroup_roots()
        .into_iter()
        .chain(sys::controller_bases())
    {
        let _ = fs::remove_dir(r.join(CGROUP_PARENT));
    }
}

/// The host's cgroups: one in each named hierarchy (systemd, unified), where its processes
/// are found, and one in each controller hierarchy, so that its guest has each controller
/// to itself (see [`sys::controller_bases`]).
pub(super) fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    sys::cgroup_roots()
        .into_iter()
        .chain(sys::controller_bases())
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
    let p = HostPaths::new(lab, name);
    if cgroups {
        // Those it was started in (a controller hierarchy's base depends on the session that
        // ran `lab up`), and those this process would give it.
        let recorded = fs::read_to_string(&p.cgroups).unwrap_or_default();
        let started_in = recorded.lines().map(PathBuf::from);
        for cg in started_in.chain(cgroup_dirs(name)) {
            sys::remove_cgroup_tree(&cg);
        }
    }
    sys::remove_tree(&p.dir)
}
