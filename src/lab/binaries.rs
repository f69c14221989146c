//! The release binaries this machine can give the lab: Debian's etcd and etcdctl.
//!
//! Kubernetes server binaries, containerd and runc cannot be obtained here; the lab
//! therefore installs for real what these binaries run (etcd, and nginx from the lab
//! hosts' own packages), and `k8s-boot fetch` fills the directory where there is internet.
//! [`extract_debian`] (download and unpack Debian packages, nothing installed) also gives the
//! lab's images their programs and libraries (see images.rs).

use super::sys::{io_err, run};
use super::LabError;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (Debian package, file in it, name in the binaries directory)
const FROM_DEBIAN: &[(&str, &str, &str)] = &[
    ("etcd-server", "usr/bin/etcd", "etcd"),
    ("etcd-client", "usr/bin/etcdctl", "etcdctl"),
];

/// Puts Debian's etcd and etcdctl into `dir` unless they are already there. Returns the
/// names written.
pub fn provide_etcd(dir: &Path) -> Result<Vec<&'static str>, LabError> {
    let missing: Vec<_> = FROM_DEBIAN
        .iter()
        .filter(|(_, _, name)| !dir.join(name).exists())
        .collect();
    if missing.is_empty() {
        return Ok(vec![]);
    }
    fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let work = WorkDir(dir.join(format!(".debian-etcd-{}", std::process::id())));
    let packages: Vec<&str> = missing.iter().map(|(package, _, _)| *package).collect();
    let root = extract_debian(&packages, work.path())?;
    let mut written = Vec::new();
    for (_, file, name) in missing {
        let file = root.join(file);
        let target = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        fs::copy(&file, &tmp).map_err(io_err("copying to", &tmp))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
            .map_err(io_err("chmod", &tmp))?;
        fs::rename(&tmp, &target).map_err(io_err("renaming to", &target))?;
        written.push(*name);
    }
    Ok(written)
}

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

/// A scratch directory removed when dropped.
pub(crate) struct WorkDir(pub(crate) PathBuf);

impl WorkDir {
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
