//! backup and restore against in-memory hosts: what is copied and written, what is checked,
//! the restore's order. (On real hosts, with real etcd: tests/lab_cluster.rs.)

use super::manifest::{kept_key_path, Manifest};
use super::restore::{self, restore_with, RestoreError};
use super::{backup_with, Backup, BackupError, Options, REMOTE_DIR};
use crate::install::tests::Quiet;
use crate::operation::testing::{cluster_at, options, position, step_names, World};
use crate::pki::{Pki, ENCRYPTION_KEY};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use time::macros::datetime;

const SNAPSHOT: &[u8] = b"etcd snapshot bytes\0\x01\x02";
const NAME: &str = "t-20261207T120000Z";
const STATUS: &str =
    r#"{"hash":244233021,"revision":4711,"totalKey":12,"totalSize":20480,"version":"3.7.0"}"#;

/// The members answer a snapshot as etcdctl and etcdutl would: the file appears where it was
/// asked for, its status and sha256 are those of `bytes_there` (what the host has).
fn members_take_snapshots(w: &World, bytes_there: &[u8]) {
    let remote = format!("{REMOTE_DIR}/{NAME}.db");
    let sha = crate::digest::sha256_hex(bytes_there);
    for m in ["m1", "m2", "m3"] {
        let mut host = w.fake.host(m);
        host.files.insert(
            remote.clone(),
            (SNAPSHOT.to_vec(), 0o600, "root:root".into()),
        );
        host.replies
            .insert(0, ("snapshot status".into(), STATUS.into()));
        host.replies
            .insert(0, ("sha256sum".into(), format!("{sha}  {remote}\n")));
        host.replies.insert(
            0,
            (
                "endpoint status -w json".into(),
                r#"[{"Endpoint":"x","Status":{"version":"3.7.0"}}]"#.into(),
            ),
        );
    }
}

