//! Command-line entry point: parses the arguments and hands them to [`cli::run`].

// Everything printed goes through `cli::console`, which returns write errors and escapes
// what a terminal would act on; the print macros panic on a closed or full stdout.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

mod cli;

use clap::Parser;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::Cli::try_parse() {
        Ok(args) => cli::run(args),
        Err(e) => usage(&e),
    }
}

/// `--help`, `--version` (exit 0, on stdout: a failed write is an error) and usage errors
/// (exit 2, on stderr), as clap words them.
fn usage(e: &clap::Error) -> ExitCode {
    if e.use_stderr() {
        let _ = e.print();
        return ExitCode::from(e.exit_code() as u8);
    }
    let text = if std::io::stdout().is_terminal() {
        e.render().ansi().to_string()
    } else {
        e.render().to_string()
    };
    match cli::write_stdout(text.as_bytes()) {
        Ok(()) => ExitCode::from(e.exit_code() as u8),
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "error: {:#}", anyhow::Error::from(err));
            ExitCode::FAILURE
        }
    }
}
