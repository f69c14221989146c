//! Bad input, as a new user gives it: each named case runs the real binary in a copy of one
//! project directory (inventory, SSH files, a PKI, an earlier render output) and checks that
//!
//! - the exit code is 2 (invalid input or usage) unless the case says otherwise,
//! - the output names what is wrong: the file with line:col, the field, the flag or the path,
//! - nothing under the directory was written, changed or deleted (every entry's type, mode
//!   and bytes are compared before and after),
//! - no output contains key material.
//!
//! No host is ever contacted: every case is refused before the first connection.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The annotated example with local SSH files (never used: no case gets that far).
fn base_inventory() -> String {
    let example = k8s_boot::EXAMPLE_INVENTORY;
    let ssh = example
        .find("ssh:\n")
        .and_then(|start| example[start..].find("\n\n").map(|len| start..start + len))
        .expect("the example has an ssh section");
    let mut inv = example.to_string();
    inv.replace_range(ssh, "ssh:\n  key: id_test\n  known_hosts: known_hosts");
    inv
}

/// The directory every case starts from, made once: `hosts.yaml`, `id_test`, `known_hosts`,
/// `bin/`, `pki/` (from `certs`), `rendered/` (from `render`), `templates/`.
fn base_dir() -> &'static Path {
    static BASE: OnceLock<tempfile::TempDir> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("hosts.yaml"), base_inventory()).unwrap();
        fs::write(d.join("id_test"), "not a real key\n").unwrap();
        fs::set_permissions(d.join("id_test"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(d.join("known_hosts"), "").unwrap();
        fs::create_dir(d.join("bin")).unwrap();
        fs::create_dir(d.join("templates")).unwrap();
        for args in [
            &["certs", "-i", "hosts.yaml"][..],
            &["render", "-i", "hosts.yaml", "--out", "rendered"],
        ] {
            let out = k8s_boot(d, args, None);
            assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
        }
        dir
    })
    .path()
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary in `dir` with stdin closed, killed after 20 s (a hang is a failure).
fn k8s_boot(dir: &Path, args: &[&str], inventory_override: Option<&str>) -> Output {
    let args: Vec<String> = args
        .iter()
        .map(|a| match (inventory_override, *a) {
            (Some(path), "hosts.yaml") => path.to_string(),
            _ => a.to_string(),
        })
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_k8s-boot"))
        .args(&args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("K8S_BOOT_BUILD_CACHE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut hung = false;
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            hung = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    Output {
        code: if hung { None } else { out.status.code() },
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every entry under `dir`: its kind, mode and content (a link's target).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (String, u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (String, u32, Vec<u8>)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let kind = meta.file_type();
            let mode = meta.permissions().mode() & 0o7777;
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let (name, bytes) = if kind.is_symlink() {
                (
                    "link",
                    fs::read_link(&path).unwrap().into_os_string().into_vec(),
                )
            } else if kind.is_dir() {
                walk(root, &path, out);
                ("dir", Vec::new())
            } else if kind.is_fifo() {
                ("fifo", Vec::new())
            } else {
                ("file", fs::read(&path).unwrap())
            };
            out.insert(rel, (name.to_string(), mode, bytes));
        }
    }
    use std::os::unix::ffi::OsStringExt;
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Replaces `from` (which must occur) by `to` in the case's inventory.
fn edit(dir: &Path, from: &str, to: &str) {
    let path = dir.join("hosts.yaml");
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "the base inventory has no `{from}`");
    fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// `cluster.containerd.registry_mirrors` set to `yaml` (indented under it).
fn mirrors(dir: &Path, yaml: &str) {
    edit(
        dir,
        "  kubelet:\n",
        &format!("  containerd:\n    registry_mirrors:\n{yaml}  kubelet:\n"),
    );
}

/// A mirror with a CA file and credentials (0600, as it should be) that `setup` then spoils.
fn mirror_with_files(dir: &Path) {
    mirrors(
        dir,
        "      registry.k8s.io:\n        - url: https://registry.corp:5000/k8s\n          \
         ca_file: pki/ca.crt\n          auth_file: registry.auth\n",
    );
    write(dir, "registry.auth", "bob:hunter2\n");
    fs::set_permissions(dir.join("registry.auth"), fs::Permissions::from_mode(0o600)).unwrap();
}

/// Lines of every private key and the encryption key of the base PKI: none may be printed.
fn secrets() -> &'static Vec<String> {
    static SECRETS: OnceLock<Vec<String>> = OnceLock::new();
    SECRETS.get_or_init(|| {
        let pki = base_dir().join("pki");
        let mut out = Vec::new();
        for name in [
            "ca.key",
            "front-proxy-ca.key",
            "sa.key",
            "admin.key",
            "encryption.key",
        ] {
            let text = fs::read_to_string(pki.join(name)).unwrap();
            out.extend(
                text.lines()
                    .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                    .map(|l| l[..16].to_string()),
            );
        }
        assert!(out.len() > 5);
        out
    })
}

type Setup = fn(&Path);

struct Case {
    name: &'static str,
    setup: Setup,
    args: &'static [&'static str],
    /// Exit code expected.
    code: i32,
    /// Every one must appear in the output (stderr, or stdout for `certs check`'s table).
    mentions: &'static [&'static str],
}

