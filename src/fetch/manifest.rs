//! `{dir}/versions.json`: what the binaries directory holds, written atomically.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::FetchError;

pub const MANIFEST_FILE: &str = "versions.json";

/// Everything `fetch` installed: files keyed by installed name relative to the binaries
/// directory (`kubelet`, `etcd`, `cni/bridge`), image archives keyed by image reference
/// (`registry.k8s.io/pause:3.10.2`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub files: BTreeMap<String, ManifestEntry>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, ImageEntry>,
}

/// One image archive under `images/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageEntry {
    /// What the tag resolved to: the digest of the image index (manifest list), or of the
    /// manifest for a single-platform image.
    pub digest: String,
    /// `digest` was checked against a pinned digest; `false`: trust on first use, only the
    /// blobs were verified (against the digests the registry's manifest names).
    pub pinned: bool,
    pub arch: String,
    /// Digest of the platform manifest in the archive (the entry of its `index.json`).
    pub manifest_digest: String,
    /// The archive, relative to the binaries directory (`images/registry.k8s.io_pause_3.10.2.tar`).
    pub archive: String,
    /// sha256 of the archive file.
    pub archive_sha256: String,
    /// Where the tag was resolved.
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// `kubernetes`, `etcd`, `containerd`, `runc`, `crictl`, `cni-plugins`, `cni-flannel`.
    pub component: String,
    /// Release version as published (`v1.36.0`, `v3.6.8`, `v2.3.7`).
    pub version: String,
    pub arch: String,
    /// sha256 of the installed file.
    pub sha256: String,
    /// Where it came from (the archive for extracted files).
    pub url: String,
    /// sha256 of the downloaded artifact as published; equals `sha256` for plain binaries.
    pub artifact_sha256: String,
}

/// The most read of `versions.json` (a few KiB for every component and image).
const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Reads `{dir}/versions.json`; an absent file is an empty manifest. A link, FIFO or a file
/// over 4 MiB there is an error (`fetch` then starts a new manifest).
pub fn read_manifest(dir: &Path) -> Result<Manifest, FetchError> {
    use crate::fsutil::{read_regular, ReadError};
    let path = dir.join(MANIFEST_FILE);
    // A regular file, no link followed, capped: the directory may hold anyone's files.
    match read_regular(&path, MAX_MANIFEST_BYTES) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| FetchError::ManifestJson {
            path: path.clone(),
            source,
        }),
        Err(ReadError::NotFound) => Ok(Manifest::default()),
        Err(ReadError::Io(e)) => Err(FetchError::io(&path, e)),
        Err(e) => Err(FetchError::io(&path, io::Error::other(e.to_string()))),
    }
}

pub(crate) fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), FetchError> {
    let path = dir.join(MANIFEST_FILE);
    let mut json =
        serde_json::to_vec_pretty(manifest).map_err(|source| FetchError::ManifestJson {
            path: path.clone(),
            source,
        })?;
    json.push(b'\n');
    crate::fsutil::write_atomic(&path, &json, 0o644).map_err(|e| FetchError::io(&path, e))
}
