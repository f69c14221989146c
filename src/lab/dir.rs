//! The lab directory: its absolute path, the hosts it knows of and whether any of them runs.

use super::error::{io_err, LabError};
use super::host;
use super::state::{self, State};
use std::fs;
use std::path::{Path, PathBuf};

/// The lab directory as an absolute path that overlayfs options can carry.
pub(crate) fn lab_dir(dir: &Path, create: bool) -> Result<PathBuf, LabError> {
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

/// Whether the lab in `dir` has a host running.
pub(crate) fn lab_running(dir: &Path) -> bool {
    matches!(state::read(dir), Ok(Some(st)) if st.hosts.iter().any(|h| host::is_running(dir, h)))
}

/// Host names of the lab in `dir`: those recorded in lab.json and any host directory left.
pub(crate) fn known_names(dir: &Path, st: Option<&State>) -> Vec<String> {
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