const fn case(
    name: &'static str,
    setup: Setup,
    args: &'static [&'static str],
    mentions: &'static [&'static str],
) -> Case {
    Case {
        name,
        setup,
        args,
        code: 2,
        mentions,
    }
}

fn none(_: &Path) {}

const CHECK: &[&str] = &["check", "-i", "hosts.yaml"];
const INSTALL_DRY: &[&str] = &["install", "-i", "hosts.yaml", "--dry-run"];
const RENDER_NEW: &[&str] = &["render", "-i", "hosts.yaml", "--out", "new-out"];

fn cases() -> Vec<Case> {
    vec![
        // --- the inventory file itself ---
        case(
            "inventory missing",
            none,
            &["check", "-i", "nope.yaml"],
            &["nope.yaml"],
        ),
        case(
            "inventory is a directory",
            none,
            &["check", "-i", "bin"],
            &["bin", "regular file"],
        ),
        case(
            "inventory is a FIFO",
            |d| {
                let status = Command::new("mkfifo").arg(d.join("fifo.yaml")).status();
                assert!(status.unwrap().success());
            },
            &["check", "-i", "fifo.yaml"],
            &["fifo.yaml", "regular file"],
        ),
        case(
            "inventory is /dev/zero",
            none,
            &["check", "-i", "/dev/zero"],
            &["/dev/zero", "regular file"],
        ),
        case(
            "inventory over the size limit",
            |d| {
                write(
                    d,
                    "big.yaml",
                    &"# padding line of a comment\n".repeat(80_000),
                )
            },
            &["check", "-i", "big.yaml"],
            &["big.yaml", "MiB"],
        ),
        case(
            "YAML alias bomb",
            |d| {
                let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
                for i in 1..12 {
                    let p = i - 1;
                    text += &format!(
                        "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
                    );
                }
                write(d, "bomb.yaml", &text);
            },
            &["check", "-i", "bomb.yaml"],
            &["bomb.yaml", "alias"],
        ),
        case(
            "empty inventory",
            |d| write(d, "hosts.yaml", ""),
            CHECK,
            &["hosts.yaml"],
        ),
        case(
            "not UTF-8",
            |d| fs::write(d.join("hosts.yaml"), b"cluster: \xff\xfe\n").unwrap(),
            CHECK,
            &["hosts.yaml"],
        ),
        case(
            "a list at the top",
            |d| write(d, "hosts.yaml", "- a\n- b\n"),
            CHECK,
            &["hosts.yaml:1:"],
        ),
        case(
            "unclosed flow mapping",
            |d| edit(d, "ssh:\n  key: id_test", "ssh: {key: id_test"),
            CHECK,
            &["hosts.yaml:", "did not find expected"],
        ),
        case(
            "unclosed flow sequence",
            |d| edit(d, "roles: [lb]", "roles: [lb"),
            CHECK,
            &["hosts.yaml:"],
        ),
        case(
            "tab indentation",
            |d| edit(d, "  name: demo", "\tname: demo"),
            CHECK,
            &["hosts.yaml:"],
        ),
        // --- fields ---
        case(
            "unknown key",
            |d| edit(d, "    address: 10.10.10.128", "    adress: 10.10.10.128"),
            CHECK,
            &["hosts.yaml:", "adress", "did you mean `address`"],
        ),
        case(
            "unknown role",
            |d| edit(d, "roles: [lb]", "roles: [loadbalancer]"),
            CHECK,
            &["hosts.yaml:", "hosts[0].roles"],
        ),
        case(
            "duplicate host name",
            |d| edit(d, "name: m2", "name: m1"),
            CHECK,
            &["hosts.yaml:", "hosts[2].name", "m1"],
        ),
        case(
            "duplicate address",
            |d| edit(d, "address: 10.10.10.129", "address: 10.10.10.128"),
            CHECK,
            &["hosts.yaml:", "hosts[2].address"],
        ),
        case(
            "address not an IP",
            |d| edit(d, "address: 10.10.10.129", "address: 10.10.10.300"),
            CHECK,
            &["hosts.yaml:", "hosts[2].address"],
        ),
        case(
            "unspecified address",
            |d| edit(d, "address: 10.10.10.129", "address: 0.0.0.0"),
            CHECK,
            &["hosts.yaml:", "hosts[2].address"],
        ),
        case(
            "broadcast address",
            |d| edit(d, "address: 10.10.10.129", "address: 255.255.255.255"),
            CHECK,
            &["hosts.yaml:", "hosts[2].address"],
        ),
        case(
            "multicast address",
            |d| edit(d, "address: 10.10.10.129", "address: 224.0.0.1"),
            CHECK,
            &["hosts.yaml:", "hosts[2].address"],
        ),
        case(
            "loopback address",
            |d| edit(d, "address: 10.10.10.129", "address: 127.0.0.1"),
            CHECK,
            &["hosts.yaml:", "hosts[2].address"],
        ),
        case(
            "IPv6 host with IPv4 CIDRs",
            |d| edit(d, "address: 10.10.10.131", "address: fd00::131"),
            CHECK,
            &["hosts.yaml:", "hosts[4].address"],
        ),
        case(
            "etcd peers of both families",
            |d| edit(d, "address: 10.10.10.129", "address: fd00::129"),
            CHECK,
            &["hosts.yaml:", "hosts[2].address"],
        ),
        case(
            "host name not a DNS label",
            |d| edit(d, "name: w2", "name: W_2"),
            CHECK,
            &["hosts.yaml:", "hosts[5].name"],
        ),
        case(
            "host name too long",
            |d| edit(d, "name: w2", &format!("name: {}", "w".repeat(300))),
            CHECK,
            &["hosts.yaml:", "hosts[5].name"],
        ),
        case(
            "cluster name too long",
            |d| edit(d, "name: demo", &format!("name: {}", "d".repeat(5000))),
            CHECK,
            &["hosts.yaml:", "cluster.name"],
        ),
        case(
            "version without v",
            |d| {
                edit(
                    d,
                    "kubernetes_version: v1.37.2",
                    "kubernetes_version: 1.37.2",
                )
            },
            CHECK,
            &["hosts.yaml:", "cluster.kubernetes_version"],
        ),
        case(
            "unsupported version",
            |d| {
                edit(
                    d,
                    "kubernetes_version: v1.37.2",
                    "kubernetes_version: v1.34.0",
                )
            },
            CHECK,
            &["hosts.yaml:", "cluster.kubernetes_version", "v1.35"],
        ),
        case(
            "pod CIDR not a CIDR",
            |d| edit(d, "pod_cidr: 10.244.0.0/16", "pod_cidr: 10.244.0.0/33"),
            CHECK,
            &["hosts.yaml:", "cluster.pod_cidr"],
        ),
        case(
            "overlapping CIDRs",
            |d| {
                edit(
                    d,
                    "service_cidr: 10.96.0.0/12",
                    "service_cidr: 10.244.0.0/20",
                )
            },
            CHECK,
            &["hosts.yaml:", "cluster.service_cidr"],
        ),
        case(
            "node port range reversed",
            |d| {
                edit(
                    d,
                    "node_port_range: 30000-32767",
                    "node_port_range: 32767-30000",
                )
            },
            CHECK,
            &["hosts.yaml:", "cluster.node_port_range"],
        ),
        case(
            "chat node port outside the range",
            |d| edit(d, "node_port: 30000 ", "node_port: 80 "),
            CHECK,
            &["hosts.yaml:", "chat.node_port"],
        ),
        case(
            "SSH port 0",
            |d| edit(d, "ssh:\n", "ssh:\n  port: 0\n"),
            CHECK,
            &["hosts.yaml:", "ssh.port"],
        ),
        case(
            "empty SSH user",
            |d| edit(d, "ssh:\n", "ssh:\n  user: ''\n"),
            CHECK,
            &["hosts.yaml:", "ssh.user"],
        ),
        case(
            "no control-plane host",
            |d| {
                let text = fs::read_to_string(d.join("hosts.yaml")).unwrap();
                let text = text.replace("roles: [etcd, control-plane]", "roles: [etcd, worker]");
                fs::write(d.join("hosts.yaml"), text).unwrap();
            },
            CHECK,
            &["hosts.yaml", "control-plane"],
        ),
        case(
            "no hosts",
            |d| {
                let text = fs::read_to_string(d.join("hosts.yaml")).unwrap();
                let cut = text.find("hosts:\n").unwrap();
                fs::write(d.join("hosts.yaml"), format!("{}hosts: []\n", &text[..cut])).unwrap();
            },
            CHECK,
            &["hosts.yaml:", "hosts"],
        ),
        case(
            "an invalid inventory stops install before the PKI",
            |d| {
                edit(d, "address: 10.10.10.129", "address: nope");
                fs::remove_dir_all(d.join("pki")).unwrap();
            },
            &["install", "-i", "hosts.yaml"],
            &["hosts.yaml:", "hosts[2].address"],
        ),
        // --- selections and flags ---
        case(
            "--hosts empty",
            none,
            &["install", "-i", "hosts.yaml", "--hosts", ""],
            &["--hosts", "empty"],
        ),
        case(
            "--hosts with an empty name",
            none,
            &["install", "-i", "hosts.yaml", "--hosts", "m1,,m2"],
            &["--hosts", "empty name"],
        ),
        case(
            "--hosts repeated",
            none,
            &["install", "-i", "hosts.yaml", "--hosts", "m1,m1"],
            &["--hosts", "`m1` is given twice"],
        ),
        case(
            "--hosts unknown, no PKI yet",
            |d| fs::remove_dir_all(d.join("pki")).unwrap(),
            &["install", "-i", "hosts.yaml", "--hosts", "nope"],
            &["unknown host `nope`", "m1"],
        ),
        case(
            "--phases empty",
            none,
            &["install", "-i", "hosts.yaml", "--phases", ""],
            &["--phases", "empty"],
        ),
        case(
            "--phases unknown, no PKI yet",
            |d| fs::remove_dir_all(d.join("pki")).unwrap(),
            &["install", "-i", "hosts.yaml", "--phases", "kubelet"],
            &["unknown phase `kubelet`", "control-plane"],
        ),
        case(
            "--parallelism 0",
            none,
            &["install", "-i", "hosts.yaml", "--parallelism", "0"],
            &["--parallelism"],
        ),
        case(
            "--parallelism not a number",
            none,
            &["install", "-i", "hosts.yaml", "--parallelism", "many"],
            &["--parallelism"],
        ),
        case(
            "--output unknown",
            none,
            &["status", "-i", "hosts.yaml", "--output", "xml"],
            &["--output", "xml"],
        ),
        case(
            "reset --hosts empty",
            none,
            &["reset", "-i", "hosts.yaml", "--hosts", "", "--yes"],
            &["--hosts", "empty"],
        ),
        case(
            "reset --hosts unknown",
            none,
            &["reset", "-i", "hosts.yaml", "--hosts", "nope", "--yes"],
            &["unknown host `nope`"],
        ),
        case(
            "reset without --yes and without a terminal",
            none,
            &["reset", "-i", "hosts.yaml"],
            &["--yes"],
        ),
        case("no --inventory", none, &["check"], &["--inventory"]),
        case("unknown command", none, &["instal"], &["instal"]),
        case(
            "unknown flag",
            none,
            &["install", "-i", "hosts.yaml", "--dryrun"],
            &["--dryrun"],
        ),
        // --- render --out ---
        case(
            "render --out the PKI directory",
            none,
            &["render", "-i", "hosts.yaml", "--out", "pki"],
            &["--out pki", "PKI directory"],
        ),
        case(
            "render --out inside the PKI directory",
            none,
            &["render", "-i", "hosts.yaml", "--out", "pki/rendered"],
            &["--out pki/rendered", "inside the PKI directory"],
        ),
        case(
            "render --out the inventory's directory",
            none,
            &["render", "-i", "hosts.yaml", "--out", "."],
            &["--out .", "inventory's directory"],
        ),
        case(
            "render --out a parent of the inventory",
            none,
            &["render", "-i", "hosts.yaml", "--out", ".."],
            &["--out ..", "contains"],
        ),
        case(
            "render --out a file",
            |d| write(d, "notes.txt", "mine\n"),
            &["render", "-i", "hosts.yaml", "--out", "notes.txt"],
            &["--out notes.txt", "not a directory"],
        ),
        case(
            "render --out the inventory file",
            none,
            &["render", "-i", "hosts.yaml", "--out", "hosts.yaml"],
            &["--out hosts.yaml", "is the inventory file"],
        ),
        case(
            "render --out a directory of the user's",
            |d| write(d, "notes/todo.txt", "mine\n"),
            &["render", "-i", "hosts.yaml", "--out", "notes"],
            &["--out notes", "not an earlier render output"],
        ),
        case(
            "render --out a symbolic link",
            |d| std::os::unix::fs::symlink("rendered", d.join("link")).unwrap(),
            &["render", "-i", "hosts.yaml", "--out", "link"],
            &["--out link", "symbolic link"],
        ),
        case(
            "render --out the templates directory",
            none,
            &[
                "render",
                "-i",
                "hosts.yaml",
                "--out",
                "templates",
                "--templates",
                "templates",
            ],
            &["--out templates", "templates directory"],
        ),
        // --- render --out and what the inventory names ---
        case(
            "render --out binaries.dir before any fetch",
            none,
            &["render", "-i", "hosts.yaml", "--out", "binaries"],
            &["--out binaries", "`binaries.dir` of the inventory"],
        ),
        case(
            "render --out inside binaries.dir",
            |d| edit(d, "dir: binaries", "dir: bin"),
            &["render", "-i", "hosts.yaml", "--out", "bin/out"],
            &["--out bin/out", "lies inside", "`binaries.dir`"],
        ),
        case(
            "render --out an earlier output that holds known_hosts",
            |d| {
                edit(
                    d,
                    "known_hosts: known_hosts",
                    "known_hosts: rendered/known_hosts",
                );
                write(d, "rendered/known_hosts", "m1 ssh-ed25519 AAAA\n");
            },
            &["render", "-i", "hosts.yaml", "--out", "rendered"],
            &[
                "--out rendered",
                "`ssh.known_hosts` of the inventory",
                "would delete",
            ],
        ),
        case(
            "render --out a new directory where known_hosts is to be recorded",
            |d| {
                edit(
                    d,
                    "known_hosts: known_hosts",
                    "known_hosts: later/known_hosts",
                )
            },
            &["render", "-i", "hosts.yaml", "--out", "later"],
            &["--out later", "`ssh.known_hosts`"],
        ),
        case(
            "render --out an earlier output that holds the SSH key",
            |d| {
                edit(d, "key: id_test", "key: rendered/keys/id_test");
                write(d, "rendered/keys/id_test", "not a real key\n");
            },
            &["render", "-i", "hosts.yaml", "--out", "rendered"],
            &["--out rendered", "`ssh.key` of the inventory"],
        ),
        case(
            "render --out an earlier output that holds a host's own key",
            |d| {
                edit(
                    d,
                    "roles: [lb]",
                    "roles: [lb]\n    ssh: {key: ./rendered/../rendered/lb.key}",
                );
                write(d, "rendered/lb.key", "not a real key\n");
            },
            &["render", "-i", "hosts.yaml", "--out", "rendered"],
            &["--out rendered", "`hosts[0].ssh.key` of the inventory"],
        ),
        case(
            "render --out an earlier output that binaries.dir links into",
            |d| {
                fs::create_dir(d.join("rendered/bin")).unwrap();
                std::os::unix::fs::symlink("rendered/bin", d.join("binlink")).unwrap();
                edit(d, "dir: binaries", "dir: binlink");
            },
            &["render", "-i", "hosts.yaml", "--out", "rendered"],
            &["--out rendered", "`binaries.dir`"],
        ),
        case(
            "render --out a directory the key path goes through by a link",
            |d| {
                fs::create_dir(d.join("keys")).unwrap();
                std::os::unix::fs::symlink("../id_test", d.join("keys/id")).unwrap();
                std::os::unix::fs::symlink("keys", d.join("keylink")).unwrap();
                edit(d, "key: id_test", "key: keylink/id");
            },
            &["render", "-i", "hosts.yaml", "--out", "keys"],
            &["--out keys", "`ssh.key`"],
        ),
        case(
            "render --out the directory of an absolute known_hosts",
            |d| {
                let abs = d.join("ssh-dir/known_hosts");
                write(d, "ssh-dir/known_hosts", "");
                edit(
                    d,
                    "known_hosts: known_hosts",
                    &format!("known_hosts: {}", abs.display()),
                );
            },
            &["render", "-i", "hosts.yaml", "--out", "ssh-dir"],
            &["--out ssh-dir", "`ssh.known_hosts`"],
        ),
        // --- templates ---
        case(
            "--templates missing",
            none,
            &[
                "render",
                "-i",
                "hosts.yaml",
                "--out",
                "new-out",
                "--templates",
                "nope",
            ],
            &["nope", "--templates"],
        ),
        case(
            "--templates with an unknown name",
            |d| write(d, "templates/etcd/etcd.conf", "x"),
            &[
                "render",
                "-i",
                "hosts.yaml",
                "--out",
                "new-out",
                "--templates",
                "templates",
            ],
            &["templates/etcd/etcd.conf", "not a template name"],
        ),
        case(
            "--templates with a syntax error",
            |d| write(d, "templates/kubeconfig.yaml", "{{ user "),
            &[
                "render",
                "-i",
                "hosts.yaml",
                "--out",
                "new-out",
                "--templates",
                "templates",
            ],
            &["templates/kubeconfig.yaml"],
        ),
        case(
            "--templates quoting the encryption key",
            |d| {
                write(
                    d,
                    "templates/control-plane/encryption-config.yaml",
                    "{{ encryption_key | round }}",
                )
            },
            &[
                "render",
                "-i",
                "hosts.yaml",
                "--out",
                "new-out",
                "--templates",
                "templates",
            ],
            &["templates/control-plane/encryption-config.yaml", "round"],
        ),
        case(
            "--templates quoting a client key",
            |d| write(d, "templates/kubeconfig.yaml", "{{ key_data | round }}"),
            &[
                "install",
                "-i",
                "hosts.yaml",
                "--dry-run",
                "--templates",
                "templates",
            ],
            &["templates/kubeconfig.yaml"],
        ),
        case(
            "status --templates with an unknown name",
            |d| write(d, "templates/etcd/etcd.conf", "x"),
            &["status", "-i", "hosts.yaml", "--templates", "templates"],
            &["templates/etcd/etcd.conf", "not a template name"],
        ),
        case(
            "deploy --templates missing",
            none,
            &["deploy", "-i", "hosts.yaml", "--templates", "nope"],
            &["nope", "--templates"],
        ),
        // --- the PKI on disk ---
        case(
            "--pki-dir is a file",
            none,
            &["certs", "-i", "hosts.yaml", "--pki-dir", "hosts.yaml"],
            &["hosts.yaml", "not a directory"],
        ),
        case(
            "render --pki-dir is a file",
            none,
            &[
                "render",
                "-i",
                "hosts.yaml",
                "--out",
                "new-out",
                "--pki-dir",
                "id_test",
            ],
            &["id_test", "not a directory"],
        ),
        case(
            "truncated ca.key",
            |d| {
                let key = fs::read(d.join("pki/ca.key")).unwrap();
                fs::write(d.join("pki/ca.key"), &key[..key.len() / 2]).unwrap();
            },
            &["certs", "-i", "hosts.yaml"],
            &["ca.key", "not a usable private key"],
        ),
        case(
            "a CA certificate without its key",
            |d| fs::remove_file(d.join("pki/front-proxy-ca.key")).unwrap(),
            RENDER_NEW,
            &["front-proxy-ca.key", "missing"],
        ),
        case(
            "status with an incomplete PKI",
            |d| fs::remove_file(d.join("pki/admin.crt")).unwrap(),
            &["status", "-i", "hosts.yaml"],
            &["admin.crt"],
        ),
        Case {
            code: 1,
            ..case(
                "certs check of a key with mode 0644",
                |d| {
                    fs::set_permissions(d.join("pki/admin.key"), fs::Permissions::from_mode(0o644))
                        .unwrap()
                },
                &["certs", "check", "-i", "hosts.yaml"],
                &["admin.key", "0644"],
            )
        },
        Case {
            code: 1,
            ..case(
                "certs check of a short encryption key",
                |d| write(d, "pki/encryption.key", "c2hvcnQta2V5LTE2Ynl0ZQ==\n"),
                &["certs", "check", "-i", "hosts.yaml"],
                &["encryption.key"],
            )
        },
        // --- registry mirrors ---
        case(
            "registry mirror: not a registry host",
            |d| mirrors(d, "      Docker.io: [{url: https://m.corp}]\n"),
            &["check", "-i", "hosts.yaml"],
            &["hosts.yaml:", "registry_mirrors.Docker.io", "registry host"],
        ),
        case(
            "registry mirror: no mirror listed",
            |d| mirrors(d, "      quay.io: []\n"),
            &["check", "-i", "hosts.yaml"],
            &["registry_mirrors.quay.io", "at least one"],
        ),
        case(
            "registry mirror: credentials in the URL",
            |d| {
                mirrors(
                    d,
                    "      docker.io: [{url: \"https://bob:hunter2@m.corp\"}]\n",
                )
            },
            &["check", "-i", "hosts.yaml"],
            &["registry_mirrors.docker.io[0].url", "auth_file"],
        ),
        case(
            "registry mirror: not http(s)",
            |d| mirrors(d, "      docker.io: [{url: m.corp:5000}]\n"),
            &["check", "-i", "hosts.yaml"],
            &["registry_mirrors.docker.io[0].url", "https://"],
        ),
        case(
            "registry mirror: credentials for plain http",
            |d| {
                mirrors(
                    d,
                    "      docker.io: [{url: \"http://m.corp\", auth_file: a}]\n",
                )
            },
            &["check", "-i", "hosts.yaml"],
            &["registry_mirrors.docker.io[0].auth_file", "clear text"],
        ),
        case(
            "registry mirror: unknown key",
            |d| {
                mirrors(
                    d,
                    "      docker.io: [{url: \"https://m.corp\", password: x}]\n",
                )
            },
            &["check", "-i", "hosts.yaml"],
            &["password"],
        ),
        case(
            "registry mirror: the CA file is a private key",
            |d| {
                mirror_with_files(d);
                edit(d, "ca_file: pki/ca.crt", "ca_file: pki/admin.key");
            },
            &["render", "-i", "hosts.yaml", "--out", "rendered"],
            &[
                "hosts.yaml",
                "registry.k8s.io[0].ca_file",
                "pki/admin.key",
                "CERTIFICATE",
            ],
        ),
        case(
            "registry mirror: the CA file is a link",
            |d| {
                mirror_with_files(d);
                std::os::unix::fs::symlink("ca.crt", d.join("pki/ca-link.crt")).unwrap();
                edit(d, "ca_file: pki/ca.crt", "ca_file: pki/ca-link.crt");
            },
            &["render", "-i", "hosts.yaml", "--out", "rendered"],
            &["registry.k8s.io[0].ca_file", "symbolic link"],
        ),
        case(
            "registry mirror: the CA file is missing",
            |d| {
                mirror_with_files(d);
                edit(d, "ca_file: pki/ca.crt", "ca_file: pki/nope.crt");
            },
            &["install", "-i", "hosts.yaml", "--dry-run"],
            &["registry.k8s.io[0].ca_file", "nope.crt", "missing"],
        ),
        case(
            "registry mirror: credentials readable by others",
            |d| {
                mirror_with_files(d);
                fs::set_permissions(d.join("registry.auth"), fs::Permissions::from_mode(0o644))
                    .unwrap();
            },
            &["render", "-i", "hosts.yaml", "--out", "rendered"],
            &["registry.k8s.io[0].auth_file", "chmod 600"],
        ),
        case(
            "registry mirror: credentials not user:password",
            |d| {
                mirror_with_files(d);
                write(d, "registry.auth", "hunter2\n");
            },
            &["render", "-i", "hosts.yaml", "--out", "rendered"],
            &["registry.k8s.io[0].auth_file", "user:password"],
        ),
        // --- fetch ---
        case(
            "fetch --version without v",
            none,
            &["fetch", "--version", "1.36", "--dir", "dl"],
            &["--version 1.36"],
        ),
        case(
            "fetch --version unsupported",
            none,
            &["fetch", "--version", "v1.20.0", "--dir", "dl"],
            &["--version v1.20.0", "v1.35"],
        ),
        case(
            "fetch --mirror not a URL",
            none,
            &[
                "fetch",
                "--version",
                "v1.37.2",
                "--mirror",
                "notaurl",
                "--dir",
                "dl",
            ],
            &["--mirror", "notaurl"],
        ),
        case(
            "fetch --registry-mirror without =",
            none,
            &[
                "fetch",
                "--version",
                "v1.37.2",
                "--registry-mirror",
                "docker.io",
                "--dir",
                "dl",
            ],
            &["--registry-mirror", "HOST=URL"],
        ),
        case(
            "fetch --arch unknown",
            none,
            &[
                "fetch",
                "--version",
                "v1.37.2",
                "--arch",
                "s390x",
                "--dir",
                "dl",
            ],
            &["--arch", "s390x"],
        ),
        case(
            "fetch --conformance without images",
            none,
            &[
                "fetch",
                "--version",
                "v1.37.2",
                "--conformance",
                "--no-images",
                "--dir",
                "dl",
            ],
            &["--conformance", "--no-images"],
        ),
        case(
            "fetch without version or inventory",
            none,
            &["fetch", "--dir", "dl"],
            &["--version", "--inventory"],
        ),
        case(
            "man --out a file",
            none,
            &["man", "--out", "hosts.yaml"],
            &["--out hosts.yaml", "not a directory"],
        ),
        case(
            "completions for an unknown shell",
            none,
            &["completions", "tcsh"],
            &["tcsh"],
        ),
        // --- backups ---
        case(
            "backup schedule with a shell command",
            |d| {
                edit(
                    d,
                    "    schedule: daily ",
                    "    schedule: \"daily; rm -rf /\" ",
                )
            },
            CHECK,
            &["hosts.yaml:", "etcd.backup.schedule", "calendar"],
        ),
        case(
            "backup keeping no snapshot",
            |d| edit(d, "    keep: 7 ", "    keep: 0 "),
            CHECK,
            &["hosts.yaml:", "etcd.backup.keep", "enabled: false"],
        ),
        case(
            "leaf validity of five minutes",
            |d| {
                edit(
                    d,
                    "  cert_validity_days: 365 ",
                    "  cert_validity_minutes: 5 ",
                )
            },
            CHECK,
            &["hosts.yaml:", "pki.cert_validity_minutes", "10 to"],
        ),
        case(
            "new CAs for an installed cluster",
            |d| write(d, "pki/admin.kubeconfig", "apiVersion: v1\n"),
            &["certs", "-i", "hosts.yaml", "--rotate-cas"],
            &[
                "--rotate-cas",
                "pki/admin.kubeconfig",
                "certs renew",
                "reset",
            ],
        ),
        case(
            "backup directory is a file",
            none,
            &["backup", "-i", "hosts.yaml", "--dir", "id_test"],
            &["backup directory", "id_test"],
        ),
        case(
            "restore of a snapshot without its manifest",
            |d| write(d, "lost.db", "not a snapshot"),
            &[
                "restore",
                "-i",
                "hosts.yaml",
                "--snapshot",
                "lost.db",
                "--yes",
            ],
            &["lost.json", "manifest"],
        ),
        case(
            "restore with a manifest that is not one",
            |d| {
                write(d, "odd.db", "not a snapshot");
                write(d, "odd.json", "{\"format\": 1}");
            },
            &[
                "restore",
                "-i",
                "hosts.yaml",
                "--snapshot",
                "odd.db",
                "--yes",
            ],
            &["odd.json", "not a backup manifest"],
        ),
        case(
            "dry run with an invalid inventory",
            |d| edit(d, "node_cidr_mask_size: 24", "node_cidr_mask_size: 8"),
            INSTALL_DRY,
            &["hosts.yaml:", "cluster.node_cidr_mask_size"],
        ),
    ]
}

