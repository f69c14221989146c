//! The command line: one file per command, each turning the library's results into the
//! text, tables and JSON it prints, and its exit status.
//!
//! Layers, each using only those below it: `console` (stdout and stderr: errors returned,
//! values escaped), `args` (clap types) over `docs` (help examples, completions, man
//! pages) and `exit` (exit codes, JSON error); `output`, `progress` and
//! `inventory` are shared by the command files (`check`, `certs`, `render`, `install`,
//! `status`, `upgrade`, `remove-node`, `backup`/`restore`, `conformance`, `reset`, `fetch`, `lab`); this file dispatches.

mod args;
mod backup;
mod certs;
mod check;
mod conformance;
mod console;
mod docs;
mod exit;
mod fetch;
mod install;
mod inventory;
mod lab;
mod operation;
mod output;
mod progress;
mod remove_node;
mod render;
mod reset;
mod status;
mod upgrade;

pub use args::Cli;
pub use console::write_stdout;

use args::Command;
use clap::CommandFactory;
use std::process::ExitCode;

/// Runs the parsed command line: its exit status, or its error printed and mapped to an exit
/// code (2 for invalid input, 1 for a failure).
pub fn run(cli: Cli) -> ExitCode {
    let json = cli.json_command();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => exit::fail(&err, json),
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Init => check::init(),
        Command::Check(a) => check::check(&a.inventory),
        Command::Render(a) => render::run(&a, quiet),
        Command::Install(a) => install::install(a, quiet),
        Command::Deploy(a) => install::deploy(a, quiet),
        Command::Upgrade(a) => upgrade::run(a, quiet),
        Command::Status(a) => status::run(&a),
        Command::Conformance(a) => conformance::run(&a, quiet),
        Command::RemoveNode(a) => remove_node::run(a, quiet),
        Command::Backup(a) => backup::backup(&a, quiet),
        Command::Restore(a) => backup::restore(a, quiet),
        Command::Reset(a) => reset::run(&a, quiet),
        Command::Fetch(a) => fetch::run(a, quiet),
        Command::Lab { action } => lab::run(action),
        Command::Certs(a) => certs::run(a, quiet),
        Command::Completions { shell } => docs::print_completions(shell, &mut Cli::command()),
        Command::Man { out } => docs::man(Cli::command(), &out),
    }
}
