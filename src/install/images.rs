//! Container images without a registry: the runtime phase imports the OCI archives of
//! `binaries.dir/images/` into containerd's `k8s.io` namespace, each only when one of its
//! images is not there with the same digest.

use super::change::Change;
use super::executor::Executor;
use super::files::ROOT;
use super::remote::{FileToPut, Remote};
use super::steps::HostCtx;
use super::{InstallError, StepError};
use crate::catalog::BIN_DIR;
use crate::ssh::{self, Source, SshError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Image archives, under the binaries directory; see docs/FETCH.md.
pub const IMAGES_DIR: &str = "images";
/// Where an archive is uploaded to on a host while containerd imports it.
const REMOTE_IMAGES_DIR: &str = "/var/lib/k8s-boot/images";

/// One OCI image archive of `binaries.dir/images/` and the images its index names.
pub struct ImageArchive {
    file: PathBuf,
    images: Vec<crate::oci::ArchivedImage>,
}

/// Every `*.tar` in `dir` (none when it does not exist), sorted by name.
pub fn archives(dir: &Path) -> Result<Vec<ImageArchive>, InstallError> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tar") && p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let images =
                crate::oci::read_archive_index(&file).map_err(|source| InstallError::Image {
                    path: file.clone(),
                    source,
                })?;
            Ok(ImageArchive { file, images })
        })
        .collect()
}

/// Lists what containerd's `k8s.io` namespace holds: `REF TYPE DIGEST SIZE PLATFORMS
/// LABELS`. containerd is not running yet in a dry run on a fresh host, which then lists
/// nothing.
const LIST_IMAGES: &str = "images ls 2>/dev/null";

fn ctr() -> String {
    format!("{BIN_DIR}/ctr -n k8s.io")
}

/// `(reference, digest)` of every image in the `ctr images ls` output `listed`.
fn present_images(listed: &str) -> BTreeSet<(&str, &str)> {
    listed
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.nth(1)?))
        })
        .collect()
}

impl ImageArchive {
    /// Whether one of its images is `reference` (normalized, as containerd names it).
    pub fn holds(&self, reference: &str) -> bool {
        self.images.iter().any(|i| i.image_ref == reference)
    }

    /// Its images that `present` lacks (or holds with another digest).
    fn missing(&self, present: &BTreeSet<(&str, &str)>) -> Vec<String> {
        self.images
            .iter()
            .filter(|i| !present.contains(&(i.image_ref.as_str(), i.digest.as_str())))
            .map(|i| i.image_ref.clone())
            .collect()
    }

    fn file_name(&self) -> String {
        self.file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Uploads it (`sha256` is its digest), imports it into containerd and removes the upload.
    fn upload_and_import(&self, r: &dyn Remote, sha256: String) -> Result<(), SshError> {
        let upload = FileToPut {
            path: format!("{REMOTE_IMAGES_DIR}/{}", self.file_name()),
            source: Source::File(&self.file),
            sha256,
            mode: 0o600,
            owner: ROOT,
            check: None,
            restarts: Vec::new(),
        };
        r.run(&format!("mkdir -p {REMOTE_IMAGES_DIR}"))?;
        r.put(&upload, None)?;
        let q = ssh::shell_quote(&upload.path);
        let imported = r.run(&format!("{} images import {q} 2>&1", ctr()));
        r.run(&format!("rm -f {q}"))?;
        imported.map(|_| ())
    }
}

/// Imports every archive whose images are not all in containerd with the same digest. An
/// archive is uploaded, imported and removed again; what containerd holds is the record.
pub fn import(cx: &HostCtx, ex: &mut Executor) -> Result<(), StepError> {
    if cx.run.images.is_empty() {
        return Ok(());
    }
    let listed = ex.read().exec(&format!("{} {LIST_IMAGES}", ctr()))?.stdout;
    let present = present_images(&listed);
    for archive in &cx.run.images {
        let missing = archive.missing(&present);
        if missing.is_empty() {
            continue;
        }
        ex.change(Change::ImportImages(missing), |r| {
            Ok(archive.upload_and_import(r, cx.run.binaries.sha256(&archive.file)?)?)
        })?;
    }
    Ok(())
}

/// Imports into the containerd `r` reaches those of `archives` it lacks, outside an install
/// (for a `conformance` run); returns the images imported.
pub fn import_missing(r: &dyn Remote, archives: &[ImageArchive]) -> Result<Vec<String>, StepError> {
    let listed = r.exec(&format!("{} {LIST_IMAGES}", ctr()))?.stdout;
    let present = present_images(&listed);
    let mut imported = Vec::new();
    for archive in archives {
        let missing = archive.missing(&present);
        if missing.is_empty() {
            continue;
        }
        archive.upload_and_import(r, Source::File(&archive.file).sha256()?)?;
        imported.extend(missing);
    }
    Ok(imported)
}
