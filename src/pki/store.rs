//! The PKI directory: file names and modes, its lock, reading (regular files only, capped),
//! crash-safe writes of single files and of key pairs, the in-memory store of a dry run,
//! and the checks that the directory can be one.

use super::error::{blocking_file, PkiError};
use super::profiles::{leaf_certs, CAS};
use crate::fsutil::{self, read_regular, stage_with, Lock, LockMode, ReadError};
use crate::inventory::Cluster;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
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
/// The most read of any file of the PKI (PEM files are a few KiB): a file linked to
/// `/dev/zero` or grown without bound cannot exhaust memory.
pub const PKI_FILE_CAP: u64 = 1 << 20;
/// The lock file in the PKI directory: `certs`, `render`, `install` and `deploy` hold it
/// exclusively, `certs check`, `status` and dry runs share it.
pub const LOCK_FILE: &str = ".k8s-boot.lock";
/// The admin kubeconfig `install` writes into the PKI directory: its presence says that this
/// PKI is an installed cluster's.
pub const ADMIN_KUBECONFIG: &str = "admin.kubeconfig";
/// The `system:masters` kubeconfig: only in the PKI directory (docs/SECURITY.md).
pub const SUPER_ADMIN_KUBECONFIG: &str = "super-admin.kubeconfig";
/// The subdirectories of the PKI directory (the etcd CA and its leaves).
pub(super) const SUBDIRS: [&str; 1] = ["etcd"];

/// A PKI directory.
pub struct Pki {
    pub dir: PathBuf,
    /// A dry run ([`Pki::dry_run`]): what `ensure` would write, by file name, kept here
    /// instead of in the directory; reads see these first.
    staged: Option<Mutex<BTreeMap<String, Vec<u8>>>>,
    /// The directory's lock, held for as long as this value lives ([`Pki::hold_lock`]).
    held: Option<(LockMode, Lock)>,
}

impl Pki {
    /// The PKI in `dir`. It holds no lock: [`Pki::ensure`] and [`Pki::check`] take one for
    /// their own duration; [`Pki::hold_lock`] keeps one for later reads too.
    pub fn new(dir: impl Into<PathBuf>) -> Pki {
        Pki {
            dir: dir.into(),
            staged: None,
            held: None,
        }
    }

    /// This PKI, holding the directory's lock until it is dropped: exclusively for a
    /// command that writes it (the directory is created first, 0700, when it is missing),
    /// shared for one that only reads it (a dry run included; nothing is created, and a
    /// directory without a lock file is read unlocked). A plan built from a PKI that holds
    /// the lock reads the files `ensure` left, not those of a run that started since.
    pub fn hold_lock(mut self, mode: LockMode) -> Result<Pki, PkiError> {
        let lock = self.take_lock(mode)?;
        self.held = lock.map(|l| (mode, l));
        Ok(self)
    }

    /// The lock `mode` for a caller that needs it, unless this PKI holds one that covers it
    /// (`Ok(None)` then, and for a reader of a directory without a lock file).
    pub(super) fn take_lock(&self, mode: LockMode) -> Result<Option<Lock>, PkiError> {
        match (&self.held, mode) {
            (Some((LockMode::Exclusive, _)), _) | (Some(_), LockMode::Shared) => return Ok(None),
            _ => {}
        }
        let path = self.path(LOCK_FILE);
        let taken = match mode {
            LockMode::Exclusive => {
                self.create_private_dir()?;
                fsutil::lock(&path, mode).map(Some)
            }
            LockMode::Shared => {
                self.require_directory()?;
                fsutil::lock_existing(&path, mode)
            }
        };
        taken.map_err(|e| match e {
            fsutil::LockError::Busy { holder, .. } => PkiError::Busy {
                dir: self.dir.clone(),
                holder,
            },
            fsutil::LockError::NotRegular { path, kind } => PkiError::Invalid {
                path,
                message: format!("is {kind}, not a lock file: remove it"),
            },
            fsutil::LockError::Io { path, source } => PkiError::Io { path, source },
        })
    }

