//! Relative paths work from any working directory: every path argument of `check`, `certs`,
//! `render`, `man` and `lab` means the same file whether it is given relative to the
//! working directory or absolute, and the results are the same bytes. Messages name a path
//! as it was given. (`install` and `lab build` with relative paths run for real in
//! tests/lab_readme.rs and tests/lab_binaries.rs: the builds run in directories of their
//! own, so the lab makes its paths absolute before it hands them over.)

mod common;

use common::{describe, files_under, run};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn k8s_boot(cwd: &Path, args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_k8s-boot"))
        .args(args)
        .current_dir(cwd))
}

fn ok(cwd: &Path, args: &[&str]) -> String {
    let out = k8s_boot(cwd, args);
    assert!(
        out.status.success(),
        "k8s-boot {args:?} in {}: {}",
        cwd.display(),
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_under(dir, &|_| true)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            (rel, fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn relative_paths_mean_the_same_files_from_any_working_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let top = &tmp.path().canonicalize().unwrap();
    let deep = top.join("a/b");
    fs::create_dir_all(&deep).unwrap();
    fs::create_dir_all(top.join("cluster")).unwrap();
    let inventory = ok(top, &["init"]);
    fs::write(top.join("cluster/hosts.yaml"), inventory).unwrap();

    // From two levels down, every path relative: ../../cluster/...
    ok(&deep, &["check", "--inventory", "../../cluster/hosts.yaml"]);
    ok(
        &deep,
        &[
            "certs",
            "--inventory",
            "../../cluster/hosts.yaml",
            "--pki-dir",
            "../../pki",
        ],
    );
    assert!(top.join("pki/ca.crt").is_file());
    assert!(!deep.join("pki").exists() && !top.join("cluster/pki").exists());
    ok(
        &deep,
        &[
            "certs",
            "check",
            "--inventory",
            "../../cluster/hosts.yaml",
            "--pki-dir",
            "../../pki",
        ],
    );
    ok(
        &deep,
        &[
            "render",
            "--inventory",
            "../../cluster/hosts.yaml",
            "--pki-dir",
            "../../pki",
            "--out",
            "../../out-relative",
        ],
    );
    ok(&deep, &["man", "--out", "../../man"]);
    assert!(top.join("man/k8s-boot-install.1").is_file());

    // The same from the top with absolute paths: byte-identical output.
    let abs = |p: &str| top.join(p).display().to_string();
    ok(
        Path::new("/"),
        &[
            "render",
            "--inventory",
            &abs("cluster/hosts.yaml"),
            "--pki-dir",
            &abs("pki"),
            "--out",
            &abs("out-absolute"),
        ],
    );
    let (relative, absolute) = (
        tree(&top.join("out-relative")),
        tree(&top.join("out-absolute")),
    );
    assert!(relative.len() > 10, "{} files rendered", relative.len());
    assert!(relative == absolute, "the two renders differ");

    // The lab's directory too: a relative --dir names the same (empty) lab from anywhere.
    let status = k8s_boot(&deep, &["lab", "status", "--dir", "../../lab"]);
    assert_eq!(status.status.code(), Some(1), "{}", describe(&status));
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(said.contains("no lab in ../../lab"), "{said}");
}
