//! Container images for air-gapped nodes: each image the cluster runs is pulled from its
//! registry (or a mirror) and saved as an OCI image-layout archive under `{dir}/images/`,
//! which the runtime phase imports into containerd's `k8s.io` namespace.
//!
//! Verification: the digest a tag resolves to is compared with the digest pinned in
//! [`IMAGE_PINS`] before anything else is downloaded; every blob (config and layers) is
//! hashed while it streams and must match the digest its manifest names, and the platform
//! manifest must match the digest its index names. An image without a pin is verified by
//! its blob digests only (trust on first use) and its digest is recorded in `versions.json`.
//!
//! Blobs go to `{dir}/.cache/blobs/sha256/<hex>` (partial ones as `<hex>.part`, resumed by
//! `Range`), so an interrupted fetch continues where it stopped. The archive is written by
//! [`crate::oci::write_archive`], atomically, only once every blob was verified.

use std::fs;
use std::path::Path;

use super::error::FetchError;
use super::manifest::{self, ImageEntry};
use super::registry::{
    is_index, is_manifest, platforms, select_platform, ConfigPlatform, Descriptor, ImageManifest,
    ImageRef, Index, Session,
};
use super::{human, remove_if_exists, sync_dir, FetchOptions, Outcome, Run};
use crate::digest::{oci_digest, oci_digest_hex, sha256_file};

/// Image archives, under the binaries directory.
pub const IMAGES_DIR: &str = "images";
/// Verified blobs, under the cache directory.
pub const BLOB_CACHE_DIR: &str = "blobs/sha256";

/// An image to fetch: a `[registry/]repository:tag` reference and the digest its tag must
/// resolve to (`None`: trust on first use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub reference: String,
    pub digest: Option<String>,
}

impl ImageSpec {
    /// `reference` with its digest from [`IMAGE_PINS`], if there is one.
    pub fn pinned(reference: &str) -> ImageSpec {
        ImageSpec {
            reference: reference.to_string(),
            digest: pinned_digest(reference).map(str::to_string),
        }
    }
}

/// A row of the pin table: the image reference as the cluster names it, the digest of its
/// image index (manifest list) and where that digest was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    pub image: &'static str,
    pub digest: Option<&'static str>,
    pub source: &'static str,
}

