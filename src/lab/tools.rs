//! The programs the lab runs, found up front so that a missing one is reported (with the
//! Debian package to install) before anything is done.

use super::error::LabError;
use super::sys;
use std::path::PathBuf;

/// Programs the lab runs, found up front so a missing one is reported before anything is done.
pub(crate) struct Tools {
    pub debootstrap: PathBuf,
    pub nspawn: PathBuf,
    pub systemctl: PathBuf,
    pub ip: PathBuf,
    pub ssh_keygen: PathBuf,
    pub ssh: PathBuf,
    pub mount: PathBuf,
    pub setsid: PathBuf,
    pub sh: PathBuf,
}

/// Program -> Debian package.
const PROGRAMS: &[(&str, &str)] = &[
    ("debootstrap", "debootstrap"),
    ("systemd-nspawn", "systemd-container"),
    ("systemctl", "systemd"),
    ("ip", "iproute2"),
    ("ssh-keygen", "openssh-client"),
    ("ssh", "openssh-client"),
    ("mount", "mount"),
    ("umount", "mount"),
    ("setsid", "util-linux"),
    ("sh", "dash"),
];

impl Tools {
    /// Finds every program; `needed` ones must exist (the others fall back to their bare name).
    pub(crate) fn locate(needed: &[&str]) -> Result<Tools, LabError> {
        let mut missing: Vec<(&str, &str)> = Vec::new();
        let mut find = |name: &'static str| match sys::find_program(name) {
            Some(p) => p,
            None => {
                if needed.contains(&name) {
                    let pkg = PROGRAMS
                        .iter()
                        .find(|(p, _)| *p == name)
                        .map_or(name, |(_, pkg)| *pkg);
                    missing.push((name, pkg));
                }
                PathBuf::from(name)
            }
        };
        let tools = Tools {
            debootstrap: find("debootstrap"),
            nspawn: find("systemd-nspawn"),
            systemctl: find("systemctl"),
            ip: find("ip"),
            ssh_keygen: find("ssh-keygen"),
            ssh: find("ssh"),
            mount: find("mount"),
            setsid: find("setsid"),
            sh: find("sh"),
        };
        let _ = find("umount");
        if missing.is_empty() {
            return Ok(tools);
        }
        let programs: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
        let mut packages: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
        packages.dedup();
        Err(LabError::MissingProgram {
            program: programs.join(", "),
            package: packages.join(" "),
        })
    }
}

pub(crate) fn all_programs() -> Vec<&'static str> {
    PROGRAMS.iter().map(|(p, _)| *p).collect()
}

/// `program` is on PATH (or in an sbin directory); else a `MissingProgram` naming `package`.
pub(crate) fn require_program(program: &str, package: &str) -> Result<(), LabError> {
    if sys::find_program(program).is_some() {
        Ok(())
    } else {
        Err(LabError::MissingProgram {
            program: program.into(),
            package: package.into(),
        })
    }
}
