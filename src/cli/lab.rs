//! `k8s-boot lab up|build|down|status`: throwaway local test hosts.
//!
//! The build orchestration (upstream programs, then the images made from them, copied into
//! the lab's binaries directory) lives here for now; it belongs in `k8s_boot::lab::build`.

use super::args::LabAction;
use super::output::yes_no;
use anyhow::{Context, Result};
use k8s_boot::lab::{self, build, images};
use std::path::{Path, PathBuf};

pub fn run(action: LabAction) -> Result<i32> {
    match action {
        LabAction::Up {
            hosts,
            dir,
            version,
            build_cache,
        } => up(&dir, hosts, version, build_cache),
        LabAction::Build {
            dir,
            version,
            build_cache,
        } => lab_build(&dir, &version, build_cache).map(|_| 0),
        LabAction::Down { dir } => down(&dir),
        LabAction::Status { dir } => status(&dir),
    }
}

/// Builds (or takes from the cache) every binary and image the lab needs into
/// `<dir>/binaries`, printing progress per component.
fn lab_build(dir: &Path, version: &str, build_cache: Option<PathBuf>) -> Result<PathBuf> {
    let builds = build::builds(version)?;
    let cache = build_cache.unwrap_or_else(build::default_cache);
    let binaries = dir.join("binaries");
    std::fs::create_dir_all(&binaries)
        .with_context(|| format!("creating {}", binaries.display()))?;
    eprintln!(
        "lab binaries: {} upstream builds from their Go modules, cached in {} \
         (a cold build of everything takes about 30 minutes on 2 cores; cached ones take seconds)",
        builds.len(),
        cache.display()
    );
    let started = std::time::Instant::now();
    let built = build::build_all(&builds, &binaries, &cache, &mut |line| {
        eprintln!("  {line}")
    })?;
    build_images(version, &built, &cache, &binaries)?;
    eprintln!(
        "lab binaries and images ready in {} ({:.0} s)",
        binaries.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(binaries)
}

/// The images, built from three of the `built` programs, pause.c and Debian's packages,
/// under the names the rendered manifests use (the lab inventory keeps the default chat
/// image), copied into `binaries`' images directory.
fn build_images(
    version: &str,
    built: &[build::Built],
    cache: &Path,
    binaries: &Path,
) -> Result<()> {
    let program = |component: &str, name: &str| -> Result<PathBuf> {
        built
            .iter()
            .find(|b| b.build.component == component)
            .map(|b| b.dir.join(name))
            .with_context(|| format!("no {component} build"))
    };
    let profile = k8s_boot::versions::profile_for(version).map_err(anyhow::Error::msg)?;
    // Archives are built in the build cache (shared by every lab directory) and copied.
    let inputs = images::ImageInputs {
        binaries_dir: cache.to_path_buf(),
        cache_dir: cache.to_path_buf(),
        kubernetes_src: images::kubernetes_module_dir(version)?,
        coredns: program("coredns", "coredns")?,
        metrics_server: program("metrics-server", "metrics-server")?,
        flanneld: program("flannel", "flannel")?,
        names: images::ImageNames::new(profile, &k8s_boot::inventory::Chat::default().image),
    };
    let archives = images::build_all(&inputs, &mut |line| eprintln!("  {line}"))?;
    let images = binaries.join(k8s_boot::install::IMAGES_DIR);
    std::fs::create_dir_all(&images).with_context(|| format!("creating {}", images.display()))?;
    for archive in archives {
        let name = archive.file_name().expect("archives have file names");
        copy_if_changed(&archive, &images.join(name))?;
    }
    Ok(())
}

/// Copies `from` to `to` (temp file, then rename) unless `to` already has the same bytes.
fn copy_if_changed(from: &Path, to: &Path) -> Result<()> {
    let same = std::fs::metadata(to)
        .ok()
        .zip(std::fs::metadata(from).ok())
        .is_some_and(|(a, b)| a.len() == b.len())
        && std::fs::read(to).ok() == std::fs::read(from).ok();
    if same {
        return Ok(());
    }
    let tmp = to.with_extension("tar.tmp");
    std::fs::copy(from, &tmp)
        .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    std::fs::rename(&tmp, to)
        .with_context(|| format!("renaming {} to {}", tmp.display(), to.display()))?;
    Ok(())
}

fn up(dir: &Path, hosts: usize, version: String, build_cache: Option<PathBuf>) -> Result<i32> {
    lab_build(dir, &version, build_cache)?;
    let report = lab::up(&lab::LabOptions {
        dir: dir.to_path_buf(),
        hosts,
        kubernetes_version: version,
        cache_dir: None,
    })?;
    for h in &report.hosts {
        let note = if report.already_running.contains(&h.name) {
            " (already running)"
        } else {
            ""
        };
        println!("{:<6} {}{note}", h.name, h.address);
    }
    println!(
        "{} lab host(s) up in {:.1} s; inventory: {}",
        report.hosts.len(),
        report.elapsed.as_secs_f64(),
        report.inventory.display()
    );
    Ok(0)
}

fn down(dir: &Path) -> Result<i32> {
    let stopped = lab::down(dir)?;
    println!("{stopped} lab host(s) stopped and removed");
    Ok(0)
}

/// 1 when there is no lab or a host is not running or not answering SSH.
fn status(dir: &Path) -> Result<i32> {
    let hosts = lab::status_detailed(dir)?;
    if hosts.is_empty() {
        println!("no lab in {}", dir.display());
        return Ok(1);
    }
    let mut all = true;
    for h in &hosts {
        println!(
            "{:<6} {:<15} running {:<3} ssh {}",
            h.host.name,
            h.host.address,
            yes_no(h.running),
            yes_no(h.ssh)
        );
        all &= h.running && h.ssh;
    }
    Ok(if all { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_only_what_changed_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (from, to) = (tmp.path().join("a.tar"), tmp.path().join("b.tar"));
        std::fs::write(&from, b"one").unwrap();
        copy_if_changed(&from, &to).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"one");
        // Same bytes: the target is not rewritten (its mode change survives).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
        copy_if_changed(&from, &to).unwrap();
        let mode = std::fs::metadata(&to).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(&from, b"two").unwrap();
        copy_if_changed(&from, &to).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);
    }
}
