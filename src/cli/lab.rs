//! `k8s-boot lab up|build|down|status`: throwaway local test hosts.

use super::args::{LabAction, LabBuildArgs};
use super::console::{errln, outln};
use super::exit::UsageError;
use super::fetch;
use super::output::yes_no;
use anyhow::Result;
use k8s_boot::lab::{self, binaries, build, release};
use std::path::Path;

pub fn run(action: LabAction) -> Result<i32> {
    match action {
        LabAction::Up { hosts, build } => up(hosts, build),
        LabAction::Build(build) => lab_build(&build).map(|()| 0),
        LabAction::Down { dir } => down(&dir),
        LabAction::Status { dir } => status(&dir),
    }
}

/// Builds (or takes from the cache) every binary and image the lab needs into
/// `<dir>/binaries`, or with `--fetch` downloads them, printing progress per step.
fn lab_build(args: &LabBuildArgs) -> Result<()> {
    let progress = &mut |line: String| errln!("{line}");
    let prepared = if args.fetch {
        if args.build_cache.is_some() {
            return Err(
                UsageError("--build-cache is for building; --fetch builds nothing".into()).into(),
            );
        }
        let mut opts = release::fetch_options(&args.dir, &args.version, args.conformance)?;
        fetch::apply_sources(&args.sources, &mut opts)?;
        release::fetch(&opts, progress)?
    } else {
        if args.sources.given() {
            return Err(UsageError(
                "--mirror, --registry-mirror and --image-digest say where --fetch downloads from; \
                 without --fetch everything is built"
                    .into(),
            )
            .into());
        }
        let cache = args
            .build_cache
            .clone()
            .unwrap_or_else(build::default_cache);
        binaries::prepare(&args.dir, &args.version, &cache, args.conformance, progress)?
    };
    errln!(
        "lab binaries and images ready in {} ({:.0} s)",
        prepared.dir.display(),
        prepared.elapsed.as_secs_f64()
    );
    Ok(())
}

fn up(hosts: usize, build: LabBuildArgs) -> Result<i32> {
    lab_build(&build)?;
    let report = lab::up(&lab::LabOptions {
        dir: build.dir,
        hosts,
        kubernetes_version: build.version,
        cache_dir: None,
    })?;
    for h in &report.hosts {
        let note = if report.already_running.contains(&h.name) {
            " (already running)"
        } else {
            ""
        };
        outln!("{:<6} {}{note}", h.name, h.address)?;
    }
    if let Some(filled) = &report.registry {
        outln!(
            "lab registry on {}:{}: {} image(s), {} blob(s) uploaded ({})",
            report.hosts[0].address,
            lab::registry::PORT,
            filled.images,
            filled.blobs,
            k8s_boot::fetch::human(filled.bytes)
        )?;
    }
    outln!(
        "{} lab host(s) up in {:.1} s; inventory: {}",
        report.hosts.len(),
        report.elapsed.as_secs_f64(),
        report.inventory.display()
    )?;
    Ok(0)
}

fn down(dir: &Path) -> Result<i32> {
    let stopped = lab::down(dir)?;
    outln!("{stopped} lab host(s) stopped and removed")?;
    Ok(0)
}

/// 1 when there is no lab or a host is not running or not answering SSH.
fn status(dir: &Path) -> Result<i32> {
    let hosts = lab::status_detailed(dir)?;
    if hosts.is_empty() {
        outln!("no lab in {}", dir.display())?;
        return Ok(1);
    }
    let mut all = true;
    for h in &hosts {
        outln!(
            "{:<6} {:<15} running {:<3} ssh {}",
            h.host.name,
            h.host.address,
            yes_no(h.running),
            yes_no(h.ssh)
        )?;
        all &= h.running && h.ssh;
    }
    Ok(if all { 0 } else { 1 })
}
