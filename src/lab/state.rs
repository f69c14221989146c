//! The lab's record of itself (`lab.json`), the per-directory lock, and the machine-wide note
//! of which lab directory owns the bridge.

use super::error::{io_err, LabError};
use super::sys;
use crate::fsutil::write_atomic;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "lab.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Absolute lab directory.
    pub dir: PathBuf,
    /// Lower layer of every host's overlay.
    pub rootfs: PathBuf,
    pub bridge: String,
    pub hosts: Vec<HostState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostState {
    pub name: String,
    pub address: IpAddr,
    /// The supervising shell that runs (and restarts on reboot) the host's systemd-nspawn.
    pub pid: u32,
}

pub fn read(dir: &Path) -> Result<Option<State>, LabError> {
    let path = dir.join(STATE_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| LabError::State {
                path,
                message: format!("cannot parse: {e}"),
            }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("cannot read", &path)(e)),
    }
}

pub fn write(dir: &Path, state: &State) -> Result<(), LabError> {
    let path = dir.join(STATE_FILE);
    let mut text = serde_json::to_string_pretty(state).expect("state serializes");
    text.push('\n');
    write_atomic(&path, text.as_bytes(), 0o644).map_err(io_err("cannot write", &path))
}

pub fn remove(dir: &Path) -> Result<(), LabError> {
    let path = dir.join(STATE_FILE);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_err("cannot remove", &path)(e)),
        _ => Ok(()),
    }
}

/// An exclusive lock held by a live process: a file created with O_EXCL holding the pid. A
/// lock left by a process that no longer runs is taken over.
pub struct PidLock {
    path: PathBuf,
}

impl PidLock {
    pub fn acquire(path: &Path) -> Result<PidLock, LabError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
        }
        for _ in 0..50 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(PidLock {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let holder = fs::read_to_string(path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if pid != std::process::id() && sys::pid_alive(pid) => {
                            return Err(LabError::Busy {
                                path: path.to_path_buf(),
                                pid,
                            })
                        }
                        // A stale lock, or one being written this instant: retry shortly.
                        None => std::thread::sleep(std::time::Duration::from_millis(20)),
                        Some(_) => {
                            let _ = fs::remove_file(path);
                        }
                    }
                }
                Err(e) => return Err(io_err("cannot create lock", path)(e)),
            }
        }
        Err(LabError::State {
            path: path.to_path_buf(),
            message: "cannot take the lock (unreadable lock file); remove it if no k8s-boot lab command runs".into(),
        })
    }
}

impl Drop for PidLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Machine-wide: the lab directory whose hosts use the bridge and the 10.77.0.0/24 addresses.
const OWNER_FILE: &str = "/run/k8s-boot/lab-owner";

pub fn owner() -> Option<PathBuf> {
    fs::read_to_string(OWNER_FILE)
        .ok()
        .map(|s| PathBuf::from(s.trim_end_matches('\n')))
        .filter(|p| !p.as_os_str().is_empty())
}

pub fn set_owner(dir: &Path) -> Result<(), LabError> {
    let path = Path::new(OWNER_FILE);
    let mut text = dir.to_string_lossy().into_owned();
    text.push('\n');
    write_atomic(path, text.as_bytes(), 0o644).map_err(io_err("cannot write", path))
}

pub fn clear_owner(dir: &Path) {
    if owner().as_deref() == Some(dir) {
        let _ = fs::remove_file(OWNER_FILE);
    }
}
