//! The runner against in-memory hosts: failure isolation, restart decisions, what a dry run
//! records and what the state file holds, without SSH or root. (The same runner against
//! real hosts: tests/lab_install.rs and tests/lab_cluster.rs.)

use super::fake::{FakeConnector, Shared};
use super::state::{HostState, STATE_FILE};
use super::{install_with, maintain, Options, PhaseResult, Progress, Report};
use crate::install::phases::{self, PhaseId};
use crate::inventory::Cluster;
use crate::pki::Pki;
use crate::render::{self, Plan, Templates};
use serde_json::{json, Value};
use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) struct Quiet;
impl Progress for Quiet {
    fn host(&self, _: &str, _: &str) {}
    fn phase_done(&self, _: &str, _: PhaseId, _: &PhaseResult) {}
}

const INVENTORY: &str = "\
cluster: {name: t, kubernetes_version: v1.37.2}
hosts:
  - {name: lb1, address: 10.0.0.10, roles: [lb]}
  - {name: m1, address: 10.0.0.11, roles: [etcd, control-plane, worker]}
  - {name: m2, address: 10.0.0.12, roles: [etcd, control-plane, worker]}
  - {name: m3, address: 10.0.0.13, roles: [etcd, control-plane, worker]}
";

struct World {
    cluster: Cluster,
    plan: Plan,
    fake: FakeConnector,
}

fn world() -> World {
    let cluster = Cluster::from_source(Path::new("hosts.yaml"), INVENTORY).unwrap();
    let pki = Pki::dry_run("/nonexistent/pki");
    pki.ensure(&cluster, Default::default()).unwrap();
    let plan = render::plan(&cluster, &pki, &Templates::load(None).unwrap()).unwrap();
    let mut fake = FakeConnector::default();
    for h in &cluster.inventory.hosts {
        fake.hosts.insert(h.name.clone(), Shared::default());
    }
    World {
        cluster,
        plan,
        fake,
    }
}

/// The world of the inventory `src`, its PKI from `pki`, without hosts (the tests share
/// them between worlds of two inventories).
fn world_of(src: &str, pki: &Pki) -> World {
    let cluster = Cluster::from_source(Path::new("hosts.yaml"), src).unwrap();
    pki.ensure(&cluster, Default::default()).unwrap();
    let plan = render::plan(&cluster, pki, &Templates::load(None).unwrap()).unwrap();
    World {
        cluster,
        plan,
        fake: FakeConnector::default(),
    }
}

/// The host phases without binaries (which need local files) or kubectl.
const PHASES: &[PhaseId] = &[
    PhaseId::Preflight,
    PhaseId::Prepare,
    PhaseId::Pki,
    PhaseId::Etcd,
    PhaseId::Lb,
    PhaseId::ControlPlane,
    PhaseId::Verify,
];

impl World {
    /// The inventory's host `name`.
    fn inventory_host(&self, name: &str) -> &crate::inventory::Host {
        self.cluster
            .inventory
            .hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap()
    }

    fn install(&self, dry_run: bool) -> Report {
        self.install_phases(dry_run, PHASES)
    }

    fn install_phases(&self, dry_run: bool, phases: &[PhaseId]) -> Report {
        self.install_for(dry_run, phases, Duration::from_secs(10))
    }

    /// Waiting at most `ready_timeout` for what the cluster phases apply.
    fn install_for(&self, dry_run: bool, phases: &[PhaseId], ready_timeout: Duration) -> Report {
        let opts = Options {
            phases: phases.to_vec(),
            dry_run,
            ready_timeout,
            ..Default::default()
        };
        install_with(&self.cluster, &self.plan, &opts, &Quiet, &self.fake).unwrap()
    }
}

fn result<'a>(report: &'a Report, host: &str, phase: PhaseId) -> &'a PhaseResult {
    &report.hosts.iter().find(|h| h.host == host).unwrap().phases[&phase]
}

fn changes(report: &Report, host: &str, phase: PhaseId) -> Vec<String> {
    match result(report, host, phase) {
        PhaseResult::Changed { changes } => changes.clone(),
        _ => Vec::new(),
    }
}

fn mutating(log: &[String]) -> Vec<&String> {
    log.iter()
        .filter(|c| {
            [
                "put ",
                "mkdir",
                "cp ",
                "chmod",
                "systemctl enable",
                "systemctl restart",
            ]
            .iter()
            .any(|m| c.starts_with(m))
                || c.contains("daemon-reload")
        })
        .collect()
}

#[test]
fn a_failing_host_stops_alone_and_the_others_finish() {
    let w = world();
    w.fake.host("lb1").unreachable = true;
    w.fake
        .host("m2")
        .failing
        .push("systemctl restart --no-block etcd".into());
    let report = w.install(false);
    assert!(report.failed());
    match result(&report, "lb1", PhaseId::Connect) {
        PhaseResult::Failed { error } => {
            let text = error.to_string();
            assert!(text.starts_with("cannot connect to"), "{text}");
        }
        other => panic!("lb1 connect: {other:?}"),
    }
    assert!(matches!(
        result(&report, "lb1", PhaseId::Prepare),
        PhaseResult::Skipped
    ));
    assert!(matches!(
        result(&report, "m2", PhaseId::Etcd),
        PhaseResult::Failed { .. }
    ));
    assert!(matches!(
        result(&report, "m2", PhaseId::ControlPlane),
        PhaseResult::Skipped
    ));
    for host in ["m1", "m3"] {
        assert!(changes(&report, host, PhaseId::ControlPlane)
            .contains(&"start kube-apiserver".to_string()));
        assert!(matches!(
            result(&report, host, PhaseId::Verify),
            PhaseResult::Unchanged
        ));
    }
    assert!(w.fake.host("m1").active.contains("kube-apiserver"));
    assert!(!w.fake.host("m2").active.contains("kube-apiserver"));
}

