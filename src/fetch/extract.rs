//! Extraction of executables from a verified `.tar.gz` into temporary files; the caller
//! renames them into place only when every required file was found.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

use super::error::FetchError;
use crate::digest::finish_hex;

/// What to take out of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extract {
    /// Named members: `(path inside the archive, installed name relative to the binaries
    /// directory, required)`.
    Members(Vec<(String, String, bool)>),
    /// Every executable regular file at the top level of the archive, installed as
    /// `{subdir}/{name}`; `required` names must be among them.
    AllExecutables {
        subdir: String,
        required: Vec<String>,
    },
}

impl Extract {
    /// Installed names (relative to the binaries directory) every successful extraction
    /// yields: the required members, or `{subdir}/{name}` of the required executables.
    pub fn guaranteed_names(&self) -> Vec<String> {
        match self {
            Extract::Members(list) => list
                .iter()
                .filter(|(_, _, required)| *required)
                .map(|(_, name, _)| name.clone())
                .collect(),
            Extract::AllExecutables { subdir, required } => {
                required.iter().map(|r| format!("{subdir}/{r}")).collect()
            }
        }
    }
}

/// An extracted file waiting to be renamed to its place.
pub struct Staged {
    /// Installed name relative to the binaries directory (`etcd`, `cni/bridge`).
    pub name: String,
    pub tmp: PathBuf,
    pub target: PathBuf,
    pub sha256: String,
    pub size: u64,
}

impl Staged {
    pub fn discard(&self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Names a safe top-level file name from an archive path such as `./bridge`.
fn top_level_name(path: &str) -> Option<&str> {
    let p = path.strip_prefix("./").unwrap_or(path);
    let ok = !p.is_empty()
        && !p.starts_with('.')
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    ok.then_some(p)
}

/// Extracts the selected executables of `archive` to temporary files next to their targets
/// under `dir`, each mode 0755 and fsynced. On error, nothing is left behind.
pub fn stage(
    archive: &Path,
    archive_label: &str,
    what: &Extract,
    dir: &Path,
) -> Result<Vec<Staged>, FetchError> {
    let mut staged: Vec<Staged> = Vec::new();
    let result = stage_into(archive, archive_label, what, dir, &mut staged);
    if result.is_err() {
        for s in &staged {
            s.discard();
        }
    }
    result.map(|()| staged)
}

fn stage_into(
    archive: &Path,
    archive_label: &str,
    what: &Extract,
    dir: &Path,
    staged: &mut Vec<Staged>,
) -> Result<(), FetchError> {
    let bad = |source: io::Error| FetchError::Archive {
        archive: archive_label.to_string(),
        source,
    };
    let f = File::open(archive).map_err(|e| FetchError::io(archive, e))?;
    let mut tar = tar::Archive::new(GzDecoder::new(f));
    // Wanted: archive path -> installed name.
    let wanted: BTreeMap<&str, &str> = match what {
        Extract::Members(list) => list
            .iter()
            .map(|(path, name, _)| (path.as_str(), name.as_str()))
            .collect(),
        Extract::AllExecutables { .. } => BTreeMap::new(),
    };
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let Some(name) = installed_name(&entry, what, &wanted).map_err(bad)? else {
            continue;
        };
        if staged.iter().any(|s| s.name == name) {
            continue;
        }
        staged.push(stage_entry(&mut entry, name, dir, &bad)?);
    }
    check_required(what, staged, archive_label)
}

/// The installed name of a regular-file entry, or `None` when it is not wanted.
fn installed_name(
    entry: &tar::Entry<'_, impl Read>,
    what: &Extract,
    wanted: &BTreeMap<&str, &str>,
) -> io::Result<Option<String>> {
    let path = entry.path()?.to_string_lossy().into_owned();
    let path = path.strip_prefix("./").unwrap_or(&path);
    Ok(match what {
        Extract::Members(_) => wanted.get(path).map(|name| name.to_string()),
        Extract::AllExecutables { subdir, .. } => {
            let mode = entry.header().mode()?;
            match top_level_name(path) {
                Some(n) if mode & 0o111 != 0 => Some(format!("{subdir}/{n}")),
                _ => None,
            }
        }
    })
}

/// Writes one entry to a temporary file next to `{dir}/{name}`; nothing is left on error.
fn stage_entry(
    entry: &mut dyn Read,
    name: String,
    dir: &Path,
    bad: &dyn Fn(io::Error) -> FetchError,
) -> Result<Staged, FetchError> {
    let target = dir.join(&name);
    let parent = target.parent().unwrap_or(dir).to_path_buf();
    fs::create_dir_all(&parent).map_err(|e| FetchError::io(&parent, e))?;
    // Exclusive and without following links: nothing planted in `dir` is written through.
    let (tmp, out) =
        crate::fsutil::create_temp(&target, 0o755).map_err(|e| FetchError::io(&target, e))?;
    match write_exec(out, entry) {
        Ok((sha256, size)) => Ok(Staged {
            name,
            tmp,
            target,
            sha256,
            size,
        }),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(match e {
                WriteError::Read(e) => bad(e),
                WriteError::Write(e) => FetchError::io(&tmp, e),
            })
        }
    }
}

/// Every required member must have been staged.
fn check_required(
    what: &Extract,
    staged: &[Staged],
    archive_label: &str,
) -> Result<(), FetchError> {
    let required: Vec<String> = match what {
        Extract::Members(list) => list
            .iter()
            .filter(|(_, _, req)| *req)
            .map(|(path, _, _)| path.clone())
            .collect(),
        Extract::AllExecutables { required, .. } => required.clone(),
    };
    for member in required {
        let found = match what {
            Extract::Members(list) => list
                .iter()
                .any(|(p, name, _)| *p == member && staged.iter().any(|s| &s.name == name)),
            Extract::AllExecutables { subdir, .. } => staged
                .iter()
                .any(|s| s.name == format!("{subdir}/{member}")),
        };
        if !found {
            return Err(FetchError::MissingMember {
                archive: archive_label.to_string(),
                member,
            });
        }
    }
    Ok(())
}

enum WriteError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `src` into `out` (a new temporary file, mode 0755), synced.
fn write_exec(mut out: File, src: &mut dyn Read) -> Result<(String, u64), WriteError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(WriteError::Read(e)),
        };
        out.write_all(&buf[..n]).map_err(WriteError::Write)?;
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    out.sync_all().map_err(WriteError::Write)?;
    Ok((finish_hex(hasher), total))
}
