//! The SSH layer against a real OpenSSH `sshd` on loopback: host-key policy, commands,
//! batch stat with the stamp quick check, uploads (skip identical, repair corrupted, atomic
//! replace, a check before replacing, survive a killed transfer).

mod common;

use common::{require_program, run, wait_for, Processes};
use k8s_boot::ssh::{AuthFailure, Upload};
use k8s_boot::ssh::{Connection, HostKeyPolicy, NewFile, Source, SshError, Target, Timeouts};
use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

struct Sshd {
    dir: PathBuf,
    port: u16,
    // Held so that sshd stops when the test drops this value.
    _procs: Processes,
}

fn keygen(path: &Path) {
    let out = run(
        Command::new(require_program("ssh-keygen", "openssh-client"))
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path),
    );
    assert!(out.status.success(), "{}", common::describe(&out));
}

impl Sshd {
    /// Starts sshd on 127.0.0.1 with a fresh host key; root logs in with `dir/id_ed25519`.
    fn start(dir: &Path) -> Sshd {
        let sshd = require_program("sshd", "openssh-server");
        fs::create_dir_all("/run/sshd").unwrap(); // privilege separation directory
        if !dir.join("id_ed25519").exists() {
            keygen(&dir.join("id_ed25519"));
            fs::copy(dir.join("id_ed25519.pub"), dir.join("authorized_keys")).unwrap();
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(dir, &sshd, port)
    }

    fn start_on(dir: &Path, sshd: &Path, port: u16) -> Sshd {
        let host_key = dir.join("host_ed25519");
        if !host_key.exists() {
            keygen(&host_key);
        }
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nLogLevel ERROR\n",
                hk = host_key.display(),
                d = dir.display()
            ),
        )
        .unwrap();
        let mut procs = Processes::new(&dir.join("logs"));
        procs.spawn(
            "sshd",
            Command::new(sshd)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config),
        );
        wait_for(
            "sshd to listen",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string()),
        );
        Sshd {
            dir: dir.to_path_buf(),
            port,
            _procs: procs,
        }
    }

    fn target(&self) -> Target {
        Target {
            name: "local".into(),
            address: "127.0.0.1".parse().unwrap(),
            port: self.port,
            user: "root".into(),
            key: Some(self.dir.join("id_ed25519")),
            sudo: false,
        }
    }

    fn policy(&self, accept_new: bool) -> HostKeyPolicy {
        HostKeyPolicy {
            known_hosts: self.dir.join("known_hosts"),
            accept_new,
            record_new: true,
        }
    }

    fn connect(&self) -> Connection {
        Connection::open(&self.target(), &self.policy(false), Timeouts::default()).unwrap()
    }
}

#[test]
fn host_keys_are_verified_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    // Unknown host: refused without --accept-new-host-keys, and nothing recorded.
    let err =
        Connection::open(&sshd.target(), &sshd.policy(false), Timeouts::default()).unwrap_err();
    assert!(matches!(err, SshError::HostKey { .. }), "{err}");
    assert!(err.to_string().contains("--accept-new-host-keys"), "{err}");
    assert!(!dir.path().join("known_hosts").exists());
    // A dry run trusts a new key for that run only: it connects and records nothing.
    let dry = HostKeyPolicy {
        record_new: false,
        ..sshd.policy(true)
    };
    Connection::open(&sshd.target(), &dry, Timeouts::default()).unwrap();
    assert!(!dir.path().join("known_hosts").exists());
    // Trust on first use records the key in OpenSSH format...
    Connection::open(&sshd.target(), &sshd.policy(true), Timeouts::default()).unwrap();
    let recorded = fs::read_to_string(dir.path().join("known_hosts")).unwrap();
    let host_pub = fs::read_to_string(dir.path().join("host_ed25519.pub")).unwrap();
    let key_b64 = host_pub.split_whitespace().nth(1).unwrap();
    assert_eq!(
        recorded,
        format!("[127.0.0.1]:{} ssh-ed25519 {key_b64}\n", sshd.port)
    );
    // ...which the real OpenSSH client accepts.
    let out = run(Command::new(require_program("ssh", "openssh-client"))
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
        ])
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.path().join("known_hosts").display()
        ))
        .arg("-i")
        .arg(dir.path().join("id_ed25519"))
        .args(["-p", &sshd.port.to_string(), "root@127.0.0.1", "true"]));
    assert!(out.status.success(), "{}", common::describe(&out));
    sshd.connect();

    // A changed host key is refused even with accept_new.
    let port = sshd.port;
    drop(sshd);
    fs::remove_file(dir.path().join("host_ed25519")).unwrap();
    fs::remove_file(dir.path().join("host_ed25519.pub")).unwrap();
    let sshd = Sshd::start_on(dir.path(), &require_program("sshd", "openssh-server"), port);
    let err =
        Connection::open(&sshd.target(), &sshd.policy(true), Timeouts::default()).unwrap_err();
    assert!(err.to_string().contains("differs from the one in"), "{err}");
    assert_eq!(
        fs::read_to_string(dir.path().join("known_hosts")).unwrap(),
        recorded
    );
}