#[test]
fn only_new_content_restarts_a_service_and_a_mode_fix_restarts_nothing() {
    let w = world();
    let first = w.install(false);
    assert!(!first.failed());
    assert!(changes(&first, "m1", PhaseId::Etcd).contains(&"start etcd".to_string()));

    // Nothing changed: nothing written, nothing restarted.
    w.fake.host("m1").log.clear();
    let second = w.install(false);
    assert_eq!(second.changed(), 0, "{second:#?}");
    let log = w.fake.host("m1").log.clone();
    assert!(
        mutating(&log)
            .iter()
            .all(|c| c.starts_with("put ") && c.ends_with(STATE_FILE)
                || c.starts_with("mkdir -p /var/")),
        "{:#?}",
        mutating(&log)
    );

    // A mode fixed: listed, no restart.
    w.fake
        .host("m1")
        .files
        .get_mut("/etc/etcd/etcd.yaml")
        .unwrap()
        .1 = 0o666;
    let third = w.install(false);
    assert_eq!(
        changes(&third, "m1", PhaseId::Etcd),
        vec!["mode /etc/etcd/etcd.yaml".to_string()]
    );

    // New content: written and etcd restarted, on that host only.
    w.fake
        .host("m1")
        .files
        .get_mut("/etc/etcd/etcd.yaml")
        .unwrap()
        .0 = b"edited by hand\n".to_vec();
    let fourth = w.install(false);
    assert_eq!(
        changes(&fourth, "m1", PhaseId::Etcd),
        vec![
            "write /etc/etcd/etcd.yaml".to_string(),
            "restart etcd".to_string()
        ]
    );
    assert!(changes(&fourth, "m2", PhaseId::Etcd).is_empty());
}

#[test]
fn a_restart_owed_by_a_stopped_run_is_made_by_the_next_one() {
    let w = world();
    assert!(!w.install(false).failed());
    let state = |w: &World| {
        HostState::parse(&String::from_utf8_lossy(
            &w.fake.host("m1").files[STATE_FILE].0,
        ))
        .unwrap()
    };
    // Every service started records the version it runs, and owes no restart.
    assert_eq!(state(&w).versions["etcd"], "v1.37.2");
    assert_eq!(state(&w).versions["kube-apiserver"], "v1.37.2");
    assert!(!state(&w).pending_restarts.contains("etcd"));

    // A run that writes etcd's new certificate (the pki phase) and ends before the etcd
    // phase, as an interrupted one does...
    let plan = w.plan.hosts.iter().find(|h| h.name == "m1").unwrap();
    let cert = plan
        .files
        .iter()
        .find(|f| f.path.starts_with(crate::catalog::PKI_DIR) && f.restarts == ["etcd"])
        .expect("etcd has a certificate of its own");
    w.fake.host("m1").files.get_mut(&cert.path).unwrap().0 = b"old\n".to_vec();
    let stopped = w.install_phases(false, &[PhaseId::Pki]);
    assert_eq!(
        changes(&stopped, "m1", PhaseId::Pki),
        [format!("write {}", cert.path)]
    );
    assert!(state(&w).pending_restarts.contains("etcd"));
    // ...leaves the restart to the next run, whose files are all unchanged.
    let next = w.install_phases(false, &[PhaseId::Etcd]);
    assert_eq!(changes(&next, "m1", PhaseId::Etcd), ["restart etcd"]);
    assert!(!state(&w).pending_restarts.contains("etcd"));
    let after = w.install_phases(false, &[PhaseId::Etcd]);
    assert!(changes(&after, "m1", PhaseId::Etcd).is_empty());
}

#[test]
fn a_restart_that_failed_is_made_by_the_next_run() {
    let w = world();
    assert!(!w.install(false).failed());
    w.fake
        .host("m1")
        .files
        .get_mut("/etc/etcd/etcd.yaml")
        .unwrap()
        .0 = b"edited by hand\n".to_vec();
    let restart = "systemctl restart --no-block etcd";
    w.fake.host("m1").failing.push(restart.into());
    let failed = w.install_phases(false, &[PhaseId::Etcd]);
    assert!(failed.failed());
    // The file is back as planned, so only the state remembers the restart it owes.
    w.fake.host("m1").failing.clear();
    let next = w.install_phases(false, &[PhaseId::Etcd]);
    assert_eq!(changes(&next, "m1", PhaseId::Etcd), ["restart etcd"]);
}

/// The scheduler's health check on m1, as the control-plane phase runs it.
fn scheduler_health(w: &World) -> String {
    phases::health_command(&w.cluster, w.inventory_host("m1"), "kube-scheduler")
        .unwrap()
        .0
}

#[test]
fn verify_waits_for_a_service_systemd_is_restarting_and_names_one_that_stays_down() {
    let w = world();
    assert!(!w.install(false).failed());
    let health = scheduler_health(&w);
    let selected = [PhaseId::ControlPlane, PhaseId::Verify];
    // Healthy when the phase starts it, down at verify's first look, back at its next.
    w.fake.host("m1").log.clear();
    w.fake
        .host("m1")
        .code_sequences
        .push((health.clone(), [0, 7, 0].into()));
    let back = w.install_phases(false, &selected);
    assert!(!back.failed(), "{:?}", result(&back, "m1", PhaseId::Verify));
    assert_eq!(count(&w.fake.host("m1").log, &health), 3);
    // Healthy at the start, then never again: verify gives up naming it, with its journal.
    w.fake.host("m1").code_sequences = vec![(health.clone(), [0, 7].into())];
    let down = w.install_phases(false, &selected);
    let PhaseResult::Failed { error } = result(&down, "m1", PhaseId::Verify) else {
        panic!("{:?}", result(&down, "m1", PhaseId::Verify));
    };
    let error = error.to_string();
    assert!(
        error.contains("kube-scheduler not healthy after"),
        "{error}"
    );
    assert!(count(&w.fake.host("m1").log, "journalctl -u kube-scheduler") > 0);
}

#[test]
fn a_dry_run_records_what_would_change_and_changes_nothing() {
    let w = world();
    let report = w.install(true);
    assert!(report.dry_run && !report.failed(), "{report:#?}");
    let etcd = changes(&report, "m1", PhaseId::Etcd);
    for want in [
        "write /etc/etcd/etcd.yaml",
        "write /etc/systemd/system/etcd.service",
        "enable etcd",
        "start etcd",
    ] {
        assert!(etcd.contains(&want.to_string()), "{etcd:?}");
    }
    assert!(changes(&report, "lb1", PhaseId::Lb).contains(&"start nginx".to_string()));
    // Verify has nothing to check: nothing was started.
    assert!(matches!(
        result(&report, "m1", PhaseId::Verify),
        PhaseResult::Unchanged
    ));
    for (name, host) in &w.fake.hosts {
        let host = host.lock().unwrap();
        assert!(host.files.is_empty(), "{name}: {:?}", host.files.keys());
        assert!(
            mutating(&host.log).is_empty(),
            "{name}: {:?}",
            mutating(&host.log)
        );
    }
}

