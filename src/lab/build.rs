//! Builds the lab's binaries from the upstream Go modules (`build-upstream.sh`, embedded here)
//! for exactly the versions the inventory's profile and `k8s-boot fetch` pin, and installs
//! them into `binaries.dir` in the layout `fetch` uses, so the installer cannot tell a lab
//! build from a download. Builds are cached per component, version, Go version and flags
//! under [`default_cache`] (or `$K8S_BOOT_BUILD_CACHE`). See docs/LAB.md.

use super::error::{io_err, LabError};
use super::registry;
use super::sys;
use super::tools::require_program;
use crate::addons::{self, GoProgram, Recipe};
use crate::fetch;
use crate::versions::{self, VersionProfile};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable overriding where builds are cached.
pub const BUILD_CACHE_ENV: &str = "K8S_BOOT_BUILD_CACHE";
const DEFAULT_BUILD_CACHE: &str = "/var/cache/k8s-boot/build";
const SCRIPT: &str = include_str!("build-upstream.sh");

/// The flannel CNI plugin in the lab: the upstream plugin as the CNI plugins project shipped it
/// until v0.9.1 (flannel's fork is not published as a Go module). `fetch` downloads flannel's
/// own release instead.
pub const LAB_FLANNEL_CNI_VERSION: &str = "v0.9.1";

/// Where a program goes once built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Into `binaries.dir` (or its `cni/`), as `fetch` would.
    Binaries,
    /// Only into the cache: the program is packed into an image (see images/).
    Image,
    /// Into the lab directory's `tools/`: a program the lab itself runs (its registry).
    Lab,
}

/// One upstream build: a component of `build-upstream.sh` at a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub component: &'static str,
    /// With its `v`, as the module is tagged.
    pub version: String,
    pub target: Target,
    /// An add-on's program: the script builds what its row says (`component` is its name).
    pub go: Option<&'static GoProgram>,
}

/// Every build the lab needs for a Kubernetes version, Kubernetes first (it is the longest).
pub fn builds(kubernetes_version: &str) -> Result<Vec<Build>, LabError> {
    let profile = versions::profile_for(kubernetes_version).map_err(LabError::Options)?;
    Ok(plan(kubernetes_version, profile))
}

fn tag_of(image: &str) -> String {
    image.rsplit_once(':').map_or(image, |(_, t)| t).to_string()
}

fn plan(kubernetes_version: &str, profile: &VersionProfile) -> Vec<Build> {
    let v = |s: &str| format!("v{}", s.trim_start_matches('v'));
    let b = |component, version: String, target| Build {
        component,
        version,
        target,
        go: None,
    };
    use Target::*;
    let mut builds = vec![
        b("kubernetes", kubernetes_version.to_string(), Binaries),
        b("etcd", v(profile.etcd), Binaries),
        b("containerd", v(fetch::CONTAINERD_VERSION), Binaries),
        b("runc", v(fetch::RUNC_VERSION), Binaries),
        b("cni-plugins", v(fetch::CNI_PLUGINS_VERSION), Binaries),
        b("cni-flannel", LAB_FLANNEL_CNI_VERSION.into(), Binaries),
        b("crictl", v(fetch::CRICTL_VERSION), Binaries),
        b("coredns", tag_of(profile.coredns_image), Image),
    ];
    // The add-ons' images: flannel's own recipe, and a Go program per row.
    for image in addons::images() {
        builds.push(Build {
            go: match &image.recipe {
                Recipe::GoProgram(program) => Some(program),
                Recipe::Flannel => None,
            },
            ..b(image.recipe.build_component(), image.tag().into(), Image)
        });
    }
    builds.push(b(registry::COMPONENT, registry::VERSION.into(), Lab));
    builds
}

/// The component of `build-upstream.sh` that builds the conformance suite's programs.
pub const CONFORMANCE_COMPONENT: &str = "kubernetes-test";

/// The conformance suite's programs for a Kubernetes version (they go into images).
pub fn conformance_build(kubernetes_version: &str) -> Build {
    Build {
        component: CONFORMANCE_COMPONENT,
        version: kubernetes_version.to_string(),
        target: Target::Image,
        go: None,
    }
}

/// `<lab>/tools`, beside the lab's `binaries` directory.
fn lab_tools(binaries: &Path) -> PathBuf {
    binaries.parent().unwrap_or(Path::new(".")).join("tools")
}

/// The build cache: `$K8S_BOOT_BUILD_CACHE` (made absolute), else /var/cache/k8s-boot/build.
pub fn default_cache() -> PathBuf {
    match std::env::var_os(BUILD_CACHE_ENV) {
        Some(c) if !c.is_empty() => crate::fsutil::resolve(Path::new(&c)),
        _ => PathBuf::from(DEFAULT_BUILD_CACHE),
    }
}

/// What one build produced.
#[derive(Debug, Clone)]
pub struct Built {
    pub build: Build,
    /// The cache directory holding its programs.
    pub dir: PathBuf,
    pub elapsed: Duration,
}