#[test]
fn every_bad_input_is_refused_with_its_name_and_changes_nothing() {
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut names = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        assert!(names.insert(case.name), "two cases named {}", case.name);
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("project");
        let copied = Command::new("cp")
            .arg("-a")
            .arg(base_dir())
            .arg(&dir)
            .status()
            .unwrap();
        assert!(copied.success());
        (case.setup)(&dir);
        let before = snapshot(&dir);
        let out = k8s_boot(&dir, case.args, None);
        let mut problems = Vec::new();
        if out.code != Some(case.code) {
            problems.push(format!("exit {:?}, expected {}", out.code, case.code));
        }
        // Errors go to stderr; `certs check` prints its table (the problems) on stdout.
        let shown = format!("{}{}", out.stderr, out.stdout);
        for m in case.mentions {
            if !shown.contains(m) {
                problems.push(format!("the output does not mention `{m}`"));
            }
        }
        if snapshot(&dir) != before {
            problems.push("the directory changed".into());
        }
        for secret in secrets() {
            if out.stderr.contains(secret) || out.stdout.contains(secret) {
                problems.push("key material in the output".into());
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n  args: {:?}\n  stderr: {}",
                case.name,
                problems.join("; "),
                case.args,
                out.stderr.trim_end().replace('\n', "\n          ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn a_json_command_with_bad_input_prints_a_json_error() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    fs::write(
        dir.join("hosts.yaml"),
        base_inventory().replacen("address: 10.10.10.129", "address: nope", 1),
    )
    .unwrap();
    for args in [
        &["install", "-i", "hosts.yaml", "--output", "json"][..],
        &["status", "-i", "hosts.yaml", "--output", "json"],
        &["certs", "check", "-i", "hosts.yaml", "--output", "json"],
    ] {
        let out = k8s_boot(dir, args, None);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        let json: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {}", out.stdout));
        assert_eq!(json["schema_version"], 1);
        let command = args[..args.len() - 4].join(" ");
        assert_eq!(json["command"], command.as_str());
        assert_eq!(json["error"]["exit_code"], 2);
        let problem = &json["error"]["problems"][0];
        assert_eq!(problem["field"], "hosts[2].address", "{json}");
        assert_eq!(problem["file"], "hosts.yaml");
        assert!(problem["line"].as_u64().unwrap() > 40, "{json}");
    }
    assert!(!dir.join("pki").exists(), "a refused command wrote the PKI");
}
