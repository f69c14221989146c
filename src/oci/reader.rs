//! Reading an image-layout archive back: which images its `index.json` names.

use std::fs;
use std::io;
use std::path::Path;

use super::descriptor::CONTAINERD_NAME_ANNOTATION;
use super::error::{io_err, OciError};

/// The image an archive holds, as its `index.json` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedImage {
    /// `io.containerd.image.name`, e.g. `registry.k8s.io/pause:3.10.2`.
    pub image_ref: String,
    /// The manifest digest, `sha256:<hex>`.
    pub digest: String,
}

/// Reads the images named in the `index.json` of an OCI image-layout archive (only that
/// entry is read; blobs are skipped).
pub fn read_archive_index(path: &Path) -> Result<Vec<ArchivedImage>, OciError> {
    let bad = |message: String| OciError::Entry {
        path: format!("{}: index.json", path.display()),
        message,
    };
    let f = fs::File::open(path).map_err(io_err("cannot open", path))?;
    let mut ar = tar::Archive::new(io::BufReader::new(f));
    let entries = ar.entries().map_err(io_err("cannot read", path))?;
    for e in entries {
        let mut e = e.map_err(io_err("cannot read", path))?;
        let name = e.path().map_err(io_err("cannot read", path))?;
        if name.to_string_lossy().trim_start_matches("./") != "index.json" {
            continue;
        }
        let mut text = Vec::new();
        io::Read::read_to_end(&mut e, &mut text).map_err(io_err("cannot read", path))?;
        let index: serde_json::Value =
            serde_json::from_slice(&text).map_err(|source| OciError::IndexJson {
                path: format!("{}: index.json", path.display()),
                source,
            })?;
        let manifests = index["manifests"]
            .as_array()
            .ok_or_else(|| bad("no `manifests` list".into()))?;
        return manifests
            .iter()
            .map(|m| {
                let image_ref = m["annotations"][CONTAINERD_NAME_ANNOTATION]
                    .as_str()
                    .ok_or_else(|| {
                        bad(format!("a manifest lacks `{CONTAINERD_NAME_ANNOTATION}`"))
                    })?;
                let digest = m["digest"]
                    .as_str()
                    .ok_or_else(|| bad("a manifest lacks `digest`".into()))?;
                Ok(ArchivedImage {
                    image_ref: image_ref.to_string(),
                    digest: digest.to_string(),
                })
            })
            .collect();
    }
    Err(bad("not found in the archive".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{build_layer, write_image, Entry, ImageConfig};

    #[test]
    fn the_index_names_the_image_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img.tar");
        let layer = build_layer(&[Entry::bytes("hello", b"hi".to_vec(), 0o644)]).unwrap();
        let config = ImageConfig::default();
        let digest = write_image(&path, "example.org/a/b:v1", &config, &[layer]).unwrap();
        let images = read_archive_index(&path).unwrap();
        assert_eq!(
            images,
            vec![ArchivedImage {
                image_ref: "example.org/a/b:v1".into(),
                digest
            }]
        );
        fs::write(&path, b"not a tar").unwrap();
        assert!(read_archive_index(&path).is_err());
    }
}