/// Runs every build (each is reused from `cache` when there), installing into `binaries`.
/// `progress` gets a line before and after each component; each build's output goes to
/// `<cache>/logs/<component>.log`.
pub fn build_all(
    builds: &[Build],
    binaries: &Path,
    cache: &Path,
    progress: &mut dyn FnMut(String),
) -> Result<Vec<Built>, LabError> {
    check_tools()?;
    let logs = cache.join("logs");
    fs::create_dir_all(&logs).map_err(io_err("cannot create", &logs))?;
    let script = cache.join("build-upstream.sh");
    crate::fsutil::write_atomic(&script, SCRIPT.as_bytes(), 0o755)
        .map_err(io_err("cannot write", &script))?;
    let mut out = Vec::new();
    for (i, b) in builds.iter().enumerate() {
        let started = Instant::now();
        progress(format!(
            "[{}/{}] {} {}: building (cached builds take seconds, a cold one minutes)",
            i + 1,
            builds.len(),
            b.component,
            b.version
        ));
        let log_path = logs.join(format!("{}.log", b.component));
        let log = fs::File::create(&log_path).map_err(io_err("cannot create", &log_path))?;
        let dest = match b.target {
            Target::Binaries => binaries.as_os_str().to_owned(),
            Target::Image => "-".into(),
            Target::Lab => lab_tools(binaries).into_os_string(),
        };
        let mut cmd = Command::new("bash");
        cmd.arg(&script)
            .arg(b.component)
            .arg(&b.version)
            .arg(dest)
            .arg(cache)
            .stdin(Stdio::null())
            .stderr(log);
        if let Some(go) = b.go {
            cmd.env("GO_MODULE", go.module)
                .env("GO_PACKAGE", go.package)
                .env("GO_LDFLAGS", go.ldflags.replace("{version}", &b.version));
        }
        let output = cmd.output().map_err(|source| LabError::Io {
            action: "cannot run bash for".into(),
            path: script.clone(),
            source,
        })?;
        if !output.status.success() {
            let text = fs::read_to_string(&log_path).unwrap_or_default();
            // Modules are verified against the Go checksum database; without it the go
            // command stops, and so does the build (nothing unverified is built).
            let hint = if text.contains("sum.golang.org") || text.contains("checksum database") {
                "\nthe Go checksum database could not be reached: every module is verified \
                 against it, and nothing is built without it (docs/LAB.md)"
            } else {
                ""
            };
            return Err(LabError::Command {
                cmd: format!("build of {} {}", b.component, b.version),
                status: sys::status_text(&output.status),
                stderr_tail: format!(
                    "{}{hint}\n(full log: {})",
                    sys::tail(&text, 15),
                    log_path.display()
                ),
            });
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let dir = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        let elapsed = started.elapsed();
        progress(format!(
            "[{}/{}] {} {}: done in {:.0} s",
            i + 1,
            builds.len(),
            b.component,
            b.version,
            elapsed.as_secs_f64()
        ));
        out.push(Built {
            build: b.clone(),
            dir,
            elapsed,
        });
    }
    Ok(out)
}

/// Go builds everything; runc needs cgo with libseccomp, and the pause image a C compiler.
fn check_tools() -> Result<(), LabError> {
    if sys::find_program("go").is_none() {
        // Debian's golang-go is too old for these modules; LabError::Options names the need.
        return Err(LabError::Options(
            "building the lab's binaries needs Go 1.26 or newer on PATH (`go version`)".into(),
        ));
    }
    for (program, package) in [
        ("bash", "bash"),
        ("gcc", "gcc"),
        ("pkg-config", "pkg-config"),
    ] {
        require_program(program, package)?;
    }
    let seccomp = Command::new("pkg-config")
        .args(["--exists", "libseccomp"])
        .status();
    if !matches!(seccomp, Ok(s) if s.success()) {
        return Err(LabError::MissingProgram {
            program: "libseccomp (for runc)".into(),
            package: "libseccomp-dev".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_follows_the_profile_and_fetch() {
        let b = builds("v1.37.2").unwrap();
        assert_eq!(b[0].component, "kubernetes");
        assert_eq!(b[0].version, "v1.37.2");
        let etcd = b.iter().find(|b| b.component == "etcd").unwrap();
        let profile = versions::profile_for("v1.37.2").unwrap();
        assert_eq!(etcd.version, format!("v{}", profile.etcd));
        let containerd = b.iter().find(|b| b.component == "containerd").unwrap();
        assert_eq!(
            containerd.version,
            format!("v{}", fetch::CONTAINERD_VERSION)
        );
        let coredns = b.iter().find(|b| b.component == "coredns").unwrap();
        assert!(profile
            .coredns_image
            .ends_with(&format!(":{}", coredns.version)));
        assert_eq!(coredns.target, Target::Image);
        assert!(builds("v1.20.0").is_err());
    }

    #[test]
    fn every_component_is_known_to_the_script() {
        let mut all = builds("v1.37.2").unwrap();
        all.push(conformance_build("v1.37.2"));
        for b in all.into_iter().filter(|b| b.go.is_none()) {
            assert!(
                SCRIPT.contains(&format!("\n{})\n", b.component)),
                "build-upstream.sh has no case for {}",
                b.component
            );
        }
    }
}
