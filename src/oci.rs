//! OCI image-layout archives, the form `ctr images import` reads: one tar holding
//! `oci-layout`, `index.json` and `blobs/sha256/<hex>`.
//!
//! Everything here is deterministic: the same inputs give byte-identical layers and archives
//! (entries sorted by path, mtime 0, uid/gid 0, no user or group names, fixed modes, gzip
//! without a timestamp or file name, JSON with a fixed key order and no creation time).
//! Archives are written atomically: a reader sees the old file or the whole new one.
//!
//! Building an image:
//! ```no_run
//! use k8s_boot::oci::{self, Entry, ImageConfig};
//! let layer = oci::build_layer(&[
//!     Entry::file("/pause", "/tmp/pause", 0o755),
//!     Entry::bytes("/etc/passwd", b"root:x:0:0:root:/root:/sbin/nologin\n".to_vec(), 0o644),
//! ])?;
//! let config = ImageConfig {
//!     entrypoint: vec!["/pause".into()],
//!     user: "65535:65535".into(),
//!     ..ImageConfig::default()
//! };
//! let digest = oci::write_image("pause.tar".as_ref(), "registry.k8s.io/pause:3.10.2", &config, &[layer])?;
//! # Ok::<(), oci::OciError>(())
//! ```

use crate::digest::{finish_hex, sha256_hex};
use crate::fsutil::write_atomic_with;
use flate2::{Compression, GzBuilder};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Annotation containerd names the imported image by.
pub const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";
/// Standard annotation: the tag of the image.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("image reference `{0}` is not NAME:TAG (a tag is required, a digest is not accepted)")]
    Reference(String),
    #[error("layer entry `{path}`: {message}")]
    Entry { path: String, message: String },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> OciError {
    let path = path.to_path_buf();
    move |source| OciError::Io {
        action,
        path,
        source,
    }
}

/// `sha256:<hex>` of `bytes`.
pub use crate::digest::oci_digest as digest_of;

/// What a layer entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A regular file copied from this file on the machine (symlinks followed).
    File(PathBuf),
    /// A regular file with these bytes.
    Bytes(Vec<u8>),
    /// A symbolic link to this target (relative or absolute, as given).
    Symlink(String),
    /// A directory.
    Dir,
}

/// One entry of a layer: its path in the image (a leading `/` is optional), what it holds, its
/// mode (permission bits; ignored for symlinks, which are always 0777) and extended
/// attributes (e.g. `security.capability`), stored as PAX `SCHILY.xattr.` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub content: Content,
    pub mode: u32,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Entry {
    pub fn file(path: &str, source: impl Into<PathBuf>, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            content: Content::File(source.into()),
            mode,
            xattrs: BTreeMap::new(),
        }
    }
    pub fn bytes(path: &str, bytes: impl Into<Vec<u8>>, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            content: Content::Bytes(bytes.into()),
            mode,
            xattrs: BTreeMap::new(),
        }
    }
    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry {
            path: path.into(),
            content: Content::Symlink(target.into()),
            mode: 0o777,
            xattrs: BTreeMap::new(),
        }
    }
    /// The entry with the extended attribute `name` (e.g. `security.capability`) set.
    pub fn with_xattr(mut self, name: &str, value: impl Into<Vec<u8>>) -> Entry {
        self.xattrs.insert(name.into(), value.into());
        self
    }
    pub fn dir(path: &str, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            content: Content::Dir,
            mode,
            xattrs: BTreeMap::new(),
        }
    }
}

/// Mode of the directories a layer creates because an entry lies below them.
pub const IMPLIED_DIR_MODE: u32 = 0o755;

/// A built layer: the gzipped tar (the blob) and its two digests.
#[derive(Clone, PartialEq, Eq)]
pub struct Layer {
    pub blob: Vec<u8>,
    /// `sha256:` of the blob, as the manifest names it.
    pub digest: String,
    /// `sha256:` of the uncompressed tar, as the config's `rootfs.diff_ids` names it.
    pub diff_id: String,
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layer")
            .field("size", &self.blob.len())
            .field("digest", &self.digest)
            .field("diff_id", &self.diff_id)
            .finish()
    }
}

