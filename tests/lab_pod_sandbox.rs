//! In the lab (real systemd + sshd hosts, systemd-nspawn; needs root): the runtime phase
//! installs the lab-built containerd, runc, CNI plugins and crictl on a host and imports the
//! image archives of `binaries.dir/images/`; then containerd's CRI, driven by the real
//! `crictl`, starts a pod sandbox from the imported pause image with no registry, and a
//! container in it under a memory limit that lands in the host's memory cgroup.

mod common;

use common::TestLab;
use serde_json::Value;

const M1: &str = "10.77.0.11";
const PHASES: &str = "preflight,prepare,pki,binaries,runtime";
const LIMIT: u64 = 64 * 1024 * 1024;

fn install(lab: &TestLab) -> Value {
    let (code, report) = lab.install(&["--phases", PHASES]);
    assert_eq!(code, 0, "{report:#}");
    report
}

fn runtime_changes(report: &Value) -> Vec<String> {
    let host = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "m1")
        .unwrap();
    host["phases"]["runtime"]["changes"]
        .as_array()
        .map(|c| c.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn pod_sandbox_from_the_imported_pause_image_with_a_memory_limit() {
    let lab = TestLab::up("lab-pod-sandbox", 1);
    let pause = k8s_boot::versions::profile_for(k8s_boot::lab::DEFAULT_KUBERNETES_VERSION)
        .unwrap()
        .pause_image;

    let first = install(&lab);
    let changes = runtime_changes(&first);
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("import image") && c.contains(pause)),
        "the runtime phase did not import {pause}: {changes:?}"
    );
    // Versions of what runs: the lab's builds of the pinned upstream releases.
    let version = lab.sh(M1, "containerd --version");
    assert!(
        version.contains(&format!("v{}", k8s_boot::fetch::CONTAINERD_VERSION)),
        "{version}"
    );
    let runc = lab.sh(M1, "runc --version");
    assert!(
        runc.contains(k8s_boot::fetch::RUNC_VERSION) && runc.contains("seccomp"),
        "{runc}"
    );

    let images = lab.sh(M1, "crictl images -o json");
    assert!(images.contains(pause), "{images}");

    // A pod sandbox and a container in it (the pause program again), limited to 64 MiB. The
    // sandbox uses the host's network: the pod network (flannel) runs only in a cluster.
    let pod = r#"{"metadata":{"name":"probe","namespace":"default","uid":"probe-uid","attempt":0},
        "log_directory":"/tmp/probe-logs","linux":{"cgroup_parent":"k8sbootprobe.slice",
        "security_context":{"namespace_options":{"network":2}}}}"#;
    let container = format!(
        r#"{{"metadata":{{"name":"limited"}},"image":{{"image":"{pause}"}},
        "linux":{{"resources":{{"memory_limit_in_bytes":{LIMIT}}}}},"log_path":"limited.log"}}"#
    );
    lab.sh(
        M1,
        &format!(
            "printf '%s' '{pod}' > /tmp/pod.json && printf '%s' '{container}' > /tmp/ctr.json"
        ),
    );
    let sandbox = lab.sh(M1, "crictl runp /tmp/pod.json");
    let state = lab.sh(M1, &format!("crictl inspectp -o json {sandbox}"));
    let state: Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["status"]["state"], "SANDBOX_READY", "{state:#}");

    let id = lab.sh(
        M1,
        &format!("crictl create {sandbox} /tmp/ctr.json /tmp/pod.json"),
    );
    lab.sh(M1, &format!("crictl start {id}"));
    let info: Value =
        serde_json::from_str(&lab.sh(M1, &format!("crictl inspect -o json {id}"))).unwrap();
    assert_eq!(info["status"]["state"], "CONTAINER_RUNNING", "{info:#}");
    let pid = info["info"]["pid"].as_u64().expect("container pid");
    // The container's memory cgroup, as the host sees it, carries the limit.
    let limit = lab.sh(
        M1,
        &format!(
            "cg=$(awk -F: '$2 == \"memory\" {{ print $3 }}' /proc/{pid}/cgroup) && \
             cat /sys/fs/cgroup/memory$cg/memory.limit_in_bytes"
        ),
    );
    assert_eq!(limit, LIMIT.to_string());

    lab.sh(
        M1,
        &format!(
            "crictl stop {id} && crictl rm {id} && crictl stopp {sandbox} && crictl rmp {sandbox}"
        ),
    );

    // A second run imports nothing: every image is there with the same digest.
    let second = install(&lab);
    let changes = runtime_changes(&second);
    assert!(
        changes.iter().all(|c| !c.starts_with("import image")),
        "{changes:?}"
    );
}
