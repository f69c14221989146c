//! Files as a host has them: batch stat with content hashes ([`RemoteFile`]), and what an
//! upload would do about them ([`plan_upload`]).

use super::connection::Connection;
use super::error::SshError;
use super::shell::shell_quote;
use std::collections::{BTreeMap, HashMap};

/// A file as the host has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub sha256: String,
    /// `"644 root:root"`
    pub meta: String,
    /// `"<size>:<mtime>"`, for the quick check of [`Connection::stat_files_known`].
    pub stamp: String,
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// Content, mode and owner already matched.
    Unchanged,
    /// Only mode or owner were corrected.
    Metadata,
    /// New content was written.
    Written,
}

/// What writing a file with this content and metadata would do, given what the host has.
pub fn plan_upload(sha: &str, mode: u32, owner: &str, remote: Option<&RemoteFile>) -> Upload {
    match remote {
        Some(r) if r.sha256 == sha && r.meta == format!("{mode:o} {owner}") => Upload::Unchanged,
        Some(r) if r.sha256 == sha => Upload::Metadata,
        _ => Upload::Written,
    }
}

/// Takes `path stamp` pairs as arguments; prints `path \t sha256 \t stamp \t meta` for
/// each existing file, with `-` for the hash of a file whose stamp matched.
const STAT_SCRIPT: &str = "while [ $# -gt 0 ]; do f=$1; k=$2; shift 2; [ -f \"$f\" ] || continue; \
     s=$(stat -c '%s:%Y' \"$f\"); \
     if [ \"$s\" = \"$k\" ]; then h=-; else h=$(sha256sum < \"$f\" | cut -d' ' -f1); fi; \
     printf '%s\\t%s\\t%s\\t%s\\n' \"$f\" \"$h\" \"$s\" \"$(stat -c '%a %U:%G' \"$f\")\"; done";

impl Connection {
    /// sha256, mode and owner of those of `paths` that exist on the host, in one round trip.
    pub fn stat_files(&self, paths: &[&str]) -> Result<HashMap<String, RemoteFile>, SshError> {
        self.stat_files_known(paths, &BTreeMap::new())
    }

    /// [`stat_files`](Self::stat_files), trusting `known` (path -> (stamp, sha256), as
    /// recorded when the file was last written or hashed): a file whose size and mtime still
    /// match its stamp is not hashed again (the quick check rsync makes). The rest are hashed.
    pub fn stat_files_known(
        &self,
        paths: &[&str],
        known: &BTreeMap<String, (String, String)>,
    ) -> Result<HashMap<String, RemoteFile>, SshError> {
        if paths.is_empty() {
            return Ok(HashMap::new());
        }
        let args: Vec<String> = paths
            .iter()
            .flat_map(|p| {
                let stamp = known.get(*p).map_or("-", |(stamp, _)| stamp.as_str());
                [shell_quote(p), shell_quote(stamp)]
            })
            .collect();
        let out = self.run(&format!("set -- {}; {STAT_SCRIPT}", args.join(" ")))?;
        Ok(parse_stat_output(&out, known))
    }

    /// `size:mtime` of each of `paths`, as [`RemoteFile::stamp`]: of files just written, so
    /// a missing one is an error (`stat` fails).
    pub fn stamps(&self, paths: &[&str]) -> Result<HashMap<String, String>, SshError> {
        if paths.is_empty() {
            return Ok(HashMap::new());
        }
        let list: Vec<String> = paths.iter().map(|p| shell_quote(p)).collect();
        let out = self.run(&format!("stat -c '%n\t%s:%Y' {}", list.join(" ")))?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect())
    }
}

/// The files [`STAT_SCRIPT`] printed, with the hashes it skipped taken from `known`.
fn parse_stat_output(
    out: &str,
    known: &BTreeMap<String, (String, String)>,
) -> HashMap<String, RemoteFile> {
    let mut files = HashMap::new();
    for line in out.lines() {
        let mut parts = line.splitn(4, '\t');
        if let (Some(path), Some(sha256), Some(stamp), Some(meta)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        {
            let sha256 = match (sha256, known.get(path)) {
                ("-", Some((_, sha))) => sha.clone(),
                (sha, _) => sha.to_string(),
            };
            files.insert(
                path.to_string(),
                RemoteFile {
                    sha256,
                    meta: meta.to_string(),
                    stamp: stamp.to_string(),
                },
            );
        }
    }
    files
}
