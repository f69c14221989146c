//! Command-line entry point: parses the arguments and hands them to [`cli::run`].

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Behave like other command-line tools when output is piped into `head`: end quietly
    // instead of panicking on a closed pipe.
    // SAFETY: called before any other thread exists; restores the default disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match cli::Cli::try_parse() {
        Ok(args) => cli::run(args),
        Err(e) => {
            let _ = e.print();
            // clap uses 0 for --help/--version and 2 for usage errors.
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
