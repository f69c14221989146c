//! File system steps of a fetch run: the cache lock, exact modes, directory fsync, removal
//! of what may not exist.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use super::error::FetchError;

/// Holds an exclusive lock on `{cache}/.lock` for the duration of a run.
pub(crate) fn lock(cache: &Path) -> Result<File, FetchError> {
    let path = cache.join(".lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| FetchError::io(&path, e))?;
    // SAFETY: flock on a descriptor we own; no memory is shared with the call.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            return Err(FetchError::Locked(
                cache.parent().unwrap_or(cache).to_path_buf(),
            ));
        }
        return Err(FetchError::io(&path, err));
    }
    Ok(f)
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
