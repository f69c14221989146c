//! The e2e busybox image: busybox built from Debian's source package, with Debian's patches
//! but the two that keep ash from passing on environment variables whose names are no shell
//! identifiers.
//!
//! The conformance tests run `sh -c env` in this image and look for ConfigMap keys such as
//! `data-1` among the variables (upstream busybox passes them on since commit 9c143ce5; Debian
//! reverts that commit for its installer), and the read-only root filesystem test expects
//! ash's own message, `/bin/sh: can't create /file: Read-only file system`: bash as `/bin/sh`
//! cannot serve both.
//!
//! The source comes from this machine's apt sources (their `deb` entries as `deb-src`, in a
//! private apt state under the scratch directory: the machine's apt configuration is not
//! touched), so apt checks it against the signed Sources index.

use super::base::{NSSWITCH, PATH_ENV};
use super::debian::debian_versions;
use super::pause::compiler_version;
use crate::lab::error::{io_err, LabError};
use crate::lab::sys::run;
use crate::lab::tools::require_program;
use crate::oci::{Entry, ImageConfig};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary package whose source is built (its `Source:` names the source package).
const BINARY_PACKAGE: &str = "busybox-static";
const SOURCE_PACKAGE: &str = "busybox";
/// Debian patches left out: the revert of upstream's 9c143ce5 and the installer hack that
/// patches the reverted code.
const SKIPPED_PATCHES: &[&str] = &[
    "revert-9c143ce52da11ec3d21a3491c3749841d3dc10f0.patch",
    "temp-deb-installer-hack.patch",
];
/// What changes from `make defconfig`: one static program, as the upstream image's.
const CONFIG_CHANGES: &[(&str, &str)] = &[("CONFIG_STATIC", "y")];

/// The inputs record's lines: source version, left-out patches, configuration, compiler.
pub(super) fn inputs() -> Result<Vec<String>, LabError> {
    require_program("apt-cache", "apt")?;
    Ok(vec![
        format!("busybox-source {SOURCE_PACKAGE} {}", source_version()?),
        format!("skip-patches {}", SKIPPED_PATCHES.join(" ")),
        format!(
            "config defconfig {}",
            CONFIG_CHANGES
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        format!("cc {}", compiler_version()?),
    ])
}

/// The layer (busybox and a link per applet, the account files) and config (`sh`).
pub(super) fn contents(work: &Path) -> Result<(Vec<Entry>, ImageConfig), LabError> {
    let program = build(work)?;
    let mut entries = applet_entries(&program)?;
    entries.extend([
        Entry::bytes(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            0o644,
        ),
        Entry::bytes("/etc/group", "root:x:0:\nnobody:x:65534:\n", 0o644),
        Entry::bytes("/etc/nsswitch.conf", NSSWITCH, 0o644),
        Entry::dir("/tmp", 0o1777),
        Entry::dir("/root", 0o700),
    ]);
    let config = ImageConfig {
        env: vec![PATH_ENV.into()],
        working_dir: "/".into(),
        cmd: vec!["sh".into()],
        ..ImageConfig::default()
    };
    Ok((entries, config))
}

/// `program` as `/bin/busybox` and a link in /bin for each applet it lists itself (it is
/// static: nothing of the machine's is used).
pub(super) fn applet_entries(program: &Path) -> Result<Vec<Entry>, LabError> {
    let out = Command::new(program)
        .arg("--list")
        .output()
        .map_err(io_err("cannot run", program))?;
    if !out.status.success() {
        return Err(LabError::State {
            path: program.to_path_buf(),
            message: "`busybox --list` failed".into(),
        });
    }
    let mut entries = vec![Entry::file("/bin/busybox", program, 0o755)];
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        entries.push(Entry::symlink(&format!("/bin/{applet}"), "busybox"));
    }
    Ok(entries)
}

/// The source version of the candidate `busybox-static` (a binary-only rebuild `+b1` has
/// its source's version in `Source:`).
fn source_version() -> Result<String, LabError> {
    let out = run(Command::new("apt-cache")
        .args(["show", "--no-all-versions"])
        .arg(BINARY_PACKAGE))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let source = text.lines().find_map(|l| l.strip_prefix("Source: "));
    match source.and_then(source_field_version) {
        Some(v) => Ok(v),
        None => Ok(debian_versions(&[BINARY_PACKAGE])?.remove(0).1),
    }
}

