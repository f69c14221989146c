//! The release binaries this machine can give the lab: Debian's etcd and etcdctl.
//!
//! Kubernetes server binaries, containerd and runc cannot be obtained here; the lab
//! therefore installs for real what these binaries run (etcd, and nginx from the lab
//! hosts' own packages), and `k8s-boot fetch` fills the directory where there is internet.

use super::sys::{io_err, run};
use super::LabError;
use std::fs;
use std::path::Path;
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
    fs::create_dir_all(work.path()).map_err(io_err("creating", work.path()))?;
    let mut download = Command::new("apt-get");
    download.arg("download").current_dir(work.path());
    for (package, _, _) in &missing {
        download.arg(package);
    }
    run(&mut download)?;
    let mut written = Vec::new();
    for (package, file, name) in missing {
        let deb = fs::read_dir(work.path())
            .map_err(io_err("reading", work.path()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
            })
            .ok_or_else(|| LabError::Command {
                cmd: format!("apt-get download {package}"),
                status: "no package file".into(),
                stderr_tail: String::new(),
            })?;
        let root = work.path().join(package);
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
        let target = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        fs::copy(root.join(file), &tmp).map_err(io_err("copying to", &tmp))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
            .map_err(io_err("chmod", &tmp))?;
        fs::rename(&tmp, &target).map_err(io_err("renaming to", &target))?;
        written.push(*name);
    }
    Ok(written)
}

/// A scratch directory removed when dropped.
struct WorkDir(std::path::PathBuf);

impl WorkDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
