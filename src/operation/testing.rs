//! In-memory hosts with a cluster installed, for the operations' tests: two releases'
//! binaries on this machine, kubectl and etcdctl answering as a healthy cluster would.

use super::Options;
use crate::install;
use crate::install::fake::{FakeConnector, Shared};
use crate::install::phases::PhaseId;
use crate::install::state::{HostState, STATE_FILE};
use crate::install::tests::{
    cluster_objects, deployment, discovery, node_list, Quiet, CLUSTER_OBJECTS, DISCOVERY,
    WORKLOAD_OBJECTS,
};
use crate::inventory::Cluster;
use crate::pki::Pki;
use crate::render::{self, Plan, Templates};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// Short waits: the fake answers at once.
pub fn options(dry_run: bool) -> Options {
    Options {
        dry_run,
        drain_timeout: Duration::from_secs(5),
        ready_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

pub const HOSTS: [&str; 5] = ["lb1", "m1", "m2", "m3", "w1"];

/// The hosts, and binaries of two releases on this machine.
pub struct World {
    pub fake: FakeConnector,
    pub dir: tempfile::TempDir,
}

/// The cluster at `version`, its binaries (files that name their version) in `dir/<version>`.
pub fn cluster_at(dir: &Path, version: &str) -> (Cluster, Plan) {
    let binaries = dir.join(version);
    for (_, b) in crate::catalog::binaries() {
        let path = binaries.join(b.file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{} {version}\n", b.file)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let inventory = format!(
        "cluster: {{name: t, kubernetes_version: {version}}}
binaries: {{dir: {}}}
hosts:
  - {{name: lb1, address: 10.0.0.10, roles: [lb]}}
  - {{name: m1, address: 10.0.0.11, roles: [etcd, control-plane, worker]}}
  - {{name: m2, address: 10.0.0.12, roles: [etcd, control-plane, worker]}}
  - {{name: m3, address: 10.0.0.13, roles: [etcd, control-plane, worker]}}
  - {{name: w1, address: 10.0.0.21, roles: [worker]}}
",
        binaries.display()
    );
    let cluster = Cluster::from_source(&dir.join("hosts.yaml"), &inventory).unwrap();
    let plan = plan_for(dir, &cluster);
    (cluster, plan)
}

/// The plan of `cluster` with the PKI in `dir/pki`: one PKI for every version and host set,
/// as on the machine that installed the cluster.
pub fn plan_for(dir: &Path, cluster: &Cluster) -> Plan {
    let pki = Pki::new(dir.join("pki"));
    pki.ensure(cluster, Default::default()).unwrap();
    render::plan(cluster, &pki, &Templates::load(None).unwrap()).unwrap()
}

/// A node as the API returns it: Ready, its kubelet at `version`.
fn node(version: &str) -> String {
    serde_json::json!({
        "metadata": {"name": "n", "annotations": {super::node::CORDONED_BY: "upgrade"}},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "nodeInfo": {"kubeletVersion": version}},
    })
    .to_string()
}

impl World {
    /// Hosts with v1.36.3 installed (every host phase), answering kubectl and etcdctl as a
    /// healthy cluster on `target` would.
    pub fn installed(target: &str) -> World {
        let mut fake = FakeConnector::default();
        for h in HOSTS {
            fake.hosts.insert(h.into(), Shared::default());
        }
        let w = World {
            fake,
            dir: tempfile::tempdir().unwrap(),
        };
        let (cluster, plan) = cluster_at(w.dir.path(), "v1.36.3");
        let opts = install::Options {
            phases: HOST_PHASES.to_vec(),
            ..Default::default()
        };
        let report = install::install_with(&cluster, &plan, &opts, &Quiet, &w.fake).unwrap();
        assert!(!report.failed(), "{report:#?}");
        // Registered and labelled as the plan wants them.
        let (cp, worker) = (
            "node-role.kubernetes.io/control-plane",
            "node-role.kubernetes.io/worker",
        );
        let nodes = node_list(&[
            ("m1", &[cp, worker]),
            ("m2", &[cp, worker]),
            ("m3", &[cp, worker]),
            ("w1", &[worker]),
        ]);
        let chat = serde_json::json!({"items": [deployment("chat", "chat", 2)]}).to_string();
        // m2 leads etcd.
        let status = serde_json::json!([
            {"Endpoint": "https://10.0.0.11:2379", "Status": {"header": {"member_id": 1}, "leader": 2}},
            {"Endpoint": "https://10.0.0.12:2379", "Status": {"header": {"member_id": 2}, "leader": 2}},
            {"Endpoint": "https://10.0.0.13:2379", "Status": {"header": {"member_id": 3}, "leader": 2}},
        ])
        .to_string();
        let member = |id: u64, name: &str, ip: &str| {
            serde_json::json!({"ID": id, "name": name,
                "peerURLs": [format!("https://{ip}:2380")],
                "clientURLs": [format!("https://{ip}:2379")]})
        };
        let members = serde_json::json!({"members": [
            member(11, "m1", "10.0.0.11"), member(12, "m2", "10.0.0.12"), member(13, "m3", "10.0.0.13"),
        ]})
        .to_string();
        let health = serde_json::json!([
            {"endpoint": "https://10.0.0.11:2379", "health": true},
            {"endpoint": "https://10.0.0.12:2379", "health": true},
            {"endpoint": "https://10.0.0.13:2379", "health": true},
        ])
        .to_string();
        for m in ["m1", "m2", "m3"] {
            let mut host = w.fake.host(m);
            host.replies.extend([
                ("get node '".to_string(), node(target)),
                ("get nodes -o json".to_string(), nodes.clone()),
                (CLUSTER_OBJECTS.to_string(), cluster_objects(2, true)),
                (DISCOVERY.to_string(), discovery(true)),
                (WORKLOAD_OBJECTS.to_string(), chat.clone()),
                ("endpoint status --cluster".to_string(), status.clone()),
                ("member list -w json".to_string(), members.clone()),
                (
                    "endpoint health --cluster -w json".to_string(),
                    health.clone(),
                ),
            ]);
            host.log.clear();
        }
        w
    }

    pub fn state(&self, host: &str) -> HostState {
        HostState::parse(&String::from_utf8_lossy(
            &self.fake.host(host).files[STATE_FILE].0,
        ))
        .unwrap()
    }

    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        HOSTS
            .iter()
            .flat_map(|h| {
                self.fake
                    .host(h)
                    .files
                    .iter()
                    .map(|(p, f)| (format!("{h}:{p}"), f.0.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Every phase that works on hosts (the cluster phases need an API server).
pub const HOST_PHASES: &[PhaseId] = &[
    PhaseId::Prepare,
    PhaseId::Pki,
    PhaseId::Binaries,
    PhaseId::Etcd,
    PhaseId::Lb,
    PhaseId::ControlPlane,
    PhaseId::Runtime,
    PhaseId::Node,
    PhaseId::Verify,
];

/// Where the first command of `log` containing `part` is (a panic naming it when none).
pub fn position(log: &[String], part: &str) -> usize {
    log.iter()
        .position(|c| c.contains(part))
        .unwrap_or_else(|| panic!("no `{part}` in {log:#?}"))
}

/// The names of `steps`, in order.
pub fn step_names(steps: &[super::StepReport]) -> Vec<String> {
    steps.iter().map(|s| s.step.clone()).collect()
}

/// The changes of the step named `name`, which must be done.
pub fn step_changes(steps: &[super::StepReport], name: &str) -> Vec<String> {
    let s = steps
        .iter()
        .find(|s| s.step == name)
        .unwrap_or_else(|| panic!("no step {name}"));
    match &s.outcome {
        super::Outcome::Done { changes } => changes.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn a_rerun_offers_the_hosts_what_they_recorded_of_every_binary_and_hashes_none_again() {
    let w = World::installed("v1.36.3");
    let (cluster, plan) = cluster_at(w.dir.path(), "v1.36.3");
    for h in HOSTS {
        w.fake.host(h).stats.clear();
    }
    let opts = install::Options {
        phases: HOST_PHASES.to_vec(),
        ..Default::default()
    };
    let report = install::install_with(&cluster, &plan, &opts, &Quiet, &w.fake).unwrap();
    assert!(!report.failed(), "{report:#?}");
    for h in HOSTS.iter().filter(|h| **h != "lb1") {
        // The binaries phase's one stat: every binary and the staged copy beside it (none
        // here). The state's record of each binary is offered, so a host whose copy still
        // has its recorded size and mtime does not hash it again.
        let stats = w.fake.host(h).stats.clone();
        let binaries: Vec<&(Vec<String>, usize)> = stats
            .iter()
            .filter(|(paths, _)| paths.iter().any(|p| p.ends_with(".k8s-boot-staged")))
            .collect();
        assert_eq!(binaries.len(), 1, "{h}: {stats:?}");
        let (paths, known) = binaries[0];
        assert_eq!(known * 2, paths.len(), "{h}: {paths:?}");
    }
}
