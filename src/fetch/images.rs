//! The container images the cluster runs, for air-gapped nodes: which images a Kubernetes
//! version needs, with their pins, and where their archives go. Each is pulled from its
//! registry (or a mirror) by `image_pull` and saved as an OCI image-layout archive under
//! `{dir}/images/`, which the runtime phase imports into containerd's `k8s.io` namespace.

use std::collections::BTreeMap;

use super::error::FetchError;
use super::pins::pinned_digest;
use super::registry::{endpoint, ImageRef, Session};
use crate::digest::oci_digest_hex;
use crate::inventory::Inventory;

/// Image archives, under the binaries directory.
pub const IMAGES_DIR: &str = "images";
/// Verified blobs, under the cache directory.
pub const BLOB_CACHE_DIR: &str = "blobs/sha256";

/// An image to fetch: a `[registry/]repository:tag` reference, the digest its tag must
/// resolve to (`None`: trust on first use) and the directory its archive goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub reference: String,
    pub digest: Option<String>,
    /// Relative to the binaries directory: [`IMAGES_DIR`] for the images every node gets,
    /// [`crate::conformance::IMAGES_DIR`] for those only a conformance run imports.
    pub dir: &'static str,
}

impl ImageSpec {
    /// `reference` with its digest from [`IMAGE_PINS`](super::IMAGE_PINS), if there is one,
    /// for [`IMAGES_DIR`].
    pub fn pinned(reference: &str) -> ImageSpec {
        ImageSpec {
            reference: reference.to_string(),
            digest: pinned_digest(reference).map(str::to_string),
            dir: IMAGES_DIR,
        }
    }
}

/// The images the cluster of `inventory` runs for a Kubernetes version: pause and CoreDNS
/// from its version profile, the images of the add-ons it wants ([`crate::addons`]) and its
/// chat image, each with its pinned digest. Without an inventory (`fetch --version`): every
/// add-on's, and the default chat image.
pub fn cluster_images(
    kubernetes_version: &str,
    inventory: Option<&Inventory>,
) -> Result<Vec<ImageSpec>, FetchError> {
    let profile = crate::versions::profile_for(kubernetes_version).map_err(FetchError::Version)?;
    let mut list = vec![
        ImageSpec::pinned(profile.pause_image),
        ImageSpec::pinned(profile.coredns_image),
    ];
    list.extend(
        crate::addons::wanted(inventory)
            .flat_map(|a| a.images)
            .map(|i| ImageSpec::pinned(i.reference)),
    );
    match inventory {
        Some(i) if !i.chat.enabled => {}
        Some(i) => list.push(ImageSpec::pinned(&i.chat.image)),
        None => list.push(ImageSpec::pinned(&default_chat_image())),
    }
    Ok(list)
}

/// The images of a conformance run for a Kubernetes version (the conformance image and the
/// test images of its `[Conformance]` tests), each with its pinned digest, for
/// [`crate::conformance::IMAGES_DIR`]: nodes import them only for a run.
pub fn conformance_images(kubernetes_version: &str) -> Result<Vec<ImageSpec>, FetchError> {
    let profile = crate::versions::profile_for(kubernetes_version).map_err(FetchError::Version)?;
    let names = crate::conformance::ConformanceNames::new(kubernetes_version, profile);
    Ok(names
        .all()
        .into_iter()
        .map(|reference| ImageSpec {
            dir: crate::conformance::IMAGES_DIR,
            ..ImageSpec::pinned(reference)
        })
        .collect())
}

/// The chat image an inventory without a `chat.image` gets.
pub fn default_chat_image() -> String {
    crate::inventory::Chat::default().image
}

/// File name of an image's archive: `registry.k8s.io_pause_3.10.2.tar`.
pub fn archive_name(image: &ImageRef) -> String {
    let safe: String = image
        .full()
        .chars()
        .map(|c| match c {
            '/' | ':' => '_',
            c => c,
        })
        .collect();
    format!("{safe}.tar")
}

/// An image ready to fetch: parsed, its endpoint and pin checked.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub image: ImageRef,
    pub pin: Option<String>,
    /// Relative to the binaries directory.
    pub archive: String,
}

/// Parses and checks every image of `images` (references, pins) and every registry mirror
/// without touching the network or the disk.
pub(crate) fn plan(
    images: &[ImageSpec],
    mirrors: &BTreeMap<String, String>,
) -> Result<Vec<Planned>, FetchError> {
    let mut out: Vec<Planned> = Vec::new();
    for spec in images {
        let image = ImageRef::parse(&spec.reference)?;
        if let Some(d) = &spec.digest {
            if oci_digest_hex(d).is_none() {
                return Err(FetchError::Reference {
                    reference: spec.reference.clone(),
                    message: format!("pinned digest `{d}` is not sha256:<64 lowercase hex>"),
                });
            }
        }
        Session::new(&image, mirrors)?;
        if out.iter().any(|p| p.image == image) {
            continue;
        }
        out.push(Planned {
            archive: format!("{}/{}", spec.dir, archive_name(&image)),
            pin: spec.digest.clone(),
            image,
        });
    }
    // Mirrors of registries no image uses are checked too: a typo should not go unnoticed.
    for host in mirrors.keys() {
        endpoint(host, mirrors)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::pins::{pin, IMAGE_PINS};

    #[test]
    fn every_profile_image_has_a_pin_row() {
        for profile in crate::versions::PROFILES {
            let v = format!("v{}.0", profile.minor);
            let list = cluster_images(&v, None).unwrap();
            assert_eq!(list.len(), 6);
            for spec in &list {
                assert!(
                    pin(&spec.reference).is_some(),
                    "{} has no pin row",
                    spec.reference
                );
            }
        }
    }

    #[test]
    fn every_conformance_test_image_has_a_pin_row_and_goes_to_the_conformance_dir() {
        for profile in crate::versions::PROFILES {
            let version = format!("v{}.0", profile.minor);
            let list = conformance_images(&version).unwrap();
            assert_eq!(list[0].reference, crate::conformance::image(&version));
            for spec in &list {
                assert_eq!(spec.dir, crate::conformance::IMAGES_DIR);
                // The conformance image follows the patch release: rows for some only.
                if spec.reference.contains("/conformance:") {
                    continue;
                }
                assert!(
                    IMAGE_PINS.iter().any(|p| p.image == spec.reference),
                    "{} has no row in IMAGE_PINS",
                    spec.reference
                );
            }
        }
        assert!(conformance_images("v1.20.0").is_err());
    }

    #[test]
    fn archive_names() {
        let r = ImageRef::parse("registry.k8s.io/coredns/coredns:v1.14.2").unwrap();
        assert_eq!(
            archive_name(&r),
            "registry.k8s.io_coredns_coredns_v1.14.2.tar"
        );
        let r = ImageRef::parse("localhost:5000/x:1").unwrap();
        assert_eq!(archive_name(&r), "localhost_5000_x_1.tar");
    }
}