/// A node list as `kubectl get nodes -o json` prints it: each node with its labels.
pub(crate) fn node_list(nodes: &[(&str, &[&str])]) -> String {
    let items: Vec<serde_json::Value> = nodes
        .iter()
        .map(|(name, labels)| {
            let labels: serde_json::Map<String, serde_json::Value> =
                labels.iter().map(|l| (l.to_string(), "".into())).collect();
            serde_json::json!({"metadata": {"name": name, "labels": labels}, "spec": {}})
        })
        .collect();
    serde_json::json!({ "items": items }).to_string()
}

const CP: &str = "node-role.kubernetes.io/control-plane";
const WORKER: &str = "node-role.kubernetes.io/worker";

#[test]
fn a_new_worker_is_installed_alone_with_the_lb_upstreams_and_its_labels() {
    let mut w = world();
    assert!(!w.install(false).failed());
    // The inventory gains w1; the cluster answers as one where w1 has registered.
    let src = format!("{INVENTORY}  - {{name: w1, address: 10.0.0.21, roles: [worker]}}\n");
    let cluster = Cluster::from_source(Path::new("hosts.yaml"), &src).unwrap();
    let pki = Pki::dry_run("/nonexistent/pki");
    pki.ensure(&cluster, Default::default()).unwrap();
    let plan = render::plan(&cluster, &pki, &Templates::load(None).unwrap()).unwrap();
    w.fake.hosts.insert("w1".into(), Shared::default());
    {
        let mut m1 = w.fake.host("m1");
        m1.replies.push((
            "get nodes -o json".into(),
            node_list(&[
                ("m1", &[CP, WORKER]),
                ("m2", &[CP, WORKER]),
                ("m3", &[CP, WORKER]),
                ("w1", &[]),
            ]),
        ));
        m1.replies
            .push((CLUSTER_OBJECTS.into(), cluster_objects(2, true)));
        m1.replies.push((DISCOVERY.into(), discovery(true)));
    }
    for h in ["lb1", "m1", "m2", "m3"] {
        w.fake.host(h).log.clear();
    }
    let opts = Options {
        hosts: vec!["w1".into()],
        phases: vec![
            PhaseId::Prepare,
            PhaseId::Pki,
            PhaseId::Lb,
            PhaseId::Node,
            PhaseId::Cluster,
            PhaseId::Verify,
        ],
        ..Default::default()
    };
    let report = install_with(&cluster, &plan, &opts, &Quiet, &w.fake).unwrap();
    assert!(!report.failed(), "{report:#?}");
    // w1 got everything; the load balancer only its new upstream list; m1 only the cluster
    // phase (w1's label); m2 and m3 nothing.
    assert!(changes(&report, "w1", PhaseId::Node).contains(&"start kubelet".to_string()));
    let lb = changes(&report, "lb1", PhaseId::Lb);
    assert!(
        lb.contains(&"write /etc/nginx/nginx.conf".to_string()),
        "{lb:#?}"
    );
    let nginx =
        String::from_utf8(w.fake.host("lb1").files["/etc/nginx/nginx.conf"].0.clone()).unwrap();
    assert!(nginx.contains("10.0.0.21:"), "{nginx}");
    let lb1 = report.hosts.iter().find(|h| h.host == "lb1").unwrap();
    assert_eq!(
        lb1.phases.keys().copied().collect::<Vec<_>>(),
        [PhaseId::Connect, PhaseId::Lb]
    );
    // (the manifests are written too: the first install above left out the cluster phase)
    let labels: Vec<String> = changes(&report, "m1", PhaseId::Cluster)
        .into_iter()
        .filter(|c| c.starts_with("label"))
        .collect();
    assert_eq!(labels, [format!("label node w1 {WORKER}=")]);
    let m1 = report.hosts.iter().find(|h| h.host == "m1").unwrap();
    assert_eq!(
        m1.phases.keys().copied().collect::<Vec<_>>(),
        [PhaseId::Connect, PhaseId::Cluster]
    );
    assert!(!report
        .hosts
        .iter()
        .any(|h| h.host == "m2" || h.host == "m3"));
    assert!(mutating(&w.fake.host("m2").log).is_empty());
}

#[test]
fn an_etcd_host_without_data_joins_the_running_cluster_as_a_new_member() {
    let w = world();
    assert!(!w.install(false).failed());
    // m3 comes back empty (removed, reset): m1 answers for the running cluster.
    let member =
        |name: &str, ip: &str| json!({"name": name, "peerURLs": [format!("https://{ip}:2380")]});
    let two = json!({"members": [member("m1", "10.0.0.11"), member("m2", "10.0.0.12")]});
    let three = json!({"members": [member("m1", "10.0.0.11"), member("m2", "10.0.0.12"), member("", "10.0.0.13")]});
    // Two members, then (after the add) three.
    let answer = || {
        w.fake.host("m1").reply_sequences = vec![(
            "member list -w json".into(),
            VecDeque::from([two.to_string(), three.to_string()]),
        )]
    };
    answer();
    {
        let mut m3 = w.fake.host("m3");
        m3.failing.push("test -d /var/lib/etcd/member".into());
        m3.active.remove("etcd");
        m3.log.clear();
    }
    // The dry run says so and adds nothing.
    let dry = w.install_phases(true, &[PhaseId::Etcd]);
    assert_eq!(
        changes(&dry, "m3", PhaseId::Etcd),
        ["add etcd member m3", "start etcd"]
    );
    assert!(!w
        .fake
        .host("m1")
        .log
        .iter()
        .any(|c| c.contains("member add")));

    answer();
    let report = w.install_phases(false, &[PhaseId::Etcd]);
    assert!(!report.failed(), "{report:#?}");
    assert_eq!(
        changes(&report, "m3", PhaseId::Etcd),
        ["add etcd member m3", "start etcd"]
    );
    let m1_log = w.fake.host("m1").log.clone();
    assert!(m1_log
        .iter()
        .any(|c| c.contains(" member add 'm3' --peer-urls='https://10.0.0.13:2380'")));
    // m3's first start read the one-time configuration, removed once it was healthy.
    let m3 = w.fake.host("m3");
    let put = m3
        .log
        .iter()
        .position(|c| c == "put /etc/etcd/etcd-join.yaml")
        .unwrap();
    let start = m3
        .log
        .iter()
        .position(|c| c == "systemctl restart --no-block etcd")
        .unwrap();
    let removed = m3
        .log
        .iter()
        .position(|c| c.starts_with("rm -f /etc/etcd/etcd-join.yaml"))
        .unwrap();
    assert!(put < start && start < removed, "{:#?}", m3.log);
    assert!(m3
        .log
        .iter()
        .any(|c| c == "put /etc/systemd/system/etcd.service.d/k8s-boot-join.conf"));
    let join = String::from_utf8_lossy(&m3.files["/etc/etcd/etcd-join.yaml"].0).into_owned();
    assert!(join.contains("initial-cluster-state: existing\n"), "{join}");
    assert!(
        join.contains("initial-cluster: \"m1=https://10.0.0.11:2380,m2=https://10.0.0.12:2380,m3=https://10.0.0.13:2380\""),
        "{join}"
    );
    // The others were not touched.
    assert!(changes(&report, "m1", PhaseId::Etcd).is_empty());
}

