//! What each phase does on a host, as one type per kind of phase with one lifecycle:
//! `apply` brings the host to the plan through the executor (which a dry run makes record
//! instead of act). Which hosts a phase applies to is its row in [`super::phases::PHASES`].

use super::change::Change;
use super::executor::Executor;
use super::phases::{self, PhaseId};
use super::{etcd_member, files, images, manifests, preflight, services, HostWork, Run, StepError};
use crate::inventory::{Host, Role};
use crate::render::HostPlan;

/// The host a step works on, with the run it belongs to.
pub struct HostCtx<'a> {
    pub run: &'a Run<'a>,
    pub host: &'a Host,
    pub plan: &'a HostPlan,
}

pub trait Step: Sync {
    fn apply(&self, cx: &HostCtx, work: &mut HostWork, ex: &mut Executor) -> Result<(), StepError>;
}

/// The step of every phase but `connect` (which opens the executor's host).
pub fn for_phase(phase: PhaseId) -> &'static dyn Step {
    match phase {
        PhaseId::Connect => unreachable!("connect opens the remote; it is no step"),
        PhaseId::Preflight => &Preflight,
        PhaseId::Prepare => &Prepare,
        PhaseId::Pki => &Files(PhaseId::Pki),
        PhaseId::Binaries => &Binaries,
        PhaseId::Etcd => &Components(PhaseId::Etcd),
        PhaseId::Lb => &Components(PhaseId::Lb),
        PhaseId::ControlPlane => &Components(PhaseId::ControlPlane),
        PhaseId::Runtime => &Components(PhaseId::Runtime),
        PhaseId::Node => &Components(PhaseId::Node),
        PhaseId::Cluster => &Manifests { workloads: false },
        PhaseId::Workloads => &Manifests { workloads: true },
        PhaseId::Verify => &Verify,
    }
}

/// Read-only checks; every failure of the host is listed at once.
struct Preflight;

impl Step for Preflight {
    fn apply(&self, cx: &HostCtx, work: &mut HostWork, ex: &mut Executor) -> Result<(), StepError> {
        preflight::check(cx, &work.state, ex.read())
    }
}

/// The plan's files of one phase (PKI files, for one).
struct Files(PhaseId);

impl Step for Files {
    fn apply(&self, cx: &HostCtx, work: &mut HostWork, ex: &mut Executor) -> Result<(), StepError> {
        files::write_phase_files(cx, self.0, work, ex)?;
        files::save_state(&work.state, ex)
    }
}

/// The system users of the host's components in the selected phases (etcd's), where the
/// host has none of that name yet.
fn create_users(cx: &HostCtx, work: &mut HostWork, ex: &mut Executor) -> Result<(), StepError> {
    let users: std::collections::BTreeSet<&str> = cx
        .run
        .components_on(cx.host)
        .filter_map(|c| c.user)
        .collect();
    for user in users {
        if ex
            .read()
            .exec(&format!("id -u {user} >/dev/null 2>&1"))?
            .code
            == 0
        {
            continue;
        }
        ex.change(Change::CreateUser(user.to_string()), |r| {
            r.run(&format!(
                "useradd --system --user-group --no-create-home --home-dir /nonexistent \
                 --shell /usr/sbin/nologin {user}"
            ))?;
            work.state.created_users.insert(user.to_string());
            Ok(())
        })?;
    }
    Ok(())
}

/// Host-wide files (sysctl, kernel modules, CNI config, admin kubeconfig), applied at once,
/// and the data directories of the roles selected.
struct Prepare;

impl Step for Prepare {
    fn apply(&self, cx: &HostCtx, work: &mut HostWork, ex: &mut Executor) -> Result<(), StepError> {
        // File directories are created by the uploads; these are the data directories:
        // etcd's store, its scheduled snapshots and the apiserver's audit log. `reset` keeps
        // them unless asked.
        create_users(cx, work, ex)?;
        let mut data_dirs = Vec::new();
        if cx.host.has(Role::Etcd) && cx.run.selected(PhaseId::Etcd) {
            data_dirs.push(("/var/lib/etcd", 0o700));
            if cx.run.cluster.inventory.etcd.backup.enabled {
                data_dirs.push((crate::backup::SCHEDULED_DIR, 0o700));
            }
        }
        if cx.host.has(Role::ControlPlane) && cx.run.selected(PhaseId::ControlPlane) {
            data_dirs.push(("/var/log/kubernetes", 0o750));
        }
        for (dir, mode) in data_dirs {
            if ex
                .effect(|r| Ok(r.run(&format!("mkdir -p {dir} && chmod {mode:o} {dir}"))?))?
                .is_some()
            {
                work.state.data_dirs.insert(dir.to_string());
            }
        }
        let written = files::write_phase_files(cx, PhaseId::Prepare, work, ex)?;
        let under = |dir: &str| written.iter().any(|p| p.starts_with(dir));
        if under("/etc/sysctl.d/") {
            // Containers and some kernels refuse a few keys; the node phase's health
            // checks show whether networking works.
            ex.effect(|r| Ok(r.exec("sysctl --system >/dev/null 2>&1").map(drop)?))?;
        }
        if under("/etc/modules-load.d/") {
            ex.effect(|r| {
                Ok(r.exec("systemctl restart systemd-modules-load 2>/dev/null")
                    .map(drop)?)
            })?;
        }
        files::save_state(&work.state, ex)
    }
}

/// Release binaries of the host's components in the selected phases.
struct Binaries;

impl Step for Binaries {
    fn apply(&self, cx: &HostCtx, work: &mut HostWork, ex: &mut Executor) -> Result<(), StepError> {
        files::install_binaries(cx, work, ex)?;
        files::save_state(&work.state, ex)
    }
}

/// A phase of components: their files, then each service (re)started where needed and
/// waited for until healthy, in start order.
struct Components(PhaseId);

impl Step for Components {
    fn apply(&self, cx: &HostCtx, work: &mut HostWork, ex: &mut Executor) -> Result<(), StepError> {
        let written = files::write_phase_files(cx, self.0, work, ex)?;
        // The restarts these files owe are on the host before any is tried: a failed or
        // interrupted restart is made by the next run.
        if !written.is_empty() {
            files::save_state(&work.state, ex)?;
        }
        let units_changed = written
            .iter()
            .any(|p| p.ends_with(".service") || p.ends_with(".timer"));
        for component in phases::get(self.0).components() {
            if cx.plan.services.iter().any(|s| s == component.service) {
                // A member joining a running etcd cluster is added before it starts.
                let joins = component.service == "etcd" && etcd_member::prepare_join(cx, ex)?;
                services::start(cx, component, units_changed || joins, work, ex)?;
                if joins {
                    etcd_member::finish_join(ex)?;
                }
            }
        }
        if self.0 == PhaseId::Runtime {
            images::import(cx, ex)?;
        }
        files::save_state(&work.state, ex)
    }
}

/// Cluster manifests (or the chat workload), applied with kubectl on one control-plane host.
struct Manifests {
    workloads: bool,
}

impl Step for Manifests {
    fn apply(&self, cx: &HostCtx, work: &mut HostWork, ex: &mut Executor) -> Result<(), StepError> {
        manifests::apply(cx, self.workloads, work, ex)?;
        files::save_state(&work.state, ex)
    }
}

/// Every service of the host is active and healthy (a dry run started nothing to check).
struct Verify;

impl Step for Verify {
    fn apply(&self, cx: &HostCtx, _: &mut HostWork, ex: &mut Executor) -> Result<(), StepError> {
        ex.effect(|r| services::verify(cx, r))?;
        Ok(())
    }
}
