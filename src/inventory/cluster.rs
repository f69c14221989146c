//! `Cluster`: a validated inventory plus the values derived from it, which every other
//! module works from.

use super::diagnostic::Diagnostic;
use super::net::Cidr;
use super::schema::{Host, Inventory, Role};
use crate::versions::VersionProfile;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub const APISERVER_PORT: u16 = 6443;

/// API endpoint clients use (`host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => write!(f, "[{}]:{}", self.host, self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// A validated inventory plus the values derived from it.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub inventory: Inventory,
    /// The inventory file; relative paths in it are relative to its directory.
    pub file: PathBuf,
    pub profile: &'static VersionProfile,
    pub pod_cidr: Cidr,
    pub service_cidr: Cidr,
    /// First service IP: the `kubernetes` Service, a SAN of the apiserver cert.
    pub kubernetes_service_ip: IpAddr,
    /// Tenth service IP, as kubeadm does: the cluster DNS Service.
    pub dns_service_ip: IpAddr,
    pub node_port_range: (u16, u16),
    pub api_endpoint: Endpoint,
    pub warnings: Vec<Diagnostic>,
}

impl Cluster {
    pub fn hosts_with(&self, role: Role) -> impl Iterator<Item = &Host> {
        self.inventory.hosts.iter().filter(move |h| h.has(role))
    }

    /// Hosts that run a kubelet: workers and control-plane hosts.
    pub fn nodes(&self) -> impl Iterator<Item = &Host> {
        self.inventory
            .hosts
            .iter()
            .filter(|h| h.has(Role::Worker) || h.has(Role::ControlPlane))
    }

    pub fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }

    /// A path from the inventory, resolved against the inventory's directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir().join(p)
        }
    }

    pub fn version(&self) -> &str {
        &self.inventory.cluster.kubernetes_version
    }
}
