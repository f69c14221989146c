//! Download of the official release binaries with checksum verification, and of the images
//! the cluster runs.
//!
//! [`fetch`] fills a local binaries directory (`binaries.dir` of the inventory) with the
//! release artifacts of one Kubernetes version, verified against the checksum files published
//! next to them, and with OCI archives of the images (see the `images` module):
//!
//! ```text
//! {dir}/kube-apiserver ... kubectl, etcd, etcdctl, etcdutl,
//!       containerd, containerd-shim-runc-v2, ctr, runc, crictl   executables, 0755
//! {dir}/cni/bridge, host-local, loopback, portmap, flannel, ...  CNI plugins, 0755
//! {dir}/images/*.tar                                             image archives
//! {dir}/versions.json                                 what is installed (see Manifest)
//! {dir}/.cache/*.tar.gz                               verified archives
//! {dir}/.cache/blobs/sha256/*                         verified image blobs
//! {dir}/.cache/*.part                                 interrupted downloads
//! ```
//!
//! A file that already matches its published checksum is not downloaded again (the small
//! checksum files are fetched on every run). An interrupted download is continued with an
//! HTTP `Range` request. Nothing reaches `{dir}/{name}` before its checksum was verified;
//! files are written to a temporary name and renamed. See `docs/FETCH.md`.
//!
//! Modules, bottom up: `error`; `proxy`, `http` (GET, resume), `checksum` (published
//! checksum files), `extract` (archive members into temporary files), `manifest`
//! (`versions.json`), `registry` (the registry API); `report`, `disk`; `component`,
//! `mirrors`, `pins` (release versions and image digests), `artifacts` (the release
//! catalogue), `images` (the image list), `options`; `run` (the state of one run),
//! `blobs` (the verified blob cache), `image_pull` and `download` (the run itself).

mod artifacts;
mod blobs;
mod checksum;
mod disk;
mod download;
mod error;
mod extract;
mod http;
mod image_pull;
mod images;
mod manifest;
mod mirrors;
mod options;
mod pins;
mod proxy;
mod registry;
mod release_group;
mod report;
mod run;
mod shown_url;

pub use artifacts::{
    Artifact, Install, CNI_DIR, KUBERNETES_BINARIES, REQUIRED_CNI_PLUGINS, SUPPORTED_ARCHES,
};
pub use disk::{lock_binaries_dir, remove_leftovers};
pub use download::{fetch, CACHE_DIR};
pub use error::FetchError;
pub use extract::Extract;
pub use http::{CONNECT_TIMEOUT, READ_TIMEOUT};
pub use images::{
    archive_name, cluster_images, conformance_images, default_chat_image, ImageSpec,
    BLOB_CACHE_DIR, IMAGES_DIR,
};
pub use manifest::{read_manifest, ImageEntry, Manifest, ManifestEntry, MANIFEST_FILE};
pub use mirrors::Mirrors;
pub use options::{artifacts, FetchOptions};
pub use pins::{
    pinned_digest, Pin, CNI_PLUGINS_VERSION, CONTAINERD_VERSION, CRICTL_VERSION,
    FLANNEL_CNI_PLUGIN_VERSION, IMAGE_PINS, RUNC_VERSION,
};
pub use registry::{origin as registry_origin, ImageRef};
pub use release_group::{ReleaseGroup, UnknownReleaseGroup};
pub use report::{human, FetchReport, Outcome};
pub use shown_url::RedactedUrl;
