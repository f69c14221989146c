//! The sha256 of the files in `binaries.dir` (release binaries, image archives), which every
//! run compares with the hosts' copies: computed once per run for all hosts, and kept between
//! runs in `binaries.dir/.cache/digests.json`, trusted while the file's device, inode, size,
//! modification and change times are those it was hashed with (any write, rename or chmod
//! changes one of them). A no-change re-run then hashes nothing: about 700 MB of programs.

use super::StepError;
use crate::ssh::Source;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Where the digests are kept, under `binaries.dir`.
pub const DIGEST_CACHE: &str = ".cache/digests.json";
/// A larger cache file is not read (it holds one line per file of `binaries.dir`).
const CACHE_CAP: u64 = 16 << 20;

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Stamp> {
        let m = std::fs::metadata(path)?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Ok(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    stamp: Stamp,
    sha256: String,
}

#[derive(Default)]
struct Cache {
    entries: BTreeMap<PathBuf, Entry>,
    changed: bool,
}

/// `binaries.dir` on this machine, with the digests of its files.
pub struct LocalBinaries {
    pub dir: PathBuf,
    cache: Mutex<Cache>,
    /// Files hashed by this instance (the others came from the cache).
    hashed: AtomicUsize,
}

impl LocalBinaries {
    /// Reads the kept digests; a missing, unreadable or malformed cache is an empty one.
    pub fn new(dir: PathBuf) -> Self {
        let entries = crate::fsutil::read_regular(&dir.join(DIGEST_CACHE), CACHE_CAP)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        LocalBinaries {
            dir,
            cache: Mutex::new(Cache {
                entries,
                changed: false,
            }),
            hashed: AtomicUsize::new(0),
        }
    }

    pub fn sha256(&self, path: &Path) -> Result<String, StepError> {
        let local = |cause| crate::ssh::SshError::Local {
            path: path.to_path_buf(),
            cause,
        };
        let before = Stamp::of(path).map_err(local)?;
        if let Some(entry) = self.cache.lock().expect("digest cache").entries.get(path) {
            if entry.stamp == before {
                return Ok(entry.sha256.clone());
            }
        }
        let sha256 = Source::File(path).sha256()?;
        self.hashed.fetch_add(1, Ordering::Relaxed);
        // A file that changed while it was read keeps no digest: the next look reads it again.
        if Stamp::of(path).map_err(local)? == before {
            let mut cache = self.cache.lock().expect("digest cache");
            cache.entries.insert(
                path.to_path_buf(),
                Entry {
                    stamp: before,
                    sha256: sha256.clone(),
                },
            );
            cache.changed = true;
        }
        Ok(sha256)
    }

    /// How many files this instance read to hash them.
    #[cfg(test)]
    pub fn hashed(&self) -> usize {
        self.hashed.load(Ordering::Relaxed)
    }

    /// Keeps the digests for the next run (0600, written whole and renamed into place).
    /// Only a cache: where `binaries.dir` cannot be written, the next run hashes again.
    pub fn save(&self) {
        let mut cache = self.cache.lock().expect("digest cache");
        if !cache.changed {
            return;
        }
        // Files gone since are forgotten.
        cache.entries.retain(|path, _| path.exists());
        if let Ok(json) = serde_json::to_vec(&cache.entries) {
            if crate::fsutil::write_atomic(&self.dir.join(DIGEST_CACHE), &json, 0o600).is_ok() {
                cache.changed = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_read_once_and_kept_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kubelet");
        std::fs::write(&file, b"one").unwrap();
        let one = crate::digest::sha256_hex(b"one");

        let first = LocalBinaries::new(dir.path().to_path_buf());
        assert_eq!(first.sha256(&file).unwrap(), one);
        assert_eq!(first.sha256(&file).unwrap(), one);
        assert_eq!(first.hashed(), 1, "once per run");
        first.save();
        let cache = dir.path().join(DIGEST_CACHE);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // The next run takes it from the cache.
        let second = LocalBinaries::new(dir.path().to_path_buf());
        assert_eq!(second.sha256(&file).unwrap(), one);
        assert_eq!(second.hashed(), 0);

        // Rewritten in place with content of the same size: read again.
        std::fs::write(&file, b"two").unwrap();
        let third = LocalBinaries::new(dir.path().to_path_buf());
        assert_eq!(
            third.sha256(&file).unwrap(),
            crate::digest::sha256_hex(b"two")
        );
        assert_eq!(third.hashed(), 1);

        // A cache that is not JSON is no cache.
        std::fs::write(&cache, b"{not json").unwrap();
        let fourth = LocalBinaries::new(dir.path().to_path_buf());
        assert_eq!(
            fourth.sha256(&file).unwrap(),
            crate::digest::sha256_hex(b"two")
        );
        assert_eq!(fourth.hashed(), 1);
    }

    #[test]
    fn a_file_replaced_by_another_of_the_same_size_and_time_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("etcd");
        std::fs::write(&file, b"aaaa").unwrap();
        let first = LocalBinaries::new(dir.path().to_path_buf());
        first.sha256(&file).unwrap();
        first.save();
        // Renamed into place (another inode), its times set back to the old file's.
        let times = std::fs::metadata(&file).unwrap().modified().unwrap();
        let other = dir.path().join("etcd.new");
        std::fs::write(&other, b"bbbb").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&other)
            .unwrap()
            .set_modified(times)
            .unwrap();
        std::fs::rename(&other, &file).unwrap();
        let second = LocalBinaries::new(dir.path().to_path_buf());
        assert_eq!(
            second.sha256(&file).unwrap(),
            crate::digest::sha256_hex(b"bbbb")
        );
        assert_eq!(second.hashed(), 1);
    }
}