#[test]
fn commands_report_exit_codes_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    Connection::open(&sshd.target(), &sshd.policy(true), Timeouts::default()).unwrap();
    let c = sshd.connect();
    assert_eq!(c.run("echo hello; echo warn >&2").unwrap(), "hello\n");
    let out = c.exec("echo out; echo boom >&2; exit 3").unwrap();
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (3, "out\n", "boom\n")
    );
    let err = c.run("echo bad thing >&2; false").unwrap_err().to_string();
    assert!(
        err.contains("exited with 1") && err.contains("bad thing"),
        "{err}"
    );
    // With its stderr on stdout (`2>&1`), what it said is in the error all the same.
    let err = c
        .run("{ echo why it failed >&2; false; } 2>&1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("why it failed"), "{err}");

    // Wrong key: authentication error names the user and the key.
    let mut t = sshd.target();
    t.key = Some(dir.path().join("host_ed25519"));
    let err = Connection::open(&t, &sshd.policy(false), Timeouts::default()).unwrap_err();
    assert!(
        matches!(
            err,
            SshError::Auth {
                failure: AuthFailure::Refused(_),
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("authentication as root failed (key ") && text.contains("host_ed25519"),
        "{text}"
    );
    // A key file that does not exist is named as such, before any attempt.
    t.key = Some(dir.path().join("no_such_key"));
    let err = Connection::open(&t, &sshd.policy(false), Timeouts::default()).unwrap_err();
    assert!(
        matches!(
            err,
            SshError::Auth {
                failure: AuthFailure::KeyFileMissing,
                ..
            }
        ),
        "{err}"
    );
    // Nothing listening: a connect error after the bounded retries.
    let mut t = sshd.target();
    t.port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let quick = Timeouts {
        attempts: 2,
        ..Timeouts::default()
    };
    let err = Connection::open(&t, &sshd.policy(false), quick).unwrap_err();
    assert!(
        matches!(err, SshError::Connect { .. }) && err.to_string().contains("refused"),
        "{err}"
    );
}

#[test]
fn uploads_skip_identical_repair_corrupted_and_replace_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    Connection::open(&sshd.target(), &sshd.policy(true), Timeouts::default()).unwrap();
    let c = sshd.connect();
    let dest_dir = dir.path().join("remote/etc/thing");
    let dest = dest_dir.join("config.yaml");
    let dest_s = dest.to_str().unwrap();

    assert_eq!(
        c.upload(Source::Bytes(b"a: 1\n"), dest_s, 0o600, "root:root")
            .unwrap(),
        Upload::Written
    );
    assert_eq!(fs::read(&dest).unwrap(), b"a: 1\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        c.upload(Source::Bytes(b"a: 1\n"), dest_s, 0o600, "root:root")
            .unwrap(),
        Upload::Unchanged
    );
    assert_eq!(
        c.upload(Source::Bytes(b"a: 1\n"), dest_s, 0o644, "root:root")
            .unwrap(),
        Upload::Metadata
    );
    assert_eq!(
        fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o644
    );
    // A file changed on the host is detected by checksum and replaced.
    fs::write(&dest, "a: 2\n").unwrap();
    assert_eq!(
        c.upload(Source::Bytes(b"a: 1\n"), dest_s, 0o644, "root:root")
            .unwrap(),
        Upload::Written
    );
    assert_eq!(fs::read(&dest).unwrap(), b"a: 1\n");
    // No temporary file is left beside the target.
    let names: Vec<_> = fs::read_dir(&dest_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["config.yaml"]);

    // A binary streamed from a file.
    let big = dir.path().join("big.bin");
    let data: Vec<u8> = (0..8_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    fs::write(&big, &data).unwrap();
    let bin = dest_dir.join("tool");
    assert_eq!(
        c.upload(
            Source::File(&big),
            bin.to_str().unwrap(),
            0o755,
            "root:root"
        )
        .unwrap(),
        Upload::Written
    );
    assert!(fs::read(&bin).unwrap() == data);
    assert_eq!(
        c.upload(
            Source::File(&big),
            bin.to_str().unwrap(),
            0o755,
            "root:root"
        )
        .unwrap(),
        Upload::Unchanged
    );
}

#[test]
fn put_replaces_a_file_only_when_its_check_accepts_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    Connection::open(&sshd.target(), &sshd.policy(true), Timeouts::default()).unwrap();
    let c = sshd.connect();
    let dest_dir = dir.path().join("remote/etc/lb");
    let dest = dest_dir.join("lb.conf");
    fs::create_dir_all(&dest_dir).unwrap();
    fs::write(&dest, "old\n").unwrap();
    let dest_s = dest.to_str().unwrap();
    let put = |content: &[u8]| {
        let sha = Source::Bytes(content).sha256().unwrap();
        let have = c.stat_files(&[dest_s]).unwrap();
        let file = NewFile {
            source: Source::Bytes(content),
            sha256: &sha,
            dest: dest_s,
            mode: 0o644,
            owner: "root:root",
            check: Some("grep -q '^valid' {}"),
        };
        c.put(&file, have.get(dest_s))
    };

    let err = put(b"broken\n").unwrap_err().to_string();
    assert!(
        err.contains("grep -q '^valid'") && err.contains("exited with 1"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&dest).unwrap(), "old\n");
    let names: Vec<_> = fs::read_dir(&dest_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["lb.conf"], "the rejected temporary file is removed");

    assert_eq!(put(b"valid\n").unwrap(), Upload::Written);
    assert_eq!(fs::read_to_string(&dest).unwrap(), "valid\n");
}

#[test]
fn stat_files_known_hashes_only_files_whose_stamp_changed() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    Connection::open(&sshd.target(), &sshd.policy(true), Timeouts::default()).unwrap();
    let c = sshd.connect();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    fs::write(&a, "a\n").unwrap();
    fs::write(&b, "b\n").unwrap();
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    let missing = dir.path().join("missing");
    let paths = [a_s, b_s, missing.to_str().unwrap()];

    let fresh = c.stat_files(&paths).unwrap();
    assert_eq!(fresh.len(), 2, "{fresh:?}");
    let real_a = Source::Bytes(b"a\n").sha256().unwrap();
    assert_eq!(fresh[a_s].sha256, real_a);
    assert_eq!(fresh[a_s].meta, "644 root:root");
    let stamps = c.stamps(&[a_s, b_s]).unwrap();
    assert_eq!(stamps[a_s], fresh[a_s].stamp);
    assert_eq!(stamps[a_s].split(':').next(), Some("2"), "size:mtime");

    // A recorded hash is trusted while the stamp matches; a stale stamp means hashing.
    let known = BTreeMap::from([
        (
            a_s.to_string(),
            (fresh[a_s].stamp.clone(), "recorded".to_string()),
        ),
        (b_s.to_string(), ("1:1".to_string(), "stale".to_string())),
    ]);
    let quick = c.stat_files_known(&paths, &known).unwrap();
    assert_eq!(quick[a_s].sha256, "recorded");
    assert_eq!(quick[b_s].sha256, Source::Bytes(b"b\n").sha256().unwrap());
}

