//! `k8s-boot conformance`: runs upstream's conformance suite in the cluster, with progress on
//! stderr and a summary (or JSON) on stdout.

use super::args::ConformanceArgs;
use super::console::{errln, outln};
use super::inventory::load;
use super::output::print_json;
use anyhow::{Context, Result};
use k8s_boot::conformance::{self, Event, Options, Outcome, RunEvent};
use k8s_boot::install;
use std::time::{Duration, Instant};

/// Progress lines at most this often (failures are printed at once).
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// 0 when every test passed, 1 otherwise.
pub fn run(args: &ConformanceArgs, quiet: bool) -> Result<i32> {
    let cluster = load(&args.inventory.inventory)?;
    let focus = match (&args.focus, args.quick) {
        (Some(f), _) => f.clone(),
        (None, true) => conformance::QUICK_FOCUS.into(),
        (None, false) => conformance::CONFORMANCE_FOCUS.into(),
    };
    let opts = Options {
        focus,
        skip: args.skip.clone(),
        parallel: args.parallel,
        results_dir: args.results.clone(),
        timeout: Duration::from_secs(args.timeout),
        poll: Duration::from_secs(3),
    };
    let ssh =
        install::remote::SshConnector::new(&cluster, args.accept_new_host_keys, Default::default());
    let binaries = cluster.resolve(&cluster.inventory.binaries.dir);
    let mut printer = Printer {
        quiet,
        total: None,
        last: None,
    };
    let outcome = conformance::run(&cluster, &ssh, &binaries, &opts, &mut |e| printer.event(e))
        .context("conformance run")?;
    if args.output.is_json() {
        print_json("conformance", &outcome)?;
    } else {
        summary(&outcome)?;
    }
    Ok(if outcome.passed() { 0 } else { 1 })
}

struct Printer {
    quiet: bool,
    total: Option<u32>,
    last: Option<Instant>,
}

impl Printer {
    fn event(&mut self, e: RunEvent) {
        match e {
            RunEvent::Imported { host, images } if !images.is_empty() && !self.quiet => {
                errln!("{host}: imported {}", images.join(", "))
            }
            RunEvent::Started { node } if !self.quiet => {
                errln!("conformance pod running on {node}")
            }
            RunEvent::Log(Event::Total(n)) => {
                self.total = Some(n);
                if self.quiet {
                    return;
                }
                errln!("{n} tests to run")
            }
            RunEvent::Log(Event::Done(n)) => {
                let due = self.last.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY)
                    || Some(n) == self.total;
                if self.quiet || !due {
                    return;
                }
                self.last = Some(Instant::now());
                errln!(
                    "{n}/{} done",
                    self.total.map_or("?".into(), |t| t.to_string())
                )
            }
            RunEvent::Log(Event::Failed { state, name }) => {
                errln!("{state}: {name}")
            }
            _ => {}
        }
    }
}

fn summary(o: &Outcome) -> Result<(), super::console::StdoutError> {
    let c = &o.counts;
    outln!(
        "{}: {} passed, {} failed, {} pending, {} skipped of {} run, in {} s",
        if o.passed() { "PASSED" } else { "FAILED" },
        c.passed,
        c.failed,
        c.pending,
        c.skipped,
        o.total,
        o.seconds
    )?;
    for f in &o.failures {
        outln!("  failed: {f}")?;
    }
    if o.exit_code != 0 && o.failures.is_empty() {
        outln!("  the runner exited with {}", o.exit_code)?;
    }
    for f in &o.files {
        outln!("  {}", f.display())?;
    }
    Ok(())
}
