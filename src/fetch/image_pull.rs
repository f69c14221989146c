//! Pulling one image into its archive, verified all the way.
//!
//! The digest a tag resolves to is compared with its pin (see `pins`) before anything else is
//! downloaded; every blob (config and layers) is hashed while it streams and must match the
//! digest its manifest names, and the platform manifest must match the digest its index names.
//! An image without a pin is verified by its blob digests only (trust on first use) and its
//! digest is recorded in `versions.json`.
//!
//! Blobs come from the blob cache (see `blobs`). The archive is written by
//! [`crate::oci::write_archive`], atomically, only once every blob was verified.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::blobs::Obtained;
use super::disk::{remove_if_exists, sync_dir};
use super::error::FetchError;
use super::images::Planned;
use super::manifest::ImageEntry;
use super::registry::{
    is_index, is_manifest, platforms, select_platform, ConfigPlatform, ImageManifest, Index,
    Session,
};
use super::report::{human, Outcome};
use super::run::Run;
use super::shown_url::RedactedUrl;
use crate::digest::{oci_digest, oci_digest_hex, sha256_file};

/// What the tag resolved to.
struct Resolved {
    /// Digest of what the tag names (an index, or a single-platform manifest).
    digest: String,
    /// Where the tag was resolved.
    url: String,
}

/// The image manifest for the run's platform, verified against its index entry.
struct PlatformManifest {
    media_type: String,
    bytes: Vec<u8>,
    digest: String,
    url: String,
    /// The tag named this manifest itself (no index): its platform is only known from the
    /// image configuration.
    single: bool,
}