/// `1:1.35.0-4+deb12u1` from `busybox (1:1.35.0-4+deb12u1)`; `None` without a version.
fn source_field_version(field: &str) -> Option<String> {
    let (_, rest) = field.split_once('(')?;
    Some(rest.trim_end().strip_suffix(')')?.trim().to_string())
}

/// The machine's `deb` sources as `deb-src` ones: one-line `.list` entries and deb822
/// `.sources` stanzas.
fn deb_src_sources(text: &str, deb822: bool) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let converted = if deb822 {
            match trimmed.strip_prefix("Types:") {
                Some(types) if types.split_whitespace().any(|t| t == "deb") => {
                    "Types: deb-src".to_string()
                }
                _ => line.to_string(),
            }
        } else {
            match trimmed.strip_prefix("deb ") {
                Some(rest) => format!("deb-src {rest}"),
                None => continue,
            }
        };
        out.push_str(&converted);
        out.push('\n');
    }
    out
}

/// A private apt state in `dir` that knows the machine's source indexes: the options to pass.
fn private_apt(dir: &Path) -> Result<Vec<String>, LabError> {
    let parts = dir.join("sources.list.d");
    let lists = dir.join("lists");
    for d in [&parts, &lists.join("partial"), &dir.join("cache")] {
        fs::create_dir_all(d).map_err(io_err("creating", d))?;
    }
    let mut found = false;
    let mut write = |name: &str, text: String| -> Result<(), LabError> {
        if !text.trim().is_empty() {
            found = true;
            let path = parts.join(name);
            fs::write(&path, text).map_err(io_err("writing", &path))?;
        }
        Ok(())
    };
    let etc = Path::new("/etc/apt");
    if let Ok(text) = fs::read_to_string(etc.join("sources.list")) {
        write("main.list", deb_src_sources(&text, false))?;
    }
    if let Ok(dir) = fs::read_dir(etc.join("sources.list.d")) {
        let mut files: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            let name = f.file_name().unwrap_or_default().to_string_lossy();
            let deb822 = name.ends_with(".sources");
            if !(deb822 || name.ends_with(".list")) {
                continue;
            }
            let text = fs::read_to_string(&f).map_err(io_err("cannot read", &f))?;
            write(&name, deb_src_sources(&text, deb822))?;
        }
    }
    if !found {
        return Err(LabError::State {
            path: etc.to_path_buf(),
            message: "no `deb` entry in the apt sources to take busybox's source from".into(),
        });
    }
    let option = |k: &str, v: &Path| format!("-o{k}={}", v.display());
    Ok(vec![
        option("Dir::Etc::SourceList", Path::new("/dev/null")),
        option("Dir::Etc::SourceParts", &parts),
        option("Dir::State::Lists", &lists),
        option("Dir::Cache", &dir.join("cache")),
    ])
}

