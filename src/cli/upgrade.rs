//! `k8s-boot upgrade`: the PKI step and the plan as `install` makes them, then the upgrade's
//! steps with a line per step and per host phase, and the report.

use super::args::UpgradeArgs;
use super::certs::ensure_pki;
use super::console::{errln, outln, StdoutError};
use super::install::dry_run_pki;
use super::inventory::load;
use super::output::print_json;
use super::progress::{Lines, Mode};
use anyhow::Result;
use k8s_boot::install::{self, phases::PhaseId, PhaseResult};
use k8s_boot::render;
use k8s_boot::shown::Shown;
use k8s_boot::upgrade::{self, plan::Step, Observer, Outcome, Report, StepReport};
use std::time::Duration;

/// 1 when a step failed or a host was left behind.
pub fn run(args: UpgradeArgs, quiet: bool) -> Result<i32> {
    let json = args.output.is_json();
    let cluster = load(args.pki.inventory())?;
    let templates = render::Templates::load(args.templates.templates.as_deref())?;
    let pki_dir = args.pki.dir();
    let pki = if args.dry_run {
        dry_run_pki(&cluster, &pki_dir, quiet || json)?
    } else {
        ensure_pki(&cluster, &pki_dir, quiet || json)?
    };
    let plan = render::plan(&cluster, &pki, &templates)?;
    let opts = upgrade::Options {
        dry_run: args.dry_run,
        accept_new_host_keys: args.accept_new_host_keys,
        ready_timeout: args.ready.duration(),
        drain_timeout: Duration::from_secs(args.drain_timeout),
        ..Default::default()
    };
    let shown = Mode::detect(quiet || json) != Mode::Hidden;
    let observer = StepLines {
        lines: shown.then(|| Lines::new(args.dry_run, std::io::stderr())),
    };
    let report = upgrade::upgrade(&cluster, &plan, &opts, &observer)?;
    if json {
        print_json("upgrade", &report)?;
    } else {
        print_report(&report, quiet)?;
    }
    Ok(if report.incomplete() { 1 } else { 0 })
}

/// Progress on stderr as plain lines (an upgrade is long and mostly waits): the plan, each
/// step as it starts and ends, and each host phase of it as `install` shows them.
struct StepLines {
    lines: Option<Lines>,
}

impl install::Progress for StepLines {
    fn host(&self, host: &str, message: &str) {
        if let Some(l) = &self.lines {
            l.host(host, message);
        }
    }
    fn phase_done(&self, host: &str, phase: PhaseId, result: &PhaseResult) {
        if let Some(l) = &self.lines {
            l.phase_done(host, phase, result);
        }
    }
}

impl Observer for StepLines {
    fn planned(&self, target: &str, steps: &[Step]) {
        if self.lines.is_some() {
            let list: Vec<String> = steps.iter().map(ToString::to_string).collect();
            errln!("upgrade to {target}: {}", Shown(&list.join(" → ")));
        }
    }
    fn step_started(&self, index: usize, total: usize, step: &Step) {
        if self.lines.is_some() {
            errln!("[{index}/{total}] {}", Shown(&step.to_string()));
        }
    }
    fn step_done(&self, report: &StepReport) {
        if self.lines.is_some() {
            let secs = report.elapsed_ms as f64 / 1000.0;
            match &report.outcome {
                Outcome::Failed { error } => {
                    errln!("{}: FAILED ({secs:.1} s): {}", report.step, Shown(error))
                }
                _ => errln!("{}: done ({secs:.1} s)", report.step),
            };
        }
    }
}

/// A line per step, its changes in a dry run, each failure, the summary.
fn print_report(report: &Report, quiet: bool) -> Result<(), StdoutError> {
    if !quiet || report.incomplete() {
        for step in &report.steps {
            let status = match &step.outcome {
                Outcome::Done { .. } if report.dry_run => "planned",
                Outcome::Done { .. } => "done",
                Outcome::Failed { .. } => "FAILED",
                Outcome::NotRun => "not run",
            };
            outln!("{:<32} {status}", Shown(&step.step).to_string())?;
            match &step.outcome {
                Outcome::Done { changes } if report.dry_run => {
                    for c in changes {
                        outln!("    would {}", Shown(c))?;
                    }
                }
                Outcome::Failed { error } => outln!("    {}", Shown(error))?,
                _ => {}
            }
        }
        for host in &report.unreachable {
            outln!(
                "{host}: unreachable, not upgraded: run `k8s-boot upgrade` again when it is back"
            )?;
        }
    }
    let done = report
        .steps
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Done { .. }))
        .count();
    outln!(
        "{} to {} in {:.1} s: {done} of {} step(s) {}{}",
        if report.dry_run {
            "dry run of the upgrade"
        } else {
            "upgrade"
        },
        report.target,
        report.elapsed_ms as f64 / 1000.0,
        report.steps.len(),
        if report.dry_run { "planned" } else { "done" },
        if report.incomplete() {
            "; INCOMPLETE: run it again once fixed"
        } else {
            ""
        }
    )
}
