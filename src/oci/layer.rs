//! Deterministic layer tars: entries sorted by path, implied parent directories, owner 0:0,
//! mtime 0, extended attributes as PAX records, gzip without a timestamp.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

use super::descriptor::digest_of;
use super::error::{io_err, OciError};
use crate::digest::finish_hex;

/// What a layer entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A regular file copied from this file on the machine (symlinks followed).
    File(PathBuf),
    /// A regular file with these bytes.
    Bytes(Vec<u8>),
    /// A symbolic link to this target (relative or absolute, as given).
    Symlink(String),
    /// A directory.
    Dir,
}

/// One entry of a layer: its path in the image (a leading `/` is optional), what it holds, its
/// mode (permission bits; ignored for symlinks, which are always 0777) and extended
/// attributes (e.g. `security.capability`), stored as PAX `SCHILY.xattr.` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub content: Content,
    pub mode: u32,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Entry {
    pub fn file(path: &str, source: impl Into<PathBuf>, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            content: Content::File(source.into()),
            mode,
            xattrs: BTreeMap::new(),
        }
    }
    pub fn bytes(path: &str, bytes: impl Into<Vec<u8>>, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            content: Content::Bytes(bytes.into()),
            mode,
            xattrs: BTreeMap::new(),
        }
    }
    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry {
            path: path.into(),
            content: Content::Symlink(target.into()),
            mode: 0o777,
            xattrs: BTreeMap::new(),
        }
    }
    /// The entry with the extended attribute `name` (e.g. `security.capability`) set.
    pub fn with_xattr(mut self, name: &str, value: impl Into<Vec<u8>>) -> Entry {
        self.xattrs.insert(name.into(), value.into());
        self
    }
    pub fn dir(path: &str, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            content: Content::Dir,
            mode,
            xattrs: BTreeMap::new(),
        }
    }
}

/// Mode of the directories a layer creates because an entry lies below them.
pub const IMPLIED_DIR_MODE: u32 = 0o755;

/// A built layer: the gzipped tar (the blob) and its two digests.
#[derive(Clone, PartialEq, Eq)]
pub struct Layer {
    pub blob: Vec<u8>,
    /// `sha256:` of the blob, as the manifest names it.
    pub digest: String,
    /// `sha256:` of the uncompressed tar, as the config's `rootfs.diff_ids` names it.
    pub diff_id: String,
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layer")
            .field("size", &self.blob.len())
            .field("digest", &self.digest)
            .field("diff_id", &self.diff_id)
            .finish()
    }
}

/// `etc/passwd` from `/etc/passwd`; rejects empty paths, `.` and `..` components.
fn normalize(path: &str) -> Result<String, OciError> {
    let bad = |message: &str| OciError::Entry {
        path: path.into(),
        message: message.into(),
    };
    let mut parts = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::RootDir => {}
            Component::Normal(p) => parts.push(
                p.to_str()
                    .ok_or_else(|| bad("the path is not UTF-8"))?
                    .to_string(),
            ),
            Component::CurDir | Component::ParentDir | Component::Prefix(_) => {
                return Err(bad("`.` and `..` are not allowed in a path in the image"))
            }
        }
    }
    if parts.is_empty() {
        return Err(bad("the path is empty"));
    }
    Ok(parts.join("/"))
}

/// The tar of `entries` plus every parent directory they need, sorted by path. Two entries
/// for one path, or an entry below something that is not a directory, are errors.
fn plan_entries(entries: &[Entry]) -> Result<BTreeMap<String, Entry>, OciError> {
    let mut map: BTreeMap<String, Entry> = BTreeMap::new();
    for e in entries {
        let path = normalize(&e.path)?;
        if map.contains_key(&path) {
            return Err(OciError::Entry {
                path: e.path.clone(),
                message: "given twice".into(),
            });
        }
        map.insert(path, e.clone());
    }
    let mut implied = Vec::new();
    for path in map.keys() {
        let mut parent = path.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            parent = p;
            match map.get(parent) {
                Some(Entry {
                    content: Content::Dir,
                    ..
                }) => {}
                Some(_) => {
                    return Err(OciError::Entry {
                        path: path.clone(),
                        message: format!("its parent `{parent}` is not a directory"),
                    })
                }
                None => implied.push(parent.to_string()),
            }
        }
    }
    for p in implied {
        map.entry(p.clone())
            .or_insert_with(|| Entry::dir(&p, IMPLIED_DIR_MODE));
    }
    Ok(map)
}