/// Downloads the source package (checked by apt against the signed index), applies Debian's
/// patches but [`SKIPPED_PATCHES`] and builds the static program in `work`.
fn build(work: &Path) -> Result<PathBuf, LabError> {
    for (program, package) in [
        ("apt-get", "apt"),
        ("tar", "tar"),
        ("bzip2", "bzip2"),
        ("xz", "xz-utils"),
        ("patch", "patch"),
        ("make", "make"),
        ("gcc", "gcc"),
    ] {
        require_program(program, package)?;
    }
    let apt = private_apt(&work.join("apt"))?;
    run(Command::new("apt-get").args(&apt).args(["-q", "update"]))?;
    let download = work.join("download");
    fs::create_dir_all(&download).map_err(io_err("creating", &download))?;
    run(Command::new("apt-get")
        .args(&apt)
        .args(["-q", "source", "--download-only"])
        .arg(format!("{SOURCE_PACKAGE}={}", source_version()?))
        .current_dir(&download))?;
    let find = |suffix: &str| -> Result<PathBuf, LabError> {
        fs::read_dir(&download)
            .map_err(io_err("cannot read", &download))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.to_string_lossy().contains(suffix))
            .ok_or_else(|| LabError::State {
                path: download.clone(),
                message: format!("apt-get source left no `*{suffix}*` file"),
            })
    };
    let src = work.join("src");
    let debian = work.join("debian");
    for d in [&src, &debian] {
        fs::create_dir_all(d).map_err(io_err("creating", d))?;
    }
    run(Command::new("tar")
        .arg("-xf")
        .arg(find(".orig.tar.")?)
        .arg("--strip-components=1")
        .arg("-C")
        .arg(&src))?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(find(".debian.tar.")?)
        .arg("-C")
        .arg(&debian))?;
    let patches = debian.join("debian/patches");
    let series = patches.join("series");
    let series = fs::read_to_string(&series).map_err(io_err("cannot read", &series))?;
    for patch in series_patches(&series) {
        let file = patches.join(patch);
        let input = fs::File::open(&file).map_err(io_err("cannot read", &file))?;
        run(Command::new("patch")
            .args(["-p1", "--forward", "--quiet"])
            .stdin(input)
            .current_dir(&src))?;
    }
    run(Command::new("make")
        .arg("defconfig")
        .current_dir(&src)
        .env("KCONFIG_NOTIMESTAMP", "1"))?;
    let config = src.join(".config");
    let text = fs::read_to_string(&config).map_err(io_err("cannot read", &config))?;
    fs::write(&config, configure(&text)).map_err(io_err("writing", &config))?;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    run(Command::new("make")
        .arg(format!("-j{jobs}"))
        .arg("busybox")
        .current_dir(&src))?;
    Ok(src.join("busybox"))
}

/// The patches of a quilt `series` file, in order, without [`SKIPPED_PATCHES`].
fn series_patches(series: &str) -> Vec<&str> {
    series
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty() && !SKIPPED_PATCHES.contains(l))
        .collect()
}

/// A `.config` with [`CONFIG_CHANGES`] applied, whether the option was set or commented out.
fn configure(config: &str) -> String {
    let mut out = String::new();
    for line in config.lines() {
        let changed = CONFIG_CHANGES.iter().find(|(key, _)| {
            line.starts_with(&format!("{key}=")) || line == format!("# {key} is not set")
        });
        match changed {
            Some((key, value)) => out.push_str(&format!("{key}={value}")),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb_entries_become_deb_src_ones() {
        let list = "# comment\ndeb http://deb.debian.org/debian bookworm main\n\
                    deb-src http://x/ y main\ndeb [arch=amd64] http://m/ trixie main\n";
        assert_eq!(
            deb_src_sources(list, false),
            "deb-src http://deb.debian.org/debian bookworm main\n\
             deb-src [arch=amd64] http://m/ trixie main\n"
        );
        let sources = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\n\
                       Types: deb-src\nURIs: http://x/\n";
        assert_eq!(
            deb_src_sources(sources, true),
            "Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\n\
             Types: deb-src\nURIs: http://x/\n"
        );
    }

    #[test]
    fn the_series_loses_only_the_skipped_patches() {
        let series = "# a comment\nshell-ash-export-HOME.patch\n\
                      revert-9c143ce52da11ec3d21a3491c3749841d3dc10f0.patch\n\
                      temp-deb-installer-hack.patch # why\n\nCVE-2022-48174.patch\n";
        assert_eq!(
            series_patches(series),
            ["shell-ash-export-HOME.patch", "CVE-2022-48174.patch"]
        );
    }

    #[test]
    fn static_is_set_whether_it_was_commented_out_or_not() {
        let config = "CONFIG_A=y\n# CONFIG_STATIC is not set\nCONFIG_B=\"x\"\n";
        assert_eq!(
            configure(config),
            "CONFIG_A=y\nCONFIG_STATIC=y\nCONFIG_B=\"x\"\n"
        );
        assert_eq!(configure("CONFIG_STATIC=n\n"), "CONFIG_STATIC=y\n");
    }

    #[test]
    fn the_source_version_is_read_from_the_source_field() {
        assert_eq!(
            source_field_version("busybox (1:1.35.0-4+deb12u1)").as_deref(),
            Some("1:1.35.0-4+deb12u1")
        );
        assert_eq!(source_field_version("busybox"), None);
    }
}
