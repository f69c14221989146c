//! `systemd-analyze verify` on every systemd unit `k8s-boot render` writes.
//!
//! verify loads a unit the way systemd would: it reports unknown directives, unparsable
//! values, missing `ExecStart=` programs and dependencies on units that do not exist. It does
//! not need systemd as PID 1. With `--root=DIR` it resolves units and programs inside DIR,
//! so each host gets a throwaway root holding:
//!   - the distribution's units (copied from /usr/lib/systemd/system: targets such as
//!     sysinit.target and network-online.target that our units order against),
//!   - the host's rendered units in /etc/systemd/system, as rendered,
//!   - stand-ins for the release binaries in /usr/local/bin: tiny executable shell scripts
//!     with the binaries' names, which is all verify checks about them.
//!
//! verify exits 0 on many problems (an unknown key is "ignored"), so the helper fails on any
//! output line that names one of our units as well as on a non-zero exit; a test feeds it
//! deliberately broken units to prove that it does.

mod common;

use common::{host, require_program, run, Rendered};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT_DIR: &str = "/etc/systemd/system";
/// Where the installer puts the release binaries (`paths.bin` in templates).
const BIN_DIR: &str = "/usr/local/bin";

fn inventory() -> String {
    // Every role combination that receives units: control-plane + worker, control-plane
    // only, dedicated etcd, worker only; the lb host gets none (nginx comes with its unit).
    common::inventory_yaml(
        "unittest",
        &[
            host("lb1", "10.30.0.10", &["lb"]),
            host("m1", "10.30.0.11", &["etcd", "control-plane", "worker"]),
            host("m2", "10.30.0.12", &["etcd", "control-plane"]),
            host("e1", "10.30.0.13", &["etcd"]),
            host("w1", "10.30.0.14", &["worker"]),
        ],
        "",
    )
}

fn distro_unit_dir() -> PathBuf {
    let dir = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("sysinit.target").exists());
    dir.unwrap_or_else(|| {
        panic!(
            "no systemd unit directory with sysinit.target: install the Debian package `systemd`"
        )
    })
}

/// Copies a directory tree, keeping symbolic links as links (unit aliases are links).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ty = entry.file_type().unwrap();
        if ty.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ty.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// The programs of a unit's `Exec*=` lines that systemd requires to exist (lines prefixed
/// with `-` may fail and are skipped).
fn exec_programs(unit: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in unit.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !key.trim().starts_with("Exec") {
            continue;
        }
        let value = value.trim_start();
        let prefixes: String = value.chars().take_while(|c| "-@:+!".contains(*c)).collect();
        if prefixes.contains('-') {
            continue;
        }
        if let Some(program) = value[prefixes.len()..].split_whitespace().next() {
            out.push(program.to_string());
        }
    }
    out
}

/// What units run besides the release binaries: the distribution's shell and nft, and the
/// scheduled backup script k8s-boot renders.
const OTHER_PROGRAMS: &[&str] = &[
    "/bin/sh",
    "/usr/sbin/nft",
    "/usr/local/sbin/k8s-boot-etcd-backup",
];

/// A verification root for a set of units: distribution units, our units, stand-ins.
struct Root {
    dir: PathBuf,
    units: Vec<String>,
}

