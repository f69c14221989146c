//! remove-node against in-memory hosts: the steps each role needs, what the others get, the
//! refusals, a dry run. (On real hosts: tests/lab_cluster.rs.)

use super::{remove_node_with, without, Report};
use crate::install::state::STATE_FILE;
use crate::install::tests::Quiet;
use crate::operation::testing::{
    cluster_at, options, plan_for, position, step_changes, step_names, World,
};
use crate::operation::OperationError;

fn remove(w: &World, name: &str, dry_run: bool) -> Result<Report, OperationError> {
    let (cluster, _) = cluster_at(w.dir.path(), "v1.36.3");
    let after = without(&cluster, name)?;
    let plan_after = plan_for(w.dir.path(), &after);
    remove_node_with(
        &cluster,
        &after,
        &plan_after,
        name,
        &options(dry_run),
        &Quiet,
        &w.fake,
    )
}

fn steps(report: &Report) -> Vec<String> {
    step_names(&report.steps)
}

fn changes(report: &Report, step: &str) -> Vec<String> {
    step_changes(&report.steps, step)
}

fn nginx(w: &World) -> String {
    String::from_utf8(w.fake.host("lb1").files["/etc/nginx/nginx.conf"].0.clone()).unwrap()
}

#[test]
fn a_worker_leaves_with_a_drain_and_the_lb_upstreams_only() {
    let w = World::installed("v1.36.3");
    assert!(nginx(&w).contains("10.0.0.21:"));
    let report = remove(&w, "w1", false).unwrap();
    assert!(!report.incomplete(), "{report:#?}");
    assert_eq!(
        steps(&report),
        [
            "cordon and drain w1",
            "delete node w1",
            "lb lb1",
            "reset w1"
        ]
    );
    assert_eq!(
        changes(&report, "lb lb1"),
        [
            "lb1: lb: write /etc/nginx/nginx.conf",
            "lb1: lb: reload nginx"
        ]
    );
    assert!(!nginx(&w).contains("10.0.0.21:"));
    // kubectl on the first control-plane host.
    let m1 = w.fake.host("m1").log.clone();
    let drain = position(&m1, " drain 'w1' --ignore-daemonsets");
    let delete = position(&m1, " delete node 'w1'");
    assert!(drain < delete);
    // w1 is reset; no control plane or etcd member restarted.
    assert!(!w.fake.host("w1").files.contains_key(STATE_FILE));
    for m in ["m1", "m2", "m3"] {
        let log = w.fake.host(m).log.clone();
        assert!(
            !log.iter().any(|c| c.contains("systemctl restart")),
            "{m}: {log:#?}"
        );
    }
}

#[test]
fn an_etcd_member_leaves_and_the_others_learn_it_one_at_a_time() {
    let w = World::installed("v1.36.3");
    let report = remove(&w, "m3", false).unwrap();
    assert!(!report.incomplete(), "{report:#?}");
    assert_eq!(
        steps(&report),
        [
            "cordon and drain m3",
            "delete node m3",
            "remove etcd member m3",
            "lb lb1",
            "etcd m1",
            "etcd m2",
            "control-plane m1",
            "control-plane m2",
            "reset m3",
        ]
    );
    // The member goes by its id (13 = d), asked of another member.
    assert_eq!(
        changes(&report, "remove etcd member m3"),
        ["m3: etcd member d removed"]
    );
    assert!(w
        .fake
        .host("m1")
        .log
        .iter()
        .any(|c| c.ends_with(" member remove d")));
    // etcd's member list loses m3 without a restart (etcd reads it only at bootstrap: a
    // restart of one of two members would lose the quorum); the API servers' etcd endpoints
    // lose it with one restart each.
    let etcd = changes(&report, "etcd m1");
    assert!(
        etcd.contains(&"m1: etcd: write /etc/etcd/etcd.yaml".into()),
        "{etcd:#?}"
    );
    assert!(!etcd.iter().any(|c| c.contains("restart")), "{etcd:#?}");
    assert!(
        etcd.contains(&"m1: etcd: every member healthy".into()),
        "{etcd:#?}"
    );
    let etcd_yaml =
        String::from_utf8(w.fake.host("m2").files["/etc/etcd/etcd.yaml"].0.clone()).unwrap();
    assert!(!etcd_yaml.contains("10.0.0.13"), "{etcd_yaml}");
    // The API server certificate loses m3's name and address: written with the etcd step's
    // certificates, the restart it owes made once, in the control-plane step.
    let etcd_m2 = changes(&report, "etcd m2");
    assert!(
        etcd_m2.contains(&"m2: pki: write /etc/kubernetes/pki/apiserver.crt".into()),
        "{etcd_m2:#?}"
    );
    let cp = changes(&report, "control-plane m2");
    assert!(
        cp.contains(&"m2: control-plane: restart kube-apiserver".into()),
        "{cp:#?}"
    );
    // The API endpoint no longer goes to m3.
    assert!(!nginx(&w).contains("10.0.0.13:"));
}

