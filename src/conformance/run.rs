//! One run: images imported, the run's objects applied, the log followed, the results
//! collected, everything removed.

use super::progress::{Counts, Event, Progress};
use super::{image, ConformanceError, Options, IMAGES_DIR, NAMESPACE};
use crate::install::remote::{Connector, Remote};
use crate::install::{admin_kubectl, StepError};
use crate::install::{archives, import_missing};
use crate::inventory::{Cluster, Role};
use crate::ssh::{shell_quote, SshError};
use base64::Engine;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The pod of a run and its two containers: the runner, and one that only keeps the pod
/// (and the results volume) alive until they are collected.
const POD: &str = "conformance";
const RUNNER: &str = "conformance";
const OUTPUT: &str = "output";
const RESULTS: &str = "/tmp/results";
/// The label the e2e framework puts on every namespace it creates (`test/e2e/framework/util.go`).
const E2E_NAMESPACE_LABEL: &str = "e2e-run";
/// How long removing the run's namespace may take.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the pod may take to start (images are imported already).
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// What a run reports while it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEvent {
    /// Images imported into a node's containerd (none: it had them all).
    Imported { host: String, images: Vec<String> },
    /// The pod runs on `node`.
    Started { node: String },
    /// From the log.
    Log(Event),
}

/// How a run ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// ginkgo's counts.
    pub counts: Counts,
    /// `Will run N of M specs`.
    pub total: u32,
    /// Full names of the tests that did not pass.
    pub failures: Vec<String>,
    /// The runner's exit code.
    pub exit_code: i32,
    pub seconds: u64,
    /// What was collected into the results directory.
    pub files: Vec<PathBuf>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.counts.failed == 0 && self.exit_code == 0
    }
}

