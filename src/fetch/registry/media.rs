//! Manifest and index documents as registries serve them (OCI and Docker media types), and
//! the choice of the platform manifest for an architecture.

use serde::Deserialize;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A descriptor in an index or manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// An OCI image index or Docker manifest list.
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    pub manifests: Vec<Descriptor>,
}

/// An OCI image manifest or Docker image manifest v2.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageManifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// The `os`/`architecture` of an image configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigPlatform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
}

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

pub fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// The descriptor for `linux/{arch}` in an index (for arm64 the `v8` variant, or none).
pub fn select_platform<'a>(index: &'a Index, arch: &str) -> Option<&'a Descriptor> {
    let linux = |d: &&Descriptor| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
    };
    let variant_ok = |d: &&Descriptor| {
        let v = d.platform.as_ref().and_then(|p| p.variant.as_deref());
        arch != "arm64" || matches!(v, None | Some("v8"))
    };
    index
        .manifests
        .iter()
        .filter(linux)
        .find(variant_ok)
        .or_else(|| index.manifests.iter().find(linux))
}

/// `linux/amd64, linux/arm64/v8, ...` of an index, for error messages.
pub fn platforms(index: &Index) -> String {
    let list: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_selection() {
        let index: Index = serde_json::from_str(
            r#"{"manifests":[
              {"digest":"sha256:a","size":1,"platform":{"os":"linux","architecture":"amd64"}},
              {"digest":"sha256:b","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v7"}},
              {"digest":"sha256:c","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
              {"digest":"sha256:d","size":1,"platform":{"os":"windows","architecture":"amd64"}},
              {"digest":"sha256:e","size":1,"platform":{"os":"unknown","architecture":"unknown"}}
            ]}"#,
        )
        .unwrap();
        assert_eq!(select_platform(&index, "amd64").unwrap().digest, "sha256:a");
        assert_eq!(select_platform(&index, "arm64").unwrap().digest, "sha256:c");
        assert!(select_platform(&index, "s390x").is_none());
        assert!(platforms(&index).starts_with("linux/amd64, linux/arm64/v7"));
    }
}
