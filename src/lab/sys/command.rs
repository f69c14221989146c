//! Running commands with useful errors, and finding programs.

use super::text::tail;
use crate::lab::error::LabError;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Finds `name` in PATH, then in the sbin directories (often missing from a user's PATH).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
/// `program arg arg` with arguments quoted when they need it, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut out = quote(cmd.get_program());
    for a in cmd.get_args() {
        out.push(' ');
        out.push_str(&quote(a));
    }
    out
}
fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@+%".contains(&b));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
pub(crate) fn status_text(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}
pub(super) fn spawn_err(cmd: &Command) -> impl FnOnce(io::Error) -> LabError + '_ {
    move |source| LabError::Io {
        action: format!("cannot run `{}`", describe(cmd)),
        path: PathBuf::from(cmd.get_program()),
        source,
    }
}
/// Runs a command to completion with stdin closed; a non-zero exit is a `Command` error.
pub(crate) fn run(cmd: &mut Command) -> Result<Output, LabError> {
    cmd.stdin(Stdio::null());
    let out = cmd.output().map_err(spawn_err(cmd))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(command_failed(cmd, &out))
    }
}
pub(crate) fn command_failed(cmd: &Command, out: &Output) -> LabError {
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    if text.trim().is_empty() {
        text = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    LabError::Command {
        cmd: describe(cmd),
        status: status_text(&out.status),
        stderr_tail: tail(&text, 15),
    }
}
/// Runs a command with a time limit; `None` when it was killed at the limit.
pub(crate) fn run_with_timeout(
    cmd: &mut Command,
    limit: Duration,
) -> Result<Option<Output>, LabError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(spawn_err(cmd))?;
    // Drain both pipes in threads so a chatty command cannot block on a full pipe.
    let out_reader = drain(child.stdout.take());
    let err_reader = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(spawn_err(cmd)(e)),
        }
    };
    let Some(status) = status else {
        kill_child(&mut child);
        let _ = out_reader.join();
        let _ = err_reader.join();
        return Ok(None);
    };
    Ok(Some(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }))
}
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}
fn kill_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        let mut c = Command::new("ssh");
        c.args(["-o", "A=b", "echo hi", "it's"]);
        assert_eq!(describe(&c), r"ssh -o A=b 'echo hi' 'it'\''s'");
    }
}
