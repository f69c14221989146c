//! `up`: checks, then the lab's shared pieces (key, rootfs, bridge), then the hosts that do not
//! run yet, then the known_hosts and inventory files, then waiting for every host to boot.

use super::dir::{known_names, lab_dir, lab_running};
use super::error::{io_err, LabError};
use super::host::{self, HostPaths};
use super::layout::{
    self, PlannedHost, BRIDGE, INVENTORY_FILE, KEY_FILE, KNOWN_HOSTS_FILE, MAX_HOSTS,
};
use super::machine::{check_forwarding, check_root, ensure_bridge};
use super::options::LabOptions;
use super::report::LabReport;
use super::state::{self, HostState, PidLock, State};
use super::tools::{all_programs, Tools};
use super::{key, registry, rootfs};
use crate::fsutil::write_atomic;
use crate::inventory::Cluster;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Host count in range, and the inventory these options produce is valid (an unsupported
/// Kubernetes version fails here, before anything is built).
fn check_options(opts: &LabOptions) -> Result<(), LabError> {
    if !(1..=MAX_HOSTS).contains(&opts.hosts) {
        return Err(LabError::Options(format!(
            "hosts must be between 1 and {MAX_HOSTS}, not {}",
            opts.hosts
        )));
    }
    let text = layout::inventory_yaml(
        &layout::plan(opts.hosts),
        &opts.kubernetes_version,
        &opts.dir.join(KEY_FILE),
        &opts.dir.join(KNOWN_HOSTS_FILE),
        Some(layout::host_address(0)),
    );
    Cluster::from_source(&opts.dir.join(INVENTORY_FILE), &text)?;
    Ok(())
}

/// Starts the lab (or the hosts of it that are not running) and waits until every host
/// answers ssh with systemd `running`.
pub fn up(opts: &LabOptions) -> Result<LabReport, LabError> {
    let started = Instant::now();
    check_options(opts)?;
    check_root()?;
    let tools = Tools::locate(&all_programs())?;
    check_forwarding()?;
    let dir = lab_dir(&opts.dir, true)?;
    let plan = layout::plan(opts.hosts);
    let known_hosts = dir.join(KNOWN_HOSTS_FILE);
    let inventory = dir.join(INVENTORY_FILE);
    // The registry runs on the first host, when the lab build made its program.
    let registry_program = registry::program(&dir);
    let registry_address = registry_program.as_ref().map(|_| plan[0].address);
    let inventory_text = layout::inventory_yaml(
        &plan,
        &opts.kubernetes_version,
        &dir.join(KEY_FILE),
        &known_hosts,
        registry_address,
    );
    Cluster::from_source(&inventory, &inventory_text)?;

    let _lock = PidLock::acquire(&dir.join(".lock"))?;
    refuse_other_lab(&dir)?;
    let previous = state::read(&dir)?;
    let running = running_hosts(&dir, previous.as_ref());
    check_running_fit(&dir, &running, &plan)?;
    state::set_owner(&dir)?;

    let authorized_key = key::ensure_key(&dir, &tools)?;
    let (rootfs, rootfs_cached) = ensure_rootfs(&opts.cache_dir(), &tools)?;
    ensure_bridge(&tools)?;
    let binaries = dir.join("binaries");
    fs::create_dir_all(&binaries).map_err(io_err("cannot create", &binaries))?;
    clear_stale_hosts(&dir, previous.as_ref(), &plan)?;
    if let Some(address) = registry_address {
        registry::ensure_tls(&dir, address)?;
    }

    let (st, already_running) = start_hosts(
        &dir,
        &rootfs,
        &plan,
        &running,
        &authorized_key,
        registry_program.as_deref(),
        &tools,
    )?;
    write_known_hosts(&dir, &plan, &known_hosts)?;
    write_atomic(&inventory, inventory_text.as_bytes(), 0o644)
        .map_err(io_err("cannot write", &inventory))?;
    wait_all_ready(&dir, &plan, &st, &tools, started)?;
    let registry = registry_address
        .map(|address| registry::fill(&dir, &format!("{address}:{}", registry::PORT), &binaries))
        .transpose()?;
    Ok(LabReport {
        hosts: st.hosts.iter().map(Into::into).collect(),
        inventory,
        elapsed: started.elapsed(),
        rootfs_cached,
        already_running,
        registry,
    })
}

/// One lab per machine: they would share the bridge and its addresses.
fn refuse_other_lab(dir: &Path) -> Result<(), LabError> {
    if let Some(other) = state::owner() {
        if other != dir && lab_running(&other) {
            return Err(LabError::OtherLab { dir: other });
        }
    }
    Ok(())
}

/// The hosts of the previous run of this lab that still run.
fn running_hosts(dir: &Path, previous: Option<&State>) -> Vec<HostState> {
    previous
        .iter()
        .flat_map(|st| st.hosts.iter())
        .filter(|h| host::is_running(dir, h))
        .cloned()
        .collect()
}

/// Every running host is in the plan with the same address; else the lab must go down first.
fn check_running_fit(
    dir: &Path,
    running: &[HostState],
    plan: &[PlannedHost],
) -> Result<(), LabError> {
    let fits = running.iter().all(|r| {
        plan.iter()
            .any(|p| p.name == r.name && p.address == r.address)
    });
    if fits {
        return Ok(());
    }
    let names = |v: Vec<String>| v.join(", ");
    Err(LabError::LayoutChanged {
        dir: dir.to_path_buf(),
        running: format!(
            "hosts {}",
            names(running.iter().map(|h| h.name.clone()).collect())
        ),
        requested: format!(
            "{} hosts ({})",
            plan.len(),
            names(plan.iter().map(|h| h.name.clone()).collect())
        ),
    })
}

/// The cached rootfs (built first when missing), as an absolute path overlayfs can take.
fn ensure_rootfs(cache: &Path, tools: &Tools) -> Result<(PathBuf, bool), LabError> {
    let (rootfs, rootfs_cached) = rootfs::ensure(cache, tools)?;
    let rootfs = rootfs
        .canonicalize()
        .map_err(io_err("cannot resolve", &rootfs))?;
    if rootfs.to_string_lossy().contains([',', ':', '\n', '\\']) {
        return Err(LabError::Options(format!(
            "the rootfs cache {} contains ',', ':' or '\\', which overlayfs mount options cannot carry",
            rootfs.display()
        )));
    }
    Ok((rootfs, rootfs_cached))
}

/// Hosts of an earlier, larger lab that crashed: none runs (checked before); clear them out.
fn clear_stale_hosts(
    dir: &Path,
    previous: Option<&State>,
    plan: &[PlannedHost],
) -> Result<(), LabError> {
    for stale in known_names(dir, previous) {
        if !plan.iter().any(|p| p.name == stale) {
            host::kill_leftovers(&stale);
            host::release(dir, &stale, true)?;
        }
    }
    Ok(())
}

/// Creates and starts every planned host that does not run; returns the lab's record and the
/// names of the hosts left alone.
fn start_hosts(
    dir: &Path,
    rootfs: &Path,
    plan: &[PlannedHost],
    running: &[HostState],
    authorized_key: &str,
    registry_program: Option<&Path>,
    tools: &Tools,
) -> Result<(State, Vec<String>), LabError> {
    let mut st = State {
        dir: dir.to_path_buf(),
        rootfs: rootfs.to_path_buf(),
        bridge: BRIDGE.into(),
        hosts: Vec::new(),
    };
    let mut already_running = Vec::new();
    for p in plan {
        if let Some(r) = running.iter().find(|r| r.name == p.name) {
            already_running.push(p.name.clone());
            st.hosts.push(r.clone());
            continue;
        }
        host::create(dir, rootfs, p, plan, authorized_key, tools)?;
        if let Some(program) = registry_program.filter(|_| p.name == plan[0].name) {
            registry::install_into(&HostPaths::new(dir, &p.name).root, dir, program)?;
        }
        // Recorded before it boots, so `down` finds it even if this run fails later.
        let pid = host::start(dir, p, tools)?;
        st.hosts.push(HostState {
            name: p.name.clone(),
            address: p.address,
            pid,
        });
        state::write(dir, &st)?;
    }
    state::write(dir, &st)?;
    Ok((st, already_running))
}

/// The lab's known_hosts: every host's address with its ssh host key.
fn write_known_hosts(dir: &Path, plan: &[PlannedHost], path: &Path) -> Result<(), LabError> {
    let mut lines = String::new();
    for p in plan {
        let k = HostPaths::new(dir, &p.name).host_key()?;
        lines.push_str(&format!("{} {k}\n", p.address));
    }
    write_atomic(path, lines.as_bytes(), 0o644).map_err(io_err("cannot write", path))
}

/// Waits for every host in parallel; the first failure (in plan order) is the error.
fn wait_all_ready(
    dir: &Path,
    plan: &[PlannedHost],
    st: &State,
    tools: &Tools,
    started: Instant,
) -> Result<(), LabError> {
    // Two cores boot about three hosts a second; allow generously for more.
    let deadline = Instant::now() + Duration::from_secs(60 + 4 * plan.len() as u64);
    let results: Vec<Result<(), LabError>> = std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .iter()
            .zip(&st.hosts)
            .map(|(p, h)| {
                s.spawn(move || host::wait_ready(dir, p, h.pid, tools, deadline, started))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("wait thread panicked"))
            .collect()
    });
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_before_anything_else() {
        let mut o = LabOptions::new("/nonexistent/lab");
        o.hosts = 0;
        let e = up(&o).unwrap_err();
        assert!(matches!(e, LabError::Options(_)), "{e}");
        o.hosts = MAX_HOSTS + 1;
        assert!(matches!(up(&o).unwrap_err(), LabError::Options(_)));
        o.hosts = 2;
        o.kubernetes_version = "v1.20.0".into();
        let e = up(&o).unwrap_err();
        assert!(matches!(e, LabError::Inventory(_)), "{e}");
        assert!(e.to_string().contains("kubernetes_version"), "{e}");
        assert!(!Path::new("/nonexistent/lab").exists());
    }
}
