//! Hostile and careless files in the directories k8s-boot writes, and runs that race or are
//! killed: the real binary on a real PKI directory (and a render output) with links, FIFOs,
//! devices, huge files, foreign modes, leftovers of killed runs planted, two runs at once,
//! and runs killed part-way. Each case checks what was refused or reported and that nothing
//! outside was written. No host is contacted.
//!
//! Run as root, the unreadable-file case drops to user 65534 (setpriv) for the run, so that
//! a permission is really refused.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INVENTORY: &str = "\
cluster: {name: t, kubernetes_version: v1.36.0}
hosts:
  - {name: lb1, address: 192.0.2.10, roles: [lb]}
  - {name: m1, address: 192.0.2.11, roles: [etcd, control-plane, worker]}
  - {name: w1, address: 192.0.2.21, roles: [worker]}
";

struct Project {
    dir: tempfile::TempDir,
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl Project {
    /// A directory with the inventory and a PKI made by `certs`.
    fn new() -> Project {
        let p = Project::bare();
        let out = p.run(&["certs"]);
        assert_eq!(out.code, Some(0), "{}", out.text());
        p
    }

    fn bare() -> Project {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hosts.yaml"), INVENTORY).unwrap();
        Project { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn pki(&self, rel: &str) -> PathBuf {
        self.dir.path().join("pki").join(rel)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_k8s-boot"));
        cmd.args(with_inventory(args))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).spawn().unwrap()
    }

    /// Runs the binary, killed after 20 s: a hang is a failure.
    fn run(&self, args: &[&str]) -> Output {
        finish(self.spawn(args))
    }

    /// `certs check --output json`: exit code, problems, and each row's status by file.
    fn check(&self) -> (Option<i32>, BTreeMap<String, String>) {
        let out = self.run(&["certs", "check", "--output", "json"]);
        let json: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.text()));
        let rows = json["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["file"].as_str().unwrap().to_string(),
                    r["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        (out.code, rows)
    }

    /// The files of the PKI directory (not the lock), with their bytes; links as their target.
    fn pki_files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let root = self.pki("");
        let mut todo = vec![root.clone()];
        while let Some(d) = todo.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let meta = fs::symlink_metadata(&p).unwrap();
                let rel = p
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if meta.is_dir() {
                    todo.push(p);
                } else if meta.file_type().is_symlink() {
                    out.insert(rel, fs::read_link(&p).unwrap().into_os_string().into_vec());
                } else if rel != ".k8s-boot.lock" && meta.is_file() {
                    out.insert(rel, fs::read(&p).unwrap());
                }
            }
        }
        out
    }
}

use std::os::unix::ffi::OsStringExt;

fn with_inventory(args: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    if !args.contains(&"-i") {
        out.extend(["-i".into(), "hosts.yaml".into()]);
    }
    out
}

fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("hung for 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Rows that are not `ok`.
fn problems(rows: &BTreeMap<String, String>) -> Vec<(&String, &String)> {
    rows.iter().filter(|(_, s)| *s != "ok").collect()
}

fn assert_no_temp_files(p: &Project) {
    for name in p.pki_files().keys() {
        assert!(!name.contains(".tmp-"), "left over: {name}");
    }
}

#[test]
fn two_runs_at_once_never_leave_a_mismatched_pair() {
    let p = Project::new();
    let mut busy = 0;
    for i in 0..12 {
        let second: &[&str] = if i % 3 == 0 {
            &["certs", "--rotate-cas"]
        } else {
            &["certs", "renew"]
        };
        let (a, b) = (p.spawn(&["certs", "renew"]), p.spawn(second));
        for out in [finish(a), finish(b)] {
            match out.code {
                Some(0) => {}
                Some(1) => {
                    busy += 1;
                    assert!(
                        out.stderr.contains("is in use by pid ") && out.stderr.contains("k8s-boot"),
                        "{}",
                        out.text()
                    );
                }
                other => panic!("exit {other:?}: {}", out.text()),
            }
        }
        let (code, rows) = p.check();
        assert_eq!(code, Some(0), "round {i}: {:?}", problems(&rows));
        assert_no_temp_files(&p);
    }
    assert!(busy > 0, "the runs never overlapped");
}

#[test]
fn a_check_while_certs_writes_is_refused_not_shown_half_written() {
    let p = Project::new();
    let mut refused = 0;
    for delay_ms in (0..150).step_by(15) {
        let writer = p.spawn(&["certs", "--rotate-cas"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let reader = p.run(&["certs", "check"]);
        if reader.stderr.contains("is in use by pid ") {
            assert_eq!(reader.code, Some(1));
            assert!(reader.stdout.is_empty(), "{}", reader.text());
            refused += 1;
        } else {
            // Before or after the write, never a key beside another's certificate.
            assert!(
                matches!(reader.code, Some(0) | Some(1)),
                "{}",
                reader.text()
            );
            assert!(
                !reader.stdout.contains("does not match"),
                "{}",
                reader.text()
            );
        }
        // The check may have held the lock first: then the writer is the one refused.
        let out = finish(writer);
        match out.code {
            Some(0) => {}
            Some(1) if out.stderr.contains("is in use by") => refused += 1,
            _ => panic!("{}", out.text()),
        }
    }
    assert!(refused > 0, "the check and the write never overlapped");
}

#[test]
fn runs_killed_part_way_leave_old_or_new_pairs_and_the_next_run_tidies() {
    let p = Project::new();
    for delay_ms in (0..200).step_by(15) {
        let mut child = p.spawn(&["certs", "--rotate-cas"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SAFETY: kill on the pid of a child this test owns.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
        // Until the next certs: every mismatched key is the key of a pair whose
        // certificate is still staged, and certs check lists that file.
        let (_, rows) = p.check();
        for (file, status) in &rows {
            if status.contains("does not match") {
                let pending = rows
                    .keys()
                    .any(|f| f.contains(&format!(".{file}.tmp-")) || f.contains(".crt.tmp-"));
                assert!(pending, "{file}: {status}, nothing staged: {rows:?}");
            }
        }
        let out = p.run(&["certs"]);
        assert_eq!(out.code, Some(0), "after {delay_ms} ms: {}", out.text());
        let (code, rows) = p.check();
        assert_eq!(code, Some(0), "after {delay_ms} ms: {:?}", problems(&rows));
        assert_no_temp_files(&p);
    }
}

#[test]
fn a_pair_half_renamed_by_a_killed_run_is_completed_not_reissued() {
    let p = Project::new();
    let old_crt = fs::read(p.pki("admin.crt")).unwrap();
    let old_ca_crt = fs::read(p.pki("front-proxy-ca.crt")).unwrap();
    let out = p.run(&["certs", "--rotate-cas"]);
    assert_eq!(out.code, Some(0), "{}", out.text());
    let (new_crt, new_ca_crt) = (
        fs::read(p.pki("admin.crt")).unwrap(),
        fs::read(p.pki("front-proxy-ca.crt")).unwrap(),
    );
    // As a run killed between renaming the keys and the certificates leaves them.
    for (file, old, new, tmp) in [
        ("admin.crt", &old_crt, &new_crt, ".admin.crt.tmp-4242-0a"),
        (
            "front-proxy-ca.crt",
            &old_ca_crt,
            &new_ca_crt,
            ".front-proxy-ca.crt.tmp-4242",
        ),
    ] {
        fs::write(p.pki(file), old).unwrap();
        fs::write(p.pki(tmp), new).unwrap();
    }
    // Other leftovers: a half-written key and a link planted at a temporary name.
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, "keep").unwrap();
    fs::write(p.pki(".ca.key.tmp-4243-ff"), "-----BEGIN PRIV").unwrap();
    symlink(&victim, p.pki("etcd/.ca.crt.tmp-4244-01")).unwrap();

    let (code, rows) = p.check();
    assert_eq!(code, Some(1));
    assert_eq!(rows["admin.crt"], "admin.key: does not match admin.crt");
    for left in [
        ".admin.crt.tmp-4242-0a",
        ".ca.key.tmp-4243-ff",
        "etcd/.ca.crt.tmp-4244-01",
    ] {
        assert_eq!(
            rows[left],
            "left by an interrupted run: `k8s-boot certs` completes or removes it"
        );
    }

    let out = p.run(&["certs"]);
    assert_eq!(out.code, Some(0), "{}", out.text());
    assert!(out.stderr.contains("completed admin.crt"), "{}", out.text());
    assert!(
        out.stderr.contains("completed front-proxy-ca.crt"),
        "{}",
        out.text()
    );
    assert!(
        out.stderr.contains("removed .ca.key.tmp-4243-ff"),
        "{}",
        out.text()
    );
    assert!(out.stdout.contains("0 changed"), "{}", out.text());
    assert_eq!(fs::read(p.pki("admin.crt")).unwrap(), new_crt);
    assert_eq!(fs::read(p.pki("front-proxy-ca.crt")).unwrap(), new_ca_crt);
    assert_eq!(fs::read(&victim).unwrap(), b"keep");
    assert_no_temp_files(&p);
    assert_eq!(p.check().0, Some(0));
}

#[test]
fn a_link_planted_in_the_pki_is_refused_and_nothing_is_written_through_it() {
    let p = Project::new();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, "keep").unwrap();
    for (planted, command) in [
        ("admin.key", &["certs", "renew"][..]),
        ("kubelet-w1.crt", &["certs"][..]),
        ("ca.key", &["certs"][..]),
        ("sa.pub", &["certs"][..]),
    ] {
        let saved = fs::read(p.pki(planted)).unwrap();
        fs::remove_file(p.pki(planted)).unwrap();
        symlink(&victim, p.pki(planted)).unwrap();
        let before = p.pki_files();
        let out = p.run(command);
        assert_eq!(out.code, Some(2), "{planted}: {}", out.text());
        assert!(
            out.stderr.contains(&format!(
                "pki/{planted}: is a symbolic link, not a regular file (links are not followed); a file that cannot be read is never replaced"
            )),
            "{planted}: {}",
            out.text()
        );
        assert!(p.pki_files() == before, "{planted}: something was written");
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        let (code, rows) = p.check();
        assert_eq!(code, Some(1));
        assert!(
            rows.values().any(|s| s.contains("is a symbolic link")),
            "{planted}: {rows:?}"
        );
        fs::remove_file(p.pki(planted)).unwrap();
        fs::write(p.pki(planted), saved).unwrap();
        fs::set_permissions(
            p.pki(planted),
            fs::Permissions::from_mode(if planted.ends_with(".key") {
                0o600
            } else {
                0o644
            }),
        )
        .unwrap();
    }
    assert_eq!(p.check().0, Some(0));
}

#[test]
fn a_dangling_link_at_the_encryption_key_is_never_replaced() {
    let p = Project::new();
    let gone = p.path("gone/encryption.key");
    fs::remove_file(p.pki("encryption.key")).unwrap();
    symlink(&gone, p.pki("encryption.key")).unwrap();
    for command in [&["certs"][..], &["render", "--out", "out"][..]] {
        let out = p.run(command);
        assert_eq!(out.code, Some(2), "{command:?}: {}", out.text());
        assert!(
            out.stderr.contains("encryption.key: is a symbolic link")
                && out.stderr.contains("never replaced"),
            "{}",
            out.text()
        );
        assert_eq!(fs::read_link(p.pki("encryption.key")).unwrap(), gone);
        assert!(!gone.exists() && !p.path("out").exists());
    }
}

#[test]
fn a_linked_subdirectory_is_refused_and_no_key_lands_outside() {
    let p = Project::new();
    let outside = tempfile::tempdir().unwrap();
    fs::rename(p.pki("etcd"), p.path("etcd-real")).unwrap();
    symlink(outside.path(), p.pki("etcd")).unwrap();
    for command in [&["certs"][..], &["certs", "check"][..]] {
        let out = p.run(command);
        assert_eq!(out.code, Some(2), "{command:?}: {}", out.text());
        assert!(
            out.stderr.contains("etcd: is a symbolic link"),
            "{}",
            out.text()
        );
    }
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn fifos_devices_and_huge_files_are_refused_without_hanging() {
    let p = Project::new();
    let fifo = std::ffi::CString::new(p.pki("ca.crt").to_str().unwrap()).unwrap();
    fs::remove_file(p.pki("ca.crt")).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    fs::remove_file(p.pki("sa.key")).unwrap();
    symlink("/dev/zero", p.pki("sa.key")).unwrap();
    fs::write(p.pki("admin.crt"), vec![b'A'; (1 << 20) + 1]).unwrap();
    if is_root() {
        fs::remove_file(p.pki("scheduler.key")).unwrap();
        let dev = std::ffi::CString::new(p.pki("scheduler.key").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; /dev/null's numbers.
        let rc = unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) };
        assert_eq!(rc, 0);
    }
    let started = Instant::now();
    let (code, rows) = p.check();
    assert_eq!(code, Some(1));
    assert_eq!(
        rows["ca.crt"],
        "is a FIFO (named pipe), not a regular file (links are not followed)"
    );
    assert_eq!(
        rows["sa.key"],
        "sa.key: is a symbolic link, not a regular file (links are not followed)"
    );
    assert_eq!(
        rows["admin.crt"],
        "is larger than 1 MiB, the most read from it"
    );
    if is_root() {
        assert_eq!(
            rows["scheduler.crt"],
            "scheduler.key: is a character device, not a regular file (links are not followed)"
        );
    }
    let out = p.run(&["certs"]);
    assert_eq!(out.code, Some(2), "{}", out.text());
    assert!(out.stderr.contains("ca.crt: is a FIFO"), "{}", out.text());
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn a_pki_directory_writable_by_others_is_refused_by_group_warned() {
    let p = Project::new();
    let before = p.pki_files();
    fs::set_permissions(p.pki(""), fs::Permissions::from_mode(0o777)).unwrap();
    for command in [
        &["certs"][..],
        &["certs", "check"][..],
        &["render", "--out", "out"][..],
    ] {
        let out = p.run(command);
        assert_eq!(out.code, Some(2), "{command:?}: {}", out.text());
        assert!(
            out.stderr.contains("is writable by others (mode 0777)")
                && out.stderr.contains("chmod o-w"),
            "{}",
            out.text()
        );
    }
    assert!(p.pki_files() == before, "something was written");
    fs::set_permissions(p.pki(""), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(p.pki("etcd"), fs::Permissions::from_mode(0o757)).unwrap();
    assert_eq!(p.run(&["certs"]).code, Some(2));
    fs::set_permissions(p.pki("etcd"), fs::Permissions::from_mode(0o775)).unwrap();
    let out = p.run(&["certs"]);
    assert_eq!(out.code, Some(0), "{}", out.text());
    assert!(
        out.stderr.contains("etcd is writable by group") && out.stderr.contains("chmod g-w"),
        "{}",
        out.text()
    );
}

#[test]
fn a_certificate_not_yet_valid_is_a_problem_and_reissued() {
    let p = Project::new();
    let ca = rcgen::Issuer::from_ca_cert_pem(
        &fs::read_to_string(p.pki("ca.crt")).unwrap(),
        rcgen::KeyPair::from_pem(&fs::read_to_string(p.pki("ca.key")).unwrap()).unwrap(),
    )
    .unwrap();
    // admin's row: O=k8s-boot:cluster-admins, CN=kubernetes-admin, client auth, no SAN.
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "k8s-boot:cluster-admins");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kubernetes-admin");
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = time::OffsetDateTime::now_utc() + time::Duration::days(2);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(300);
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    let key = rcgen::KeyPair::from_pem(&fs::read_to_string(p.pki("admin.key")).unwrap()).unwrap();
    fs::write(
        p.pki("admin.crt"),
        params.signed_by(&key, &ca).unwrap().pem(),
    )
    .unwrap();
    let (code, rows) = p.check();
    assert_eq!(code, Some(1));
    assert!(
        rows["admin.crt"].starts_with("not valid before ")
            && rows["admin.crt"].ends_with(" UTC (check this machine's clock)"),
        "{rows:?}"
    );
    let out = p.run(&["certs"]);
    assert!(
        out.stdout.contains("reissued admin.crt (not valid before "),
        "{}",
        out.text()
    );
    assert_eq!(p.check().0, Some(0));
}

#[test]
fn an_encrypted_or_sec1_key_says_why_it_is_not_usable() {
    let p = Project::new();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(p.pki(""))
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    let key_lines: Vec<String> = fs::read_to_string(p.pki("ca.key"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(String::from)
        .collect();
    openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        "ca.key",
        "-out",
        "ca.key.enc",
        "-passout",
        "pass:x",
    ]);
    fs::rename(p.pki("ca.key.enc"), p.pki("ca.key")).unwrap();
    let out = p.run(&["certs"]);
    assert_eq!(out.code, Some(2), "{}", out.text());
    assert!(
        out.stderr
            .contains("ca.key: not a usable private key: the key is encrypted")
            && out.stderr.contains("openssl pkey"),
        "{}",
        out.text()
    );
    for line in &key_lines {
        assert!(!out.text().contains(&line[..20]));
    }

    // SEC1, as `openssl ec` writes it: what the loader reads instead of refusing it.
    openssl(&["ec", "-in", "admin.key", "-out", "admin.sec1"]);
    fs::rename(p.pki("admin.sec1"), p.pki("admin.key")).unwrap();
    let (_, rows) = p.check();
    let admin = &rows["admin.crt"];
    assert!(
        admin == "ok"
            || admin.starts_with(
                "admin.key: not a usable private key: a SEC1 EC (BEGIN EC PRIVATE KEY) key"
            ),
        "{admin}"
    );
}

#[test]
fn an_unreadable_key_is_reported_as_unreadable_and_not_replaced() {
    let p = Project::new();
    fs::set_permissions(p.pki("admin.key"), fs::Permissions::from_mode(0o000)).unwrap();
    let saved = fs::read(p.pki("admin.key")).unwrap();
    // As root a mode refuses nothing: run as nobody, who then owns the project.
    let unprivileged = |args: &[&str]| -> Output {
        let mut cmd = if is_root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_k8s-boot"));
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_k8s-boot"))
        };
        cmd.args(with_inventory(args))
            .current_dir(p.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        finish(cmd.spawn().unwrap())
    };
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(p.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        fs::set_permissions(p.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = unprivileged(&["certs", "check"]);
    assert_eq!(out.code, Some(1), "{}", out.text());
    assert!(
        out.stdout
            .contains("admin.key: cannot be read: Permission denied (os error 13)"),
        "{}",
        out.text()
    );
    assert!(!out.stdout.contains("admin.key: missing"));
    let out = unprivileged(&["certs"]);
    assert_eq!(out.code, Some(2), "{}", out.text());
    assert!(
        out.stderr
            .contains("admin.key: cannot be read: Permission denied")
            && out.stderr.contains("never replaced"),
        "{}",
        out.text()
    );
    fs::set_permissions(p.pki("admin.key"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(fs::read(p.pki("admin.key")).unwrap(), saved);
}

#[test]
fn renders_at_once_exclude_each_other_and_leftovers_of_killed_ones_go() {
    let p = Project::new();
    let out = p.run(&["render", "--out", "out"]);
    assert_eq!(out.code, Some(0), "{}", out.text());
    // What killed renders leave next to the output, and a look-alike that is not theirs.
    fs::create_dir_all(p.path(".out.new-4242/hosts")).unwrap();
    fs::create_dir_all(p.path(".out.old-4243/hosts")).unwrap();
    fs::create_dir(p.path(".out.new-mine")).unwrap();
    let mut refused = 0;
    for _ in 0..6 {
        let (a, b) = (
            p.spawn(&["render", "--out", "out"]),
            p.spawn(&["render", "--out", "out"]),
        );
        for out in [finish(a), finish(b)] {
            match out.code {
                Some(0) => {}
                _ => {
                    refused += 1;
                    assert!(
                        out.stderr.contains("is held by") || out.stderr.contains("in use by"),
                        "{}",
                        out.text()
                    );
                }
            }
        }
        let plan = fs::read_to_string(p.path("out/plan.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&plan).unwrap();
    }
    assert!(refused > 0, "the renders never overlapped");
    assert!(!p.path(".out.new-4242").exists() && !p.path(".out.old-4243").exists());
    assert!(p.path(".out.new-mine").is_dir());
    let siblings: Vec<String> = fs::read_dir(p.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".out.") && n != ".out.new-mine" && n != ".out.lock")
        .collect();
    assert!(siblings.is_empty(), "{siblings:?}");
}

#[test]
fn versions_json_is_read_as_a_capped_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join(k8s_boot::fetch::MANIFEST_FILE);
    assert!(
        k8s_boot::fetch::read_manifest(dir.path()).is_ok(),
        "absent: empty"
    );
    symlink("/dev/zero", &manifest).unwrap();
    let err = k8s_boot::fetch::read_manifest(dir.path()).unwrap_err();
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
    fs::remove_file(&manifest).unwrap();
    fs::write(&manifest, vec![b' '; (4 << 20) + 1]).unwrap();
    let err = k8s_boot::fetch::read_manifest(dir.path()).unwrap_err();
    assert!(err.to_string().contains("is larger than 4 MiB"), "{err}");
}
