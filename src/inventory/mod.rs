//! The inventory: what the user wrote (`schema`), where it is in the file (`locate`), and the
//! validated cluster model every other module works from (`Cluster`).

mod locate;
pub mod net;
mod schema;
mod validate;

pub use locate::{Position, Positions};
pub use net::Cidr;
pub use schema::*;

use crate::versions::VersionProfile;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in an inventory, located as precisely as the file allows.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Field path such as `hosts[2].address`.
    pub field: String,
    pub position: Option<Position>,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read inventory {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render_problems(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Diagnostic>,
    },
}

fn render_problems(file: &Path, problems: &[Diagnostic]) -> String {
    let errors = problems
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let mut out = format!(
        "inventory {} is invalid ({errors} error(s)):",
        file.display()
    );
    for d in problems {
        out.push_str("\n  ");
        out.push_str(&d.display_in(file));
    }
    out
}

impl Diagnostic {
    pub fn display_in(&self, file: &Path) -> String {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let at = match self.position {
            Some(p) => format!("{}:{}:{}", file.display(), p.line, p.col),
            None => file.display().to_string(),
        };
        format!("{at}: {level}: {}: {}", self.field, self.message)
    }
}

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

pub const APISERVER_PORT: u16 = 6443;

impl Cluster {
    /// Reads, parses and validates an inventory file.
    pub fn load(path: &Path) -> Result<Cluster, InventoryError> {
        let source = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_source(path, &source)
    }

    /// Parses and validates inventory text; `path` names it in messages.
    pub fn from_source(path: &Path, source: &str) -> Result<Cluster, InventoryError> {
        validate::validate(path, source)
    }

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
