//! [`PkiError`], and the messages that say how to repair the PKI directory.

use crate::fsutil::ReadError;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file of the PKI that is there but cannot be read: never replaced (see
    /// [`ReadError`]).
    #[error("{}", read_message(path, reason))]
    Read { path: PathBuf, reason: ReadError },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// Another run holds the directory's lock.
    #[error("PKI directory {} is in use by {holder}: run this again when it has finished", dir.display())]
    Busy { dir: PathBuf, holder: String },
    /// The directory (or a subdirectory) is writable by others.
    #[error("{} is writable by others (mode {mode:04o}): anyone on this machine could replace a CA or a key in it; `chmod o-w {}`", path.display(), path.display())]
    Insecure { path: PathBuf, mode: u32 },
    #[error("{0}")]
    Refused(String),
    /// Files a plan needs are absent, for a command that only reads the PKI.
    #[error("{}", incomplete_message(dir, missing))]
    Incomplete { dir: PathBuf, missing: Vec<String> },
    /// The PKI directory, one of its parents or one of its subdirectories exists but is not
    /// a directory.
    #[error("{}", not_a_directory_message(dir, path))]
    NotADirectory { dir: PathBuf, path: PathBuf },
    #[error("certificate generation failed")]
    Generate(#[from] rcgen::Error),
    /// The system's random source failed: serials and the encryption key need it. Shown
    /// in the message, not as a source: `getrandom::Error` is no `std::error::Error` in
    /// this build (its `std` feature is off).
    #[error("no randomness: {0}")]
    Randomness(getrandom::Error),
}

/// The first of `dir` and its parents that exists, if it is not a directory (symbolic links
/// followed): it stands where a directory is needed.
pub(super) fn blocking_file(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .find(|a| a.exists())
        .filter(|a| !a.is_dir())
        .map(Path::to_path_buf)
}

fn read_message(path: &Path, why: &ReadError) -> String {
    match why {
        ReadError::NotFound => format!("{}: {why}", path.display()),
        _ => format!(
            "{}: {why}; a file that cannot be read is never replaced: restore it, or move it away",
            path.display()
        ),
    }
}

/// The directory is looked at again when the message is shown: a file in its place explains
/// the missing files better than their list.
fn incomplete_message(dir: &Path, missing: &[String]) -> String {
    const BY: &str = "with `k8s-boot certs` or `k8s-boot install`";
    if let Some(file) = blocking_file(dir) {
        return not_a_directory_message(dir, &file);
    }
    if !dir.is_dir() {
        return format!(
            "PKI directory {} does not exist: create it {BY}",
            dir.display()
        );
    }
    let mut list = missing
        .iter()
        .take(5)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if missing.len() > 5 {
        list.push_str(", ...");
    }
    format!(
        "PKI directory {} is incomplete, {} file(s) missing ({list}): create them {BY}",
        dir.display(),
        missing.len()
    )
}

fn not_a_directory_message(dir: &Path, file: &Path) -> String {
    if file == dir {
        format!(
            "PKI directory {} exists but is not a directory: give --pki-dir a directory (default: pki/ next to the inventory)",
            dir.display()
        )
    } else if file.starts_with(dir) {
        format!(
            "{} (in PKI directory {}) exists but is not a directory: move it away",
            file.display(),
            dir.display()
        )
    } else {
        format!(
            "PKI directory {}: {} exists but is not a directory: give --pki-dir a path under a directory",
            dir.display(),
            file.display()
        )
    }
}

impl PkiError {
    /// What is on disk in the PKI directory is the input's; I/O, key generation and
    /// randomness are not.
    pub fn fault(&self) -> crate::fault::Fault {
        use crate::fault::Fault;
        match self {
            PkiError::Incomplete { .. }
            | PkiError::Read { .. }
            | PkiError::Insecure { .. }
            | PkiError::Invalid { .. }
            | PkiError::Refused(_)
            | PkiError::NotADirectory { .. } => Fault::Input,
            PkiError::Io { .. }
            | PkiError::Busy { .. }
            | PkiError::Generate(_)
            | PkiError::Randomness(_) => Fault::Runtime,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.fault().exit_code()
    }
}
