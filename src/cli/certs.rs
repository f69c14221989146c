//! `k8s-boot certs`, `certs check` and `certs renew`, and the PKI step that `render` and
//! `install` run first.

use super::args::{pki_dir, CertsAction, CertsArgs, PkiArgs};
use super::console::{errln, outln, StdoutError};
use super::inventory::load;
use super::output::{or_dash, print_json};
use anyhow::{Context, Result};
use k8s_boot::fsutil::LockMode;
use k8s_boot::inventory::Cluster;
use k8s_boot::pki::{self, Action, Pki, Tidied};
use k8s_boot::shown::Shown;
use std::path::Path;

pub fn run(args: CertsArgs, quiet: bool) -> Result<i32> {
    match (args.action, args.inventory) {
        (Some(CertsAction::Check { pki, output }), _) => check(&pki, output.is_json()),
        (Some(CertsAction::Renew(a)), _) => ensure(
            a.inventory(),
            &a.dir(),
            pki::Options {
                renew_leaves: true,
                rotate_cas: false,
            },
            quiet,
        ),
        (None, Some(inventory)) => ensure(
            &inventory,
            &pki_dir(&inventory, args.pki_dir),
            pki::Options {
                rotate_cas: args.rotate_cas,
                renew_leaves: false,
            },
            quiet,
        ),
        (None, None) => unreachable!("clap requires --inventory"),
    }
}

/// `certs` and `certs renew`. With `quiet`, only the summary line is printed (not each
/// created or re-issued file).
fn ensure(inventory: &Path, pki_dir: &Path, opts: pki::Options, quiet: bool) -> Result<i32> {
    let cluster = load(inventory)?;
    let pki = Pki::new(pki_dir)
        .hold_lock(LockMode::Exclusive)
        .with_context(|| format!("PKI in {}", pki_dir.display()))?;
    warn_about(&pki);
    let report = pki
        .ensure(&cluster, opts)
        .with_context(|| format!("PKI in {}", pki_dir.display()))?;
    if opts.rotate_cas {
        errln!(
            "warning: every CA in {} was replaced: every leaf certificate is re-issued and every host must receive the new files",
            pki_dir.display()
        );
    }
    print_tidied(&report, "");
    for (file, action) in report.actions.iter().filter(|_| !quiet) {
        match action {
            Action::Kept => {}
            Action::Created => outln!("created  {file}")?,
            Action::Reissued(why) => outln!("reissued {file} ({why})")?,
        }
    }
    outln!(
        "{} file(s) in {}: {} changed, {} kept",
        report.actions.len(),
        pki_dir.display(),
        report.changed(),
        report.actions.len() - report.changed()
    )?;
    Ok(0)
}

/// `certs check`: the expiry table (or JSON); 1 when any row is a problem.
fn check(args: &PkiArgs, json: bool) -> Result<i32> {
    let pki_dir = args.dir();
    let cluster = load(args.inventory())?;
    let pki = Pki::new(&pki_dir);
    warn_about(&pki);
    let rows = pki
        .check(&cluster)
        .with_context(|| format!("PKI in {}", pki_dir.display()))?;
    let report = pki::CheckReport::new(&pki_dir, &rows);
    let failures = report.problems;
    if json {
        print_json("certs check", &report)?;
        return Ok(if failures > 0 { 1 } else { 0 });
    }
    print_check_table(&rows)?;
    if failures > 0 {
        errln!(
            "{failures} problem(s) in {}; run `k8s-boot certs` to create or re-issue certificates (it does not change key modes or an existing encryption.key)",
            pki_dir.display()
        );
        return Ok(1);
    }
    Ok(0)
}

fn print_check_table(rows: &[pki::CheckRow]) -> Result<(), StdoutError> {
    let width = rows.iter().map(|r| r.file.len()).max().unwrap_or(4).max(4);
    outln!(
        "{:<width$}  {:<10}  {:>9}  {:<28}  subject / issuer",
        "file",
        "not-after",
        "days-left",
        "status"
    )?;
    for r in rows {
        let days = r
            .days_left
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into());
        outln!(
            "{:<width$}  {:<10}  {:>9}  {:<28}  {} / {}",
            r.file,
            or_dash(r.not_after.as_deref()),
            days,
            // One row per file: a value read from a certificate cannot break the line.
            Shown(&r.status.to_string()).to_string(),
            Shown(or_dash(r.subject.as_deref())),
            Shown(or_dash(r.issuer.as_deref()))
        )?;
    }
    Ok(())
}

/// Warnings about the PKI directory, on stderr (also with `--quiet`: they are about safety).
pub fn warn_about(pki: &Pki) {
    for warning in pki.warnings() {
        errln!("warning: {warning}");
    }
}

/// What `ensure` did with the temporary files of a killed run, on stderr (always: it is a
/// repair), each line after `prefix`.
fn print_tidied(report: &pki::Report, prefix: &str) {
    for (file, tidied) in &report.tidied {
        match tidied {
            Tidied::Completed => {
                errln!("{prefix}completed {file}, left half-written by an interrupted run")
            }
            Tidied::Removed => {
                errln!("{prefix}removed {file}, a temporary file of an interrupted run")
            }
        }
    }
}

/// The PKI every plan needs, created or brought up to date first (as `certs` does); the
/// returned PKI holds the directory's lock, so the plan reads what this step left.
pub fn ensure_pki(cluster: &Cluster, pki_dir: &Path, quiet: bool) -> Result<Pki> {
    let pki = Pki::new(pki_dir)
        .hold_lock(LockMode::Exclusive)
        .with_context(|| format!("PKI in {}", pki_dir.display()))?;
    warn_about(&pki);
    let report = pki
        .ensure(cluster, pki::Options::default())
        .with_context(|| format!("PKI in {}", pki_dir.display()))?;
    print_tidied(&report, "pki: ");
    if report.changed() > 0 && !quiet {
        errln!(
            "pki: {} file(s) created or re-issued in {}",
            report.changed(),
            pki_dir.display()
        );
    }
    Ok(pki)
}
