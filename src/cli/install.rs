//! `k8s-boot install` and `k8s-boot deploy` (install with the phases lb, cluster,
//! workloads): the PKI step, the run with its progress display, the report.

use super::args::{selection, DeployArgs, InstallArgs, PkiArgs};
use super::certs::ensure_pki;
use super::console::{errln, outln, StdoutError};
use super::inventory::load;
use super::output::print_json;
use super::progress::{InstallProgress, Mode};
use anyhow::{Context, Result};
use k8s_boot::install::{self, PhaseResult, Report};
use k8s_boot::inventory::Cluster;
use k8s_boot::pki::{self, Action, Pki};
use k8s_boot::render;
use std::path::{Path, PathBuf};

/// The admin kubeconfig, in the plan's cluster files and in the PKI directory after `install`.
use k8s_boot::pki::ADMIN_KUBECONFIG;

/// What a run needs beyond the inventory.
struct Run<'a> {
    pki: &'a PkiArgs,
    templates: Option<PathBuf>,
    options: install::Options,
    quiet: bool,
    json: bool,
}

pub fn install(args: InstallArgs, quiet: bool) -> Result<i32> {
    let options = install::Options {
        phases: install::parse_phases(&selection("--phases", args.phases.as_deref())?)?,
        hosts: selection("--hosts", args.hosts.as_deref())?,
        dry_run: args.dry_run,
        parallelism: args.parallelism,
        accept_new_host_keys: args.accept_new_host_keys,
        ready_timeout: args.ready.duration(),
        ..Default::default()
    };
    run(Run {
        pki: &args.pki,
        templates: args.templates.templates,
        options,
        quiet,
        json: args.output.is_json(),
    })
}

pub fn deploy(args: DeployArgs, quiet: bool) -> Result<i32> {
    let options = install::Options {
        phases: install::parse_phases(&["lb", "cluster", "workloads"])?,
        accept_new_host_keys: args.accept_new_host_keys,
        ready_timeout: args.ready.duration(),
        ..Default::default()
    };
    run(Run {
        pki: &args.pki,
        templates: args.templates.templates,
        options,
        quiet,
        json: false,
    })
}

/// 1 when a host failed a phase.
fn run(args: Run) -> Result<i32> {
    let pki_dir = args.pki.dir();
    let cluster = load(args.pki.inventory())?;
    // Bad input (a host or override name) is refused before the PKI step writes anything.
    install::require_known_hosts(&cluster, &args.options.hosts)?;
    let plan = plan_with_pki(
        &cluster,
        &pki_dir,
        args.templates.as_deref(),
        args.options.dry_run,
        args.quiet,
    )?;
    let progress = InstallProgress::new(
        &cluster,
        &args.options,
        Mode::detect(args.quiet || args.json),
    );
    let report = install::install(&cluster, &plan, &args.options, &progress)?;
    progress.finish();
    if !args.options.dry_run {
        write_local_kubeconfigs(&plan, &pki_dir, args.quiet || args.json)?;
    }
    if args.json {
        print_json("install", &report)?;
    } else if !args.quiet || report.failed() {
        print_report(&report)?;
    } else {
        outln!("{}", summary(&report))?;
    }
    Ok(if report.failed() { 1 } else { 0 })
}

/// The plan of `cluster` with its PKI: ensured (created or re-issued where needed), or for a
/// dry run computed in memory with what would change listed on stderr.
pub(super) fn plan_with_pki(
    cluster: &Cluster,
    pki_dir: &Path,
    templates: Option<&Path>,
    dry_run: bool,
    quiet: bool,
) -> Result<render::Plan> {
    let templates = render::Templates::load(templates)?;
    let pki = if dry_run {
        dry_run_pki(cluster, pki_dir, quiet)?
    } else {
        ensure_pki(cluster, pki_dir, quiet)?
    };
    Ok(render::plan(cluster, &pki, &templates)?)
}

