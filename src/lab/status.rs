//! `status`: the recorded hosts of a lab, whether each runs and whether its ssh answers.

use super::dir::lab_dir;
use super::error::LabError;
use super::host;
use super::report::{HostStatus, LabHost};
use super::state;
use super::sys;
use std::path::Path;
use std::time::Duration;

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
                host: h.into(),
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
