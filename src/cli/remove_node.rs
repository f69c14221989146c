//! `k8s-boot remove-node NAME`: a confirmation, the plan of the other hosts (rendered from
//! the inventory without NAME), the removal's steps, the report.

use super::args::RemoveNodeArgs;
use super::console::{self, errln, outln, StdoutError};
use super::exit::UsageError;
use super::install::plan_with_pki;
use super::inventory::load;
use super::operation::{print_outcome, StepLines};
use super::output::print_json;
use anyhow::Result;
use k8s_boot::remove_node::{self, Report};
use std::io::IsTerminal;
use std::time::Duration;

/// 1 when a step failed or the prompt was not answered `yes`.
pub fn run(args: RemoveNodeArgs, quiet: bool) -> Result<i32> {
    let json = args.output.is_json();
    let cluster = load(args.pki.inventory())?;
    let after = remove_node::without(&cluster, &args.name)?;
    if !args.dry_run && !args.yes && !confirmed(&args.name)? {
        errln!("nothing changed");
        return Ok(1);
    }
    let plan_after = plan_with_pki(
        &after,
        &args.pki.dir(),
        args.templates.templates.as_deref(),
        args.dry_run,
        quiet || json,
    )?;
    let opts = remove_node::Options {
        dry_run: args.dry_run,
        accept_new_host_keys: args.accept_new_host_keys,
        drain_timeout: Duration::from_secs(args.drain_timeout),
        ..Default::default()
    };
    let observer = StepLines::new(args.dry_run, quiet || json);
    let report =
        remove_node::remove_node(&cluster, &after, &plan_after, &args.name, &opts, &observer)?;
    if json {
        print_json("remove-node", &report)?;
    } else {
        print_report(&report, quiet, args.pki.inventory())?;
    }
    Ok(if report.incomplete() { 1 } else { 0 })
}

/// Asks on the terminal; without one, the missing `--yes` is a usage error.
fn confirmed(name: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(format!(
            "remove-node takes {name} out of the cluster and resets it (etcd data included): \
             confirm with --yes"
        ))
        .into());
    }
    console::stderr_prompt(&format!(
        "Take {name} out of the cluster and reset it, etcd data included? Type `yes`: "
    ));
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

fn print_report(
    report: &Report,
    quiet: bool,
    inventory: &std::path::Path,
) -> Result<(), StdoutError> {
    let what = format!("the removal of {}", report.host);
    print_outcome(
        &what,
        &report.steps,
        report.dry_run,
        report.elapsed_ms,
        report.incomplete(),
        quiet,
    )?;
    if !report.dry_run && !report.incomplete() {
        outln!(
            "now delete {} from {}: `install` brings back every host the inventory lists",
            report.host,
            inventory.display()
        )?;
    }
    Ok(())
}
