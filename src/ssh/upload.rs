//! Installing files on a host: [`Connection::upload`] and [`Connection::put`] skip identical
//! content, repair metadata, and replace changed files atomically.

use super::connection::Connection;
use super::error::SshError;
use super::files::{plan_upload, RemoteFile, Upload};
use super::shell::shell_quote;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Where uploaded bytes come from: memory for rendered files, a file for binaries.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

impl Source<'_> {
    pub fn sha256(&self) -> Result<String, SshError> {
        let digest = match self {
            Source::Bytes(b) => Sha256::digest(b),
            Source::File(p) => {
                let local = |source| SshError::Local {
                    path: p.to_path_buf(),
                    source,
                };
                let mut f = std::fs::File::open(p).map_err(local)?;
                let mut hasher = Sha256::new();
                std::io::copy(&mut f, &mut hasher).map_err(local)?;
                hasher.finalize()
            }
        };
        Ok(crate::render::hex(&digest))
    }
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
        self.put(source, &sha, dest, mode, owner, remote.get(dest), None)
    }

    /// Applies `source` at `dest` given what the host has (`remote`, from `stat_files`).
    /// `check` is a command run against the new file (`{}` = its temporary path) before it
    /// replaces the old one, e.g. `nginx -t -c {}`.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &self,
        source: Source,
        sha: &str,
        dest: &str,
        mode: u32,
        owner: &str,
        remote: Option<&RemoteFile>,
        check: Option<&str>,
    ) -> Result<Upload, SshError> {
        let q = shell_quote(dest);
        match plan_upload(sha, mode, owner, remote) {
            Upload::Unchanged => return Ok(Upload::Unchanged),
            Upload::Metadata => {
                self.run(&format!("chmod {mode:o} {q} && chown {owner} {q}"))?;
                return Ok(Upload::Metadata);
            }
            Upload::Written => {}
        }

        let dir = Path::new(dest)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into());
        let name = Path::new(dest)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = shell_quote(&format!("{dir}/.{name}.k8s-boot-tmp"));
        let receive = format!(
            "mkdir -p {d} && umask 077 && cat > {tmp}",
            d = shell_quote(&dir)
        );
        let (out, len) = match source {
            Source::Bytes(b) => (
                self.exec_with_input(&receive, Some(&mut &b[..]))?,
                b.len() as u64,
            ),
            Source::File(p) => {
                let local = |source| SshError::Local {
                    path: p.to_path_buf(),
                    source,
                };
                let mut f = std::fs::File::open(p).map_err(local)?;
                let len = f.metadata().map_err(local)?.len();
                (self.exec_with_input(&receive, Some(&mut f))?, len)
            }
        };
        self.require_success(&receive, out)?;
        if let Some(check) = check {
            let command = check.replace("{}", &tmp);
            if let Err(e) = self.run(&command) {
                let _ = self.exec(&format!("rm -f {tmp}"));
                return Err(e);
            }
        }
        self.run(&format!(
            // SSH guarantees integrity in transit; the size check catches a short write.
            "[ \"$(stat -c %s {tmp})\" = {len} ] && chmod {mode:o} {tmp} && chown {owner} {tmp} && sync {tmp} && mv -f {tmp} {q} && sync {d}",
            d = shell_quote(&dir)
        ))?;
        Ok(Upload::Written)
    }
}
