//! Installing files on a host: [`Connection::upload`] and [`Connection::put`] skip identical
//! content, repair metadata, and replace changed files atomically.

use super::connection::Connection;
use super::error::SshError;
use super::files::{plan_upload, RemoteFile, Upload};
use super::shell::shell_quote;
use std::path::Path;

/// Where uploaded bytes come from: memory for rendered files, a file for binaries.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

impl Source<'_> {
    pub fn sha256(&self) -> Result<String, SshError> {
        match self {
            Source::Bytes(b) => Ok(crate::digest::sha256_hex(b)),
            Source::File(p) => {
                let local = |cause| SshError::Local {
                    path: p.to_path_buf(),
                    cause,
                };
                crate::digest::sha256_file(p)
                    .map_err(local)?
                    .ok_or_else(|| local(std::io::ErrorKind::NotFound.into()))
            }
        }
    }
}

/// A file for [`Connection::put`]: its content and the content's sha256, its destination,
/// mode and owner (`user:group`), and an optional command that must accept the new file
/// (`{}` = its temporary path) before it replaces the old one, e.g. `nginx -t -c {}`.
#[derive(Clone, Copy)]
pub struct NewFile<'a> {
    pub source: Source<'a>,
    pub sha256: &'a str,
    pub dest: &'a str,
    pub mode: u32,
    pub owner: &'a str,
    pub check: Option<&'a str>,
}

impl Connection {
    /// Installs `source` at `dest` with `mode` and `owner` (`user:group`).
    ///
    /// Identical content is detected by sha256 on the host and not sent again. New content
    /// is streamed to a temporary file beside `dest`, checked, fsynced, given its mode and
    /// owner, and renamed over `dest`: an interrupted upload leaves the old file intact.
    pub fn upload(
        &self,
        source: Source,
        dest: &str,
        mode: u32,
        owner: &str,
    ) -> Result<Upload, SshError> {
        let sha = source.sha256()?;
        let remote = self.stat_files(&[dest])?;
        let file = NewFile {
            source,
            sha256: &sha,
            dest,
            mode,
            owner,
            check: None,
        };
        self.put(&file, remote.get(dest))
    }

    /// Applies `file` given what the host has (`remote`, from `stat_files`): nothing when
    /// it matches, `chmod`/`chown` when only those differ, else the content is sent to a
    /// temporary file beside the destination, checked and renamed over it.
    pub fn put(&self, file: &NewFile, remote: Option<&RemoteFile>) -> Result<Upload, SshError> {
        let q = shell_quote(file.dest);
        let (mode, owner) = (file.mode, file.owner);
        match plan_upload(file.sha256, mode, owner, remote) {
            Upload::Unchanged => return Ok(Upload::Unchanged),
            Upload::Metadata => {
                self.run(&format!("chmod {mode:o} {q} && chown {owner} {q}"))?;
                return Ok(Upload::Metadata);
            }
            Upload::Written => {}
        }
        let temp = TempFile::beside(file.dest);
        let len = self.send_to(&temp, file.source)?;
        if let Some(check) = file.check {
            let command = check.replace("{}", &temp.path);
            if let Err(e) = self.run(&command) {
                let _ = self.exec(&format!("rm -f {}", temp.path));
                return Err(e);
            }
        }
        self.run(&format!(
            // SSH guarantees integrity in transit; the size check catches a short write.
            "[ \"$(stat -c %s {tmp})\" = {len} ] && chmod {mode:o} {tmp} && chown {owner} {tmp} && sync {tmp} && mv -f {tmp} {q} && sync {d}",
            tmp = temp.path,
            d = temp.dir,
        ))?;
        Ok(Upload::Written)
    }

    /// Streams `source` into `temp` (its directory created, readable by root only until
    /// its mode is set); returns the number of bytes sent.
    fn send_to(&self, temp: &TempFile, source: Source) -> Result<u64, SshError> {
        let receive = format!(
            "mkdir -p {d} && umask 077 && cat > {tmp}",
            d = temp.dir,
            tmp = temp.path
        );
        let (out, len) = match source {
            Source::Bytes(b) => (
                self.exec_with_input(&receive, Some(&mut &b[..]))?,
                b.len() as u64,
            ),
            Source::File(p) => {
                let local = |cause| SshError::Local {
                    path: p.to_path_buf(),
                    cause,
                };
                let mut f = std::fs::File::open(p).map_err(local)?;
                let len = f.metadata().map_err(local)?.len();
                (self.exec_with_input(&receive, Some(&mut f))?, len)
            }
        };
        self.require_success(&receive, out)?;
        Ok(len)
    }
}

/// The temporary file new content goes to first, in the destination's directory so that
/// the final `mv` is a rename. Both fields are shell-quoted.
struct TempFile {
    dir: String,
    path: String,
}

impl TempFile {
    fn beside(dest: &str) -> TempFile {
        let dir = Path::new(dest)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into());
        let name = Path::new(dest)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        TempFile {
            path: shell_quote(&format!("{dir}/.{name}.k8s-boot-tmp")),
            dir: shell_quote(&dir),
        }
    }
}
