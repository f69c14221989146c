//! Files onto a host: compared by content with what it has (one round trip), only what
//! differs written, a file that was there before k8s-boot kept as a backup, and the host's
//! state file saved after each phase.

use super::change::Change;
use super::executor::Executor;
use super::phases::{self, PhaseId};
use super::remote::{FileToPut, KnownFiles};
use super::state::{HostState, BACKUP_SUFFIX, STATE_DIR, STATE_FILE};
use super::steps::HostCtx;
use super::{HostWork, InstallError, Options, Purpose, StepError};
use crate::catalog::{self, Binary, Component, BIN_DIR, CNI_BIN_DIR};
use crate::inventory::{Cluster, Host};
use crate::ssh::{self, plan_upload, Source, Upload};
use std::collections::BTreeSet;
use std::path::Path;

/// Owner of everything k8s-boot installs.
pub const ROOT: &str = "root:root";

/// The release binaries of the components `host` runs.
pub fn host_binaries<'a>(
    cluster: &'a Cluster,
    host: &'a Host,
) -> impl Iterator<Item = (&'static Component, &'static Binary)> + use<'a> {
    catalog::binaries().filter(move |(c, _)| c.runs_on(cluster, host))
}

/// Every binary the selected phases need on the selected hosts must be present and
/// executable, before any host is touched; lists all that are missing.
pub fn check_binaries(
    cluster: &Cluster,
    dir: &Path,
    selected: &[PhaseId],
    opts: &Options,
) -> Result<(), InstallError> {
    use std::os::unix::fs::PermissionsExt;
    let mut missing = BTreeSet::new();
    let stage = opts.purpose == Purpose::UpgradeStage;
    for (component, b) in catalog::binaries().filter(|(c, _)| stage || selected.contains(&c.phase))
    {
        let needed = cluster
            .inventory
            .hosts
            .iter()
            .any(|h| opts.selects(h) && component.runs_on(cluster, h));
        let ok = std::fs::metadata(dir.join(b.file))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        if needed && !ok {
            missing.insert(b.file);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(InstallError::MissingBinaries {
        dir: dir.to_path_buf(),
        missing: missing.into_iter().collect::<Vec<_>>().join(", "),
    })
}

pub use super::digests::LocalBinaries;

/// What the host's state recorded of `paths` when it last wrote or hashed them (stamp and
/// sha256): a file whose size and mtime still match is not hashed on the host again.
fn known_files(state: &HostState, paths: &[&str]) -> KnownFiles {
    paths
        .iter()
        .filter_map(|p| {
            let stamp = state.stamps.get(*p)?;
            let sha = state.files.get(*p)?;
            Some((p.to_string(), (stamp.clone(), sha.clone())))
        })
        .collect()
}

/// Writes those of `files` that differ from the host; returns the paths whose content it
/// wrote (or, dry, would write), each file's restarts owed in `state` as it is written. A
/// mode or owner fix is a [`Change::Mode`], not listed and restarting nothing.
pub fn write_files(
    files: &[FileToPut],
    state: &mut HostState,
    ex: &mut Executor,
) -> Result<Vec<String>, StepError> {
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let remote = ex
        .read()
        .stat_files_known(&paths, &known_files(state, &paths))?;
    let mut written = Vec::new();
    let mut touched = Vec::new();
    for file in files {
        let have = remote.get(&file.path);
        let path = &file.path;
        let change = match plan_upload(&file.sha256, file.mode, file.owner, have) {
            Upload::Unchanged => {
                state.files.insert(path.clone(), file.sha256.clone());
                if let Some(r) = have {
                    state.stamps.insert(path.clone(), r.stamp.clone());
                }
                continue;
            }
            Upload::Metadata => Change::Mode(path.clone()),
            Upload::Written => Change::Write(path.clone()),
        };
        // Keep what was there before k8s-boot first replaced it (e.g. the distro nginx.conf).
        let backup = (have.is_some()
            && !state.files.contains_key(path)
            && !state.backups.contains_key(path))
        .then(|| format!("{path}{BACKUP_SUFFIX}"));
        if change.written().is_some() {
            written.push(path.clone());
        }
        // The state records a file once it is on the host (so never in a dry run).
        ex.change(change, |r| {
            if let Some(backup) = backup {
                r.run(&format!(
                    "cp -p {} {}",
                    ssh::shell_quote(path),
                    ssh::shell_quote(&backup)
                ))?;
                state.backups.insert(path.clone(), backup);
            }
            r.put(file, have)?;
            state.files.insert(path.clone(), file.sha256.clone());
            touched.push(path.as_str());
            Ok(())
        })?;
        if written.last() == Some(path) {
            state.pending_restarts.extend(file.restarts.iter().cloned());
        }
    }
    if let Some(stamps) = ex.effect(|r| Ok(r.stamps(&touched)?))? {
        state.stamps.extend(stamps);
    }
    Ok(written)
}

/// The plan's files of `phase`; a written file marks the services it belongs to for restart.
pub fn write_phase_files(
    cx: &HostCtx,
    phase: PhaseId,
    work: &mut HostWork,
    ex: &mut Executor,
) -> Result<Vec<String>, StepError> {
    let mine: Vec<_> = cx
        .plan
        .files
        .iter()
        .filter(|f| phases::phase_of_file(&f.path, &f.restarts) == phase)
        .collect();
    let puts: Vec<FileToPut> = mine
        .iter()
        .map(|f| {
            Ok(FileToPut {
                path: f.path.clone(),
                source: Source::Bytes(&f.bytes),
                sha256: f.sha256.clone(),
                mode: f.mode,
                owner: f.owner,
                // nginx validates its new configuration before it replaces the old one.
                check: f
                    .path
                    .starts_with("/etc/nginx/")
                    .then_some("nginx -t -q -c {}"),
                restarts: if bootstrap_only_change(f, &work.state, ex.read())? {
                    Vec::new()
                } else {
                    f.restarts.clone()
                },
            })
        })
        .collect::<Result<_, StepError>>()?;
    let written = write_files(&puts, &mut work.state, ex).inspect_err(|_| {
        // What was written before the failure owes its restarts: keep that on the host.
        let _ = save_state(&work.state, ex);
    })?;
    retire_services(cx, phase, &mut work.state, ex)?;
    remove_unplanned(cx, phase, &mut work.state, ex)?;
    Ok(written)
}

/// Stops and disables the services of `phase` that an earlier run started on the host and
/// the plan no longer has (switched off in the inventory, or a role the host lost); their
/// files go next ([`remove_unplanned`]).
fn retire_services(
    cx: &HostCtx,
    phase: PhaseId,
    state: &mut HostState,
    ex: &mut Executor,
) -> Result<(), StepError> {
    for component in catalog::of_phase(phase) {
        let service = component.service;
        if !state.services.contains(service) || cx.plan.services.iter().any(|s| s == service) {
            continue;
        }
        ex.change(Change::Stop(service.to_string()), |r| {
            r.run(&format!("systemctl disable --now {service}"))?;
            state.services.remove(service);
            state.pending_restarts.remove(service);
            state.versions.remove(service);
            Ok(())
        })?;
    }
    Ok(())
}

/// Whether the host's copy of `f` differs from the plan only in settings its service reads
/// at bootstrap ([`catalog::BOOTSTRAP_ONLY`]): then the new content restarts nothing. Reads
/// the host's copy only for such a file whose recorded content is not the plan's.
fn bootstrap_only_change(
    f: &crate::render::PlannedFile,
    state: &HostState,
    remote: &dyn super::remote::Remote,
) -> Result<bool, StepError> {
    let listed = catalog::BOOTSTRAP_ONLY.iter().any(|(p, _)| *p == f.path);
    if !listed || state.files.get(&f.path) == Some(&f.sha256) {
        return Ok(false);
    }
    let out = remote.exec(&format!("cat {} 2>/dev/null", ssh::shell_quote(&f.path)))?;
    Ok(out.code == 0
        && out.stdout.as_bytes() != f.bytes.as_slice()
        && catalog::differs_only_in_bootstrap_settings(&f.path, out.stdout.as_bytes(), &f.bytes))
}

/// Removes the files of `phase` that an earlier run wrote and the plan no longer holds: those
/// in one of [`OWNED_DIRS`](crate::render::rules::OWNED_DIRS), and those of the phase's
/// components (a service retired by [`retire_services`]).
fn remove_unplanned(
    cx: &HostCtx,
    phase: PhaseId,
    state: &mut HostState,
    ex: &mut Executor,
) -> Result<(), StepError> {
    let component_file =
        |path: &str| catalog::of_phase(phase).any(|c| c.templates.iter().any(|t| t.target == path));
    let unplanned: Vec<String> = state
        .files
        .keys()
        .filter(|path| {
            let owned = crate::render::rules::OWNED_DIRS
                .iter()
                .any(|dir| path.starts_with(dir))
                && phases::phase_of_file(path, &[]) == phase;
            (owned || component_file(path)) && !cx.plan.files.iter().any(|f| &f.path == *path)
        })
        .cloned()
        .collect();
    let units = unplanned
        .iter()
        .any(|p| p.ends_with(".service") || p.ends_with(".timer"));
    for path in unplanned {
        let mut command = format!("rm -f {}", ssh::shell_quote(&path));
        // In an owned directory, a registry's directory under certs.d goes with its last
        // file (never a directory such as /etc/systemd/system).
        if !component_file(&path) {
            let dir = Path::new(&path).parent().unwrap_or(Path::new("/"));
            command += &format!(
                " && rmdir --ignore-fail-on-non-empty {}",
                ssh::shell_quote(&dir.to_string_lossy())
            );
        }
        ex.change(Change::Remove(path.clone()), |r| {
            r.run(&command)?;
            state.files.remove(&path);
            state.stamps.remove(&path);
            Ok(())
        })?;
    }
    if units {
        ex.effect(|r| Ok(r.run("systemctl daemon-reload").map(drop)?))?;
    }
    Ok(())
}

/// Suffix of a binary staged beside its target by an upgrade's first step: installed later
/// by a rename, when its host's turn comes.
pub const STAGED_SUFFIX: &str = ".k8s-boot-staged";

/// The binaries of the host's components in the selected phases.
/// A copy staged beside the target with the wanted content is renamed into place instead
/// of sent again. With [`Purpose::UpgradeStage`] the binaries are only staged.
pub fn install_binaries(
    cx: &HostCtx,
    work: &mut HostWork,
    ex: &mut Executor,
) -> Result<(), StepError> {
    let stage = cx.run.opts.purpose == Purpose::UpgradeStage;
    let mut wanted = Vec::new();
    // Staging takes the binaries of every phase; installing, those of the selected ones.
    let wanted_phase = |phase| stage || cx.run.selected(phase);
    for (component, b) in
        host_binaries(cx.run.cluster, cx.host).filter(|(c, _)| wanted_phase(c.phase))
    {
        let local = cx.run.binaries.dir.join(b.file);
        let sha256 = cx.run.binaries.sha256(&local)?;
        wanted.push((local, b.target, sha256, component.phase));
    }
    if wanted.is_empty() {
        return Ok(());
    }
    ex.effect(|r| Ok(r.run(&format!("mkdir -p {BIN_DIR} {CNI_BIN_DIR}"))?))?;
    let staged_path = |target: &str| format!("{target}{STAGED_SUFFIX}");
    // What the host has at each target and staged beside it: one round trip.
    let mut paths: Vec<String> = Vec::new();
    for (_, target, _, _) in &wanted {
        paths.push(target.to_string());
        paths.push(staged_path(target));
    }
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let have = ex
        .read()
        .stat_files_known(&paths, &known_files(&work.state, &paths))?;
    // A new binary restarts its component and the other services of its phase, which share
    // its binaries' versions.
    let services_of = |phase: PhaseId| -> Vec<String> {
        phases::get(phase)
            .components()
            .map(|c| c.service.to_string())
            .collect()
    };
    let mut puts = Vec::new();
    for (local, target, sha256, phase) in &wanted {
        let installed = have.get(*target).is_some_and(|f| &f.sha256 == sha256);
        let staged = staged_path(target);
        if stage {
            // Staging what is installed already would only waste a copy; a staged copy
            // restarts nothing yet.
            if !installed {
                puts.push((local, staged, sha256, Vec::new()));
            }
            continue;
        }
        if !installed && have.get(&staged).is_some_and(|f| &f.sha256 == sha256) {
            let (from, to) = (ssh::shell_quote(&staged), ssh::shell_quote(target));
            let state = &mut work.state;
            ex.change(Change::Write(target.to_string()), |r| {
                r.run(&format!("chmod 755 {from} && mv -f {from} {to}"))?;
                state.files.remove(&staged);
                state.stamps.remove(&staged);
                state.files.insert(target.to_string(), sha256.clone());
                Ok(())
            })?;
            work.state.pending_restarts.extend(services_of(*phase));
            continue;
        }
        puts.push((local, target.to_string(), sha256, services_of(*phase)));
    }
    let puts: Vec<FileToPut> = puts
        .into_iter()
        .map(|(local, path, sha256, restarts)| FileToPut {
            path,
            source: Source::File(local),
            sha256: sha256.clone(),
            // A staged copy cannot be run until it is renamed into place.
            mode: if stage { 0o600 } else { 0o755 },
            owner: ROOT,
            check: None,
            restarts,
        })
        .collect();
    write_files(&puts, &mut work.state, ex).inspect_err(|_| {
        let _ = save_state(&work.state, ex);
    })?;
    Ok(())
}

/// Saves what this run installed on the host, where `reset` and the next run find it.
pub fn save_state(state: &HostState, ex: &mut Executor) -> Result<(), StepError> {
    ex.effect(|r| {
        r.run(&format!("mkdir -p {STATE_DIR} && chmod 700 {STATE_DIR}"))?;
        r.upload(Source::Bytes(&state.to_json()), STATE_FILE, 0o600, ROOT)?;
        Ok(())
    })?;
    Ok(())
}
