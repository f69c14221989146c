//! `install`: apply the rendered plan to the hosts over SSH, phase by phase.
//!
//! Each phase runs on its hosts in parallel (bounded), and every host finishes a phase
//! before any host starts the next (etcd must have quorum before an apiserver starts).
//! Within a phase a host: compares the plan's files with what it has (one round trip),
//! writes only what differs, then enables and (re)starts only the services whose files
//! changed or that are not running, and waits for them to be healthy.

pub mod maintain;
pub mod phases;
pub mod state;

use crate::inventory::{Cluster, Host, Role};
use crate::pki::Pki;
use crate::render::{self, HostPlan, Plan, PlannedFile, Templates};
use crate::ssh::{
    self, plan_upload, Connection, HostKeyPolicy, Source, SshError, Target, Timeouts, Upload,
};
use phases::{PhaseId, BINARIES, PHASES};
use serde::Serialize;
use state::{HostState, BACKUP_SUFFIX, STATE_DIR, STATE_FILE};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("unknown phase `{0}`; phases: {1}")]
    UnknownPhase(String, String),
    #[error("unknown host `{0}`; hosts: {1}")]
    UnknownHost(String, String),
    #[error("binaries missing or not executable in {dir}: {missing}")]
    MissingBinaries { dir: PathBuf, missing: String },
    #[error(transparent)]
    Render(#[from] render::RenderError),
    #[error("image archive {}: {source}", path.display())]
    Image {
        path: PathBuf,
        #[source]
        source: crate::oci::OciError,
    },
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Phases to run (all when empty); `connect` always runs.
    pub phases: Vec<PhaseId>,
    /// Hosts to touch (all when empty).
    pub hosts: Vec<String>,
    pub dry_run: bool,
    pub parallelism: usize,
    pub accept_new_host_keys: bool,
    pub timeouts: Timeouts,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            phases: vec![],
            hosts: vec![],
            dry_run: false,
            parallelism: 10,
            accept_new_host_keys: false,
            timeouts: Timeouts::default(),
        }
    }
}