#[test]
fn a_dry_run_of_the_cluster_phase_asks_the_api_server_and_labels_nothing() {
    let w = world();
    {
        let mut m1 = w.fake.host("m1");
        m1.replies.push((
            "apply --dry-run=server".into(),
            "namespace/kube-flannel unchanged (server dry run)\n\
             deployment.apps/coredns configured (server dry run)\n"
                .into(),
        ));
        // m1 lacks its worker label, m3 has both, m2 has not registered yet.
        m1.replies.push((
            "get nodes -o json".into(),
            node_list(&[("m1", &[CP]), ("m3", &[CP, WORKER])]),
        ));
    }
    let report = w.install_phases(true, &[PhaseId::Cluster]);
    assert!(!report.failed(), "{report:#?}");
    let got = changes(&report, "m1", PhaseId::Cluster);
    for want in [
        "kubectl: deployment.apps/coredns configured".to_string(),
        format!("label node m1 {WORKER}="),
        format!("label node m2 {CP}= {WORKER}="),
    ] {
        assert!(got.contains(&want), "{want} not in {got:#?}");
    }
    assert!(
        !got.iter()
            .any(|c| c.contains("kube-flannel") || c.contains("m3")),
        "{got:#?}"
    );
    // m1 runs the phase for the cluster, and it only asked.
    let log = w.fake.host("m1").log.clone();
    assert!(log.iter().any(|c| c.contains("apply --dry-run=server -f ")));
    let kubectl_writes: Vec<&String> = log
        .iter()
        .filter(|c| c.contains(" label node") || c.contains(" taint node"))
        .chain(log.iter().filter(|c| c.contains(" apply -f ")))
        .collect();
    assert!(kubectl_writes.is_empty(), "{kubectl_writes:#?}");
    assert!(mutating(&log).is_empty(), "{:#?}", mutating(&log));
    assert!(!w.fake.host("m2").log.iter().any(|c| c.contains("kubectl")));
    // Nor did it wait for anything to become ready: it applied nothing.
    assert_eq!(count(&log, CLUSTER_OBJECTS), 0, "{log:#?}");

    // The real run labels what the dry run listed, and nothing else; what it applied is
    // ready at once, which one kubectl call finds.
    {
        let mut m1 = w.fake.host("m1");
        m1.replies[1].1 = node_list(&[("m1", &[CP]), ("m2", &[]), ("m3", &[CP, WORKER])]);
        m1.replies
            .push((CLUSTER_OBJECTS.into(), cluster_objects(2, true)));
        m1.replies.push((DISCOVERY.into(), discovery(true)));
    }
    let started = Instant::now();
    let wet = w.install_phases(false, &[PhaseId::Cluster]);
    assert!(!wet.failed(), "{wet:#?}");
    assert!(started.elapsed() < Duration::from_secs(1), "it slept");
    let log = w.fake.host("m1").log.clone();
    assert_eq!(count(&log, CLUSTER_OBJECTS), 1, "{log:#?}");
    let labelled: Vec<&String> = log.iter().filter(|c| c.contains(" label node")).collect();
    assert_eq!(labelled.len(), 2, "{labelled:#?}");
    assert!(labelled[0].ends_with(&format!("label node m1 {WORKER}= --overwrite")));
    assert!(labelled[1].ends_with(&format!("label node m2 {CP}= {WORKER}= --overwrite")));
    assert!(log.iter().any(|c| c.contains(" apply -f ")));
}

#[test]
fn the_state_file_lists_files_services_and_the_backup_of_a_replaced_file() {
    let w = world();
    let distro = b"# the distribution's nginx.conf\n".to_vec();
    w.fake.host("lb1").files.insert(
        "/etc/nginx/nginx.conf".into(),
        (distro.clone(), 0o644, "root:root".into()),
    );
    assert!(!w.install(false).failed());
    let lb1 = w.fake.host("lb1");
    let state = HostState::parse(&String::from_utf8_lossy(&lb1.files[STATE_FILE].0)).unwrap();
    assert_eq!(lb1.files[STATE_FILE].1, 0o600);
    assert_eq!(state.cluster, "t");
    assert_eq!(
        state.backups["/etc/nginx/nginx.conf"],
        "/etc/nginx/nginx.conf.k8s-boot-orig"
    );
    assert!(lb1
        .log
        .contains(&"cp -p '/etc/nginx/nginx.conf' '/etc/nginx/nginx.conf.k8s-boot-orig'".into()));
    assert_eq!(state.services, BTreeSet::from(["nginx".to_string()]));
    let plan = w.plan.hosts.iter().find(|h| h.name == "lb1").unwrap();
    for f in &plan.files {
        assert_eq!(state.files.get(&f.path), Some(&f.sha256), "{}", f.path);
    }
    drop(lb1);
    let m1 = w.fake.host("m1");
    let state = HostState::parse(&String::from_utf8_lossy(&m1.files[STATE_FILE].0)).unwrap();
    assert!(state.backups.is_empty());
    for s in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        assert!(state.services.contains(s), "{s}: {:?}", state.services);
    }
    assert!(state.data_dirs.contains("/var/lib/etcd"));
}

