//! The upgrade against in-memory hosts: its order, a failure in the middle and the run that
//! continues, a dry run, the skew policy, `install` refusing a version change. (On real
//! hosts: tests/lab_cluster.rs.)

use super::{upgrade_with, Report, UpgradeError};
use crate::install::state::STATE_FILE;
use crate::install::tests::Quiet;
use crate::install::{self, InstallError};
use crate::operation::testing::{
    cluster_at, options, position, step_changes, step_names, World, HOSTS, HOST_PHASES,
};
use crate::operation::Outcome;

fn upgrade(w: &World, version: &str, dry_run: bool) -> Result<Report, UpgradeError> {
    let (cluster, plan) = cluster_at(w.dir.path(), version);
    upgrade_with(&cluster, &plan, &options(dry_run), &Quiet, &w.fake)
}

fn steps(report: &Report) -> Vec<String> {
    step_names(&report.steps)
}

fn changes(report: &Report, step: &str) -> Vec<String> {
    step_changes(&report.steps, step)
}

#[test]
fn an_upgrade_goes_etcd_leader_last_then_control_planes_then_drained_nodes() {
    let w = World::installed("v1.37.2");
    let report = upgrade(&w, "v1.37.2", false).unwrap();
    assert!(!report.incomplete(), "{report:#?}");
    assert_eq!(
        steps(&report),
        [
            "stage lb1, m1, m2, m3, w1",
            "etcd m1",
            "etcd m3",
            "etcd m2",
            "lb lb1",
            "control-plane m1",
            "control-plane m2",
            "control-plane m3",
            "node m1",
            "node m2",
            "node m3",
            "node w1",
            "add-ons",
        ]
    );
    assert_eq!(report.from["m1"], "v1.36.3");
    // Staging writes beside the binaries and restarts nothing.
    let staged = changes(&report, "stage lb1, m1, m2, m3, w1");
    assert!(
        staged.contains(&"m1: binaries: write /usr/local/bin/kubelet.k8s-boot-staged".into()),
        "{staged:#?}"
    );
    assert!(
        staged.iter().all(|c| c.contains(".k8s-boot-staged")),
        "{staged:#?}"
    );
    // Each host step restarts only its own phase's services, from the staged binaries.
    let etcd = changes(&report, "etcd m1");
    assert!(etcd.contains(&"m1: binaries: write /usr/local/bin/etcd".into()));
    assert!(etcd.contains(&"m1: etcd: restart etcd".into()), "{etcd:#?}");
    assert!(
        !etcd.iter().any(|c| c.contains("kube-apiserver")),
        "{etcd:#?}"
    );
    let cp = changes(&report, "control-plane m2");
    assert!(
        cp.contains(&"m2: control-plane: restart kube-apiserver".into()),
        "{cp:#?}"
    );
    assert!(!cp.iter().any(|c| c.contains("restart kubelet")), "{cp:#?}");
    // A node is drained from another control-plane host, then uncordoned.
    let node = changes(&report, "node m1");
    assert_eq!(node.first().unwrap(), "m1: cordoned and drained");
    assert!(
        node.contains(&"m1: node: restart kubelet".into()),
        "{node:#?}"
    );
    assert_eq!(node.last().unwrap(), "m1: Ready on v1.37.2, uncordoned");
    let m2_log = w.fake.host("m2").log.clone();
    let drain = position(&m2_log, " drain 'm1'");
    let uncordon = position(&m2_log, " uncordon 'm1'");
    assert!(drain < uncordon);
    assert!(m2_log[drain].contains("--ignore-daemonsets"));
    // Every host now runs v1.37.2, nothing staged is left.
    for h in HOSTS {
        let state = w.state(h);
        assert!(
            state.versions.values().all(|v| v == "v1.37.2"),
            "{h}: {:?}",
            state.versions
        );
        assert!(state.pending_restarts.is_empty(), "{h}");
        assert!(!state.files.keys().any(|f| f.ends_with(".k8s-boot-staged")));
        assert!(!w
            .fake
            .host(h)
            .files
            .keys()
            .any(|f| f.ends_with(".k8s-boot-staged")));
    }
    let kubelet = w.fake.host("w1").files["/usr/local/bin/kubelet"].clone();
    assert_eq!(kubelet.0, b"kubelet v1.37.2\n");
    assert_eq!(kubelet.1, 0o755);

    // Done: a second run has nothing but the add-ons to look at, and changes nothing.
    let again = upgrade(&w, "v1.37.2", false).unwrap();
    assert_eq!(steps(&again), ["add-ons"]);
    assert!(changes(&again, "add-ons").is_empty(), "{again:#?}");
}