fn take(w: &World) -> Result<Backup, BackupError> {
    let (cluster, _) = cluster_at(w.dir.path(), "v1.36.3");
    let pki = Pki::new(w.dir.path().join("pki"));
    let opts = Options {
        dir: w.dir.path().join("backups"),
        accept_new_host_keys: false,
        timeouts: Default::default(),
    };
    backup_with(
        &cluster,
        &pki,
        &opts,
        &w.fake,
        datetime!(2026-12-07 12:00:00 UTC),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_backup_is_the_members_snapshot_with_a_manifest_and_leaves_no_copy_on_the_host() {
    let w = World::installed("v1.36.3");
    members_take_snapshots(&w, SNAPSHOT);
    let made = take(&w).unwrap();
    let dir = w.dir.path().join("backups");
    assert_eq!(made.snapshot, dir.join(format!("{NAME}.db")));
    assert_eq!(std::fs::read(&made.snapshot).unwrap(), SNAPSHOT);
    assert_eq!(
        (mode(&made.snapshot), mode(&made.manifest_file)),
        (0o600, 0o600)
    );
    let m: Manifest = serde_json::from_slice(&std::fs::read(&made.manifest_file).unwrap()).unwrap();
    assert_eq!(m, made.manifest);
    assert_eq!(
        (
            m.cluster.as_str(),
            m.created.as_str(),
            m.taken_from.as_str()
        ),
        ("t", "2026-12-07T12:00:00Z", "m1")
    );
    assert_eq!((m.revision, m.hash, m.total_keys), (4711, 244233021, 12));
    assert_eq!(m.sha256, crate::digest::sha256_hex(SNAPSHOT));
    assert_eq!(
        (m.kubernetes_version.as_str(), m.etcd_version.as_str()),
        ("v1.36.3", "3.7.0")
    );
    assert_eq!(m.members.len(), 3);
    assert_eq!(
        m.ca_fingerprints.keys().collect::<Vec<_>>(),
        ["ca", "etcd/ca", "front-proxy-ca"]
    );
    // The key: named by fingerprint, a copy kept in the PKI directory, never in the backup.
    let pki = w.dir.path().join("pki");
    let key = std::fs::read(pki.join(ENCRYPTION_KEY)).unwrap();
    assert_eq!(
        m.encryption_key.kept,
        kept_key_path(&pki, &m.encryption_key.fingerprint)
    );
    assert_eq!(std::fs::read(&m.encryption_key.kept).unwrap(), key);
    assert_eq!(mode(&m.encryption_key.kept), 0o600);
    let key_text = String::from_utf8(key).unwrap();
    let manifest_text = std::fs::read_to_string(&made.manifest_file).unwrap();
    assert!(!manifest_text.contains(key_text.trim()));
    // The snapshot was saved and checked on m1, then removed there.
    let m1 = w.fake.host("m1");
    let save = position(&m1.log, "snapshot save");
    assert!(m1.log[save].contains("--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt"));
    assert!(position(&m1.log, "etcdutl snapshot status") > save);
    assert!(!m1.files.contains_key(&format!("{REMOTE_DIR}/{NAME}.db")));
    // A second backup in the same second does not replace the first.
    drop(m1);
    assert!(matches!(take(&w), Err(BackupError::Exists(_))));
}

#[test]
fn a_copy_that_differs_from_the_hosts_is_not_kept() {
    let w = World::installed("v1.36.3");
    members_take_snapshots(&w, b"what the host really has");
    let err = take(&w).unwrap_err();
    assert!(matches!(err, BackupError::CopyDiffers { .. }), "{err}");
    let left: Vec<_> = std::fs::read_dir(w.dir.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != ".k8s-boot.lock")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!w
        .fake
        .host("m1")
        .files
        .contains_key(&format!("{REMOTE_DIR}/{NAME}.db")));
}

#[test]
fn a_member_that_is_down_or_unhealthy_is_passed_over() {
    let w = World::installed("v1.36.3");
    members_take_snapshots(&w, SNAPSHOT);
    w.fake.host("m1").unreachable = true;
    let health = serde_json::json!([
        {"endpoint": "https://10.0.0.11:2379", "health": false},
        {"endpoint": "https://10.0.0.12:2379", "health": false},
        {"endpoint": "https://10.0.0.13:2379", "health": true},
    ])
    .to_string();
    for m in ["m2", "m3"] {
        w.fake.host(m).replies.insert(
            0,
            ("endpoint health --cluster -w json".into(), health.clone()),
        );
    }
    assert_eq!(take(&w).unwrap().manifest.taken_from, "m3");
}

/// A backup of the world's cluster, checked for a restore (`force`).
fn backed_up(w: &World) -> (std::path::PathBuf, Result<Manifest, RestoreError>) {
    members_take_snapshots(w, SNAPSHOT);
    let made = take(w).unwrap();
    let (cluster, _) = cluster_at(w.dir.path(), "v1.36.3");
    let pki = Pki::new(w.dir.path().join("pki"));
    let checked = restore::check(&cluster, &pki, &made.snapshot, false);
    (made.snapshot, checked)
}

#[test]
fn restore_refuses_a_damaged_snapshot_another_clusters_and_one_needing_another_key() {
    let w = World::installed("v1.36.3");
    let (snapshot, checked) = backed_up(&w);
    checked.unwrap();
    let (cluster, _) = cluster_at(w.dir.path(), "v1.36.3");
    let check = |pki_dir: &Path, force: bool| {
        restore::check(&cluster, &Pki::new(pki_dir), &snapshot, force).map(drop)
    };
    let pki = w.dir.path().join("pki");

    // Another key in the PKI: refused, naming the key kept.
    let key = std::fs::read(pki.join(ENCRYPTION_KEY)).unwrap();
    std::fs::write(
        pki.join(ENCRYPTION_KEY),
        b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    )
    .unwrap();
    let e = check(&pki, false).unwrap_err().to_string();
    assert!(
        e.contains("encrypted with the key sha256:") && e.contains("backup-keys"),
        "{e}"
    );
    check(&pki, true).unwrap();
    std::fs::write(pki.join(ENCRYPTION_KEY), key).unwrap();

    // Another cluster's PKI: refused unless forced.
    let other = tempfile::tempdir().unwrap();
    Pki::new(other.path())
        .ensure(&cluster, Default::default())
        .unwrap();
    let e = check(other.path(), false).unwrap_err();
    assert!(matches!(e, RestoreError::Refused(_)), "{e}");
    assert!(e.to_string().contains("another cluster"), "{e}");
    assert_eq!(e.exit_code(), 2);
    check(other.path(), true).unwrap();

    // One byte changed: damaged, even when forced.
    let mut bytes = std::fs::read(&snapshot).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&snapshot, bytes).unwrap();
    let e = check(&pki, true).unwrap_err().to_string();
    assert!(e.contains("damaged"), "{e}");

    // No manifest beside it.
    std::fs::remove_file(restore::manifest_path(&snapshot)).unwrap();
    let e = check(&pki, true).unwrap_err().to_string();
    assert!(e.contains(".json") && e.contains("manifest"), "{e}");
}