#[test]
fn a_registry_taken_out_of_the_mirrors_loses_its_hosts_toml_and_nothing_else() {
    // One PKI for both: only the mirrors differ between the plans.
    let pki = Pki::dry_run("/nonexistent/pki");
    let mirrors = |registries: &[&str]| -> World {
        let list: String = registries
            .iter()
            .map(|r| format!("      {r}: [{{url: \"http://10.0.0.9:5000\"}}]\n"))
            .collect();
        let hosts = INVENTORY.split_once("hosts:").unwrap().1;
        let src = format!(
            "cluster:\n  name: t\n  kubernetes_version: v1.37.2\n  containerd:\n    \
             registry_mirrors:\n{list}hosts:{hosts}"
        );
        world_of(&src, &pki)
    };
    let mut both = mirrors(&["docker.io", "quay.io"]);
    for h in &both.cluster.inventory.hosts {
        both.fake.hosts.insert(h.name.clone(), Shared::default());
    }
    // The same hosts, the inventory without quay.io.
    let mut one = mirrors(&["docker.io"]);
    one.fake.hosts = both.fake.hosts.clone();
    let quay = "/etc/containerd/certs.d/quay.io/hosts.toml";
    let docker = "/etc/containerd/certs.d/docker.io/hosts.toml";

    assert!(!both.install(false).failed());
    assert!(both.fake.host("m1").files.contains_key(quay));
    assert!(
        !both.fake.host("lb1").files.contains_key(quay),
        "nodes only"
    );

    // A dry run says what it would remove, and removes nothing.
    let dry = one.install(true);
    assert_eq!(
        changes(&dry, "m1", PhaseId::Prepare),
        vec![format!("remove {quay}")]
    );
    assert!(one.fake.host("m1").files.contains_key(quay));

    let report = one.install(false);
    assert_eq!(
        changes(&report, "m1", PhaseId::Prepare),
        vec![format!("remove {quay}")]
    );
    let m1 = one.fake.host("m1");
    assert!(!m1.files.contains_key(quay) && m1.files.contains_key(docker));
    let state = HostState::parse(&String::from_utf8_lossy(&m1.files[STATE_FILE].0)).unwrap();
    assert!(!state.files.contains_key(quay) && state.files.contains_key(docker));
    drop(m1);
    // Gone is gone: the next run has nothing to do there.
    assert!(changes(&one.install(false), "m1", PhaseId::Prepare).is_empty());
}

#[test]
fn a_component_switched_off_is_stopped_and_its_files_removed() {
    let pki = Pki::dry_run("/nonexistent/pki");
    let with_backups = |enabled: bool| -> World {
        let src = INVENTORY.replacen(
            "hosts:",
            &format!("etcd: {{backup: {{enabled: {enabled}}}}}\nhosts:"),
            1,
        );
        world_of(&src, &pki)
    };
    let mut on = with_backups(true);
    for h in &on.cluster.inventory.hosts {
        on.fake.hosts.insert(h.name.clone(), Shared::default());
    }
    let mut off = with_backups(false);
    off.fake.hosts = on.fake.hosts.clone();
    let timer = crate::catalog::BACKUP_TIMER;
    let files = [
        "/etc/systemd/system/k8s-boot-etcd-backup.service",
        "/etc/systemd/system/k8s-boot-etcd-backup.timer",
        "/usr/local/sbin/k8s-boot-etcd-backup",
    ];
    assert!(!on.install(false).failed());
    {
        let m1 = on.fake.host("m1");
        assert!(m1.active.contains(timer) && m1.enabled.contains(timer));
        assert!(files.iter().all(|f| m1.files.contains_key(*f)));
    }
    let dry = off.install(true);
    let mut expected = vec![format!("stop and disable {timer}")];
    expected.extend(files.iter().map(|f| format!("remove {f}")));
    assert_eq!(changes(&dry, "m1", PhaseId::Etcd), expected);
    assert!(off.fake.host("m1").active.contains(timer));

    off.fake.host("m1").log.clear();
    let report = off.install(false);
    assert!(!report.failed(), "{report:#?}");
    assert_eq!(changes(&report, "m1", PhaseId::Etcd), expected);
    let m1 = off.fake.host("m1");
    assert!(!m1.active.contains(timer) && !m1.enabled.contains(timer));
    assert!(files.iter().all(|f| !m1.files.contains_key(*f)));
    // The units are gone from systemd's view too; etcd itself untouched.
    let reload = m1.log.iter().position(|c| c == "systemctl daemon-reload");
    assert!(reload.is_some(), "{:#?}", m1.log);
    assert!(!m1.log.iter().any(|c| c.contains("restart --no-block etcd")));
    let state = HostState::parse(&String::from_utf8_lossy(&m1.files[STATE_FILE].0)).unwrap();
    assert!(!state.services.contains(timer));
    assert!(files.iter().all(|f| !state.files.contains_key(*f)));
    drop(m1);
    assert!(changes(&off.install(false), "m1", PhaseId::Etcd).is_empty());
}

