//! The inventory: what the user wrote (`schema`), where it is in the file (`locate`), and the
//! validated cluster model every other module works from (`Cluster`).

mod locate;
pub mod net;
mod schema;
mod validate;

pub use locate::{Position, Positions, MAX_ALIASES, MAX_DEPTH, MAX_EXPANDED_BYTES};
pub use net::Cidr;
pub use schema::*;

use crate::versions::VersionProfile;
use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Largest inventory file accepted, in bytes (1 MiB); a real one is a few KiB.
pub const MAX_INVENTORY_BYTES: u64 = 1 << 20;

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
    #[error(
        "inventory {} is a {kind}, not a regular file; expected the path of a YAML file",
        path.display()
    )]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error(
        "inventory {} is {}; expected a YAML file of at most {MAX_INVENTORY_BYTES} bytes (1 MiB)",
        path.display(),
        match size {
            Some(n) => format!("{n} bytes"),
            None => format!("larger than {MAX_INVENTORY_BYTES} bytes"),
        }
    )]
    TooLarge { path: PathBuf, size: Option<u64> },
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
    /// Reads, parses and validates an inventory file. Only a regular file is read (never a
    /// FIFO, device or directory), and at most [`MAX_INVENTORY_BYTES`] of it.
    pub fn load(path: &Path) -> Result<Cluster, InventoryError> {
        let bytes = read_bounded(path)?;
        Self::from_bytes(path, &bytes)
    }

    /// Parses and validates the bytes of an inventory file, as [`Cluster::load`] does once
    /// it has read them; `path` names it in messages.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Cluster, InventoryError> {
        if bytes.len() as u64 > MAX_INVENTORY_BYTES {
            return Err(InventoryError::TooLarge {
                path: path.to_path_buf(),
                size: Some(bytes.len() as u64),
            });
        }
        match std::str::from_utf8(bytes) {
            Ok(source) => Self::from_source(path, source),
            Err(e) => Err(not_utf8(path, bytes, e)),
        }
    }

    /// Parses and validates inventory text; `path` names it in messages. A leading UTF-8
    /// byte order mark is ignored (columns on line 1 are counted after it).
    pub fn from_source(path: &Path, source: &str) -> Result<Cluster, InventoryError> {
        if source.len() as u64 > MAX_INVENTORY_BYTES {
            return Err(InventoryError::TooLarge {
                path: path.to_path_buf(),
                size: Some(source.len() as u64),
            });
        }
        let source = source.strip_prefix('\u{feff}').unwrap_or(source);
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

/// Opens `path` without blocking (a FIFO would wait for a writer), refuses anything but a
/// regular file, and reads at most one byte more than the limit, whatever the metadata says
/// (the file may grow while it is read).
fn read_bounded(path: &Path) -> Result<Vec<u8>, InventoryError> {
    use std::os::unix::fs::OpenOptionsExt;
    let read_err = |source| InventoryError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            // A socket cannot be opened at all (ENXIO): say what it is instead.
            match std::fs::metadata(path) {
                Ok(m) if !m.is_file() => InventoryError::NotAFile {
                    path: path.to_path_buf(),
                    kind: file_kind(&m.file_type()),
                },
                _ => read_err(e),
            }
        })?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(InventoryError::NotAFile {
            path: path.to_path_buf(),
            kind: file_kind(&meta.file_type()),
        });
    }
    if meta.len() > MAX_INVENTORY_BYTES {
        return Err(InventoryError::TooLarge {
            path: path.to_path_buf(),
            size: Some(meta.len()),
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_INVENTORY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_INVENTORY_BYTES {
        return Err(InventoryError::TooLarge {
            path: path.to_path_buf(),
            size: None,
        });
    }
    Ok(bytes)
}

fn file_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO (named pipe)"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// The error for bytes that are not UTF-8, at the line and column of the first bad byte.
fn not_utf8(path: &Path, bytes: &[u8], e: std::str::Utf8Error) -> InventoryError {
    let good = &bytes[..e.valid_up_to()];
    // The prefix is valid UTF-8 by definition.
    let good = std::str::from_utf8(good).unwrap_or_default();
    let line_start = good.rfind('\n').map_or(0, |i| i + 1);
    let position = Position {
        line: good.matches('\n').count() + 1,
        col: good[line_start..].chars().count() + 1,
    };
    let byte = bytes[e.valid_up_to()];
    InventoryError::Invalid {
        file: path.to_path_buf(),
        problems: vec![Diagnostic {
            severity: Severity::Error,
            field: "(document)".to_string(),
            position: Some(position),
            message: format!(
                "byte 0x{byte:02x} at offset {} is not UTF-8; expected a UTF-8 encoded YAML file",
                e.valid_up_to()
            ),
        }],
    }
}