#[test]
fn an_upload_killed_midway_leaves_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    Connection::open(&sshd.target(), &sshd.policy(true), Timeouts::default()).unwrap();
    let dest = dir.path().join("remote/kubelet");
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::write(&dest, "old binary").unwrap();
    let big = dir.path().join("new.bin");
    fs::write(&big, vec![7u8; 300_000_000]).unwrap();

    let target = sshd.target();
    let policy = sshd.policy(false);
    let dest_s = dest.to_str().unwrap().to_string();
    let big2 = big.clone();
    let upload = std::thread::spawn(move || {
        let c = Connection::open(&target, &policy, Timeouts::default()).unwrap();
        c.upload(Source::File(&big2), &dest_s, 0o755, "root:root")
    });
    // Wait until the transfer is under way (the temporary file grows), then kill the
    // session's sshd process, as a dropped connection would.
    let tmp = dest.parent().unwrap().join(".kubelet.k8s-boot-tmp");
    // The upload hashes the 300 MB first (slow in a debug build on a busy machine).
    wait_for(
        "the transfer to start",
        Duration::from_secs(120),
        Duration::from_millis(5),
        || match fs::metadata(&tmp) {
            Ok(m) if m.len() > 1_000_000 => Ok(()),
            _ => Err("not yet".to_string()),
        },
    );
    // Only this test's sshd: its direct children are the per-connection processes.
    let listener = fs::read_to_string(dir.path().join("sshd.pid")).unwrap();
    let out = run(Command::new("pkill").args(["-KILL", "-P", listener.trim()]));
    assert!(
        out.status.success(),
        "no session process to kill: {}",
        common::describe(&out)
    );
    let result = upload.join().unwrap();
    assert!(result.is_err(), "the upload must fail");
    assert_eq!(fs::read_to_string(&dest).unwrap(), "old binary");
    drop(sshd);
}