fn run_restore(w: &World, snapshot: &Path, manifest: Manifest, dry_run: bool) -> restore::Report {
    let (cluster, _) = cluster_at(w.dir.path(), "v1.36.3");
    restore_with(
        &cluster,
        snapshot,
        manifest,
        &options(dry_run),
        &Quiet,
        &w.fake,
        datetime!(2026-12-08 09:30:00 UTC),
    )
    .unwrap()
}

#[test]
fn restore_stops_the_api_servers_then_etcd_restores_every_member_and_starts_them_again() {
    let w = World::installed("v1.36.3");
    let (snapshot, checked) = backed_up(&w);
    for h in ["m1", "m2", "m3", "w1"] {
        w.fake.host(h).log.clear();
    }
    let report = run_restore(&w, &snapshot, checked.unwrap(), false);
    assert!(!report.incomplete(), "{report:#?}");
    assert_eq!(
        step_names(&report.steps),
        [
            "stop API servers m1, m2, m3",
            "stop etcd m1, m2, m3",
            "restore etcd data m1",
            "restore etcd data m2",
            "restore etcd data m3",
            "start etcd m1, m2, m3",
            "start control planes m1, m2, m3",
            "restart kubelets m1, m2, m3, w1",
            "verify",
        ]
    );
    assert_eq!(report.token, "t-etcd-restore-20261208T093000Z");
    for m in ["m1", "m2", "m3"] {
        let host = w.fake.host(m);
        let log = &host.log;
        let restore = position(log, "etcdutl snapshot restore");
        assert!(
            position(log, "systemctl stop kube-apiserver") < position(log, "systemctl stop etcd")
        );
        assert!(
            position(log, "systemctl stop etcd")
                < position(log, "put /var/lib/k8s-boot/backup/restore.db")
        );
        assert!(position(log, "put /var/lib/k8s-boot/backup/restore.db") < restore);
        assert!(restore < position(log, "systemctl start --no-block etcd"));
        assert!(
            position(log, "systemctl start --no-block etcd")
                < position(log, "systemctl start --no-block kube-apiserver")
        );
        let command = &log[restore];
        for part in [
            format!("--name '{m}'"),
            "--initial-cluster 'm1=https://10.0.0.11:2380,m2=https://10.0.0.12:2380,m3=https://10.0.0.13:2380'".into(),
            "--initial-cluster-token 't-etcd-restore-20261208T093000Z'".into(),
            "--bump-revision 1000000000 --mark-compacted".into(),
            "mv /var/lib/etcd /var/lib/etcd.before-restore-20261208T093000Z".into(),
        ] {
            assert!(command.contains(&part), "{part} not in {command}");
        }
        assert!(!command.contains("rm -rf /var/lib/etcd "), "{command}");
        assert_eq!(host.files["/var/lib/k8s-boot/backup/restore.db"].1, 0o600);
    }
    // The whole restore waits for every member: no API server starts before m3's data.
    let m1 = w.fake.host("m1");
    assert!(
        position(&m1.log, "systemctl restart kubelet kube-proxy")
            > position(&m1.log, "systemctl start --no-block kube-apiserver")
    );
}

#[test]
fn a_restore_dry_run_changes_nothing() {
    let w = World::installed("v1.36.3");
    let (snapshot, checked) = backed_up(&w);
    for h in ["m1", "m2", "m3", "w1"] {
        w.fake.host(h).log.clear();
    }
    let report = run_restore(&w, &snapshot, checked.unwrap(), true);
    assert!(!report.incomplete());
    for h in ["m1", "m2", "m3", "w1"] {
        let host = w.fake.host(h);
        assert!(
            host.log
                .iter()
                .all(|c| !c.contains("systemctl") && !c.starts_with("put ")),
            "{h}: {:#?}",
            host.log
        );
    }
}
