//! The JSON manifest written beside each snapshot: what the snapshot holds and which cluster
//! (CAs) and encryption key it belongs to. Restore reads it before anything changes.

use crate::pki::{profiles, Pki, PkiError, ENCRYPTION_KEY};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The manifest's format version.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub cluster: String,
    /// UTC, RFC 3339.
    pub created: String,
    /// The snapshot's file name (beside the manifest).
    pub snapshot: String,
    pub sha256: String,
    pub size: u64,
    pub kubernetes_version: String,
    pub etcd_version: String,
    /// As `etcdutl snapshot status` reads them from the snapshot.
    pub revision: i64,
    pub hash: u64,
    pub total_keys: u64,
    /// The member the snapshot was taken from.
    pub taken_from: String,
    pub members: Vec<Member>,
    /// `sha256:<hex>` of each CA certificate (DER), by CA file stem (`ca`, `etcd/ca`,
    /// `front-proxy-ca`): which cluster the snapshot belongs to.
    pub ca_fingerprints: BTreeMap<String, String>,
    pub encryption_key: KeyRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub peer_urls: Vec<String>,
}

/// Where the secrets-at-rest key the snapshot needs is, never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRef {
    /// `sha256:<hex>` of the key file: tells the key apart without revealing it.
    pub fingerprint: String,
    /// The PKI's key file when the backup was taken.
    pub file: PathBuf,
    /// A copy kept in the PKI directory under its fingerprint, never overwritten: the key
    /// stays recoverable even if `encryption.key` is replaced later.
    pub kept: PathBuf,
}

/// `sha256:<hex>` of `bytes`.
pub fn fingerprint(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::digest::sha256_hex(bytes))
}

/// The fingerprint of every CA certificate of `pki`.
pub fn ca_fingerprints(pki: &Pki) -> Result<BTreeMap<String, String>, PkiError> {
    profiles::CAS
        .iter()
        .map(|ca| {
            let pem = pki.read_string(&format!("{}.crt", ca.file))?;
            let der = crate::pki::pem_to_der(&pem).unwrap_or_else(|| pem.into_bytes());
            Ok((ca.file.to_string(), fingerprint(&der)))
        })
        .collect()
}

/// Directory of the kept encryption keys, inside the PKI directory.
pub const KEPT_KEYS_DIR: &str = "backup-keys";

/// The kept copy of the key with `fingerprint` in `pki_dir`.
pub fn kept_key_path(pki_dir: &Path, fingerprint: &str) -> PathBuf {
    let hex = fingerprint.trim_start_matches("sha256:");
    pki_dir
        .join(KEPT_KEYS_DIR)
        .join(format!("encryption-{}.key", &hex[..16.min(hex.len())]))
}

/// The PKI's encryption key as a [`KeyRef`], its copy kept (created once, 0600, never
/// through a link).
pub fn keep_encryption_key(pki: &Pki) -> Result<KeyRef, KeepError> {
    let bytes = pki.read(ENCRYPTION_KEY)?;
    let fingerprint = fingerprint(&bytes);
    let kept = kept_key_path(&pki.dir, &fingerprint);
    if std::fs::symlink_metadata(&kept).is_err() {
        let io = |source| KeepError::Io {
            path: kept.clone(),
            source,
        };
        let dir = kept.parent().expect("a directory");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        crate::fsutil::write_atomic(&kept, &bytes, crate::pki::KEY_MODE).map_err(io)?;
    }
    Ok(KeyRef {
        fingerprint,
        file: pki.path(ENCRYPTION_KEY),
        kept,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("keeping a copy of the encryption key at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