/// `etc/passwd` from `/etc/passwd`; rejects empty paths, `.` and `..` components.
fn normalize(path: &str) -> Result<String, OciError> {
    let bad = |message: &str| OciError::Entry {
        path: path.into(),
        message: message.into(),
    };
    let mut parts = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::RootDir => {}
            Component::Normal(p) => parts.push(
                p.to_str()
                    .ok_or_else(|| bad("the path is not UTF-8"))?
                    .to_string(),
            ),
            Component::CurDir | Component::ParentDir | Component::Prefix(_) => {
                return Err(bad("`.` and `..` are not allowed in a path in the image"))
            }
        }
    }
    if parts.is_empty() {
        return Err(bad("the path is empty"));
    }
    Ok(parts.join("/"))
}

/// The tar of `entries` plus every parent directory they need, sorted by path. Two entries
/// for one path, or an entry below something that is not a directory, are errors.
fn plan_entries(entries: &[Entry]) -> Result<BTreeMap<String, Entry>, OciError> {
    let mut map: BTreeMap<String, Entry> = BTreeMap::new();
    for e in entries {
        let path = normalize(&e.path)?;
        if map.contains_key(&path) {
            return Err(OciError::Entry {
                path: e.path.clone(),
                message: "given twice".into(),
            });
        }
        map.insert(path, e.clone());
    }
    let mut implied = Vec::new();
    for path in map.keys() {
        let mut parent = path.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            parent = p;
            match map.get(parent) {
                Some(Entry {
                    content: Content::Dir,
                    ..
                }) => {}
                Some(_) => {
                    return Err(OciError::Entry {
                        path: path.clone(),
                        message: format!("its parent `{parent}` is not a directory"),
                    })
                }
                None => implied.push(parent.to_string()),
            }
        }
    }
    for p in implied {
        map.entry(p.clone())
            .or_insert_with(|| Entry::dir(&p, IMPLIED_DIR_MODE));
    }
    Ok(map)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode & 0o7777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

/// Passes writes on and hashes them.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// PAX extended header records `<length> SCHILY.xattr.<name>=<value>\n`, sorted by name.
fn pax_records(xattrs: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in xattrs {
        let key = format!("SCHILY.xattr.{name}");
        // The length counts itself: find the fixed point.
        let rest = 1 + key.len() + 1 + value.len() + 1;
        let mut len = rest + 1;
        while rest + len.to_string().len() != len {
            len = rest + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

/// A gzipped layer tar of `entries` (parent directories added with mode 0755), deterministic.
pub fn build_layer(entries: &[Entry]) -> Result<Layer, OciError> {
    let planned = plan_entries(entries)?;
    let gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::default());
    let mut tar = tar::Builder::new(Hashing {
        inner: gz,
        hasher: Sha256::new(),
    });
    let layer_io = |path: &str| {
        let path = path.to_string();
        move |source: io::Error| OciError::Entry {
            path,
            message: format!("cannot add to the layer: {source}"),
        }
    };
    for (path, e) in &planned {
        if !e.xattrs.is_empty() {
            let records = pax_records(&e.xattrs);
            let mut h = header(tar::EntryType::XHeader, 0o644, records.len() as u64);
            let name = match path.rsplit_once('/') {
                Some((dir, base)) => format!("{dir}/PaxHeaders/{base}"),
                None => format!("PaxHeaders/{path}"),
            };
            tar.append_data(&mut h, name, records.as_slice())
                .map_err(layer_io(path))?;
        }
        match &e.content {
            Content::Dir => {
                let mut h = header(tar::EntryType::Directory, e.mode, 0);
                tar.append_data(&mut h, format!("{path}/"), io::empty())
                    .map_err(layer_io(path))?;
            }
            Content::Bytes(b) => {
                let mut h = header(tar::EntryType::Regular, e.mode, b.len() as u64);
                tar.append_data(&mut h, path, b.as_slice())
                    .map_err(layer_io(path))?;
            }
            Content::File(src) => {
                let f = fs::File::open(src).map_err(io_err("cannot open", src))?;
                let meta = f.metadata().map_err(io_err("cannot stat", src))?;
                if !meta.is_file() {
                    return Err(OciError::Entry {
                        path: e.path.clone(),
                        message: format!("{} is not a regular file", src.display()),
                    });
                }
                let mut h = header(tar::EntryType::Regular, e.mode, meta.len());
                // A file that changes size while being read fails the append.
                tar.append_data(&mut h, path, f.take(meta.len()))
                    .map_err(io_err("cannot read", src))?;
            }
            Content::Symlink(target) => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                tar.append_link(&mut h, path, target)
                    .map_err(layer_io(path))?;
            }
        }
    }
    let hashing = tar.into_inner().map_err(layer_io("(end of layer)"))?;
    let diff_id = format!("sha256:{}", finish_hex(hashing.hasher));
    let blob = hashing.inner.finish().map_err(layer_io("(gzip)"))?;
    Ok(Layer {
        digest: digest_of(&blob),
        blob,
        diff_id,
    })
}

/// The runtime part of an image config. Empty fields are left out of the JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// GOARCH spelling: `amd64`, `arm64`. Default: this machine's.
    pub architecture: String,
    /// `linux`.
    pub os: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `65535:65535`, `65532`, `node`, ...
    pub user: String,
    /// `KEY=value`.
    pub env: Vec<String>,
    pub working_dir: String,
}

