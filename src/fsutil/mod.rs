//! Safe file primitives for the directories k8s-boot writes (the PKI, the render output, the
//! binaries directory), where others may have planted links or files, and where a run may be
//! killed at any point:
//!
//! - crash-safe writes: a reader sees either the old file or the whole new one (or the old
//!   directory tree or the whole new one);
//! - temporary files created exclusively and without following links (`O_EXCL|O_NOFOLLOW`),
//!   under one name pattern ([`temp_target`]) so that what a killed run left can be found;
//! - [`read_regular`]: reads of regular files only, never through a link, capped;
//! - [`lock`]: one exclusive writer (or shared readers) per directory, never waiting.

mod lock;
mod read;

pub use lock::{lock, lock_existing, Lock, LockError, LockMode};
pub use read::{read_regular, FileKind, ReadError};

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
/// files can be streamed instead of held in memory. When it returns, the new file and its
/// name are on disk (the file and the directory are synced): writes made one after the
/// other reach the disk in that order.
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut fs::File) -> io::Result<()>,
) -> io::Result<()> {
    fs::create_dir_all(parent_dir(path))?;
    stage_with(path, mode, fill)?.commit()
}

/// The new content of a file, complete and synced in a temporary file next to it, not yet
/// in place: [`StagedFile::commit`] renames it over the target. Dropped uncommitted, the
/// temporary file is removed. Staging several files before committing any keeps the window
/// in which only some are new as short as a few renames.
#[derive(Debug)]
pub struct StagedFile {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl StagedFile {
    /// Renames the staged file over its target and syncs the directory, so that commits
    /// reach the disk in the order they were made.
    pub fn commit(mut self) -> io::Result<()> {
        fs::rename(&self.tmp, &self.target)?;
        self.committed = true;
        sync_dir(parent_dir(&self.target))
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Stages the new content of `path` (see [`StagedFile`]), written by `fill` into a temporary
/// file of [`create_temp`] with exactly `mode`. The directory must exist.
pub fn stage_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut fs::File) -> io::Result<()>,
) -> io::Result<StagedFile> {
    let (tmp, mut f) = create_temp(path, mode)?;
    let staged = StagedFile {
        tmp,
        target: path.to_path_buf(),
        committed: false,
    };
    fill(&mut f)?;
    f.flush()?;
    f.sync_all()?;
    Ok(staged)
}

/// The directory `path` is in (`.` for a bare name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates `path` for writing with exactly `mode`: it must not exist (`O_EXCL`: a file or
/// link planted there is an error, never written to) and a symbolic link is never followed.
pub fn create_exclusive(path: &Path, mode: u32) -> io::Result<fs::File> {
    let f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    // The umask may have narrowed the mode at creation; set it exactly.
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    Ok(f)
}

/// Marks a temporary file: `.<target name>.tmp-<pid>-<random>`.
const TEMP_MARK: &str = ".tmp-";

/// A new temporary file next to `path` (see [`create_exclusive`]), under a name no other
/// run uses, and its path.
pub fn create_temp(path: &Path, mode: u32) -> io::Result<(PathBuf, fs::File)> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_string_lossy();
    let dir = parent_dir(path);
    let mut last = None;
    // A clash means a planted or leftover file: another random name avoids it.
    for _ in 0..8 {
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
        let tmp = dir.join(format!(
            ".{name}{TEMP_MARK}{}-{}",
            std::process::id(),
            crate::digest::hex(&random)
        ));
        match create_exclusive(&tmp, mode) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("tried"))
}

/// The name of the file the temporary file `name` was made for (`.ca.key.tmp-12-ab` →
/// `ca.key`), or `None` when `name` is no temporary file of [`create_temp`] (names of
/// earlier versions, `.<name>.tmp-<pid>`, included).
pub fn temp_target(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('.')?;
    let at = rest.rfind(TEMP_MARK)?;
    let (target, suffix) = (&rest[..at], &rest[at + TEMP_MARK.len()..]);
    let mut parts = suffix.splitn(2, '-');
    let pid = parts.next()?;
    let random_ok = parts
        .next()
        .is_none_or(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_hexdigit()));
    (!target.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && random_ok)
        .then_some(target)
}

/// The temporary files of [`create_temp`] in `dir` (not below it), of any type, sorted: a
/// run that holds the directory's lock knows they are left over from a run that was killed.
pub fn leftover_temp_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other?,
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        if temp_target(&entry.file_name().to_string_lossy()).is_some() {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Removes the [`leftover_temp_files`] of `dir` (a link is removed, not followed; a
/// directory of that name is left alone) and returns them.
pub fn remove_leftover_temp_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for path in leftover_temp_files(dir)? {
        if fs::symlink_metadata(&path)?.is_dir() {
            continue;
        }
        fs::remove_file(&path)?;
        removed.push(path);
    }
    Ok(removed)
}

/// Syncs the directory `dir` itself: the names created, renamed or removed in it.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
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
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
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
        write_atomic(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // No temporary files left behind.
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn a_link_at_the_target_is_replaced_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, "keep").unwrap();
        let p = dir.path().join("ca.key");
        std::os::unix::fs::symlink(&outside, &p).unwrap();
        write_atomic(&p, b"secret", 0o600).unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"keep");
        assert!(fs::symlink_metadata(&p).unwrap().is_file());
        // A link planted at a temporary name is refused by O_EXCL, never followed.
        let planted = dir.path().join(".x.tmp-1-ab");
        std::os::unix::fs::symlink(&outside, &planted).unwrap();
        let err = create_exclusive(&planted, 0o600).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&outside).unwrap(), b"keep");
    }

    #[test]
    fn temporary_files_are_recognised_by_name_and_removed_without_following_links() {
        assert_eq!(temp_target(".ca.key.tmp-123-0a1b"), Some("ca.key"));
        assert_eq!(
            temp_target(".kube-apiserver.tmp-99"),
            Some("kube-apiserver")
        );
        for not_temp in [
            "ca.key",
            ".ca.key.tmp-",
            ".ca.key.tmp-x1",
            ".ca.key.tmp-1-zz",
            "ca.key.tmp-1-ab",
            "..tmp-1",
        ] {
            assert_eq!(temp_target(not_temp), None, "{not_temp}");
        }
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, "keep").unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir(&tree).unwrap();
        let (tmp, _f) = create_temp(&tree.join("a.crt"), 0o644).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join(".b.key.tmp-7-ff")).unwrap();
        fs::create_dir(tree.join(".c.tmp-8")).unwrap();
        fs::write(tree.join("keep.tmp-1"), "").unwrap();
        assert_eq!(leftover_temp_files(&tree).unwrap().len(), 3);
        let removed = remove_leftover_temp_files(&tree).unwrap();
        assert_eq!(removed.len(), 2);
        assert!(removed.contains(&tmp));
        assert_eq!(fs::read(&outside).unwrap(), b"keep");
        assert!(tree.join(".c.tmp-8").is_dir() && tree.join("keep.tmp-1").is_file());
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
