//! Where one host's files are: `<lab>/hosts/<name>`.

use crate::lab::error::{io_err, LabError};
use crate::lab::sys;
use std::fs;
use std::path::{Path, PathBuf};

/// Files and directories of one host under `<lab>/hosts/<name>`.
pub struct HostPaths {
    pub dir: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub root: PathBuf,
    pub console: PathBuf,
    pub pidfile: PathBuf,
    pub supervisor: PathBuf,
    /// Bound into the guest as /var/lib/containerd.
    pub containerd: PathBuf,
    /// The cgroups the host was started in, one per line (for `lab down` from another
    /// session, whose controller hierarchies' bases differ).
    pub cgroups: PathBuf,
}

impl HostPaths {
    pub fn new(lab: &Path, name: &str) -> HostPaths {
        let dir = lab.join("hosts").join(name);
        HostPaths {
            upper: dir.join("upper"),
            work: dir.join("work"),
            root: dir.join("root"),
            console: dir.join("console.log"),
            pidfile: dir.join("supervisor.pid"),
            supervisor: dir.join("supervise.sh"),
            containerd: dir.join("containerd"),
            cgroups: dir.join("cgroups"),
            dir,
        }
    }

    /// The host's public ssh host key, `ssh-ed25519 AAAA...` (no comment).
    pub fn host_key(&self) -> Result<String, LabError> {
        let p = self.upper.join("etc/ssh/ssh_host_ed25519_key.pub");
        let text = fs::read_to_string(&p).map_err(io_err("cannot read host key", &p))?;
        let mut f = text.split_whitespace();
        match (f.next(), f.next()) {
            (Some(kind @ "ssh-ed25519"), Some(key)) => Ok(format!("{kind} {key}")),
            _ => Err(LabError::State {
                path: p,
                message: "not an ssh-ed25519 public key".into(),
            }),
        }
    }
}

/// The last lines of the host's console log.
pub fn console_tail(lab: &Path, name: &str) -> String {
    let p = HostPaths::new(lab, name).console;
    let text = sys::strip_ansi(&fs::read_to_string(&p).unwrap_or_default());
    format!("{}\n(console: {})", sys::tail(&text, 12), p.display())
}
