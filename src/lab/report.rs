//! What `up` and `status` report about the lab's hosts.

use super::state::HostState;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// What went into the lab registry; `None`: the lab has none (built with `--fetch`).
    pub registry: Option<super::registry::Filled>,
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

impl From<&HostState> for LabHost {
    fn from(h: &HostState) -> LabHost {
        LabHost {
            name: h.name.clone(),
            address: h.address,
            pid: h.pid,
        }
    }
}
