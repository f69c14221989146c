//! Where everything the command line prints goes: results on stdout, messages on stderr.
//!
//! `println!` panics (exit 101) when stdout is a closed pipe, a full disk or closed, and
//! with `SIGPIPE` at its default a pipe closed early kills the process between two writes.
//! Here `SIGPIPE` stays ignored (Rust's default), so a closed pipe is an `EPIPE` error like
//! any other: [`outln!`] returns it as [`StdoutError`] (the command fails with exit status
//! 1 and says so on stderr) and [`errln!`] drops it (there is nowhere left to say it).
//! Every text is escaped first ([`k8s_boot::shown`]): a value from a file, the inventory, a
//! certificate or a host cannot act on the terminal or hide what it is. JSON gets JSON
//! escapes; only the completion scripts go out as they are.

use k8s_boot::shown::{escape_json, escape_message};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the process was started with stdout closed (`>&-`). Rust's runtime then opens
/// `/dev/null` in its place before `main`, which would make every write succeed unseen, so
/// this is recorded earlier, by [`RECORD_CLOSED_STDOUT`].
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

extern "C" fn record_closed_stdout() {
    // SAFETY: fcntl(F_GETFD) only asks whether the descriptor is open.
    if unsafe { libc::fcntl(1, libc::F_GETFD) } == -1 {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Runs [`record_closed_stdout`] as the C library starts the process, before Rust's runtime.
#[used]
#[link_section = ".init_array"]
static RECORD_CLOSED_STDOUT: extern "C" fn() = record_closed_stdout;

/// Writing a result to stdout failed: a closed pipe, a full disk, a closed stdout.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to stdout")]
pub struct StdoutError(#[source] pub io::Error);

/// Writes `bytes` to stdout and flushes them.
pub fn write_stdout(bytes: &[u8]) -> Result<(), StdoutError> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Err(StdoutError(io::Error::other("stdout is closed")));
    }
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// A result line (or lines) on stdout, escaped.
pub fn stdout_line(text: &str) -> Result<(), StdoutError> {
    let mut line = escape_message(text).into_owned();
    line.push('\n');
    write_stdout(line.as_bytes())
}

/// JSON text on stdout with every invisible or control character as a JSON escape.
pub fn stdout_json(text: &str) -> Result<(), StdoutError> {
    let mut line = escape_json(text).into_owned();
    line.push('\n');
    write_stdout(line.as_bytes())
}

/// A message line on stderr, escaped; best effort.
pub fn stderr_line(text: &str) {
    let mut line = escape_message(text).into_owned();
    line.push('\n');
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

/// A question on stderr, the answer to be typed on the same line; best effort.
pub fn stderr_prompt(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err
        .write_all(escape_message(text).as_bytes())
        .and_then(|()| err.flush());
}

/// `outln!("...", args)`: [`stdout_line`] of the formatted text; returns its `Result`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::console::stdout_line(&format!($($arg)*))
    };
}

/// `errln!("...", args)`: [`stderr_line`] of the formatted text.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::console::stderr_line(&format!($($arg)*))
    };
}

pub(crate) use {errln, outln};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stdout_error_names_stdout_and_its_cause() {
        let err = anyhow::Error::from(StdoutError(io::Error::from_raw_os_error(libc::EPIPE)));
        let text = format!("{err:#}");
        assert!(text.starts_with("cannot write to stdout: "), "{text}");
        assert!(text.contains("Broken pipe"), "{text}");
    }
}
