//! Mounts: which there are, unmounting, and deleting a tree only once nothing is mounted in it.

use super::command::{run, spawn_err};
use crate::lab::error::{io_err, LabError};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Mount points from /proc/self/mountinfo, with octal escapes (`\040` for space) decoded.
fn mount_points() -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .collect()
}
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
/// Mount points at or below `path`, deepest first.
fn mounts_under(path: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(path))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    v.dedup();
    v
}
/// Options of the overlay mounts whose lower layer is `lower` (to tell whether a rootfs is in use).
pub(crate) fn overlay_uses(lower: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let needle = format!("lowerdir={}", lower.display());
    info.lines().filter(|l| l.contains(" - overlay ")).any(|l| {
        l.split([',', ' '])
            .any(|opt| opt == needle || opt.starts_with(&format!("{needle}:")))
    })
}
/// Unmounts everything at or below `path` (deepest first; lazily when busy), then removes the
/// tree. Refuses to remove anything while a mount is left, so a bind of /dev or /proc can
/// never be deleted through.
pub(crate) fn remove_tree(path: &Path) -> Result<(), LabError> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    for m in mounts_under(path) {
        unmount(&m)?;
    }
    if let Some(m) = mounts_under(path).first() {
        return Err(LabError::Io {
            action: "refusing to delete a tree that still has a mount".into(),
            path: m.clone(),
            source: io::Error::other("still mounted"),
        });
    }
    fs::remove_dir_all(path).map_err(io_err("cannot remove", path))
}
/// `umount PATH`, falling back to a lazy unmount when the mount is busy.
fn unmount(path: &Path) -> Result<(), LabError> {
    let mut cmd = Command::new("umount");
    cmd.arg(path);
    let out = cmd.stdin(Stdio::null()).output().map_err(spawn_err(&cmd))?;
    if out.status.success() || !mount_points().iter().any(|m| m == path) {
        return Ok(());
    }
    let mut lazy = Command::new("umount");
    lazy.arg("-l").arg(path);
    run(&mut lazy).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mount(r"/a\040b"), "/a b");
        assert_eq!(unescape_mount(r"/plain"), "/plain");
    }
}
