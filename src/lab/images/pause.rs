//! The pause image: upstream's `pause.c` from the Kubernetes module, compiled and stripped as
//! upstream's Makefile does; `/pause`, user 65535.

use super::base::program_config;
use super::inputs_digest::sha256_file;
use super::spec::ImageInputs;
use crate::lab::error::LabError;
use crate::lab::sys;
use crate::lab::tools::require_program;
use crate::oci::{self, Entry, ImageConfig};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `pause.c` inside the Kubernetes module.
pub const PAUSE_SOURCE: &str = "build/pause/linux/pause.c";
/// Upstream's build/pause/Makefile: `CFLAGS = -Os -Wall -Werror -static -DVERSION=v$(TAG)-$(REV)`.
const PAUSE_CFLAGS: &[&str] = &["-Os", "-Wall", "-Werror", "-static"];

/// The inputs record's lines: the source, the compiler and the flags.
pub(super) fn inputs(opts: &ImageInputs) -> Result<Vec<String>, LabError> {
    let src = opts.kubernetes_src.join(PAUSE_SOURCE);
    Ok(vec![
        format!("pause.c {}", sha256_file(&src, "pause.c")?),
        format!("cc {}", compiler_version()?),
        format!(
            "cflags {} -DVERSION={}",
            PAUSE_CFLAGS.join(" "),
            pause_version(opts)?
        ),
    ])
}

/// The layer (the compiled program, built in `work`) and config.
pub(super) fn contents(
    opts: &ImageInputs,
    work: &Path,
) -> Result<(Vec<Entry>, ImageConfig), LabError> {
    Ok((
        vec![Entry::file("/pause", compile_pause(opts, work)?, 0o755)],
        program_config(&["/pause"], "65535:65535"),
    ))
}

/// The source directory of `k8s.io/kubernetes@<version>` in the Go module cache
/// (`go mod download -json`, which downloads it only when it is not there yet).
pub fn kubernetes_module_dir(version: &str) -> Result<PathBuf, LabError> {
    require_program("go", "golang-go")?;
    let mut cmd = Command::new("go");
    cmd.args(["mod", "download", "-json"])
        .arg(format!("k8s.io/kubernetes@{version}"))
        .env("GOTOOLCHAIN", "local")
        .current_dir(std::env::temp_dir());
    let out = sys::run(&mut cmd)?;
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| LabError::Command {
            cmd: sys::describe(&cmd),
            status: "unreadable output".into(),
            stderr_tail: e.to_string(),
        })?;
    match json["Dir"].as_str() {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => Err(LabError::Command {
            cmd: sys::describe(&cmd),
            status: "no Dir in its output".into(),
            stderr_tail: String::from_utf8_lossy(&out.stdout).into_owned(),
        }),
    }
}

/// `v1.37.2` from `.../k8s.io/kubernetes@v1.37.2`; `unknown` otherwise.
fn kubernetes_version_of(src: &Path) -> String {
    src.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split_once('@'))
        .map_or("unknown".into(), |(_, v)| v.to_string())
}

/// pause's `-DVERSION`: `v<tag>-<Kubernetes version>` (upstream puts the git revision of
/// its build there).
fn pause_version(opts: &ImageInputs) -> Result<String, LabError> {
    let tag = oci::tag_of(&opts.names.pause).map_err(|e| LabError::Options(e.to_string()))?;
    Ok(format!(
        "v{tag}-{}",
        kubernetes_version_of(&opts.kubernetes_src)
    ))
}

pub(super) fn compiler_version() -> Result<String, LabError> {
    require_program("gcc", "gcc")?;
    let out = sys::run(Command::new("gcc").arg("--version"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// `gcc -Os -Wall -Werror -static -DVERSION=...` of upstream's pause.c, then `strip`, as
/// upstream's Makefile does.
fn compile_pause(opts: &ImageInputs, work: &Path) -> Result<PathBuf, LabError> {
    require_program("gcc", "gcc")?;
    require_program("strip", "binutils")?;
    let src = opts.kubernetes_src.join(PAUSE_SOURCE);
    let out = work.join("pause");
    sys::run(
        Command::new("gcc")
            .args(PAUSE_CFLAGS)
            .arg(format!("-DVERSION={}", pause_version(opts)?))
            .arg("-o")
            .arg(&out)
            .arg(&src),
    )?;
    sys::run(Command::new("strip").arg(&out))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_comes_from_the_module_directory() {
        assert_eq!(
            kubernetes_version_of(Path::new("/m/k8s.io/kubernetes@v1.37.2")),
            "v1.37.2"
        );
        assert_eq!(
            kubernetes_version_of(Path::new("/src/kubernetes")),
            "unknown"
        );
    }
}
