//! The lab's binaries directory built on this machine: every upstream program (built from its
//! Go module) and every image the cluster runs, in the layout `fetch` produces, so the
//! installer cannot tell a lab build from a download (`release` downloads them instead).

use super::contents::{self, FilledBy};
use super::error::{io_err, LabError};
use super::{build, images};
use crate::{fetch, install};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What [`prepare`] made.
#[derive(Debug)]
pub struct Prepared {
    /// `<lab dir>/binaries`, the inventory's `binaries.dir`.
    pub dir: PathBuf,
    pub elapsed: Duration,
}

/// Builds (or takes from `cache`) every program and image the lab needs into
/// `<dir>/binaries`; with `conformance`, also the conformance suite's programs and images
/// (into `images/conformance/`). `progress` gets one line per step; a cold build takes about
/// half an hour on 2 cores (the conformance suite another quarter), a cached one seconds.
pub fn prepare(
    dir: &Path,
    kubernetes_version: &str,
    cache: &Path,
    conformance: bool,
    progress: &mut dyn FnMut(String),
) -> Result<Prepared, LabError> {
    let started = Instant::now();
    let mut builds = build::builds(kubernetes_version)?;
    if conformance {
        builds.push(build::conformance_build(kubernetes_version));
    }
    // Absolute: the builds run in directories of their own.
    let (dir, cache) = (crate::fsutil::resolve(dir), crate::fsutil::resolve(cache));
    let cache = cache.as_path();
    let binaries = dir.join("binaries");
    fs::create_dir_all(&binaries).map_err(io_err("cannot create", &binaries))?;
    // The lock `fetch` takes: no fetch or other build writes here meanwhile.
    let _lock = fetch::lock_binaries_dir(&binaries)?;
    for sub in [
        Path::new(""),
        Path::new(fetch::CNI_DIR),
        Path::new(install::IMAGES_DIR),
        Path::new(crate::conformance::IMAGES_DIR),
    ] {
        for left in fetch::remove_leftovers(&binaries.join(sub))? {
            progress(format!(
                "lab binaries: removed {}, a temporary file of an interrupted run",
                left.display()
            ));
        }
    }
    // A `versions.json` left by an earlier fetch describes downloads this build replaces.
    let manifest = binaries.join(fetch::MANIFEST_FILE);
    match fs::remove_file(&manifest) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_err("cannot remove", &manifest)(e))
        }
        _ => {}
    }
    progress(format!(
        "lab binaries: {} upstream builds from their Go modules, cached in {} \
         (a cold build of everything takes about 30 minutes on 2 cores; cached ones take seconds)",
        builds.len(),
        cache.display()
    ));
    let built = build::build_all(&builds, &binaries, cache, &mut |line| {
        progress(format!("  {line}"))
    })?;
    build_images(kubernetes_version, &built, cache, &binaries, &mut |line| {
        progress(format!("  {line}"))
    })?;
    contents::check(&binaries, kubernetes_version, FilledBy::Build)?;
    Ok(Prepared {
        dir: binaries,
        elapsed: started.elapsed(),
    })
}

/// The images, built from three of the `built` programs, pause.c and Debian's packages,
/// under the names the rendered manifests use ([`contents::image_names`]), copied into
/// `binaries`' images directory; the conformance images too when their programs were built.
fn build_images(
    version: &str,
    built: &[build::Built],
    cache: &Path,
    binaries: &Path,
    progress: &mut dyn FnMut(String),
) -> Result<(), LabError> {
    // The cache directory of a component's build, and a program in it.
    let dir_of = |component: &str| -> Result<PathBuf, LabError> {
        built
            .iter()
            .find(|b| b.build.component == component)
            .map(|b| b.dir.clone())
            .ok_or_else(|| LabError::Options(format!("no {component} build")))
    };
    let program = |component: &str, name: &str| Ok::<_, LabError>(dir_of(component)?.join(name));
    let conformance = built
        .iter()
        .any(|b| b.build.component == build::CONFORMANCE_COMPONENT);
    let mut names = contents::image_names(version)?;
    let mut conformance_programs = None;
    if conformance {
        let profile = crate::versions::profile_for(version).map_err(LabError::Options)?;
        names.conformance = Some(images::ConformanceNames::new(version, profile));
        conformance_programs = Some(images::ConformancePrograms {
            test_programs: dir_of(build::CONFORMANCE_COMPONENT)?,
            kubectl: program("kubernetes", "kubectl")?,
            etcd: dir_of("etcd")?,
        });
    }
    // Archives are built in the build cache (shared by every lab directory) and copied.
    let inputs = images::ImageInputs {
        binaries_dir: cache.to_path_buf(),
        cache_dir: cache.to_path_buf(),
        kubernetes_src: images::kubernetes_module_dir(version)?,
        coredns: program("coredns", "coredns")?,
        addon_programs: crate::addons::images()
            .map(|i| {
                let component = i.recipe.build_component();
                Ok((i.key, program(component, component)?))
            })
            .collect::<Result<_, LabError>>()?,
        names,
        conformance: conformance_programs,
    };
    for archive in images::build_all(&inputs, progress)? {
        // The same place under `binaries` as under the cache.
        let rel = archive
            .strip_prefix(cache)
            .expect("archives are built in the cache");
        let to = binaries.join(rel);
        let parent = to.parent().expect("an archive is in a directory");
        fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
        copy_if_changed(&archive, &to)?;
    }
    images::prune(binaries, &inputs.names, progress)
}

/// Copies `from` to `to` (crash-safe: [`crate::fsutil::write_atomic_with`]) unless `to`
/// already has the same bytes; the mode of an unchanged file is left alone.
fn copy_if_changed(from: &Path, to: &Path) -> Result<(), LabError> {
    let same = fs::metadata(to)
        .ok()
        .zip(fs::metadata(from).ok())
        .is_some_and(|(a, b)| a.len() == b.len())
        && fs::read(to).ok() == fs::read(from).ok();
    if same {
        return Ok(());
    }
    let mut source = fs::File::open(from).map_err(io_err("cannot read", from))?;
    crate::fsutil::write_atomic_with(to, 0o644, |f| std::io::copy(&mut source, f).map(|_| ()))
        .map_err(io_err("cannot copy to", to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn copies_only_what_changed_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (from, to) = (tmp.path().join("a.tar"), tmp.path().join("b.tar"));
        fs::write(&from, b"one").unwrap();
        copy_if_changed(&from, &to).unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"one");
        // Same bytes: the target is not rewritten (its mode change survives).
        fs::set_permissions(&to, fs::Permissions::from_mode(0o600)).unwrap();
        copy_if_changed(&from, &to).unwrap();
        let mode = fs::metadata(&to).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::write(&from, b"two").unwrap();
        copy_if_changed(&from, &to).unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"two");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 2);
    }
}
