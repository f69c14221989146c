//! Small operating-system helpers for the lab: running commands with useful errors, finding
//! programs, processes, signals, mounts and cgroups. Linux only, std only.

use super::error::{io_err, LabError};
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) const SIGKILL: i32 = 9;
pub(crate) const SIGTERM: i32 = 15;

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Sends `sig` to `pid`; false when the process does not exist (or is not ours to signal).
pub(crate) fn signal(pid: u32, sig: i32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 1 {
        return false;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of this process.
    unsafe { libc_kill(pid, sig) == 0 }
}

/// The effective uid, from the `Uid:` line of /proc/self/status (real, effective, saved, fs).
pub(crate) fn effective_uid() -> io::Result<u32> {
    let status = fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .ok_or_else(|| io::Error::other("no Uid: line in /proc/self/status"))
}

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

/// `text` without terminal colour sequences (`ESC [ ... letter`), as systemd writes to a console.
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The last `lines` lines of `text` (at most 4000 bytes), trimmed.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let text = text.trim_end();
    let mut start = text.len();
    for _ in 0..lines {
        match text[..start].rfind('\n') {
            Some(i) => start = i,
            None => {
                start = 0;
                break;
            }
        }
    }
    let mut t = text[start..].trim_start_matches('\n');
    if t.len() > 4000 {
        let mut cut = t.len() - 4000;
        while !t.is_char_boundary(cut) {
            cut += 1;
        }
        t = &t[cut..];
    }
    t.to_string()
}

fn spawn_err(cmd: &Command) -> impl FnOnce(io::Error) -> LabError + '_ {
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

/// A process exists and is not a zombie.
pub(crate) fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself hold ')'.
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(stat[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => false,
        },
        Err(_) => false,
    }
}

pub(crate) fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

pub(crate) fn comm(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// Mount points from /proc/self/mountinfo, with octal escapes (`\040` for space) decoded.
pub(crate) fn mount_points() -> Vec<PathBuf> {
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
pub(crate) fn mounts_under(path: &Path) -> Vec<PathBuf> {
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
pub(crate) fn unmount(path: &Path) -> Result<(), LabError> {
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

/// Where cgroups live: the named `systemd` and the `unified` hierarchies on a hybrid (v1)
/// machine, or the single cgroup2 tree.
pub(crate) fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_path_buf()];
    }
    ["systemd", "unified"]
        .iter()
        .map(|h| base.join(h))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect()
}

/// Process ids in a cgroup and all of its descendants.
pub(crate) fn cgroup_tree_pids(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) {
            pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(e.path());
                }
            }
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Removes a cgroup and its (empty) descendants, deepest first, retrying for a moment:
/// cgroups empty out a little after their last process exits.
pub(crate) fn remove_cgroup_tree(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut dirs = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            if let Ok(rd) = fs::read_dir(&d) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        stack.push(e.path());
                    }
                }
                dirs.push(d);
            }
        }
        if dirs.is_empty() {
            return;
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in &dirs {
            let _ = fs::remove_dir(d);
        }
        if !dir.exists() || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads the first line a TCP server sends (an SSH banner), with a short timeout.
pub(crate) fn ssh_banner(addr: std::net::IpAddr, port: u16, limit: Duration) -> Option<String> {
    use std::net::{SocketAddr, TcpStream};
    let mut s = TcpStream::connect_timeout(&SocketAddr::new(addr, port), limit).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    let deadline = Instant::now() + limit;
    while !got.contains(&b'\n') && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&got);
    let line = line.lines().next()?.trim().to_string();
    line.starts_with("SSH-").then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a\nb", 5), "a\nb");
        assert_eq!(tail("", 3), "");
    }

    #[test]
    fn colours_are_stripped() {
        assert_eq!(
            strip_ansi("[\u{1b}[0;32m  OK  \u{1b}[0m] Started \u{1b}[0;1;39mssh\u{1b}[0m."),
            "[  OK  ] Started ssh."
        );
    }

    #[test]
    fn quotes_only_when_needed() {
        let mut c = Command::new("ssh");
        c.args(["-o", "A=b", "echo hi", "it's"]);
        assert_eq!(describe(&c), r"ssh -o A=b 'echo hi' 'it'\''s'");
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mount(r"/a\040b"), "/a b");
        assert_eq!(unescape_mount(r"/plain"), "/plain");
    }

    #[test]
    fn own_process_is_alive() {
        assert!(pid_alive(std::process::id()));
        assert!(effective_uid().is_ok());
    }
}