#[test]
fn reset_removes_exactly_what_the_state_file_lists_and_restores_a_backup() {
    let w = world();
    let distro = b"# the distribution's nginx.conf\n".to_vec();
    let mine = b"not k8s-boot's\n".to_vec();
    for (path, bytes) in [("/etc/nginx/nginx.conf", &distro), ("/etc/motd", &mine)] {
        w.fake
            .host("lb1")
            .files
            .insert(path.into(), (bytes.clone(), 0o644, "root:root".into()));
    }
    assert!(!w.install(false).failed());
    assert_ne!(w.fake.host("lb1").files["/etc/nginx/nginx.conf"].0, distro);
    let lb1 = w.inventory_host("lb1");
    let results = maintain::reset(&[lb1], false, &w.fake);
    assert!(results[0].error.is_none(), "{:?}", results[0].error);
    assert!(results[0].removed.contains(&"service nginx".to_string()));
    let host = w.fake.host("lb1");
    // The distribution's file is back, the user's own file untouched, nothing else left.
    let left: Vec<&str> = host.files.keys().map(String::as_str).collect();
    assert_eq!(left, vec!["/etc/motd", "/etc/nginx/nginx.conf"], "{left:?}");
    assert_eq!(host.files["/etc/nginx/nginx.conf"].0, distro);
    assert!(host.active.is_empty() && host.enabled.is_empty());
    drop(host);
    // A second reset finds no state and does nothing.
    w.fake.host("lb1").log.clear();
    let again = maintain::reset(&[lb1], false, &w.fake);
    assert!(again[0].removed.is_empty() && again[0].error.is_none());
    assert_eq!(
        w.fake.host("lb1").log.len(),
        1,
        "only the state file was read"
    );
}

/// What the cluster phase asks to see whether what it applied is ready: the kinds of the
/// rendered manifests that become ready (flannel's DaemonSet, the CoreDNS, metrics-server and
/// Traefik Deployments, the metrics APIService), in one call; and the workloads phase (the chat).
pub(crate) const CLUSTER_OBJECTS: &str =
    "get apiservices.apiregistration.k8s.io,daemonsets.apps,deployments.apps --all-namespaces";
pub(crate) const WORKLOAD_OBJECTS: &str = "get deployments.apps --all-namespaces";

fn count(log: &[String], part: &str) -> usize {
    log.iter().filter(|c| c.contains(part)).count()
}

/// A Deployment of two replicas as the API returns it, `available` of them available.
pub(crate) fn deployment(namespace: &str, name: &str, available: u32) -> Value {
    json!({"kind": "Deployment",
           "metadata": {"namespace": namespace, "name": name, "generation": 1},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}},
           "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                      "availableReplicas": available}})
}

fn api_service(name: &str, available: bool) -> Value {
    let status = if available { "True" } else { "False" };
    json!({"kind": "APIService", "metadata": {"name": name, "generation": 1},
           "status": {"conditions": [{"type": "Available", "status": status,
                      "reason": "FailedDiscoveryCheck", "message": "no response"}]}})
}

/// The cluster phase's objects: CoreDNS with `coredns_available` of 2 replicas available,
/// the metrics API available or not, the rest ready.
pub(crate) fn cluster_objects(coredns_available: u32, metrics_api: bool) -> String {
    let flannel = json!({"kind": "DaemonSet",
        "metadata": {"namespace": "kube-flannel", "name": "kube-flannel-ds", "generation": 1},
        "status": {"observedGeneration": 1, "desiredNumberScheduled": 3,
                   "updatedNumberScheduled": 3, "numberAvailable": 3}});
    json!({"kind": "List", "items": [
        flannel,
        deployment("kube-system", "coredns", coredns_available),
        deployment("kube-system", "metrics-server", 2),
        deployment("traefik", "traefik", 2),
        api_service("v1beta1.metrics.k8s.io", metrics_api),
    ]})
    .to_string()
}

/// What `kubectl api-versions` prints: the metrics API's group version or not.
pub(crate) fn discovery(metrics_api: bool) -> String {
    let mut versions = "apps/v1\nv1\n".to_string();
    if metrics_api {
        versions.push_str("metrics.k8s.io/v1beta1\n");
    }
    versions
}

pub(crate) const DISCOVERY: &str = "api-versions";

fn every_node_registered(w: &World) {
    w.fake.host("m1").replies.push((
        "get nodes -o json".into(),
        node_list(&[("m1", &[]), ("m2", &[]), ("m3", &[])]),
    ));
}

#[test]
fn the_cluster_phases_end_when_what_they_applied_is_ready() {
    let w = world();
    every_node_registered(&w);
    {
        let mut m1 = w.fake.host("m1");
        // CoreDNS one replica short, then the metrics API not answering, then both ready.
        m1.reply_sequences.push((
            CLUSTER_OBJECTS.into(),
            VecDeque::from([
                cluster_objects(1, true),
                cluster_objects(2, false),
                cluster_objects(2, true),
            ]),
        ));
        // Once the APIService is Available, one API server does not list it yet.
        m1.reply_sequences.push((
            DISCOVERY.into(),
            VecDeque::from([discovery(true), discovery(false), discovery(true)]),
        ));
        let chat = |available| json!({"items": [deployment("chat", "chat", available)]});
        m1.reply_sequences.push((
            WORKLOAD_OBJECTS.into(),
            VecDeque::from([chat(0).to_string(), chat(2).to_string()]),
        ));
    }
    let report = w.install_phases(false, &[PhaseId::Cluster, PhaseId::Workloads]);
    assert!(!report.failed(), "{report:#?}");
    let log = w.fake.host("m1").log.clone();
    // Ready objects, then a poll more until every API server lists the metrics API.
    assert_eq!(count(&log, CLUSTER_OBJECTS), 4, "{log:#?}");
    let servers = [
        "https://10.0.0.11:6443",
        "https://10.0.0.12:6443",
        "https://10.0.0.13:6443",
    ];
    for server in servers {
        assert_eq!(
            count(&log, &format!("--server '{server}' {DISCOVERY}")),
            2,
            "{log:#?}"
        );
    }
    assert_eq!(count(&log, WORKLOAD_OBJECTS), 2, "{log:#?}");
    // Each phase waits after its own apply.
    let at = |part: &str| log.iter().position(|c| c.contains(part)).unwrap();
    let applies: Vec<usize> = (0..log.len())
        .filter(|i| log[*i].contains(" apply -f /"))
        .collect();
    // The cluster phase's CRDs, its other objects, the workloads.
    assert_eq!(applies.len(), 3, "{log:#?}");
    assert!(log[applies[0]].ends_with("-f /var/lib/k8s-boot/manifests/05-gateway-api-crds.yaml"));
    assert!(applies[1] < at(CLUSTER_OBJECTS) && at(CLUSTER_OBJECTS) < applies[2]);
    assert!(applies[2] < at(WORKLOAD_OBJECTS), "{log:#?}");
}