/// kubectl on this machine: the admin kubeconfig (via the API endpoint), and the
/// super-admin's for emergencies, owner-only, next to the certificates they are made of.
fn write_local_kubeconfigs(plan: &render::Plan, pki_dir: &Path, silent: bool) -> Result<()> {
    for (name, _) in render::rules::CLUSTER_KUBECONFIGS {
        let Some(file) = plan.cluster_files.iter().find(|f| f.path == *name) else {
            continue;
        };
        let path = pki_dir.join(name);
        k8s_boot::fsutil::write_atomic(&path, &file.bytes, 0o600)
            .with_context(|| format!("writing {}", path.display()))?;
        if !silent && *name == ADMIN_KUBECONFIG {
            errln!("admin kubeconfig: {}", path.display());
        }
    }
    Ok(())
}

/// The PKI of a dry run: what the real run's PKI step would create or re-issue is computed
/// in memory and listed on stderr; nothing is written (the directory is not even created).
fn dry_run_pki(cluster: &Cluster, pki_dir: &Path, quiet: bool) -> Result<Pki> {
    let pki = Pki::dry_run(pki_dir)
        .hold_lock(k8s_boot::fsutil::LockMode::Shared)
        .with_context(|| format!("PKI in {}", pki_dir.display()))?;
    let report = pki
        .ensure(cluster, pki::Options::default())
        .with_context(|| format!("PKI in {}", pki_dir.display()))?;
    if report.changed() > 0 && !quiet {
        for (file, action) in &report.actions {
            match action {
                Action::Kept => {}
                Action::Created => errln!("pki: would create  {file}"),
                Action::Reissued(why) => errln!("pki: would reissue {file} ({why})"),
            }
        }
        let created = report
            .actions
            .iter()
            .filter(|(_, a)| *a == Action::Created)
            .count();
        errln!(
            "pki: dry run, nothing written: the real run would create {created} and re-issue {} file(s) in {}",
            report.changed() - created,
            pki_dir.display()
        );
    }
    Ok(pki)
}

/// The table of hosts by phases, each failure and (in a dry run) each change, the summary.
fn print_report(report: &Report) -> Result<(), StdoutError> {
    let width = report
        .hosts
        .iter()
        .map(|h| h.host.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let names: Vec<&str> = report
        .phases
        .iter()
        .map(|p| install::phases::get(*p).name)
        .collect();
    let mut header = format!("{:width$}", "host");
    for n in &names {
        header += &format!("  {n:<w$}", w = n.len().max(7));
    }
    outln!("{header}")?;
    for h in &report.hosts {
        let mut row = format!("{:width$}", h.host);
        for (p, n) in report.phases.iter().zip(&names) {
            let cell = match h.phases.get(p) {
                None => "-",
                Some(PhaseResult::Changed { .. }) => "changed",
                Some(PhaseResult::Unchanged) => "ok",
                Some(PhaseResult::Failed { .. }) => "FAILED",
                Some(PhaseResult::Skipped) => "skipped",
            };
            row += &format!("  {cell:<w$}", w = n.len().max(7));
        }
        outln!("{row}")?;
    }
    for h in &report.hosts {
        for (p, r) in &h.phases {
            let phase = install::phases::get(*p).name;
            match r {
                PhaseResult::Failed { error } => outln!("{}: {phase} failed: {error}", h.host)?,
                PhaseResult::Changed { changes } if report.dry_run => {
                    for c in changes {
                        outln!("{}: {phase}: would {c}", h.host)?;
                    }
                }
                _ => {}
            }
        }
    }
    outln!("{}", summary(report))
}

/// The last line of the install report: `install in 12.3 s: 4 host phase(s) changed`.
fn summary(report: &Report) -> String {
    format!(
        "{} in {:.1} s: {} host phase(s) {}{}",
        if report.dry_run { "dry run" } else { "install" },
        report.elapsed_ms as f64 / 1000.0,
        report.changed(),
        if report.dry_run {
            "would change"
        } else {
            "changed"
        },
        if report.failed() {
            "; some hosts FAILED"
        } else {
            ""
        }
    )
}
