//! Building an output tree in its staging directory before it is swapped in.
//!
//! A re-render mostly writes what the previous output already holds. Files that are
//! unchanged there (same bytes, mode and owner) are hard-linked from it instead of created:
//! creating and freeing inodes is what a render costs on disk (on ext4 without a journal each
//! new inode is checked against the recently freed ones, and online discard waits for every
//! freed block), and a link does neither, nor does removing the previous tree afterwards free
//! those files.

use super::RenderError;
use crate::fsutil::{create_with_mode, current_umask};
use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// One file of the tree, relative to its root.
pub struct TreeFile<'a> {
    pub rel: PathBuf,
    pub bytes: &'a [u8],
    pub mode: u32,
}

/// Creates `staging` (which must not exist) holding exactly `files`, each with its exact mode.
/// Each directory is created once, parents first. `previous` is an earlier tree of the same
/// layout whose unchanged files are reused.
pub fn build(
    staging: &Path,
    files: &[TreeFile],
    previous: Option<&Path>,
) -> Result<(), RenderError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RenderError::Io { path, source }
    };
    fs::create_dir(staging).map_err(io(staging))?;
    let dirs: BTreeSet<&Path> = files
        .iter()
        .flat_map(|f| f.rel.ancestors().skip(1))
        .filter(|d| !d.as_os_str().is_empty())
        .collect();
    for d in dirs {
        let path = staging.join(d);
        fs::create_dir(&path).map_err(io(&path))?;
    }
    let reuse = previous
        .map(|from| Reuse::new(from, staging))
        .transpose()
        .map_err(io(staging))?;
    let umask = current_umask();
    for f in files {
        let path = staging.join(&f.rel);
        if reuse.as_ref().is_some_and(|r| r.link(f, &path)) {
            continue;
        }
        create_with_mode(&path, f.bytes, f.mode, umask).map_err(io(&path))?;
    }
    Ok(())
}

/// Hard links from an earlier tree.
struct Reuse<'a> {
    from: &'a Path,
    /// Owner and group a file created in the staging tree gets: those of the staging
    /// directory itself (its group follows the same set-group-ID rule as a file's).
    uid: u32,
    gid: u32,
}

impl<'a> Reuse<'a> {
    fn new(from: &'a Path, staging: &Path) -> std::io::Result<Self> {
        let meta = fs::metadata(staging)?;
        Ok(Reuse {
            from,
            uid: meta.uid(),
            gid: meta.gid(),
        })
    }

    /// Links `f` from the earlier tree to `to` when the earlier file is unchanged; false
    /// when `f` must be written.
    fn link(&self, f: &TreeFile, to: &Path) -> bool {
        let from = self.from.join(&f.rel);
        if !self.holds(&from, f) {
            return false;
        }
        // A link can fail where a new file would not (no hard links on this file system, the
        // earlier tree on another mount): write that file instead.
        fs::hard_link(&from, to).is_ok()
    }

    /// Whether `path` is a regular file with exactly `f`'s bytes and mode, owned as a new
    /// file would be, and linked nowhere else (so nothing outside the tree shares it).
    fn holds(&self, path: &Path, f: &TreeFile) -> bool {
        // O_NOFOLLOW: a symbolic link is not the file; O_NONBLOCK: a FIFO does not block.
        let Ok(mut file) = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
        else {
            return false;
        };
        let Ok(meta) = file.metadata() else {
            return false;
        };
        if !meta.is_file()
            || meta.nlink() != 1
            || meta.uid() != self.uid
            || meta.gid() != self.gid
            || meta.mode() & 0o7777 != f.mode
            || meta.len() != f.bytes.len() as u64
        {
            return false;
        }
        let mut bytes = vec![0; f.bytes.len()];
        file.read_exact(&mut bytes).is_ok() && bytes == f.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file<'a>(rel: &str, bytes: &'a [u8], mode: u32) -> TreeFile<'a> {
        TreeFile {
            rel: PathBuf::from(rel),
            bytes,
            mode,
        }
    }

    fn ino(p: &Path) -> u64 {
        fs::symlink_metadata(p).unwrap().ino()
    }

    #[test]
    fn writes_every_file_with_its_mode_under_fresh_directories() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("new");
        let files = [
            file("a/b/key", b"secret", 0o600),
            file("a/run.sh", b"#!/bin/sh\n", 0o755),
            file("top", b"", 0o644),
        ];
        build(&staging, &files, None).unwrap();
        for f in &files {
            let p = staging.join(&f.rel);
            assert_eq!(fs::read(&p).unwrap(), f.bytes);
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
                f.mode
            );
        }
        assert!(
            build(&staging, &files, None).is_err(),
            "staging must be new"
        );
    }

    #[test]
    fn reuses_only_files_unchanged_in_the_earlier_tree() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old");
        let first = [
            file("same", b"kept", 0o644),
            file("bytes", b"one", 0o644),
            file("mode", b"m", 0o644),
            file("shared", b"s", 0o644),
            file("link", b"l", 0o644),
        ];
        build(&old, &first, None).unwrap();
        // Linked elsewhere: must not be shared with the new tree.
        fs::hard_link(old.join("shared"), dir.path().join("elsewhere")).unwrap();
        fs::remove_file(old.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), old.join("link")).unwrap();

        let new = dir.path().join("new");
        let second = [
            file("same", b"kept", 0o644),
            file("bytes", b"two", 0o644),
            file("mode", b"m", 0o600),
            file("shared", b"s", 0o644),
            file("link", b"s", 0o644),
            file("added/x", b"x", 0o640),
        ];
        build(&new, &second, Some(&old)).unwrap();
        assert_eq!(ino(&new.join("same")), ino(&old.join("same")));
        for changed in ["bytes", "mode", "shared"] {
            assert_ne!(
                ino(&new.join(changed)),
                ino(&old.join(changed)),
                "{changed}"
            );
        }
        for f in &second {
            let p = new.join(&f.rel);
            let meta = fs::symlink_metadata(&p).unwrap();
            assert!(meta.is_file(), "{}", f.rel.display());
            assert_eq!(fs::read(&p).unwrap(), f.bytes);
            assert_eq!(meta.permissions().mode() & 0o7777, f.mode);
        }
        // The earlier tree is untouched.
        assert_eq!(fs::read(old.join("bytes")).unwrap(), b"one");
        assert_eq!(
            fs::metadata(old.join("mode")).unwrap().permissions().mode() & 0o7777,
            0o644
        );
    }
}
