//! SSH to inventory hosts (libssh2): strict host-key checking, key or agent auth, commands
//! with timeouts, and uploads that skip identical files and replace changed ones atomically.

mod known_hosts;

pub use known_hosts::HostKeyPolicy;

use crate::inventory::{Cluster, Host};
use sha2::{Digest, Sha256};
use ssh2::Session;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The messages leave the host's name out: every caller prints it in front already.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot connect to {addr}: {message}")]
    Connect {
        host: String,
        addr: SocketAddr,
        message: String,
    },
    #[error("host key refused: {message}")]
    HostKey { host: String, message: String },
    #[error("authentication as {user} failed ({method}): {message}")]
    Auth {
        host: String,
        user: String,
        method: String,
        message: String,
    },
    #[error("`{command}` exited with {code}: {stderr_tail}")]
    Command {
        host: String,
        command: String,
        code: i32,
        stderr_tail: String,
    },
    #[error("{message}")]
    Session { host: String, message: String },
    #[error("{}", path.display())]
    Local {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How to reach one host.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub user: String,
    /// Private key file; `None` means the SSH agent.
    pub key: Option<PathBuf>,
    /// Wrap commands in `sudo -n` (non-root user).
    pub sudo: bool,
}

impl Target {
    pub fn of(cluster: &Cluster, host: &Host) -> Target {
        let global = &cluster.inventory.ssh;
        let key = host.ssh.key.as_ref().or(global.key.as_ref());
        Target {
            name: host.name.clone(),
            address: host.address,
            port: host.ssh.port.unwrap_or(global.port),
            user: host.ssh.user.clone().unwrap_or_else(|| global.user.clone()),
            key: key.map(|k| expand_path(cluster, k)),
            sudo: host.ssh.sudo.unwrap_or(global.sudo),
        }
    }

    fn socket(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

/// `~/` is the user's home; relative paths are relative to the inventory file.
pub fn expand_path(cluster: &Cluster, p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"))
            .join(rest),
        None => cluster.resolve(p),
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// Longest a command may go without finishing.
    pub command: Duration,
    /// Connection attempts (with backoff) before giving up.
    pub attempts: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            command: Duration::from_secs(300),
            attempts: 3,
        }
    }
}

/// Result of a command.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
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

/// Where uploaded bytes come from: memory for rendered files, a file for binaries.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

impl Source<'_> {
    pub fn sha256(&self) -> Result<String, SshError> {
        match self {
            Source::Bytes(b) => Ok(crate::render::hex(&Sha256::digest(b))),
            Source::File(p) => {
                let mut f = std::fs::File::open(p).map_err(|source| SshError::Local {
                    path: p.to_path_buf(),
                    source,
                })?;
                let mut hasher = Sha256::new();
                std::io::copy(&mut f, &mut hasher).map_err(|source| SshError::Local {
                    path: p.to_path_buf(),
                    source,
                })?;
                Ok(crate::render::hex(&hasher.finalize()))
            }
        }
    }
}

/// Quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub struct Connection {
    session: Session,
    pub target: Target,
    timeouts: Timeouts,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Connection({}@{})",
            self.target.user,
            self.target.socket()
        )
    }
}

