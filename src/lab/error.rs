//! `LabError`: everything the lab can fail with, each naming what to do about it.

use super::contents::FilledBy;
use super::layout::BRIDGE;
use crate::fetch::FetchError;
use crate::inventory::InventoryError;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "k8s-boot lab needs root: it creates a bridge, overlay mounts and systemd-nspawn machines"
    )]
    NotRoot,
    #[error("k8s-boot lab needs {program}, not found in PATH or the sbin directories: install it with `apt-get install {package}`")]
    MissingProgram {
        /// One program, or several separated by ", ".
        program: String,
        /// The Debian package(s) providing it, separated by spaces.
        package: String,
    },
    #[error("`{cmd}` failed ({status}){}", indent_tail(stderr_tail))]
    Command {
        cmd: String,
        status: String,
        stderr_tail: String,
    },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out after {:.1} s waiting for {what}{}", waited.as_secs_f64(), indent_tail(detail))]
    Timeout {
        what: String,
        waited: Duration,
        detail: String,
    },
    #[error("invalid lab options: {0}")]
    Options(String),
    /// The lab's registry could not be made, started or filled.
    #[error("lab registry: {0}")]
    Registry(String),
    #[error("lab host {name} stopped while booting{}", indent_tail(console_tail))]
    HostExited { name: String, console_tail: String },
    #[error("lab host {name} booted but systemd reports `{state}` instead of `running`; failed units:{}", indent_tail(failed_units))]
    Unhealthy {
        name: String,
        state: String,
        failed_units: String,
    },
    #[error("another lab is running from {}: stop it first with `k8s-boot lab down --dir {}` (one lab per machine: they share the bridge {BRIDGE} and its addresses)", dir.display(), dir.display())]
    OtherLab { dir: PathBuf },
    #[error("the lab in {} runs {running}, not the {requested} asked for: run `k8s-boot lab down --dir {}` first", dir.display(), dir.display())]
    LayoutChanged {
        dir: PathBuf,
        running: String,
        requested: String,
    },
    #[error("{}: {message}", path.display())]
    State { path: PathBuf, message: String },
    #[error("{} is locked by process {pid} (another `k8s-boot lab` command)", path.display())]
    Busy { path: PathBuf, pid: u32 },
    #[error("IP forwarding is enabled on this machine (net.ipv4.ip_forward = 1): lab hosts must not reach any network but their bridge, so k8s-boot lab refuses to start; disable it with `sysctl -w net.ipv4.ip_forward=0` if nothing else needs it")]
    Forwarding,
    #[error("the lab inventory is invalid: {0}")]
    Inventory(#[from] InventoryError),
    /// Downloading the lab's binaries and images (`fetch`) failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The binaries directory lacks files every lab needs (see `contents`).
    #[error("{} is incomplete after {by}: missing {}", dir.display(), missing.join(", "))]
    Incomplete {
        dir: PathBuf,
        missing: Vec<String>,
        by: FilledBy,
    },
}

fn indent_tail(s: &str) -> String {
    if s.trim().is_empty() {
        String::new()
    } else {
        format!(":\n  {}", s.trim_end().replace('\n', "\n  "))
    }
}

/// An I/O error on `path` while doing `action` (`cannot read`, ...), for `map_err`.
pub(crate) fn io_err(action: impl Into<String>, path: &Path) -> impl FnOnce(io::Error) -> LabError {
    let action = action.into();
    let path = path.to_path_buf();
    move |source| LabError::Io {
        action,
        path,
        source,
    }
}

impl LabError {
    /// Options and the lab's inventory are the input's, a fetch error says whose it is;
    /// everything else is this machine's.
    pub fn fault(&self) -> crate::fault::Fault {
        use crate::fault::Fault;
        match self {
            LabError::Options(_) | LabError::Inventory(_) => Fault::Input,
            LabError::Fetch(e) => e.fault(),
            _ => Fault::Runtime,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.fault().exit_code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_name_the_fix() {
        let e = LabError::MissingProgram {
            program: "debootstrap, systemd-nspawn".into(),
            package: "debootstrap systemd-container".into(),
        };
        assert!(e
            .to_string()
            .contains("apt-get install debootstrap systemd-container"));
        let e = LabError::Command {
            cmd: "ip link add k8sboot0 type bridge".into(),
            status: "exit status 2".into(),
            stderr_tail: "RTNETLINK answers: Operation not permitted".into(),
        };
        assert_eq!(
            e.to_string(),
            "`ip link add k8sboot0 type bridge` failed (exit status 2):\n  RTNETLINK answers: Operation not permitted"
        );
        assert!(LabError::NotRoot
            .to_string()
            .starts_with("k8s-boot lab needs root"));
    }
}
