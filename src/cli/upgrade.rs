//! `k8s-boot upgrade`: the PKI step and the plan as `install` makes them, then the upgrade's
//! steps with a line per step and per host phase, and the report.

use super::args::UpgradeArgs;
use super::console::{outln, StdoutError};
use super::install::plan_with_pki;
use super::inventory::load;
use super::operation::{print_steps, summary, StepLines};
use super::output::print_json;
use anyhow::Result;
use k8s_boot::upgrade::{self, Report};
use std::time::Duration;

/// 1 when a step failed or a host was left behind.
pub fn run(args: UpgradeArgs, quiet: bool) -> Result<i32> {
    let json = args.output.is_json();
    let cluster = load(args.pki.inventory())?;
    let plan = plan_with_pki(
        &cluster,
        &args.pki.dir(),
        args.templates.templates.as_deref(),
        args.dry_run,
        quiet || json,
    )?;
    let opts = upgrade::Options {
        dry_run: args.dry_run,
        accept_new_host_keys: args.accept_new_host_keys,
        ready_timeout: args.ready.duration(),
        drain_timeout: Duration::from_secs(args.drain_timeout),
        ..Default::default()
    };
    let observer = StepLines::new(args.dry_run, quiet || json);
    let report = upgrade::upgrade(&cluster, &plan, &opts, &observer)?;
    if json {
        print_json("upgrade", &report)?;
    } else {
        print_report(&report, quiet)?;
    }
    Ok(if report.incomplete() { 1 } else { 0 })
}

/// A line per step, its changes in a dry run, each failure, the summary.
fn print_report(report: &Report, quiet: bool) -> Result<(), StdoutError> {
    if !quiet || report.incomplete() {
        print_steps(&report.steps, report.dry_run)?;
        for host in &report.unreachable {
            outln!(
                "{host}: unreachable, not upgraded: run `k8s-boot upgrade` again when it is back"
            )?;
        }
    }
    let what = format!("the upgrade to {}", report.target);
    outln!(
        "{}",
        summary(
            &what,
            &report.steps,
            report.dry_run,
            report.elapsed_ms,
            report.incomplete()
        )
    )
}
