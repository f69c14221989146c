//! `k8s-boot backup` and `k8s-boot restore`: the snapshot and its manifest on this machine,
//! and a cluster put back to one (a confirmation, the checks, the steps, the report).

use super::args::{BackupArgs, RestoreArgs};
use super::console::{self, errln, outln, StdoutError};
use super::exit::UsageError;
use super::inventory::load;
use super::operation::{print_outcome, StepLines};
use super::output::print_json;
use anyhow::{Context, Result};
use k8s_boot::backup::{self, restore};
use k8s_boot::fsutil::LockMode;
use k8s_boot::pki::Pki;
use std::io::IsTerminal;

/// The PKI, read under a shared lock (a backup and a restore only read it).
fn read_pki(dir: &std::path::Path) -> Result<Pki> {
    Pki::new(dir)
        .hold_lock(LockMode::Shared)
        .with_context(|| format!("PKI in {}", dir.display()))
}

pub fn backup(args: &BackupArgs, quiet: bool) -> Result<i32> {
    let cluster = load(args.pki.inventory())?;
    let pki = read_pki(&args.pki.dir())?;
    let opts = backup::Options {
        dir: args
            .dir
            .clone()
            .unwrap_or_else(|| backup::default_dir(args.pki.inventory())),
        accept_new_host_keys: args.accept_new_host_keys,
        timeouts: Default::default(),
    };
    let made = backup::backup(&cluster, &pki, &opts)?;
    if args.output.is_json() {
        print_json("backup", &made)?;
        return Ok(0);
    }
    let m = &made.manifest;
    if !quiet {
        outln!(
            "snapshot of {} (etcd {}, revision {}, {} keys, hash {}) taken from {}",
            m.cluster,
            m.etcd_version,
            m.revision,
            m.total_keys,
            m.hash,
            m.taken_from
        )?;
        outln!(
            "secrets in it need the encryption key {} ({}; a copy kept as {})",
            m.encryption_key.fingerprint,
            m.encryption_key.file.display(),
            m.encryption_key.kept.display()
        )?;
    }
    outln!(
        "backup: {} ({} bytes, sha256 {}) and {} in {:.1} s",
        made.snapshot.display(),
        m.size,
        m.sha256,
        made.manifest_file.display(),
        made.elapsed_ms as f64 / 1000.0
    )?;
    Ok(0)
}

/// 1 when a step failed or the prompt was not answered `yes`.
pub fn restore(args: RestoreArgs, quiet: bool) -> Result<i32> {
    let json = args.output.is_json();
    let cluster = load(args.pki.inventory())?;
    let pki = read_pki(&args.pki.dir())?;
    // Every check first: a refused snapshot asks nothing.
    let manifest = restore::check(&cluster, &pki, &args.snapshot, args.force)?;
    drop(pki);
    if !args.dry_run && !args.yes && !confirmed(&manifest.created, &cluster.inventory.cluster.name)?
    {
        errln!("nothing changed");
        return Ok(1);
    }
    let opts = restore::Options {
        dry_run: args.dry_run,
        accept_new_host_keys: args.accept_new_host_keys,
        ready_timeout: args.ready.duration(),
        ..Default::default()
    };
    let observer = StepLines::new(args.dry_run, quiet || json);
    let report = restore::restore(&cluster, &args.snapshot, manifest, &opts, &observer)?;
    if json {
        print_json("restore", &report)?;
    } else {
        print_report(&report, quiet)?;
    }
    Ok(if report.incomplete() { 1 } else { 0 })
}

/// Asks on the terminal; without one, the missing `--yes` is a usage error.
fn confirmed(created: &str, cluster: &str) -> Result<bool> {
    let what = format!(
        "restore puts etcd of {cluster} back to {created}: every change since is lost, and the \
         API is down while it runs"
    );
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(format!("{what}: confirm with --yes")).into());
    }
    console::stderr_prompt(&format!("{what}. Type `yes`: "));
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

fn print_report(report: &restore::Report, quiet: bool) -> Result<(), StdoutError> {
    let what = format!(
        "the restore of {} ({})",
        report.snapshot.display(),
        report.manifest.created
    );
    print_outcome(
        &what,
        &report.steps,
        report.dry_run,
        report.elapsed_ms,
        report.incomplete(),
        quiet,
    )
}
