//! Advisory locks on the directories k8s-boot writes: `flock` on a lock file, never
//! waiting for another process (only, for at most half a second, for a lock this process
//! itself let go of). A run that finds the lock taken stops at once and names the process
//! holding it (from `/proc/locks`), so two runs never interleave their writes and none hangs.

use super::read::FileKind;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Writers take the lock exclusively; readers share it, so they never see a write half done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

/// A held lock; released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("{} is held by {holder}", path.display())]
    Busy { path: PathBuf, holder: String },
    /// Something other than a regular file stands at the lock file's path.
    #[error("lock file {} is {kind}, not a regular file: remove it", path.display())]
    NotRegular { path: PathBuf, kind: FileKind },
    #[error("lock file {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Takes the lock on `path`, creating the file (mode 0600) when it is missing. The lock file
/// is never removed: removing it would let two runs lock two different files.
pub fn lock(path: &Path, mode: LockMode) -> Result<Lock, LockError> {
    lock_file(path, mode, true).map(|l| l.expect("created"))
}

/// Takes the lock on `path` if the file exists (`None` if it does not): for readers, which
/// must not create files in a directory they only read.
pub fn lock_existing(path: &Path, mode: LockMode) -> Result<Option<Lock>, LockError> {
    lock_file(path, mode, false)
}

fn lock_file(path: &Path, mode: LockMode, create: bool) -> Result<Option<Lock>, LockError> {
    let io_err = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    let opened = fs::OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let file = match opened {
        Ok(f) => f,
        Err(e) if !create && e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(LockError::NotRegular {
                path: path.to_path_buf(),
                kind: FileKind::Symlink,
            })
        }
        Err(e) => return Err(io_err(e)),
    };
    let meta = file.metadata().map_err(io_err)?;
    if let Some(kind) = FileKind::of(meta.file_type()) {
        return Err(LockError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    let op = match mode {
        LockMode::Shared => libc::LOCK_SH,
        LockMode::Exclusive => libc::LOCK_EX,
    };
    // A lock this process let go of can stay held for a moment by a child another thread
    // forked just then (the child shares the descriptor until it runs its program): only
    // such a lock, held by no other process, is tried again, for at most half a second.
    let mut tries = 0;
    loop {
        // SAFETY: flock on a descriptor we own; no memory is shared with the call.
        if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
            return Ok(Some(Lock { _file: file }));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::WouldBlock {
            return Err(io_err(err));
        }
        let others = other_holders(&meta);
        if others.is_empty() && tries < 50 {
            tries += 1;
            std::thread::sleep(std::time::Duration::from_millis(10));
            continue;
        }
        return Err(LockError::Busy {
            path: path.to_path_buf(),
            holder: describe(&others),
        });
    }
}

/// The other processes holding a lock on the file of `meta`, from `/proc/locks` (none when
/// they are in another PID namespace, or when the holder is this process).
fn other_holders(meta: &fs::Metadata) -> Vec<String> {
    let inode = format!(
        "{:02x}:{:02x}:{}",
        libc::major(meta.dev()),
        libc::minor(meta.dev()),
        meta.ino()
    );
    let me = std::process::id().to_string();
    let locks = fs::read_to_string("/proc/locks").unwrap_or_default();
    let mut pids: Vec<String> = locks
        .lines()
        .filter(|l| !l.contains("->"))
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            // `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`
            (fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&inode.as_str()))
                .then(|| fields.get(4).copied())
                .flatten()
        })
        .filter(|pid| *pid != me)
        .map(String::from)
        .collect();
    pids.dedup();
    pids
}

/// `pids` as `pid N (command line)`; `another process` when there are none to name.
fn describe(pids: &[String]) -> String {
    if pids.is_empty() {
        return "another process".into();
    }
    pids.iter()
        .map(|pid| match command_line(pid) {
            Some(cmd) => format!("pid {pid} ({cmd})"),
            None => format!("pid {pid}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The command line of `pid`, arguments separated by spaces, control characters escaped
/// (a command line is anyone's text), at most 200 characters.
fn command_line(pid: &str) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| {
            String::from_utf8_lossy(a)
                .chars()
                .flat_map(|c| {
                    if c.is_control() {
                        c.escape_default().collect::<Vec<_>>()
                    } else {
                        vec![c]
                    }
                })
                .collect()
        })
        .collect();
    let mut text = args.join(" ");
    if text.chars().count() > 200 {
        text = text.chars().take(200).collect::<String>() + "...";
    }
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_everyone_shared_only_writers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        assert!(lock_existing(&path, LockMode::Shared).unwrap().is_none());
        assert!(!path.exists(), "a reader creates no lock file");
        let held = lock(&path, LockMode::Exclusive).unwrap();
        // flock conflicts between open file descriptions, within one process too; the
        // holder is this process, which `holders` leaves out.
        let err = lock(&path, LockMode::Exclusive).unwrap_err();
        assert!(
            matches!(&err, LockError::Busy { holder, .. } if holder == "another process"),
            "{err}"
        );
        assert!(lock_existing(&path, LockMode::Shared).is_err());
        drop(held);
        let a = lock_existing(&path, LockMode::Shared).unwrap().unwrap();
        let _b = lock(&path, LockMode::Shared).unwrap();
        assert!(lock(&path, LockMode::Exclusive).is_err());
        drop(a);
    }

    #[test]
    fn a_lock_a_forked_child_still_shares_for_a_moment_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let held = lock(&path, LockMode::Exclusive).unwrap();
        // A child forked now would share the descriptor until it runs its program: a copy
        // of the descriptor stands for it, closed 100 ms after the holder lets go.
        // SAFETY: dup of a descriptor the lock owns; the copy is closed below.
        let copy = unsafe { libc::dup(held._file.as_raw_fd()) };
        assert!(copy >= 0);
        drop(held);
        let closer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            // SAFETY: the copy made above, closed once.
            unsafe { libc::close(copy) };
        });
        let started = std::time::Instant::now();
        let again = lock(&path, LockMode::Exclusive).unwrap();
        assert!(started.elapsed() >= std::time::Duration::from_millis(90));
        closer.join().unwrap();
        drop(again);
    }

    #[test]
    fn a_link_or_fifo_at_the_lock_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let link = dir.path().join(".lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = lock(&link, LockMode::Exclusive).unwrap_err();
        assert!(matches!(
            err,
            LockError::NotRegular {
                kind: FileKind::Symlink,
                ..
            }
        ));
        assert!(!target.exists(), "the link was not followed");
        fs::remove_file(&link).unwrap();
        fs::create_dir(&link).unwrap();
        assert!(lock(&link, LockMode::Exclusive).is_err());
    }

    #[test]
    fn a_holder_in_another_process_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        drop(lock(&path, LockMode::Exclusive).unwrap());
        let mut child = std::process::Command::new("flock")
            .arg(&path)
            .args(["sleep", "30"])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let err = loop {
            match lock(&path, LockMode::Exclusive) {
                Err(e @ LockError::Busy { .. }) => break e,
                _ if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => panic!("never busy: {other:?}"),
            }
        };
        child.kill().unwrap();
        child.wait().unwrap();
        let text = err.to_string();
        assert!(text.contains("(flock "), "{text}");
    }
}
