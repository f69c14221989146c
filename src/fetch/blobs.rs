//! The blob cache of image pulls: `{dir}/.cache/blobs/sha256/<hex>`, each blob verified
//! against its digest while it streams. Partial ones are kept as `<hex>.part` and resumed by
//! `Range`, so an interrupted fetch continues where it stopped.

use std::fs;
use std::path::Path;

use super::disk::{remove_if_exists, sync_dir};
use super::error::FetchError;
use super::images::BLOB_CACHE_DIR;
use super::registry::{Descriptor, Session};
use super::report::{human, Outcome};
use super::run::Run;
use crate::digest::{oci_digest, oci_digest_hex};

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// How the blobs of one image were obtained in this run.
#[derive(Default)]
pub(crate) struct Obtained {
    downloaded: bool,
    resumed: bool,
}

impl Obtained {
    pub(crate) fn outcome(&self) -> Outcome {
        if self.resumed {
            Outcome::Resumed
        } else if self.downloaded {
            Outcome::Downloaded
        } else {
            Outcome::Cached
        }
    }
}

impl Run<'_> {
    /// One verified blob: from the blob cache, or downloaded (resumed) into it.
    pub(crate) fn blob(
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
        let resumed = self.download_blob(session, label, d, &url, &part)?;
        fs::rename(&part, &path).map_err(|e| FetchError::io(&path, e))?;
        sync_dir(&dir)?;
        if resumed {
            how.resumed = true;
        } else {
            how.downloaded = true;
        }
        fs::read(&path).map_err(|e| FetchError::io(&path, e))
    }

    /// Downloads a blob into `part` until it matches its digest (a resumed download that does
    /// not is done once more from the start); returns whether it was resumed.
    fn download_blob(
        &mut self,
        session: &mut Session,
        label: &str,
        d: &Descriptor,
        url: &str,
        part: &Path,
    ) -> Result<bool, FetchError> {
        let hex = oci_digest_hex(&d.digest).unwrap_or_default();
        let short = short(&d.digest);
        match fs::metadata(part) {
            Ok(m) if m.len() > 0 => self.say(format!(
                "{label}: resuming blob {short} from {}",
                human(m.len())
            )),
            _ => self.say(format!(
                "{label}: downloading blob {short} ({})",
                human(d.size)
            )),
        }
        let mut dl = session.download_blob(&self.client, url, part)?;
        self.report.transferred += dl.transferred;
        if dl.sha256 != hex && dl.resumed {
            // The earlier bytes may have been stale: once more from the start.
            remove_if_exists(part)?;
            self.say(format!(
                "{label}: the resumed blob {short} does not match its digest; downloading it again from the start"
            ));
            dl = session.download_blob(&self.client, url, part)?;
            self.report.transferred += dl.transferred;
        }
        if dl.sha256 != hex {
            remove_if_exists(part)?;
            return Err(FetchError::ChecksumMismatch {
                url: url.to_string(),
                expected: d.digest.clone(),
                actual: format!("sha256:{}", dl.sha256),
            });
        }
        Ok(dl.resumed)
    }
}
