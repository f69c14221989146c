//! What one `fetch` run is asked to do: version, directory, architecture, sources,
//! components and images.

use std::path::PathBuf;

use super::artifacts::{catalogue, Artifact};
use super::error::FetchError;
use super::images::{cluster_images, ImageSpec};
use super::mirrors::Mirrors;
use super::registry::ImageRef;
use super::release_group::ReleaseGroup;
use crate::digest::oci_digest_hex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// `v1.36.0`; must be a supported minor (see [`crate::versions`]).
    pub kubernetes_version: String,
    /// The binaries directory.
    pub dir: PathBuf,
    /// `amd64` or `arm64`.
    pub arch: String,
    pub mirror: Mirrors,
    /// What to fetch; empty means everything ([`ReleaseGroup::ALL`]).
    pub components: Vec<ReleaseGroup>,
    /// Container images to save as archives under `images/`; empty: none. [`FetchOptions::new`]
    /// puts in [`cluster_images`] with the default chat image.
    pub images: Vec<ImageSpec>,
}

impl FetchOptions {
    /// Everything for `amd64` from the upstream locations: every component and the images of
    /// [`cluster_images`] with the default chat image (none if the version is not supported;
    /// [`fetch`] then reports the version).
    pub fn new(kubernetes_version: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        let kubernetes_version = kubernetes_version.into();
        let images = cluster_images(&kubernetes_version, None).unwrap_or_default();
        FetchOptions {
            kubernetes_version,
            dir: dir.into(),
            arch: "amd64".into(),
            mirror: Mirrors::default(),
            components: Vec::new(),
            images,
        }
    }

    /// Makes `digest` (`sha256:<hex>`) the one the tag of `reference` must resolve to,
    /// replacing its pin from [`IMAGE_PINS`](crate::fetch::IMAGE_PINS) (or pinning an image the
    /// table has none for). `reference` is compared normalized (`node:24` is
    /// `docker.io/library/node:24`); one that is not among [`FetchOptions::images`] is an error,
    /// so a mistyped reference cannot go unnoticed.
    pub fn set_image_digest(&mut self, reference: &str, digest: &str) -> Result<(), FetchError> {
        let wanted = ImageRef::parse(reference)?;
        let refused = |message: String| FetchError::Reference {
            reference: reference.to_string(),
            message,
        };
        if oci_digest_hex(digest).is_none() {
            return Err(refused(format!(
                "digest `{digest}` is not sha256:<64 lowercase hex>"
            )));
        }
        let mut found = false;
        for spec in &mut self.images {
            if ImageRef::parse(&spec.reference).is_ok_and(|r| r == wanted) {
                spec.digest = Some(digest.to_string());
                found = true;
            }
        }
        if found {
            return Ok(());
        }
        let images: Vec<&str> = self.images.iter().map(|i| i.reference.as_str()).collect();
        Err(refused(if images.is_empty() {
            "no image is fetched".to_string()
        } else {
            format!("not one of the images fetched ({})", images.join(", "))
        }))
    }
}

/// The artifacts `fetch` would download for these options, in order. Validates the version,
/// architecture and mirror URLs; touches neither the network nor the disk.
pub fn artifacts(opts: &FetchOptions) -> Result<Vec<Artifact>, FetchError> {
    catalogue(
        &opts.kubernetes_version,
        &opts.arch,
        &opts.mirror,
        &opts.components,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_digest_replaces_the_pin_of_that_image_only() {
        let mut opts = FetchOptions::new("v1.37.2", "b");
        let other = format!("sha256:{}", "ab".repeat(32));
        let pause = opts.images[0].clone();
        assert!(pause.digest.is_some(), "pause is pinned");
        opts.set_image_digest(&pause.reference, &other).unwrap();
        assert_eq!(opts.images[0].digest.as_deref(), Some(other.as_str()));
        // Compared normalized: the default chat image, unpinned, by its short name.
        let chat = opts.images.len() - 1;
        assert_eq!(opts.images[chat].digest, None);
        opts.set_image_digest("node:24-bookworm-slim", &other)
            .unwrap();
        assert_eq!(opts.images[chat].digest.as_deref(), Some(other.as_str()));
        assert!(opts.images[1..chat]
            .iter()
            .all(|i| i.digest.as_deref() != Some(other.as_str())));

        let err = opts.set_image_digest("node:22", &other).unwrap_err();
        assert!(
            matches!(&err, FetchError::Reference { message, .. } if message.contains("not one of the images fetched")),
            "{err}"
        );
        let err = opts
            .set_image_digest(&pause.reference, "sha256:ABC")
            .unwrap_err();
        assert!(err.to_string().contains("sha256:ABC"), "{err}");
        assert!(opts
            .set_image_digest("registry.k8s.io/pause", &other)
            .is_err());
        opts.images.clear();
        let err = opts.set_image_digest(&pause.reference, &other).unwrap_err();
        assert!(err.to_string().contains("no image is fetched"), "{err}");
    }
}