pub fn parse_phases<S: AsRef<str>>(names: &[S]) -> Result<Vec<PhaseId>, InstallError> {
    names
        .iter()
        .map(AsRef::as_ref)
        .map(|name| {
            phases::by_name(name).map(|p| p.id).ok_or_else(|| {
                InstallError::UnknownPhase(
                    name.to_string(),
                    PHASES.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
                )
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum PhaseResult {
    /// Something was (or, in a dry run, would be) changed.
    Changed {
        changes: Vec<String>,
    },
    Unchanged,
    Failed {
        error: String,
    },
    /// Not run on this host because an earlier phase failed there.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub phases: BTreeMap<PhaseId, PhaseResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub phases: Vec<PhaseId>,
    pub hosts: Vec<HostReport>,
    pub elapsed_ms: u128,
    /// Wall time of each phase across all its hosts (phases run one after the other).
    pub phase_ms: BTreeMap<PhaseId, u128>,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.hosts.iter().any(|h| {
            h.phases
                .values()
                .any(|r| matches!(r, PhaseResult::Failed { .. }))
        })
    }
    pub fn changed(&self) -> usize {
        self.hosts
            .iter()
            .flat_map(|h| h.phases.values())
            .filter(|r| matches!(r, PhaseResult::Changed { .. }))
            .count()
    }
}

/// Observes progress; the command line shows it with progress bars.
pub trait Progress: Sync {
    fn host(&self, host: &str, message: &str);
    fn phase_done(&self, host: &str, phase: PhaseId, result: &PhaseResult);
}

/// One host during a run.
struct HostRun<'a> {
    host: &'a Host,
    plan: &'a HostPlan,
    conn: Option<Connection>,
    state: HostState,
    /// Services whose files changed in this run and must restart.
    restart: BTreeSet<String>,
    results: BTreeMap<PhaseId, PhaseResult>,
    failed: bool,
}

struct Run<'a> {
    cluster: &'a Cluster,
    plan: &'a Plan,
    opts: &'a Options,
    keys: HostKeyPolicy,
    binaries_dir: PathBuf,
    /// The OCI archives of `binaries.dir/images/` the runtime phase imports.
    images: Vec<ImageArchive>,
    local_shas: Mutex<BTreeMap<PathBuf, String>>,
    progress: &'a dyn Progress,
}

/// Refuses a selected host name that is not in the inventory (an invalid input).
pub fn require_known_hosts(cluster: &Cluster, selected: &[String]) -> Result<(), InstallError> {
    let names: Vec<&str> = cluster
        .inventory
        .hosts
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    match selected.iter().find(|n| !names.contains(&n.as_str())) {
        Some(unknown) => Err(InstallError::UnknownHost(unknown.clone(), names.join(", "))),
        None => Ok(()),
    }
}

/// Installs the cluster described by `cluster`, using the PKI in `pki`.
pub fn install(
    cluster: &Cluster,
    pki: &Pki,
    templates: &Templates,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Report, InstallError> {
    let started = Instant::now();
    require_known_hosts(cluster, &opts.hosts)?;
    let plan = render::plan(cluster, pki, templates)?;
    let selected: Vec<PhaseId> = if opts.phases.is_empty() {
        PHASES.iter().map(|p| p.id).collect()
    } else {
        let mut v = opts.phases.clone();
        v.push(PhaseId::Connect);
        v.sort();
        v.dedup();
        v
    };
    let binaries_dir = cluster.resolve(&cluster.inventory.binaries.dir);
    if selected.contains(&PhaseId::Binaries) {
        check_binaries(cluster, &binaries_dir, &selected, &opts.hosts)?;
    }
    let images = if selected.contains(&PhaseId::Runtime) {
        image_archives(&binaries_dir.join(IMAGES_DIR))?
    } else {
        Vec::new()
    };
    let run = Run {
        cluster,
        plan: &plan,
        images,
        opts,
        keys: HostKeyPolicy {
            record_new: !opts.dry_run,
            ..maintain::key_policy(cluster, opts.accept_new_host_keys)
        },
        binaries_dir,
        local_shas: Mutex::new(BTreeMap::new()),
        progress,
    };
    let hosts: Vec<Mutex<HostRun>> = cluster
        .inventory
        .hosts
        .iter()
        .zip(&plan.hosts)
        .filter(|(h, _)| opts.hosts.is_empty() || opts.hosts.contains(&h.name))
        .map(|(host, plan)| {
            Mutex::new(HostRun {
                host,
                plan,
                conn: None,
                state: HostState::default(),
                restart: BTreeSet::new(),
                results: BTreeMap::new(),
                failed: false,
            })
        })
        .collect();

    let mut phase_ms = BTreeMap::new();
    for phase in PHASES.iter().filter(|p| selected.contains(&p.id)) {
        let phase_started = Instant::now();
        if phase.cluster_level {
            run.cluster_phase(phase.id, &hosts);
            phase_ms.insert(phase.id, phase_started.elapsed().as_millis());
            continue;
        }
        maintain::each(&hosts, opts.parallelism, |cell| {
            let mut h = cell.lock().expect("host lock");
            if !phase.applies_to(h.host) {
                return;
            }
            if h.failed {
                run.record(&mut h, phase.id, PhaseResult::Skipped);
            } else {
                run.progress.host(&h.host.name, phase.name);
                let outcome = run.host_phase(phase.id, &mut h);
                run.record_outcome(&mut h, phase.id, outcome);
            }
        });
        phase_ms.insert(phase.id, phase_started.elapsed().as_millis());
    }
    let hosts = hosts
        .into_iter()
        .map(|m| {
            let h = m.into_inner().expect("host lock");
            HostReport {
                host: h.host.name.clone(),
                phases: h.results,
            }
        })
        .collect();
    Ok(Report {
        dry_run: opts.dry_run,
        phases: selected,
        hosts,
        elapsed_ms: started.elapsed().as_millis(),
        phase_ms,
    })
}

/// Image archives, under the binaries directory; see docs/FETCH.md.
pub const IMAGES_DIR: &str = "images";
/// Where an archive is uploaded to on a host while containerd imports it.
const REMOTE_IMAGES_DIR: &str = "/var/lib/k8s-boot/images";

/// One OCI image archive of `binaries.dir/images/` and the images its index names.
struct ImageArchive {
    file: PathBuf,
    images: Vec<crate::oci::ArchivedImage>,
}

/// Every `*.tar` in `dir` (none when it does not exist), sorted by name.
fn image_archives(dir: &Path) -> Result<Vec<ImageArchive>, InstallError> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tar") && p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let images =
                crate::oci::read_archive_index(&file).map_err(|source| InstallError::Image {
                    path: file.clone(),
                    source,
                })?;
            Ok(ImageArchive { file, images })
        })
        .collect()
}

