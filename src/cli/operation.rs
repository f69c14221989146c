//! What the day-2 commands (`upgrade`, `remove-node`) print: progress as plain lines on
//! stderr (the plan, each step as it starts and ends, each host phase as `install` shows
//! them) and a line per step in the report.

use super::console::{errln, outln, StdoutError};
use super::progress::{Lines, Mode};
use k8s_boot::install::{self, phases::PhaseId, PhaseResult};
use k8s_boot::operation::{Observer, Outcome, StepReport};
use k8s_boot::shown::Shown;

/// Progress lines on stderr (an operation is long and mostly waits); nothing when `quiet`.
pub struct StepLines {
    lines: Option<Lines>,
}

impl StepLines {
    pub fn new(dry_run: bool, quiet: bool) -> StepLines {
        let shown = Mode::detect(quiet) != Mode::Hidden;
        StepLines {
            lines: shown.then(|| Lines::new(dry_run, std::io::stderr())),
        }
    }
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
    fn planned(&self, what: &str, steps: &[String]) {
        if self.lines.is_some() {
            errln!("{}: {}", Shown(what), Shown(&steps.join(" → ")));
        }
    }
    fn step_started(&self, index: usize, total: usize, step: &str) {
        if self.lines.is_some() {
            errln!("[{index}/{total}] {}", Shown(step));
        }
    }
    fn step_done(&self, report: &StepReport) {
        if self.lines.is_some() {
            let secs = report.elapsed_ms as f64 / 1000.0;
            match &report.outcome {
                Outcome::Failed { error } => {
                    errln!(
                        "{}: FAILED ({secs:.1} s): {}",
                        Shown(&report.step),
                        Shown(error)
                    )
                }
                _ => errln!("{}: done ({secs:.1} s)", Shown(&report.step)),
            };
        }
    }
}

/// A line per step, with its changes in a dry run and its error when it failed.
pub fn print_steps(steps: &[StepReport], dry_run: bool) -> Result<(), StdoutError> {
    for step in steps {
        let status = match &step.outcome {
            Outcome::Done { .. } if dry_run => "planned",
            Outcome::Done { .. } => "done",
            Outcome::Failed { .. } => "FAILED",
            Outcome::NotRun => "not run",
        };
        outln!("{:<32} {status}", Shown(&step.step).to_string())?;
        match &step.outcome {
            Outcome::Done { changes } if dry_run => {
                for c in changes {
                    outln!("    would {}", Shown(c))?;
                }
            }
            Outcome::Failed { error } => outln!("    {}", Shown(error))?,
            _ => {}
        }
    }
    Ok(())
}

/// How many steps were done.
fn done(steps: &[StepReport]) -> usize {
    steps
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Done { .. }))
        .count()
}

/// The last line: `upgrade to v1.37.2 in 312.4 s: 13 of 13 step(s) done`.
pub fn summary(
    what: &str,
    steps: &[StepReport],
    dry_run: bool,
    elapsed_ms: u128,
    incomplete: bool,
) -> String {
    format!(
        "{}{what} in {:.1} s: {} of {} step(s) {}{}",
        if dry_run { "dry run of " } else { "" },
        elapsed_ms as f64 / 1000.0,
        done(steps),
        steps.len(),
        if dry_run { "planned" } else { "done" },
        if incomplete {
            "; INCOMPLETE: run it again once fixed"
        } else {
            ""
        }
    )
}

/// The report of an operation: a line per step (unless `quiet` and all went well), then the
/// summary line.
pub fn print_outcome(
    what: &str,
    steps: &[StepReport],
    dry_run: bool,
    elapsed_ms: u128,
    incomplete: bool,
    quiet: bool,
) -> Result<(), StdoutError> {
    if !quiet || incomplete {
        print_steps(steps, dry_run)?;
    }
    outln!("{}", summary(what, steps, dry_run, elapsed_ms, incomplete))
}