impl Connection {
    /// Connects, verifies the host key and authenticates, retrying with backoff on
    /// connection failures (never on host-key or authentication failures).
    pub fn open(
        target: &Target,
        keys: &HostKeyPolicy,
        timeouts: Timeouts,
    ) -> Result<Connection, SshError> {
        let mut delay = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            match Self::open_once(target, keys, timeouts) {
                Err(SshError::Connect { .. }) if attempt < timeouts.attempts => {
                    std::thread::sleep(delay);
                    delay *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn open_once(
        target: &Target,
        keys: &HostKeyPolicy,
        timeouts: Timeouts,
    ) -> Result<Connection, SshError> {
        let addr = target.socket();
        let connect_err = |message: String| SshError::Connect {
            host: target.name.clone(),
            addr,
            message,
        };
        let tcp = TcpStream::connect_timeout(&addr, timeouts.connect)
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let mut session = Session::new().map_err(|e| connect_err(e.to_string()))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(millis(timeouts.connect));
        keys.prefer_known_types(&session, target)?;
        session
            .handshake()
            .map_err(|e| connect_err(format!("SSH handshake: {e}")))?;
        keys.verify(&session, target)?;

        let auth_err = |method: &str, e: ssh2::Error| SshError::Auth {
            host: target.name.clone(),
            user: target.user.clone(),
            method: method.to_string(),
            message: e.message().to_string(),
        };
        match &target.key {
            Some(key) => {
                if !key.exists() {
                    return Err(SshError::Auth {
                        host: target.name.clone(),
                        user: target.user.clone(),
                        method: format!("key {}", key.display()),
                        message: "key file not found".into(),
                    });
                }
                session
                    .userauth_pubkey_file(&target.user, None, key, None)
                    .map_err(|e| auth_err(&format!("key {}", key.display()), e))?;
            }
            None => session
                .userauth_agent(&target.user)
                .map_err(|e| auth_err("ssh-agent", e))?,
        }
        session.set_timeout(millis(timeouts.command));
        Ok(Connection {
            session,
            target: target.clone(),
            timeouts,
        })
    }

    fn session_err(&self, what: &str, e: impl fmt::Display) -> SshError {
        SshError::Session {
            host: self.target.name.clone(),
            message: format!("{what}: {e}"),
        }
    }

    /// The command as sent: through `sudo -n` for non-root users.
    fn wrap(&self, command: &str) -> String {
        if self.target.sudo {
            format!("sudo -n sh -c {}", shell_quote(command))
        } else {
            command.to_string()
        }
    }

    /// Runs a shell command and returns its exit code and output.
    pub fn exec(&self, command: &str) -> Result<Output, SshError> {
        self.exec_with_input(command, None)
    }

    fn exec_with_input(
        &self,
        command: &str,
        input: Option<&mut dyn Read>,
    ) -> Result<Output, SshError> {
        let mut channel = self
            .session
            .channel_session()
            .map_err(|e| self.session_err("opening a channel", e))?;
        channel
            .exec(&self.wrap(command))
            .map_err(|e| self.session_err("starting a command", e))?;
        if let Some(input) = input {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = input
                    .read(&mut buf)
                    .map_err(|e| self.session_err("reading upload source", e))?;
                if n == 0 {
                    break;
                }
                channel
                    .write_all(&buf[..n])
                    .map_err(|e| self.session_err("sending data", e))?;
            }
        }
        channel
            .send_eof()
            .map_err(|e| self.session_err("closing input", e))?;
        let mut stdout = String::new();
        let mut stderr = String::new();
        channel.read_to_string(&mut stdout).map_err(|e| {
            self.session_err(
                &format!(
                    "reading output of `{command}` (timeout {:?})",
                    self.timeouts.command
                ),
                e,
            )
        })?;
        channel
            .stderr()
            .read_to_string(&mut stderr)
            .map_err(|e| self.session_err("reading stderr", e))?;
        channel
            .wait_close()
            .map_err(|e| self.session_err("closing a channel", e))?;
        let code = channel
            .exit_status()
            .map_err(|e| self.session_err("exit status", e))?;
        Ok(Output {
            code,
            stdout,
            stderr,
        })
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn run(&self, command: &str) -> Result<String, SshError> {
        let out = self.exec(command)?;
        self.check(command, out)
    }

    fn check(&self, command: &str, out: Output) -> Result<String, SshError> {
        if out.code == 0 {
            return Ok(out.stdout);
        }
        Err(SshError::Command {
            host: self.target.name.clone(),
            command: command.to_string(),
            code: out.code,
            stderr_tail: tail(&out.stderr, 5),
        })
    }

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
        let out = self.run(&format!(
            "set -- {}; while [ $# -gt 0 ]; do f=$1; k=$2; shift 2; [ -f \"$f\" ] || continue; \
             s=$(stat -c '%s:%Y' \"$f\"); \
             if [ \"$s\" = \"$k\" ]; then h=-; else h=$(sha256sum < \"$f\" | cut -d' ' -f1); fi; \
             printf '%s\\t%s\\t%s\\t%s\\n' \"$f\" \"$h\" \"$s\" \"$(stat -c '%a %U:%G' \"$f\")\"; done",
            args.join(" ")
        ))?;
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
        Ok(files)
    }

    /// `size:mtime` of each existing file of `paths`, as [`RemoteFile::stamp`].
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
        self.check(&receive, out)?;
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

/// A file as the host has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub sha256: String,
    /// `"644 root:root"`
    pub meta: String,
    /// `"<size>:<mtime>"`, for the quick check of [`Connection::stat_files_known`].
    pub stamp: String,
}

/// What writing a file with this content and metadata would do, given what the host has.
pub fn plan_upload(sha: &str, mode: u32, owner: &str, remote: Option<&RemoteFile>) -> Upload {
    match remote {
        Some(r) if r.sha256 == sha && r.meta == format!("{mode:o} {owner}") => Upload::Unchanged,
        Some(r) if r.sha256 == sha => Upload::Metadata,
        _ => Upload::Written,
    }
}

fn millis(d: Duration) -> u32 {
    d.as_millis().min(u32::MAX as u128) as u32
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