#[test]
fn objects_of_new_custom_resources_are_applied_once_their_definitions_are_established() {
    let w = world();
    every_node_registered(&w);
    let crds = "-f /var/lib/k8s-boot/manifests/05-gateway-api-crds.yaml";
    {
        let mut m1 = w.fake.host("m1");
        m1.replies
            .push((CLUSTER_OBJECTS.into(), cluster_objects(2, true)));
        m1.replies.push((DISCOVERY.into(), discovery(true)));
        m1.reply_sequences.push((
            format!("apply {crds}"),
            VecDeque::from([
                "customresourcedefinition.apiextensions.k8s.io/gateways.gateway.networking.k8s.io created\n".to_string(),
                // Upstream's files carry a `status` stanza: kubectl patches every time.
                "customresourcedefinition.apiextensions.k8s.io/gateways.gateway.networking.k8s.io configured\n".to_string(),
                "customresourcedefinition.apiextensions.k8s.io/gateways.gateway.networking.k8s.io configured\n".to_string(),
            ]),
        ));
    }
    let first = w.install_phases(false, &[PhaseId::Cluster]);
    assert!(!first.failed(), "{first:#?}");
    let log = w.fake.host("m1").log.clone();
    let at = |part: &str| log.iter().position(|c| c.contains(part)).unwrap();
    let wait = at("wait --for=condition=Established --timeout=60s");
    assert!(log[wait].ends_with(crds), "{log:#?}");
    assert!(at(&format!("apply {crds}")) < wait);
    assert!(
        wait < at("apply -f /var/lib/k8s-boot/manifests/00-"),
        "{log:#?}"
    );
    // Nothing new (kubectl's `configured` of an unchanged manifest is no change): no wait.
    w.fake.host("m1").log.clear();
    let again = w.install_phases(false, &[PhaseId::Cluster]);
    assert!(!again.failed(), "{again:#?}");
    let applied: Vec<String> = changes(&again, "m1", PhaseId::Cluster)
        .into_iter()
        .filter(|c| c.starts_with("kubectl:"))
        .collect();
    assert!(applied.is_empty(), "{applied:?}");
    assert_eq!(count(&w.fake.host("m1").log, "condition=Established"), 0);
    // Another manifest rewritten (edited on the host): still no change of the CRDs.
    let traefik = "/var/lib/k8s-boot/manifests/45-traefik.yaml";
    w.fake.host("m1").files.get_mut(traefik).unwrap().0 = b"edited".to_vec();
    let third = w.install_phases(false, &[PhaseId::Cluster]);
    assert!(!third.failed(), "{third:#?}");
    let changed = changes(&third, "m1", PhaseId::Cluster);
    assert!(changed.contains(&format!("write {traefik}")), "{changed:?}");
    assert!(
        !changed
            .iter()
            .any(|c| c.contains("customresourcedefinition")),
        "{changed:?}"
    );
}

#[test]
fn a_wait_that_runs_out_names_the_pod_its_node_and_its_last_event() {
    let w = world();
    every_node_registered(&w);
    let waiting =
        |reason: &str| json!([{"name": "coredns", "state": {"waiting": {"reason": reason}}}]);
    let pods = json!({"items": [
        {"metadata": {"name": "coredns-abc"}, "spec": {"nodeName": "m2"},
         "status": {"phase": "Pending", "containerStatuses": waiting("ContainerCreating"),
                    "conditions": [{"type": "Ready", "status": "False"}]}},
        {"metadata": {"name": "coredns-def"}, "spec": {"nodeName": "m1"},
         "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
    ]});
    // The latest event first: the newest by time wins, not the last listed.
    let events = json!({"items": [
        {"involvedObject": {"kind": "Pod", "name": "coredns-abc"},
         "reason": "FailedCreatePodSandBox", "lastTimestamp": "2026-01-01T10:00:05Z",
         "message": "Failed to create pod sandbox: plugin type=\"flannel\" failed (add):\n  open /run/flannel/subnet.env: no such file"},
        {"involvedObject": {"kind": "Pod", "name": "coredns-abc"},
         "reason": "Scheduled", "eventTime": "2026-01-01T10:00:00.250000Z",
         "message": "Successfully assigned kube-system/coredns-abc to m2"},
        {"involvedObject": {"kind": "Pod", "name": "coredns-def"},
         "reason": "Started", "lastTimestamp": "2026-01-01T10:00:09Z", "message": "Started"},
    ]});
    {
        let mut m1 = w.fake.host("m1");
        m1.replies
            .push((CLUSTER_OBJECTS.into(), cluster_objects(1, true)));
        m1.replies.push((
            "get pods -n 'kube-system' -l 'app=coredns' -o json".into(),
            pods.to_string(),
        ));
        m1.replies.push((
            "get events -n 'kube-system' -o json".into(),
            events.to_string(),
        ));
    }
    let started = Instant::now();
    let report = w.install_for(false, &[PhaseId::Cluster], Duration::from_secs(2));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "{took:?}"
    );
    match result(&report, "m1", PhaseId::Cluster) {
        PhaseResult::Failed { error } => assert_eq!(
            error.to_string(),
            "not ready after 2 s: kube-system/coredns-abc: not ready on m2 (ContainerCreating); \
             last event: FailedCreatePodSandBox: Failed to create pod sandbox: \
             plugin type=\"flannel\" failed (add): open /run/flannel/subnet.env: no such file"
        ),
        other => panic!("cluster: {other:?}"),
    }
    // It looked again before it gave up.
    assert!(count(&w.fake.host("m1").log, CLUSTER_OBJECTS) >= 2);
}

#[test]
fn a_disruption_budget_that_kubectl_always_patches_is_no_change_of_a_rerun() {
    let w = world();
    every_node_registered(&w);
    {
        let mut m1 = w.fake.host("m1");
        m1.replies.push((
            " apply -f ".into(),
            "poddisruptionbudget.policy/chat configured\ndeployment.apps/chat unchanged\n".into(),
        ));
        let chat = json!({"items": [deployment("chat", "chat", 2)]});
        m1.replies.push((WORKLOAD_OBJECTS.into(), chat.to_string()));
    }
    let first = w.install_phases(false, &[PhaseId::Workloads]);
    assert!(changes(&first, "m1", PhaseId::Workloads)
        .contains(&"kubectl: poddisruptionbudget.policy/chat configured".to_string()));
    // The manifest is on the host already: kubectl's `configured` is its selector's
    // `replace` patch, not a change.
    let again = w.install_phases(false, &[PhaseId::Workloads]);
    assert!(
        changes(&again, "m1", PhaseId::Workloads).is_empty(),
        "{again:#?}"
    );
}