/// Runs the suite as `opts` says; `on` hears of the progress.
pub fn run(
    cluster: &Cluster,
    connector: &dyn Connector,
    binaries_dir: &std::path::Path,
    opts: &Options,
    on: &mut dyn FnMut(RunEvent),
) -> Result<Outcome, ConformanceError> {
    let started = Instant::now();
    let version = cluster.version().to_string();
    let wanted = crate::fetch::ImageRef::parse(&image(&version))
        .map(|r| r.full())
        .unwrap_or_else(|_| image(&version));
    let dir = binaries_dir.join(IMAGES_DIR);
    let host_err = |host: &str| {
        let host = host.to_string();
        move |source: StepError| ConformanceError::Host {
            host,
            source: Box::new(source),
        }
    };
    let found = archives(&dir).map_err(|e| ConformanceError::Output {
        what: dir.display().to_string(),
        message: e.to_string(),
    })?;
    if !found.iter().any(|a| a.holds(&wanted)) {
        return Err(ConformanceError::NoImage { version, dir });
    }
    // Every node at once: each upload is a few hundred megabytes.
    let imported: Vec<Result<Vec<String>, ConformanceError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = cluster
            .nodes()
            .map(|host| {
                let found = &found;
                scope.spawn(move || {
                    let r = connector
                        .connect(host)
                        .map_err(|e| ConformanceError::ssh(&host.name, e))?;
                    import_missing(r.as_ref(), found).map_err(host_err(&host.name))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("an import thread panicked"))
            .collect()
    });
    for (host, images) in cluster.nodes().zip(imported) {
        on(RunEvent::Imported {
            host: host.name.clone(),
            images: images?,
        });
    }
    let cp = cluster
        .hosts_with(Role::ControlPlane)
        .next()
        .ok_or(ConformanceError::NoControlPlane)?;
    let r = connector
        .connect(cp)
        .map_err(|e| ConformanceError::ssh(&cp.name, e))?;
    let kubectl = Kubectl {
        r: r.as_ref(),
        base: admin_kubectl(),
        host: cp.name.clone(),
    };
    kubectl.clear_leftovers()?;
    kubectl.apply(&objects(&wanted, opts))?;
    let result = follow(&kubectl, opts, started, on);
    // Whatever happened, the run's objects go, and are gone when the command returns: the
    // next run (or anything else) finds the cluster as it was.
    let removed = kubectl.remove();
    let mut outcome = result?;
    removed?;
    outcome.seconds = started.elapsed().as_secs();
    Ok(outcome)
}

/// Waits for the pod, follows the log until the runner ends, collects the results.
fn follow(
    kubectl: &Kubectl,
    opts: &Options,
    started: Instant,
    on: &mut dyn FnMut(RunEvent),
) -> Result<Outcome, ConformanceError> {
    let node = kubectl.wait_started()?;
    on(RunEvent::Started { node });
    let mut progress = Progress::default();
    let mut log: Vec<u8> = Vec::new();
    let mut failures = Vec::new();
    let exit_code = loop {
        // The runner's state first: once it has ended, the read below has all of the log.
        let ended = kubectl.runner_exit_code()?;
        let more = kubectl.read_from(&format!("{RESULTS}/e2e.log"), log.len())?;
        // An incomplete character at the end is read again next time, from its start: the
        // log keeps the bytes as read, so `log.len()` stays the file's offset.
        let whole = &more[..utf8_prefix_len(&more)];
        log.extend_from_slice(whole);
        for e in progress.feed(&String::from_utf8_lossy(whole)) {
            if let Event::Failed { name, .. } = &e {
                failures.push(name.clone());
            }
            on(RunEvent::Log(e));
        }
        if let Some(code) = ended {
            break code;
        }
        if started.elapsed() > opts.timeout {
            write_results(&opts.results_dir, &[("e2e.log", &log)])?;
            return Err(ConformanceError::Timeout {
                secs: opts.timeout.as_secs(),
                results: opts.results_dir.clone(),
            });
        }
        std::thread::sleep(opts.poll);
    };
    let mut reports = Vec::new();
    for name in kubectl.result_files()? {
        if name.ends_with(".xml") {
            let bytes = kubectl.read_from(&format!("{RESULTS}/{name}"), 0)?;
            reports.push((name, bytes));
        }
    }
    let mut collected = vec![("e2e.log", log.as_slice())];
    collected.extend(reports.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    let files = write_results(&opts.results_dir, &collected)?;
    let Some(counts) = progress.counts.clone() else {
        let text = String::from_utf8_lossy(&log);
        return Err(ConformanceError::NoSummary {
            code: exit_code,
            tail: crate::ssh::tail(&text, 20),
        });
    };
    Ok(Outcome {
        total: progress.total.unwrap_or(counts.passed + counts.failed),
        counts,
        failures,
        exit_code,
        seconds: 0,
        files,
    })
}

/// The length of the longest prefix of `bytes` that does not end inside a UTF-8 character.
fn utf8_prefix_len(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        // An invalid sequence inside: it stays (replaced) rather than stalling the read.
        Err(_) => bytes.len(),
    }
}

/// Writes each `(name, bytes)` into `dir` (created), atomically; returns the paths.
fn write_results(
    dir: &std::path::Path,
    files: &[(&str, &[u8])],
) -> Result<Vec<PathBuf>, ConformanceError> {
    std::fs::create_dir_all(dir).map_err(|source| ConformanceError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (name, bytes) in files {
        let path = dir.join(name);
        crate::fsutil::write_atomic(&path, bytes, 0o644).map_err(|source| {
            ConformanceError::Write {
                path: path.clone(),
                source,
            }
        })?;
        out.push(path);
    }
    Ok(out)
}

/// The run's objects: its namespace, a ServiceAccount bound to `cluster-admin` (the tests
/// create namespaces, CRDs, webhooks and RBAC of their own), and the pod.
fn objects(image: &str, opts: &Options) -> Value {
    let parallel = opts.parallel > 1;
    let mut env = vec![
        json!({"name": "E2E_FOCUS", "value": opts.focus}),
        json!({"name": "E2E_PARALLEL", "value": if parallel { "y" } else { "n" }}),
        json!({"name": "E2E_PROVIDER", "value": "skeleton"}),
        json!({"name": "RESULTS_DIR", "value": RESULTS}),
    ];
    if let Some(skip) = &opts.skip {
        env.push(json!({"name": "E2E_SKIP", "value": skip}));
    }
    if parallel {
        env.push(
            json!({"name": "E2E_EXTRA_GINKGO_ARGS", "value": format!("--procs={}", opts.parallel)}),
        );
    }
    let labels = json!({"app.kubernetes.io/managed-by": "k8s-boot", "app.kubernetes.io/name": "conformance"});
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}},
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "conformance", "namespace": NAMESPACE, "labels": labels}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": NAMESPACE, "labels": labels},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
             "subjects": [{"kind": "ServiceAccount", "name": "conformance", "namespace": NAMESPACE}]},
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": POD, "namespace": NAMESPACE, "labels": labels},
             "spec": {
                "serviceAccountName": "conformance",
                "restartPolicy": "Never",
                "tolerations": [{"operator": "Exists"}],
                "volumes": [{"name": "results", "emptyDir": {}}],
                "containers": [
                    {"name": RUNNER, "image": image, "imagePullPolicy": "IfNotPresent",
                     "env": env,
                     "volumeMounts": [{"name": "results", "mountPath": RESULTS}]},
                    {"name": OUTPUT, "image": image, "imagePullPolicy": "IfNotPresent",
                     "command": ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
                     "volumeMounts": [{"name": "results", "mountPath": RESULTS}]}
                ]
             }}
        ]
    })
}

