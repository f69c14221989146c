//! [`Connection`]: one authenticated SSH session to a host, and commands run over it.

use super::error::{AuthFailure, SessionCause, SshError};
use super::known_hosts::HostKeyPolicy;
use super::shell::{shell_quote, tail};
use super::target::{Target, Timeouts};
use ssh2::Session;
use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Result of a command.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
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
        let session = handshake(target, keys, timeouts)?;
        authenticate(&session, target)?;
        session.set_timeout(millis(timeouts.command));
        Ok(Connection {
            session,
            target: target.clone(),
            timeouts,
        })
    }

    fn session_err(&self, what: &str, cause: impl Into<SessionCause>) -> SshError {
        SshError::Session {
            host: self.target.name.clone(),
            what: what.to_string(),
            cause: cause.into(),
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

    /// [`exec`](Self::exec), with `input` streamed to the command's stdin.
    pub fn exec_with_input(
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
            self.send(&mut channel, input)?;
        }
        channel
            .send_eof()
            .map_err(|e| self.session_err("closing input", e))?;
        let mut stdout = String::new();
        channel.read_to_string(&mut stdout).map_err(|e| {
            self.session_err(
                &format!(
                    "reading output of `{command}` (timeout {:?})",
                    self.timeouts.command
                ),
                e,
            )
        })?;
        let (code, stderr) = self.finish(&mut channel)?;
        Ok(Output {
            code,
            stdout,
            stderr,
        })
    }

    /// A command's stderr and exit status, once its stdout has been read; the channel closed.
    fn finish(&self, channel: &mut ssh2::Channel) -> Result<(i32, String), SshError> {
        let mut stderr = String::new();
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
        Ok((code, stderr))
    }

    /// Copies `input` to the command's stdin.
    fn send(&self, channel: &mut ssh2::Channel, input: &mut dyn Read) -> Result<(), SshError> {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = input
                .read(&mut buf)
                .map_err(|e| self.session_err("reading upload source", e))?;
            if n == 0 {
                return Ok(());
            }
            channel
                .write_all(&buf[..n])
                .map_err(|e| self.session_err("sending data", e))?;
        }
    }

    /// Streams the content of the host's file `path` into `out` (binary-safe); the number of
    /// bytes. A missing or unreadable file is a [`SshError::Command`] with `cat`'s message.
    pub fn download(&self, path: &str, out: &mut dyn Write) -> Result<u64, SshError> {
        let command = format!("cat -- {}", shell_quote(path));
        let mut channel = self
            .session
            .channel_session()
            .map_err(|e| self.session_err("opening a channel", e))?;
        channel
            .exec(&self.wrap(&command))
            .map_err(|e| self.session_err("starting a command", e))?;
        channel
            .send_eof()
            .map_err(|e| self.session_err("closing input", e))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = channel
                .read(&mut buf)
                .map_err(|e| self.session_err(&format!("reading {path}"), e))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])
                .map_err(|e| self.session_err(&format!("writing the copy of {path}"), e))?;
            total += n as u64;
        }
        let (code, stderr) = self.finish(&mut channel)?;
        let out = Output {
            code,
            stdout: String::new(),
            stderr,
        };
        self.require_success(&command, out).map(|_| total)
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn run(&self, command: &str) -> Result<String, SshError> {
        let out = self.exec(command)?;
        self.require_success(command, out)
    }

    /// The stdout of a command that exited with 0; otherwise its exit code and stderr tail
    /// as an error.
    pub(super) fn require_success(&self, command: &str, out: Output) -> Result<String, SshError> {
        if out.code == 0 {
            return Ok(out.stdout);
        }
        // A command run with `2>&1` says why it failed on stdout.
        let said = if out.stderr.trim().is_empty() {
            &out.stdout
        } else {
            &out.stderr
        };
        Err(SshError::Command {
            host: self.target.name.clone(),
            command: command.to_string(),
            code: out.code,
            stderr_tail: tail(said, 5),
        })
    }
}

/// A session over TCP to `target` whose host key `keys` accepted; not yet authenticated.
fn handshake(
    target: &Target,
    keys: &HostKeyPolicy,
    timeouts: Timeouts,
) -> Result<Session, SshError> {
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
    Ok(session)
}

/// Logs in as the target's user with its key file, or with the SSH agent.
fn authenticate(session: &Session, target: &Target) -> Result<(), SshError> {
    let auth_err = |method: String, failure: AuthFailure| SshError::Auth {
        host: target.name.clone(),
        user: target.user.clone(),
        method,
        failure,
    };
    match &target.key {
        Some(key) => {
            let method = format!("key {}", key.display());
            if !key.exists() {
                return Err(auth_err(method, AuthFailure::KeyFileMissing));
            }
            session
                .userauth_pubkey_file(&target.user, None, key, None)
                .map_err(|e| auth_err(method, AuthFailure::Refused(e)))
        }
        None => session
            .userauth_agent(&target.user)
            .map_err(|e| auth_err("ssh-agent".into(), AuthFailure::Refused(e))),
    }
}

/// libssh2 takes its timeout in milliseconds as a `u32`.
fn millis(d: Duration) -> u32 {
    d.as_millis().min(u32::MAX as u128) as u32
}
