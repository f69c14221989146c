//! `k8s-boot lab build` leaves the upstream programs, built from their Go modules at the
//! versions the profile and `fetch` pin, in `binaries.dir` with `fetch`'s layout, and the
//! images in `binaries.dir/images/`; every program's own `--version` names its version.
//! Needs Go 1.26, gcc and libseccomp-dev, and root for the default build cache (a cold build
//! takes tens of minutes; `tests/run-all.sh` runs `lab build` before the tests).

mod common;

use k8s_boot::{fetch, lab, versions};
use std::path::Path;
use std::process::Command;

fn version_of(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(dir.join(program))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run from a directory of its own with relative paths only (`--dir lab`, a relative
/// `$K8S_BOOT_BUILD_CACHE`), and with cni-plugins missing from that cache, so that one
/// component takes the cold path: built in a temporary directory, then installed into the
/// relative binaries directory.
#[test]
fn lab_build_leaves_the_pinned_versions_in_fetch_layout() {
    let dir = tempfile::tempdir().unwrap();
    common::build_cache_with_cold(&dir.path().join("cache"), "cni-plugins");
    let out = Command::new(env!("CARGO_BIN_EXE_k8s-boot"))
        .args(["lab", "build", "--dir", "lab"])
        .current_dir(dir.path())
        .env(lab::build::BUILD_CACHE_ENV, "cache")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cold = common::built_in(&dir.path().join("cache"), "cni-plugins");
    let bin = dir.path().join("lab/binaries");
    for plugin in fetch::REQUIRED_CNI_PLUGINS {
        let installed = std::fs::read(bin.join("cni").join(plugin)).unwrap();
        assert_eq!(
            installed,
            std::fs::read(cold.join(plugin)).unwrap(),
            "{plugin}"
        );
    }
    let k8s = lab::DEFAULT_KUBERNETES_VERSION;
    let profile = versions::profile_for(k8s).unwrap();

    for program in fetch::KUBERNETES_BINARIES {
        let args: &[&str] = if program == "kubectl" {
            &["version", "--client"]
        } else {
            &["--version"]
        };
        let v = version_of(&bin, program, args);
        assert!(v.contains(k8s), "{program}: {v}");
    }
    let etcd = format!("etcd Version: {}", profile.etcd);
    assert!(version_of(&bin, "etcd", &["--version"]).contains(&etcd));
    assert!(version_of(&bin, "etcdctl", &["version"]).contains(profile.etcd));
    let containerd = format!("v{}", fetch::CONTAINERD_VERSION);
    assert!(version_of(&bin, "containerd", &["--version"]).contains(&containerd));
    assert!(version_of(&bin, "ctr", &["--version"]).contains(&containerd));
    assert!(bin.join("containerd-shim-runc-v2").is_file());
    let runc = version_of(&bin, "runc", &["--version"]);
    assert!(
        runc.contains(&format!("runc version {}", fetch::RUNC_VERSION)),
        "{runc}"
    );
    assert!(version_of(&bin, "crictl", &["--version"]).contains(fetch::CRICTL_VERSION));
    for plugin in fetch::REQUIRED_CNI_PLUGINS {
        // CNI plugins print their version when run with CNI_COMMAND=VERSION.
        let out = Command::new(bin.join("cni").join(plugin))
            .env("CNI_COMMAND", "VERSION")
            .output()
            .unwrap();
        assert!(out.status.success(), "{plugin}: {out:?}");
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("cniVersion"), "{plugin}: {text}");
    }
    assert!(bin.join("cni/flannel").is_file());

    let names = lab::images::ImageNames::new(profile, &k8s_boot::inventory::Chat::default().image);
    for image in lab::images::Image::cluster() {
        let reference = image.reference(&names).expect("the lab's chat is enabled");
        let file = lab::images::archive_file_name(reference).unwrap();
        let archive = bin.join("images").join(file);
        let index = k8s_boot::oci::read_archive_index(&archive).unwrap();
        assert_eq!(index[0].image_ref, reference, "{}", archive.display());
    }
}
