//! `k8s-boot reset`: stop and remove what install made, after a confirmation.

use super::args::{selection, ResetArgs};
use super::console::{self, errln, outln, StdoutError};
use super::exit::UsageError;
use super::inventory::load;
use anyhow::Result;
use k8s_boot::install::{self, maintain::ResetResult};
use k8s_boot::inventory::Host;
use std::io::IsTerminal;

/// With `quiet`, only failed hosts and one summary line are printed. 1 when the prompt was
/// not answered `yes` or a host failed.
pub fn run(args: &ResetArgs, quiet: bool) -> Result<i32> {
    let selection = install::Options {
        hosts: selection("--hosts", args.hosts.as_deref())?,
        ..Default::default()
    };
    let cluster = load(&args.inv.inventory)?;
    install::require_known_hosts(&cluster, &selection.hosts)?;
    let selected: Vec<&Host> = cluster
        .inventory
        .hosts
        .iter()
        .filter(|h| selection.selects(h))
        .collect();
    let names: Vec<&str> = selected.iter().map(|h| h.name.as_str()).collect();
    if !args.yes && !confirmed(&names, args.purge_data)? {
        errln!("nothing changed");
        return Ok(1);
    }
    let ssh = install::remote::SshConnector::new(&cluster, false, Default::default());
    let results = install::maintain::reset(&selected, args.purge_data, &ssh);
    print_results(&results, quiet)?;
    Ok(if results.iter().any(|r| r.error.is_some()) {
        1
    } else {
        0
    })
}

/// Asks on the terminal; without one, the missing `--yes` is a usage error.
fn confirmed(names: &[&str], purge_data: bool) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(format!(
            "reset removes what install made on {}: confirm with --yes",
            names.join(", ")
        ))
        .into());
    }
    console::stderr_prompt(&format!(
        "Stop and remove everything k8s-boot installed on {}{}? Type `yes`: ",
        names.join(", "),
        if purge_data {
            ", including etcd data"
        } else {
            ""
        }
    ));
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

fn print_results(results: &[ResetResult], quiet: bool) -> Result<(), StdoutError> {
    for r in results {
        match &r.error {
            Some(e) => outln!("{}: reset failed: {e}", r.host)?,
            None if quiet => {}
            None => outln!("{}: removed {} item(s)", r.host, r.removed.len())?,
        }
    }
    if quiet {
        let failures = results.iter().filter(|r| r.error.is_some()).count();
        outln!(
            "reset {} host(s): {} item(s) removed, {failures} failed",
            results.len(),
            results.iter().map(|r| r.removed.len()).sum::<usize>()
        )?;
    }
    Ok(())
}
