//! What one `fetch` run is asked to do: version, directory, architecture, sources,
//! components and images.

use std::path::PathBuf;

use super::artifacts::{catalogue, Artifact};
use super::component::Component;
use super::error::FetchError;
use super::images::{cluster_images, default_chat_image, ImageSpec};
use super::mirrors::Mirrors;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// `v1.36.0`; must be a supported minor (see [`crate::versions`]).
    pub kubernetes_version: String,
    /// The binaries directory.
    pub dir: PathBuf,
    /// `amd64` or `arm64`.
    pub arch: String,
    pub mirror: Mirrors,
    /// What to fetch; empty means everything ([`Component::ALL`]).
    pub components: Vec<Component>,
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
        let images =
            cluster_images(&kubernetes_version, Some(&default_chat_image())).unwrap_or_default();
        FetchOptions {
            kubernetes_version,
            dir: dir.into(),
            arch: "amd64".into(),
            mirror: Mirrors::default(),
            components: Vec::new(),
            images,
        }
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
