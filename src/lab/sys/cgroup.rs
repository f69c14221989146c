//! cgroups: where they live, the processes in a tree of them, removing them.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where cgroups live: the named `systemd` and the `unified` hierarchies on a hybrid (v1)
/// machine, or the single cgroup2 tree.
pub(crate) fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_path_buf()];
    }
    ["systemd", "unified"]
        .iter()
        .map(|h| base.join(h))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect()
}
/// The machine's cgroup v1 controller hierarchies (cpu, memory, ...) on a hybrid machine,
/// each at the cgroup this process is in there: `/sys/fs/cgroup/cpu`,
/// `/sys/fs/cgroup/memory/<this session's cgroup>`. Empty on a cgroup2-only machine, whose
/// one tree ([`cgroup_roots`]) holds the controllers.
///
/// A lab host must run in a cgroup of its own in each of these, not only in the named ones:
/// nspawn's cgroup namespace makes a guest's view of a hierarchy start at the cgroup it was
/// started in, so hosts started in the same one share it, and every host's kubelet would
/// manage one `kubepods.slice` together (one host's pod cgroups reset or removed by another).
pub(crate) fn controller_bases() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return Vec::new();
    }
    let Ok(own) = fs::read_to_string("/proc/self/cgroup") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in own.lines() {
        // `ID:CONTROLLERS:PATH`; ID 0 is the cgroup2 tree, `name=` hierarchies have no
        // controllers (the named systemd one is a root of its own).
        let mut f = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if id == "0" || controllers.is_empty() || controllers.starts_with("name=") {
            continue;
        }
        let dir = base.join(controllers).join(path.trim_start_matches('/'));
        if dir.join("cgroup.procs").exists() {
            out.push(dir);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Creates `dir` and its missing parents. In the cpuset hierarchy a new cgroup takes no
/// process until it has CPUs and memory nodes: each new one gets its parent's.
pub(crate) fn create_cgroup(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_cgroup(parent)?;
    }
    match fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let own = dir.join(file);
        if fs::read_to_string(&own).is_ok_and(|v| v.trim().is_empty()) {
            let parent = dir.parent().map(|p| p.join(file)).unwrap_or_default();
            fs::write(&own, fs::read_to_string(&parent)?.trim())?;
        }
    }
    Ok(())
}

/// Process ids in a cgroup and all of its descendants.
pub(crate) fn cgroup_tree_pids(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) {
            pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(e.path());
                }
            }
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}
/// Removes a cgroup and its (empty) descendants, deepest first, retrying for a moment:
/// cgroups empty out a little after their last process exits.
pub(crate) fn remove_cgroup_tree(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut dirs = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            if let Ok(rd) = fs::read_dir(&d) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        stack.push(e.path());
                    }
                }
                dirs.push(d);
            }
        }
        if dirs.is_empty() {
            return;
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in &dirs {
            let _ = fs::remove_dir(d);
        }
        if !dir.exists() || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