impl Default for ImageConfig {
    fn default() -> ImageConfig {
        ImageConfig {
            architecture: host_architecture().into(),
            os: "linux".into(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            user: String::new(),
            env: Vec::new(),
            working_dir: String::new(),
        }
    }
}

/// This machine's architecture as OCI (GOARCH) names it.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[derive(Serialize)]
struct ConfigJson<'a> {
    architecture: &'a str,
    os: &'a str,
    config: RuntimeJson<'a>,
    rootfs: RootfsJson<'a>,
}

#[derive(Serialize)]
struct RuntimeJson<'a> {
    #[serde(rename = "User", skip_serializing_if = "str::is_empty")]
    user: &'a str,
    #[serde(rename = "Env", skip_serializing_if = "<[_]>::is_empty")]
    env: &'a [String],
    #[serde(rename = "Entrypoint", skip_serializing_if = "<[_]>::is_empty")]
    entrypoint: &'a [String],
    #[serde(rename = "Cmd", skip_serializing_if = "<[_]>::is_empty")]
    cmd: &'a [String],
    #[serde(rename = "WorkingDir", skip_serializing_if = "str::is_empty")]
    working_dir: &'a str,
}

#[derive(Serialize)]
struct RootfsJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<&'a str>,
}

/// The image config JSON (`application/vnd.oci.image.config.v1+json`) for `layers`, bottom first.
pub fn config_json(config: &ImageConfig, layers: &[Layer]) -> Vec<u8> {
    let json = ConfigJson {
        architecture: &config.architecture,
        os: &config.os,
        config: RuntimeJson {
            user: &config.user,
            env: &config.env,
            entrypoint: &config.entrypoint,
            cmd: &config.cmd,
            working_dir: &config.working_dir,
        },
        rootfs: RootfsJson {
            kind: "layers",
            diff_ids: layers.iter().map(|l| l.diff_id.as_str()).collect(),
        },
    };
    serde_json::to_vec(&json).expect("config JSON serializes")
}

#[derive(Serialize)]
struct DescriptorJson<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, &'a str>,
}

