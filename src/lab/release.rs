//! The lab's binaries directory from the official releases instead of the Go modules: one
//! `fetch` run (release downloads verified against their checksums, images pulled into
//! `images/`) for this machine's architecture and the lab cluster's images, then the same
//! [`contents::check`] the build ends with. Minutes where a cold build takes half an hour,
//! but it needs the release sites and registries, or mirrors of them. See docs/LAB.md.

use super::binaries::Prepared;
use super::contents::{self, FilledBy};
use super::error::LabError;
use crate::fetch::{self, FetchOptions, ImageSpec};
use std::path::Path;
use std::time::Instant;

/// `fetch`'s name of the architecture of this machine, which the lab hosts run on.
pub fn machine_arch() -> Result<&'static str, LabError> {
    match std::env::consts::ARCH {
        "x86_64" => Ok("amd64"),
        "aarch64" => Ok("arm64"),
        other => Err(LabError::Options(format!(
            "no official release binaries are published for this machine's architecture \
             ({other}); build them from the Go modules instead"
        ))),
    }
}

/// What `fetch` is asked for a lab in `dir`: every component into `<dir>/binaries`, for this
/// machine's architecture, and the lab cluster's images with their pinned digests; with
/// `conformance`, also the conformance run's images. The upstream locations; set `mirror`
/// (and image digests) on the result to use others.
pub fn fetch_options(
    dir: &Path,
    kubernetes_version: &str,
    conformance: bool,
) -> Result<FetchOptions, LabError> {
    let names = contents::image_names(kubernetes_version)?;
    let mut opts = FetchOptions::new(kubernetes_version, dir.join("binaries"));
    opts.arch = machine_arch()?.to_string();
    opts.images = contents::image_references(&names)
        .into_iter()
        .map(ImageSpec::pinned)
        .collect();
    if conformance {
        opts.images
            .extend(fetch::conformance_images(kubernetes_version)?);
    }
    Ok(opts)
}

/// Runs `fetch` with `opts` (see [`fetch_options`]) and checks that the directory holds
/// everything a lab needs. `progress` gets fetch's lines, indented.
pub fn fetch(opts: &FetchOptions, progress: &mut dyn FnMut(String)) -> Result<Prepared, LabError> {
    let started = Instant::now();
    progress(format!(
        "lab binaries: the official {} releases and {} images for {} (checksums and digests \
         verified), into {}",
        opts.kubernetes_version,
        opts.images.len(),
        opts.arch,
        opts.dir.display()
    ));
    fetch::fetch(opts, &mut |line| progress(format!("  {line}")))?;
    contents::check(&opts.dir, &opts.kubernetes_version, FilledBy::Fetch)?;
    Ok(Prepared {
        dir: opts.dir.clone(),
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_take_everything_for_this_machine() {
        let opts = fetch_options(Path::new("/l"), "v1.36.0", false).unwrap();
        assert_eq!(opts.dir, Path::new("/l/binaries"));
        assert_eq!(opts.kubernetes_version, "v1.36.0");
        assert_eq!(opts.arch, machine_arch().unwrap());
        assert!(opts.components.is_empty(), "every component");
        assert_eq!(opts.images.len(), 6);
        let pause = &opts.images[0];
        assert_eq!(pause.reference, "registry.k8s.io/pause:3.10.2");
        assert_eq!(
            pause.digest.as_deref(),
            fetch::pinned_digest(&pause.reference)
        );
        assert!(pause.digest.is_some());
        assert!(fetch_options(Path::new("/l"), "v1.20.0", false).is_err());

        let with = fetch_options(Path::new("/l"), "v1.37.2", true).unwrap();
        let conformance: Vec<&str> = with.images[opts.images.len()..]
            .iter()
            .map(|i| {
                assert_eq!(i.dir, crate::conformance::IMAGES_DIR);
                i.reference.as_str()
            })
            .collect();
        assert_eq!(conformance[0], "registry.k8s.io/conformance:v1.37.2");
        assert_eq!(conformance.len(), 12, "{conformance:?}");
    }
}
