//! Debian packages for the lab's images: [`extract_debian`] downloads and unpacks them
//! (nothing is installed) and [`debian_versions`] names the versions apt would take, for the
//! inputs record.

use crate::lab::error::{io_err, LabError};
use crate::lab::sys::run;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Downloads `packages` from this machine's apt sources (so: the Debian release the lab hosts
/// run) with `apt-get download` into `work` and unpacks them all into `work/root` with
/// `dpkg-deb -x`: nothing is installed, configured or started on the machine. Returns the root.
pub(crate) fn extract_debian(packages: &[&str], work: &Path) -> Result<PathBuf, LabError> {
    let debs = work.join("debs");
    fs::create_dir_all(&debs).map_err(io_err("creating", &debs))?;
    run(Command::new("apt-get")
        .arg("download")
        .args(packages)
        .current_dir(&debs))?;
    let files: Vec<PathBuf> = fs::read_dir(&debs)
        .map_err(io_err("reading", &debs))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let root = work.join("root");
    for package in packages {
        let deb = files
            .iter()
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
            })
            .ok_or_else(|| LabError::Command {
                cmd: format!("apt-get download {package}"),
                status: "no package file".into(),
                stderr_tail: String::new(),
            })?;
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))?;
    }
    Ok(root)
}

/// The version `apt-get download` fetches of each of `packages` (the candidate), in order.
pub(crate) fn debian_versions(packages: &[&str]) -> Result<Vec<(String, String)>, LabError> {
    let out = run(Command::new("apt-cache")
        .args(["show", "--no-all-versions"])
        .args(packages))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = std::collections::BTreeMap::new();
    let mut package = None;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("Package: ") {
            package = Some(p.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Version: ") {
            if let Some(p) = package.take() {
                found.entry(p).or_insert_with(|| v.trim().to_string());
            }
        }
    }
    packages
        .iter()
        .map(|p| {
            found
                .get(*p)
                .map(|v| (p.to_string(), v.clone()))
                .ok_or_else(|| LabError::Command {
                    cmd: format!("apt-cache show --no-all-versions {p}"),
                    status: "no candidate version".into(),
                    stderr_tail: String::new(),
                })
        })
        .collect()
}
