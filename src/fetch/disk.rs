//! File system steps of a fetch run: the directory's lock, leftovers of killed runs, exact modes, directory fsync, removal
//! of what may not exist.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::error::FetchError;
use crate::fsutil::{self, Lock, LockMode};

/// The exclusive lock of the binaries directory `dir`, `{dir}/.cache/.lock` (the cache
/// directory is created when missing), held by `fetch` and by `lab build` while they write
/// into `dir`.
pub fn lock_binaries_dir(dir: &Path) -> Result<Lock, FetchError> {
    let cache = dir.join(super::CACHE_DIR);
    fs::create_dir_all(&cache).map_err(|e| FetchError::io(&cache, e))?;
    let path = cache.join(".lock");
    fsutil::lock(&path, LockMode::Exclusive).map_err(|e| match e {
        fsutil::LockError::Busy { holder, .. } => FetchError::Locked {
            dir: dir.to_path_buf(),
            holder,
        },
        e => FetchError::io(&path, io::Error::other(e.to_string())),
    })
}

/// Removes the temporary files killed runs left in `dir` (see
/// [`fsutil::remove_leftover_temp_files`]); only under the lock.
pub fn remove_leftovers(dir: &Path) -> Result<Vec<std::path::PathBuf>, FetchError> {
    fsutil::remove_leftover_temp_files(dir).map_err(|e| FetchError::io(dir, e))
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), FetchError> {
    let meta = fs::metadata(path).map_err(|e| FetchError::io(path, e))?;
    if meta.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| FetchError::io(path, e))?;
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), FetchError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FetchError::io(dir, e))
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<(), FetchError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FetchError::io(path, e)),
    }
}
