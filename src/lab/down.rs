//! `down`: stop every host of a lab, wait for their processes to go, then remove what `up`
//! made (overlays, cgroups, lab.json, known_hosts, the bridge).

use super::dir::{known_names, lab_dir, lab_running};
use super::error::{io_err, LabError};
use super::host;
use super::layout::KNOWN_HOSTS_FILE;
use super::machine::{check_root, delete_bridge};
use super::state::{self, PidLock, State};
use super::sys;
use super::tools::Tools;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

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
    let mut shutdown = Shutdown {
        dir: &dir,
        names: known_names(&dir, st.as_ref()),
        recorded: st.as_ref(),
        // While another lab runs, processes and cgroups found by host name may be its own:
        // touch only the supervisors recorded for this lab (their command line names this
        // directory).
        foreign: matches!(state::owner(), Some(o) if o != dir && lab_running(&o)),
        supervisors: Vec::new(),
    };
    let stopped = shutdown.terminate_all();
    shutdown.wait_gone()?;
    shutdown.release_all()?;
    remove_lab_files(&dir, &tools)?;
    Ok(stopped)
}

/// The hosts of one lab being stopped.
struct Shutdown<'a> {
    dir: &'a Path,
    /// Every host the lab knows of (see [`known_names`]).
    names: Vec<String>,
    recorded: Option<&'a State>,
    /// Another lab runs: see [`down`].
    foreign: bool,
    /// With `foreign`: the supervisors signalled.
    supervisors: Vec<u32>,
}

impl Shutdown<'_> {
    /// SIGTERM to every host; returns how many were running.
    fn terminate_all(&mut self) -> usize {
        let mut stopped = 0;
        for n in &self.names {
            let recorded = self
                .recorded
                .and_then(|s| s.hosts.iter().find(|h| h.name == *n));
            if self.foreign {
                if let Some(h) = recorded.filter(|h| host::is_running(self.dir, h)) {
                    sys::signal(h.pid, sys::SIGTERM);
                    self.supervisors.push(h.pid);
                    stopped += 1;
                }
            } else if host::terminate(self.dir, n, recorded) {
                stopped += 1;
            }
        }
        stopped
    }

    /// Processes of the lab's hosts still alive.
    fn remaining(&self) -> Vec<u32> {
        if self.foreign {
            self.supervisors
                .iter()
                .copied()
                .filter(|p| sys::pid_alive(*p))
                .collect()
        } else {
            self.names.iter().flat_map(|n| host::processes(n)).collect()
        }
    }

    /// Whether every process is gone within `limit`.
    fn gone_within(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.remaining().is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// 10 s for a clean halt, then SIGKILL to what is left (of this lab's own hosts only) and
    /// 5 s more.
    fn wait_gone(&self) -> Result<(), LabError> {
        if self.gone_within(Duration::from_secs(10)) {
            return Ok(());
        }
        if !self.foreign {
            for n in &self.names {
                host::kill_leftovers(n);
            }
        }
        if self.foreign || !self.gone_within(Duration::from_secs(5)) {
            let left: Vec<String> = self.remaining().iter().map(|p| p.to_string()).collect();
            return Err(LabError::Timeout {
                what: "lab host processes to exit".into(),
                waited: Duration::from_secs(if self.foreign { 10 } else { 15 }),
                detail: format!("still running: {}", left.join(" ")),
            });
        }
        Ok(())
    }

    /// Every host's overlay and directory, and (unless `foreign`) its cgroups.
    fn release_all(&self) -> Result<(), LabError> {
        for n in &self.names {
            host::release(self.dir, n, !self.foreign)?;
        }
        let _ = fs::remove_dir(self.dir.join("hosts"));
        if !self.foreign {
            host::remove_cgroup_parents();
        }
        Ok(())
    }
}

/// lab.json, known_hosts, the bridge and the note that this lab owns it.
fn remove_lab_files(dir: &Path, tools: &Tools) -> Result<(), LabError> {
    state::remove(dir)?;
    let kh = dir.join(KNOWN_HOSTS_FILE);
    if let Err(e) = fs::remove_file(&kh) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(io_err("cannot remove", &kh)(e));
        }
    }
    // The bridge belongs to whichever lab runs; leave it to another one that does.
    match state::owner() {
        Some(other) if other != dir && lab_running(&other) => {}
        _ => delete_bridge(tools)?,
    }
    state::clear_owner(dir);
    Ok(())
}
