//! What a lab's binaries directory holds, whichever way it was filled (built from the Go
//! modules by `binaries`, or downloaded from the official releases by `release`): the
//! programs the installer pushes and one image archive per image the lab's
//! cluster runs. Both ways end with [`check`], so a directory that lacks something is an
//! error naming it, never a half-filled directory that `install` trips over later.

use super::error::{io_err, LabError};
use super::images::{archive_file_name, Image, ImageNames};
use crate::{install, inventory, versions};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Every program of a lab's binaries directory, relative to it, with `fetch`'s names: the
/// catalog's binaries (what `install` pushes), each once.
pub fn programs() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for name in crate::catalog::binaries().map(|(_, b)| b.file) {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// How a binaries directory was filled, for the message of an incomplete one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilledBy {
    /// Built from the Go modules.
    Build,
    /// Downloaded from the official releases and registries (or their mirrors).
    Fetch,
}

impl std::fmt::Display for FilledBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FilledBy::Build => "the lab build",
            FilledBy::Fetch => {
                "fetching the official releases and images (the releases or mirrors used do \
                 not provide these; building them from the Go modules does)"
            }
        })
    }
}

/// The images of the lab's cluster for `kubernetes_version`: the lab inventory keeps the
/// default chat image, and its chat is enabled.
pub fn image_names(kubernetes_version: &str) -> Result<ImageNames, LabError> {
    let profile = versions::profile_for(kubernetes_version).map_err(LabError::Options)?;
    Ok(ImageNames::new(profile, &inventory::Chat::default().image))
}

/// The image references of `names`, in [`Image::all`] order.
pub fn image_references(names: &ImageNames) -> Vec<&str> {
    Image::all()
        .filter_map(|image| image.reference(names))
        .collect()
}

/// Every file a lab's binaries directory must hold for `kubernetes_version`, relative to
/// it: [`programs`], then `images/<archive>` per image.
pub fn expected_files(kubernetes_version: &str) -> Result<Vec<String>, LabError> {
    let names = image_names(kubernetes_version)?;
    let mut files: Vec<String> = programs().iter().map(|p| p.to_string()).collect();
    for reference in image_references(&names) {
        files.push(format!(
            "{}/{}",
            install::IMAGES_DIR,
            archive_file_name(reference)?
        ));
    }
    Ok(files)
}

/// Checks that `binaries` holds every file of [`expected_files`], the programs executable;
/// otherwise [`LabError::Incomplete`] lists what is missing.
pub fn check(binaries: &Path, kubernetes_version: &str, by: FilledBy) -> Result<(), LabError> {
    let mut missing = Vec::new();
    let programs = programs();
    for file in expected_files(kubernetes_version)? {
        let path = binaries.join(&file);
        let program = programs.contains(&file.as_str());
        match fs::metadata(&path) {
            Ok(m) if m.is_file() && (!program || m.permissions().mode() & 0o111 != 0) => {}
            Ok(_) => missing.push(format!("{file} (not an executable file)")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(file),
            Err(e) => return Err(io_err("cannot read", &path)(e)),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(LabError::Incomplete {
        dir: PathBuf::from(binaries),
        missing,
        by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_lab_has_every_binary_install_needs_and_etcdutl() {
        let programs = programs();
        for (_, b) in crate::catalog::binaries() {
            assert!(programs.contains(&b.file), "{} is missing", b.file);
        }
        assert!(programs.contains(&"etcdutl") && programs.contains(&"cni/flannel"));
        assert_eq!(programs.len(), 19, "{programs:?}");
    }

    /// The lab fetches exactly the images `k8s-boot fetch` takes for an inventory with the
    /// default chat image, which are the ones the lab builds.
    #[test]
    fn the_lab_images_are_fetch_s_cluster_images() {
        for profile in versions::PROFILES {
            let v = format!("v{}.0", profile.minor);
            let names = image_names(&v).unwrap();
            let lab: BTreeSet<String> = image_references(&names)
                .into_iter()
                .map(|r| crate::fetch::ImageRef::parse(r).unwrap().full())
                .collect();
            let fetched: BTreeSet<String> = crate::fetch::cluster_images(&v, None)
                .unwrap()
                .into_iter()
                .map(|i| crate::fetch::ImageRef::parse(&i.reference).unwrap().full())
                .collect();
            assert_eq!(lab, fetched, "{v}");
            assert_eq!(lab.len(), Image::cluster().len(), "{v}: the chat image too");
        }
    }

    #[test]
    fn check_names_what_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let v = "v1.37.2";
        for file in expected_files(v).unwrap() {
            let path = dir.join(&file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, b"x").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        check(dir, v, FilledBy::Fetch).unwrap();

        fs::remove_file(dir.join("etcdutl")).unwrap();
        fs::set_permissions(dir.join("cni/flannel"), fs::Permissions::from_mode(0o644)).unwrap();
        let chat = archive_file_name(&inventory::Chat::default().image).unwrap();
        fs::remove_file(dir.join("images").join(&chat)).unwrap();
        let err = check(dir, v, FilledBy::Fetch).unwrap_err();
        match &err {
            LabError::Incomplete { missing, .. } => assert_eq!(
                missing,
                &[
                    "etcdutl".to_string(),
                    "cni/flannel (not an executable file)".to_string(),
                    format!("images/{chat}"),
                ]
            ),
            other => panic!("{other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("cni/flannel") && msg.contains("fetch"),
            "{msg}"
        );
    }
}
