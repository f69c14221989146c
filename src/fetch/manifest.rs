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
        Ok(bytes) => {
            let manifest: Manifest =
                serde_json::from_slice(&bytes).map_err(|source| FetchError::ManifestJson {
                    path: path.clone(),
                    source,
                })?;
            // Its names are removed and replaced by later runs: each must stay inside `dir`.
            let names = manifest
                .files
                .keys()
                .chain(manifest.images.values().map(|i| &i.archive));
            match names.into_iter().find(|n| !is_inside(n)) {
                Some(name) => Err(FetchError::ManifestPath {
                    path,
                    name: name.clone(),
                }),
                None => Ok(manifest),
            }
        }
        Err(ReadError::NotFound) => Ok(Manifest::default()),
        Err(ReadError::Io(e)) => Err(FetchError::io(&path, e)),
        Err(e) => Err(FetchError::io(&path, io::Error::other(e.to_string()))),
    }
}

/// A relative path of plain names (no root, no `.` or `..`, not empty).
fn is_inside(name: &str) -> bool {
    let path = Path::new(name);
    !name.is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_naming_a_path_outside_the_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |name: &str| {
            format!(
                r#"{{"files": {{"{name}": {{"component": "runc", "version": "v1", "arch": "amd64",
                "sha256": "x", "url": "u", "artifact_sha256": "x"}}}}}}"#
            )
        };
        for bad in ["../victim", "/etc/passwd", "cni/../../x", "./runc", ""] {
            std::fs::write(dir.path().join(MANIFEST_FILE), entry(bad)).unwrap();
            let err = read_manifest(dir.path()).unwrap_err();
            assert!(
                matches!(&err, FetchError::ManifestPath { name, .. } if name == bad),
                "{bad}: {err}"
            );
        }
        for good in ["runc", "cni/bridge"] {
            std::fs::write(dir.path().join(MANIFEST_FILE), entry(good)).unwrap();
            assert!(read_manifest(dir.path()).unwrap().files.contains_key(good));
        }
        let image = r#"{"images": {"r": {"digest": "d", "pinned": false, "arch": "amd64",
            "manifest_digest": "m", "archive": "../../home/user/file", "archive_sha256": "s",
            "url": "u"}}}"#;
        std::fs::write(dir.path().join(MANIFEST_FILE), image).unwrap();
        assert!(matches!(
            read_manifest(dir.path()),
            Err(FetchError::ManifestPath { .. })
        ));
    }
}