pub(super) fn tar_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode & 0o7777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

/// Passes writes on and hashes them.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// PAX extended header records `<length> SCHILY.xattr.<name>=<value>\n`, sorted by name.
fn pax_records(xattrs: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in xattrs {
        let key = format!("SCHILY.xattr.{name}");
        // The length counts itself: find the fixed point.
        let rest = 1 + key.len() + 1 + value.len() + 1;
        let mut len = rest + 1;
        while rest + len.to_string().len() != len {
            len = rest + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

/// A gzipped layer tar of `entries` (parent directories added with mode 0755), deterministic.
pub fn build_layer(entries: &[Entry]) -> Result<Layer, OciError> {
    let planned = plan_entries(entries)?;
    let gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::default());
    let mut tar = tar::Builder::new(Hashing {
        inner: gz,
        hasher: Sha256::new(),
    });
    let layer_io = |path: &str| {
        let path = path.to_string();
        move |source: io::Error| OciError::Entry {
            path,
            message: format!("cannot add to the layer: {source}"),
        }
    };
    for (path, e) in &planned {
        if !e.xattrs.is_empty() {
            let records = pax_records(&e.xattrs);
            let mut h = tar_header(tar::EntryType::XHeader, 0o644, records.len() as u64);
            let name = match path.rsplit_once('/') {
                Some((dir, base)) => format!("{dir}/PaxHeaders/{base}"),
                None => format!("PaxHeaders/{path}"),
            };
            tar.append_data(&mut h, name, records.as_slice())
                .map_err(layer_io(path))?;
        }
        match &e.content {
            Content::Dir => {
                let mut h = tar_header(tar::EntryType::Directory, e.mode, 0);
                tar.append_data(&mut h, format!("{path}/"), io::empty())
                    .map_err(layer_io(path))?;
            }
            Content::Bytes(b) => {
                let mut h = tar_header(tar::EntryType::Regular, e.mode, b.len() as u64);
                tar.append_data(&mut h, path, b.as_slice())
                    .map_err(layer_io(path))?;
            }
            Content::File(src) => {
                let f = fs::File::open(src).map_err(io_err("cannot open", src))?;
                let meta = f.metadata().map_err(io_err("cannot stat", src))?;
                if !meta.is_file() {
                    return Err(OciError::Entry {
                        path: e.path.clone(),
                        message: format!("{} is not a regular file", src.display()),
                    });
                }
                let mut h = tar_header(tar::EntryType::Regular, e.mode, meta.len());
                // A file that changes size while being read fails the append.
                tar.append_data(&mut h, path, f.take(meta.len()))
                    .map_err(io_err("cannot read", src))?;
            }
            Content::Symlink(target) => {
                let mut h = tar_header(tar::EntryType::Symlink, 0o777, 0);
                tar.append_link(&mut h, path, target)
                    .map_err(layer_io(path))?;
            }
        }
    }
    let hashing = tar.into_inner().map_err(layer_io("(end of layer)"))?;
    let diff_id = format!("sha256:{}", finish_hex(hashing.hasher));
    let blob = hashing.inner.finish().map_err(layer_io("(gzip)"))?;
    Ok(Layer {
        digest: digest_of(&blob),
        blob,
        diff_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::tests::{gunzip, read_tar, sample};

    #[test]
    fn layers_are_deterministic_and_hold_the_entries() {
        let dir = tempfile::tempdir().unwrap();
        let entries = sample(dir.path());
        let a = build_layer(&entries).unwrap();
        let mut reversed = entries.clone();
        reversed.reverse();
        let b = build_layer(&reversed).unwrap();
        assert_eq!(a, b, "same entries in another order: the same bytes");
        assert_eq!(a.digest, digest_of(&a.blob));
        let tar = gunzip(&a.blob);
        assert_eq!(a.diff_id, digest_of(&tar));
        let files = read_tar(&tar);
        let summary: Vec<(&str, tar::EntryType, u32)> =
            files.iter().map(|(p, e)| (p.as_str(), e.0, e.1)).collect();
        use tar::EntryType::{Directory as D, Regular as R, Symlink as L};
        assert_eq!(
            summary,
            [
                ("etc/", D, 0o755),
                ("etc/passwd", R, 0o644),
                ("tmp/", D, 0o1777),
                ("usr/", D, 0o755),
                ("usr/bin/", D, 0o755),
                ("usr/bin/prog", L, 0o777),
                ("usr/local/", D, 0o755),
                ("usr/local/bin/", D, 0o755),
                ("usr/local/bin/prog", R, 0o755),
            ]
        );
        assert_eq!(files["usr/local/bin/prog"].5, b"#!/bin/sh\necho hi\n");
        assert_eq!(files["usr/bin/prog"].5, b"../local/bin/prog");
        for (p, e) in &files {
            assert_eq!((e.2, e.3, e.4), (0, 0, 0), "{p}: uid, gid, mtime");
        }
        // The gzip header carries no time stamp.
        assert_eq!(&a.blob[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn long_paths_and_bad_entries() {
        let long = format!("/opt/{}/file", "d".repeat(150));
        let l = build_layer(&[Entry::bytes(&long, "x", 0o644)]).unwrap();
        let files = read_tar(&gunzip(&l.blob));
        assert_eq!(files[&long[1..]].5, b"x");

        let e = build_layer(&[Entry::bytes("a", "", 0o644), Entry::bytes("/a", "", 0o644)])
            .unwrap_err();
        assert!(e.to_string().contains("given twice"), "{e}");
        let e = build_layer(&[Entry::bytes("a", "", 0o644), Entry::bytes("a/b", "", 0o644)])
            .unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let e = build_layer(&[Entry::bytes("a/../b", "", 0o644)]).unwrap_err();
        assert!(e.to_string().contains("`..`"), "{e}");
        let e = build_layer(&[Entry::file("x", "/nonexistent/source", 0o644)]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/source"), "{e}");
    }

    #[test]
    fn extended_attributes_are_pax_records() {
        let cap = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let l = build_layer(&[
            Entry::bytes("/bin/x", "x", 0o755).with_xattr("security.capability", cap),
            Entry::bytes("/bin/y", "y", 0o755),
        ])
        .unwrap();
        let tar = gunzip(&l.blob);
        let mut ar = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut x = Vec::new();
            if let Some(exts) = e.pax_extensions().unwrap() {
                for ext in exts {
                    let ext = ext.unwrap();
                    x.push((ext.key().unwrap().to_string(), ext.value_bytes().to_vec()));
                }
            }
            seen.push((path, x));
        }
        assert_eq!(
            seen,
            [
                ("bin/".to_string(), vec![]),
                (
                    "bin/x".to_string(),
                    vec![("SCHILY.xattr.security.capability".to_string(), cap.to_vec())]
                ),
                ("bin/y".to_string(), vec![]),
            ]
        );
        // A record's length counts its own digits (98 other bytes: 101, not 100).
        let r = pax_records(&BTreeMap::from([("a".to_string(), vec![b'b'; 81])]));
        assert!(
            r.starts_with(b"101 SCHILY.xattr.a="),
            "{}",
            String::from_utf8_lossy(&r)
        );
        assert_eq!(r.len(), 101);
    }
}
