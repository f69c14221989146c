//! The image-layout writer: manifest and `index.json` for one image, every blob under
//! `blobs/sha256/`, written atomically as one tar.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use super::config::{config_json, ImageConfig};
use super::descriptor::{
    tag_of, DescriptorJson, CONFIG_MEDIA_TYPE, CONTAINERD_NAME_ANNOTATION, INDEX_MEDIA_TYPE,
    LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, REF_NAME_ANNOTATION,
};
use super::error::{io_err, OciError};
use super::layer::{tar_header, Layer};
use crate::digest::sha256_hex;
use crate::fsutil::write_atomic_with;

#[derive(Serialize)]
struct ManifestJson<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: DescriptorJson<'a>,
    layers: Vec<DescriptorJson<'a>>,
}

/// The image manifest JSON ([`MANIFEST_MEDIA_TYPE`]) naming `config` (the config JSON's bytes)
/// and `layers` ([`LAYER_MEDIA_TYPE`]), bottom first.
pub fn manifest_json(config: &[u8], layers: &[Layer]) -> Vec<u8> {
    let json = ManifestJson {
        schema_version: 2,
        media_type: MANIFEST_MEDIA_TYPE,
        config: DescriptorJson::of(CONFIG_MEDIA_TYPE, config),
        layers: layers
            .iter()
            .map(|l| DescriptorJson {
                media_type: LAYER_MEDIA_TYPE,
                digest: l.digest.clone(),
                size: l.blob.len() as u64,
                annotations: BTreeMap::new(),
            })
            .collect(),
    };
    serde_json::to_vec(&json).expect("manifest JSON serializes")
}

#[derive(Serialize)]
struct IndexJson<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<DescriptorJson<'a>>,
}

/// Writes `path` as an OCI image-layout tar holding one image: `oci-layout`, `index.json` with
/// one manifest descriptor annotated `io.containerd.image.name` = image_ref and
/// `org.opencontainers.image.ref.name` = the tag, and `blobs/sha256/<hex>` for the manifest and
/// every blob. Returns the manifest digest `sha256:<hex>`.
///
/// `blobs` are the config and the layers (any order; duplicates are stored once). The file is
/// mode 0644, written through a temporary file in the same directory, fsynced and renamed.
pub fn write_archive(
    path: &Path,
    image_ref: &str,
    manifest_media_type: &str,
    manifest: &[u8],
    blobs: &[&[u8]],
) -> Result<String, OciError> {
    let tag = tag_of(image_ref)?;
    let mut descriptor = DescriptorJson::of(manifest_media_type, manifest);
    descriptor
        .annotations
        .insert(CONTAINERD_NAME_ANNOTATION, image_ref);
    descriptor.annotations.insert(REF_NAME_ANNOTATION, tag);
    let manifest_digest = descriptor.digest.clone();
    let index = serde_json::to_vec(&IndexJson {
        schema_version: 2,
        media_type: INDEX_MEDIA_TYPE,
        manifests: vec![descriptor],
    })
    .expect("index JSON serializes");

    // Sorted by path: blobs/, blobs/sha256/, blobs/sha256/<hex>..., index.json, oci-layout.
    let mut by_hex: BTreeMap<String, &[u8]> = BTreeMap::new();
    for b in std::iter::once(&manifest).chain(blobs) {
        by_hex.insert(sha256_hex(b), b);
    }
    let layout: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
    write_atomic_with(path, 0o644, |f| {
        let mut tar = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, f));
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut h = tar_header(tar::EntryType::Directory, 0o755, 0);
            tar.append_data(&mut h, dir, io::empty())?;
        }
        let file = |tar: &mut tar::Builder<_>, name: &str, bytes: &[u8]| {
            let mut h = tar_header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
            tar.append_data(&mut h, name, bytes)
        };
        for (hex, bytes) in &by_hex {
            file(&mut tar, &format!("blobs/sha256/{hex}"), bytes)?;
        }
        file(&mut tar, "index.json", &index)?;
        file(&mut tar, "oci-layout", layout)?;
        tar.into_inner()?.flush()
    })
    .map_err(io_err("cannot write the image archive", path))?;
    Ok(manifest_digest)
}