    /// The PKI in `dir`, read as it is, where [`Pki::ensure`] writes nothing: the files it
    /// would create or re-issue are kept in memory (see [`Pki::staged`]) and read back from
    /// there, so a plan built from this PKI is the one a real run would build. The
    /// directory need not exist and is not created.
    pub fn dry_run(dir: impl Into<PathBuf>) -> Pki {
        Pki {
            dir: dir.into(),
            staged: Some(Mutex::new(BTreeMap::new())),
            held: None,
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

    pub(super) fn is_dry_run(&self) -> bool {
        self.staged.is_some()
    }

    pub(super) fn staged_bytes(&self, name: &str) -> Option<Vec<u8>> {
        self.staged
            .as_ref()
            .and_then(|m| m.lock().expect("staged lock").get(name).cloned())
    }

    /// Whether anything stands at `name`: a dangling link or a FIFO counts (reading it
    /// then says what it is), so that it is never taken for a missing file and replaced.
    pub(super) fn exists(&self, name: &str) -> bool {
        self.staged_bytes(name).is_some() || fs::symlink_metadata(self.path(name)).is_ok()
    }

    /// Every file a plan for `cluster` reads: CAs, leaves, service-account pair, encryption
    /// key.
    fn files(cluster: &Cluster) -> Vec<String> {
        let stems = CAS
            .iter()
            .map(|ca| ca.file.to_string())
            .chain(leaf_certs(cluster).into_iter().map(|l| l.file));
        stems
            .flat_map(|stem| [format!("{stem}.crt"), format!("{stem}.key")])
            .chain([SA_KEY, SA_PUB, ENCRYPTION_KEY].map(String::from))
            .collect()
    }

    /// Every file a plan for `cluster` reads that does not exist; for commands that use the
    /// PKI as it is.
    pub fn missing(&self, cluster: &Cluster) -> Vec<String> {
        Pki::files(cluster)
            .into_iter()
            .filter(|name| !self.exists(name))
            .collect()
    }

    /// `Err` naming the first file a plan for `cluster` reads that is there but cannot be
    /// read (see [`read_regular`]): checked before anything is written, since such a file
    /// is never replaced.
    pub(super) fn require_readable(&self, cluster: &Cluster) -> Result<(), PkiError> {
        for name in Pki::files(cluster) {
            match self.read_file(&name) {
                Ok(_) | Err(ReadError::NotFound) => {}
                Err(reason) => {
                    return Err(PkiError::Read {
                        path: self.path(&name),
                        reason,
                    })
                }
            }
        }
        Ok(())
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

    /// The bytes of `name`: a regular file (no link is followed, nothing else is opened
    /// blocking) of at most [`PKI_FILE_CAP`] bytes.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, PkiError> {
        self.read_file(name).map_err(|source| PkiError::Read {
            path: self.path(name),
            reason: source,
        })
    }

    /// [`Pki::read`], with the reason it failed.
    pub(super) fn read_file(&self, name: &str) -> Result<Vec<u8>, ReadError> {
        if let Some(bytes) = self.staged_bytes(name) {
            return Ok(bytes);
        }
        read_regular(&self.path(name), PKI_FILE_CAP)
    }

    pub fn read_string(&self, name: &str) -> Result<String, PkiError> {
        let path = self.path(name);
        String::from_utf8(self.read(name)?).map_err(|_| PkiError::Invalid {
            path,
            message: "not UTF-8 text".into(),
        })
    }

    /// Writes one file, crash-safe: its old content or the whole new one.
    pub(super) fn write(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
        self.write_together(&[(name, bytes, mode)])
    }

    /// Writes files that belong together (a key and its certificate, in that order): each is
    /// staged complete and synced before the first is renamed into place, then they are
    /// renamed in order. A run killed between two renames leaves the later files staged;
    /// the next `ensure` completes them ([`Pki::recover`]), so a key and its certificate
    /// are found both old or both new.
    pub(super) fn write_together(&self, files: &[(&str, &[u8], u32)]) -> Result<(), PkiError> {
        if let Some(staged) = &self.staged {
            let mut staged = staged.lock().expect("staged lock");
            for (name, bytes, _) in files {
                staged.insert(name.to_string(), bytes.to_vec());
            }
            return Ok(());
        }
        let mut pending = Vec::new();
        for (name, bytes, mode) in files {
            let path = self.path(name);
            let staged = self.create_parent(name).and_then(|()| {
                stage_with(&path, *mode, |f| f.write_all(bytes))
                    .map_err(|source| self.write_error(&path, source))
            })?;
            pending.push((path, staged));
        }
        for (path, staged) in pending {
            staged
                .commit()
                .map_err(|source| self.write_error(&path, source))?;
        }
        Ok(())
    }

    /// The subdirectory `name` is in, created when missing (checked first: no link).
    fn create_parent(&self, name: &str) -> Result<(), PkiError> {
        let Some((sub, _)) = name.rsplit_once('/') else {
            return Ok(());
        };
        let path = self.path(sub);
        self.require_subdirectory(sub)?;
        match fs::create_dir(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                Err(self.write_error(&path, e))
            }
            _ => Ok(()),
        }
    }

    fn write_error(&self, path: &Path, source: std::io::Error) -> PkiError {
        match path.parent().and_then(blocking_file) {
            Some(file) => PkiError::NotADirectory {
                dir: self.dir.clone(),
                path: file,
            },
            None => PkiError::Io {
                path: path.to_path_buf(),
                source,
            },
        }
    }

    /// `Err` when the subdirectory `sub` exists as anything but a directory: a symbolic
    /// link there would take keys out of the PKI directory.
    fn require_subdirectory(&self, sub: &str) -> Result<(), PkiError> {
        let path = self.path(sub);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => Err(PkiError::Invalid {
                path,
                message: format!(
                    "is a symbolic link (in PKI directory {}): links inside it are not followed; put the directory itself there",
                    self.dir.display()
                ),
            }),
            Ok(m) if !m.is_dir() => Err(PkiError::NotADirectory {
                dir: self.dir.clone(),
                path,
            }),
            _ => Ok(()),
        }
    }

