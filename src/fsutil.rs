//! Crash-safe file writes: a reader sees either the old file or the whole new one.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` with `mode` via a temporary file in the same directory,
/// fsync and rename. Missing parent directories are created with the default mode.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_with(path, mode, |f| f.write_all(bytes))
}

/// Like [`write_atomic`], but `fill` writes the content into the temporary file, so large
/// files can be streamed instead of held in memory.
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut fs::File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode at creation; set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        fill(&mut f)?;
        f.flush()?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes only when the content or mode differs; returns whether it wrote.
pub fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> io::Result<bool> {
    if let (Ok(old), Ok(meta)) = (fs::read(path), fs::metadata(path)) {
        if old == bytes && meta.permissions().mode() & 0o7777 == mode {
            return Ok(false);
        }
    }
    write_atomic(path, bytes, mode)?;
    Ok(true)
}

/// `path` made absolute for comparisons: the longest prefix that exists is canonicalized
/// (symbolic links resolved), the rest is appended with `.` and `..` applied lexically.
pub fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    let mut base = loop {
        match existing.canonicalize() {
            Ok(p) => break p,
            Err(_) => match (existing.parent(), existing.components().next_back()) {
                (Some(parent), Some(last)) => {
                    rest.push(last.as_os_str().to_os_string());
                    existing = parent;
                }
                // The root itself.
                _ => break existing.to_path_buf(),
            },
        }
    };
    for name in rest.iter().rev() {
        match name.to_str() {
            Some(".") => {}
            Some("..") => {
                base.pop();
            }
            _ => base.push(name),
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_with_exact_mode_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/a.key");
        write_atomic(&p, b"one", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!write_if_changed(&p, b"one", 0o600).unwrap());
        assert!(write_if_changed(&p, b"two", 0o600).unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"two");
        // No temporary files left behind.
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn resolve_follows_links_in_the_existing_prefix_and_applies_dots_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        fs::create_dir(real.join("a")).unwrap();
        std::os::unix::fs::symlink(real.join("a"), real.join("link")).unwrap();
        assert_eq!(resolve(&real.join("link/new/../x")), real.join("a/x"));
        assert_eq!(resolve(&real.join("a/./b")), real.join("a/b"));
    }
}
