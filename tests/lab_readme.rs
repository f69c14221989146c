//! A new user's first run: the README's first command line, read from README.md and run as
//! written with bash in a new directory holding a copy of this checkout, gives a working
//! cluster. One upstream component (cni-plugins) builds from an empty build cache in that
//! run, so a bug on the cold build path fails here; the others come from the machine's
//! warm cache. Needs root and the lab's builds (tests/run-all.sh makes them first).

mod common;

use common::{build_cache_with_cold, built_in, describe, lab_program, run, tail, TestLab};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

/// The first command of README.md's first `sh` block, without its trailing comment.
fn readme_first_command() -> String {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let mut lines = readme.lines().skip_while(|l| l.trim() != "```sh").skip(1);
    let line = lines.next().expect("README.md has a ```sh block");
    let command = match line.find(" # ") {
        Some(i) => &line[..i],
        None => line,
    };
    command.trim().to_string()
}

/// Copies the checkout's files (tracked and new ones, as git lists them; not `target/`) to
/// `to`, as a fresh clone of this working tree would have them.
fn copy_checkout(to: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = run(Command::new("git").current_dir(root).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]));
    assert!(out.status.success(), "git ls-files: {}", describe(&out));
    for rel in out.stdout.split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).unwrap());
        let from = root.join(rel);
        if !from.exists() {
            continue; // deleted in the working tree, not yet committed
        }
        let dest = to.join(rel);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(&from, &dest).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
}

#[test]
fn readme_first_command_gives_a_working_cluster_from_a_new_directory() {
    let command = readme_first_command();
    assert!(
        command.contains("lab up") && command.contains("install"),
        "README.md's first command is not the main job: {command}"
    );
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme");
    let _ = fs::remove_dir_all(base.join("checkout"));
    let checkout = base.join("checkout");
    copy_checkout(&checkout);
    let cache = base.join("build-cache");
    let _ = fs::remove_dir_all(&cache);
    build_cache_with_cold(&cache, "cni-plugins");
    // Taken down when the test ends, however it ends.
    let _lab = TestLab {
        dir: checkout.join("lab"),
    };

    // The release build is kept between runs (beside, not inside, the new directory); the
    // rootfs cache is the lab tests' shared one.
    let log = base.join("readme-command.log");
    let status = Command::new("bash")
        .arg("-c")
        .arg(&command)
        .current_dir(&checkout)
        .env("CARGO_TARGET_DIR", base.join("target"))
        .env("K8S_BOOT_BUILD_CACHE", &cache)
        .env(
            "K8S_BOOT_LAB_CACHE",
            std::env::var_os("K8S_BOOT_LAB_CACHE").unwrap_or_else(|| {
                Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .join("lab-cache")
                    .into()
            }),
        )
        .stdin(Stdio::null())
        .stdout(fs::File::create(&log).unwrap())
        .stderr(fs::File::options().append(true).open(&log).unwrap())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "`{command}` in {} failed ({status}); the end of its output:\n{}",
        checkout.display(),
        tail(&log, 60)
    );

    // The cold component was built in this run and installed into the relative binaries
    // directory the command used.
    let cni = built_in(&cache, "cni-plugins");
    for plugin in k8s_boot::fetch::REQUIRED_CNI_PLUGINS {
        let installed = fs::read(checkout.join("lab/binaries/cni").join(plugin)).unwrap();
        assert_eq!(installed, fs::read(cni.join(plugin)).unwrap(), "{plugin}");
    }

    // The cluster is ready the moment install returns: no waiting here.
    let kubectl = |args: &[&str]| {
        let out = run(Command::new(lab_program("kubectl"))
            .arg("--kubeconfig")
            .arg(checkout.join("lab/pki/admin.kubeconfig"))
            .arg("--request-timeout=20s")
            .args(args));
        assert!(out.status.success(), "kubectl {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let nodes = kubectl(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    ]);
    let mut nodes: Vec<&str> = nodes.lines().collect();
    nodes.sort();
    assert_eq!(
        nodes,
        ["m1=True", "m2=True", "m3=True", "w1=True", "w2=True"]
    );
    let pods = kubectl(&[
        "get",
        "pods",
        "-A",
        "-o",
        "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    ]);
    let not_ready: Vec<&str> = pods.lines().filter(|l| !l.ends_with("=True")).collect();
    assert!(
        not_ready.is_empty(),
        "pods not ready right after install: {not_ready:?}\n{pods}"
    );
    for app in ["kube-flannel", "coredns", "metrics-server", "chat"] {
        assert!(pods.contains(app), "no {app} pod:\n{pods}");
    }
    let top = kubectl(&["top", "nodes", "--no-headers"]);
    assert_eq!(top.lines().count(), 5, "kubectl top nodes: {top}");
}
