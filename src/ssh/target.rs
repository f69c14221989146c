//! Where and how to reach a host: [`Target`] from the inventory, [`Timeouts`].

use crate::inventory::{Cluster, Host};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// How to reach one host.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub user: String,
    /// Private key file; `None` means the SSH agent.
    pub key: Option<PathBuf>,
    /// Wrap commands in `sudo -n` (non-root user).
    pub sudo: bool,
}

impl Target {
    /// The host's own SSH settings, falling back to the inventory's global ones.
    pub fn of(cluster: &Cluster, host: &Host) -> Target {
        let global = &cluster.inventory.ssh;
        let key = host.ssh.key.as_ref().or(global.key.as_ref());
        Target {
            name: host.name.clone(),
            address: host.address,
            port: host.ssh.port.unwrap_or(global.port),
            user: host.ssh.user.clone().unwrap_or_else(|| global.user.clone()),
            key: key.map(|k| expand_path(cluster, k)),
            sudo: host.ssh.sudo.unwrap_or(global.sudo),
        }
    }

    pub(super) fn socket(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

/// `~/` is the user's home; relative paths are relative to the inventory file.
pub fn expand_path(cluster: &Cluster, p: &str) -> PathBuf {
    cluster.expand_path(p)
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// Longest a command may go without finishing.
    pub command: Duration,
    /// Connection attempts (with backoff) before giving up.
    pub attempts: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            command: Duration::from_secs(300),
            attempts: 3,
        }
    }
}