#[test]
fn a_failed_step_stops_the_upgrade_and_the_next_run_continues_from_it() {
    let w = World::installed("v1.37.2");
    w.fake
        .host("m2")
        .failing
        .push("systemctl restart --no-block kube-apiserver".into());
    let report = upgrade(&w, "v1.37.2", false).unwrap();
    assert!(report.incomplete());
    let failed = report
        .steps
        .iter()
        .find(|s| matches!(s.outcome, Outcome::Failed { .. }))
        .unwrap();
    assert_eq!(failed.step, "control-plane m2");
    let after: Vec<_> = report
        .steps
        .iter()
        .skip_while(|s| s.step != "control-plane m2")
        .skip(1)
        .collect();
    assert!(!after.is_empty() && after.iter().all(|s| matches!(s.outcome, Outcome::NotRun)));
    // m1's control plane is on the new version, m2's and every kubelet on the old one.
    assert_eq!(w.state("m1").versions["kube-apiserver"], "v1.37.2");
    assert_eq!(w.state("m2").versions["kube-apiserver"], "v1.36.3");
    assert_eq!(w.state("w1").versions["kubelet"], "v1.36.3");
    assert_eq!(w.state("m3").versions["etcd"], "v1.37.2");

    // Fixed: the same command continues with m2's control plane.
    w.fake.host("m2").failing.clear();
    let resumed = upgrade(&w, "v1.37.2", false).unwrap();
    assert!(!resumed.incomplete(), "{resumed:#?}");
    let steps = steps(&resumed);
    // m1 still runs its old kubelet.
    assert_eq!(steps[0], "stage m1, m2, m3, w1");
    assert_eq!(steps[1], "control-plane m2");
    assert!(!steps
        .iter()
        .any(|s| s.starts_with("etcd") || s == "control-plane m1"));
    assert_eq!(steps.last().unwrap(), "add-ons");
    assert_eq!(w.state("w1").versions["kubelet"], "v1.37.2");
}

#[test]
fn a_dry_run_shows_every_step_and_changes_nothing() {
    let w = World::installed("v1.37.2");
    let before = w.files();
    let report = upgrade(&w, "v1.37.2", true).unwrap();
    assert!(report.dry_run && !report.incomplete(), "{report:#?}");
    assert_eq!(report.steps.len(), 13);
    assert!(changes(&report, "control-plane m3")
        .contains(&"m3: control-plane: restart kube-apiserver".into()));
    assert!(changes(&report, "node w1")[0].starts_with("w1: cordon and drain"));
    assert_eq!(w.files(), before, "a dry run changed a file");
    for h in ["m1", "m2", "m3"] {
        let log = w.fake.host(h).log.clone();
        assert!(
            !log.iter()
                .any(|c| c.contains(" cordon ") || c.contains(" drain ")),
            "{h}: {log:#?}"
        );
    }
}

#[test]
fn skew_is_checked_before_anything_changes() {
    let w = World::installed("v1.37.2");
    let before = w.files();
    // Down a minor.
    let e = upgrade(&w, "v1.35.2", false).unwrap_err();
    assert!(e.to_string().starts_with("no downgrade: "), "{e}");
    assert_eq!(e.fault(), crate::fault::Fault::Input);
    assert_eq!(w.files(), before);

    // A host that runs v1.35 (as if a previous upgrade never reached it) blocks v1.37.
    let mut state = w.state("w1");
    state.versions.insert("kubelet".into(), "v1.35.2".into());
    w.fake.host("w1").files.get_mut(STATE_FILE).unwrap().0 = state.to_json();
    let e = upgrade(&w, "v1.37.2", false).unwrap_err();
    assert!(
        e.to_string()
            .contains("one minor at a time: w1 runs v1.35.2 (kubelet)"),
        "{e}"
    );
}

#[test]
fn install_refuses_a_version_change_and_points_to_upgrade() {
    let w = World::installed("v1.37.2");
    let before = w.files();
    let (cluster, plan) = cluster_at(w.dir.path(), "v1.37.2");
    let opts = install::Options {
        phases: HOST_PHASES.to_vec(),
        ..Default::default()
    };
    let e = install::install_with(&cluster, &plan, &opts, &Quiet, &w.fake).unwrap_err();
    assert!(matches!(e, InstallError::VersionChange { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with("lb1 runs v1.36.3, m1 runs v1.36.3"),
        "{text}"
    );
    assert!(text.contains("run `k8s-boot upgrade`"), "{text}");
    assert_eq!(w.files(), before);
}

#[test]
fn a_worker_that_is_down_is_left_for_the_next_run() {
    let w = World::installed("v1.37.2");
    w.fake.host("w1").unreachable = true;
    let report = upgrade(&w, "v1.37.2", false).unwrap();
    assert_eq!(report.unreachable, ["w1"]);
    assert!(report.incomplete());
    assert!(!steps(&report).iter().any(|s| s.contains("w1")));
    assert_eq!(w.state("m3").versions["kubelet"], "v1.37.2");
    // Back: the next run upgrades it alone.
    w.fake.host("w1").unreachable = false;
    let next = upgrade(&w, "v1.37.2", false).unwrap();
    assert!(!next.incomplete());
    assert_eq!(steps(&next), ["stage w1", "node w1", "add-ons"]);

    // A control plane that is down stops the upgrade before it starts.
    w.fake.host("m3").unreachable = true;
    let e = upgrade(&w, "v1.37.2", false).unwrap_err();
    assert!(e.to_string().starts_with("m3 cannot be reached"), "{e}");
}