impl Run<'_> {
    /// Fetches one image into its archive, unless the archive in place is the one recorded
    /// (and, for a pinned image, the pinned one).
    pub(crate) fn image(
        &mut self,
        planned: &Planned,
        mirrors: &BTreeMap<String, String>,
    ) -> Result<(), FetchError> {
        let label = planned.image.full();
        let archive = self.dir.join(&planned.archive);
        if self.image_cached(planned, &label, &archive)? {
            return Ok(());
        }
        self.pull(planned, mirrors, &label, &archive)
            .map_err(|error| FetchError::Image {
                image: label.clone(),
                error: Box::new(error),
            })
    }

    /// Whether the recorded archive is in place and still the wanted image. A recorded
    /// archive that no longer matches the pin is removed.
    fn image_cached(
        &mut self,
        planned: &Planned,
        label: &str,
        archive: &Path,
    ) -> Result<bool, FetchError> {
        let Some(e) = self.manifest.images.get(label).cloned() else {
            return Ok(false);
        };
        let pin_ok = planned.pin.as_deref().is_none_or(|p| p == e.digest);
        if pin_ok && e.arch == self.arch && e.archive == planned.archive {
            let have = sha256_file(archive).map_err(|err| FetchError::io(archive, err))?;
            if have.as_deref() == Some(e.archive_sha256.as_str()) {
                self.say(format!("{label}: cached ({})", e.digest));
                let size = fs::metadata(archive)
                    .map_err(|err| FetchError::io(archive, err))?
                    .len();
                self.report
                    .images
                    .push((label.to_string(), Outcome::Cached, size));
                return Ok(true);
            }
        }
        if !pin_ok {
            // What is there is no longer the pinned image: it must not stay installed.
            remove_if_exists(&self.dir.join(&e.archive))?;
            self.manifest.images.remove(label);
            self.save_manifest()?;
            self.say(format!(
                "{label}: removed {} ({} is not the pinned digest)",
                e.archive, e.digest
            ));
        }
        Ok(false)
    }

    fn pull(
        &mut self,
        planned: &Planned,
        mirrors: &BTreeMap<String, String>,
        label: &str,
        archive: &Path,
    ) -> Result<(), FetchError> {
        let mut session = Session::new(&planned.image, mirrors)?;
        self.say(format!(
            "{label}: resolving {}",
            RedactedUrl::new(&session.manifest_url(&planned.image.tag))
        ));
        let top = session.manifest(&self.client, &planned.image.tag)?;
        let resolved = Resolved {
            digest: oci_digest(&top.bytes),
            url: top.url.clone(),
        };
        self.check_pin(planned, label, &resolved)?;
        let platform = if is_index(&top.media_type) {
            self.platform_from_index(&mut session, &top.url, &top.bytes)?
        } else {
            PlatformManifest {
                media_type: top.media_type,
                bytes: top.bytes,
                digest: resolved.digest.clone(),
                url: top.url,
                single: true,
            }
        };
        let parsed = parse_image_manifest(&platform)?;

        let mut how = Obtained::default();
        let mut blobs: Vec<Vec<u8>> = Vec::new();
        for d in std::iter::once(&parsed.config).chain(&parsed.layers) {
            blobs.push(self.blob(&mut session, label, d, &mut how)?);
        }
        if platform.single {
            let config_url = session.blob_url(&parsed.config.digest);
            self.check_config_platform(&platform.url, &config_url, &blobs[0])?;
        }
        let size = self.save_archive(planned, label, archive, &platform, &blobs, resolved)?;
        self.say(format!(
            "{label}: saved {} ({} blobs, {})",
            planned.archive,
            blobs.len(),
            human(size)
        ));
        self.report
            .images
            .push((label.to_string(), how.outcome(), size));
        Ok(())
    }

    /// Refuses a tag that resolved to another digest than its pin; warns about an image
    /// without one.
    fn check_pin(
        &mut self,
        planned: &Planned,
        label: &str,
        resolved: &Resolved,
    ) -> Result<(), FetchError> {
        let digest = &resolved.digest;
        match &planned.pin {
            Some(pin) if pin != digest => Err(FetchError::PinnedDigest {
                url: resolved.url.clone(),
                expected: pin.clone(),
                actual: digest.clone(),
            }),
            Some(_) => {
                self.say(format!("{label}: {digest} matches the pinned digest"));
                Ok(())
            }
            None => {
                self.say(format!(
                    "warning: {label} has no pinned digest; it is verified by its blob digests only (trust on first use); {digest} is recorded in versions.json"
                ));
                Ok(())
            }
        }
    }

    /// The index entry for linux/{arch}, fetched and checked against the entry's digest.
    fn platform_from_index(
        &mut self,
        session: &mut Session,
        index_url: &str,
        index_bytes: &[u8],
    ) -> Result<PlatformManifest, FetchError> {
        let registry_error = |message: String| FetchError::Registry {
            url: index_url.to_string(),
            message,
        };
        let index: Index = serde_json::from_slice(index_bytes)
            .map_err(|e| registry_error(format!("not an image index: {e}")))?;
        let entry = select_platform(&index, &self.arch).ok_or_else(|| {
            registry_error(format!(
                "no linux/{} image in the index (it has: {})",
                self.arch,
                platforms(&index)
            ))
        })?;
        if oci_digest_hex(&entry.digest).is_none() {
            return Err(registry_error(format!(
                "unsupported digest `{}`",
                entry.digest
            )));
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
        Ok(PlatformManifest {
            media_type: entry.media_type.clone().unwrap_or(m.media_type),
            bytes: m.bytes,
            digest: actual,
            url: m.url,
            single: false,
        })
    }

    /// A single-platform image must be linux/{arch} by its configuration.
    fn check_config_platform(
        &self,
        manifest_url: &str,
        config_url: &str,
        config: &[u8],
    ) -> Result<(), FetchError> {
        let cfg: ConfigPlatform =
            serde_json::from_slice(config).map_err(|e| FetchError::Registry {
                url: config_url.to_string(),
                message: format!("not an image configuration: {e}"),
            })?;
        if cfg.os != "linux" || cfg.architecture != self.arch {
            return Err(FetchError::Registry {
                url: manifest_url.to_string(),
                message: format!(
                    "the tag names a single {}/{} image, not linux/{}",
                    cfg.os, cfg.architecture, self.arch
                ),
            });
        }
        Ok(())
    }

    /// Writes the archive of the verified blobs and records it; returns the archive's size.
    fn save_archive(
        &mut self,
        planned: &Planned,
        label: &str,
        archive: &Path,
        platform: &PlatformManifest,
        blobs: &[Vec<u8>],
        resolved: Resolved,
    ) -> Result<u64, FetchError> {
        let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        let written =
            crate::oci::write_archive(archive, label, &platform.media_type, &platform.bytes, &refs)
                .map_err(|source| FetchError::ImageArchive {
                    path: archive.to_path_buf(),
                    source,
                })?;
        if written != platform.digest {
            return Err(FetchError::Registry {
                url: platform.url.clone(),
                message: format!(
                    "the archive names manifest {written}, expected {}",
                    platform.digest
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
                digest: resolved.digest,
                pinned: planned.pin.is_some(),
                arch: self.arch.clone(),
                manifest_digest: platform.digest.clone(),
                archive: planned.archive.clone(),
                archive_sha256,
                url: RedactedUrl::new(&resolved.url).to_string(),
            },
        );
        self.save_manifest()?;
        Ok(size)
    }
}

/// The platform manifest parsed, after its media type was checked.
fn parse_image_manifest(platform: &PlatformManifest) -> Result<ImageManifest, FetchError> {
    if !is_manifest(&platform.media_type) {
        return Err(FetchError::Registry {
            url: platform.url.clone(),
            message: format!("unsupported manifest media type `{}`", platform.media_type),
        });
    }
    serde_json::from_slice(&platform.bytes).map_err(|e| FetchError::Registry {
        url: platform.url.clone(),
        message: format!("not an image manifest: {e}"),
    })
}