    /// The directory and its subdirectories may not be writable by others: anyone who can
    /// write them can replace a CA with their own. A group-writable one is only warned
    /// about ([`Pki::warnings`]): with private groups that is the owner's own group.
    fn require_private(&self) -> Result<(), PkiError> {
        for dir in self.dirs() {
            if let Ok(meta) = fs::metadata(&dir) {
                let mode = meta.permissions().mode() & 0o7777;
                if meta.is_dir() && mode & 0o002 != 0 {
                    return Err(PkiError::Insecure { path: dir, mode });
                }
            }
        }
        Ok(())
    }

    /// The directory and its subdirectories.
    fn dirs(&self) -> Vec<PathBuf> {
        std::iter::once(self.dir.clone())
            .chain(SUBDIRS.iter().map(|s| self.path(s)))
            .collect()
    }

    /// What is worth a warning about the directory, though not refused: a directory
    /// writable by its group.
    pub fn warnings(&self) -> Vec<String> {
        use std::os::unix::fs::MetadataExt;
        self.dirs()
            .into_iter()
            .filter_map(|dir| {
                let meta = fs::metadata(&dir).ok()?;
                let mode = meta.permissions().mode() & 0o7777;
                (meta.is_dir() && mode & 0o020 != 0).then(|| {
                    format!(
                        "{} is writable by group {} (mode {mode:04o}): each member can replace its keys and certificates; `chmod g-w {}` unless that is meant",
                        dir.display(),
                        meta.gid(),
                        dir.display()
                    )
                })
            })
            .collect()
    }

    /// `Err` when the directory (or a parent of it) exists as something other than a
    /// directory: nothing can be read from or written to it.
    /// Also `Err` when a subdirectory is a link or a file, or the directory is writable by
    /// others.
    pub(super) fn require_directory(&self) -> Result<(), PkiError> {
        if let Some(path) = blocking_file(&self.dir) {
            return Err(PkiError::NotADirectory {
                dir: self.dir.clone(),
                path,
            });
        }
        for sub in SUBDIRS {
            self.require_subdirectory(sub)?;
        }
        self.require_private()
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
