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

mod archive;
mod config;
mod descriptor;
mod error;
mod layer;
mod reader;
#[cfg(test)]
pub(crate) mod tests;

pub use archive::{manifest_json, write_archive, write_image};
pub use config::{config_json, host_architecture, ImageConfig};
pub use descriptor::{
    digest_of, tag_of, CONFIG_MEDIA_TYPE, CONTAINERD_NAME_ANNOTATION, INDEX_MEDIA_TYPE,
    LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, REF_NAME_ANNOTATION,
};
pub use error::OciError;
pub use layer::{build_layer, Content, Entry, Layer, IMPLIED_DIR_MODE};
pub use reader::{read_archive_index, ArchivedImage};