/// kubectl as the admin on one control-plane host.
struct Kubectl<'a> {
    r: &'a dyn Remote,
    base: String,
    host: String,
}

impl Kubectl<'_> {
    fn err(&self, source: SshError) -> ConformanceError {
        ConformanceError::ssh(&self.host, source)
    }

    fn run(&self, args: &str) -> Result<String, ConformanceError> {
        self.r
            .run(&format!("{} {args}", self.base))
            .map_err(|e| self.err(e))
    }

    /// The pod as JSON, `None` when there is none.
    fn pod(&self) -> Result<Option<Value>, ConformanceError> {
        let out = self
            .r
            .exec(&format!(
                "{} get pod -n {NAMESPACE} {POD} -o json --ignore-not-found",
                self.base
            ))
            .map_err(|e| self.err(e))?;
        if out.code != 0 {
            return Err(ConformanceError::Output {
                what: format!("kubectl get pod -n {NAMESPACE} {POD}"),
                message: out.stderr.trim().to_string(),
            });
        }
        if out.stdout.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&out.stdout)
            .map(Some)
            .map_err(|e| ConformanceError::Output {
                what: format!("kubectl get pod -n {NAMESPACE} {POD}"),
                message: e.to_string(),
            })
    }

    /// Refuses when a run is going; removes what an earlier run left.
    fn clear_leftovers(&self) -> Result<(), ConformanceError> {
        if let Some(pod) = self.pod()? {
            if container_state(&pod, RUNNER).is_some_and(|s| s.get("running").is_some()) {
                return Err(ConformanceError::InProgress);
            }
        }
        self.remove()
    }

    /// Deletes the run's namespace and the ones the tests made, waiting until they are gone,
    /// and the ClusterRoleBinding. The e2e framework only asks for its namespaces' deletion:
    /// their pods would still be terminating (and block a drain: they have no controller).
    fn remove(&self) -> Result<(), ConformanceError> {
        self.run(&format!(
            "delete namespace {NAMESPACE} --ignore-not-found --wait=true --timeout={}s",
            REMOVE_TIMEOUT.as_secs()
        ))?;
        self.run(&format!(
            "delete namespace --selector={E2E_NAMESPACE_LABEL} --ignore-not-found --wait=true \
             --timeout={}s",
            REMOVE_TIMEOUT.as_secs()
        ))?;
        self.run(&format!(
            "delete clusterrolebinding {NAMESPACE} --ignore-not-found"
        ))?;
        Ok(())
    }

    fn apply(&self, objects: &Value) -> Result<(), ConformanceError> {
        let text = serde_json::to_string(objects).expect("JSON of a Value");
        self.run(&format!(
            "apply -f - <<'K8S_BOOT_END'\n{text}\nK8S_BOOT_END"
        ))?;
        Ok(())
    }

    /// Waits until both containers run (or the runner already ended); returns the node.
    fn wait_started(&self) -> Result<String, ConformanceError> {
        let started_waiting = Instant::now();
        let deadline = started_waiting + START_TIMEOUT;
        loop {
            let pod = self.pod()?.unwrap_or(Value::Null);
            let running = |c| container_state(&pod, c).is_some_and(|s| s.get("running").is_some());
            let runner_ended =
                container_state(&pod, RUNNER).is_some_and(|s| s.get("terminated").is_some());
            if running(OUTPUT) && (running(RUNNER) || runner_ended) {
                return Ok(pod["spec"]["nodeName"].as_str().unwrap_or("?").to_string());
            }
            // A pod the kubelet refused or evicted never starts: say why now, not in 300 s.
            let phase = pod["status"]["phase"].as_str();
            let terminal = matches!(phase, Some("Failed" | "Succeeded")) && !runner_ended;
            if terminal || Instant::now() > deadline {
                return Err(ConformanceError::NotStarted {
                    secs: started_waiting.elapsed().as_secs(),
                    reason: waiting_reason(&pod),
                });
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The runner's exit code once it has ended.
    fn runner_exit_code(&self) -> Result<Option<i32>, ConformanceError> {
        let pod = self.pod()?.unwrap_or(Value::Null);
        Ok(container_state(&pod, RUNNER)
            .and_then(|s| s.get("terminated"))
            .map(|t| t["exitCode"].as_i64().unwrap_or(-1) as i32))
    }

    /// `path` in the results volume from byte `offset` on (base64 on the way: the SSH
    /// channel carries text).
    fn read_from(&self, path: &str, offset: usize) -> Result<Vec<u8>, ConformanceError> {
        let script = format!(
            "test -f {p} || exit 0; tail -c +{} {p} | base64",
            offset + 1,
            p = shell_quote(path)
        );
        let text = self.run(&format!(
            "exec -n {NAMESPACE} {POD} -c {OUTPUT} -- sh -c {}",
            shell_quote(&script)
        ))?;
        let compact: String = text.split_whitespace().collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| ConformanceError::Output {
                what: format!("{path} read back"),
                message: e.to_string(),
            })
    }

    fn result_files(&self) -> Result<Vec<String>, ConformanceError> {
        let text = self.run(&format!(
            "exec -n {NAMESPACE} {POD} -c {OUTPUT} -- ls {RESULTS}"
        ))?;
        Ok(text.lines().map(|l| l.trim().to_string()).collect())
    }
}

fn container_state<'v>(pod: &'v Value, name: &str) -> Option<&'v Value> {
    pod["status"]["containerStatuses"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| &c["state"])
}