/// Expected index digests of the images the cluster runs. None of these could be checked
/// against the registries from where this was written (no network); see `docs/FETCH.md`.
/// `None`: no trustworthy digest was found for the exact tag; such an image is fetched on
/// trust (blob digests only) with a warning.
pub const IMAGE_PINS: &[Pin] = &[
    Pin {
        image: "registry.k8s.io/pause:3.10.1",
        digest: Some("sha256:278fb9dbcca9518083ad1e11276933a2e96f23de604a3a08cc3c80002767d24c"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-kubernetes/images.yaml; kubernetes/k8s.io#8261",
    },
    Pin {
        image: "registry.k8s.io/pause:3.10.2",
        digest: Some("sha256:f548e0e8e3dc1896ca956272154dde3314e8cc4fde0a57577ee9fa1c63f5baf4"),
        source: "third-party pins of registry.k8s.io/pause:3.10.2 in several public repositories, none disagreeing; not in the stored copy of the promotion manifest",
    },
    Pin {
        image: "registry.k8s.io/coredns/coredns:v1.13.1",
        digest: Some("sha256:9b9128672209474da07c91439bf15ed704ae05ad918dd6454e5b6ae14e35fee6"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-coredns/images.yaml",
    },
    Pin {
        image: "registry.k8s.io/coredns/coredns:v1.14.2",
        digest: Some("sha256:e7e6440cfd1e919280958f5b5a6ab2b184d385bba774c12ad2a9e1e4183f90d9"),
        source: "cilium-cli defaults (ConnectivityDNSTestServerImage, kept by Renovate) and other public pins of coredns v1.14.2",
    },
    Pin {
        image: "registry.k8s.io/coredns/coredns:v1.14.6",
        digest: Some("sha256:900f9c109f7a33545d3c811516e8376df9019147b750f5ce3e254468769176ea"),
        source: "third-party pins of registry.k8s.io/coredns/coredns:v1.14.6 and coredns/coredns:1.14.6 in several public repositories, none disagreeing",
    },
    Pin {
        image: "registry.k8s.io/metrics-server/metrics-server:v0.8.0",
        digest: Some("sha256:89258156d0e9af60403eafd44da9676fd66f600c7934d468ccc17e42b199aee2"),
        source: "kubernetes/k8s.io promotion manifest registry.k8s.io/images/k8s-staging-metrics-server/images.yaml",
    },
    Pin {
        image: "ghcr.io/flannel-io/flannel:v0.28.10",
        digest: None,
        source: "no published digest found for this tag",
    },
    Pin {
        image: "docker.io/library/node:24-bookworm-slim",
        digest: None,
        source: "a moving tag: Docker Hub rebuilds it for every Node.js and Debian update",
    },
];

/// The pinned digest of `reference` (normalized first: `node:24` is
/// `docker.io/library/node:24`), if the table has one.
pub fn pinned_digest(reference: &str) -> Option<&'static str> {
    let full = ImageRef::parse(reference).ok()?.full();
    IMAGE_PINS
        .iter()
        .find(|p| p.image == full)
        .and_then(|p| p.digest)
}

/// The images the cluster runs for a Kubernetes version: pause and CoreDNS from its version
/// profile, flannel and metrics-server, and `chat_image` (the chat workload), each with its
/// pinned digest.
pub fn cluster_images(
    kubernetes_version: &str,
    chat_image: Option<&str>,
) -> Result<Vec<ImageSpec>, FetchError> {
    let profile = crate::versions::profile_for(kubernetes_version).map_err(FetchError::Version)?;
    let mut list = vec![
        ImageSpec::pinned(profile.pause_image),
        ImageSpec::pinned(profile.coredns_image),
        ImageSpec::pinned(crate::versions::IMAGES.flannel),
        ImageSpec::pinned(crate::versions::IMAGES.metrics_server),
    ];
    if let Some(chat) = chat_image {
        list.push(ImageSpec::pinned(chat));
    }
    Ok(list)
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

/// Parses and checks every image of `opts` (references, pins, registry mirrors) without
/// touching the network or the disk.
pub(crate) fn plan(opts: &FetchOptions) -> Result<Vec<Planned>, FetchError> {
    let mut out: Vec<Planned> = Vec::new();
    for spec in &opts.images {
        let image = ImageRef::parse(&spec.reference)?;
        if let Some(d) = &spec.digest {
            if oci_digest_hex(d).is_none() {
                return Err(FetchError::Reference {
                    reference: spec.reference.clone(),
                    message: format!("pinned digest `{d}` is not sha256:<64 lowercase hex>"),
                });
            }
        }
        Session::new(&image, &opts.mirror.registries)?;
        if out.iter().any(|p| p.image == image) {
            continue;
        }
        out.push(Planned {
            archive: format!("{IMAGES_DIR}/{}", archive_name(&image)),
            pin: spec.digest.clone(),
            image,
        });
    }
    // Mirrors of registries no image uses are checked too: a typo should not go unnoticed.
    for host in opts.mirror.registries.keys() {
        super::registry::endpoint(host, &opts.mirror.registries)?;
    }
    Ok(out)
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// How the blobs of one image were obtained in this run.
#[derive(Default)]
struct Obtained {
    downloaded: bool,
    resumed: bool,
}

impl Run<'_> {
    /// Fetches one image into its archive, unless the archive in place is the one recorded
    /// (and, for a pinned image, the pinned one).
    pub(crate) fn image(
        &mut self,
        planned: &Planned,
        mirrors: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), FetchError> {
        let label = planned.image.full();
        let archive = self.dir.join(&planned.archive);
        if let Some(e) = self.manifest.images.get(&label).cloned() {
            let pin_ok = planned.pin.as_deref().is_none_or(|p| p == e.digest);
            if pin_ok && e.arch == self.arch && e.archive == planned.archive {
                let have = sha256_file(&archive).map_err(|err| FetchError::io(&archive, err))?;
                if have.as_deref() == Some(e.archive_sha256.as_str()) {
                    self.say(format!("{label}: cached ({})", e.digest));
                    let size = fs::metadata(&archive)
                        .map_err(|err| FetchError::io(&archive, err))?
                        .len();
                    self.report.images.push((label, Outcome::Cached, size));
                    return Ok(());
                }
            }
            if !pin_ok {
                // What is there is no longer the pinned image: it must not stay installed.
                let old = self.dir.join(&e.archive);
                remove_if_exists(&old)?;
                self.manifest.images.remove(&label);
                manifest::write_manifest(&self.dir, &self.manifest)?;
                self.say(format!(
                    "{label}: removed {} ({} is not the pinned digest)",
                    e.archive, e.digest
                ));
            }
        }
        self.pull(planned, mirrors, &label, &archive)
            .map_err(|error| FetchError::Image {
                image: label.clone(),
                error: Box::new(error),
            })
    }

    fn pull(
        &mut self,
        planned: &Planned,
        mirrors: &std::collections::BTreeMap<String, String>,
        label: &str,
        archive: &Path,
    ) -> Result<(), FetchError> {
        let mut session = Session::new(&planned.image, mirrors)?;
        self.say(format!(
            "{label}: resolving {}",
            session.manifest_url(&planned.image.tag)
        ));
        let top = session.manifest(&self.client, &planned.image.tag)?;
        let digest = oci_digest(&top.bytes);
        match &planned.pin {
            Some(pin) if *pin != digest => {
                return Err(FetchError::PinnedDigest {
                    url: top.url,
                    expected: pin.clone(),
                    actual: digest,
                });
            }
            Some(_) => self.say(format!("{label}: {digest} matches the pinned digest")),
            None => self.say(format!(
                "warning: {label} has no pinned digest; it is verified by its blob digests only (trust on first use); {digest} is recorded in versions.json"
            )),
        }

        // The platform manifest: the index entry for linux/{arch}, or the tag itself.
        let single = !is_index(&top.media_type);
        let (media_type, manifest_bytes, manifest_digest, manifest_url) = if !single {
            let index: Index =
                serde_json::from_slice(&top.bytes).map_err(|e| FetchError::Registry {
                    url: top.url.clone(),
                    message: format!("not an image index: {e}"),
                })?;
            let entry =
                select_platform(&index, &self.arch).ok_or_else(|| FetchError::Registry {
                    url: top.url.clone(),
                    message: format!(
                        "no linux/{} image in the index (it has: {})",
                        self.arch,
                        platforms(&index)
                    ),
                })?;
            if oci_digest_hex(&entry.digest).is_none() {
                return Err(FetchError::Registry {
                    url: top.url.clone(),
                    message: format!("unsupported digest `{}`", entry.digest),
                });
            }
            let m = session.manifest(&self.client, &entry.digest)?;
            let actual = oci_digest(&m.bytes);
            if actual != entry.digest {
                return Err(FetchError::ChecksumMismatch {
                    url: m.url,
                    expected: entry.digest.clone(),
                    actual,
                });
            }
            let media_type = entry.media_type.clone().unwrap_or(m.media_type);
            (media_type, m.bytes, actual, m.url)
        } else {
            (
                top.media_type.clone(),
                top.bytes.clone(),
                digest.clone(),
                top.url.clone(),
            )
        };
        if !is_manifest(&media_type) {
            return Err(FetchError::Registry {
                url: manifest_url,
                message: format!("unsupported manifest media type `{media_type}`"),
            });
        }
        let parsed: ImageManifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| FetchError::Registry {
                url: manifest_url.clone(),
                message: format!("not an image manifest: {e}"),
            })?;

        let mut how = Obtained::default();
        let mut blobs: Vec<Vec<u8>> = Vec::new();
        for d in std::iter::once(&parsed.config).chain(&parsed.layers) {
            blobs.push(self.blob(&mut session, label, d, &mut how)?);
        }
        if single {
            let cfg: ConfigPlatform =
                serde_json::from_slice(&blobs[0]).map_err(|e| FetchError::Registry {
                    url: session.blob_url(&parsed.config.digest),
                    message: format!("not an image configuration: {e}"),
                })?;
            if cfg.os != "linux" || cfg.architecture != self.arch {
                return Err(FetchError::Registry {
                    url: manifest_url,
                    message: format!(
                        "the tag names a single {}/{} image, not linux/{}",
                        cfg.os, cfg.architecture, self.arch
                    ),
                });
            }
        }

        let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        let written =
            crate::oci::write_archive(archive, label, &media_type, &manifest_bytes, &refs)
                .map_err(|e| FetchError::io(archive, std::io::Error::other(e)))?;
        if written != manifest_digest {
            return Err(FetchError::Registry {
                url: manifest_url,
                message: format!(
                    "the archive names manifest {written}, expected {manifest_digest}"
                ),
            });
        }
        if let Some(parent) = archive.parent() {
            sync_dir(parent)?;
        }
        let archive_sha256 = sha256_file(archive)
            .map_err(|e| FetchError::io(archive, e))?
            .unwrap_or_default();
        let size = fs::metadata(archive)
            .map_err(|e| FetchError::io(archive, e))?
            .len();
        self.manifest.images.insert(
            label.to_string(),
            ImageEntry {
                digest: digest.clone(),
                pinned: planned.pin.is_some(),
                arch: self.arch.clone(),
                manifest_digest,
                archive: planned.archive.clone(),
                archive_sha256,
                url: top.url,
            },
        );
        manifest::write_manifest(&self.dir, &self.manifest)?;
        let outcome = if how.resumed {
            Outcome::Resumed
        } else if how.downloaded {
            Outcome::Downloaded
        } else {
            Outcome::Cached
        };
        self.say(format!(
            "{label}: saved {} ({} blobs, {})",
            planned.archive,
            blobs.len(),
            human(size)
        ));
        self.report.images.push((label.to_string(), outcome, size));
        Ok(())
    }

    /// One verified blob: from the blob cache, or downloaded (resumed) into it.
    fn blob(
        &mut self,
        session: &mut Session,
        label: &str,
        d: &Descriptor,
        how: &mut Obtained,
    ) -> Result<Vec<u8>, FetchError> {
        let url = session.blob_url(&d.digest);
        let hex = oci_digest_hex(&d.digest)
            .ok_or_else(|| FetchError::Registry {
                url: url.clone(),
                message: format!("unsupported blob digest `{}`", d.digest),
            })?
            .to_string();
        let dir = self.cache.join(BLOB_CACHE_DIR);
        fs::create_dir_all(&dir).map_err(|e| FetchError::io(&dir, e))?;
        let path = dir.join(&hex);
        let part = dir.join(format!("{hex}.part"));
        match fs::read(&path) {
            Ok(bytes) => {
                if oci_digest(&bytes) == d.digest {
                    remove_if_exists(&part)?;
                    return Ok(bytes);
                }
                // A damaged cache entry: fetch it again.
                remove_if_exists(&path)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FetchError::io(&path, e)),
        }
        let short = short(&d.digest);
        match fs::metadata(&part) {
            Ok(m) if m.len() > 0 => self.say(format!(
                "{label}: resuming blob {short} from {}",
                human(m.len())
            )),
            _ => self.say(format!(
                "{label}: downloading blob {short} ({})",
                human(d.size)
            )),
        }
        let mut dl = session.download_blob(&self.client, &url, &part)?;
        self.report.transferred += dl.transferred;
        if dl.sha256 != hex && dl.resumed {
            // The earlier bytes may have been stale: once more from the start.
            remove_if_exists(&part)?;
            self.say(format!(
                "{label}: the resumed blob {short} does not match its digest; downloading it again from the start"
            ));
            dl = session.download_blob(&self.client, &url, &part)?;
            self.report.transferred += dl.transferred;
        }
        if dl.sha256 != hex {
            remove_if_exists(&part)?;
            return Err(FetchError::ChecksumMismatch {
                url,
                expected: d.digest.clone(),
                actual: format!("sha256:{}", dl.sha256),
            });
        }
        fs::rename(&part, &path).map_err(|e| FetchError::io(&path, e))?;
        sync_dir(&dir)?;
        if dl.resumed {
            how.resumed = true;
        } else {
            how.downloaded = true;
        }
        fs::read(&path).map_err(|e| FetchError::io(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_well_formed_and_cover_every_profile() {
        for p in IMAGE_PINS {
            assert_eq!(
                ImageRef::parse(p.image).unwrap().full(),
                p.image,
                "{}",
                p.image
            );
            if let Some(d) = p.digest {
                assert!(oci_digest_hex(d).is_some(), "{}: {d}", p.image);
            }
            assert!(!p.source.is_empty());
        }
        for profile in crate::versions::PROFILES {
            let v = format!("v{}.0", profile.minor);
            let list = cluster_images(&v, Some(&default_chat_image())).unwrap();
            assert_eq!(list.len(), 5);
            for spec in &list {
                let full = ImageRef::parse(&spec.reference).unwrap().full();
                assert!(
                    IMAGE_PINS.iter().any(|p| p.image == full),
                    "{full} has no row in IMAGE_PINS"
                );
            }
        }
        assert_eq!(
            pinned_digest("registry.k8s.io/pause:3.10.1"),
            Some("sha256:278fb9dbcca9518083ad1e11276933a2e96f23de604a3a08cc3c80002767d24c")
        );
        assert_eq!(pinned_digest("node:24-bookworm-slim"), None);
        assert_eq!(pinned_digest("example.org/unknown:1"), None);
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
