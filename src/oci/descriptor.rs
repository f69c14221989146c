//! Media types, annotations, digests and descriptors: the vocabulary an image-layout
//! archive's JSON is written in.

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::OciError;

pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Annotation containerd names the imported image by.
pub const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";
/// Standard annotation: the tag of the image.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// `sha256:<hex>` of `bytes`.
pub use crate::digest::oci_digest as digest_of;

#[derive(Serialize)]
pub(super) struct DescriptorJson<'a> {
    #[serde(rename = "mediaType")]
    pub media_type: &'a str,
    pub digest: String,
    pub size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<&'static str, &'a str>,
}

impl<'a> DescriptorJson<'a> {
    pub(super) fn of(media_type: &'a str, bytes: &[u8]) -> DescriptorJson<'a> {
        DescriptorJson {
            media_type,
            digest: digest_of(bytes),
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
        }
    }
}

/// The tag of `registry.k8s.io/pause:3.10.2` (`3.10.2`); a port in the registry host is not
/// a tag. References with a digest or without a tag are refused.
pub fn tag_of(image_ref: &str) -> Result<&str, OciError> {
    let bad = || OciError::Reference(image_ref.into());
    if image_ref.contains('@') || image_ref.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    let last = image_ref.rsplit('/').next().unwrap_or(image_ref);
    match last.rsplit_once(':') {
        Some((name, tag)) if !name.is_empty() && !tag.is_empty() => Ok(tag),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(tag_of("registry.k8s.io/pause:3.10.2").unwrap(), "3.10.2");
        assert_eq!(
            tag_of("docker.io/library/node:24-bookworm-slim").unwrap(),
            "24-bookworm-slim"
        );
        assert_eq!(tag_of("localhost:5000/x:v1").unwrap(), "v1");
        for bad in ["localhost:5000/x", "x", "x:", "x@sha256:00", ":v1"] {
            assert!(tag_of(bad).is_err(), "{bad}");
        }
    }
}
