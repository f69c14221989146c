//! The PKI directory: file names and modes, reading, atomic writes, the in-memory store of a
//! dry run, and the checks that the directory can be one.

use super::error::{blocking_file, PkiError};
use super::profiles::{leaf_certs, CAS};
use crate::fsutil::write_atomic;
use crate::inventory::Cluster;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub const SA_KEY: &str = "sa.key";
pub const SA_PUB: &str = "sa.pub";
pub const ENCRYPTION_KEY: &str = "encryption.key";
/// Length of the decoded encryption key: `secretbox` (the provider of the encryption-config
/// template) takes exactly 32 bytes, as does `aescbc` with its strongest key.
pub const ENCRYPTION_KEY_BYTES: usize = 32;
/// The widest mode a private key file may have (`certs` writes keys with exactly this mode).
pub const KEY_MODE: u32 = 0o600;
/// The mode of certificates and public keys.
pub(super) const PUBLIC_MODE: u32 = 0o644;

/// A PKI directory.
pub struct Pki {
    pub dir: PathBuf,
    /// A dry run ([`Pki::dry_run`]): what `ensure` would write, by file name, kept here
    /// instead of in the directory; reads see these first.
    staged: Option<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl Pki {
    pub fn new(dir: impl Into<PathBuf>) -> Pki {
        Pki {
            dir: dir.into(),
            staged: None,
        }
    }

    /// The PKI in `dir`, read as it is, where [`Pki::ensure`] writes nothing: the files it
    /// would create or re-issue are kept in memory (see [`Pki::staged`]) and read back from
    /// there, so a plan built from this PKI is the one a real run would build. The
    /// directory need not exist and is not created.
    pub fn dry_run(dir: impl Into<PathBuf>) -> Pki {
        Pki {
            dir: dir.into(),
            staged: Some(Mutex::new(BTreeMap::new())),
        }
    }

    /// Names (relative to the directory) of the files a dry run kept in memory, sorted;
    /// empty for a PKI made with [`Pki::new`].
    pub fn staged(&self) -> Vec<String> {
        self.staged
            .as_ref()
            .map(|m| m.lock().expect("staged lock").keys().cloned().collect())
            .unwrap_or_default()
    }

    pub(super) fn staged_bytes(&self, name: &str) -> Option<Vec<u8>> {
        self.staged
            .as_ref()
            .and_then(|m| m.lock().expect("staged lock").get(name).cloned())
    }

    pub(super) fn exists(&self, name: &str) -> bool {
        self.staged_bytes(name).is_some() || self.path(name).exists()
    }

    /// Every file a plan for `cluster` reads (CAs, leaves, service-account pair, encryption
    /// key) that does not exist; for commands that use the PKI as it is.
    pub fn missing(&self, cluster: &Cluster) -> Vec<String> {
        let stems = CAS
            .iter()
            .map(|ca| ca.file.to_string())
            .chain(leaf_certs(cluster).into_iter().map(|l| l.file));
        stems
            .flat_map(|stem| [format!("{stem}.crt"), format!("{stem}.key")])
            .chain([SA_KEY, SA_PUB, ENCRYPTION_KEY].map(String::from))
            .filter(|name| !self.exists(name))
            .collect()
    }

    /// `Ok` when no file a plan reads is missing, else [`PkiError::Incomplete`].
    pub fn require_complete(&self, cluster: &Cluster) -> Result<(), PkiError> {
        let missing = self.missing(cluster);
        if missing.is_empty() {
            return Ok(());
        }
        Err(PkiError::Incomplete {
            dir: self.dir.clone(),
            missing,
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn read(&self, name: &str) -> Result<Vec<u8>, PkiError> {
        if let Some(bytes) = self.staged_bytes(name) {
            return Ok(bytes);
        }
        let path = self.path(name);
        fs::read(&path).map_err(|source| PkiError::Io { path, source })
    }

    pub fn read_string(&self, name: &str) -> Result<String, PkiError> {
        let path = self.path(name);
        String::from_utf8(self.read(name)?).map_err(|_| PkiError::Invalid {
            path,
            message: "not UTF-8 text".into(),
        })
    }

    pub(super) fn write(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
        if let Some(staged) = &self.staged {
            staged
                .lock()
                .expect("staged lock")
                .insert(name.to_string(), bytes.to_vec());
            return Ok(());
        }
        let path = self.path(name);
        write_atomic(&path, bytes, mode).map_err(|source| {
            match path.parent().and_then(blocking_file) {
                Some(file) => PkiError::NotADirectory {
                    dir: self.dir.clone(),
                    path: file,
                },
                None => PkiError::Io { path, source },
            }
        })
    }

    /// `Err` when the directory (or a parent of it) exists as something other than a
    /// directory: nothing can be read from or written to it.
    pub(super) fn require_directory(&self) -> Result<(), PkiError> {
        match blocking_file(&self.dir) {
            Some(path) => Err(PkiError::NotADirectory {
                dir: self.dir.clone(),
                path,
            }),
            None => Ok(()),
        }
    }

    /// The PKI directory holds private keys: create it 0700 (an existing one is left as is;
    /// a dry run creates nothing). A file in its place is refused, in a dry run too.
    pub(super) fn create_private_dir(&self) -> Result<(), PkiError> {
        use std::os::unix::fs::DirBuilderExt;
        self.require_directory()?;
        if self.staged.is_some() || self.dir.is_dir() {
            return Ok(());
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| PkiError::Io {
                path: self.dir.clone(),
                source,
            })
    }
}

/// Where the PKI lives when `--pki-dir` is not given: `pki/` next to the inventory.
pub fn default_dir(inventory: &Path) -> PathBuf {
    inventory.parent().unwrap_or(Path::new(".")).join("pki")
}