#[test]
fn a_dry_run_of_the_workloads_phase_waits_for_nothing() {
    let w = world();
    // Were it to wait, nothing would ever be ready: the fake lists no objects.
    w.fake
        .host("m1")
        .replies
        .push((WORKLOAD_OBJECTS.into(), json!({"items": []}).to_string()));
    let started = Instant::now();
    let report = w.install_phases(true, &[PhaseId::Workloads]);
    assert!(!report.failed(), "{report:#?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(count(&w.fake.host("m1").log, WORKLOAD_OBJECTS), 0);
}

#[test]
fn the_admins_group_is_bound_once_as_the_super_admin_whose_kubeconfig_stays_off_disk() {
    let w = world();
    every_node_registered(&w);
    {
        let mut m1 = w.fake.host("m1");
        m1.replies
            .push((CLUSTER_OBJECTS.into(), cluster_objects(2, true)));
        m1.replies.push((DISCOVERY.into(), discovery(true)));
    }
    let first = w.install_phases(false, &[PhaseId::Cluster]);
    assert!(!first.failed(), "{first:#?}");
    let bound = "kubectl: clusterrolebinding.rbac.authorization.k8s.io/k8s-boot:cluster-admins bound (as the super-admin)";
    assert!(
        changes(&first, "m1", PhaseId::Cluster).contains(&bound.to_string()),
        "{first:#?}"
    );
    let super_admin = &w
        .plan
        .cluster_files
        .iter()
        .find(|f| f.path == crate::pki::SUPER_ADMIN_KUBECONFIG)
        .unwrap()
        .bytes;
    {
        let m1 = w.fake.host("m1");
        // On stdin only: not in a file the host keeps, not on a command line.
        assert_eq!(m1.inputs.len(), 1, "{:#?}", m1.log);
        assert_eq!(&m1.inputs[0].1, super_admin);
        let key = String::from_utf8_lossy(super_admin)
            .lines()
            .find(|l| l.contains("client-key-data"))
            .unwrap()
            .split_whitespace()
            .last()
            .unwrap()
            .to_string();
        assert!(m1.log.iter().all(|c| !c.contains(&key)));
        assert!(m1.files.values().all(|(bytes, _, _)| bytes != super_admin));
        assert!(m1.inputs[0].0.contains("trap 'rm -f"), "{}", m1.inputs[0].0);
    }
    // Bound: the next run asks and leaves it.
    let again = w.install_phases(false, &[PhaseId::Cluster]);
    assert!(!changes(&again, "m1", PhaseId::Cluster).contains(&bound.to_string()));
    assert_eq!(w.fake.host("m1").inputs.len(), 1);
    // No host gets the super-admin, nor the admin's certificate and key as files.
    for host in &w.plan.hosts {
        for f in &host.files {
            assert!(!f.path.contains("super-admin"), "{}", f.path);
            assert!(!f.path.contains("/pki/admin."), "{}", f.path);
        }
    }
}

#[test]
fn a_certificate_an_earlier_version_put_on_a_host_and_the_plan_no_longer_has_is_removed() {
    let w = world();
    assert!(!w.install(false).failed());
    // What an earlier k8s-boot left on the control planes: the admin's pair as files.
    let old = "/etc/kubernetes/pki/admin.key";
    {
        let mut m1 = w.fake.host("m1");
        let mut state =
            HostState::parse(&String::from_utf8_lossy(&m1.files[STATE_FILE].0)).unwrap();
        state.files.insert(old.into(), "0".repeat(64));
        m1.files.insert(
            STATE_FILE.into(),
            (state.to_json(), 0o600, "root:root".into()),
        );
        m1.files
            .insert(old.into(), (b"KEY".to_vec(), 0o600, "root:root".into()));
    }
    let report = w.install(false);
    assert_eq!(
        changes(&report, "m1", PhaseId::Pki),
        vec![format!("remove {old}")]
    );
    assert!(!w.fake.host("m1").files.contains_key(old));
    // Only what k8s-boot recorded goes: a file someone else put there stays.
    w.fake
        .host("m2")
        .files
        .insert(old.into(), (b"THEIRS".to_vec(), 0o600, "root:root".into()));
    assert!(changes(&w.install(false), "m2", PhaseId::Pki).is_empty());
    assert!(w.fake.host("m2").files.contains_key(old));
}

#[test]
fn etcd_hosts_get_the_etcd_user_once_and_reset_takes_it_away() {
    let w = world();
    w.fake.host("m2").users.insert("etcd".into());
    let first = w.install(false);
    assert!(!first.failed(), "{first:#?}");
    let created = "create system user etcd".to_string();
    for (host, creates) in [("m1", true), ("m2", false), ("m3", true), ("lb1", false)] {
        assert_eq!(
            changes(&first, host, PhaseId::Prepare).contains(&created),
            creates,
            "{host}"
        );
        let h = w.fake.host(host);
        assert_eq!(h.users.contains("etcd"), host != "lb1", "{host}");
        if h.files.contains_key(STATE_FILE) {
            let state = HostState::parse(&String::from_utf8_lossy(&h.files[STATE_FILE].0));
            // Only a user k8s-boot made is k8s-boot's to remove.
            assert_eq!(
                state.unwrap().created_users.contains("etcd"),
                creates,
                "{host}"
            );
        }
    }
    assert!(!changes(&w.install(false), "m1", PhaseId::Prepare).contains(&created));
    let hosts: Vec<&crate::inventory::Host> = w.cluster.inventory.hosts.iter().collect();
    for result in maintain::reset(&hosts, false, &w.fake) {
        assert!(result.error.is_none(), "{:?}", result.error);
    }
    assert!(!w.fake.host("m1").users.contains("etcd"));
    assert!(w.fake.host("m2").users.contains("etcd"), "not ours: kept");
}