impl Root {
    fn new(dir: &Path, units: &[(String, String)]) -> Root {
        copy_tree(&distro_unit_dir(), &dir.join("usr/lib/systemd/system"));
        let unit_dir = dir.join(UNIT_DIR.trim_start_matches('/'));
        let bin_dir = dir.join(BIN_DIR.trim_start_matches('/'));
        fs::create_dir_all(&unit_dir).unwrap();
        fs::create_dir_all(&bin_dir).unwrap();
        for (name, text) in units {
            fs::write(unit_dir.join(name), text).unwrap();
            for program in exec_programs(text) {
                assert!(
                    program.starts_with(&format!("{BIN_DIR}/"))
                        || OTHER_PROGRAMS.contains(&program.as_str()),
                    "{name} runs {program}, outside {BIN_DIR} where release binaries are installed"
                );
                // Stand-in for the release binary (or the shell, or the rendered script).
                let stand_in = dir.join(program.trim_start_matches('/'));
                fs::create_dir_all(stand_in.parent().unwrap()).unwrap();
                fs::write(&stand_in, "#!/bin/sh\nexit 0\n").unwrap();
                fs::set_permissions(&stand_in, fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        Root {
            dir: dir.to_path_buf(),
            units: units.iter().map(|(n, _)| n.clone()).collect(),
        }
    }

    fn path(&self, abs: &str) -> PathBuf {
        self.dir.join(abs.trim_start_matches('/'))
    }

    /// Runs `systemd-analyze verify --root` on all units of the root. Err lists the problems
    /// (every output line naming one of our units, or the exit status); Ok carries any other
    /// output, which concerns only distribution units.
    fn verify(&self) -> Result<String, String> {
        let analyze = require_program("systemd-analyze", "systemd");
        let mut cmd = Command::new(analyze);
        cmd.arg("verify")
            .arg(format!("--root={}", self.dir.display()));
        for u in &self.units {
            cmd.arg(self.path(UNIT_DIR).join(u));
        }
        let o = run(&mut cmd);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let (ours, noise): (Vec<&str>, Vec<&str>) = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .partition(|l| self.units.iter().any(|u| l.contains(u.as_str())));
        if !o.status.success() || !ours.is_empty() {
            return Err(format!("{}\n{}", o.status, ours.join("\n")));
        }
        Ok(noise.join("\n"))
    }
}

/// The rendered units of `host`: (file name, contents), sorted.
fn rendered_units(r: &Rendered, host: &str) -> Vec<(String, String)> {
    let dir = r.host_file(host, UNIT_DIR);
    if !dir.exists() {
        return Vec::new();
    }
    common::files_under(&dir, &|p| {
        p.extension()
            .is_some_and(|e| e == "service" || e == "timer")
    })
    .into_iter()
    .map(|p| {
        (
            p.file_name().unwrap().to_string_lossy().into_owned(),
            fs::read_to_string(&p).unwrap(),
        )
    })
    .collect()
}

fn names(units: &[(String, String)]) -> BTreeSet<&str> {
    units.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn every_rendered_unit_passes_systemd_analyze_verify() {
    require_program("systemd-analyze", "systemd");
    let tmp = tempfile::tempdir().unwrap();
    let r = common::render(tmp.path(), "units", &inventory());

    let node = [
        "containerd.service",
        // The chat runs behind an LB: its PROXY protocol NodePort is filtered.
        "k8s-boot-nodeport-filter.service",
        "kubelet.service",
        "kube-proxy.service",
    ];
    let control_plane = [
        "kube-apiserver.service",
        "kube-controller-manager.service",
        "kube-scheduler.service",
    ];
    let etcd = [
        "etcd.service",
        "k8s-boot-etcd-backup.service",
        "k8s-boot-etcd-backup.timer",
    ];
    let expected: [(&str, Vec<&str>); 5] = [
        ("lb1", vec![]),
        ("m1", [&node[..], &control_plane[..], &etcd[..]].concat()),
        ("m2", [&node[..], &control_plane[..], &etcd[..]].concat()),
        ("e1", etcd.to_vec()),
        ("w1", node.to_vec()),
    ];
    assert_eq!(
        r.hosts()
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        expected.iter().map(|(h, _)| *h).collect::<BTreeSet<_>>()
    );

    let mut verified = 0;
    for (host, want) in &expected {
        let units = rendered_units(&r, host);
        assert_eq!(
            names(&units),
            want.iter().copied().collect::<BTreeSet<_>>(),
            "units rendered for {host}"
        );
        if units.is_empty() {
            continue;
        }
        let root = Root::new(&tmp.path().join("roots").join(host), &units);
        match root.verify() {
            Ok(noise) => {
                if !noise.is_empty() {
                    eprintln!("{host}: systemd-analyze output about other units:\n{noise}");
                }
            }
            Err(problems) => panic!("systemd-analyze verify failed for {host}:\n{problems}"),
        }
        verified += units.len();
    }
    assert_eq!(verified, 10 + 10 + 3 + 4);
}

#[test]
fn verify_reports_broken_units() {
    require_program("systemd-analyze", "systemd");
    let tmp = tempfile::tempdir().unwrap();
    let r = common::render(tmp.path(), "units", &inventory());
    let units = rendered_units(&r, "m1");
    let unit = |name: &str| {
        units
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("m1 has no {name}"))
            .1
            .clone()
    };
    let etcd = unit("etcd.service");
    let mut case = 0;
    let mut expect_error = |what: &str, units: &[(String, String)], prepare: &dyn Fn(&Root)| {
        case += 1;
        let root = Root::new(&tmp.path().join(format!("broken{case}")), units);
        prepare(&root);
        match root.verify() {
            Err(problems) => assert!(
                problems.contains(&units[0].0),
                "{what}: the report does not name {}:\n{problems}",
                units[0].0
            ),
            Ok(noise) => panic!("{what}: verify found no problem (output: {noise})"),
        }
    };
    let with = |from: &str, to: &str| {
        assert!(etcd.contains(from), "etcd.service has no `{from}`");
        vec![("etcd.service".to_string(), etcd.replacen(from, to, 1))]
    };

    // The unmodified unit is clean in the same setup (so the failures below are caused by
    // the breakage alone).
    let clean = Root::new(
        &tmp.path().join("clean"),
        &[("etcd.service".to_string(), etcd.clone())],
    );
    assert!(clean.verify().is_ok(), "{:?}", clean.verify());

    // A misspelt directive (systemd ignores it with a warning, exit status 0).
    expect_error("misspelt After=", &with("\nAfter=", "\nAftr="), &|_| {});
    // A misspelt ExecStart= (the service has nothing to run).
    expect_error(
        "misspelt ExecStart=",
        &with("\nExecStart=", "\nExecStartt="),
        &|_| {},
    );
    // An invalid value.
    expect_error(
        "Restart=sometimes",
        &with("\nRestart=on-failure", "\nRestart=sometimes"),
        &|_| {},
    );
    // The release binary is not installed.
    expect_error(
        "missing binary",
        &[("etcd.service".to_string(), etcd.clone())],
        &|root| fs::remove_file(root.path(&format!("{BIN_DIR}/etcd"))).unwrap(),
    );
    // A dependency that does not exist: kubelet.service requires containerd.service.
    expect_error(
        "kubelet without containerd.service",
        &[("kubelet.service".to_string(), unit("kubelet.service"))],
        &|_| {},
    );
}