impl<'a> DescriptorJson<'a> {
    fn of(media_type: &'a str, bytes: &[u8]) -> DescriptorJson<'a> {
        DescriptorJson {
            media_type,
            digest: digest_of(bytes),
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
        }
    }
}

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
            let mut h = header(tar::EntryType::Directory, 0o755, 0);
            tar.append_data(&mut h, dir, io::empty())?;
        }
        let file = |tar: &mut tar::Builder<_>, name: &str, bytes: &[u8]| {
            let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
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
            serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
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
pub(crate) mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::os::unix::fs::PermissionsExt;

    /// Every entry of a tar: path -> (type, mode, uid, gid, mtime, content or link target).
    pub(crate) type TarEntries = BTreeMap<String, (tar::EntryType, u32, u64, u64, u64, Vec<u8>)>;

    pub(crate) fn read_tar(bytes: &[u8]) -> TarEntries {
        let mut out = BTreeMap::new();
        let mut order = Vec::new();
        let mut ar = tar::Archive::new(bytes);
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let h = e.header().clone();
            let mut data = Vec::new();
            if h.entry_type() == tar::EntryType::Symlink {
                data = e
                    .link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
                    .into_bytes();
            } else {
                e.read_to_end(&mut data).unwrap();
            }
            order.push(path.clone());
            let prev = out.insert(
                path,
                (
                    h.entry_type(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                    data,
                ),
            );
            assert!(prev.is_none(), "duplicate entry");
        }
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "entries are sorted by path");
        out
    }

    pub(crate) fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    /// The parsed image of an archive: (index, manifest, config, layer tars uncompressed),
    /// every digest and size checked against the blob it names.
    pub(crate) fn open_archive(
        bytes: &[u8],
    ) -> (
        serde_json::Value,
        serde_json::Value,
        serde_json::Value,
        Vec<Vec<u8>>,
    ) {
        let files = read_tar(bytes);
        for (path, (kind, mode, uid, gid, mtime, _)) in &files {
            assert_eq!((*uid, *gid, *mtime), (0, 0, 0), "{path}");
            let want = if path.ends_with('/') { 0o755 } else { 0o644 };
            assert_eq!(*mode, want, "{path}");
            assert!(
                matches!(kind, tar::EntryType::Regular | tar::EntryType::Directory),
                "{path}"
            );
        }
        assert_eq!(
            files["oci-layout"].5,
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()
        );
        for (path, f) in &files {
            if let Some(h) = path.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
                assert_eq!(
                    crate::digest::sha256_hex(&f.5),
                    h,
                    "blob named by its digest"
                );
            }
        }
        let blob = |d: &serde_json::Value| -> Vec<u8> {
            let d = d.as_object().unwrap();
            let digest = d["digest"].as_str().unwrap();
            let hex = digest.strip_prefix("sha256:").unwrap();
            let b = files[&format!("blobs/sha256/{hex}")].5.clone();
            assert_eq!(d["size"].as_u64().unwrap(), b.len() as u64, "{digest}");
            b
        };
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"].5).unwrap();
        assert_eq!(index["schemaVersion"], 2);
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        let manifest: serde_json::Value =
            serde_json::from_slice(&blob(&index["manifests"][0])).unwrap();
        assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        let config: serde_json::Value = serde_json::from_slice(&blob(&manifest["config"])).unwrap();
        let mut layers = Vec::new();
        for (l, diff_id) in manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .zip(config["rootfs"]["diff_ids"].as_array().unwrap())
        {
            assert_eq!(l["mediaType"], LAYER_MEDIA_TYPE);
            let tar = gunzip(&blob(l));
            assert_eq!(diff_id.as_str().unwrap(), digest_of(&tar), "diff_id");
            layers.push(tar);
        }
        assert_eq!(
            layers.len(),
            config["rootfs"]["diff_ids"].as_array().unwrap().len()
        );
        (index, manifest, config, layers)
    }

    fn sample(dir: &Path) -> Vec<Entry> {
        let src = dir.join("prog");
        fs::write(&src, b"#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o600)).unwrap();
        vec![
            Entry::bytes("/etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644),
            Entry::file("/usr/local/bin/prog", &src, 0o755).with_xattr(
                "security.capability",
                [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ),
            Entry::symlink("/usr/bin/prog", "../local/bin/prog"),
            Entry::dir("/tmp", 0o1777),
        ]
    }

    #[test]
    fn layers_are_deterministic_and_hold_the_entries() {
        let dir = tempfile::tempdir().unwrap();
        let entries = sample(dir.path());
        let a = build_layer(&entries).unwrap();
        let mut reversed = entries.clone();
        reversed.reverse();
        let b = build_layer(&reversed).unwrap();
        assert_eq!(a, b, "same entries in another order: the same bytes");
        assert_eq!(a.digest, digest_of(&a.blob));
        let tar = gunzip(&a.blob);
        assert_eq!(a.diff_id, digest_of(&tar));
        let files = read_tar(&tar);
        let summary: Vec<(&str, tar::EntryType, u32)> =
            files.iter().map(|(p, e)| (p.as_str(), e.0, e.1)).collect();
        use tar::EntryType::{Directory as D, Regular as R, Symlink as L};
        assert_eq!(
            summary,
            [
                ("etc/", D, 0o755),
                ("etc/passwd", R, 0o644),
                ("tmp/", D, 0o1777),
                ("usr/", D, 0o755),
                ("usr/bin/", D, 0o755),
                ("usr/bin/prog", L, 0o777),
                ("usr/local/", D, 0o755),
                ("usr/local/bin/", D, 0o755),
                ("usr/local/bin/prog", R, 0o755),
            ]
        );
        assert_eq!(files["usr/local/bin/prog"].5, b"#!/bin/sh\necho hi\n");
        assert_eq!(files["usr/bin/prog"].5, b"../local/bin/prog");
        for (p, e) in &files {
            assert_eq!((e.2, e.3, e.4), (0, 0, 0), "{p}: uid, gid, mtime");
        }
        // The gzip header carries no time stamp.
        assert_eq!(&a.blob[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn long_paths_and_bad_entries() {
        let long = format!("/opt/{}/file", "d".repeat(150));
        let l = build_layer(&[Entry::bytes(&long, "x", 0o644)]).unwrap();
        let files = read_tar(&gunzip(&l.blob));
        assert_eq!(files[&long[1..]].5, b"x");

        let e = build_layer(&[Entry::bytes("a", "", 0o644), Entry::bytes("/a", "", 0o644)])
            .unwrap_err();
        assert!(e.to_string().contains("given twice"), "{e}");
        let e = build_layer(&[Entry::bytes("a", "", 0o644), Entry::bytes("a/b", "", 0o644)])
            .unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let e = build_layer(&[Entry::bytes("a/../b", "", 0o644)]).unwrap_err();
        assert!(e.to_string().contains("`..`"), "{e}");
        let e = build_layer(&[Entry::file("x", "/nonexistent/source", 0o644)]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/source"), "{e}");
    }

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

    /// Checks an archive with an independent reader (python3's tarfile, gzip, json, hashlib):
    /// every digest and size, the diff_ids, the annotations. Prints `name tag` and the layer
    /// paths with their modes.
    pub(crate) fn python_check(archive: &Path) -> String {
        const SCRIPT: &str = r#"
import gzip, hashlib, io, json, sys, tarfile
t = tarfile.open(sys.argv[1])
files = {m.name.rstrip("/"): m for m in t.getmembers()}
def blob(d):
    data = t.extractfile(files["blobs/sha256/" + d["digest"].split(":", 1)[1]]).read()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == d["digest"], d
    assert len(data) == d["size"], d
    return data
layout = json.loads(t.extractfile(files["oci-layout"]).read())
assert layout == {"imageLayoutVersion": "1.0.0"}, layout
index = json.loads(t.extractfile(files["index.json"]).read())
(desc,) = index["manifests"]
a = desc["annotations"]
print(a["io.containerd.image.name"], a["org.opencontainers.image.ref.name"])
manifest = json.loads(blob(desc))
config = json.loads(blob(manifest["config"]))
assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"])
for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"]):
    raw = gzip.decompress(blob(layer))
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == diff_id
    for m in tarfile.open(fileobj=io.BytesIO(raw)).getmembers():
        assert m.uid == 0 and m.gid == 0 and m.mtime == 0, m.name
        x = sorted(k + "=" + v.encode("utf-8", "surrogateescape").hex() for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr."))
        print(m.name, oct(m.mode), m.type.decode(), m.linkname, *x)
"#;
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .arg(archive)
            .output()
            .expect("python3 runs (Debian package python3)");
        assert!(
            out.status.success(),
            "python3 check failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
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

    #[test]
    fn extended_attributes_are_pax_records() {
        let cap = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let l = build_layer(&[
            Entry::bytes("/bin/x", "x", 0o755).with_xattr("security.capability", cap),
            Entry::bytes("/bin/y", "y", 0o755),
        ])
        .unwrap();
        let tar = gunzip(&l.blob);
        let mut ar = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut x = Vec::new();
            if let Some(exts) = e.pax_extensions().unwrap() {
                for ext in exts {
                    let ext = ext.unwrap();
                    x.push((ext.key().unwrap().to_string(), ext.value_bytes().to_vec()));
                }
            }
            seen.push((path, x));
        }
        assert_eq!(
            seen,
            [
                ("bin/".to_string(), vec![]),
                (
                    "bin/x".to_string(),
                    vec![("SCHILY.xattr.security.capability".to_string(), cap.to_vec())]
                ),
                ("bin/y".to_string(), vec![]),
            ]
        );
        // A record's length counts its own digits (98 other bytes: 101, not 100).
        let r = pax_records(&BTreeMap::from([("a".to_string(), vec![b'b'; 81])]));
        assert!(
            r.starts_with(b"101 SCHILY.xattr.a="),
            "{}",
            String::from_utf8_lossy(&r)
        );
        assert_eq!(r.len(), 101);
    }

    #[test]
    fn empty_config_fields_are_left_out() {
        let json = config_json(&ImageConfig::default(), &[]);
        assert_eq!(
            String::from_utf8(json).unwrap(),
            format!(
                r#"{{"architecture":"{}","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#,
                host_architecture()
            )
        );
    }
}

#[cfg(test)]
mod read_index_tests {
    use super::*;

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
