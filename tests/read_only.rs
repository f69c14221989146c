//! Commands that only read (`install --dry-run`, `status`) and commands refused for bad input
//! change nothing on this machine: no PKI directory appears, an existing one stays
//! byte-identical. The hosts are loopback addresses with an SSH port nothing listens on, so no host is
//! ever reached.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A local port nothing listens on (bound once, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn inventory(port: u16, extra_hosts: &str) -> String {
    format!(
        "\
cluster: {{name: t, kubernetes_version: v1.36.0, allow_loopback_hosts: true}}
ssh: {{key: id_test, known_hosts: known_hosts, port: {port}}}
binaries: {{dir: bin}}
hosts:
  - {{name: lb1, address: 127.0.0.1, roles: [lb]}}
  - {{name: m1, address: 127.0.0.2, roles: [etcd, control-plane, worker]}}
{extra_hosts}"
    )
}

/// Two more hosts: a control-plane host (new leaves, and the apiserver's SANs change) and
/// a worker (new kubelet leaves).
const MORE_HOSTS: &str = "  - {name: m2, address: 127.0.0.3, roles: [control-plane]}
  - {name: w1, address: 127.0.0.4, roles: [worker]}
";

fn k8s_boot(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_k8s-boot"))
        .args(args)
        .arg("--inventory")
        .arg(dir.join("hosts.yaml"))
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every entry under `dir`, relative: directories with their mode, files with their mode
/// and bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, Option<Vec<u8>>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                todo.push(p);
                out.insert(rel, (mode, None));
            } else {
                out.insert(rel, (mode, Some(fs::read(&p).unwrap())));
            }
        }
    }
    out
}

/// `(file, sha256)` of every file under `dir`, sorted.
fn hashes(dir: &Path) -> Vec<(PathBuf, String)> {
    use sha2::{Digest, Sha256};
    snapshot(dir)
        .into_iter()
        .filter_map(|(p, (_, bytes))| {
            bytes.map(|b| {
                let hex: String = Sha256::digest(&b)
                    .iter()
                    .map(|x| format!("{x:02x}"))
                    .collect();
                (p, hex)
            })
        })
        .collect()
}

fn names(dir: &Path) -> Vec<PathBuf> {
    snapshot(dir).into_keys().collect()
}

/// The `pki: would ...` lines of a dry run: `(verb, file)`.
fn would(err: &str) -> Vec<(String, String)> {
    err.lines()
        .filter_map(|l| l.strip_prefix("pki: would "))
        .filter_map(|l| {
            let (verb, rest) = l.split_once(' ')?;
            let file = rest.split_whitespace().next()?;
            Some((verb.to_string(), file.to_string()))
        })
        .collect()
}

#[test]
fn dry_run_without_a_pki_creates_none_and_lists_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("hosts.yaml"), inventory(closed_port(), "")).unwrap();

    let out = k8s_boot(dir, &["install", "--dry-run", "--phases", "pki"]);
    let err = stderr(&out);
    // The unreachable hosts fail `connect` (exit 1); the PKI step before it succeeded.
    assert_eq!(out.status.code(), Some(1), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("m1: connect failed"), "{stdout}");
    assert!(stdout.contains("dry run"), "{stdout}");
    let lines = would(&err);
    for f in [
        "ca.crt",
        "etcd/ca.crt",
        "apiserver.crt",
        "kubelet-m1.crt",
        "sa.key",
    ] {
        assert!(
            lines.contains(&("create".into(), f.into())),
            "{f} not listed: {err}"
        );
    }
    assert!(lines.iter().all(|(verb, _)| verb == "create"), "{err}");
    let pki = dir.join("pki");
    assert!(
        err.contains(&format!(
            "the real run would create {} and re-issue 0 file(s) in {}",
            lines.len(),
            pki.display()
        )),
        "{err}"
    );
    assert_eq!(names(dir), vec![PathBuf::from("hosts.yaml")], "{err}");

    // All phases: the missing binaries are refused after the PKI step; still nothing written.
    let out = k8s_boot(dir, &["install", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("binaries missing"),
        "{}",
        stderr(&out)
    );
    assert_eq!(names(dir), vec![PathBuf::from("hosts.yaml")]);
}