/// Why the pod is not running: a container's waiting reason and message, or its phase.
fn waiting_reason(pod: &Value) -> String {
    for c in pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(w) = c["state"].get("waiting") {
            return format!(
                "container {}: {} {}",
                c["name"].as_str().unwrap_or("?"),
                w["reason"].as_str().unwrap_or(""),
                w["message"].as_str().unwrap_or("")
            )
            .trim()
            .to_string();
        }
    }
    for c in pod["status"]["conditions"].as_array().into_iter().flatten() {
        if c["status"] == "False" {
            if let Some(m) = c["message"].as_str() {
                return m.to_string();
            }
        }
    }
    // The kubelet's own word on a pod it refused or evicted (`OutOfcpu`, `Evicted`, ...).
    let status = &pod["status"];
    let said = [&status["reason"], &status["message"]]
        .iter()
        .filter_map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(": ");
    let phase = status["phase"].as_str().unwrap_or("unknown");
    if said.is_empty() {
        format!("phase {phase}")
    } else {
        format!("phase {phase}, {said}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_pod_names_the_kubelets_reason() {
        let evicted = json!({"status": {"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: memory."}});
        assert_eq!(
            waiting_reason(&evicted),
            "phase Failed, Evicted: The node was low on resource: memory."
        );
        let pending = json!({"status": {"phase": "Pending"}});
        assert_eq!(waiting_reason(&pending), "phase Pending");
        let pulling = json!({"status": {"phase": "Pending", "containerStatuses": [
            {"name": "output", "state": {"waiting": {"reason": "ErrImageNeverPull", "message": "not present"}}}]}});
        assert_eq!(
            waiting_reason(&pulling),
            "container output: ErrImageNeverPull not present"
        );
    }

    #[test]
    fn utf8_prefix_keeps_a_split_character_for_later() {
        let s = "ab•".as_bytes();
        assert_eq!(utf8_prefix_len(s), s.len());
        assert_eq!(utf8_prefix_len(&s[..3]), 2);
        assert_eq!(utf8_prefix_len(&s[..4]), 2);
        assert_eq!(utf8_prefix_len(b"a\xffb"), 3);
    }

    #[test]
    fn objects_pass_the_options_to_the_runner() {
        let opts = Options {
            focus: "x".into(),
            skip: None,
            parallel: 3,
            results_dir: "r".into(),
            timeout: Duration::from_secs(1),
            poll: Duration::from_secs(1),
        };
        let o = objects("registry.k8s.io/conformance:v1.37.2", &opts);
        let pod = &o["items"][3];
        assert_eq!(pod["kind"], "Pod");
        let env = &pod["spec"]["containers"][0]["env"];
        let get = |n: &str| {
            env.as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == n)
                .map(|e| e["value"].as_str().unwrap().to_string())
        };
        assert_eq!(get("E2E_PARALLEL").as_deref(), Some("y"));
        assert_eq!(get("E2E_EXTRA_GINKGO_ARGS").as_deref(), Some("--procs=3"));
        assert_eq!(get("E2E_SKIP"), None);
        let serial = Options {
            parallel: 1,
            skip: Some("y".into()),
            ..opts
        };
        let o = objects("i", &serial);
        let env = o["items"][3]["spec"]["containers"][0]["env"].to_string();
        assert!(env.contains(r#""E2E_PARALLEL","value":"n""#), "{env}");
        assert!(env.contains(r#""E2E_SKIP","value":"y""#), "{env}");
        assert!(!env.contains("E2E_EXTRA_GINKGO_ARGS"), "{env}");
    }
}