#[test]
fn a_removal_that_would_break_the_cluster_changes_nothing() {
    let w = World::installed("v1.36.3");
    let before = w.files();
    // m2 is down: without m3, one healthy member of two is no quorum.
    let health = serde_json::json!([
        {"endpoint": "https://10.0.0.11:2379", "health": true},
        {"endpoint": "https://10.0.0.12:2379", "health": false},
        {"endpoint": "https://10.0.0.13:2379", "health": true},
    ])
    .to_string();
    for m in ["m1", "m2", "m3"] {
        w.fake.host(m).replies.insert(
            0,
            ("endpoint health --cluster -w json".into(), health.clone()),
        );
    }
    let e = remove(&w, "m3", false).unwrap_err();
    assert_eq!(e.fault(), crate::fault::Fault::Input);
    assert!(
        e.to_string()
            .contains("1 of the 2 remaining etcd members are healthy"),
        "{e}"
    );
    // The only load balancer carries the API endpoint.
    let e = remove(&w, "lb1", false).unwrap_err();
    assert!(e.to_string().contains("the last load balancer"), "{e}");
    assert!(matches!(
        remove(&w, "nope", false),
        Err(OperationError::Install(_))
    ));
    assert_eq!(w.files(), before);
}

#[test]
fn a_dry_run_lists_the_steps_and_changes_nothing() {
    let w = World::installed("v1.36.3");
    let before = w.files();
    let report = remove(&w, "m3", true).unwrap();
    assert!(report.dry_run && !report.incomplete());
    assert_eq!(report.steps.len(), 9);
    assert!(changes(&report, "lb lb1").contains(&"lb1: lb: reload nginx".into()));
    assert!(changes(&report, "etcd m2").contains(&"m2: etcd: write /etc/etcd/etcd.yaml".into()));
    assert!(changes(&report, "control-plane m2")
        .contains(&"m2: control-plane: restart kube-apiserver".into()));
    assert_eq!(w.files(), before);
    for m in ["m1", "m2"] {
        let log = w.fake.host(m).log.clone();
        assert!(
            !log.iter().any(|c| c.contains("member remove")
                || c.contains(" drain ")
                || c.contains(" delete node")),
            "{m}: {log:#?}"
        );
    }
}

#[test]
fn a_removal_stopped_by_a_failure_continues_where_it_stopped() {
    let w = World::installed("v1.36.3");
    w.fake
        .host("lb1")
        .failing
        .push("systemctl reload nginx".into());
    let report = remove(&w, "w1", false).unwrap();
    assert!(report.incomplete());
    let status: Vec<(String, bool)> = report
        .steps
        .iter()
        .map(|s| {
            (
                s.step.clone(),
                matches!(s.outcome, crate::operation::Outcome::Done { .. }),
            )
        })
        .collect();
    assert_eq!(
        status,
        [
            ("cordon and drain w1".to_string(), true),
            ("delete node w1".to_string(), true),
            ("lb lb1".to_string(), false),
            ("reset w1".to_string(), false),
        ]
    );
    // w1 is not reset yet.
    assert!(w.fake.host("w1").files.contains_key(STATE_FILE));

    // Fixed; the Node is gone now: the next run does only what is left.
    w.fake.host("lb1").failing.clear();
    w.fake.host("m1").replies.insert(
        0,
        ("get node 'w1' --ignore-not-found".into(), String::new()),
    );
    let report = remove(&w, "w1", false).unwrap();
    assert!(!report.incomplete(), "{report:#?}");
    assert_eq!(steps(&report), ["lb lb1", "reset w1"]);
    // The configuration was written by the first run; the reload it owed is made now.
    assert_eq!(changes(&report, "lb lb1"), ["lb1: lb: reload nginx"]);
    assert!(!w.fake.host("w1").files.contains_key(STATE_FILE));
}

#[test]
fn a_leading_member_hands_its_leadership_on_before_it_is_removed() {
    // m2 leads (the world's `endpoint status`).
    let w = World::installed("v1.36.3");
    let report = remove(&w, "m2", false).unwrap();
    assert!(!report.incomplete(), "{report:#?}");
    assert_eq!(
        changes(&report, "remove etcd member m2"),
        [
            "m2: etcd leadership handed to member b",
            "m2: etcd member c removed"
        ]
    );
    // Asked of the leader itself (move-leader goes to the leader), the removal of m1.
    position(&w.fake.host("m2").log, "move-leader b");
    position(&w.fake.host("m1").log, "member remove c");
}