#[test]
fn dry_run_leaves_an_existing_pki_byte_identical_and_predicts_the_real_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = closed_port();
    fs::write(dir.join("hosts.yaml"), inventory(port, "")).unwrap();
    let out = k8s_boot(dir, &["certs"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pki = dir.join("pki");

    // Up to date: a dry run has nothing to report about the PKI.
    let before = snapshot(dir);
    let out = k8s_boot(dir, &["install", "--dry-run", "--phases", "pki"]);
    assert!(would(&stderr(&out)).is_empty(), "{}", stderr(&out));
    assert_eq!(snapshot(dir), before);

    // New hosts: the real run would create and re-issue certificates.
    fs::write(dir.join("hosts.yaml"), inventory(port, MORE_HOSTS)).unwrap();
    let before = snapshot(dir);
    let pki_hashes = hashes(&pki);
    let out = k8s_boot(dir, &["install", "--dry-run", "--phases", "pki,etcd"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "unreachable hosts: {err}");
    let lines = would(&err);
    assert!(
        lines.contains(&("reissue".into(), "apiserver.crt".into())),
        "{err}"
    );
    assert!(err.contains("apiserver.crt (lacks SAN"), "{err}");
    for f in ["kubelet-w1.crt", "kubelet-server-m2.crt"] {
        assert!(lines.contains(&("create".into(), f.into())), "{f}: {err}");
    }
    assert_eq!(hashes(&pki), pki_hashes, "PKI changed by a dry run: {err}");
    assert_eq!(
        snapshot(dir),
        before,
        "something written by a dry run: {err}"
    );
    assert!(!pki.join("admin.kubeconfig").exists());

    // The real PKI step changes exactly what the dry run listed.
    let out = k8s_boot(dir, &["certs"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let real: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let verb = match w.next()? {
                "created" => "create",
                "reissued" => "reissue",
                _ => return None,
            };
            Some((verb.to_string(), w.next()?.to_string()))
        })
        .collect();
    assert_eq!(real, lines);
    assert_ne!(hashes(&pki), pki_hashes);
}

#[test]
fn status_without_a_complete_pki_is_refused_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = closed_port();
    fs::write(dir.join("hosts.yaml"), inventory(port, "")).unwrap();
    let pki = dir.join("pki");

    let out = k8s_boot(dir, &["status"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("PKI directory {} does not exist", pki.display())),
        "{err}"
    );
    assert!(err.contains("k8s-boot certs"), "{err}");
    assert_eq!(names(dir), vec![PathBuf::from("hosts.yaml")]);

    // Complete for two hosts, then a third one: its certificates are missing.
    assert_eq!(k8s_boot(dir, &["certs"]).status.code(), Some(0));
    fs::write(dir.join("hosts.yaml"), inventory(port, MORE_HOSTS)).unwrap();
    let before = snapshot(dir);
    let out = k8s_boot(dir, &["status", "--output", "json"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("PKI directory {} is incomplete", pki.display())),
        "{err}"
    );
    assert!(err.contains("kubelet-m2.crt"), "{err}");
    // --output json: the error as JSON on stdout too.
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["command"], "status");
    assert_eq!(json["error"]["exit_code"], 2);
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("kubelet-m2.crt"));
    assert_eq!(snapshot(dir), before);

    // Complete: status reads it, reaches for the hosts (unreachable: exit 1), writes nothing.
    assert_eq!(k8s_boot(dir, &["certs"]).status.code(), Some(0));
    let before = snapshot(dir);
    let out = k8s_boot(dir, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unreachable"));
    assert_eq!(snapshot(dir), before);
}

#[test]
fn refused_selections_write_no_pki() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("hosts.yaml"), inventory(closed_port(), "")).unwrap();
    let overrides = dir.join("overrides");
    fs::create_dir(&overrides).unwrap();
    fs::write(overrides.join("no-such-template.j2"), "x").unwrap();
    let before = snapshot(dir);

    for (args, message) in [
        (&["install", "--hosts", "nope"][..], "unknown host `nope`"),
        (
            &["install", "--dry-run", "--hosts", "m1,nope"],
            "unknown host `nope`",
        ),
        (&["install", "--phases", "nope"], "unknown phase `nope`"),
        (
            &["install", "--templates", "overrides"],
            "is not a template name",
        ),
        (
            &["render", "--out", "out", "--templates", "overrides"],
            "is not a template name",
        ),
    ] {
        let out = k8s_boot(dir, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert_eq!(snapshot(dir), before, "{args:?} wrote something: {err}");
    }
}