/// Writes `path` as the archive of one image made of `layers` (bottom first) run as `config`
/// says, named `image_ref`. Returns the manifest digest.
pub fn write_image(
    path: &Path,
    image_ref: &str,
    config: &ImageConfig,
    layers: &[Layer],
) -> Result<String, OciError> {
    let config = config_json(config, layers);
    let manifest = manifest_json(&config, layers);
    let mut blobs: Vec<&[u8]> = vec![&config];
    blobs.extend(layers.iter().map(|l| l.blob.as_slice()));
    write_archive(path, image_ref, MANIFEST_MEDIA_TYPE, &manifest, &blobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::tests::{open_archive, python_check, read_tar, sample};
    use crate::oci::{build_layer, host_architecture, Entry};
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn archives_are_deterministic_with_correct_digests_and_annotations() {
        let dir = tempfile::tempdir().unwrap();
        let layers = vec![
            build_layer(&sample(dir.path())).unwrap(),
            build_layer(&[Entry::bytes("/data", "second layer", 0o600)]).unwrap(),
        ];
        let config = ImageConfig {
            entrypoint: vec!["/usr/local/bin/prog".into()],
            cmd: vec!["--flag".into()],
            user: "65532:65532".into(),
            env: vec!["PATH=/usr/local/bin:/usr/bin".into()],
            working_dir: "/".into(),
            ..ImageConfig::default()
        };
        let image = "registry.k8s.io/test/prog:v1.2.3";
        let a = dir.path().join("out/a.tar");
        let b = dir.path().join("b.tar");
        let digest = write_image(&a, image, &config, &layers).unwrap();
        assert_eq!(write_image(&b, image, &config, &layers).unwrap(), digest);
        let bytes = fs::read(&a).unwrap();
        assert_eq!(bytes, fs::read(&b).unwrap(), "byte-identical archives");
        assert_eq!(
            fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // Only the archive in its directory: the temporary file is gone.
        assert_eq!(fs::read_dir(a.parent().unwrap()).unwrap().count(), 1);

        let (index, manifest, cfg, tars) = open_archive(&bytes);
        let d = &index["manifests"][0];
        assert_eq!(d["digest"], digest.as_str());
        assert_eq!(d["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(d["annotations"][CONTAINERD_NAME_ANNOTATION], image);
        assert_eq!(d["annotations"][REF_NAME_ANNOTATION], "v1.2.3");
        assert_eq!(manifest["layers"].as_array().unwrap().len(), 2);
        assert_eq!(cfg["architecture"], host_architecture());
        assert_eq!(cfg["os"], "linux");
        assert_eq!(cfg["config"]["Entrypoint"][0], "/usr/local/bin/prog");
        assert_eq!(cfg["config"]["Cmd"][0], "--flag");
        assert_eq!(cfg["config"]["User"], "65532:65532");
        assert_eq!(cfg["config"]["Env"][0], "PATH=/usr/local/bin:/usr/bin");
        assert_eq!(cfg["config"]["WorkingDir"], "/");
        assert_eq!(cfg["rootfs"]["type"], "layers");
        assert_eq!(read_tar(&tars[1])["data"].5, b"second layer");

        // Another name: another index, the same blobs.
        let c = dir.path().join("c.tar");
        write_image(&c, "example.org/other:latest", &config, &layers).unwrap();
        assert_ne!(fs::read(&c).unwrap(), bytes);

        let e = write_image(&c, "example.org/untagged", &config, &layers).unwrap_err();
        assert!(matches!(e, OciError::Reference(_)), "{e}");
        let e = write_image(Path::new("/proc/none/x.tar"), image, &config, &layers).unwrap_err();
        assert!(e.to_string().contains("/proc/none/x.tar"), "{e}");
    }

    #[test]
    fn python_reads_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let layer = build_layer(&sample(dir.path())).unwrap();
        let path = dir.path().join("x.tar");
        write_image(&path, "example.org/x:1", &ImageConfig::default(), &[layer]).unwrap();
        let out = python_check(&path);
        assert!(out.starts_with("example.org/x:1 1\n"), "{out}");
        assert!(
            out.contains("\nusr/bin/prog 0o777 2 ../local/bin/prog\n"),
            "{out}"
        );
        assert!(out.contains("\ntmp 0o1777 5 \n"), "{out}");
        assert!(
            out.contains("\nusr/local/bin/prog 0o755 0  SCHILY.xattr.security.capability=0100000200040000000000000000000000000000\n"),
            "{out}"
        );
    }
}
