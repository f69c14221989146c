//! Crash-safe file writes: a reader sees either the old file or the whole new one (or the
//! old directory tree or the whole new one).

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

/// The process's file mode creation mask, read from `/proc/self/status` (changing the mask
/// to read it would race with other threads creating files). `None` where that is not
/// available: callers then set modes explicitly.
pub fn current_umask() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let value = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(value.trim(), 8).ok()
}

/// Creates `path` with exactly `mode` (it must not exist) and writes `bytes` to it, without
/// fsync: for files inside a directory that is swapped in whole. `umask` is
/// [`current_umask`]; the extra `fchmod` is only needed where the umask narrows `mode`.
pub fn create_with_mode(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    umask: Option<u32>,
) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    // Bits above 0o777 are not governed by the umask alone (setgid is dropped for
    // non-members), so they are always set explicitly.
    if umask.is_none_or(|m| mode & m != 0 || mode & !0o777 != 0) {
        f.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Puts the directory `new` at `dest`. An existing `dest` is exchanged with `new` in one
/// step (`renameat2(RENAME_EXCHANGE)`), so `dest` is never absent; where the file system
/// cannot exchange, `dest` is renamed to `aside` first (and put back if the second rename
/// fails). Returns where the previous tree now is (`new` or `aside`), if there was one; the
/// caller removes it.
pub fn swap_in_dir(new: &Path, dest: &Path, aside: &Path) -> io::Result<Option<PathBuf>> {
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return fs::rename(new, dest).map(|_| None)
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    match exchange(new, dest) {
        Ok(()) => return Ok(Some(new.to_path_buf())),
        // Not supported by this kernel or file system: fall back to two renames.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {}
        Err(e) => return Err(e),
    }
    fs::rename(dest, aside)?;
    if let Err(e) = fs::rename(new, dest) {
        let _ = fs::rename(aside, dest);
        return Err(e);
    }
    Ok(Some(aside.to_path_buf()))
}

fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Threads of [`remove_tree`]: they mostly wait for the disk, not for a CPU.
const REMOVERS: usize = 8;

/// Removes the directory tree `dir` (not following symbolic links), like
/// `fs::remove_dir_all`, but the subtrees two levels down are removed by several threads at
/// once. Where the file system frees each block synchronously (ext4 with online discard and
/// no journal waits for every discard), removing a tree is a row of disk waits, and these
/// then overlap.
pub fn remove_tree(dir: &Path) -> io::Result<()> {
    let mut subtrees = Vec::new();
    for top in fs::read_dir(dir)? {
        let top = top?;
        if top.file_type()?.is_dir() {
            for entry in fs::read_dir(top.path())? {
                let entry = entry?;
                subtrees.push((entry.path(), entry.file_type()?.is_dir()));
            }
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_error = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..REMOVERS.min(subtrees.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((path, is_dir)) = subtrees.get(i) else {
                    break;
                };
                let result = if *is_dir {
                    fs::remove_dir_all(path)
                } else {
                    fs::remove_file(path)
                };
                if let Err(e) = result {
                    first_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e);
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    // The emptied top-level directories and the top-level files.
    fs::remove_dir_all(dir)
}

/// `path` made absolute (for comparisons, and for paths handed to programs that run
/// elsewhere): the longest prefix that exists is canonicalized
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
    fn swap_in_dir_exchanges_with_an_existing_tree_and_renames_into_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let (new, dest, aside) = (
            dir.path().join("new"),
            dir.path().join("dest"),
            dir.path().join("aside"),
        );
        fs::create_dir(&new).unwrap();
        fs::write(new.join("f"), "1").unwrap();
        assert_eq!(swap_in_dir(&new, &dest, &aside).unwrap(), None);
        assert_eq!(fs::read(dest.join("f")).unwrap(), b"1");
        assert!(!new.exists());

        fs::create_dir(&new).unwrap();
        fs::write(new.join("f"), "2").unwrap();
        let previous = swap_in_dir(&new, &dest, &aside).unwrap().unwrap();
        assert_eq!(fs::read(dest.join("f")).unwrap(), b"2");
        assert_eq!(fs::read(previous.join("f")).unwrap(), b"1");
    }

    #[test]
    fn remove_tree_removes_everything_and_follows_no_link() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "k").unwrap();
        let tree = dir.path().join("tree");
        for i in 0..20 {
            let d = tree.join(format!("hosts/h{i}/etc/a"));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("f"), "x").unwrap();
        }
        fs::write(tree.join("top"), "t").unwrap();
        fs::write(tree.join("hosts/file"), "f").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("hosts/link")).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("toplink")).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert_eq!(fs::read(outside.join("keep")).unwrap(), b"k");
        assert!(remove_tree(&tree).is_err(), "a missing tree is an error");
    }

    #[test]
    fn current_umask_is_what_narrows_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o777)
            .open(&p)
            .unwrap();
        let umask = current_umask().unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o777 & !umask);
        create_with_mode(&dir.path().join("g"), b"g", 0o750, Some(umask)).unwrap();
        let g = fs::metadata(dir.path().join("g")).unwrap();
        assert_eq!(g.permissions().mode() & 0o7777, 0o750);
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