/// Every binary the selected phases need on the selected hosts must be present and
/// executable, before any host is touched; lists all that are missing.
fn check_binaries(
    cluster: &Cluster,
    dir: &Path,
    selected: &[PhaseId],
    hosts: &[String],
) -> Result<(), InstallError> {
    use std::os::unix::fs::PermissionsExt;
    let mut missing = BTreeSet::new();
    for b in BINARIES.iter().filter(|b| selected.contains(&b.phase)) {
        let phase = phases::get(b.phase);
        let needed = cluster
            .inventory
            .hosts
            .iter()
            .any(|h| (hosts.is_empty() || hosts.contains(&h.name)) && phase.applies_to(h));
        if !needed {
            continue;
        }
        let ok = std::fs::metadata(dir.join(b.file))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        if !ok {
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

/// Preflight line for `mount` (`/sys/fs/cgroup`): the kubelet refuses cgroup v1 since v1.35
/// unless the inventory allows it.
fn cgroup_v2_check(mount: &str) -> String {
    format!(
        "fs=$(stat -fc %T {mount} 2>/dev/null); [ \"$fs\" = cgroup2fs ] || fail \"cgroup v1 host \
         ({mount} is ${{fs:-not mounted}}, not cgroup2fs): the kubelet refuses cgroup v1 since \
         Kubernetes v1.35 - boot the host with cgroup v2 (systemd.unified_cgroup_hierarchy=1) or \
         set cluster.kubelet.allow_cgroup_v1: true in the inventory\"\n"
    )
}

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("{0}")]
    Failed(String),
}

impl Run<'_> {
    fn conn<'h>(&self, h: &'h HostRun) -> Result<&'h Connection, StepError> {
        h.conn
            .as_ref()
            .ok_or_else(|| StepError::Failed("not connected".into()))
    }

    fn host_phase(&self, phase: PhaseId, h: &mut HostRun) -> Result<Vec<String>, StepError> {
        match phase {
            PhaseId::Connect => self.connect(h),
            PhaseId::Preflight => self.preflight(h),
            PhaseId::Binaries => self.binaries(h),
            PhaseId::Verify => self.verify(h),
            _ => self.files_and_services(phase, h),
        }
    }

    fn connect(&self, h: &mut HostRun) -> Result<Vec<String>, StepError> {
        let target = Target::of(self.cluster, h.host);
        let conn = Connection::open(&target, &self.keys, self.opts.timeouts)?;
        let out = conn.exec(&format!("cat {STATE_FILE} 2>/dev/null || true"))?;
        h.state = HostState::parse(&out.stdout).map_err(StepError::Failed)?;
        if h.state.cluster.is_empty() {
            h.state.cluster = self.cluster.inventory.cluster.name.clone();
        } else if h.state.cluster != self.cluster.inventory.cluster.name {
            return Err(StepError::Failed(format!(
                "host belongs to cluster `{}` (per {STATE_FILE}), not `{}`; reset it first",
                h.state.cluster, self.cluster.inventory.cluster.name
            )));
        }
        // Which directories of what this run may write are missing now: those are ours.
        let mut dirs = BTreeSet::new();
        let targets = h.plan.files.iter().map(|f| f.path.as_str()).chain(
            BINARIES
                .iter()
                .filter(|b| phases::get(b.phase).applies_to(h.host))
                .map(|b| b.target),
        );
        for t in targets {
            let mut d = Path::new(t).parent();
            while let Some(dir) = d.filter(|d| *d != Path::new("/")) {
                dirs.insert(dir.to_string_lossy().into_owned());
                d = dir.parent();
            }
        }
        if !dirs.is_empty() {
            let list: Vec<String> = dirs.iter().map(|d| ssh::shell_quote(d)).collect();
            let out = conn.exec(&format!(
                "for d in {}; do [ -d \"$d\" ] || echo \"$d\"; done",
                list.join(" ")
            ))?;
            h.state
                .created_dirs
                .extend(out.stdout.lines().map(str::to_string));
        }
        h.conn = Some(conn);
        Ok(vec![])
    }

    /// Read-only checks; every failure of the host is listed at once.
    fn preflight(&self, h: &mut HostRun) -> Result<Vec<String>, StepError> {
        let conn = self.conn(h)?;
        // Only what the selected phases need is checked.
        let node = (h.host.has(Role::ControlPlane) || h.host.has(Role::Worker))
            && (self.selected(PhaseId::Runtime) || self.selected(PhaseId::Node));
        let mut script = String::from("fail() { echo \"FAIL $*\"; }\n");
        script += "case $(uname -m) in x86_64|aarch64) ;; *) fail \"unsupported architecture $(uname -m)\";; esac\n";
        script += "[ -d /run/systemd/system ] || fail 'systemd is not running as init'\n";
        script += "for t in sha256sum stat sync mv systemctl ss; do command -v $t >/dev/null || fail \"missing command $t\"; done\n";
        script += "avail=$(df -Pk / | awk 'NR==2{print $4}'); [ \"$avail\" -ge 2097152 ] || fail \"less than 2 GiB free on / ($avail KiB)\"\n";
        script += "echo TIME $(date +%s)\n";
        if node {
            script += "[ -z \"$(swapon --noheadings 2>/dev/null)\" ] || fail 'swap is on (the kubelet refuses to run with swap)'\n";
            // /proc rather than /sys/module: containers often have no /sys/module.
            script += "grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || fail 'kernel module overlay unavailable'\n";
            script += "[ -d /proc/sys/net/bridge ] || modprobe br_netfilter 2>/dev/null || fail 'kernel module br_netfilter unavailable'\n";
        }
        let kubelet = (h.host.has(Role::ControlPlane) || h.host.has(Role::Worker))
            && self.selected(PhaseId::Node);
        if kubelet && !self.cluster.inventory.cluster.kubelet.allow_cgroup_v1 {
            script += &cgroup_v2_check("/sys/fs/cgroup");
        }
        if h.host.has(Role::Lb) && self.selected(PhaseId::Lb) {
            script += "command -v nginx >/dev/null || fail 'nginx is not installed (Debian: nginx libnginx-mod-stream)'\n";
            script += "nginx -V 2>&1 | grep -q -- '--with-stream' || ls /etc/nginx/modules-enabled/*stream* >/dev/null 2>&1 || fail 'nginx has no stream module (Debian: libnginx-mod-stream)'\n";
        }
        if (h.host.has(Role::ControlPlane) && self.selected(PhaseId::ControlPlane)) || node {
            script +=
                "command -v curl >/dev/null || fail 'curl is missing (health checks use it)'\n";
        }
        for (port, owner) in phases::ports(self.cluster, h.host) {
            let phase = PHASES.iter().find(|p| p.services.contains(&owner));
            if h.state.services.contains(owner) || phase.is_some_and(|p| !self.selected(p.id)) {
                continue; // ours from an earlier run, or not installed now
            }
            script += &format!(
                "ss -Htln 'sport = :{port}' | grep -q . && fail 'port {port} (for {owner}) is already in use'\n"
            );
        }
        script += "true\n";
        let out = conn.run(&script)?;
        let mut failures: Vec<String> = out
            .lines()
            .filter_map(|l| l.strip_prefix("FAIL "))
            .map(String::from)
            .collect();
        if let Some(t) = out.lines().find_map(|l| l.strip_prefix("TIME ")) {
            let remote: i64 = t.trim().parse().unwrap_or(0);
            let local = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            if (remote - local).abs() > 30 {
                failures.push(format!(
                    "clock differs from this machine by {} s (certificates would look not yet valid or expired); sync time (NTP)",
                    remote - local
                ));
            }
        }
        if failures.is_empty() {
            Ok(vec![])
        } else {
            Err(StepError::Failed(failures.join("; ")))
        }
    }

    /// Writes `files` that differ from the host (or lists them in a dry run).
    fn write_files(
        &self,
        h: &mut HostRun,
        files: &[(String, Source, String, u32, Option<&str>)],
    ) -> Result<Vec<String>, StepError> {
        let conn = h
            .conn
            .as_ref()
            .ok_or_else(|| StepError::Failed("not connected".into()))?;
        let paths: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
        let known: BTreeMap<String, (String, String)> = paths
            .iter()
            .filter_map(|p| {
                let stamp = h.state.stamps.get(*p)?;
                let sha = h.state.files.get(*p)?;
                Some((p.to_string(), (stamp.clone(), sha.clone())))
            })
            .collect();
        let remote = conn.stat_files_known(&paths, &known)?;
        let mut changes = Vec::new();
        let mut backups = Vec::new();
        let mut written = Vec::new();
        for (path, source, sha, mode, check) in files {
            let have = remote.get(path);
            let action = plan_upload(sha, *mode, "root:root", have);
            if action == Upload::Unchanged {
                h.state.files.insert(path.clone(), sha.clone());
                if let Some(r) = have {
                    h.state.stamps.insert(path.clone(), r.stamp.clone());
                }
                continue;
            }
            changes.push(match action {
                Upload::Metadata => format!("mode {path}"),
                _ => format!("write {path}"),
            });
            if self.opts.dry_run {
                continue;
            }
            // Keep what was there before k8s-boot first replaced it (e.g. the distro nginx.conf).
            if have.is_some()
                && !h.state.files.contains_key(path)
                && !h.state.backups.contains_key(path)
            {
                let backup = format!("{path}{BACKUP_SUFFIX}");
                conn.run(&format!(
                    "cp -p {} {}",
                    ssh::shell_quote(path),
                    ssh::shell_quote(&backup)
                ))?;
                backups.push((path.clone(), backup));
            }
            conn.put(*source, sha, path, *mode, "root:root", have, *check)?;
            h.state.files.insert(path.clone(), sha.clone());
            written.push(path.as_str());
        }
        h.state.backups.extend(backups);
        for (path, stamp) in conn.stamps(&written)? {
            h.state.stamps.insert(path, stamp);
        }
        Ok(changes)
    }

    fn save_state(&self, h: &mut HostRun) -> Result<(), StepError> {
        if self.opts.dry_run {
            return Ok(());
        }
        let conn = self.conn(h)?;
        conn.run(&format!("mkdir -p {STATE_DIR} && chmod 700 {STATE_DIR}"))?;
        conn.upload(
            Source::Bytes(&h.state.to_json()),
            STATE_FILE,
            0o600,
            "root:root",
        )?;
        Ok(())
    }

    fn binaries(&self, h: &mut HostRun) -> Result<Vec<String>, StepError> {
        let mut files = Vec::new();
        for b in BINARIES {
            let phase = phases::get(b.phase);
            if !phase.applies_to(h.host) || !self.selected(b.phase) {
                continue;
            }
            let local = self.binaries_dir.join(b.file);
            let sha = self.local_sha256(&local)?;
            files.push((b.target.to_string(), local, sha));
        }
        let list: Vec<(String, Source, String, u32, Option<&str>)> = files
            .iter()
            .map(|(t, l, s)| (t.clone(), Source::File(l), s.clone(), 0o755, None))
            .collect();
        if !list.is_empty() && !self.opts.dry_run {
            self.conn(h)?.run("mkdir -p /usr/local/bin /opt/cni/bin")?;
        }
        let changes = self.write_files(h, &list)?;
        // A new binary restarts the services of its phase.
        for b in BINARIES
            .iter()
            .filter(|b| changes.iter().any(|c| c.ends_with(b.target)))
        {
            h.restart
                .extend(phases::get(b.phase).services.iter().map(|s| s.to_string()));
        }
        self.save_state(h)?;
        Ok(changes)
    }

    /// sha256 of a local binary, computed once for all hosts.
    fn local_sha256(&self, path: &Path) -> Result<String, StepError> {
        if let Some(sha) = self.local_shas.lock().expect("sha lock").get(path) {
            return Ok(sha.clone());
        }
        let sha = Source::File(path).sha256()?;
        self.local_shas
            .lock()
            .expect("sha lock")
            .insert(path.to_path_buf(), sha.clone());
        Ok(sha)
    }

    fn selected(&self, phase: PhaseId) -> bool {
        self.opts.phases.is_empty() || self.opts.phases.contains(&phase)
    }

    /// The plan's files for this phase, then its services.
    fn files_and_services(
        &self,
        phase: PhaseId,
        h: &mut HostRun,
    ) -> Result<Vec<String>, StepError> {
        let plan = h.plan;
        let mine: Vec<&PlannedFile> = plan
            .files
            .iter()
            .filter(|f| phases::phase_of_file(&f.path, &f.restarts) == phase)
            .collect();
        if phase == PhaseId::Prepare && !self.opts.dry_run {
            // Data directories (file directories are created by the uploads): etcd's
            // store and the apiserver's audit log. `reset` keeps them unless asked.
            let mut data_dirs = Vec::new();
            if h.host.has(Role::Etcd) && self.selected(PhaseId::Etcd) {
                data_dirs.push(("/var/lib/etcd", 0o700));
            }
            if h.host.has(Role::ControlPlane) && self.selected(PhaseId::ControlPlane) {
                data_dirs.push(("/var/log/kubernetes", 0o750));
            }
            for (dir, mode) in data_dirs {
                self.conn(h)?
                    .run(&format!("mkdir -p {dir} && chmod {mode:o} {dir}"))?;
                h.state.data_dirs.insert(dir.to_string());
            }
        }
        let list: Vec<(String, Source, String, u32, Option<&str>)> = mine
            .iter()
            .map(|f| {
                // nginx validates its new configuration before it replaces the old one.
                let check = f
                    .path
                    .starts_with("/etc/nginx/")
                    .then_some("nginx -t -q -c {}");
                (
                    f.path.clone(),
                    Source::Bytes(&f.bytes),
                    f.sha256.clone(),
                    f.mode,
                    check,
                )
            })
            .collect();
        let mut changes = self.write_files(h, &list)?;
        for f in &mine {
            if changes.iter().any(|c| c.ends_with(&f.path)) {
                h.restart.extend(f.restarts.iter().cloned());
            }
        }
        if phase == PhaseId::Prepare && !self.opts.dry_run {
            if changes.iter().any(|c| c.contains("/etc/sysctl.d/")) {
                // Containers and some kernels refuse a few keys; the node phase's health
                // checks show whether networking works.
                let _ = self.conn(h)?.exec("sysctl --system >/dev/null 2>&1");
            }
            if changes.iter().any(|c| c.contains("/etc/modules-load.d/")) {
                let _ = self
                    .conn(h)?
                    .exec("systemctl restart systemd-modules-load 2>/dev/null");
            }
        }
        let services = phases::get(phase).services;
        let units_changed = changes.iter().any(|c| c.ends_with(".service"));
        for service in services
            .iter()
            .filter(|s| plan.services.iter().any(|p| p == *s))
        {
            changes.extend(self.start_service(h, service, units_changed)?);
        }
        if phase == PhaseId::Runtime {
            changes.extend(self.import_images(h)?);
        }
        self.save_state(h)?;
        Ok(changes)
    }

    /// Imports into containerd's `k8s.io` namespace every image archive whose images are not
    /// all there with the same digest (so pods start without a registry). An archive is
    /// uploaded, imported and removed again; what containerd holds is the record.
    fn import_images(&self, h: &mut HostRun) -> Result<Vec<String>, StepError> {
        if self.images.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.conn(h)?;
        let ctr = format!("{}/ctr -n k8s.io", render::rules::BIN_DIR);
        // `REF TYPE DIGEST SIZE PLATFORMS LABELS`; containerd is not running yet in a dry
        // run on a fresh host, which then lists nothing.
        let listed = conn.exec(&format!("{ctr} images ls 2>/dev/null"))?.stdout;
        let present: BTreeSet<(&str, &str)> = listed
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((f.next()?, f.nth(1)?))
            })
            .collect();
        let mut changes = Vec::new();
        for archive in &self.images {
            let missing: Vec<&str> = archive
                .images
                .iter()
                .filter(|i| !present.contains(&(i.image_ref.as_str(), i.digest.as_str())))
                .map(|i| i.image_ref.as_str())
                .collect();
            if missing.is_empty() {
                continue;
            }
            changes.push(format!("import image {}", missing.join(", ")));
            if self.opts.dry_run {
                continue;
            }
            let name = archive
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let remote = format!("{REMOTE_IMAGES_DIR}/{name}");
            let sha = self.local_sha256(&archive.file)?;
            conn.run(&format!("mkdir -p {REMOTE_IMAGES_DIR}"))?;
            conn.put(
                Source::File(&archive.file),
                &sha,
                &remote,
                0o600,
                "root:root",
                None,
                None,
            )?;
            let q = ssh::shell_quote(&remote);
            let imported = conn.run(&format!("{ctr} images import {q} 2>&1"));
            conn.run(&format!("rm -f {q}"))?;
            imported?;
        }
        Ok(changes)
    }

    /// Enables `service`, (re)starts it if its files changed or it is not running, and
    /// waits until it is healthy.
    fn start_service(
        &self,
        h: &mut HostRun,
        service: &str,
        daemon_reload: bool,
    ) -> Result<Vec<String>, StepError> {
        let conn = h
            .conn
            .as_ref()
            .ok_or_else(|| StepError::Failed("not connected".into()))?;
        let mut changes = Vec::new();
        let active = conn
            .exec(&format!("systemctl is-active --quiet {service}"))?
            .code
            == 0;
        let enabled = conn
            .exec(&format!("systemctl is-enabled --quiet {service}"))?
            .code
            == 0;
        let restart = h.restart.contains(service) || !active;
        if self.opts.dry_run {
            if !enabled {
                changes.push(format!("enable {service}"));
            }
            if restart {
                changes.push(format!(
                    "{} {service}",
                    if active { "restart" } else { "start" }
                ));
            }
            return Ok(changes);
        }
        if daemon_reload {
            conn.run("systemctl daemon-reload")?;
        }
        if !enabled {
            conn.run(&format!("systemctl enable {service} 2>&1"))?;
            changes.push(format!("enable {service}"));
        }
        if restart {
            // --no-block: etcd members only become ready together, so no start may wait
            // for its own readiness here.
            conn.run(&format!("systemctl restart --no-block {service}"))?;
            changes.push(format!(
                "{} {service}",
                if active { "restart" } else { "start" }
            ));
        }
        h.state.services.insert(service.to_string());
        h.restart.remove(service);
        if let Some((check, secs)) = phases::health_command(self.cluster, h.host, service) {
            let deadline = Instant::now() + Duration::from_secs(secs);
            loop {
                let out = conn.exec(&check)?;
                if out.code == 0 {
                    break;
                }
                if Instant::now() >= deadline {
                    let journal = conn
                        .exec(&format!(
                            "journalctl -u {service} -n 8 --no-pager 2>/dev/null"
                        ))
                        .map(|o| o.stdout)
                        .unwrap_or_default();
                    return Err(StepError::Failed(format!(
                        "{service} not healthy after {secs} s: {}\n{}",
                        ssh::tail(&format!("{}{}", out.stdout, out.stderr), 3),
                        ssh::tail(&journal, 8)
                    )));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        Ok(changes)
    }

    /// Every service of the host is active and healthy.
    fn verify(&self, h: &mut HostRun) -> Result<Vec<String>, StepError> {
        // A dry run started nothing: what it would verify is what it would start.
        if self.opts.dry_run {
            return Ok(vec![]);
        }
        let conn = self.conn(h)?;
        let mut problems = Vec::new();
        for service in &h.plan.services {
            let phase = PHASES
                .iter()
                .find(|p| p.services.contains(&service.as_str()));
            if phase.is_some_and(|p| !self.selected(p.id)) {
                continue;
            }
            if conn
                .exec(&format!("systemctl is-active --quiet {service}"))?
                .code
                != 0
            {
                problems.push(format!("{service} is not active"));
                continue;
            }
            if let Some((check, _)) = phases::health_command(self.cluster, h.host, service) {
                if conn.exec(&check)?.code != 0 {
                    problems.push(format!("{service} is not healthy"));
                }
            }
        }
        if problems.is_empty() {
            Ok(vec![])
        } else {
            Err(StepError::Failed(problems.join("; ")))
        }
    }

    /// Cluster phases run kubectl on the first healthy control-plane host.
    fn cluster_phase(&self, phase: PhaseId, hosts: &[Mutex<HostRun>]) {
        let Some(cell) = hosts.iter().find(|c| {
            let h = c.lock().expect("host lock");
            h.host.has(Role::ControlPlane) && !h.failed
        }) else {
            return;
        };
        let mut h = cell.lock().expect("host lock");
        self.progress.host(&h.host.name, phases::get(phase).name);
        let outcome = self.apply_manifests(phase, &mut h);
        self.record_outcome(&mut h, phase, outcome);
    }

    /// Records a phase's outcome on a host; a failure stops the host's later phases.
    fn record_outcome(
        &self,
        h: &mut HostRun,
        phase: PhaseId,
        outcome: Result<Vec<String>, StepError>,
    ) {
        let result = match outcome {
            Ok(changes) if changes.is_empty() => PhaseResult::Unchanged,
            Ok(changes) => PhaseResult::Changed { changes },
            Err(e) => {
                h.failed = true;
                PhaseResult::Failed {
                    error: e.to_string(),
                }
            }
        };
        self.record(h, phase, result);
    }

    fn record(&self, h: &mut HostRun, phase: PhaseId, result: PhaseResult) {
        self.progress.phase_done(&h.host.name, phase, &result);
        h.results.insert(phase, result);
    }

    fn apply_manifests(&self, phase: PhaseId, h: &mut HostRun) -> Result<Vec<String>, StepError> {
        let chat = phase == PhaseId::Workloads;
        let manifests: Vec<&PlannedFile> = self
            .plan
            .cluster_files
            .iter()
            .filter(|f| {
                f.path.starts_with("manifests/") && (f.path == render::rules::CHAT_MANIFEST) == chat
            })
            .collect();
        let list: Vec<(String, Source, String, u32, Option<&str>)> = manifests
            .iter()
            .map(|f| {
                (
                    format!("{STATE_DIR}/{}", f.path),
                    Source::Bytes(&f.bytes),
                    f.sha256.clone(),
                    0o600,
                    None,
                )
            })
            .collect();
        if self.opts.dry_run {
            return Ok(list.iter().map(|l| format!("apply {}", l.0)).collect());
        }
        self.conn(h)?
            .run(&format!("mkdir -p {STATE_DIR}/manifests"))?;
        let mut changes = self.write_files(h, &list)?;
        let kubectl = "/usr/local/bin/kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig";
        let conn = self.conn(h)?;
        // One kubectl for all of the phase's manifests (in file-name order): each kubectl run
        // costs its start and an API discovery.
        let files: Vec<String> = list.iter().map(|(path, ..)| format!("-f {path}")).collect();
        let out = conn.run(&format!("{kubectl} apply {}", files.join(" ")))?;
        changes.extend(
            out.lines()
                .filter(|l| !l.ends_with(" unchanged"))
                .map(|l| format!("kubectl: {l}")),
        );
        if phase == PhaseId::Cluster {
            changes.extend(self.label_and_taint_nodes(conn, kubectl)?);
        } else if self.cluster.inventory.chat.enabled {
            conn.run(&format!(
                "{kubectl} -n {} rollout status deployment/chat --timeout=180s",
                self.cluster.inventory.chat.namespace
            ))?;
        }
        self.save_state(h)?;
        Ok(changes)
    }

    /// Gives every node the role labels and taints of its plan that it lacks (kubelets may
    /// not set role labels themselves), waiting for nodes that have not registered yet.
    fn label_and_taint_nodes(
        &self,
        conn: &Connection,
        kubectl: &str,
    ) -> Result<Vec<String>, StepError> {
        let wanted: Vec<&HostPlan> = self
            .plan
            .hosts
            .iter()
            .filter(|n| !n.node_labels.is_empty() || !n.node_taints.is_empty())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        let nodes = loop {
            let text = conn.run(&format!("{kubectl} get nodes -o json"))?;
            let nodes: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| StepError::Failed(format!("kubectl get nodes: {e}")))?;
            let registered: BTreeSet<&str> = nodes["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["metadata"]["name"].as_str())
                .collect();
            let missing: Vec<&str> = wanted
                .iter()
                .map(|n| n.name.as_str())
                .filter(|n| !registered.contains(n))
                .collect();
            if missing.is_empty() {
                break nodes;
            }
            if Instant::now() >= deadline {
                return Err(StepError::Failed(format!(
                    "nodes not registered after 120 s: {}",
                    missing.join(", ")
                )));
            }
            std::thread::sleep(Duration::from_secs(2));
        };
        let mut changes = Vec::new();
        for plan in wanted {
            let node = nodes["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|n| n["metadata"]["name"] == plan.name.as_str())
                .expect("every wanted node is registered");
            let labels: Vec<String> = plan
                .node_labels
                .iter()
                .filter(|(k, v)| node["metadata"]["labels"][k.as_str()] != v.as_str())
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if !labels.is_empty() {
                conn.run(&format!(
                    "{kubectl} label node {} {} --overwrite",
                    plan.name,
                    labels.join(" ")
                ))?;
                changes.push(format!("label node {} {}", plan.name, labels.join(" ")));
            }
            let has = |taint: &str| {
                node["spec"]["taints"].as_array().is_some_and(|ts| {
                    ts.iter().any(|t| {
                        let (key, effect) = taint.split_once(':').unwrap_or((taint, ""));
                        t["key"] == key && t["effect"] == effect
                    })
                })
            };
            let taints: Vec<&str> = plan
                .node_taints
                .iter()
                .map(String::as_str)
                .filter(|t| !has(t))
                .collect();
            if !taints.is_empty() {
                conn.run(&format!(
                    "{kubectl} taint node {} {} --overwrite",
                    plan.name,
                    taints.join(" ")
                ))?;
                changes.push(format!("taint node {} {}", plan.name, taints.join(" ")));
            }
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::cgroup_v2_check;
    use super::phases::BINARIES;
    use std::process::Command;

    #[test]
    fn every_binary_is_listed_once() {
        let mut targets: Vec<&str> = BINARIES.iter().map(|b| b.target).collect();
        targets.sort_unstable();
        let before = targets.len();
        targets.dedup();
        assert_eq!(targets.len(), before, "a target appears twice in BINARIES");
        assert!(targets.contains(&"/opt/cni/bin/flannel"));
    }

    fn run(mount: &str) -> String {
        let script = format!("fail() {{ echo \"FAIL $*\"; }}\n{}", cgroup_v2_check(mount));
        let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn cgroup_check_refuses_anything_but_cgroup2_and_names_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let out = run(dir.path().to_str().unwrap());
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.starts_with("FAIL cgroup v1 host ("), "{out}");
        assert!(out.contains(", not cgroup2fs)"), "{out}");
        assert!(
            out.contains("set cluster.kubelet.allow_cgroup_v1: true in the inventory"),
            "{out}"
        );
        let out = run("/nonexistent/cgroup");
        assert!(out.contains("is not mounted, not cgroup2fs"), "{out}");
        // Where this machine has a cgroup2 mount, that mount passes.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        if let Some(m) = mounts.lines().find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.get(2) == Some(&"cgroup2")).then(|| f[1].to_string())
        }) {
            assert_eq!(run(&m), "", "{m} is cgroup2");
        }
    }
}
